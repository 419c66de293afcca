from django.urls import path

from usage.apis import UsageDailyTrendApi, UsageIngestApi, UsageStatsApi

urlpatterns = [
    path("usage/", UsageIngestApi.as_view(), name="usage-ingest"),
    path("ai-platforms/stats", UsageStatsApi.as_view(), name="usage-stats"),
    path("ai-platforms/cost-trend-daily", UsageDailyTrendApi.as_view(), name="usage-cost-trend-daily"),
]
