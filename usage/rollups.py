"""Upkeep of the usage rollups, inside the ingestion transaction.

Two grains: UTC hours, whose rows also hold the sums of the hour's first 15, 30 and 45 minutes
(exact calendar days in any time zone), and UTC days (long ranges); each per model and for all
models together (the unfiltered daily trend reads one row per bucket).

Each batch sums its calls once per 15-minute bucket and model in Python. On PostgreSQL it appends
those sums to ai_usage_rollup_pending by COPY, one row per hour and model holding each quarter's
sums; every AICOST_ROLLUP_FOLD_SECONDS a fold moves all pending sums into the four rollups in one
statement (an INSERT ... ON CONFLICT DO UPDATE per table, each regrouping the sums to its grain),
so a rollup row is rewritten once per fold rather than once per batch. Reads add the pending sums,
so answers are exact at every moment. Folds run one at a time (an advisory lock) and write rows in
key order, so they cannot deadlock with each other; batches only append. SQLite (local use)
upserts the rollups directly.

What a row sums is declared once, in usage.rollup_sums.ROLLUP_SUMS: every column list, SQL
aggregate and batch sum here is derived from it, in its order (SUM_NAMES).
"""

import math
import operator
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from operator import attrgetter
from typing import Protocol

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Max
from django.db.models.expressions import Combinable

from usage.models import (
    PREFIX_MINUTES,
    QUARTERS,
    UsageLog,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    UsageRollupPending,
    prefix_column,
    quarter_column,
)
from usage.partitions import month_bounds_utc, next_month
from usage.rollup_sums import ROLLUP_SUMS, SUM_NAMES

QUARTER_HOUR = timedelta(minutes=15)


class LoggedCall(Protocol):
    """What the rollups read of a stored call (usage.services.UsageRow, or a UsageLog): its bucket
    and model, and the columns the declared sums read (usage.rollup_sums)."""

    model_name: str
    timestamp: datetime
    success: bool
    cost_source: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: Decimal | None
    response_time: float | None


def quarter_hour_floor(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


@dataclass(frozen=True)
class Grain:
    """One rollup table: its bucket column, whether rows are per model, and whether they hold the
    hour's prefix sums. `from_hours` maps an hour's start to this grain's bucket in SQL."""

    model: type[models.Model]
    key_column: str
    key_type: str
    per_model: bool
    prefixes: bool
    from_hours: dict[str, str]


_SAME_HOUR = {"postgresql": "bucket", "sqlite": "bucket"}
_DAY_OF_HOUR = {"postgresql": "(bucket AT TIME ZONE 'UTC')::date", "sqlite": "date(bucket)"}

HOUR_GRAIN = Grain(UsageRollupHour, "bucket", "timestamptz", True, True, _SAME_HOUR)
HOUR_TOTAL_GRAIN = Grain(UsageRollupHourTotal, "bucket", "timestamptz", False, True, _SAME_HOUR)
DAY_GRAIN = Grain(UsageRollupDaily, "day", "date", True, False, _DAY_OF_HOUR)
DAY_TOTAL_GRAIN = Grain(UsageRollupDailyTotal, "day", "date", False, False, _DAY_OF_HOUR)
# The order batches lock rollup rows in.
GRAINS = (HOUR_GRAIN, HOUR_TOTAL_GRAIN, DAY_GRAIN, DAY_TOTAL_GRAIN)


QUARTER_SECONDS = 15 * 60

_TIMESTAMP, _MODEL_NAME = attrgetter("timestamp"), attrgetter("model_name")
_ZEROS = [rollup_sum.type.zero for rollup_sum in ROLLUP_SUMS]


def quarter_sums(logs: Iterable[LoggedCall]) -> dict[tuple[int, str], list]:
    """Sums of the logs per (15-minute bucket as UTC epoch seconds, model_name), in SUM_NAMES
    order. Each declared sum takes its calls' shares in one pass over the batch (C loops, no
    per-call Python per sum); integer buckets: a batch of a thousand calls is summed in about a
    millisecond."""
    logs = logs if isinstance(logs, Sequence) else list(logs)
    epochs = map(int, map(datetime.timestamp, map(_TIMESTAMP, logs)))
    keys = [(epoch - epoch % QUARTER_SECONDS, name) for epoch, name in zip(epochs, map(_MODEL_NAME, logs), strict=True)]
    shares_per_call = zip(*(rollup_sum.source.shares(logs) for rollup_sum in ROLLUP_SUMS), strict=True)
    groups: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for key, shares in zip(keys, shares_per_call, strict=True):
        groups[key].append(shares)
    return {key: _added_up(calls) for key, calls in groups.items()}


def _added_up(calls: list[tuple]) -> list:
    """The calls' shares added up per sum, from the sums' typed zeros (True + 0 is 1; a lone call,
    common when a batch spreads over a day, skips the column sums)."""
    if len(calls) == 1:
        return list(map(operator.add, _ZEROS, calls[0]))
    return list(map(sum, zip(*calls, strict=True), _ZEROS))


def array_literal(values: Iterable) -> str:
    """A PostgreSQL array literal, every element quoted: one text parameter is far cheaper for the
    driver to send than a list it adapts element by element."""
    escaped = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in escaped) + "}"


def _key_columns(grain: Grain) -> list[str]:
    return [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]


def rollup_columns(grain: Grain) -> list[str]:
    """The sums a grain's rows hold: SUM_NAMES, then for hour grains each prefix of them."""
    if not grain.prefixes:
        return list(SUM_NAMES)
    return [*SUM_NAMES, *(prefix_column(c, minutes) for minutes in PREFIX_MINUTES for c in SUM_NAMES)]


# An hour-shaped relation (h): an hour's start, a model, and the hour's sums and prefix sums. Every
# rollup is summed from one, made from 15-minute sums (a batch's, the log's) or from pending rows.
_HOUR_OF_QUARTER = {
    "postgresql": "date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    # SQLite stores UTC text. %% because the SQL is run with parameters.
    "sqlite": "strftime('%%Y-%%m-%%d %%H:00:00', bucket)",
}


def _hours_from_quarters_sql(quarters_sql: str, vendor: str) -> str:
    """The hour-shaped sums of a relation of 15-minute sums (columns _Q_COLUMNS): a prefix of n
    quarters sums the quarters before the n-th."""
    sums = [f"sum({c}) AS {c}" for c in SUM_NAMES]
    for minutes in PREFIX_MINUTES:
        sums += [
            f"sum(CASE WHEN quarter < {minutes // 15} THEN {c} ELSE 0 END) AS {prefix_column(c, minutes)}"
            for c in SUM_NAMES
        ]
    return (
        f"SELECT {_HOUR_OF_QUARTER[vendor]} AS bucket, model_name, {', '.join(sums)} "  # noqa: S608
        f"FROM ({quarters_sql}) AS q GROUP BY 1, 2"
    )


def _grain_upsert_sql(grain: Grain, vendor: str) -> str:
    """INSERT ... SELECT the sums of the hour-shaped relation h regrouped by the grain's keys, in key
    order (the order rows are locked in), adding to the rows already there."""
    table = grain.model._meta.db_table
    keys = _key_columns(grain)
    stored = rollup_columns(grain)
    key_values = ", ".join([grain.from_hours[vendor], *keys[1:]])
    order = ", ".join(str(n) for n in range(1, len(keys) + 1))
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in stored)
    # WHERE true: SQLite's parser needs it between SELECT and ON CONFLICT. Names come from metadata.
    return (
        f"INSERT INTO {table} ({', '.join([*keys, *stored])}) "  # noqa: S608
        f"SELECT {key_values}, {', '.join(f'sum({c})' for c in stored)} FROM h WHERE true "
        f"GROUP BY {order} ORDER BY {order} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_Q_COLUMNS = ["bucket", "quarter", "model_name", *SUM_NAMES]


def _upserts_run(cursor, hours_sql: str, params: list, *, before: str = "", result: str = "1") -> None:
    """Add the hour-shaped sums of hours_sql to every grain. PostgreSQL: one statement, after the
    CTEs in `before` (hours_sql may read them), selecting `result`. SQLite (local use) has no
    INSERT inside WITH: one statement per grain."""
    if connection.vendor == "postgresql":
        upserts = ", ".join(f"g{n} AS ({_grain_upsert_sql(grain, 'postgresql')})" for n, grain in enumerate(GRAINS))
        cursor.execute(f"WITH {before}h AS ({hours_sql}), {upserts} SELECT {result}", params)
        return
    for grain in GRAINS:
        cursor.execute(f"WITH h AS ({hours_sql}) {_grain_upsert_sql(grain, 'sqlite')}", params)


PENDING_TABLE = UsageRollupPending._meta.db_table


PENDING_COLUMNS = [quarter_column(c, quarter) for quarter in QUARTERS for c in SUM_NAMES]
_PENDING_TYPES = ["timestamptz", "text"] + [s.type.sql_type for _quarter in QUARTERS for s in ROLLUP_SUMS]


def pending_rows(sums: dict[tuple[int, str], list]) -> dict[tuple[int, str], list]:
    """The batch's 15-minute sums as pending rows: per (hour, model), PENDING_COLUMNS' values."""
    width = len(SUM_NAMES)
    rows: dict[tuple[int, str], list] = {}
    for (epoch, model_name), values in sums.items():
        key = (epoch - epoch % 3600, model_name)
        row = rows.get(key)
        if row is None:
            row = rows[key] = _ZEROS * len(QUARTERS)
        quarter = epoch % 3600 // QUARTER_SECONDS
        row[quarter * width : (quarter + 1) * width] = values
    return rows


def _pending_append(sums: dict[tuple[int, str], list]) -> None:
    """PostgreSQL: append the batch's sums to the pending ones by binary COPY (no SQL to plan, no
    text to format or parse), one row per hour and model."""
    columns = ", ".join(["bucket", "model_name", *PENDING_COLUMNS])
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {PENDING_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(_PENDING_TYPES)
        for (hour, model_name), values in pending_rows(sums).items():
            copy.write_row((datetime.fromtimestamp(hour, UTC), model_name, *values))


def pending_quarters_sum(column: str, quarters: Iterable[int] = QUARTERS) -> Combinable:
    """ORM expression adding up a pending row's sums of `column` (a declared sum's name) over some
    quarters of its hour."""
    if column not in SUM_NAMES:
        raise ValueError(f"{column!r} is not a declared rollup sum (usage.rollup_sums.ROLLUP_SUMS)")
    return reduce(operator.add, (F(quarter_column(column, quarter)) for quarter in quarters))


def pending_sum_sql(column: str, quarters: Iterable[int] = QUARTERS) -> str:
    """SQL adding up a pending row's sums of `column` over some quarters of its hour."""
    return " + ".join(quarter_column(column, quarter) for quarter in quarters)


def _hours_from_pending_sql(pending_sql: str) -> str:
    """The hour-shaped sums of pending rows: the whole hour, and its first 1, 2 and 3 quarters."""
    sums = [f"sum({pending_sum_sql(c)}) AS {c}" for c in SUM_NAMES]
    for minutes in PREFIX_MINUTES:
        quarters = range(minutes // 15)
        sums += [f"sum({pending_sum_sql(c, quarters)}) AS {prefix_column(c, minutes)}" for c in SUM_NAMES]
    return f"SELECT bucket, model_name, {', '.join(sums)} FROM ({pending_sql}) AS p GROUP BY 1, 2"  # noqa: S608


FOLD_LOCK = 0x61695F666F6C64  # pg_try_advisory_xact_lock key: one fold at a time.
_last_fold = {"at": -math.inf}


@transaction.atomic
def rollups_fold() -> int | None:
    """Move every committed pending sum into the rollups, in one statement; returns the number of
    pending rows folded, or None when another fold is running (it folds them instead).

    DELETE ... RETURNING removes exactly the rows this statement adds up: a batch committing
    meanwhile keeps its rows pending for the next fold, and reads see them before or after."""
    if connection.vendor != "postgresql":
        return 0  # SQLite batches write the rollups directly.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FOLD_LOCK])
        if not cursor.fetchone()[0]:
            return None
        columns = ", ".join(["bucket", "model_name", *PENDING_COLUMNS])
        moved = f"moved AS (DELETE FROM {PENDING_TABLE} RETURNING {columns}), "  # noqa: S608
        hours = _hours_from_pending_sql("SELECT * FROM moved")
        _upserts_run(cursor, hours, [], before=moved, result="(SELECT count(*) FROM moved)")
        return cursor.fetchone()[0]


def rollups_fold_if_due() -> None:
    """Fold when this process last folded AICOST_ROLLUP_FOLD_SECONDS ago or more (ingestion): 0
    folds in every batch, inf in none (usage_rollups_fold, or a rebuild, folds instead)."""
    interval = settings.AICOST_ROLLUP_FOLD_SECONDS
    now = time.monotonic()
    if interval != math.inf and now - _last_fold["at"] >= interval and rollups_fold() is not None:
        _last_fold["at"] = now


def _apply_sqlite(sums: dict[tuple[int, str], list]) -> None:
    rows = [
        (_sqlite_utc_text(epoch), epoch % 3600 // QUARTER_SECONDS, name, *values)
        for (epoch, name), values in sorted(sums.items())
    ]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_Q_COLUMNS)) + ")"] * len(rows))
    names = ", ".join(f"column{n} AS {name}" for n, name in enumerate(_Q_COLUMNS, start=1))
    quarters = f"SELECT {names} FROM (VALUES {placeholders})"  # noqa: S608 -- placeholders only
    with connection.cursor() as cursor:
        _upserts_run(cursor, _hours_from_quarters_sql(quarters, "sqlite"), [v for row in rows for v in row])


def _sqlite_utc_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def rollups_apply_logs(*, logs: Sequence[LoggedCall]) -> None:
    """Add the logs to every rollup. Must run in the transaction that stores the logs."""
    if not logs:
        return
    sums = quarter_sums(logs)
    if connection.vendor == "postgresql":
        _pending_append(sums)
        rollups_fold_if_due()
    else:
        _apply_sqlite(sums)


_QUARTER_OF_LOG = {
    "postgresql": "date_bin('15 minutes', timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    "sqlite": (  # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'; %% as above.
        "strftime('%%Y-%%m-%%d %%H:', timestamp) "
        "|| printf('%%02d', (CAST(strftime('%%M', timestamp) AS INTEGER) / 15) * 15) || ':00'"
    ),
}
_QUARTER_OF_HOUR = {
    "postgresql": "extract(minute FROM bucket AT TIME ZONE 'UTC')::int / 15",
    "sqlite": "CAST(strftime('%%M', bucket) AS INTEGER) / 15",
}


def _log_quarters_sql(vendor: str, where: str) -> str:
    """The log's 15-minute sums as relation q (columns _Q_COLUMNS)."""
    sums = ", ".join(f"{rollup_sum.source.sql()} AS {rollup_sum.name}" for rollup_sum in ROLLUP_SUMS)
    grouped = (
        f"SELECT {_QUARTER_OF_LOG[vendor]} AS bucket, model_name, {sums} "  # noqa: S608 (model metadata)
        f"FROM {UsageLog._meta.db_table} {where} GROUP BY 1, 2"
    )
    quarter = _QUARTER_OF_HOUR[vendor]
    return f"SELECT bucket, {quarter} AS quarter, {', '.join(_Q_COLUMNS[2:])} FROM ({grouped}) AS s"  # noqa: S608


@transaction.atomic
def rollups_rebuild() -> int:
    """Recompute every rollup from the whole log, in the database (after a restore or a manual fix),
    with the statement a fold uses. Holds an exclusive lock on the log meanwhile, so no batch is
    stored half-counted. Returns the number of log rows summed.

    Months that retention dropped from the log keep their rollups: they are all that is left of
    them. Retention drops whole UTC months, so every grain's buckets split cleanly at that edge."""
    since = _rebuild_since()
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {UsageLog._meta.db_table} IN EXCLUSIVE MODE")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FOLD_LOCK])  # No fold meanwhile.
        for grain in GRAINS:
            where, params = _from_edge(grain.key_column, grain.key_type, since)
            cursor.execute(f"DELETE FROM {grain.model._meta.db_table} {where}", params)  # noqa: S608 (model metadata)
        where, params = _from_edge("bucket", "timestamptz", since)
        cursor.execute(f"DELETE FROM {PENDING_TABLE} {where}", params)  # noqa: S608 (model metadata)
        where, params = _from_edge('"timestamp"', "timestamptz", since)
        _upserts_run(cursor, _hours_from_quarters_sql(_log_quarters_sql(vendor, where), vendor), params)
        where, params = _from_edge("day", "date", since)
        cursor.execute(f"SELECT coalesce(sum(calls), 0) FROM {DAY_TOTAL_GRAIN.model._meta.db_table} {where}", params)  # noqa: S608
        return cursor.fetchone()[0]


def rollups_rebuild_first_month(*, using: str = "default") -> date | None:
    """First UTC month a rebuild recomputes: the one after the last month retention dropped (None:
    none dropped, a rebuild recomputes everything)."""
    retired = UsageRetiredMonth.objects.using(using).aggregate(last=Max("month"))["last"]
    return None if retired is None else next_month(retired)


def _rebuild_since() -> datetime | None:
    first_month = rollups_rebuild_first_month()
    return None if first_month is None else month_bounds_utc(first_month)[0]


def _from_edge(column: str, column_type: str, since: datetime | None) -> tuple[str, list]:
    """WHERE clause keeping `column` >= since, with the value adapted for the database."""
    if since is None:
        return "", []
    ops = connection.ops
    value = ops.adapt_datefield_value(since.date()) if column_type == "date" else ops.adapt_datetimefield_value(since)
    return f"WHERE {column} >= %s", [value]
