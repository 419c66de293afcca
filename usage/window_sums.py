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

Rollup tables may hold several rows per key (delta rows not yet compacted): every term SUMs rows.
Filters on user_id or purpose are not rollup dimensions; those windows are summed from the raw log.
Without a model filter, totals read the all-models rollups (one row per bucket). The statement runs
in one snapshot; with a read replica configured, reporting reads go to it (core.db_routers).
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from usage.dialects import DATE, INT, TIMESTAMP, in_list_sql, snapshot_begin, values_table_sql
from usage.models import (
    PREFIX_MINUTES,
    UsageLog,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    prefix_column,
)
from usage.rollup_sums import COUNT, ROLLUP_SUMS, RollupDelta

EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)  # Before any call: "since the beginning".
SECOND = timedelta(seconds=1)
QUARTER_SECONDS, HOUR_SECONDS, DAY_SECONDS = 900, 3600, 86_400
WHOLE_HOUR = 60  # minutes of an hour row's sums: its plain columns


@dataclass(frozen=True)
class UsageFilters:
    model_names: frozenset[str] | None = None  # None: every model; from the model and provider filters.
    user_id: int | None = None
    purpose: str | None = None

    @property
    def needs_raw_log(self) -> bool:
        return self.user_id is not None or self.purpose is not None


# --- Windows as signed terms ----------------------------------------------------------------------
# Terms: ("day", first day, day after the last), ("hour", first hour, hour after the last, minutes
# of each row summed), both in UTC epoch seconds; ("log", start, end) as UTC datetimes.
Term = tuple


def _epoch_seconds(moment: datetime) -> int:
    return (moment - EPOCH_START) // SECOND


def _utc(seconds: int) -> datetime:
    return EPOCH_START + timedelta(seconds=seconds)


def _since_hour(hour: int, moment: datetime) -> dict[Term, int]:
    """Terms adding up to [hour, moment), for a UTC hour at or before moment's hour."""
    seconds = _epoch_seconds(moment)
    quarter = seconds - seconds % QUARTER_SECONDS
    its_hour = seconds - seconds % HOUR_SECONDS
    terms: dict[Term, int] = {}
    if hour < its_hour:
        terms[("hour", hour, its_hour, WHOLE_HOUR)] = 1
    if its_hour < quarter:
        terms[("hour", its_hour, its_hour + HOUR_SECONDS, (quarter - its_hour) // 60)] = 1
    if _utc(quarter) < moment:
        terms[("log", _utc(quarter), moment.astimezone(UTC))] = 1
    return terms


def _since_utc_midnight(moment: datetime) -> dict[Term, int]:
    """Terms adding up to [moment's UTC midnight, moment): at most 12 whole hours either way."""
    seconds = _epoch_seconds(moment)
    midnight, hour = seconds - seconds % DAY_SECONDS, seconds - seconds % HOUR_SECONDS
    if hour - midnight <= 12 * HOUR_SECONDS:
        return _since_hour(midnight, moment)
    # Past noon: the whole day minus its hours from moment's hour on, plus what precedes moment in its hour.
    terms = _since_hour(hour, moment)
    terms[("day", midnight, midnight + DAY_SECONDS)] = 1
    terms[("hour", hour, midnight + DAY_SECONDS, WHOLE_HOUR)] = -1
    return terms


def _add(terms: dict[Term, int], more: dict[Term, int], sign: int) -> None:
    for term, its_sign in more.items():
        terms[term] += sign * its_sign


def _log_edges_joined(terms: dict[Term, int]) -> dict[Term, int]:
    """Both ends in one quarter hour: +[q, end) -[q, start) is [start, end), one read of the log."""
    logs = [term for term in terms if term[0] == "log"]
    if len(logs) == 2 and logs[0][1] == logs[1][1]:
        (ending, sign), (starting, _sign) = sorted(((term, terms[term]) for term in logs), key=lambda ts: -ts[1])
        if sign == 1:
            del terms[ending], terms[starting]
            terms[("log", starting[2], ending[2])] = 1
    return terms


def window_terms(start: datetime, end: datetime, *, raw_log_only: bool = False) -> dict[Term, int]:
    """The signed terms whose sum is exactly [start, end) (terms that cancel out dropped)."""
    if start >= end:
        return {}
    if raw_log_only:
        return {("log", start.astimezone(UTC), end.astimezone(UTC)): 1}
    first, last = (_epoch_seconds(moment) // DAY_SECONDS * DAY_SECONDS for moment in (start, end))
    terms: dict[Term, int] = defaultdict(int)
    if first == last:  # Within one UTC day: its hours from start's hour on.
        seconds = _epoch_seconds(start)
        hour = seconds - seconds % HOUR_SECONDS
        _add(terms, _since_hour(hour, end), 1)
        _add(terms, _since_hour(hour, start), -1)
    else:
        terms[("day", first, last)] += 1
        _add(terms, _since_utc_midnight(start), -1)
        _add(terms, _since_utc_midnight(end), 1)
    return _log_edges_joined({term: sign for term, sign in terms.items() if sign})


# --- The statement ------------------------------------------------------------------------------


def _count_cast(rollup_sum, expression: str) -> str:
    # PostgreSQL sums bigint as numeric (and counts as bigint): one type per column in the UNION.
    return f"CAST({expression} AS BIGINT)" if rollup_sum.type is COUNT else expression


def _hour_column(name: str) -> str:
    """The column of a declared sum that an hour term reads: the whole hour, or r.minutes' prefix."""
    prefixes = " ".join(f"WHEN {minutes} THEN t.{prefix_column(name, minutes)}" for minutes in PREFIX_MINUTES)
    return f"CASE r.minutes WHEN {WHOLE_HOUR} THEN t.{name} {prefixes} END"


def _rollup_sums_sql(column_of) -> str:
    return ", ".join(s.type.sum_sql(column_of(s.name)) for s in ROLLUP_SUMS)


def _log_sums_sql() -> str:
    return ", ".join(_count_cast(s, s.source.sql()) for s in ROLLUP_SUMS)


@dataclass(frozen=True)
class _Part:
    kind: str
    columns: tuple[tuple[str, str], ...]  # of the terms' table r
    join: str  # how rows t of the table match a term r
    sums: str


def _parts(*, per_model: bool) -> dict[str, tuple[_Part, str]]:
    """Each term kind's part of the statement, and the table it reads."""
    day_table = (UsageRollupDaily if per_model else UsageRollupDailyTotal)._meta.db_table
    hour_table = (UsageRollupHour if per_model else UsageRollupHourTotal)._meta.db_table
    return {
        "day": (
            _Part(
                "day",
                (("i", INT), ("lo", DATE), ("hi", DATE)),
                "t.day >= r.lo AND t.day < r.hi",
                _rollup_sums_sql(lambda n: f"t.{n}"),
            ),
            day_table,
        ),
        "hour": (
            _Part(
                "hour",
                (("i", INT), ("lo", TIMESTAMP), ("hi", TIMESTAMP), ("minutes", INT)),
                "t.bucket >= r.lo AND t.bucket < r.hi",
                _rollup_sums_sql(_hour_column),
            ),
            hour_table,
        ),
        "log": (
            _Part(
                "log",
                (("i", INT), ("lo", TIMESTAMP), ("hi", TIMESTAMP)),
                "t.timestamp >= r.lo AND t.timestamp < r.hi",
                _log_sums_sql(),
            ),
            UsageLog._meta.db_table,
        ),
    }


def _term_row(i: int, term: Term) -> tuple:
    kind = term[0]
    if kind == "day":
        return (i, _utc(term[1]).date(), _utc(term[2]).date())
    if kind == "hour":
        return (i, _utc(term[1]), _utc(term[2]), term[3])
    return (i, term[1], term[2])


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


def _statement(
    connection: BaseDatabaseWrapper, terms: list[Term], filters: UsageFilters, by_model: bool
) -> tuple[str, list]:
    """One SELECT of (term number, [model_name,] sums...) rows: a UNION ALL of one part per kind."""
    per_model = by_model or filters.model_names is not None
    key = "r.i, t.model_name" if by_model else "r.i"
    selects, params = [], []
    for kind, (part, table) in _parts(per_model=per_model).items():
        rows = [_term_row(i, term) for i, term in enumerate(terms) if term[0] == kind]
        if not rows:
            continue
        terms_sql, terms_params = values_table_sql(connection, part.columns, rows)
        where, where_params = _filters_sql(connection, filters, kind, per_model)
        selects.append(
            f"SELECT {key}, {part.sums} FROM {terms_sql} AS r JOIN {table} AS t "  # noqa: S608
            f"ON {part.join}{where} GROUP BY {key}"
        )
        params += terms_params + where_params
    return " UNION ALL ".join(selects), params


@contextmanager
def _one_snapshot(alias: str) -> Iterator[None]:
    """A transaction whose reads all see the same committed data (PostgreSQL: REPEATABLE READ), so a
    compaction or a batch committing meanwhile is seen by the whole answer or not at all. Inside a
    transaction already (ingestion evaluating budgets), that transaction is the snapshot."""
    connection = connections[alias]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=alias):
        snapshot_begin(connection)
        yield


def _typed(values: Sequence) -> list:
    return [
        s.type.zero if value is None else s.type.from_db(value) for s, value in zip(ROLLUP_SUMS, values, strict=True)
    ]


def _term_sums(
    terms: list[Term], filters: UsageFilters, by_model: bool, using: str | None
) -> dict[int, dict[str | None, list]]:
    """Each term's sums (by term number), per model (or under None), from one statement."""
    alias = using or router.db_for_read(UsageRollupHour)
    connection = connections[alias]
    sql, params = _statement(connection, terms, filters, by_model)
    found: dict[int, dict[str | None, list]] = defaultdict(dict)
    with _one_snapshot(alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            model_name, values = (row[1], row[2:]) if by_model else (None, row[1:])
            found[row[0]][model_name] = _typed(values)
    return found


def _window_sums(
    boundaries: Sequence[datetime], filters: UsageFilters, by_model: bool, using: str | None
) -> list[dict[str | None, RollupDelta]]:
    windows = [window_terms(start, end, raw_log_only=filters.needs_raw_log) for start, end in pairwise(boundaries)]
    if filters.model_names is not None and not filters.model_names:
        return [{} for _window in windows]
    numbers: dict[Term, int] = {}
    for terms in windows:
        for term in terms:
            numbers.setdefault(term, len(numbers))
    if not numbers:
        return [{} for _window in windows]
    found = _term_sums(list(numbers), filters, by_model, using)
    answers = []
    for terms in windows:
        totals: dict[str | None, list] = {}
        for term, sign in terms.items():
            for key, values in found.get(numbers[term], {}).items():
                total = totals.setdefault(key, [s.type.zero for s in ROLLUP_SUMS])
                for n, value in enumerate(values):
                    total[n] += sign * value
        # A key without calls in the window has nothing else there (float leftovers of signed terms).
        answers.append({key: RollupDelta(*total) for key, total in totals.items() if RollupDelta(*total).calls})
    return answers


def usage_sums_by_window(
    *, boundaries: Sequence[datetime], filters: UsageFilters, using: str | None = None
) -> list[dict[str, RollupDelta]]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums per model (models with calls in it)."""
    return _window_sums(boundaries, filters, True, using)


def usage_totals_by_window(
    *, boundaries: Sequence[datetime], filters: UsageFilters, using: str | None = None
) -> list[RollupDelta]:
    """For each window [boundaries[k], boundaries[k + 1]), the sums over all models passing `filters`."""
    return [window.get(None, RollupDelta()) for window in _window_sums(boundaries, filters, False, using)]


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
    *, first_day: date, days: int, zone: tzinfo, filters: UsageFilters
) -> dict[date, RollupDelta]:
    """Sums per calendar day in `zone` for `days` days from `first_day` (days with calls)."""
    boundaries = local_midnights(first_day=first_day, days=days, zone=zone)
    totals = usage_totals_by_window(boundaries=boundaries, filters=filters)
    return {first_day + timedelta(days=n): sums for n, sums in enumerate(totals) if sums.calls}


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
