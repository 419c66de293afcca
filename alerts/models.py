from django.db import models

from aicost.money import (
    COST_DECIMAL_PLACES,
    COST_MAX_DIGITS,
    PERCENT_DECIMAL_PLACES,
    PERCENT_MAX_DIGITS,
)


class AlertType(models.TextChoices):
    MODEL_BUDGET = "model_budget", "Model monthly budget"
    GLOBAL_BUDGET = "global_budget", "Global monthly budget"


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
    """A threshold crossed once for one budget in one period."""

    model_name = models.CharField(max_length=100, help_text=f"'{GLOBAL_SCOPE}' for the global budget.")
    alert_type = models.CharField(max_length=50, choices=AlertType.choices)
    alert_level = models.CharField(max_length=20, choices=AlertLevel.choices)
    current_cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)
    budget_limit = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)
    usage_percentage = models.DecimalField(max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES)
    message = models.TextField()
    is_resolved = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    period_start = models.DateField(help_text="First day of the budget period (calendar month in TIME_ZONE).")
    threshold_percent = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "ai_budget_alerts"
        ordering = ["-created_at"]
        verbose_name = "budget alert"
        constraints = [
            models.UniqueConstraint(
                fields=["alert_type", "model_name", "period_start", "threshold_percent"],
                name="ai_budget_alerts_once_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.message
