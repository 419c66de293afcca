from django.urls import path

from alerts.apis import AlertListApi, BudgetCheckApi

urlpatterns = [
    path("alerts/", AlertListApi.as_view(), name="alerts-list"),
    path("budget/check", BudgetCheckApi.as_view(), name="budget-check"),
]
