from django.contrib import admin, messages
from django.db.models import QuerySet

from alerts.models import BudgetAlert
from alerts.services import budget_alerts_resolve


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "model_name",
        "alert_type",
        "alert_level",
        "threshold_percent",
        "usage_percentage",
        "current_cost",
        "budget_limit",
        "status",
        "is_resolved",
    ]
    list_filter = ["is_resolved", "status", "alert_level", "alert_type", "model_name"]
    search_fields = ["model_name", "message"]
    date_hierarchy = "created_at"
    actions = ["resolve_alerts"]
    readonly_fields = [
        "model_name",
        "alert_type",
        "alert_level",
        "current_cost",
        "budget_limit",
        "usage_percentage",
        "message",
        "period_start",
        "threshold_percent",
        "created_at",
        "is_resolved",
        "status",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Resolve selected alerts")
    def resolve_alerts(self, request, queryset: QuerySet[BudgetAlert]) -> None:
        count = budget_alerts_resolve(alert_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Resolved {count} alert(s).", messages.SUCCESS)
