"""Reads behind the stats and daily-trend APIs: sums over any half-open window, from the rollups.

A window [start, end) is split into the part that whole UTC days cover (daily rollup), the part
whole hours cover (hourly rollup), the quarter hours at its ends (one hour row each: a prefix sum,
or the hour minus one) and the unaligned edges, each shorter than 15 minutes, which come from the
raw log through its timestamp index. All parts are read in one snapshot, and every part sums all
rollup rows of its range (compacted and delta rows alike: usage.rollups). Filters on user_id or
purpose are not rollup dimensions (they would multiply the rollups by users x purposes); those
windows are summed from the raw log, bounded by the timestamp index. With a read replica
configured, these reads are served by it (core/db_routers.py).

The daily trend sums each calendar day of any zone as a few signed day, hour and hour-prefix
rollup ranges (see _since_utc_midnight); without a model filter it reads the all-models rollups.
"""

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django.conf import settings
from django.db import connection, connections, router, transaction
from django.db.models import F, Model, QuerySet, Sum
from django.db.models.functions import TruncDate

from core.db_routers import reading_from_replica
from core.money import ZERO, percent_of, quantize_cost
from pricing.models import ModelPricing
from usage.models import (
    PREFIX_MINUTES,
    UsageLog,
    UsageRollupDaily,
    UsageRollupHour,
    prefix_column,
)
from usage.rollup_sums import ROLLUP_SUMS, SUM_NAMES, RollupDelta
from usage.rollups import (
    DAY_GRAIN,
    DAY_TOTAL_GRAIN,
    HOUR_GRAIN,
    HOUR_TOTAL_GRAIN,
    QUARTER_HOUR,
    Grain,
    array_literal,
    quarter_hour_floor,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)  # Before any call: "since the beginning" for hour rows.


@dataclass(frozen=True)
class UsageFilters:
    model_names: frozenset[str] | None = None  # None: every model; from the model and provider filters.
    user_id: int | None = None
    purpose: str | None = None

    @property
    def needs_raw_log(self) -> bool:
        return self.user_id is not None or self.purpose is not None


def _rollup_sums() -> dict:
    return {f"s_{c}": Sum(c) for c in SUM_NAMES}


def _raw_sums() -> dict:
    """Annotations summing log rows, one per declared sum (s_calls, ...)."""
    return {f"s_{rollup_sum.name}": rollup_sum.source.aggregate() for rollup_sum in ROLLUP_SUMS}


def _add_row(target: RollupDelta, row: dict) -> None:
    for column in SUM_NAMES:
        value = row[f"s_{column}"]
        if value is not None:
            setattr(target, column, getattr(target, column) + value)


def _filtered(queryset: QuerySet, filters: UsageFilters) -> QuerySet:
    if filters.model_names is not None:
        queryset = queryset.filter(model_name__in=filters.model_names)
    if filters.user_id is not None:
        queryset = queryset.filter(user_id=filters.user_id)
    if filters.purpose is not None:
        queryset = queryset.filter(purpose=filters.purpose)
    return queryset


def _raw(start: datetime | None, end: datetime, filters: UsageFilters) -> QuerySet:
    queryset = UsageLog.objects.filter(timestamp__lt=end).order_by()
    if start is not None:
        queryset = queryset.filter(timestamp__gte=start)
    return _filtered(queryset, filters)


def usage_log_window(*, start: datetime | None, end: datetime, filters: UsageFilters) -> QuerySet[UsageLog]:
    """The raw log rows in [start, end) passing `filters`: exactly the rows the stats figures sum."""
    return _raw(start, end, filters)


def _hours(start: datetime, end: datetime, filters: UsageFilters, rollup: type[Model]) -> QuerySet:
    """Hour rows of the hourly rollup starting in [start, end)."""
    return _filtered(rollup.objects.filter(bucket__gte=start, bucket__lt=end).order_by(), filters)


def _hour_minutes_sums(first: int, last: int) -> dict:
    """Annotations summing minutes [first, last) of hourly rollup rows (multiples of 15): a prefix,
    or a difference of two (the whole hour being the 60-minute prefix)."""

    def prefix(column: str, minutes: int) -> F | None:
        if minutes == 0:
            return None
        return F(column) if minutes == 60 else F(prefix_column(column, minutes))

    sums = {}
    for column in SUM_NAMES:
        upper, lower = prefix(column, last), prefix(column, first)
        sums[f"s_{column}"] = Sum(upper if lower is None else upper - lower)
    return sums


def _minutes(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds()) // 60


def _hour_parts(
    start: datetime, end: datetime, filters: UsageFilters, rollup: type[Model] = UsageRollupHour
) -> Iterable[QuerySet]:
    """Querysets (s_* sums per model) whose union is [start, end), both quarter-aligned, from hour
    rows: whole hours, and one hour row for each end off the hour."""
    minutes_sums = _hour_minutes_sums
    first_hour, last_hour = _hour_floor(start), _hour_floor(end)
    if first_hour == last_hour:
        yield (
            _hours(first_hour, first_hour + HOUR, filters, rollup)
            .values("model_name")
            .annotate(**minutes_sums(_minutes(start, first_hour), _minutes(end, first_hour)))
        )
        return
    whole_from = first_hour
    if start > first_hour:
        whole_from = first_hour + HOUR
        yield (
            _hours(first_hour, whole_from, filters, rollup)
            .values("model_name")
            .annotate(**minutes_sums(_minutes(start, first_hour), 60))
        )
    if whole_from < last_hour:
        yield _hours(whole_from, last_hour, filters, rollup).values("model_name").annotate(**minutes_sums(0, 60))
    if end > last_hour:
        yield (
            _hours(last_hour, last_hour + HOUR, filters, rollup)
            .values("model_name")
            .annotate(**minutes_sums(0, _minutes(end, last_hour)))
        )


def _days(start: date | None, end: date, filters: UsageFilters) -> QuerySet:
    queryset = UsageRollupDaily.objects.filter(day__lt=end).order_by()
    if start is not None:
        queryset = queryset.filter(day__gte=start)
    return _filtered(queryset, filters)


def _ceil(moment: datetime, floor, step: timedelta) -> datetime:
    floored = floor(moment)
    return floored if floored == moment else floored + step


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _utc_midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _window_parts(start: datetime | None, end: datetime, filters: UsageFilters) -> Iterable[QuerySet]:
    """Querysets (each with s_* sums per model) whose union is exactly [start, end)."""
    if filters.needs_raw_log:
        yield _raw(start, end, filters).values("model_name").annotate(**_raw_sums())
        return
    q_start = None if start is None else _ceil(start, quarter_hour_floor, QUARTER_HOUR)
    q_end = quarter_hour_floor(end)
    if q_start is not None and q_start >= q_end:
        yield _raw(start, end, filters).values("model_name").annotate(**_raw_sums())
        return
    if start is not None and start < q_start:
        yield _raw(start, q_start, filters).values("model_name").annotate(**_raw_sums())
    if q_end < end:
        yield _raw(q_end, end, filters).values("model_name").annotate(**_raw_sums())
    d_start = None if q_start is None else _ceil(q_start, _utc_midnight, DAY)
    d_end = _utc_midnight(q_end)
    if d_start is not None and d_start >= d_end:
        yield from _hour_parts(q_start, q_end, filters)
        return
    yield (
        _days(None if d_start is None else d_start.date(), d_end.date(), filters)
        .values("model_name")
        .annotate(**_rollup_sums())
    )
    if q_start is not None and q_start < d_start:
        yield from _hour_parts(q_start, d_start, filters)
    if d_end < q_end:
        yield from _hour_parts(d_end, q_end, filters)


@contextmanager
def _one_snapshot(alias: str) -> Iterator[None]:
    """A transaction whose queries all see the same committed data (PostgreSQL: REPEATABLE READ),
    so a compaction or a batch committing between two parts of one answer is seen by all parts or none."""
    outermost = not connections[alias].in_atomic_block  # Else a query may have run: too late to set.
    with transaction.atomic(using=alias):
        if outermost and connections[alias].vendor == "postgresql":
            with connections[alias].cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def usage_sums_by_model(
    *, start: datetime | None, end: datetime, filters: UsageFilters, using: str | None = None
) -> dict[str, RollupDelta]:
    """Sums per model over [start, end) (start None: since the beginning), from database `using`
    (default: where the router sends reads)."""
    totals: dict[str, RollupDelta] = defaultdict(RollupDelta)
    alias = using or router.db_for_read(UsageRollupHour)
    with _one_snapshot(alias):
        for part in _window_parts(start, end, filters):
            for row in part.using(alias):
                _add_row(totals[row["model_name"]], row)
    return dict(totals)


# A local day in any zone is a signed sum of a few rollup ranges: its whole UTC days, minus what
# precedes its start on its first UTC day, plus what precedes its end on its last one. What
# precedes a quarter-aligned moment on its UTC day is at most 12 hour rows and one hour row's
# prefix sum (past noon: the whole day minus the rest of it). A year of days in any zone reads a
# few thousand rollup rows instead of 24 hours per model and day. Moments are UTC epoch seconds
# here: a year of boundaries is plain integer arithmetic.
Term = tuple[str, int, int]  # (grain name, first bucket, bucket after the last), in epoch seconds
EPOCH_DAY = date(1970, 1, 1)
SECONDS_PER_QUARTER, SECONDS_PER_HOUR, SECONDS_PER_DAY = 900, 3600, 86_400


def _epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _since_utc_midnight(moment: int) -> list[tuple[int, Term]]:
    """Signed ranges adding up to [UTC midnight, moment), for a quarter-aligned moment."""
    midnight = moment - moment % SECONDS_PER_DAY
    hour = moment - moment % SECONDS_PER_HOUR
    terms: list[tuple[int, Term]] = []
    if hour < moment:  # [hour, moment): the hour row's prefix sum of that many minutes.
        terms.append((1, (_prefix_grain_name((moment - hour) // 60), hour, moment)))
    if hour - midnight <= 12 * SECONDS_PER_HOUR:
        if midnight < hour:
            terms.append((1, ("hour", midnight, hour)))
    else:
        terms.append((1, ("day", midnight, midnight + SECONDS_PER_DAY)))
        if hour < midnight + SECONDS_PER_DAY:
            terms.append((-1, ("hour", hour, midnight + SECONDS_PER_DAY)))
    return terms


def _local_day_terms(boundaries: list[int]) -> list[dict[Term, int]]:
    """For each [boundaries[n], boundaries[n + 1]): its terms and their signs (terms that cancel out dropped)."""
    before = [_since_utc_midnight(moment) for moment in boundaries]
    days = []
    for n, (start, end) in enumerate(itertools.pairwise(boundaries)):
        terms: dict[Term, int] = defaultdict(int)
        first, last = start - start % SECONDS_PER_DAY, end - end % SECONDS_PER_DAY
        if first < last:
            terms[("day", first, last)] += 1
        for sign, term in before[n]:
            terms[term] -= sign
        for sign, term in before[n + 1]:
            terms[term] += sign
        days.append({term: sign for term, sign in terms.items() if sign})
    return days


def _prefix_grain_name(minutes: int) -> str:
    return f"first {minutes} minutes"


def _trend_grains(filters: UsageFilters) -> dict[str, tuple[Grain, int | None]]:
    """Each term's grain name: its rollup, and for hour prefixes the minutes they sum."""
    day, hour = (DAY_TOTAL_GRAIN, HOUR_TOTAL_GRAIN) if filters.model_names is None else (DAY_GRAIN, HOUR_GRAIN)
    # Without a model filter: one all-models row per bucket instead of one per model.
    grains: dict[str, tuple[Grain, int | None]] = {"day": (day, None), "hour": (hour, None)}
    grains |= {_prefix_grain_name(minutes): (hour, minutes) for minutes in PREFIX_MINUTES}
    return grains


def _ranges_table(grain: Grain, ranges: list[tuple[int, int]]) -> tuple[str, list]:
    """SQL for a table r(n, lo, hi) of the numbered ranges (epoch seconds), and its parameters: on
    PostgreSQL two arrays of integers, elsewhere a VALUES list of dates or datetimes."""
    is_date = grain.key_type == "date"
    if connection.vendor == "postgresql":
        if is_date:
            columns = "DATE '1970-01-01' + (lo / 86400)::int AS lo, DATE '1970-01-01' + (hi / 86400)::int AS hi"
        else:
            columns = "to_timestamp(lo) AS lo, to_timestamp(hi) AS hi"
        sql = (
            f"(SELECT n - 1 AS n, {columns} "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::bigint[]) WITH ORDINALITY AS u(lo, hi, n))"
        )
        return sql, [array_literal(lo for lo, _hi in ranges), array_literal(hi for _lo, hi in ranges)]
    ops = connection.ops

    def adapt(seconds: int):
        if is_date:
            return ops.adapt_datefield_value(EPOCH_DAY + timedelta(days=seconds // SECONDS_PER_DAY))
        return ops.adapt_datetimefield_value(datetime.fromtimestamp(seconds, UTC))

    values = ", ".join(["(%s, %s, %s)"] * len(ranges))
    sql = f"(SELECT column1 AS n, column2 AS lo, column3 AS hi FROM (VALUES {values}))"  # noqa: S608
    return sql, [value for n, (lo, hi) in enumerate(ranges) for value in (n, adapt(lo), adapt(hi))]


def _stored_column(name: str, prefix_minutes: int | None) -> str:
    return name if prefix_minutes is None else prefix_column(name, prefix_minutes)


def _range_sums(
    cursor, grain: Grain, ranges: list[tuple], filters: UsageFilters, prefix_minutes: int | None
) -> dict[tuple, list]:
    """The grain's sums over each [lo, hi) range (of its rows' prefix sums, given prefix_minutes):
    one query, one index range scan per range."""
    table, params = _ranges_table(grain, ranges)
    key = grain.key_column
    models_sql = ""
    if filters.model_names is not None and grain.per_model:
        models_sql = f" AND t.model_name IN ({', '.join(['%s'] * len(filters.model_names))})"
        params += sorted(filters.model_names)
    sums = ", ".join(s.type.sum_sql(f"t.{_stored_column(s.name, prefix_minutes)}") for s in ROLLUP_SUMS)
    # Identifiers come from model metadata; values are bound parameters.
    cursor.execute(
        f"SELECT r.n, {sums} FROM {table} AS r JOIN {grain.model._meta.db_table} AS t "  # noqa: S608
        f"ON t.{key} >= r.lo AND t.{key} < r.hi{models_sql} GROUP BY r.n",
        params,
    )
    return {ranges[n]: sums for n, *sums in cursor.fetchall()}


def _local_days_from_rollups(boundaries: list[int], filters: UsageFilters, days: list[date]) -> dict[date, RollupDelta]:
    terms_of_days = _local_day_terms(boundaries)
    ranges: dict[str, set] = defaultdict(set)
    for terms in terms_of_days:
        for grain_name, lo, hi in terms:
            ranges[grain_name].add((lo, hi))
    sums: dict[Term, list] = {}
    alias = router.db_for_read(UsageRollupHour)  # The read replica, if one serves reports.
    with _one_snapshot(alias), connections[alias].cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner cannot size a join on ranges (it guesses 0.5% of the table per range), so
            # it would JIT-compile these few-millisecond queries for 100-250 ms.
            cursor.execute("SET LOCAL jit = off")
        for name, (grain, prefix_minutes) in _trend_grains(filters).items():
            if ranges[name]:
                found = _range_sums(cursor, grain, sorted(ranges[name]), filters, prefix_minutes)
                for (lo, hi), values in found.items():
                    sums[(name, lo, hi)] = values
    negated = {term: [-value for value in values] for term, values in sums.items()}
    by_day: dict[date, list] = {}
    for day, terms in zip(days, terms_of_days, strict=True):
        parts = [sums[term] if sign > 0 else negated[term] for term, sign in terms.items() if term in sums]
        if parts:
            by_day[day] = [sum(column) for column in zip(*parts, strict=True)]
    return {day: RollupDelta.from_db(values) for day, values in by_day.items()}


def usage_sums_by_local_day(
    *, first_day: date, days: int, zone: tzinfo, filters: UsageFilters
) -> dict[date, RollupDelta]:
    """Sums per calendar day in `zone` for `days` days from `first_day`.

    From the rollups, each local day is a signed sum of a few rollup ranges: counts, tokens and
    cost are exact; response_time_sum, a float, may differ from a direct sum in its last bits."""
    local_days = [first_day + timedelta(days=n) for n in range(days)]
    boundaries = [datetime.combine(day, time.min, tzinfo=zone) for day in [*local_days, first_day + timedelta(days)]]
    if filters.model_names is not None and not filters.model_names:
        return {}
    seconds = [_epoch_seconds(moment) for moment in boundaries]
    if not filters.needs_raw_log and all(moment % SECONDS_PER_QUARTER == 0 for moment in seconds):
        return _local_days_from_rollups(seconds, filters, local_days)
    rows = (
        _raw(boundaries[0], boundaries[-1], filters)
        .annotate(local_day=TruncDate("timestamp", tzinfo=zone))
        .values("local_day")
        .annotate(**_raw_sums())
    )
    totals: dict[date, RollupDelta] = defaultdict(RollupDelta)
    for row in rows:
        _add_row(totals[row["local_day"]], row)
    return dict(totals)


# --- The shapes the cost page reads -------------------------------------------------------------

TIME_RANGES = {
    "today": "Today",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "month": "This month",
    "all": "All time",
}
UNKNOWN_PROVIDER = "unknown"


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
        "cost": quantize_cost(sums.cost),
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
        "monthly_budget": budget,
        "current_month_cost": spent,
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
        of_provider = set(ModelPricing.objects.filter(provider__iexact=provider).values_list("model_name", flat=True))
        names = of_provider if names is None else names & of_provider
    return UsageFilters(
        model_names=None if names is None else frozenset(names), user_id=user_id, purpose=purpose or None
    )


@reading_from_replica()
def usage_stats(*, time_range: str, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The stats API's data: summary, one entry per model (platforms) and per provider."""
    start, end = time_range_window(time_range=time_range, now=now, zone=zone)
    sums = usage_sums_by_model(start=start, end=end, filters=filters)
    pricings = ModelPricing.objects.filter(model_name__in=sums)
    pricing_by_model = {p.model_name: p for p in pricings}
    total = _total(sums.values())
    this_month = now.astimezone(zone).date().replace(day=1)
    from usage.selectors import usage_month_costs  # usage.selectors imports this module.

    spent = usage_month_costs(model_names=sums, month=this_month)
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
    providers = [
        {"provider": provider, **_rates(_total(parts)), "cost_share": percent_of(_total(parts).cost, total.cost)}
        for provider, parts in sorted(by_provider.items(), key=lambda item: -_total(item[1]).cost)
    ]
    summary = _rates(total)
    return {
        "time_range": time_range,
        "time_label": TIME_RANGES[time_range],
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
            "avg_response_time": summary["avg_response_time"],
            "currency": settings.AICOST_CURRENCY,
        },
        "platforms": platforms,
        "providers": providers,
    }


@reading_from_replica()
def usage_daily_trend(*, days: int, now: datetime, zone: tzinfo, filters: UsageFilters) -> dict:
    """The daily-trend API's data: every calendar day of the window, zero-filled, oldest first."""
    first_day = now.astimezone(zone).date() - timedelta(days=days - 1)
    sums = usage_sums_by_local_day(first_day=first_day, days=days, zone=zone, filters=filters)
    daily = []
    for n in range(days):
        day = first_day + timedelta(days=n)
        rates = _rates(sums.get(day, RollupDelta()))
        daily.append(
            {
                "date": day,
                "cost": rates["cost"],
                "calls": rates["calls"],
                "successful_calls": rates["successful_calls"],
                "failed_calls": rates["failed_calls"],
                "unpriced_calls": rates["unpriced_calls"],
                "prompt_tokens": rates["prompt_tokens"],
                "completion_tokens": rates["completion_tokens"],
            }
        )
    costs = [entry["cost"] for entry in daily]
    total_cost = quantize_cost(sum(costs, ZERO))
    return {
        "days": days,
        "time_zone": str(zone),
        "daily_trend": daily,
        "summary": {
            "total_cost": total_cost,
            "avg_daily_cost": quantize_cost(total_cost / days),
            "max_daily_cost": max(costs),
            "min_daily_cost": min(costs),
            "total_calls": sum(entry["calls"] for entry in daily),
            "unpriced_calls": sum(entry["unpriced_calls"] for entry in daily),
            "currency": settings.AICOST_CURRENCY,
        },
    }
