"""Reads for alerts: budgets and spend, model activity from the rollups, the alert list."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import router
from django.db.models import Case, CharField, DecimalField, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_noop

from alerts.models import GLOBAL_SCOPE, AlertType, BudgetAlert, GlobalBudget
from core.compiled import compiled_values
from core.money import PERCENT_DECIMAL_PLACES, PERCENT_MAX_DIGITS, ZERO, percent_of
from core.timeutils import day_bounds, month_start
from pricing.models import ModelPricing
from pricing.selectors import model_currencies
from usage.selectors import USAGE_SPEND_TABLES, usage_month_spend
from usage.window_sums import UsageFilters, usage_sums_over_spans

# Largest percentage the alerts' usage_percentage column holds (e.g. 9999999.99).
MAX_PERCENT = Decimal(10 ** (PERCENT_MAX_DIGITS - PERCENT_DECIMAL_PLACES)) - Decimal(1).scaleb(-PERCENT_DECIMAL_PLACES)


def capped_percent(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole in percent, capped to what the column holds; any spend against a zero budget is the cap."""
    if not whole:
        return MAX_PERCENT if part > 0 else ZERO
    return min(percent_of(part, whole), MAX_PERCENT)


@dataclass(frozen=True)
class BudgetStatus:
    """Spend against one monthly budget in the current calendar month."""

    budget: Decimal | None
    spent: Decimal
    currency: str
    period_start: date

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget is None else max(self.budget - self.spent, ZERO)

    @property
    def percent_used(self) -> Decimal | None:
        return None if self.budget is None else capped_percent(self.spent, self.budget)

    @property
    def within_budget(self) -> bool:
        return self.budget is None or self.spent < self.budget


@dataclass(frozen=True)
class WatchedBudget:
    alert_type: str
    scope: str  # model name, or GLOBAL_SCOPE
    label: str
    status: BudgetStatus


def _priced_in(currency_of: dict[str, str], currency: str) -> list[str]:
    """The models priced in `currency`: those whose spend the global budget in it counts."""
    return [name for name, priced_in in currency_of.items() if priced_in == currency]


def _prices_and_global_budget(include_global: bool) -> list[tuple]:
    """(model_name, label, currency, monthly_budget, global budget, global currency) of every priced
    model, the global budget (if set and asked for) on each row: one query, run on every ingestion
    batch, so compiled once (core.compiled)."""
    name = "alerts.prices_and_global_budget" + ("" if include_global else ".no_global")
    using = router.db_for_read(ModelPricing)  # Where the ORM would read it.
    return compiled_values(name, lambda: _prices_and_global_budget_query(include_global), using=using)


def _prices_and_global_budget_query(include_global: bool) -> QuerySet:
    rows = ModelPricing.objects.order_by("model_name")
    if include_global:
        budget = GlobalBudget.objects.filter(pk=GlobalBudget.SINGLETON_ID, monthly_budget__isnull=False)
        rows = rows.annotate(
            global_budget=Subquery(budget.values("monthly_budget")[:1]),
            global_currency=Subquery(budget.values("currency")[:1]),
        )
    else:
        rows = rows.annotate(
            global_budget=Value(None, output_field=DecimalField()),
            global_currency=Value(None, output_field=CharField()),
        )
    return rows.values_list(
        "model_name", "display_name", "currency", "monthly_budget", "global_budget", "global_currency"
    )


def budgets_to_evaluate(*, model_names: Collection[str], now: datetime, include_global: bool) -> list[WatchedBudget]:
    """The budgets of the given models, and the global budget, with this month's spend: what
    budget evaluation compares on every ingestion batch, in two queries (prices with the global
    budget, then the month's spend from the rollups). Same figures as model_budget_status / global_budget_status."""
    period_start = month_start(now)
    rows = _prices_and_global_budget(include_global)
    wanted = set(model_names)
    budgeted = [row for row in rows if row[0] in wanted and row[3] is not None]
    global_budget, global_currency = (rows[0][4], rows[0][5]) if rows else (None, None)
    in_global = [] if global_budget is None else _priced_in({row[0]: row[2] for row in rows}, global_currency)
    spent = usage_month_spend(model_names={row[0] for row in budgeted} | set(in_global), now=now)
    watched = [
        WatchedBudget(
            alert_type=AlertType.MODEL_BUDGET.value,
            scope=name,
            label=label or name,
            status=BudgetStatus(
                budget=budget, spent=spent.get(name, ZERO), currency=currency, period_start=period_start
            ),
        )
        for name, label, currency, budget, _global_budget, _global_currency in budgeted
    ]
    if global_budget is not None:
        total = sum((spent.get(name, ZERO) for name in in_global), ZERO)
        status = BudgetStatus(budget=global_budget, spent=total, currency=global_currency, period_start=period_start)
        watched.append(
            WatchedBudget(
                alert_type=AlertType.GLOBAL_BUDGET.value,
                scope=GLOBAL_SCOPE,
                label=gettext_noop("All models together"),
                status=status,
            )
        )
    return watched


def model_budget_status(*, pricing: ModelPricing, now: datetime) -> BudgetStatus:
    period_start = month_start(now)
    return BudgetStatus(
        budget=pricing.monthly_budget,
        spent=usage_month_spend(model_names=[pricing.model_name], now=now).get(pricing.model_name, ZERO),
        currency=pricing.currency,
        period_start=period_start,
    )


def global_budget_get() -> GlobalBudget | None:
    return GlobalBudget.objects.filter(pk=GlobalBudget.SINGLETON_ID).first()


def global_budget_status(*, now: datetime) -> BudgetStatus | None:
    """The global budget and this month's spend of all models in its currency, or None."""
    budget = GlobalBudget.objects.filter(pk=GlobalBudget.SINGLETON_ID, monthly_budget__isnull=False).first()
    if budget is None:
        return None
    period_start = month_start(now)
    in_currency = _priced_in(model_currencies(), budget.currency)
    spent = sum(usage_month_spend(model_names=in_currency, now=now).values(), ZERO)
    return BudgetStatus(budget=budget.monthly_budget, spent=spent, currency=budget.currency, period_start=period_start)


@dataclass(frozen=True)
class ModelActivity:
    """A model's calls in the error-rate window, and its cost today and over the trailing days."""

    calls_in_window: int
    failed_in_window: int
    cost_today: Decimal
    cost_trailing: Decimal

    def __add__(self, other: "ModelActivity") -> "ModelActivity":
        return ModelActivity(
            calls_in_window=self.calls_in_window + other.calls_in_window,
            failed_in_window=self.failed_in_window + other.failed_in_window,
            cost_today=self.cost_today + other.cost_today,
            cost_trailing=self.cost_trailing + other.cost_trailing,
        )


@dataclass(frozen=True)
class ActivityWindows:
    window_start: datetime
    today_start: datetime
    trailing_start: datetime
    until: datetime
    trailing_days: int
    day: date


def activity_windows(*, now: datetime) -> ActivityWindows:
    """Bounds in whole UTC hours (the rollup grain): the error-rate window covers at least the last
    AICOST_ERROR_RATE_WINDOW_HOURS hours; days are calendar days in TIME_ZONE."""
    today_start, _ = day_bounds(now)
    trailing_days = settings.AICOST_SPEND_SPIKE_TRAILING_DAYS
    trailing_start = datetime.combine(
        today_start.date() - timedelta(days=trailing_days), datetime.min.time(), tzinfo=today_start.tzinfo
    )
    window_hours = max(settings.AICOST_ERROR_RATE_WINDOW_HOURS, 1)
    return ActivityWindows(
        window_start=_hour_floor(now - timedelta(hours=window_hours)),
        today_start=_hour_floor(today_start),
        trailing_start=_hour_floor(trailing_start),
        until=now,
        trailing_days=trailing_days,
        day=today_start.date(),
    )


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def model_activity(*, windows: ActivityWindows, model_names: Collection[str] | None) -> dict[str, ModelActivity]:
    """Each model's activity (with calls in the windows) through the read path, in one statement.

    The windows are whole hours (the current hour in full: `until` rounded up to the hour), so the
    read needs no raw-log edge."""
    until = _hour_floor(windows.until) + timedelta(hours=1)
    filters = UsageFilters(model_names=None if model_names is None else frozenset(model_names))
    in_window, today, trailing = usage_sums_over_spans(
        spans=[
            (windows.window_start, until),
            (windows.today_start, until),
            (windows.trailing_start, windows.today_start),
        ],
        filters=filters,
    )
    activity: dict[str, ModelActivity] = {}
    for name in sorted(in_window.keys() | today.keys() | trailing.keys()):
        calls = in_window.get(name)
        activity[name] = ModelActivity(
            calls_in_window=calls.calls if calls else 0,
            failed_in_window=calls.calls - calls.successful_calls if calls else 0,
            cost_today=today[name].cost if name in today else ZERO,
            cost_trailing=trailing[name].cost if name in trailing else ZERO,
        )
    return activity


def _alert_currency() -> Coalesce:
    """The currency of an alert's money figures: the one its budget was in (stored with budget
    alerts), else the model's (error rate, spend spike: the model's own costs), else the global budget's."""
    return Coalesce(
        KT("details__currency"),
        Subquery(ModelPricing.objects.filter(model_name=OuterRef("model_name")).values("currency")[:1]),
        Case(When(model_name=GLOBAL_SCOPE, then=Subquery(GlobalBudget.objects.values("currency")[:1]))),
        output_field=CharField(),
    )


def budget_alert_list(
    *,
    is_resolved: bool | None = None,
    status: str | None = None,
    model_name: str | None = None,
    alert_type: str | None = None,
    alert_level: str | None = None,
) -> QuerySet[BudgetAlert]:
    alerts = BudgetAlert.objects.annotate(currency=_alert_currency()).order_by("-created_at", "-id")
    filters = {
        "is_resolved": is_resolved,
        "status": status,
        "model_name": model_name,
        "alert_type": alert_type,
        "alert_level": alert_level,
    }
    return alerts.filter(**{name: value for name, value in filters.items() if value is not None})


# The tables budgets_this_month reads: the cost page shows budgets while the usage log is missing.
BUDGET_TABLES = (ModelPricing._meta.db_table, GlobalBudget._meta.db_table, *USAGE_SPEND_TABLES)


def budgets_this_month(*, now: datetime) -> dict:
    """The global budget's status and each model budget's, for the cost page's budgets panel."""
    models = [
        {"name": str(pricing), "status": model_budget_status(pricing=pricing, now=now)}
        for pricing in ModelPricing.objects.filter(monthly_budget__isnull=False).order_by("model_name")
    ]
    return {"global": global_budget_status(now=now), "models": models}
