from django.urls import path

from usage.apis import UsageIngestApi

urlpatterns = [
    path("usage/", UsageIngestApi.as_view(), name="usage-ingest"),
]
