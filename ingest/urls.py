from django.urls import path

from ingest.apis import UsageIngestApi

urlpatterns = [
    path("usage/", UsageIngestApi.as_view(), name="usage-ingest"),
]
