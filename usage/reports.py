"""The stats and daily-trend answers the API and the cost page show, shaped from usage.window_sums.

Named time ranges, the filters a request resolves to, and the figures derived from the sums (rates,
shares, budget use). Querying stays in usage.window_sums.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple

from django.db import router
from django.utils.translation import gettext_lazy as _

from core.compiled import compiled_values
from core.db_routers import reading_from_replica
from core.money import ZERO, money_display, percent_of
from pricing.models import ModelPricing
from pricing.selectors import RateBook, model_names_of_provider, reporting_currency
from usage.rollup_sums import ROLLUP_SUMS, RollupDelta
from usage.selectors import budget_rates_now, usage_month_span, usage_month_sums
from usage.window_sums import UsageFilters, usage_sums_by_local_day, usage_sums_over_spans

TIME_RANGES = {
    "today": _("Today"),
    "24h": _("Last 24 hours"),
    "7d": _("Last 7 days"),
    "30d": _("Last 30 days"),
    "90d": _("Last 90 days"),
    "month": _("This month"),
    "all": _("All time"),
}
UNKNOWN_PROVIDER = "unknown"
# The token kinds beside prompt, completion, cached and reasoning tokens (tokens.md), each summed by
# the rollups and returned by stats (summary, models, providers) and by every day of the trend.
TOKEN_KIND_SUMS = (
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)


# The declared sums a day of the trend shows (_day_entry), read alone: not the price-currency cost,
# which cannot be added across models, nor the response times, which the trend does not show.
DAY_ENTRY_SUMS = tuple(s for s in ROLLUP_SUMS if s.name not in {"cost", "response_time_sum", "response_time_count"})


def _token_kinds(sums: RollupDelta) -> dict:
    return {name: getattr(sums, name) for name in TOKEN_KIND_SUMS}


def time_range_window(*, time_range: str, now: datetime, zone: tzinfo) -> tuple[datetime | None, datetime]:
    """[start, end) of a named range; calendar ranges (today, month) are in `zone`."""
    local_today = now.astimezone(zone).date()
    starts = {
        "today": lambda: datetime.combine(local_today, time.min, tzinfo=zone),
        "24h": lambda: now - timedelta(hours=24),
        "7d": lambda: now - timedelta(days=7),
        "30d": lambda: now - timedelta(days=30),
        "90d": lambda: now - timedelta(days=90),
        "month": lambda: datetime.combine(local_today.replace(day=1), time.min, tzinfo=zone),
        "all": lambda: None,
    }
    return starts[time_range](), now


def rates_of(sums: RollupDelta, *, own_currency: bool = False) -> dict:
    """The figures of a set of calls. `cost` is the reporting currency's (the sum of `reporting_cost`)
    wherever several models may be added (summary, providers), the model's own price currency's for
    one model (`own_currency`); calls whose cost has no rate into the reporting currency are counted
    in `unconverted_calls`, never added as 0."""
    return {
        "calls": sums.calls,
        "successful_calls": sums.successful_calls,
        "failed_calls": sums.calls - sums.successful_calls,
        "success_rate": percent_of(sums.successful_calls, sums.calls),
        "unpriced_calls": sums.unpriced_calls,
        "unconverted_calls": sums.unconverted_calls,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cached_tokens": sums.cached_tokens,
        "reasoning_tokens": sums.reasoning_tokens,
        **_token_kinds(sums),
        "cost": money_display(sums.cost if own_currency else sums.reporting_cost),
        "avg_response_time": (
            round(sums.response_time_sum / sums.response_time_count, 3) if sums.response_time_count else None
        ),
    }


def _total(parts: Iterable[RollupDelta]) -> RollupDelta:
    return sum(parts, RollupDelta())


class _Pricing(NamedTuple):
    """What stats show of a priced model (ModelPricing's fields of these names)."""

    model_name: str
    provider: str
    display_name: str
    currency: str
    monthly_budget: Decimal | None
    budget_currency: str

    @property
    def monthly_budget_currency(self) -> str:
        return self.budget_currency or self.currency  # As ModelPricing.monthly_budget_currency.


def _pricings_query():
    return ModelPricing.objects.order_by().values_list(*_Pricing._fields)


def _pricings_of(model_names: Collection[str]) -> dict[str, _Pricing]:
    """The priced models among `model_names`: every priced model read by a query compiled once per
    process (core.compiled; a stats answer has at most a few dozen models, the pricing table a few
    hundred rows), kept here for those asked about."""
    if not model_names:
        return {}
    using = router.db_for_read(ModelPricing)  # Where the ORM would read it (the replica, when reporting).
    rows = compiled_values("usage.reports.pricings", _pricings_query, using=using)
    return {row[0]: _Pricing._make(row) for row in rows if row[0] in model_names}


def _budget_use(pricing: _Pricing | None, month: RollupDelta, rates: RateBook, now: datetime) -> dict:
    """A model's budget this month: as stated (in its budget currency), converted into the reporting
    currency at the rate in force now, and compared there with the month's reporting cost. A budget
    with no rate in force cannot be compared: budget_convertible false, no percentage."""
    empty = {
        "monthly_budget": None,
        "budget_currency": None,
        "monthly_budget_reporting": None,
        "budget_convertible": None,
        "current_month_cost": money_display(month.cost),
        "current_month_reporting_cost": money_display(month.reporting_cost),
        "current_month_unconverted_calls": month.unconverted_calls,
        "budget_used_percent": None,
    }
    if pricing is None:
        return {**empty, "current_month_cost": ZERO}  # No price currency to state a model's cost in.
    if pricing.monthly_budget is None:
        return empty
    budget = rates.convert(pricing.monthly_budget, pricing.monthly_budget_currency, now).amount
    return {
        **empty,
        "monthly_budget": money_display(pricing.monthly_budget),
        "budget_currency": pricing.monthly_budget_currency,
        "monthly_budget_reporting": None if budget is None else money_display(budget),
        "budget_convertible": budget is not None,
        "budget_used_percent": percent_of(month.reporting_cost, budget) if budget else None,
    }


@reading_from_replica()
def usage_filters_resolve(
    *, model: str | None, provider: str | None, user_id: int | None, purpose: str | None
) -> UsageFilters:
    names: set[str] | None = None
    if model:
        names = {model}
    if provider:
        of_provider = model_names_of_provider(provider=provider)
        names = of_provider if names is None else names & of_provider
    return UsageFilters(
        model_names=None if names is None else frozenset(names), user_id=user_id, purpose=purpose or None
    )


def _window_and_month_sums(
    *, start: datetime | None, end: datetime, now: datetime, filters: UsageFilters
) -> tuple[dict[str, RollupDelta], dict[str, RollupDelta]]:
    """The sums per model over [start, end), and each of those models' sums this budget month
    (whatever the user or purpose filter): one read when the filters allow it."""
    month = usage_month_span(now=now)
    if filters.needs_raw_log:
        sums = usage_sums_over_spans(spans=[(start, end)], filters=filters)[0]
        return sums, usage_month_sums(model_names=sums, now=now)
    sums, in_month = usage_sums_over_spans(spans=[(start, end), month], filters=filters)
    return sums, in_month


@reading_from_replica()
def usage_stats(*, time_range: str, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The stats API's data: summary, one entry per model (platforms) and per provider.

    Every figure that adds models together is in the reporting currency (AICOST_REPORTING_CURRENCY),
    the sum of the calls' stored reporting_cost read from the same rollup rows as the rest (no rate
    is looked up to answer); each model also has its cost in its own price currency."""
    start, end = time_range_window(time_range=time_range, now=now, zone=zone)
    sums, in_month = _window_and_month_sums(start=start, end=end, now=now, filters=filters)
    pricing_by_model = _pricings_of(sums)
    reporting = reporting_currency()
    rates = budget_rates_now(
        currencies={p.monthly_budget_currency for p in pricing_by_model.values() if p.monthly_budget is not None},
        now=now,
    )
    total = _total(sums.values())
    platforms = []
    for model_name in sorted(sums, key=lambda name: (-sums[name].reporting_cost, -sums[name].cost, name)):
        pricing = pricing_by_model.get(model_name)
        platforms.append(
            {
                "provider": pricing.provider if pricing else UNKNOWN_PROVIDER,
                "model_name": model_name,
                "display_name": pricing.display_name if pricing else model_name,
                "currency": pricing.currency if pricing else None,
                **rates_of(sums[model_name], own_currency=True),
                "reporting_cost": money_display(sums[model_name].reporting_cost),
                "reporting_currency": reporting,
                "cost_share": percent_of(sums[model_name].reporting_cost, total.reporting_cost),
                **_budget_use(pricing, in_month.get(model_name, RollupDelta()), rates, now),
            }
        )
    by_provider: dict[str, list[RollupDelta]] = defaultdict(list)
    for platform in platforms:
        by_provider[platform["provider"]].append(sums[platform["model_name"]])
    # A provider's figures add its models' costs: in the reporting currency, like the summary's.
    providers = [
        {
            "provider": provider,
            **rates_of(_total(parts)),
            "cost_share": percent_of(_total(parts).reporting_cost, total.reporting_cost),
            "currency": reporting,
        }
        for provider, parts in sorted(by_provider.items(), key=lambda item: -_total(item[1]).reporting_cost)
    ]
    return {
        **stats_window(time_range=time_range, start=start, end=end),
        "summary": stats_summary(total),
        "platforms": platforms,
        "providers": providers,
    }


def stats_window(*, time_range: str, start: datetime | None, end: datetime) -> dict:
    """The stats answer's window: the named range, its label and its [start, end)."""
    return {
        "time_range": time_range,
        "time_label": str(TIME_RANGES[time_range]),  # In the request's language.
        "start": start,
        "end": end,
    }


def stats_summary(total: RollupDelta) -> dict:
    """The stats answer's summary of every call in the window, in the reporting currency."""
    summary = rates_of(total)
    return {
        "total_calls": summary["calls"],
        "successful_calls": summary["successful_calls"],
        "failed_calls": summary["failed_calls"],
        "success_rate": summary["success_rate"],
        "total_cost": summary["cost"],
        "unpriced_calls": summary["unpriced_calls"],
        "unconverted_calls": summary["unconverted_calls"],
        "prompt_tokens": summary["prompt_tokens"],
        "completion_tokens": summary["completion_tokens"],
        "cached_tokens": summary["cached_tokens"],
        "reasoning_tokens": summary["reasoning_tokens"],
        **{name: summary[name] for name in TOKEN_KIND_SUMS},
        "avg_response_time": summary["avg_response_time"],
        "currency": reporting_currency(),
    }


# The figures of a trend day that are its sums as they are (cost and failed_calls are derived).
_DAY_COUNTS = (
    "calls",
    "successful_calls",
    "unpriced_calls",
    "unconverted_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    *TOKEN_KIND_SUMS,
)
_day_counts = attrgetter(*_DAY_COUNTS)


def _day_entry(day: date, sums: RollupDelta, currency: str) -> dict:
    """One day of the trend (a year of them: only the figures it shows, not every rate)."""
    entry = dict(zip(_DAY_COUNTS, _day_counts(sums), strict=True))
    entry["date"] = day
    entry["cost"] = money_display(sums.reporting_cost)  # Every model's, in the reporting currency.
    entry["currency"] = currency
    entry["failed_calls"] = sums.calls - sums.successful_calls
    return entry


@reading_from_replica()
def usage_daily_trend(*, days: int, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The daily-trend API's data: every calendar day of the window, zero-filled, oldest first."""
    first_day = trend_first_day(days=days, now=now, zone=zone)
    sums = usage_sums_by_local_day(first_day=first_day, days=days, zone=zone, filters=filters, sums=DAY_ENTRY_SUMS)
    return trend_answer(days=days, zone=zone, first_day=first_day, sums=sums)


def trend_first_day(*, days: int, now: datetime, zone: tzinfo) -> date:
    """The first calendar day in `zone` of the trend's `days` days ending today."""
    return now.astimezone(zone).date() - timedelta(days=days - 1)


def trend_answer(*, days: int, zone: tzinfo, first_day: date, sums: dict[date, RollupDelta]) -> dict:
    """The daily trend's answer from the sums of each day with calls."""
    currency = reporting_currency()
    no_calls = _day_entry(first_day, RollupDelta(), currency)
    daily = []
    for n in range(days):
        day = first_day + timedelta(days=n)
        day_sums = sums.get(day)
        daily.append({**no_calls, "date": day} if day_sums is None else _day_entry(day, day_sums, currency))
    costs = [entry["cost"] for entry in daily]
    total_cost = money_display(sum(costs, ZERO))
    return {
        "days": days,
        "time_zone": str(zone),
        "daily_trend": daily,
        "summary": {
            "total_cost": total_cost,
            "avg_daily_cost": money_display(total_cost / days),
            "max_daily_cost": max(costs),
            "min_daily_cost": min(costs),
            "total_calls": sum(entry["calls"] for entry in daily),
            "unpriced_calls": sum(entry["unpriced_calls"] for entry in daily),
            "unconverted_calls": sum(entry["unconverted_calls"] for entry in daily),
            "currency": currency,
        },
    }
