from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from alerts.models import AlertDelivery, BudgetAlert, DeliveryAttempt, GlobalBudget, PurposeBudget, UserBudget
from alerts.services import (
    alert_deliveries_requeue,
    alert_deliveries_send,
    budget_alerts_acknowledge,
    budget_alerts_resolve,
    global_budget_set,
)


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = ["channel", "status", "attempts", "last_status_code", "last_error", "next_attempt_at", "delivered_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


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
        "period_start",
        "status",
        "is_resolved",
    ]
    list_filter = ["status", "is_resolved", "alert_level", "alert_type", "model_name"]
    search_fields = ["model_name", "message"]
    date_hierarchy = "created_at"
    actions = ["acknowledge_alerts", "resolve_alerts"]
    inlines = [AlertDeliveryInline]
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
        "details",
        "created_at",
        "is_resolved",
        "status",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # Resolve instead: the row is what stops the same threshold firing again this period.

    @admin.action(description=_("Acknowledge selected alerts"))
    def acknowledge_alerts(self, request, queryset: QuerySet[BudgetAlert]) -> None:
        count = budget_alerts_acknowledge(alert_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        self.message_user(
            request,
            ngettext("Acknowledged %(count)d alert.", "Acknowledged %(count)d alerts.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Resolve selected alerts"))
    def resolve_alerts(self, request, queryset: QuerySet[BudgetAlert]) -> None:
        count = budget_alerts_resolve(alert_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        self.message_user(
            request,
            ngettext("Resolved %(count)d alert.", "Resolved %(count)d alerts.", count) % {"count": count},
            messages.SUCCESS,
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "attempted_at", "succeeded", "status_code", "error", "duration_ms"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "alert", "channel", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["alert"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    readonly_fields = [
        "alert",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Retry selected deliveries now"))
    def retry_now(self, request, queryset: QuerySet[AlertDelivery]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        alert_deliveries_requeue(delivery_ids=ids)
        sent = [d for d in alert_deliveries_send(delivery_ids=ids) if d.status == "sent"]
        message = ngettext(
            "Attempted %(count)d delivery; %(sent)d sent.", "Attempted %(count)d deliveries; %(sent)d sent.", len(ids)
        )
        self.message_user(request, message % {"count": len(ids), "sent": len(sent)}, messages.INFO)


@admin.register(GlobalBudget)
class GlobalBudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "monthly_budget", "currency", "updated_at"]
    fields = ["monthly_budget", "currency", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request) -> bool:
        return not GlobalBudget.objects.exists()

    def get_changeform_initial_data(self, request) -> dict:
        return {"currency": settings.AICOST_CURRENCY, **super().get_changeform_initial_data(request)}

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # Empty the amount instead.

    def save_model(self, request, obj: GlobalBudget, form, change: bool) -> None:
        saved = global_budget_set(monthly_budget=obj.monthly_budget, currency=obj.currency)
        obj.pk = saved.pk


class CurrencyDefaultAdmin(admin.ModelAdmin):
    def get_changeform_initial_data(self, request) -> dict:
        return {"currency": settings.AICOST_CURRENCY, **super().get_changeform_initial_data(request)}


@admin.register(UserBudget)
class UserBudgetAdmin(CurrencyDefaultAdmin):
    """The default budget of every user (the row without a user id) and the users' own budgets."""

    list_display = ["__str__", "user_id", "monthly_budget", "currency", "updated_at"]
    fields = ["user_id", "monthly_budget", "currency", "updated_at"]
    readonly_fields = ["updated_at"]
    search_fields = ["user_id"]


@admin.register(PurposeBudget)
class PurposeBudgetAdmin(CurrencyDefaultAdmin):
    list_display = ["purpose", "monthly_budget", "currency", "updated_at"]
    fields = ["purpose", "monthly_budget", "currency", "updated_at"]
    readonly_fields = ["updated_at"]
    search_fields = ["purpose"]
