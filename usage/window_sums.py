"""The one read path for usage sums: every declared sum (usage.rollup_sums) over consecutive windows.

Given sorted boundaries [b0, b1, ..., bn) (aware datetimes, any zone, quarter-aligned or not), the
sums over each window [b_k, b_k+1), per model or over all models, in one SQL statement. Stats read
one window, the daily trend one window per local day, budgets the month, anomaly alerts their hours.

A window is a signed sum of terms, each an index range scan of one table:
  - whole UTC days from the day rollup;
  - whole UTC hours from the hour rollup, and an hour row's sum over its first 15, 30 or 45 minutes
    (its prefix columns) for a quarter-aligned moment off the hour;
  - the raw log for what lies between a moment and the quarter hour before it.
What precedes a moment on its UTC day is at most 12 hour rows and a prefix (past noon: the day row
minus the rest of the day), so a window is its whole UTC days, minus what precedes its start on its
first UTC day, plus what precedes its end on its last one. A term shared by two windows (a local
midnight ends one day and starts the next) is read once. Answers are exact for any zone (Asia/Kathmandu,
Pacific/Chatham) and any instant; response_time_sum, a float, may differ from a direct sum in its
last bits.

The statement is a UNION ALL of the terms' sums (on PostgreSQL each rollup term a LATERAL index range
scan, each log term a select with constant bounds: usage.dialects) joined to a table of (window,
term, sign) and summed per window. It is cached per set of windows ending on quarter hours (the
trend's boundaries stay the same all day), and once it runs again PostgreSQL runs it by name, parsed
and planned once per connection (core.prepared).

Rollup tables may hold several rows per key (delta rows not yet compacted): every term SUMs rows.
Filters on user_id or purpose are not rollup dimensions; those windows are summed from the raw log.
Without a model filter, totals read the all-models rollups (one row per bucket). One statement reads
one snapshot, so a batch or a compaction committing meanwhile is in the whole answer or not at all (no
transaction needed); with a read replica configured, reporting reads go to it (core.db_routers).
"""

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from core import prepared
from usage.dialects import (
    EPOCH_DAYS,
    EPOCH_HOURS,
    INT,
    in_list_sql,
    range_terms_sql,
    values_table_sql,
    window_number_sql,
)
from usage.models import (
    PREFIX_MINUTES,
    UsageLog,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    prefix_column,
)
from usage.rollup_sums import COUNT, ROLLUP_SUMS, RollupDelta, RollupSum, delta_reader

Sums = tuple[RollupSum, ...]  # Which declared sums a read takes (calls always among them).
CALLS = next(s for s in ROLLUP_SUMS if s.name == "calls")

EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)  # Before any call: "since the beginning".
SECOND = timedelta(seconds=1)
QUARTER_SECONDS, HOUR_SECONDS, DAY_SECONDS = 900, 3600, 86_400


@dataclass(frozen=True)
class UsageFilters:
    model_names: frozenset[str] | None = None  # None: every model; from the model and provider filters.
    user_id: int | None = None
    purpose: str | None = None

    @property
    def matches_nothing(self) -> bool:
        """A model or provider filter that resolved to no model: no call passes."""
        return self.model_names is not None and not self.model_names

    @property
    def needs_raw_log(self) -> bool:
        return self.user_id is not None or self.purpose is not None


# --- Windows as signed terms ----------------------------------------------------------------------
# Terms: ("day", first day, day after the last); ("hour", first hour, hour after the last): whole
# hours; ("prefix", hour, minutes): an hour's first 15, 30 or 45 minutes (its prefix columns);
# ("hours+prefix", first hour, last hour, minutes): the whole hours before the last and the last's
# prefix, one read; all in UTC epoch seconds. ("log", start, end) as UTC datetimes. Whole hours
# without a prefix are their own terms so that their rows are summed column by column, with no
# choice of column per row (a quarter of the hour terms' time in the zoned 366-day trend).
Term = tuple


def _utc(seconds: int) -> datetime:
    return EPOCH_START + timedelta(seconds=seconds)


class _Edge(NamedTuple):
    """A boundary in UTC: the moment, its whole epoch seconds, and its quarter hour's, hour's and
    UTC midnight's."""

    utc: datetime
    seconds: int
    quarter: int
    hour: int
    midnight: int

    @classmethod
    def of(cls, moment: datetime) -> "_Edge":
        utc = moment.astimezone(UTC)
        seconds = (utc - EPOCH_START) // SECOND
        return cls(
            utc,
            seconds,
            seconds - seconds % QUARTER_SECONDS,
            seconds - seconds % HOUR_SECONDS,
            seconds - seconds % DAY_SECONDS,
        )


def _since_hour(hour: int, edge: _Edge) -> dict[Term, int]:
    """Terms adding up to [hour, edge), for a UTC hour at or before the edge's hour."""
    terms: dict[Term, int] = {}
    minutes = (edge.quarter - edge.hour) // 60
    if hour < edge.hour and minutes:  # One read of the hours and the prefix after them.
        terms[("hours+prefix", hour, edge.hour, minutes)] = 1
    elif hour < edge.hour:
        terms[("hour", hour, edge.hour)] = 1
    elif minutes:
        terms[("prefix", edge.hour, minutes)] = 1
    if edge.quarter < edge.seconds or edge.utc.microsecond:
        terms[("log", _utc(edge.quarter), edge.utc)] = 1
    return terms


def _since_utc_midnight(edge: _Edge) -> dict[Term, int]:
    """Terms adding up to [the edge's UTC midnight, edge): at most 12 whole hours either way."""
    midnight = edge.midnight
    if edge.hour - midnight <= 12 * HOUR_SECONDS:
        return _since_hour(midnight, edge)
    # Past noon: the whole day minus its hours from the edge's hour on, plus what precedes the edge in its hour.
    terms = _since_hour(edge.hour, edge)
    terms[("day", midnight, midnight + DAY_SECONDS)] = 1
    terms[("hour", edge.hour, midnight + DAY_SECONDS)] = -1
    return terms


def _add(terms: dict[Term, int], more: dict[Term, int], sign: int) -> None:
    for term, its_sign in more.items():
        terms[term] = terms.get(term, 0) + sign * its_sign


def _log_edges_joined(terms: dict[Term, int]) -> dict[Term, int]:
    """Both ends in one quarter hour: +[q, end) -[q, start) is [start, end), one read of the log."""
    logs = [term for term in terms if term[0] == "log"]
    if len(logs) == 2 and logs[0][1] == logs[1][1]:
        (ending, sign), (starting, _sign) = sorted(((term, terms[term]) for term in logs), key=lambda ts: -ts[1])
        if sign == 1:
            del terms[ending], terms[starting]
            terms[("log", starting[2], ending[2])] = 1
    return terms


def _terms_between(start: _Edge, end: _Edge, before: list[dict[Term, int]]) -> dict[Term, int]:
    """[start, end) as signed terms; `before`: each edge's terms since its UTC midnight."""
    terms: dict[Term, int] = {}
    if start.midnight == end.midnight:  # Within one UTC day: its hours from start's hour on.
        _add(terms, _since_hour(start.hour, end), 1)
        _add(terms, _since_hour(start.hour, start), -1)
    else:
        terms[("day", start.midnight, end.midnight)] = 1
        _add(terms, before[0], -1)
        _add(terms, before[1], 1)
    return _log_edges_joined({term: sign for term, sign in terms.items() if sign})


def windows_terms(boundaries: Sequence[datetime], *, raw_log_only: bool = False) -> list[dict[Term, int]]:
    """For each window [boundaries[k], boundaries[k + 1]), the signed terms whose sum is exactly it
    (terms that cancel out dropped; an empty window has none)."""
    edges = [_Edge.of(moment) for moment in boundaries]
    if raw_log_only:
        return [{("log", s.utc, e.utc): 1} if s.utc < e.utc else {} for s, e in pairwise(edges)]
    before = [_since_utc_midnight(edge) for edge in edges]
    return [
        _terms_between(s, e, before[k : k + 2]) if s.utc < e.utc else {} for k, (s, e) in enumerate(pairwise(edges))
    ]


def window_terms(start: datetime, end: datetime, *, raw_log_only: bool = False) -> dict[Term, int]:
    """The signed terms whose sum is exactly [start, end)."""
    return windows_terms([start, end], raw_log_only=raw_log_only)[0]


# --- The statement ------------------------------------------------------------------------------


def _count_cast(rollup_sum, expression: str) -> str:
    # PostgreSQL sums bigint as numeric (and counts as bigint): one type per column in the UNION.
    return f"CAST({expression} AS BIGINT)" if rollup_sum.type is COUNT else expression


def _hour_column(name: str) -> str:
    """The column of a declared sum that a term of the hour rows reads: the whole hour before its last
    hour, the last hour's prefix of r.minutes."""
    prefixes = " ".join(f"WHEN {minutes} THEN t.{prefix_column(name, minutes)}" for minutes in PREFIX_MINUTES)
    return f"CASE WHEN t.bucket < r.last THEN t.{name} ELSE CASE r.minutes {prefixes} END END"


def _rollup_sums_sql(column_of, sums: Sums) -> str:
    return ", ".join(f"{s.type.sum_sql(column_of(s.name))} AS {s.name}" for s in sums)


def _log_sums_sql(sums: Sums = ROLLUP_SUMS) -> str:
    return ", ".join(f"{_count_cast(s, s.source.sql())} AS {s.name}" for s in sums)


@dataclass(frozen=True)
class _Part:
    kind: str
    columns: tuple[tuple[str, str], ...]  # of the terms' table r
    join: str  # how rows t of the table match a term r
    sums: str


def _parts(*, per_model: bool, sums: Sums) -> dict[str, tuple[_Part, str]]:
    """The rollup terms' parts of the statement (a join of the terms with the table), and the table."""
    day_table = (UsageRollupDaily if per_model else UsageRollupDailyTotal)._meta.db_table
    hour_table = (UsageRollupHour if per_model else UsageRollupHourTotal)._meta.db_table
    return {
        "day": (
            _Part(
                "day",
                (("i", INT), ("lo", EPOCH_DAYS), ("hi", EPOCH_DAYS)),
                "t.day >= r.lo AND t.day < r.hi",
                _rollup_sums_sql(lambda n: f"t.{n}", sums),
            ),
            day_table,
        ),
        "whole hours": (
            _Part(
                "whole hours",
                (("i", INT), ("lo", EPOCH_HOURS), ("hi", EPOCH_HOURS)),
                "t.bucket >= r.lo AND t.bucket < r.hi",
                _rollup_sums_sql(lambda n: f"t.{n}", sums),
            ),
            hour_table,
        ),
        "hours": (
            _Part(
                "hours",
                (("i", INT), ("lo", EPOCH_HOURS), ("last", EPOCH_HOURS), ("hi", EPOCH_HOURS), ("minutes", INT)),
                "t.bucket >= r.lo AND t.bucket < r.hi",
                _rollup_sums_sql(_hour_column, sums),
            ),
            hour_table,
        ),
    }


# From this many whole-hours terms on, they are read apart from the terms with a prefix (their rows
# summed column by column, no CASE per row); below it, one part reads every hour term, so a
# statement planned per request (stats: its end is now) has fewer parts to plan.
WHOLE_HOURS_APART = 32


def _part_rows(terms: list[Term]) -> dict[str, list[tuple]]:
    """Each term's parameters, by the part that reads it: in UTC days or hours since the epoch."""
    apart = sum(term[0] == "hour" for term in terms) >= WHOLE_HOURS_APART
    rows: dict[str, list[tuple]] = defaultdict(list)
    for i, term in enumerate(terms):
        kind, *bounds = term
        if kind == "day":
            rows["day"].append((i, bounds[0] // DAY_SECONDS, bounds[1] // DAY_SECONDS))
            continue
        if kind == "log":
            continue
        if kind == "hour" and apart:
            rows["whole hours"].append((i, bounds[0] // HOUR_SECONDS, bounds[1] // HOUR_SECONDS))
            continue
        if kind == "hour":
            (first, last), minutes = bounds, 0
        elif kind == "prefix":
            (first, minutes), last = bounds, bounds[0]
        else:  # hours+prefix
            first, last, minutes = bounds
        first, last = first // HOUR_SECONDS, last // HOUR_SECONDS
        rows["hours"].append((i, first, last, last + (1 if minutes else 0), minutes))
    return rows


def _filters_sql(
    connection: BaseDatabaseWrapper, filters: UsageFilters, kind: str, per_model: bool
) -> tuple[str, list]:
    sql, params = "", []
    if filters.model_names is not None and per_model:
        condition, params = in_list_sql(connection, "t.model_name", filters.model_names)
        sql += f" AND {condition}"
    if kind == "log":  # Only the log knows users and purposes.
        if filters.user_id is not None:
            sql, params = sql + " AND t.user_id = %s", [*params, filters.user_id]
        if filters.purpose is not None:
            sql, params = sql + " AND t.purpose = %s", [*params, filters.purpose]
    return sql, params


def log_filters_sql(connection: BaseDatabaseWrapper, filters: UsageFilters) -> tuple[str, list]:
    """`filters` on log rows t, as " AND ..." conditions and their parameters."""
    return _filters_sql(connection, filters, "log", True)


def log_sums_sql(sums: Sums = ROLLUP_SUMS) -> str:
    """The declared sums over a group of log rows t, in their order."""
    return _log_sums_sql(sums)


def _log_select(connection: BaseDatabaseWrapper, i: int, term: Term, filters: UsageFilters, by_model: bool, sums: Sums):
    """A log term's sums: its own select with constant bounds, so the planner prunes the log's
    partitions and scans its timestamp index (a join on ranges would leave it guessing)."""
    where, params = _filters_sql(connection, filters, "log", True)
    key, group = (f"{i} AS i, t.model_name AS model_name", " GROUP BY t.model_name") if by_model else (f"{i} AS i", "")
    sql = (
        f"SELECT {key}, {_log_sums_sql(sums)} FROM {UsageLog._meta.db_table} AS t "  # noqa: S608
        f"WHERE t.timestamp >= %s AND t.timestamp < %s{where}{group}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    return sql, [adapt(term[1]), adapt(term[2]), *params]


def _statement(
    connection: BaseDatabaseWrapper,
    terms: list[Term],
    signs: list[tuple[int, int, int]],
    filters: UsageFilters,
    by_model: bool,
    sums: Sums,
) -> tuple[str, list]:
    """One SELECT of (window number, [model_name,] sums...) rows: each term's sums (x: a UNION ALL of
    one part per kind of rollup term and one per log term), added up per window with the term's
    sign in it (w)."""
    per_model = by_model or filters.model_names is not None
    selects, params = [], []
    part_rows = _part_rows(terms)
    for kind, (part, table) in _parts(per_model=per_model, sums=sums).items():
        rows = part_rows.get(kind)
        if not rows:
            continue
        terms_sql, terms_params = values_table_sql(connection, part.columns, rows)
        where, where_params = _filters_sql(connection, filters, kind, per_model)
        selects.append(
            range_terms_sql(
                connection,
                terms_sql=terms_sql,
                table=table,
                condition=part.join + where,
                by_model=by_model,
                sums_sql=part.sums,
                sum_names=[s.name for s in sums],
            )
        )
        params += terms_params + where_params
    for i, term in enumerate(terms):
        if term[0] == "log":
            sql, log_params = _log_select(connection, i, term, filters, by_model, sums)
            selects.append(sql)
            params += log_params
    signs_sql, signs_params = values_table_sql(connection, (("n", INT), ("i", INT), ("sign", INT)), signs)
    window_key = "w.n, x.model_name" if by_model else "w.n"
    signed = ", ".join(s.type.sum_sql(f"w.sign * x.{s.name}") for s in sums)
    sql = (
        f"WITH x AS ({' UNION ALL '.join(selects)}) "  # noqa: S608
        f"SELECT {window_key}, {signed} FROM x JOIN {signs_sql} AS w ON w.i = x.i GROUP BY {window_key}"
    )
    return sql, params + signs_params


def _log_statement(
    connection: BaseDatabaseWrapper, boundaries: Sequence[datetime], filters: UsageFilters, by_model: bool, sums: Sums
) -> tuple[str, list]:
    """One SELECT of (window number, [model_name,] sums...) rows straight from the log: one scan of
    [b0, bn) through its timestamp index, each row numbered by the window it falls in."""
    window_sql, window_params = window_number_sql(connection, "t.timestamp", boundaries)
    where, params = _filters_sql(connection, filters, "log", True)
    key = f"{window_sql}, t.model_name" if by_model else window_sql
    sql = (
        f"SELECT {key}, {_log_sums_sql(sums)} FROM {UsageLog._meta.db_table} AS t "  # noqa: S608
        f"WHERE t.timestamp >= %s AND t.timestamp < %s{where} GROUP BY {'1, 2' if by_model else '1'}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    return sql, [*window_params, adapt(boundaries[0]), adapt(boundaries[-1]), *params]


@dataclass(eq=False)
class _Statement:
    """A window statement, kept for the next request (the daily trend's boundaries stay the same all
    day): once it runs again in this process, PostgreSQL runs it by name (core.prepared), its text with
    the parameters in it, so it is parsed and planned once per connection."""

    sql: str
    params: tuple  # Shared by every call that hits the cache: immutable.
    runs: int = 0
    _literal: str | None = None
    _name: str | None = None

    def rows(self, connection: BaseDatabaseWrapper) -> list[tuple]:
        self.runs += 1
        if connection.vendor == "postgresql" and self.runs > 1:
            if self._literal is None:
                self._literal = connection.ops.compose_sql(self.sql, self.params)
                self._name = prepared.statement_name(self._literal)
            return prepared.fetch_all(connection, self._literal, name=self._name)
        with connection.cursor() as cursor:  # One statement: one snapshot, in any transaction or none.
            cursor.execute(self.sql, self.params)
            return cursor.fetchall()


@lru_cache(maxsize=128)
def _window_statement(
    alias: str, boundaries: tuple[datetime, ...], filters: UsageFilters, by_model: bool, sums: Sums
) -> _Statement | None:
    """The statement for these windows (None: nothing to read): a pure function of its arguments."""
    connection = connections[alias]
    if filters.needs_raw_log:
        sql, params = _log_statement(connection, boundaries, filters, by_model, sums)
        return _Statement(sql, tuple(params))
    numbers: dict[Term, int] = {}
    signs = []  # (window, term number, sign)
    for n, terms in enumerate(windows_terms(boundaries)):
        for term, sign in terms.items():
            signs.append((n, numbers.setdefault(term, len(numbers)), sign))
    if not numbers:
        return None
    sql, params = _statement(connection, list(numbers), signs, filters, by_model, sums)
    return _Statement(sql, tuple(params))


def _window_sums(
    boundaries: Sequence[datetime], filters: UsageFilters, by_model: bool, using: str | None, sums: Sums = ROLLUP_SUMS
) -> list[dict[str | None, RollupDelta]]:
    """For each window, the sums per model (by_model) or under None, of the keys with calls in it:
    every declared sum, or only `sums` (the others None)."""
    if CALLS not in sums:
        raise ValueError("a read of the sums must take calls: it tells a window with calls from one without")
    answers: list[dict[str | None, RollupDelta]] = [{} for _window in pairwise(boundaries)]
    if not answers or boundaries[0] >= boundaries[-1] or filters.matches_nothing:
        return answers
    alias = using or router.db_for_read(UsageRollupHour)
    connection = connections[alias]
    utc = tuple(moment.astimezone(UTC) for moment in boundaries)
    # Windows ending at an unaligned moment (stats: now) never come again: not kept, so they do not
    # push the ones that do (the trend's) out of the cache.
    aligned = all(m.minute % 15 == 0 and not m.second and not m.microsecond for m in utc)
    statement = (_window_statement if aligned else _window_statement.__wrapped__)(alias, utc, filters, by_model, sums)
    if statement is None:
        return answers
    rows = statement.rows(connection)
    read_delta = delta_reader(sums)
    for row in rows:
        key, values = (row[1], row[2:]) if by_model else (None, row[1:])
        read = read_delta(values)
        if read.calls:  # Without calls in the window a key has nothing else there (float leftovers of signed terms).
            answers[row[0]][key] = read
    return answers


def usage_sums_by_window(
    *, boundaries: Sequence[datetime], filters: UsageFilters, using: str | None = None
) -> list[dict[str, RollupDelta]]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums per model (models with calls in it)."""
    return _window_sums(boundaries, filters, True, using)


def usage_totals_by_window(
    *, boundaries: Sequence[datetime], filters: UsageFilters, using: str | None = None, sums: Sums = ROLLUP_SUMS
) -> list[RollupDelta]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums over all models passing `filters`:
    every declared sum, or only `sums` (the others None; a window without calls is all zeros)."""
    return [window.get(None, RollupDelta()) for window in _window_sums(boundaries, filters, False, using, sums)]


def usage_sums_over_spans(
    *, spans: Sequence[tuple[datetime | None, datetime]], filters: UsageFilters, using: str | None = None
) -> list[dict[str, RollupDelta]]:
    """The sums per model over each span [start, end) (start None: since the beginning), spans that
    may overlap: one read of the windows between all their ends."""
    spans = [(EPOCH_START if start is None else start, end) for start, end in spans]
    boundaries = sorted({moment.astimezone(UTC) for span in spans for moment in span})
    windows = usage_sums_by_window(boundaries=boundaries, filters=filters, using=using)
    position = {moment: n for n, moment in enumerate(boundaries)}
    answers = []
    for start, end in spans:
        total: dict[str, RollupDelta] = {}
        for window in windows[position[start.astimezone(UTC)] : max(position[end.astimezone(UTC)], 0)]:
            for model_name, sums in window.items():
                total[model_name] = total[model_name] + sums if model_name in total else sums
        answers.append(total)
    return answers


def usage_sums_by_model(
    *, start: datetime | None, end: datetime, filters: UsageFilters, using: str | None = None
) -> dict[str, RollupDelta]:
    """Sums per model over [start, end) (start None: since the beginning), from database `using`
    (default: where the router sends reads)."""
    return usage_sums_over_spans(spans=[(start, end)], filters=filters, using=using)[0]


def local_midnights(*, first_day: date, days: int, zone: tzinfo) -> list[datetime]:
    """The starts of `days` calendar days in `zone` from `first_day`, and the end of the last."""
    return [datetime.combine(first_day + timedelta(days=n), time.min, tzinfo=zone) for n in range(days + 1)]


def usage_sums_by_local_day(
    *,
    first_day: date,
    days: int,
    zone: tzinfo,
    filters: UsageFilters,
    sums: Sums = ROLLUP_SUMS,
    using: str | None = None,
) -> dict[date, RollupDelta]:
    """Sums per calendar day in `zone` for `days` days from `first_day` (days with calls): every
    declared sum, or only `sums` (the others None)."""
    boundaries, dates = local_days_utc(first_day, days, zone)
    totals = usage_totals_by_window(boundaries=boundaries, filters=filters, sums=sums, using=using)
    return {day: sums for day, sums in zip(dates, totals, strict=True) if sums.calls}


@lru_cache(maxsize=64)
def local_days_utc(first_day: date, days: int, zone: tzinfo) -> tuple[tuple[datetime, ...], tuple[date, ...]]:
    """local_midnights in UTC, and the days they start: the same all day for the trend's request."""
    midnights = local_midnights(first_day=first_day, days=days, zone=zone)
    return tuple(moment.astimezone(UTC) for moment in midnights), tuple(m.date() for m in midnights[:-1])


def usage_log_window(*, start: datetime | None, end: datetime, filters: UsageFilters) -> QuerySet[UsageLog]:
    """The raw log rows in [start, end) passing `filters`: exactly the rows the sums add up."""
    rows = UsageLog.objects.filter(timestamp__lt=end).order_by()
    if start is not None:
        rows = rows.filter(timestamp__gte=start)
    if filters.model_names is not None:
        rows = rows.filter(model_name__in=filters.model_names)
    if filters.user_id is not None:
        rows = rows.filter(user_id=filters.user_id)
    if filters.purpose is not None:
        rows = rows.filter(purpose=filters.purpose)
    return rows


# --- Sums per user or purpose (budgets) -----------------------------------------------------------
# No rollup carries users or purposes yet: these read the log, bounded by the keys asked for and the
# windows, through its partial (user_id, timestamp) and (purpose, timestamp) indexes (UsageLog.Meta).
LOG_KEYS = {"user_id": "user_id", "purpose": "purpose"}
_KEY_PRESENT = {"user_id": "t.user_id IS NOT NULL", "purpose": "t.purpose <> ''"}  # The indexes' conditions.


def usage_log_sums_by_key(
    *, key: str, values: Collection, boundaries: Sequence[datetime], using: str | None = None
) -> list[dict]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums per value of `key` (user_id or
    purpose) among `values` (values with calls in it), in one statement: an index range scan per value
    of its rows within [boundaries[0], boundaries[-1])."""
    column = LOG_KEYS[key]
    answers: list[dict] = [{} for _window in pairwise(boundaries)]
    values = sorted(set(values))
    if not answers or not values or boundaries[0] >= boundaries[-1]:
        return answers
    alias = using or router.db_for_read(UsageLog)
    connection = connections[alias]
    window_sql, window_params = window_number_sql(connection, "t.timestamp", boundaries)
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"SELECT {window_sql}, t.{column}, {_log_sums_sql()} FROM {UsageLog._meta.db_table} AS t "  # noqa: S608
        f"WHERE {_KEY_PRESENT[key]} AND t.{column} IN ({', '.join(['%s'] * len(values))}) "
        f"AND t.timestamp >= %s AND t.timestamp < %s GROUP BY 1, 2"
    )
    params = [*window_params, *values, adapt(boundaries[0]), adapt(boundaries[-1])]
    with connection.cursor() as cursor:  # One statement: one snapshot, in any transaction or none.
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for row in rows:
        answers[row[0]][row[1]] = RollupDelta.from_db(row[2:])
    return answers
