from django.conf import settings
from django.db import models

from core.money import (
    COST_DECIMAL_PLACES,
    COST_MAX_DIGITS,
    PERCENT_DECIMAL_PLACES,
    PERCENT_MAX_DIGITS,
)


class AlertType(models.TextChoices):
    MODEL_BUDGET = "model_budget", "Model monthly budget"
    GLOBAL_BUDGET = "global_budget", "Global monthly budget"
    ERROR_RATE = "error_rate", "Error rate"
    SPEND_SPIKE = "spend_spike", "Spend spike"


class AlertLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


GLOBAL_SCOPE = "*"


class BudgetAlert(models.Model):
    """A threshold crossed once for one budget (or one model's health) in one period.

    Budget alerts: period = calendar month, threshold = percent of the budget.
    Error-rate alerts: period = calendar day, threshold = failure rate in percent.
    Spend-spike alerts: period = calendar day, threshold = today's cost in percent of the trailing daily average.
    """

    model_name = models.CharField(max_length=100, help_text=f"'{GLOBAL_SCOPE}' for the global budget.")
    alert_type = models.CharField(max_length=50, choices=AlertType.choices)
    alert_level = models.CharField(max_length=20, choices=AlertLevel.choices)
    current_cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)
    budget_limit = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="The budget; for spend spikes the trailing daily average; empty for error-rate alerts.",
    )
    usage_percentage = models.DecimalField(max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES)
    message = models.TextField()
    is_resolved = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    period_start = models.DateField(
        help_text="First day of the period: the calendar month (budgets) or day (error rate, spikes) in TIME_ZONE."
    )
    threshold_percent = models.PositiveSmallIntegerField()
    details = models.JSONField(default=dict, blank=True, help_text="The figures the alert was raised on.")
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        db_table = "ai_budget_alerts"
        ordering = ["-created_at"]
        verbose_name = "budget alert"
        constraints = [
            models.UniqueConstraint(
                fields=["alert_type", "model_name", "period_start", "threshold_percent"],
                name="ai_budget_alerts_once_per_period",
            ),
            # is_resolved is the seed schema's flag; status is the lifecycle. They never disagree.
            models.CheckConstraint(
                condition=(models.Q(is_resolved=True) & models.Q(status=AlertStatus.RESOLVED))
                | (models.Q(is_resolved=False) & ~models.Q(status=AlertStatus.RESOLVED)),
                name="ai_budget_alerts_resolved_matches_status",
            ),
        ]
        indexes = [models.Index(fields=["is_resolved", "-created_at"], name="ai_budget_alerts_open_idx")]

    def __str__(self) -> str:
        return self.message


class GlobalBudget(models.Model):
    """The one monthly budget for all models together (a single row, edited in admin)."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    monthly_budget = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="Empty means no global budget.",
    )
    currency = models.CharField(
        max_length=3,
        # No callable default: a migration would have to import it. global_budget_set and the admin's
        # add form fill in AICOST_CURRENCY.
        help_text="Only models priced in this currency count towards the global budget.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_global_budget"
        verbose_name = "global monthly budget"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="ai_global_budget_single_row"),
            models.CheckConstraint(
                condition=models.Q(monthly_budget__isnull=True) | models.Q(monthly_budget__gte=0),
                name="ai_global_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.monthly_budget} {self.currency} a month" if self.monthly_budget is not None else "No budget"


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"


class AlertDelivery(models.Model):
    """One alert to be sent over one channel: an outbox row, written with the alert, sent after commit."""

    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=DeliveryChannel.choices)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        help_text="When a pending delivery is due; moved ahead while an attempt is in flight (a lease)."
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ai_alert_delivery"
        ordering = ["-created_at"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel"], name="ai_alert_delivery_once_per_channel"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="ai_alert_delivery_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} for alert {self.alert_id}: {self.status}"


class DeliveryAttempt(models.Model):
    """One try to deliver an alert over a channel, with its outcome."""

    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    succeeded = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status of a webhook.")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()

    class Meta:
        db_table = "ai_alert_delivery_attempt"
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="ai_alert_delivery_attempt_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}: {'ok' if self.succeeded else 'failed'}"
