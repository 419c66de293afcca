from django.urls import path

from usage.apis import UsageDailyTrendApi, UsageExportApi, UsageStatsApi

urlpatterns = [
    path("usage/export.csv", UsageExportApi.as_view(), name="usage-export"),
    path("ai-platforms/stats", UsageStatsApi.as_view(), name="usage-stats"),
    path("ai-platforms/cost-trend-daily", UsageDailyTrendApi.as_view(), name="usage-cost-trend-daily"),
]
