"""Alert list for the cost page and clients; the budget preflight for callers about to spend."""

from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.views import APIView

from alerts.forecast import Forecast
from alerts.models import AlertLevel, AlertStatus, AlertType, BudgetAlert
from alerts.selectors import BudgetStatus, WatchedBudget, budget_alert_list, budget_check, capped_percent
from core.api.exceptions import ApiError
from core.api.fields import lookup_field
from core.api.responses import ErrorResponseSerializer, success_response
from core.money import (
    COST_DISPLAY_PLACES,
    COST_MAX_DIGITS,
    PERCENT_DECIMAL_PLACES,
    PERCENT_MAX_DIGITS,
    RATE_DECIMAL_PLACES,
    RATE_MAX_DIGITS,
    money_display,
)
from core.timeutils import month_bounds
from pricing.selectors import model_pricing_for_name
from usage.permissions import CanReadStats, CanWriteUsage


def _money(**kwargs) -> serializers.DecimalField:
    # Output only: shown as core.money.money_display shows a cost.
    return serializers.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DISPLAY_PLACES, **kwargs)


def _percent(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES, **kwargs)


# The money figures alerts.services writes into an alert's details, as text; answered as numbers.
DETAILS_MONEY = frozenset({"spent", "budget", "cost_today", "trailing_daily_average", "budget_amount", "exchange_rate"})


class AlertDetailsField(serializers.JSONField):
    """An alert's details as stored, with its money figures as exact numbers (JSON numbers written
    from the Decimal by core.api.renderers), like the alert's own current_cost and budget_limit."""

    def to_representation(self, value):
        if not isinstance(value, dict):
            return value
        return {key: _decimal_or_as_is(item) if key in DETAILS_MONEY else item for key, item in value.items()}


def _decimal_or_as_is(value):
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        if number.is_finite():
            return number
    return value


def _envelope(name: str, data: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(name=name, fields={"success": serializers.BooleanField(), "data": data})


class AlertListApi(APIView):
    """GET /api/v1/alerts/?is_resolved=false&status=&model=&alert_type=&level=&limit=&offset= (newest first)."""

    permission_classes = [CanReadStats]

    class InputSerializer(serializers.Serializer):
        is_resolved = serializers.BooleanField(required=False, allow_null=True, default=None)
        status = serializers.ChoiceField(choices=AlertStatus.choices, required=False)
        model = lookup_field(required=False, max_length=100)
        alert_type = serializers.ChoiceField(choices=AlertType.choices, required=False)
        level = serializers.ChoiceField(choices=AlertLevel.choices, required=False)
        limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=200)
        offset = serializers.IntegerField(required=False, default=0, min_value=0)

    class OutputSerializer(serializers.ModelSerializer):
        current_cost = _money()
        budget_limit = _money(allow_null=True, help_text="Budget; trailing daily average for spikes; null otherwise.")
        usage_percentage = _percent()
        currency = serializers.CharField(
            allow_null=True,
            help_text="ISO 4217 code of current_cost, budget_limit and the money in details: the reporting "
            "currency for alerts raised since budgets compare in it (details.budget_amount is the budget as "
            "stated, in details.budget_currency); for older alerts the budget's currency, else the model's; "
            "null for a model without prices.",
        )
        details = AlertDetailsField(
            help_text="The figures the alert was raised on; money (spent, budget, cost_today, "
            "trailing_daily_average) as exact decimal numbers in currency."
        )

        class Meta:
            model = BudgetAlert
            ref_name = "BudgetAlert"
            fields = [
                "id",
                "model_name",
                "alert_type",
                "alert_level",
                "status",
                "is_resolved",
                "threshold_percent",
                "usage_percentage",
                "current_cost",
                "budget_limit",
                "currency",
                "period_start",
                "message",
                "details",
                "created_at",
                "acknowledged_at",
                "resolved_at",
            ]

    @extend_schema(
        parameters=[InputSerializer],
        responses=_envelope(
            "AlertListResponse",
            inline_serializer(
                name="AlertPage",
                fields={
                    "count": serializers.IntegerField(),
                    "limit": serializers.IntegerField(),
                    "offset": serializers.IntegerField(),
                    "results": OutputSerializer(many=True),
                },
            ),
        ),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        alerts = budget_alert_list(
            is_resolved=query.get("is_resolved"),
            status=query.get("status"),
            model_name=query.get("model"),
            alert_type=query.get("alert_type"),
            alert_level=query.get("level"),
        )
        limit, offset = query["limit"], query["offset"]
        page = alerts[offset : offset + limit]
        return success_response(
            {
                "count": alerts.count(),
                "limit": limit,
                "offset": offset,
                "results": self.OutputSerializer(page, many=True).data,
            }
        )


class BudgetStatusSerializer(serializers.Serializer):
    monthly_budget = _money(
        source="budget", allow_null=True, help_text="The budget as stated, in budget_currency. Null: no budget set."
    )
    spent = _money(help_text="Spent in the current calendar month, in currency (the calls' reporting cost).")
    remaining = _money(allow_null=True, help_text="In currency.")
    percent_used = _percent(allow_null=True)
    currency = serializers.CharField(
        help_text="ISO 4217 code of spent, remaining and monthly_budget_reporting: the reporting currency "
        "(AICOST_REPORTING_CURRENCY), in which the budget is compared."
    )
    within_budget = serializers.BooleanField(help_text="False when spent has reached the converted budget.")

    budget_currency = serializers.CharField(allow_null=True, help_text="ISO 4217 code of monthly_budget.")
    monthly_budget_reporting = _money(
        source="budget_reporting",
        allow_null=True,
        help_text="monthly_budget in currency (the reporting currency) at the exchange rate in force now; null: "
        "no budget, or no rate (convertible false).",
    )
    exchange_rate = serializers.DecimalField(
        source="rate",
        max_digits=RATE_MAX_DIGITS,
        decimal_places=RATE_DECIMAL_PLACES,
        allow_null=True,
        help_text="Units of currency per unit of budget_currency the budget was converted at; null: none needed "
        "or none in force.",
    )
    convertible = serializers.BooleanField(
        help_text="False: no exchange rate from budget_currency into the reporting currency is in force now, so "
        "the budget is not compared with the spend (remaining and percent_used null, no alert, within_budget true)."
    )
    unconverted_calls = serializers.IntegerField(
        help_text="Calls of the month with no exchange rate into the reporting currency: not in spent (never "
        "counted as 0) until usage_convert converts them."
    )


class ForecastSerializer(serializers.Serializer):
    class Meta:
        ref_name = "BudgetForecast"

    method = serializers.CharField(
        help_text="trailing_7_day_average, or trailing_7_day_average_weekday_seasonality with 4 weeks of history "
        "(README: Budgets and forecast)."
    )
    daily_pace = _money(help_text="The average daily cost of the trailing 7 complete days, in currency.")
    projected_month_end = _money(
        source="projected", help_text="The month's spend so far plus the expected cost of its rest, in currency."
    )
    projected_percent = _percent(allow_null=True, help_text="Of the converted budget; null: no comparable budget.")
    reaches_budget_on = serializers.DateField(
        source="reaches_on",
        allow_null=True,
        help_text="The day (TIME_ZONE) the spend reaches the budget at this pace; null: not this month, already "
        "reached, or no comparable budget.",
    )
    already_reached = serializers.BooleanField()
    history_days = serializers.IntegerField(help_text="Complete days of history behind the pace (at most 28).")
    currency = serializers.CharField(help_text="ISO 4217: the reporting currency.")


class BudgetCheckStatusSerializer(BudgetStatusSerializer):
    forecast = ForecastSerializer()


class BudgetEntrySerializer(BudgetCheckStatusSerializer):
    type = serializers.ChoiceField(
        choices=["model", "global", "user", "purpose"],
        help_text="Which budget: the model's, the global one, "
        "the user's (is_default: the default for every user) or the purpose's.",
    )
    scope = serializers.CharField(
        allow_null=True,
        help_text="The model name, '*', the user id; the purpose only to staff and keys with read scope (null "
        "otherwise).",
    )
    is_default = serializers.BooleanField()


BUDGET_TYPES = {
    AlertType.MODEL_BUDGET: "model",
    AlertType.GLOBAL_BUDGET: "global",
    AlertType.USER_BUDGET: "user",
    AlertType.PURPOSE_BUDGET: "purpose",
}


class BudgetCheckApi(APIView):
    """GET /api/v1/budget/check?model=<name>&user_id=<id>&purpose=<text>: may a caller still spend on
    this model, for this user and purpose, this month? Answers for every budget that applies, each
    with its forecast.

    Callers that spend hold write_usage keys, so those may ask too (as well as read keys and staff)."""

    permission_classes = [CanReadStats | CanWriteUsage]

    class InputSerializer(serializers.Serializer):
        model = lookup_field(required=False, max_length=100)
        user_id = serializers.IntegerField(required=False, min_value=1, max_value=2_147_483_647)
        purpose = lookup_field(required=False, max_length=100)

        def validate(self, attrs: dict) -> dict:
            if not any(attrs.get(name) is not None for name in ("model", "user_id", "purpose")):
                raise serializers.ValidationError(
                    {"model": [_("Give a model, a user_id or a purpose (or several): the call to check.")]}
                )
            return attrs

    class OutputSerializer(serializers.Serializer):
        model = serializers.CharField(allow_null=True)
        user_id = serializers.IntegerField(allow_null=True)
        within_budget = serializers.BooleanField(
            help_text="False when any budget that applies (model, global, user, purpose) is used up."
        )
        period_start = serializers.DateField()
        period_end = serializers.DateField(help_text="Exclusive.")
        model_budget = BudgetCheckStatusSerializer(allow_null=True, help_text="Null: no model given.")
        global_budget = BudgetCheckStatusSerializer(allow_null=True, help_text="Null: no global budget.")
        user_budget = BudgetCheckStatusSerializer(
            allow_null=True, help_text="The user's own budget, else the default for every user; null: no user_id."
        )
        purpose_budget = BudgetCheckStatusSerializer(allow_null=True, help_text="Null: no purpose given.")
        budgets = BudgetEntrySerializer(many=True, help_text="Every budget set that applies, with its forecast.")
        global_forecast = ForecastSerializer(help_text="Every call's month (with a global budget or not).")

        class Meta:
            ref_name = "BudgetCheck"

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: _envelope("BudgetCheckResponse", OutputSerializer()), 404: ErrorResponseSerializer},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        model_name = query.get("model")
        pricing = None
        if model_name is not None:
            pricing = model_pricing_for_name(name=model_name)  # Snapshot and gateway names too.
            if pricing is None:
                raise ApiError(
                    _("Unknown model %(model)s: it has no price entry, so it has no budget.")
                    % {"model": repr(model_name)},
                    code="unknown_model",
                    status_code=status.HTTP_404_NOT_FOUND,
                    field="model",
                )
        now = timezone.now()
        check = budget_check(pricing=pricing, user_id=query.get("user_id"), purpose=query.get("purpose"), now=now)
        shows_purpose = CanReadStats().has_permission(request, self)
        start, end = month_bounds(now)

        def status_data(watched: WatchedBudget | None, *, set_only: bool = False) -> dict | None:
            if watched is None or (set_only and watched.status.budget is None):
                return None
            return _status_data(watched.status) | {
                "forecast": _forecast_data(watched.status, check.forecasts[watched.key])
            }

        budgets = [
            status_data(watched)
            | {
                "type": BUDGET_TYPES[watched.alert_type],
                "scope": None
                if watched.alert_type == AlertType.PURPOSE_BUDGET and not shows_purpose
                else watched.scope,
                "is_default": watched.is_default,
            }
            for watched in check.budgets
        ]
        data = {
            "model": pricing.model_name if pricing else None,
            "user_id": query.get("user_id"),
            "within_budget": all(watched.status.within_budget for watched in check.budgets),
            "period_start": start.date(),
            "period_end": end.date(),
            "model_budget": status_data(check.model),
            "global_budget": status_data(check.global_budget, set_only=True),
            "user_budget": status_data(check.user),
            "purpose_budget": status_data(check.purpose),
            "budgets": budgets,
            "global_forecast": _forecast_data(check.global_budget.status, check.forecasts[check.global_budget.key]),
        }
        return success_response(self.OutputSerializer(data).data)


def _forecast_data(budget_status: BudgetStatus, forecast: Forecast) -> dict:
    budget = budget_status.budget_reporting
    return {
        "method": forecast.method,
        "daily_pace": money_display(forecast.daily_pace),
        "projected": money_display(forecast.projected),
        "projected_percent": None if budget is None else capped_percent(forecast.projected, budget),
        "reaches_on": forecast.reaches_on,
        "already_reached": forecast.already_reached,
        "history_days": forecast.history_days,
        "currency": budget_status.currency,
    }


def _status_data(budget_status: BudgetStatus) -> dict:
    return {
        "budget": None if budget_status.budget is None else money_display(budget_status.budget),
        "budget_currency": budget_status.budget_currency,
        "budget_reporting": (
            None if budget_status.budget_reporting is None else money_display(budget_status.budget_reporting)
        ),
        "rate": budget_status.rate,
        "convertible": budget_status.convertible,
        "spent": money_display(budget_status.spent),
        "unconverted_calls": budget_status.unconverted_calls,
        "remaining": None if budget_status.remaining is None else money_display(budget_status.remaining),
        "percent_used": budget_status.percent_used,
        "currency": budget_status.currency,
        "within_budget": budget_status.within_budget,
    }
