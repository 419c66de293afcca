"""The stats and daily-trend answers the API and the cost page show, shaped from usage.window_sums.

Named time ranges, the filters a request resolves to, and the figures derived from the sums (rates,
shares, budget use). Querying stays in usage.window_sums.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from core.db_routers import reading_from_replica
from core.money import ZERO, money_display, percent_of
from pricing.models import ModelPricing
from pricing.selectors import model_names_of_provider
from usage.rollup_sums import RollupDelta
from usage.selectors import usage_month_span, usage_month_spend
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


def _rates(sums: RollupDelta) -> dict:
    return {
        "calls": sums.calls,
        "successful_calls": sums.successful_calls,
        "failed_calls": sums.calls - sums.successful_calls,
        "success_rate": percent_of(sums.successful_calls, sums.calls),
        "unpriced_calls": sums.unpriced_calls,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cached_tokens": sums.cached_tokens,
        "reasoning_tokens": sums.reasoning_tokens,
        **_token_kinds(sums),
        "cost": money_display(sums.cost),
        "avg_response_time": (
            round(sums.response_time_sum / sums.response_time_count, 3) if sums.response_time_count else None
        ),
    }


def _total(parts: Iterable[RollupDelta]) -> RollupDelta:
    return sum(parts, RollupDelta())


def _budget_use(pricing: ModelPricing | None, spent: Decimal) -> dict:
    if pricing is None:
        return {"monthly_budget": None, "current_month_cost": ZERO, "budget_used_percent": None}
    budget = pricing.monthly_budget
    return {
        "monthly_budget": None if budget is None else money_display(budget),
        "current_month_cost": money_display(spent),
        "budget_used_percent": percent_of(spent, budget) if budget else None,
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


def _window_and_month_spend(
    *, start: datetime | None, end: datetime, now: datetime, filters: UsageFilters
) -> tuple[dict[str, RollupDelta], dict[str, Decimal]]:
    """The sums per model over [start, end), and what each of those models spent this budget month
    (whatever the user or purpose filter): one read when the filters allow it."""
    month = usage_month_span(now=now)
    if filters.needs_raw_log:
        sums = usage_sums_over_spans(spans=[(start, end)], filters=filters)[0]
        return sums, usage_month_spend(model_names=sums, now=now)
    sums, in_month = usage_sums_over_spans(spans=[(start, end), month], filters=filters)
    return sums, {model_name: month_sums.cost for model_name, month_sums in in_month.items()}


@reading_from_replica()
def usage_stats(*, time_range: str, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The stats API's data: summary, one entry per model (platforms) and per provider."""
    start, end = time_range_window(time_range=time_range, now=now, zone=zone)
    sums, spent = _window_and_month_spend(start=start, end=end, now=now, filters=filters)
    pricings = ModelPricing.objects.filter(model_name__in=sums)
    pricing_by_model = {p.model_name: p for p in pricings}
    total = _total(sums.values())
    platforms = []
    for model_name in sorted(sums, key=lambda name: (-sums[name].cost, name)):
        pricing = pricing_by_model.get(model_name)
        platforms.append(
            {
                "provider": pricing.provider if pricing else UNKNOWN_PROVIDER,
                "model_name": model_name,
                "display_name": pricing.display_name if pricing else model_name,
                "currency": pricing.currency if pricing else None,
                **_rates(sums[model_name]),
                "cost_share": percent_of(sums[model_name].cost, total.cost),
                **_budget_use(pricing, spent.get(model_name, ZERO)),
            }
        )
    by_provider: dict[str, list[RollupDelta]] = defaultdict(list)
    for platform in platforms:
        by_provider[platform["provider"]].append(sums[platform["model_name"]])
    # A provider's figures add its models' costs: labelled like the summary's (see its currency).
    providers = [
        {
            "provider": provider,
            **_rates(_total(parts)),
            "cost_share": percent_of(_total(parts).cost, total.cost),
            "currency": settings.AICOST_CURRENCY,
        }
        for provider, parts in sorted(by_provider.items(), key=lambda item: -_total(item[1]).cost)
    ]
    summary = _rates(total)
    return {
        "time_range": time_range,
        "time_label": str(TIME_RANGES[time_range]),  # In the request's language.
        "start": start,
        "end": end,
        "summary": {
            "total_calls": summary["calls"],
            "successful_calls": summary["successful_calls"],
            "failed_calls": summary["failed_calls"],
            "success_rate": summary["success_rate"],
            "total_cost": summary["cost"],
            "unpriced_calls": summary["unpriced_calls"],
            "prompt_tokens": summary["prompt_tokens"],
            "completion_tokens": summary["completion_tokens"],
            "cached_tokens": summary["cached_tokens"],
            "reasoning_tokens": summary["reasoning_tokens"],
            **{name: summary[name] for name in TOKEN_KIND_SUMS},
            "avg_response_time": summary["avg_response_time"],
            "currency": settings.AICOST_CURRENCY,
        },
        "platforms": platforms,
        "providers": providers,
    }


def _day_entry(day: date, sums: RollupDelta | None) -> dict:
    """One day of the trend (a year of them: only the figures it shows, not every rate)."""
    sums = sums or RollupDelta()
    return {
        "date": day,
        "cost": money_display(sums.cost),
        "currency": settings.AICOST_CURRENCY,  # As the trend's summary labels the sum of every model.
        "calls": sums.calls,
        "successful_calls": sums.successful_calls,
        "failed_calls": sums.calls - sums.successful_calls,
        "unpriced_calls": sums.unpriced_calls,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cached_tokens": sums.cached_tokens,
        "reasoning_tokens": sums.reasoning_tokens,
        **_token_kinds(sums),
    }


@reading_from_replica()
def usage_daily_trend(*, days: int, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The daily-trend API's data: every calendar day of the window, zero-filled, oldest first."""
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    sums = usage_sums_by_local_day(first_day=first_day, days=days, zone=zone, filters=filters)
    daily = [_day_entry(first_day + timedelta(days=n), sums.get(first_day + timedelta(days=n))) for n in range(days)]
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
            "currency": settings.AICOST_CURRENCY,
        },
    }
