from django.urls import path

from dashboard.apis import MetricsApi

urlpatterns = [
    path("metrics", MetricsApi.as_view(), name="metrics"),
]
