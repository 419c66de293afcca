from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.money import (
    COST_DECIMAL_PLACES,
    COST_MAX_DIGITS,
    PERCENT_DECIMAL_PLACES,
    PERCENT_MAX_DIGITS,
)


class AlertType(models.TextChoices):
    MODEL_BUDGET = "model_budget", _("Model monthly budget")
    GLOBAL_BUDGET = "global_budget", _("Global monthly budget")
    ERROR_RATE = "error_rate", _("Error rate")
    SPEND_SPIKE = "spend_spike", _("Spend spike")
    USER_BUDGET = "user_budget", _("User monthly budget")
    PURPOSE_BUDGET = "purpose_budget", _("Purpose monthly budget")
    FORECAST = "forecast", _("Forecast to exceed a budget")


class AlertLevel(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved")


GLOBAL_SCOPE = "*"


class BudgetAlert(models.Model):
    """A threshold crossed once for one budget (or one model's health) in one period.

    Budget alerts: period = calendar month, threshold = percent of the budget.
    Error-rate alerts: period = calendar day, threshold = failure rate in percent.
    Spend-spike alerts: period = calendar day, threshold = today's cost in percent of the trailing daily average.
    """

    model_name = models.CharField(
        max_length=120,
        help_text=_(
            "The budget's scope: the model, '*' for the global budget, the user id (user budgets), the purpose "
            "(purpose budgets); for forecast alerts the budget's type and scope ('user_budget:42')."
        ),
        verbose_name=_("scope"),
    )
    alert_type = models.CharField(max_length=50, choices=AlertType.choices, verbose_name=_("alert type"))
    alert_level = models.CharField(max_length=20, choices=AlertLevel.choices, verbose_name=_("alert level"))
    current_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, verbose_name=_("current cost")
    )
    budget_limit = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text=_("The budget; for spend spikes the trailing daily average; empty for error-rate alerts."),
        verbose_name=_("budget limit"),
    )
    usage_percentage = models.DecimalField(
        max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES, verbose_name=_("usage percentage")
    )
    message = models.TextField(verbose_name=_("message"))
    is_resolved = models.BooleanField(default=False, verbose_name=_("is resolved"))
    status = models.CharField(
        max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN, verbose_name=_("status")
    )
    period_start = models.DateField(
        help_text=_("First day of the period: the calendar month (budgets) or day (error rate, spikes) in TIME_ZONE."),
        verbose_name=_("period start"),
    )
    threshold_percent = models.PositiveSmallIntegerField(verbose_name=_("threshold percent"))
    details = models.JSONField(
        default=dict, blank=True, help_text=_("The figures the alert was raised on."), verbose_name=_("details")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )

    class Meta:
        db_table = "ai_budget_alerts"
        ordering = ["-created_at"]
        verbose_name = _("budget alert")
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
        verbose_name_plural = _("budget alerts")

    def __str__(self) -> str:
        return self.message


class GlobalBudget(models.Model):
    """The one monthly budget for all models together (a single row, edited in admin)."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False, verbose_name=_("id"))
    monthly_budget = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text=_("Empty means no global budget."),
        verbose_name=_("monthly budget"),
    )
    currency = models.CharField(
        max_length=3,
        # No callable default: a migration would have to import it. global_budget_set and the admin's
        # add form fill in AICOST_CURRENCY.
        help_text=_(
            "The currency the global budget is stated in. Every model's spend counts, in the reporting "
            "currency; the budget is converted into it at the exchange rate in force now."
        ),
        verbose_name=_("currency"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        db_table = "ai_global_budget"
        verbose_name = _("global monthly budget")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="ai_global_budget_single_row"),
            models.CheckConstraint(
                condition=models.Q(monthly_budget__isnull=True) | models.Q(monthly_budget__gte=0),
                name="ai_global_budget_not_negative",
            ),
        ]
        verbose_name_plural = _("global monthly budgets")

    def __str__(self) -> str:
        if self.monthly_budget is None:
            return gettext("No budget")
        return gettext("%(amount)s %(currency)s a month") % {"amount": self.monthly_budget, "currency": self.currency}


def _monthly_budget_field() -> models.DecimalField:
    return models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        help_text=_("The budget for each calendar month (in TIME_ZONE), in currency."),
        verbose_name=_("monthly budget"),
    )


def _budget_currency_field() -> models.CharField:
    return models.CharField(
        max_length=3,
        validators=[RegexValidator(r"^[A-Z]{3}\Z", _("An ISO 4217 code: three capital letters, e.g. USD."))],
        help_text=_(
            "The currency the budget is stated in; it is compared in the reporting currency, converted at "
            "the exchange rate in force now."
        ),
        verbose_name=_("currency"),
    )


class UserBudget(models.Model):
    """A monthly budget per user: the row without a user id is the default for every user without a
    row of their own (an override)."""

    user_id = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Empty: the default budget of every user without a budget of their own."),
        verbose_name=_("user id"),
    )
    monthly_budget = _monthly_budget_field()
    currency = _budget_currency_field()
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        db_table = "ai_user_budget"
        ordering = [models.F("user_id").asc(nulls_first=True)]
        verbose_name = _("user monthly budget")
        verbose_name_plural = _("user monthly budgets")
        constraints = [
            # One override per user, and one default (user_id empty, counted as 0: ids start at 1).
            models.UniqueConstraint(Coalesce("user_id", models.Value(0)), name="ai_user_budget_one_per_user"),
            models.CheckConstraint(condition=models.Q(monthly_budget__gte=0), name="ai_user_budget_not_negative"),
            models.CheckConstraint(
                condition=models.Q(user_id__isnull=True) | models.Q(user_id__gte=1), name="ai_user_budget_user_id"
            ),
        ]

    def __str__(self) -> str:
        values = {"amount": self.monthly_budget, "currency": self.currency, "user": self.user_id}
        if self.user_id is None:
            return gettext("Every user: %(amount)s %(currency)s a month") % values
        return gettext("User %(user)s: %(amount)s %(currency)s a month") % values


class PurposeBudget(models.Model):
    """A monthly budget for the calls of one purpose (the usage log's `purpose`)."""

    purpose = models.CharField(max_length=100, unique=True, verbose_name=_("purpose"))
    monthly_budget = _monthly_budget_field()
    currency = _budget_currency_field()
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        db_table = "ai_purpose_budget"
        ordering = ["purpose"]
        verbose_name = _("purpose monthly budget")
        verbose_name_plural = _("purpose monthly budgets")
        constraints = [
            models.CheckConstraint(condition=models.Q(monthly_budget__gte=0), name="ai_purpose_budget_not_negative"),
            models.CheckConstraint(condition=~models.Q(purpose=""), name="ai_purpose_budget_purpose_given"),
        ]

    def __str__(self) -> str:
        values = {"amount": self.monthly_budget, "currency": self.currency, "purpose": self.purpose}
        return gettext("%(purpose)s: %(amount)s %(currency)s a month") % values


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Webhook")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed (gave up)")


class AlertDelivery(models.Model):
    """One alert to be sent over one channel: an outbox row, written with the alert, sent after commit."""

    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("alert"))
    channel = models.CharField(max_length=10, choices=DeliveryChannel.choices, verbose_name=_("channel"))
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, verbose_name=_("status")
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    next_attempt_at = models.DateTimeField(
        help_text=_("When a pending delivery is due; moved ahead while an attempt is in flight (a lease)."),
        verbose_name=_("next attempt at"),
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("last status code"))
    last_error = models.TextField(blank=True, default="", verbose_name=_("last error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))

    class Meta:
        db_table = "ai_alert_delivery"
        ordering = ["-created_at"]
        verbose_name_plural = _("alert deliveries")
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
        verbose_name = _("alert delivery")

    def __str__(self) -> str:
        return gettext("%(channel)s for alert %(alert)s: %(status)s") % {
            "channel": self.get_channel_display(),
            "alert": self.alert_id,
            "status": self.get_status_display(),
        }


class DeliveryAttempt(models.Model):
    """One try to deliver an alert over a channel, with its outcome."""

    delivery = models.ForeignKey(
        AlertDelivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    succeeded = models.BooleanField(verbose_name=_("succeeded"))
    status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("HTTP status of a webhook."), verbose_name=_("status code")
    )
    error = models.TextField(blank=True, default="", verbose_name=_("error"))
    duration_ms = models.PositiveIntegerField(verbose_name=_("duration ms"))
    attempted_at = models.DateTimeField(verbose_name=_("attempted at"))

    class Meta:
        db_table = "ai_alert_delivery_attempt"
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="ai_alert_delivery_attempt_number"),
        ]
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")

    def __str__(self) -> str:
        if self.succeeded:
            return gettext("attempt %(number)s: ok") % {"number": self.number}
        return gettext("attempt %(number)s: failed") % {"number": self.number}
