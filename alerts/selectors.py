"""Reads for alerts: budgets and spend, model activity from the rollups, the alert list."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import router
from django.db.models import Case, CharField, DecimalField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_noop

from alerts.forecast import Forecast, day_elapsed, forecast_month, history_start
from alerts.models import GLOBAL_SCOPE, AlertType, BudgetAlert, GlobalBudget, PurposeBudget, UserBudget
from core.compiled import compiled_values
from core.money import PERCENT_DECIMAL_PLACES, PERCENT_MAX_DIGITS, ZERO, percent_of
from core.timeutils import day_bounds, month_bounds, month_start
from pricing.models import ExchangeRate, ModelPricing
from pricing.selectors import Conversion, RateBook, reporting_currency
from usage.models import UsageLog
from usage.rollup_sums import RollupDelta
from usage.selectors import USAGE_SPEND_TABLES, budget_rates_now, usage_month_sums
from usage.window_sums import (
    UsageFilters,
    local_midnights,
    usage_log_sums_by_key,
    usage_sums_by_window,
    usage_sums_over_spans,
)

# Largest percentage the alerts' usage_percentage column holds (e.g. 9999999.99).
MAX_PERCENT = Decimal(10 ** (PERCENT_MAX_DIGITS - PERCENT_DECIMAL_PLACES)) - Decimal(1).scaleb(-PERCENT_DECIMAL_PLACES)


def capped_percent(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole in percent, capped to what the column holds; any spend against a zero budget is the cap."""
    if not whole:
        return MAX_PERCENT if part > 0 else ZERO
    return min(percent_of(part, whole), MAX_PERCENT)


@dataclass(frozen=True)
class BudgetStatus:
    """Spend against one monthly budget in the current calendar month, compared in the reporting
    currency (`currency`): the budget as stated (`budget` in `budget_currency`) converted at the rate
    in force now (`budget_reporting`, at `rate`), against the month's reporting cost (`spent`). Calls
    with no rate into the reporting currency are not in `spent`: `unconverted_calls` counts them. A
    budget with no rate in force (`convertible` false) is never compared: no percentage, no alert."""

    budget: Decimal | None
    spent: Decimal
    currency: str
    period_start: date
    budget_currency: str | None = None
    budget_reporting: Decimal | None = None
    rate: Decimal | None = None
    unconverted_calls: int = 0

    @property
    def convertible(self) -> bool:
        return self.budget is None or self.budget_reporting is not None

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget_reporting is None else max(self.budget_reporting - self.spent, ZERO)

    @property
    def percent_used(self) -> Decimal | None:
        return None if self.budget_reporting is None else capped_percent(self.spent, self.budget_reporting)

    @property
    def within_budget(self) -> bool:
        """False only when the spend has reached a comparable budget: a budget without a rate is not
        known to be used up (see convertible)."""
        return self.budget_reporting is None or self.spent < self.budget_reporting


def budget_status_of(
    *, budget: Decimal | None, budget_currency: str, month: RollupDelta, rates: RateBook, now: datetime
) -> BudgetStatus:
    """One budget this month: `budget` (in `budget_currency`) converted into the reporting currency
    at the rate in force `now`, against the month's sums `month`."""
    conversion = rates.convert(budget, budget_currency, now) if budget is not None else Conversion(None, None)
    return BudgetStatus(
        budget=budget,
        spent=month.reporting_cost,
        currency=rates.quote_currency,
        period_start=month_start(now),
        budget_currency=budget_currency,
        budget_reporting=conversion.amount,
        rate=None if conversion.rate is None else conversion.rate.rate,
        unconverted_calls=month.unconverted_calls,
    )


@dataclass(frozen=True)
class WatchedBudget:
    alert_type: str
    scope: str  # model name, GLOBAL_SCOPE, the user id (as text) or the purpose
    label: str
    status: BudgetStatus
    is_default: bool = False  # A user budget that is the default for every user (no override).

    @property
    def key(self) -> str:
        """What a forecast alert of this budget is stored under (BudgetAlert.model_name)."""
        return f"{self.alert_type}:{self.scope}"


def _prices_and_global_budget(include_global: bool) -> list[tuple]:
    """(model_name, label, currency, monthly_budget, global budget, global currency, budget_currency) of
    every priced model, the global budget (if set and asked for) on each row: one query, run on every
    ingestion batch, so compiled once (core.compiled)."""
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
        "model_name",
        "display_name",
        "currency",
        "monthly_budget",
        "global_budget",
        "global_currency",
        "budget_currency",
    )


def _global_budget_only() -> tuple[Decimal | None, str | None]:
    budget = GlobalBudget.objects.filter(pk=GlobalBudget.SINGLETON_ID, monthly_budget__isnull=False).first()
    return (None, None) if budget is None else (budget.monthly_budget, budget.currency)


def _month_total(in_month: dict[str, RollupDelta]) -> RollupDelta:
    return sum(in_month.values(), RollupDelta())


def budgets_to_evaluate(*, model_names: Collection[str], now: datetime, include_global: bool) -> list[WatchedBudget]:
    """The budgets of the given models, and the global budget, with this month's spend: what
    budget evaluation compares on every ingestion batch, in a few queries (prices with the global
    budget, the rates in force now when a budget is in another currency than the reporting one, then
    the month's sums from the rollups). Same figures as model_budget_status / global_budget_status.

    The global budget counts every model's calls (priced in any currency, or unknown models' provider
    costs) through their reporting cost."""
    rows = _prices_and_global_budget(include_global)
    wanted = set(model_names)
    budgeted = [row for row in rows if row[0] in wanted and row[3] is not None]
    if rows:
        global_budget, global_currency = rows[0][4], rows[0][5]
    else:  # No priced model: the global budget may still count unknown models' provider costs.
        global_budget, global_currency = _global_budget_only() if include_global else (None, None)
    if not budgeted and global_budget is None:
        return []
    currencies = {row[6] or row[2] for row in budgeted}
    if global_budget is not None:
        currencies.add(global_currency)
    rates = budget_rates_now(currencies=currencies, now=now)
    # Every model's month when the global budget is watched (it sees them all): one read either way.
    in_month = usage_month_sums(
        model_names=None if global_budget is not None else {row[0] for row in budgeted}, now=now
    )
    watched = [
        WatchedBudget(
            alert_type=AlertType.MODEL_BUDGET.value,
            scope=name,
            label=label or name,
            status=budget_status_of(
                budget=budget,
                budget_currency=budget_currency or currency,
                month=in_month.get(name, RollupDelta()),
                rates=rates,
                now=now,
            ),
        )
        for name, label, currency, budget, _global_budget, _global_currency, budget_currency in budgeted
    ]
    if global_budget is not None:
        status = budget_status_of(
            budget=global_budget, budget_currency=global_currency, month=_month_total(in_month), rates=rates, now=now
        )
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
    currency = pricing.monthly_budget_currency
    return budget_status_of(
        budget=pricing.monthly_budget,
        budget_currency=currency,
        month=usage_month_sums(model_names=[pricing.model_name], now=now).get(pricing.model_name, RollupDelta()),
        rates=budget_rates_now(currencies=[currency] if pricing.monthly_budget is not None else [], now=now),
        now=now,
    )


def global_budget_get() -> GlobalBudget | None:
    return GlobalBudget.objects.filter(pk=GlobalBudget.SINGLETON_ID).first()


def global_budget_status(*, now: datetime) -> BudgetStatus | None:
    """The global budget and this month's spend of every model, in the reporting currency, or None."""
    budget, currency = _global_budget_only()
    if budget is None:
        return None
    return budget_status_of(
        budget=budget,
        budget_currency=currency,
        month=_month_total(usage_month_sums(model_names=None, now=now)),
        rates=budget_rates_now(currencies=[currency], now=now),
        now=now,
    )


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
            # In the reporting currency, as every alert threshold (unconverted calls add nothing).
            cost_today=today[name].reporting_cost if name in today else ZERO,
            cost_trailing=trailing[name].reporting_cost if name in trailing else ZERO,
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
BUDGET_TABLES = (
    ModelPricing._meta.db_table,
    GlobalBudget._meta.db_table,
    ExchangeRate._meta.db_table,
    *USAGE_SPEND_TABLES,
)


# The tables dimension_budgets_this_month reads (the month's spend per user and purpose: the log).
DIMENSION_BUDGET_TABLES = (UserBudget._meta.db_table, PurposeBudget._meta.db_table, UsageLog._meta.db_table)


def budgets_this_month(*, now: datetime) -> dict:
    """The global budget's status and each model budget's, each with its forecast, for the cost page's
    budgets panel: the same figures as budget/check, in one read of the month, one of the rates and
    one of the forecast's days (the rollups: shown while the usage log is missing)."""
    pricings = list(ModelPricing.objects.filter(monthly_budget__isnull=False).order_by("model_name"))
    global_budget, global_currency = _global_budget_only()
    currencies = {pricing.monthly_budget_currency for pricing in pricings}
    if global_budget is not None:
        currencies.add(global_currency)
    rates = budget_rates_now(currencies=currencies, now=now)
    in_month = usage_month_sums(
        model_names=None if global_budget is not None else [pricing.model_name for pricing in pricings], now=now
    )
    watched = [
        WatchedBudget(
            alert_type=AlertType.MODEL_BUDGET.value,
            scope=pricing.model_name,
            label=str(pricing),
            status=budget_status_of(
                budget=pricing.monthly_budget,
                budget_currency=pricing.monthly_budget_currency,
                month=in_month.get(pricing.model_name, RollupDelta()),
                rates=rates,
                now=now,
            ),
        )
        for pricing in pricings
    ]
    global_watched = None
    if global_budget is not None:
        global_watched = WatchedBudget(
            alert_type=AlertType.GLOBAL_BUDGET.value,
            scope=GLOBAL_SCOPE,
            label=gettext_noop("All models together"),
            status=budget_status_of(
                budget=global_budget,
                budget_currency=global_currency,
                month=_month_total(in_month),
                rates=rates,
                now=now,
            ),
        )
    forecasts = budget_forecasts(watched=[*watched, *([global_watched] if global_watched else [])], now=now)
    return {
        "global": global_watched.status if global_watched else None,
        "global_forecast": forecasts[global_watched.key] if global_watched else None,
        "models": [
            {
                "name": budget.label,
                "model_name": budget.scope,
                "status": budget.status,
                "forecast": forecasts[budget.key],
            }
            for budget in watched
        ],
    }


def dimension_budgets_this_month(*, now: datetime) -> dict:
    """The users' own budgets and the purposes' budgets, each with its forecast, for the cost page (the
    default user budget applies to every user: its row shows no spend of its own)."""
    user_ids, purposes = explicit_dimension_budgets()
    watched = dimension_budgets_to_evaluate(user_ids=user_ids, purposes=purposes, now=now)
    forecasts = budget_forecasts(watched=watched, now=now)
    rows = [{"budget": budget, "status": budget.status, "forecast": forecasts[budget.key]} for budget in watched]
    default = UserBudget.objects.filter(user_id__isnull=True).first()
    return {
        "users": [row for row in rows if row["budget"].alert_type == AlertType.USER_BUDGET],
        "purposes": [row for row in rows if row["budget"].alert_type == AlertType.PURPOSE_BUDGET],
        "default_user_budget": default,
    }


# --- Budgets per user and per purpose ---------------------------------------------------------------


def user_budgets_for(user_ids: Collection[int]) -> dict[int, tuple[Decimal, str, bool]]:
    """user id -> (monthly budget, its currency, whether it is the default) for each of `user_ids`
    with a budget: its own override, else the default for every user. One small query."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    wanted = Q(user_id__in=ids) | Q(user_id__isnull=True)
    rows = UserBudget.objects.filter(wanted).values_list("user_id", "monthly_budget", "currency")
    default, overrides = None, {}
    for user_id, amount, currency in rows:
        if user_id is None:
            default = (amount, currency, True)
        else:
            overrides[user_id] = (amount, currency, False)
    return {user_id: overrides.get(user_id, default) for user_id in ids if user_id in overrides or default}


def purpose_budgets_for(purposes: Collection[str]) -> dict[str, tuple[Decimal, str]]:
    """purpose -> (monthly budget, its currency) for each of `purposes` with a budget."""
    names = sorted({purpose for purpose in purposes if purpose})
    if not names:
        return {}
    rows = PurposeBudget.objects.filter(purpose__in=names).values_list("purpose", "monthly_budget", "currency")
    return {purpose: (amount, currency) for purpose, amount, currency in rows}


def usage_month_sums_by_key(*, key: str, values: Collection, now: datetime) -> dict:
    """The budget month's sums of each user id or purpose among `values` (keys with calls in it).

    No rollup carries users or purposes yet, so this reads the log, bounded by the keys and the month
    through its partial (key, timestamp) indexes (usage.window_sums.usage_log_sums_by_key): the rows of
    those keys in the month, never the whole log."""
    start, end = month_bounds(now)
    return usage_log_sums_by_key(key=key, values=values, boundaries=[start, end])[0]


def dimension_budgets_to_evaluate(
    *, user_ids: Collection[int], purposes: Collection[str], now: datetime
) -> list[WatchedBudget]:
    """The budgets of the given users (their own, else the default) and purposes, with this month's
    spend (reporting cost): two small queries for the budgets, and for the keys that have one, a
    read of the rates and one of their month's rows."""
    users = user_budgets_for(user_ids)
    purpose_budgets = purpose_budgets_for(purposes)
    if not users and not purpose_budgets:
        return []
    currencies = {currency for _amount, currency, _default in users.values()}
    currencies |= {currency for _amount, currency in purpose_budgets.values()}
    rates = budget_rates_now(currencies=currencies, now=now)
    user_months = usage_month_sums_by_key(key="user_id", values=users, now=now) if users else {}
    purpose_months = usage_month_sums_by_key(key="purpose", values=purpose_budgets, now=now) if purpose_budgets else {}
    watched = [
        WatchedBudget(
            alert_type=AlertType.USER_BUDGET.value,
            scope=str(user_id),
            label=str(user_id),
            status=budget_status_of(
                budget=amount,
                budget_currency=currency,
                month=user_months.get(user_id, RollupDelta()),
                rates=rates,
                now=now,
            ),
            is_default=is_default,
        )
        for user_id, (amount, currency, is_default) in sorted(users.items())
    ]
    watched += [
        WatchedBudget(
            alert_type=AlertType.PURPOSE_BUDGET.value,
            scope=purpose,
            label=purpose,
            status=budget_status_of(
                budget=amount,
                budget_currency=currency,
                month=purpose_months.get(purpose, RollupDelta()),
                rates=rates,
                now=now,
            ),
        )
        for purpose, (amount, currency) in sorted(purpose_budgets.items())
    ]
    return watched


def explicit_dimension_budgets() -> tuple[list[int], list[str]]:
    """The users with a budget of their own and the purposes with a budget (the cron path evaluates
    these; the default user budget is evaluated at ingestion for each batch's users)."""
    users = list(UserBudget.objects.filter(user_id__isnull=False).values_list("user_id", flat=True))
    return users, list(PurposeBudget.objects.values_list("purpose", flat=True))


def unbudgeted_status(*, month: RollupDelta, now: datetime) -> BudgetStatus:
    """A scope without a budget: its spend this month (what the forecast is given)."""
    return BudgetStatus(
        budget=None,
        spent=month.reporting_cost,
        currency=reporting_currency(),
        period_start=month_start(now),
        unconverted_calls=month.unconverted_calls,
    )


# --- Forecast ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastDays:
    """The local days a forecast made at `now` reads: history_start(today) .. today, in TIME_ZONE."""

    today: date
    boundaries: list[datetime]
    elapsed: Decimal
    month_end: date

    @classmethod
    def at(cls, now: datetime) -> "ForecastDays":
        today_start, today_end = day_bounds(now)
        today = today_start.date()
        first = history_start(today)
        boundaries = local_midnights(first_day=first, days=(today - first).days + 1, zone=today_start.tzinfo)
        return cls(
            today=today,
            boundaries=boundaries,
            elapsed=day_elapsed(now, today_start, today_end),
            month_end=month_bounds(now)[1].date(),
        )

    def daily(self, windows: list[RollupDelta]) -> dict[date, Decimal]:
        first = self.boundaries[0].date()
        return {first + timedelta(days=n): sums.reporting_cost for n, sums in enumerate(windows) if sums.calls}


def _daily_by_scope(watched: Collection[WatchedBudget], days: ForecastDays) -> dict[str, dict[date, Decimal]]:
    """Each watched budget's daily reporting cost over the forecast's days: one read per kind."""
    by_kind: dict[str, set[str]] = {}
    for budget in watched:
        by_kind.setdefault(budget.alert_type, set()).add(budget.scope)
    daily: dict[str, dict[date, Decimal]] = {}
    n = len(days.boundaries) - 1
    if AlertType.GLOBAL_BUDGET in by_kind or AlertType.MODEL_BUDGET in by_kind:
        # One read for both: every model's days when the global budget is watched (it sees them all).
        names = by_kind.get(AlertType.MODEL_BUDGET, set())
        every_model = AlertType.GLOBAL_BUDGET in by_kind
        filters = UsageFilters(model_names=None if every_model else frozenset(names))
        windows = usage_sums_by_window(boundaries=days.boundaries, filters=filters)
        if every_model:
            totals = [sum(window.values(), RollupDelta()) for window in windows]
            daily[f"{AlertType.GLOBAL_BUDGET}:{GLOBAL_SCOPE}"] = days.daily(totals)
        for name in names:
            daily[f"{AlertType.MODEL_BUDGET}:{name}"] = days.daily([w.get(name, RollupDelta()) for w in windows])
    for alert_type, key, convert in (
        (AlertType.USER_BUDGET, "user_id", int),
        (AlertType.PURPOSE_BUDGET, "purpose", str),
    ):
        if alert_type in by_kind:
            values = {convert(scope) for scope in by_kind[alert_type]}
            windows = usage_log_sums_by_key(key=key, values=values, boundaries=days.boundaries)
            for value in values:
                daily[f"{alert_type}:{value}"] = days.daily([w.get(value, RollupDelta()) for w in windows[:n]])
    return daily


def budget_forecasts(*, watched: Collection[WatchedBudget], now: datetime) -> dict[str, Forecast]:
    """WatchedBudget.key -> the forecast of its scope's month (alerts.forecast: the method), compared
    with the converted budget (no reach date for a budget without one, or without a rate)."""
    if not watched:
        return {}
    days = ForecastDays.at(now)
    daily = _daily_by_scope(watched, days)
    return {
        budget.key: forecast_month(
            daily=daily.get(budget.key, {}),
            today=days.today,
            today_elapsed=days.elapsed,
            month_end=days.month_end,
            spent=budget.status.spent,
            budget=budget.status.budget_reporting,
        )
        for budget in watched
    }


@dataclass(frozen=True)
class BudgetCheck:
    """What budget/check answers: each budget that applies to a call of the model, user and purpose
    given (model, global, user, purpose; a scope asked about without a budget is there with budget
    None), and each one's forecast (WatchedBudget.key -> Forecast)."""

    model: WatchedBudget | None
    global_budget: WatchedBudget | None
    user: WatchedBudget | None
    purpose: WatchedBudget | None
    forecasts: dict[str, Forecast]

    @property
    def budgets(self) -> list[WatchedBudget]:
        present = [self.model, self.global_budget, self.user, self.purpose]
        return [budget for budget in present if budget is not None and budget.status.budget is not None]


def budget_check(
    *, pricing: ModelPricing | None, user_id: int | None, purpose: str | None, now: datetime
) -> BudgetCheck:
    model = None
    if pricing is not None:
        model = WatchedBudget(
            alert_type=AlertType.MODEL_BUDGET.value,
            scope=pricing.model_name,
            label=str(pricing),
            status=model_budget_status(pricing=pricing, now=now),
        )
    global_status = global_budget_status(now=now)
    global_watched = WatchedBudget(
        alert_type=AlertType.GLOBAL_BUDGET.value,
        scope=GLOBAL_SCOPE,
        label=gettext_noop("All models together"),
        status=global_status
        or unbudgeted_status(month=_month_total(usage_month_sums(model_names=None, now=now)), now=now),
    )
    dimension = {
        budget.alert_type: budget
        for budget in dimension_budgets_to_evaluate(
            user_ids=[user_id] if user_id is not None else [], purposes=[purpose] if purpose else [], now=now
        )
    }
    user = dimension.get(AlertType.USER_BUDGET)
    if user is None and user_id is not None:
        month = usage_month_sums_by_key(key="user_id", values=[user_id], now=now).get(user_id, RollupDelta())
        user = WatchedBudget(
            alert_type=AlertType.USER_BUDGET.value,
            scope=str(user_id),
            label=str(user_id),
            status=unbudgeted_status(month=month, now=now),
        )
    purpose_budget = dimension.get(AlertType.PURPOSE_BUDGET)
    if purpose_budget is None and purpose:
        month = usage_month_sums_by_key(key="purpose", values=[purpose], now=now).get(purpose, RollupDelta())
        purpose_budget = WatchedBudget(
            alert_type=AlertType.PURPOSE_BUDGET.value,
            scope=purpose,
            label=purpose,
            status=unbudgeted_status(month=month, now=now),
        )
    watched = [budget for budget in (model, global_watched, user, purpose_budget) if budget is not None]
    return BudgetCheck(
        model=model,
        global_budget=global_watched,
        user=user,
        purpose=purpose_budget,
        forecasts=budget_forecasts(watched=watched, now=now),
    )
