from django.urls import path

from usage.apis import UsageDailyTrendApi, UsageDecisionApi, UsageExportApi, UsageStatsApi

urlpatterns = [
    path("usage/export.csv", UsageExportApi.as_view(), name="usage-export"),
    path("usage/decisions/<str:decision_id>", UsageDecisionApi.as_view(), name="usage-decision"),
    path("ai-platforms/stats", UsageStatsApi.as_view(), name="usage-stats"),
    path("ai-platforms/cost-trend-daily", UsageDailyTrendApi.as_view(), name="usage-cost-trend-daily"),
]
