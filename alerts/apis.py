"""Alert list for the cost page and clients; the budget preflight for callers about to spend."""

from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.views import APIView

from alerts.models import AlertLevel, AlertStatus, AlertType, BudgetAlert
from alerts.selectors import BudgetStatus, budget_alert_list, global_budget_status, model_budget_status
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


class BudgetCheckApi(APIView):
    """GET /api/v1/budget/check?model=<name>: may a caller still spend on this model this month?

    Callers that spend hold write_usage keys, so those may ask too (as well as read keys and staff)."""

    permission_classes = [CanReadStats | CanWriteUsage]

    class InputSerializer(serializers.Serializer):
        model = lookup_field(max_length=100)

    class OutputSerializer(serializers.Serializer):
        model = serializers.CharField()
        within_budget = serializers.BooleanField(help_text="False when the model's or the global budget is used up.")
        period_start = serializers.DateField()
        period_end = serializers.DateField(help_text="Exclusive.")
        model_budget = BudgetStatusSerializer()
        global_budget = BudgetStatusSerializer(allow_null=True)

        class Meta:
            ref_name = "BudgetCheck"

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: _envelope("BudgetCheckResponse", OutputSerializer()), 404: ErrorResponseSerializer},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        model_name = params.validated_data["model"]
        pricing = model_pricing_for_name(name=model_name)  # Snapshot and gateway names too.
        if pricing is None:
            raise ApiError(
                _("Unknown model %(model)s: it has no price entry, so it has no budget.") % {"model": repr(model_name)},
                code="unknown_model",
                status_code=status.HTTP_404_NOT_FOUND,
                field="model",
            )
        now = timezone.now()
        model_status = model_budget_status(pricing=pricing, now=now)
        global_status = global_budget_status(now=now)
        start, end = month_bounds(now)
        data = {
            "model": pricing.model_name,
            "within_budget": _within(model_status) and _within(global_status),
            "period_start": start.date(),
            "period_end": end.date(),
            "model_budget": _status_data(model_status),
            "global_budget": _status_data(global_status) if global_status else None,
        }
        return success_response(self.OutputSerializer(data).data)


def _within(budget_status: BudgetStatus | None) -> bool:
    return budget_status is None or budget_status.within_budget


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
