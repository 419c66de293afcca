"""Breakdowns by group_by (issue 17): the stats, the daily trend and the export per model, provider,
user, purpose or API key.

By model or provider, without a user or purpose filter, the groups are the per-model rollups' sums
(usage.window_sums: the stats' own read, exact in any zone, no log scan). No rollup carries users,
purposes or keys yet (issue 17 point 3), so the other breakdowns read the log's rows of their window
(half-open, its partitions pruned by the timestamp bounds) with the stats' filters; by user (stats)
and by user, purpose or key (trend) the groups are ranked by their cost alone and only those shown
summed in full (PAGED_GROUP_BY below); slower than the ungrouped stats at scale.

Every group's cost is its calls' stored reporting_cost summed (in the reporting currency, as the stats'
summary and providers are: two currencies are never added; a call without a rate in force is counted
in unconverted_calls). A model's provider is its priced model's (pricing.selectors.model_providers),
else "unknown", as the stats' providers are.

Groups are ranked by reporting cost, highest first, then by key (calls without a user, a purpose or
a key form the group whose key is None, after the others of the same cost); keys compare as Python
compares them (text by code point), the same on PostgreSQL and SQLite.

By api_key a group's key is the key's id (None: calls recorded from Python or by a staff login), and
its entry names the key (name and prefix, read by usage's selector for the page's keys): a revoked
key's calls still group under it.
"""

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from operator import attrgetter

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from core.db_routers import reading_from_replica
from core.money import ZERO, money_display, percent_of
from pricing.selectors import model_providers, reporting_currency
from usage.dialects import one_snapshot_begin, sums_money_exactly, window_number_sql
from usage.models import UsageLog
from usage.records import TOKEN_FIELDS
from usage.reports import (
    DAY_ENTRY_SUMS,
    UNKNOWN_PROVIDER,
    rates_of,
    stats_summary,
    stats_window,
    time_range_window,
    trend_answer,
    trend_first_day,
)
from usage.rollup_sums import ROLLUP_SUMS, SUM_NAMES, RollupDelta, RollupSum, typed_values_reader
from usage.selectors import api_key_labels
from usage.window_sums import (
    EPOCH_START,
    UsageFilters,
    local_days_utc,
    log_filters_sql,
    log_sums_sql,
    usage_sums_by_local_day,
    usage_sums_by_window,
    usage_totals_by_window,
)

GROUP_BY = ("model", "provider", "user_id", "purpose", "api_key")
API_KEY = "api_key"
DEFAULT_GROUP_BY = "model"
MAX_GROUPS_LIMIT = 1000
STATS_GROUPS_LIMIT = 100
TREND_GROUPS_LIMIT = 10

Key = str | int | None
_COST, _CALLS, _SUCCESSFUL, _UNCONVERTED = (
    SUM_NAMES.index(name) for name in ("reporting_cost", "calls", "successful_calls", "unconverted_calls")
)


def _key_sql(group_by: str) -> str:
    """The group's key as an expression over the log t (provider: the model, folded in _by_provider)."""
    if group_by in ("model", "provider"):
        return "t.model_name"
    if group_by == "user_id":
        return "t.user_id"
    if group_by == "purpose":
        return "NULLIF(t.purpose, '')"  # No purpose: the group None, as no user is.
    if group_by == API_KEY:
        return "t.api_key_id"
    raise ValueError(f"unknown group_by {group_by!r}")


def _by_provider(rows: list[tuple], *, keys: int) -> list[tuple]:
    """Rows keyed by model (their key the last of `keys` columns) added up per provider: the priced
    model's (pricing's selector), else "unknown", as the stats' providers are."""
    providers = model_providers()
    typed = typed_values_reader(ROLLUP_SUMS)
    merged: dict[tuple, list] = {}
    for row in rows:
        provider = providers.get(row[keys - 1], (UNKNOWN_PROVIDER,))[0]
        key = (*row[: keys - 1], provider)
        values = typed(row[keys:])
        merged[key] = list(map(operator.add, merged[key], values)) if key in merged else list(values)
    return [(*key, *values) for key, values in merged.items()]


def _grouped_rows(
    *, boundaries: Sequence[datetime | None], filters: UsageFilters, group_by: str, by_window: bool
) -> list[tuple]:
    """(window number if by_window, key, sums in ROLLUP_SUMS order...) rows of the log's calls in
    [boundaries[0], boundaries[-1]) (boundaries[0] None: since the first call) passing `filters`."""
    if filters.matches_nothing:
        return []
    if group_by in ("model", "provider") and not filters.needs_raw_log:
        rows = _rollup_rows(boundaries=boundaries, filters=filters, by_window=by_window)
    else:
        rows = _log_rows(boundaries=boundaries, filters=filters, group_by=group_by, by_window=by_window)
    return _by_provider(rows, keys=2 if by_window else 1) if group_by == "provider" else rows


_SUMS_OF = attrgetter(*SUM_NAMES)


def _rollup_rows(*, boundaries: Sequence[datetime | None], filters: UsageFilters, by_window: bool) -> list[tuple]:
    """_grouped_rows' rows per model, from the rollups."""
    start = EPOCH_START if boundaries[0] is None else boundaries[0]
    windows = usage_sums_by_window(boundaries=[start, *boundaries[1:]], filters=filters)
    return [
        (*((n,) if by_window else ()), model_name, *_SUMS_OF(sums))
        for n, window in enumerate(windows)
        for model_name, sums in window.items()
    ]


def _log_rows(
    *,
    boundaries: Sequence[datetime | None],
    filters: UsageFilters,
    group_by: str,
    by_window: bool,
    sums: tuple[RollupSum, ...] = ROLLUP_SUMS,
    keys: Sequence[Key] | None = None,
) -> list[tuple]:
    """_grouped_rows' rows (of `sums` only, and of the groups `keys` only), from one GROUP BY over the log."""
    connection, sql, params = _log_group_sql(
        boundaries=boundaries, filters=filters, group_by=group_by, by_window=by_window, sums=sums, keys=keys
    )
    with connection.cursor() as cursor:  # One statement: one snapshot.
        cursor.execute(sql, params)
        return cursor.fetchall()


def _log_group_sql(
    *,
    boundaries: Sequence[datetime | None],
    filters: UsageFilters,
    group_by: str,
    by_window: bool,
    sums: tuple[RollupSum, ...],
    keys: Sequence[Key] | None,
) -> tuple[BaseDatabaseWrapper, str, list]:
    connection = connections[router.db_for_read(UsageLog)]
    adapt = connection.ops.adapt_datetimefield_value
    key_sql = _key_sql(group_by)
    window_sql, window_params = "", []
    if by_window:
        window_sql, window_params = window_number_sql(connection, "t.timestamp", boundaries)
        window_sql += ", "
    where, where_params = log_filters_sql(connection, filters)
    if keys is not None:
        keys_where, keys_params = _keys_sql(group_by, keys)
        where, where_params = where + keys_where, [*where_params, *keys_params]
    bounds, bound_params = "t.timestamp < %s", [adapt(boundaries[-1])]
    if boundaries[0] is not None:
        bounds, bound_params = "t.timestamp >= %s AND " + bounds, [adapt(boundaries[0]), *bound_params]
    group = "1, 2" if by_window else "1"
    sql = (
        f"SELECT {window_sql}{key_sql}, {log_sums_sql(sums)} FROM {UsageLog._meta.db_table} AS t "  # noqa: S608
        f"WHERE {bounds}{where} GROUP BY {group}"
    )
    return connection, sql, [*window_params, *bound_params, *where_params]


# By user a window may have tens of thousands of groups, of which the stats show a page: the groups are
# ranked by their cost alone and only the page's summed in full (through the log's user index). The
# trend shows its top N of any grouping by user, purpose or key: only those are summed per day, and
# "other" is each day less them. The whole window's and days' sums are the rollups' (usage.window_sums),
# as the ungrouped answer's; all in one snapshot, so they agree. Purposes and keys are tens, not
# thousands: a stats page holds most of them, so they are summed in full in one pass (measured faster).
PAGED_GROUP_BY = ("user_id",)
TOP_N_GROUP_BY = ("user_id", "purpose", API_KEY)
_INTEGER_KEYS = ("user_id", API_KEY)  # Ordered alike by the database and Python (text would need a collation).
_KEY_COLUMN = {"user_id": "t.user_id", "purpose": "t.purpose", API_KEY: "t.api_key_id"}
_NO_KEY = {"user_id": "t.user_id IS NULL", "purpose": "t.purpose = ''", API_KEY: "t.api_key_id IS NULL"}
_SUM = {rollup_sum.name: rollup_sum for rollup_sum in ROLLUP_SUMS}
_COST_SUMS = (_SUM["reporting_cost"],)
_SERIES_SUMS = (_SUM["reporting_cost"], _SUM["calls"], _SUM["unconverted_calls"])  # A series' totals, in order.
_CELL_SUMS = (_SUM["reporting_cost"], _SUM["calls"])  # A series' day.


def _keys_sql(group_by: str, keys: Sequence[Key]) -> tuple[str, list]:
    """ " AND ..." keeping the log rows of the groups `keys` (None: the rows without a value)."""
    present = [key for key in keys if key is not None]
    conditions = [f"{_KEY_COLUMN[group_by]} IN ({', '.join(['%s'] * len(present))})"] if present else []
    if None in keys:
        conditions.append(_NO_KEY[group_by])
    return f" AND ({' OR '.join(conditions)})", present


@contextmanager
def _one_snapshot(alias: str) -> Iterator[None]:
    connection = connections[alias]
    if connection.in_atomic_block:  # A caller's transaction (a test's): its isolation is already set.
        yield
        return
    with transaction.atomic(using=alias):
        one_snapshot_begin(connection)
        yield


def _sums_of_keys(rows: list[tuple], sums: tuple[RollupSum, ...]) -> dict[Key, tuple]:
    """(key, sums...) rows as each key's `sums`, exact and typed."""
    typed = typed_values_reader(sums)
    return {row[0]: typed(row[1:]) for row in rows}


@reading_from_replica()
def _ranked_page(
    *, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str, limit: int, offset: int
) -> tuple[int, list[Key], dict[Key, tuple], RollupDelta]:
    """The number of groups, one page of their keys ranked, the page's groups' sums (ROLLUP_SUMS
    order) and the whole window's."""
    if filters.matches_nothing:
        return 0, [], {}, RollupDelta()
    boundaries = [start, end]
    alias = router.db_for_read(UsageLog)
    with _one_snapshot(alias):
        ranked = _ranked(connections[alias], group_by)
        total, entries = ranked(boundaries=boundaries, filters=filters, group_by=group_by, limit=limit, offset=offset)
        page = [key for key, _sums in entries]
        values = {}
        if page:
            page_rows = _log_rows(boundaries=boundaries, filters=filters, group_by=group_by, by_window=False, keys=page)
            values = _sums_of_keys(page_rows, ROLLUP_SUMS)
        [whole] = usage_totals_by_window(
            boundaries=[EPOCH_START if start is None else start, end], filters=filters, using=alias
        )
    return total, page, values, whole


def _ranked_in_python(
    *, boundaries: list, filters: UsageFilters, group_by: str, limit: int, offset: int, sums: tuple = _COST_SUMS
) -> tuple[int, list[tuple[Key, tuple]]]:
    """The number of groups and one page of them ranked, each (key, its `sums`, reporting_cost first):
    every group read and ranked here."""
    rows = _log_rows(boundaries=boundaries, filters=filters, group_by=group_by, by_window=False, sums=sums)
    values = _sums_of_keys(rows, sums)
    order = sorted(values, key=lambda key: _rank(key, values[key][0]))
    return len(order), [(key, values[key]) for key in order[offset : offset + limit]]


def _ranked_in_sql(
    *, boundaries: list, filters: UsageFilters, group_by: str, limit: int, offset: int, sums: tuple = _COST_SUMS
) -> tuple[int, list[tuple[Key, tuple]]]:
    """_ranked_in_python's answer with the ranking in the database, which sends the count and the page
    only (by user: tens of thousands of groups fewer to read). Integer keys only (_INTEGER_KEYS), which
    the database orders as Python does; the page is re-sorted here by _rank all the same."""
    connection, sql, params = _log_group_sql(
        boundaries=boundaries, filters=filters, group_by=group_by, by_window=False, sums=sums, keys=None
    )
    names = [f"s{n}" for n in range(len(sums))]
    nulls = ", ".join(["NULL"] * len(sums))
    statement = (
        f"WITH g(k, {', '.join(names)}) AS ({sql}), "  # noqa: S608 (model metadata)
        f"p AS (SELECT * FROM g ORDER BY s0 DESC, k IS NULL, k LIMIT %s OFFSET %s) "
        f"SELECT false, (SELECT count(*) FROM g), {nulls} UNION ALL SELECT true, * FROM p"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, limit, offset])
        rows = cursor.fetchall()
    total = next(row[1] for row in rows if not row[0])
    typed = typed_values_reader(sums)
    page = [(row[1], typed(row[2:])) for row in rows if row[0]]
    return total, sorted(page, key=lambda entry: _rank(entry[0], entry[1][0]))


def _ranked(connection: BaseDatabaseWrapper, group_by: str):
    return _ranked_in_sql if sums_money_exactly(connection) and group_by in _INTEGER_KEYS else _ranked_in_python


@reading_from_replica()
def _group_values(*, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str) -> dict[Key, tuple]:
    """The sums (ROLLUP_SUMS order, exact and typed) of the calls in [start, end) passing `filters`, per
    value of `group_by`: plain tuples, as a window may have tens of thousands of users."""
    typed = typed_values_reader(ROLLUP_SUMS)
    return {
        row[0]: typed(row[1:])
        for row in _grouped_rows(boundaries=[start, end], filters=filters, group_by=group_by, by_window=False)
    }


def usage_sums_by_group(
    *, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str
) -> dict[Key, RollupDelta]:
    """The sums of the calls in [start, end) (start None: since the first) passing `filters`, per
    value of `group_by` (values with calls)."""
    values = _group_values(start=start, end=end, filters=filters, group_by=group_by)
    return {key: RollupDelta(*sums) for key, sums in values.items()}


def _rank(key: Key, cost: Decimal) -> tuple:
    return (-cost, key is None, "" if key is None else key)


def ranked(groups: dict[Key, RollupDelta]) -> list[tuple[Key, RollupDelta]]:
    """The groups by reporting cost, highest first, then by key (None last)."""
    return sorted(groups.items(), key=lambda item: _rank(item[0], item[1].reporting_cost))


def _ranked_keys(values: dict[Key, tuple]) -> list[Key]:
    """ranked's order, of _group_values' tuples."""
    return sorted(values, key=lambda key: _rank(key, values[key][_COST]))


def _key_labels(group_by: str, keys: Sequence[Key]) -> dict[Key, dict] | None:
    """By api_key: each key's {"name", "prefix"} (both None for the calls without a key); else None."""
    if group_by != API_KEY:
        return None
    labels = api_key_labels(ids=[key for key in keys if key is not None])
    unnamed = (None, None)
    return {key: dict(zip(("name", "prefix"), labels.get(key, unnamed), strict=True)) for key in keys}


def _group_entry(key: Key, sums: RollupDelta, whole: RollupDelta, labels: dict[Key, dict] | None) -> dict:
    return {
        "key": key,
        **({} if labels is None else labels[key]),
        **rates_of(sums),
        "currency": reporting_currency(),
        "cost_share": percent_of(sums.reporting_cost, whole.reporting_cost),
    }


def usage_stats_groups(
    *, time_range: str, now: datetime, zone: tzinfo, filters: UsageFilters, group_by: str, limit: int, offset: int
) -> dict:
    """The stats API's answer with group_by: the window, its summary and one page of its groups."""
    start, end = time_range_window(time_range=time_range, now=now, zone=zone)
    if group_by in PAGED_GROUP_BY:
        total, page, values, whole = _ranked_page(
            start=start, end=end, filters=filters, group_by=group_by, limit=limit, offset=offset
        )
    else:
        values = _group_values(start=start, end=end, filters=filters, group_by=group_by)
        order = _ranked_keys(values)
        whole = RollupDelta(*map(sum, zip(*values.values(), strict=True))) if values else RollupDelta()
        total, page = len(order), order[offset : offset + limit]
    labels = _key_labels(group_by, page)
    return {
        **stats_window(time_range=time_range, start=start, end=end),
        "group_by": group_by,
        "total": total,
        "limit": limit,
        "offset": offset,
        "summary": stats_summary(whole),
        "groups": [_group_entry(key, RollupDelta(*values[key]), whole, labels) for key in page],
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


@dataclass
class _TrendGroups:
    """What the stacked trend shows of its groups: the top keys with their [cost, calls, unconverted
    calls] over the window, other's, the number of groups, per day the [cost, calls] of each top
    group and then of other, and per day its sums (None: no calls)."""

    top: list[Key]
    top_totals: list[list]
    other_totals: list
    groups: int
    cells: list[list[list]]
    day_sums: list[RollupDelta | None]


def _trend_whole(
    *, boundaries: Sequence[datetime], filters: UsageFilters, group_by: str, limit: int, **_days
) -> _TrendGroups:
    """The stacked trend's groups from one read of every (day, group)'s sums, added up in Python
    column by column (a RollupDelta per day and group would cost more than the read)."""
    typed = typed_values_reader(ROLLUP_SUMS)
    rows = [
        (row[0], row[1], typed(row[2:]))
        for row in _grouped_rows(boundaries=boundaries, filters=filters, group_by=group_by, by_window=True)
    ]
    days = len(boundaries) - 1
    per_key: dict[Key, list] = {}  # reporting cost, calls, unconverted calls over the window
    by_day: list[list[tuple]] = [[] for _day in range(days)]
    for n, key, values in rows:
        by_day[n].append(values)
        totals = per_key.setdefault(key, [ZERO, 0, 0])
        totals[0] += values[_COST]
        totals[1] += values[_CALLS]
        totals[2] += values[_UNCONVERTED]
    order = sorted(per_key, key=lambda key: _rank(key, per_key[key][0]))
    top = order[:limit]
    slot = {key: position for position, key in enumerate(top)}
    cells = [[[ZERO, 0] for _series in range(len(top) + 1)] for _day in range(days)]
    for n, key, values in rows:
        cell = cells[n][slot.get(key, len(top))]
        cell[0] += values[_COST]
        cell[1] += values[_CALLS]
    rest = [per_key[key] for key in order[limit:]]
    return _TrendGroups(
        top=top,
        top_totals=[per_key[key] for key in top],
        other_totals=[sum((totals[i] for totals in rest), start) for i, start in enumerate((ZERO, 0, 0))],
        groups=len(order),
        cells=cells,
        day_sums=[
            RollupDelta(*(sum(column) for column in zip(*values, strict=True))) if values else None for values in by_day
        ],
    )


def _trend_paged(
    *,
    boundaries: Sequence[datetime],
    filters: UsageFilters,
    group_by: str,
    limit: int,
    first_day: date,
    days: int,
    zone: tzinfo,
) -> _TrendGroups:
    """_trend_whole's answer from three reads in one snapshot: the top `limit` groups ranked with
    their cost, calls and unconverted calls over the window (and the number of groups), their cost
    and calls per day, and the days' sums (the rollups', the plain trend's); other is the window, and
    each day, less the top groups, exactly."""
    if filters.matches_nothing:
        return _TrendGroups([], [], [ZERO, 0, 0], 0, [[[ZERO, 0]] for _day in range(days)], [None] * days)
    alias = router.db_for_read(UsageLog)
    with _one_snapshot(alias):
        ranked = _ranked(connections[alias], group_by)
        groups, entries = ranked(
            boundaries=[boundaries[0], boundaries[-1]],
            filters=filters,
            group_by=group_by,
            limit=limit,
            offset=0,
            sums=_SERIES_SUMS,
        )
        top = [key for key, _sums in entries]
        slot = {key: position for position, key in enumerate(top)}
        cells = [[[ZERO, 0] for _series in range(len(top) + 1)] for _day in range(days)]
        if top:
            top_rows = _log_rows(
                boundaries=boundaries, filters=filters, group_by=group_by, by_window=True, sums=_CELL_SUMS, keys=top
            )
            typed = typed_values_reader(_CELL_SUMS)
            for n, key, *values in top_rows:
                cells[n][slot[key]] = list(typed(values))
        by_date = usage_sums_by_local_day(
            first_day=first_day, days=days, zone=zone, filters=filters, sums=DAY_ENTRY_SUMS, using=alias
        )
    day_sums = [by_date.get(first_day + timedelta(days=n)) for n in range(days)]
    for day_cells, sums in zip(cells, day_sums, strict=True):
        if sums is not None:
            day_cells[-1] = [
                sums.reporting_cost - sum((cell[0] for cell in day_cells[:-1]), ZERO),
                sums.calls - sum(cell[1] for cell in day_cells[:-1]),
            ]
    top_totals = [list(sums) for _key, sums in entries]
    window = [
        sum((day.reporting_cost for day in day_sums if day is not None), ZERO),
        sum(day.calls for day in day_sums if day is not None),
        sum(day.unconverted_calls for day in day_sums if day is not None),
    ]
    other = [whole - sum((totals[i] for totals in top_totals), type(whole)()) for i, whole in enumerate(window)]
    return _TrendGroups(top, top_totals, other, groups, cells, day_sums)


@reading_from_replica()
def usage_daily_trend_groups(
    *, days: int, now: datetime, zone: tzinfo, filters: UsageFilters, group_by: str, limit: int
) -> dict:
    """The daily trend with group_by, for a stacked chart: the window's `limit` costliest groups and
    "other" (every other group), each with its cost and calls per day; per day, the groups' costs
    and other's add up to the day's cost exactly (and their calls to its calls)."""
    first_day = trend_first_day(days=days, now=now, zone=zone)
    utc, _dates = local_days_utc(first_day, days, zone)
    read = _trend_paged if group_by in TOP_N_GROUP_BY else _trend_whole
    groups = read(
        boundaries=utc, filters=filters, group_by=group_by, limit=limit, first_day=first_day, days=days, zone=zone
    )
    top, cells = groups.top, groups.cells
    other = len(top)
    day_sums = {first_day + timedelta(days=n): sums for n, sums in enumerate(groups.day_sums) if sums is not None}
    answer = trend_answer(days=days, zone=zone, first_day=first_day, sums=day_sums)
    currency = reporting_currency()
    series_days: list[list[dict]] = [[] for _series in range(other + 1)]
    for n, day_cells in enumerate(cells):
        day = first_day + timedelta(days=n)
        shown = _stacked([cost for cost, _calls in day_cells])
        for series, (_cost, calls), cost in zip(series_days, day_cells, shown, strict=True):
            series.append({"date": day, "cost": cost, "currency": currency, "calls": calls})
    totals = [*groups.top_totals, groups.other_totals]
    answer["group_by"] = group_by
    answer["limit"] = limit
    answer["total"] = groups.groups
    series_keys = [*top, None]  # other's key is None
    labels = _key_labels(group_by, series_keys)
    answer["series"] = [
        {
            "key": series_keys[n],
            **({} if labels is None else labels[series_keys[n]]),
            "other": n == other,
            "groups": groups.groups - len(top) if n == other else 1,
            "cost": money_display(cost),
            "calls": calls,
            "unconverted_calls": unconverted,
            "currency": currency,
            "daily": series,
        }
        for n, ((cost, calls, unconverted), series) in enumerate(zip(totals, series_days, strict=True))
    ]
    return answer


# --- Export ---------------------------------------------------------------------------------------

GROUP_EXPORT_SUMS = ("calls", "successful_calls", "failed_calls", "unpriced_calls", "unconverted_calls", *TOKEN_FIELDS)
# Each export sum's position in _group_values' tuples; None: failed_calls, calls less successful ones.
_EXPORT_COLUMNS = tuple(None if name == "failed_calls" else SUM_NAMES.index(name) for name in GROUP_EXPORT_SUMS)


def usage_export_group_columns(group_by: str) -> tuple[str, ...]:
    """By api_key the key's id is followed by its name and prefix."""
    labels = ("api_key_name", "api_key_prefix") if group_by == API_KEY else ()
    return (group_by, *labels, *GROUP_EXPORT_SUMS, "reporting_cost", "reporting_currency")


def usage_export_group_rows(
    *, start: datetime | None, end: datetime, filters: UsageFilters, group_by: str
) -> Iterator[tuple]:
    """One row per group (usage_export_group_columns), ranked as the stats rank them; the reporting
    cost exact, as stored sums (not rounded for display)."""
    currency = reporting_currency()
    values = _group_values(start=start, end=end, filters=filters, group_by=group_by)
    order = _ranked_keys(values)
    labels = _key_labels(group_by, order)
    for key in order:
        sums = values[key]
        yield (
            key,
            *(() if labels is None else labels[key].values()),
            *(sums[_CALLS] - sums[_SUCCESSFUL] if column is None else sums[column] for column in _EXPORT_COLUMNS),
            sums[_COST],
            currency,
        )
