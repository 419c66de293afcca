"""Breakdowns by group_by (issue 17): the stats, the daily trend and the export per model, provider,
user or purpose, read from the raw log with one GROUP BY per request.

No rollup carries users or purposes yet (issue 17 point 3), so a breakdown scans the log's rows of
its window (half-open, its partitions pruned by the timestamp bounds) with the stats' filters: slower
than the ungrouped stats at scale. Every group's cost is its calls' stored reporting_cost summed (in
the reporting currency, as the stats' summary and providers are: two currencies are never added; a
call without a rate in force is counted in unconverted_calls). A model's provider is its priced
model's (ModelPricing.provider), else "unknown", as the stats' providers are.

Groups are ranked by reporting cost, highest first, then by key (calls without a user or a purpose
form the group whose key is None, after the others of the same cost); keys compare as Python
compares them (text by code point), the same on PostgreSQL and SQLite.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise

from django.db import connections, router

from core.db_routers import reading_from_replica
from core.money import ZERO, money_display, percent_of
from pricing.models import ModelPricing
from pricing.selectors import reporting_currency
from usage.dialects import window_number_sql
from usage.models import UsageLog
from usage.records import TOKEN_FIELDS
from usage.reports import (
    UNKNOWN_PROVIDER,
    rates_of,
    stats_summary,
    stats_window,
    time_range_window,
    trend_answer,
    trend_first_day,
)
from usage.rollup_sums import ROLLUP_SUMS, RollupDelta, delta_reader
from usage.window_sums import UsageFilters, local_midnights, log_filters_sql, log_sums_sql

GROUP_BY = ("model", "provider", "user_id", "purpose")
DEFAULT_GROUP_BY = "model"
MAX_GROUPS_LIMIT = 1000
STATS_GROUPS_LIMIT = 100
TREND_GROUPS_LIMIT = 10

Key = str | int | None


def _key_sql(group_by: str) -> tuple[str, str, list]:
    """The group's key as an expression over the log t, the join it needs, and their parameters."""
    if group_by == "model":
        return "t.model_name", "", []
    if group_by == "provider":
        pricing = ModelPricing._meta.db_table
        return (
            "COALESCE(p.provider, %s)",
            f" LEFT JOIN {pricing} AS p ON p.model_name = t.model_name",
            [UNKNOWN_PROVIDER],
        )
    if group_by == "user_id":
        return "t.user_id", "", []
    if group_by == "purpose":
        return "NULLIF(t.purpose, '')", "", []  # No purpose: the group None, as no user is.
    raise ValueError(f"unknown group_by {group_by!r}")


def _grouped_rows(
    *, boundaries: Sequence[datetime | None], filters: UsageFilters, group_by: str, by_window: bool
) -> list[tuple]:
    """(window number if by_window, key, sums in ROLLUP_SUMS order...) rows of the log's calls in
    [boundaries[0], boundaries[-1]) (boundaries[0] None: since the first call) passing `filters`."""
    if filters.model_names is not None and not filters.model_names:
        return []
    alias = router.db_for_read(UsageLog)
    connection = connections[alias]
    adapt = connection.ops.adapt_datetimefield_value
    key_sql, join_sql, key_params = _key_sql(group_by)
    window_sql, window_params = "", []
    if by_window:
        window_sql, window_params = window_number_sql(connection, "t.timestamp", boundaries)
        window_sql += ", "
    where, where_params = log_filters_sql(connection, filters)
    bounds, bound_params = "t.timestamp < %s", [adapt(boundaries[-1])]
    if boundaries[0] is not None:
        bounds, bound_params = "t.timestamp >= %s AND " + bounds, [adapt(boundaries[0]), *bound_params]
    group = "1, 2" if by_window else "1"
    sql = (
        f"SELECT {window_sql}{key_sql}, {log_sums_sql()} FROM {UsageLog._meta.db_table} AS t{join_sql} "  # noqa: S608
        f"WHERE {bounds}{where} GROUP BY {group}"
    )
    with connection.cursor() as cursor:  # One statement: one snapshot.
        cursor.execute(sql, [*window_params, *key_params, *bound_params, *where_params])
        return cursor.fetchall()


@reading_from_replica()
def usage_sums_by_group(
    *, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str
) -> dict[Key, RollupDelta]:
    """The sums of the calls in [start, end) (start None: since the first) passing `filters`, per
    value of `group_by` (values with calls)."""
    read = delta_reader(ROLLUP_SUMS)
    return {
        row[0]: read(row[1:])
        for row in _grouped_rows(boundaries=[start, end], filters=filters, group_by=group_by, by_window=False)
    }


@reading_from_replica()
def usage_sums_by_group_and_window(
    *, boundaries: Sequence[datetime], filters: UsageFilters, group_by: str
) -> list[dict[Key, RollupDelta]]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums per value of `group_by` (values
    with calls in it), in one statement."""
    answers: list[dict[Key, RollupDelta]] = [{} for _window in pairwise(boundaries)]
    if not answers or boundaries[0] >= boundaries[-1]:
        return answers
    utc = [moment.astimezone(UTC) for moment in boundaries]
    read = delta_reader(ROLLUP_SUMS)
    for row in _grouped_rows(boundaries=utc, filters=filters, group_by=group_by, by_window=True):
        answers[row[0]][row[1]] = read(row[2:])
    return answers


def ranked(groups: dict[Key, RollupDelta]) -> list[tuple[Key, RollupDelta]]:
    """The groups by reporting cost, highest first, then by key (None last)."""
    return sorted(
        groups.items(), key=lambda item: (-item[1].reporting_cost, item[0] is None, "" if item[0] is None else item[0])
    )


def _group_entry(key: Key, sums: RollupDelta, whole: RollupDelta) -> dict:
    return {
        "key": key,
        **rates_of(sums),
        "currency": reporting_currency(),
        "cost_share": percent_of(sums.reporting_cost, whole.reporting_cost),
    }


def usage_stats_groups(
    *, time_range: str, now: datetime, zone: tzinfo, filters: UsageFilters, group_by: str, limit: int, offset: int
) -> dict:
    """The stats API's answer with group_by: the window, its summary and one page of its groups."""
    start, end = time_range_window(time_range=time_range, now=now, zone=zone)
    groups = ranked(usage_sums_by_group(start=start, end=end, filters=filters, group_by=group_by))
    whole = sum((sums for _key, sums in groups), RollupDelta())
    return {
        **stats_window(time_range=time_range, start=start, end=end),
        "group_by": group_by,
        "total": len(groups),
        "limit": limit,
        "offset": offset,
        "summary": stats_summary(whole),
        "groups": [_group_entry(key, sums, whole) for key, sums in groups[offset : offset + limit]],
    }


def _stacked(values: Sequence) -> list:
    """Display figures of exact costs that add up to the display figure of their sum exactly: each
    the rounded running sum minus the rounded running sum before it (never negative, within one
    unit of the last place of its own rounding)."""
    shown, running, before = [], ZERO, ZERO
    for value in values:
        running += value
        rounded = money_display(running)
        shown.append(rounded - before)
        before = rounded
    return shown


def usage_daily_trend_groups(
    *, days: int, now: datetime, zone: tzinfo, filters: UsageFilters, group_by: str, limit: int
) -> dict:
    """The daily trend with group_by, for a stacked chart: the window's `limit` costliest groups and
    "other" (every other group), each with its cost and calls per day; per day, the groups' costs
    and other's add up to the day's cost exactly (and their calls to its calls). The days, the
    totals and the series come from one read of the log."""
    first_day = trend_first_day(days=days, now=now, zone=zone)
    boundaries = local_midnights(first_day=first_day, days=days, zone=zone)
    windows = usage_sums_by_group_and_window(boundaries=boundaries, filters=filters, group_by=group_by)
    over_window: dict[Key, RollupDelta] = {}
    for window in windows:
        for key, sums in window.items():
            over_window[key] = over_window[key] + sums if key in over_window else sums
    order = ranked(over_window)
    top = [key for key, _sums in order[:limit]]
    rest = [key for key, _sums in order[limit:]]
    currency = reporting_currency()
    day_sums = {
        first_day + timedelta(days=n): sum(window.values(), RollupDelta()) for n, window in enumerate(windows) if window
    }
    answer = trend_answer(days=days, zone=zone, first_day=first_day, sums=day_sums)
    series_days: list[list[dict]] = [[] for _key in range(len(top) + 1)]
    for n, window in enumerate(windows):
        parts = [window.get(key, RollupDelta()) for key in top]
        parts.append(sum((window[key] for key in rest if key in window), RollupDelta()))
        day = first_day + timedelta(days=n)
        for series, part, cost in zip(series_days, parts, _stacked([p.reporting_cost for p in parts]), strict=True):
            series.append({"date": day, "cost": cost, "currency": currency, "calls": part.calls})
    other_total = sum((over_window[key] for key in rest), RollupDelta())
    totals = [over_window[key] for key in top] + [other_total]
    keys: list[Key] = [*top, None]
    answer["group_by"] = group_by
    answer["limit"] = limit
    answer["total"] = len(order)
    answer["series"] = [
        {
            "key": key,
            "other": n == len(top),
            "groups": 1 if n < len(top) else len(rest),
            "cost": money_display(total.reporting_cost),
            "calls": total.calls,
            "unconverted_calls": total.unconverted_calls,
            "currency": currency,
            "daily": series,
        }
        for n, (key, total, series) in enumerate(zip(keys, totals, series_days, strict=True))
    ]
    return answer


# --- Export ---------------------------------------------------------------------------------------

GROUP_EXPORT_SUMS = ("calls", "successful_calls", "failed_calls", "unpriced_calls", "unconverted_calls", *TOKEN_FIELDS)


def usage_export_group_columns(group_by: str) -> tuple[str, ...]:
    return (group_by, *GROUP_EXPORT_SUMS, "reporting_cost", "reporting_currency")


def usage_export_group_rows(
    *, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str
) -> Iterator[tuple]:
    """One row per group (usage_export_group_columns), ranked as the stats rank them; the reporting
    cost exact, as stored sums (not rounded for display)."""
    currency = reporting_currency()
    for key, sums in ranked(usage_sums_by_group(start=start, end=end, filters=filters, group_by=group_by)):
        counts = {"failed_calls": sums.calls - sums.successful_calls}
        yield (
            key,
            *(counts[name] if name in counts else getattr(sums, name) for name in GROUP_EXPORT_SUMS),
            sums.reporting_cost,
            currency,
        )
