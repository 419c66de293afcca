"""Upkeep of the usage rollups, inside the ingestion transaction.

Two grains: UTC hours, whose rows also hold the sums of the hour's first 15, 30 and 45 minutes
(exact calendar days in any time zone), and UTC days (long ranges); each per model and for all
models together (the unfiltered daily trend reads one row per bucket). Each batch sums its calls
once per 15-minute bucket and model in Python; one statement then adds those sums to all four
tables (an INSERT ... ON CONFLICT DO UPDATE per table, each regrouping the sums to its grain in the
database). Every batch runs the same statement, so tables are written in the same order and rows
in key order: concurrent batches lock rollup rows in the same order and cannot deadlock.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.db import connection, models, transaction
from django.db.models import Max

from usage.models import (
    PREFIX_MINUTES,
    CostSource,
    UsageLog,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    prefix_column,
)
from usage.partitions import month_bounds_utc, next_month

QUARTER_HOUR = timedelta(minutes=15)


@dataclass
class RollupDelta:
    """The sums a rollup row holds (stats add rows of these up)."""

    calls: int = 0
    successful_calls: int = 0
    unpriced_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)
    response_time_sum: float = 0.0
    response_time_count: int = 0


SUM_COLUMNS = [f.name for f in fields(RollupDelta)]
_ARRAY_TYPES = dict.fromkeys(SUM_COLUMNS, "bigint") | {"cost": "numeric", "response_time_sum": "float8"}


class LoggedCall(Protocol):
    """What the rollups read of a stored call (usage.services.UsageRow, or a UsageLog)."""

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
    hour's prefix sums. `from_quarters` maps a 15-minute bucket to this grain's bucket in SQL."""

    model: type[models.Model]
    key_column: str
    key_type: str
    per_model: bool
    prefixes: bool
    from_quarters: dict[str, str]


_HOUR_OF_QUARTER = {
    "postgresql": "date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    # SQLite stores UTC text. %% because the SQL is run with parameters.
    "sqlite": "strftime('%%Y-%%m-%%d %%H:00:00', bucket)",
}
_DAY_OF_QUARTER = {"postgresql": "(bucket AT TIME ZONE 'UTC')::date", "sqlite": "date(bucket)"}

HOUR_GRAIN = Grain(UsageRollupHour, "bucket", "timestamptz", True, True, _HOUR_OF_QUARTER)
HOUR_TOTAL_GRAIN = Grain(UsageRollupHourTotal, "bucket", "timestamptz", False, True, _HOUR_OF_QUARTER)
DAY_GRAIN = Grain(UsageRollupDaily, "day", "date", True, False, _DAY_OF_QUARTER)
DAY_TOTAL_GRAIN = Grain(UsageRollupDailyTotal, "day", "date", False, False, _DAY_OF_QUARTER)
# The order batches lock rollup rows in.
GRAINS = (HOUR_GRAIN, HOUR_TOTAL_GRAIN, DAY_GRAIN, DAY_TOTAL_GRAIN)


QUARTER_SECONDS = 15 * 60


def quarter_sums(logs: Iterable[LoggedCall]) -> dict[tuple[int, str], list]:
    """Sums of the logs per (15-minute bucket as UTC epoch seconds, model_name), in SUM_COLUMNS
    order. Integer buckets: a batch of a thousand calls is summed in about a millisecond."""
    sums: dict[tuple[int, str], list] = {}
    for log in logs:
        epoch = int(log.timestamp.timestamp())
        key = (epoch - epoch % QUARTER_SECONDS, log.model_name)
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0, 0, 0, 0, 0, 0, 0, Decimal(0), 0.0, 0]
        row[0] += 1
        row[1] += log.success
        row[2] += log.cost_source == CostSource.UNPRICED
        row[3] += log.prompt_tokens
        row[4] += log.completion_tokens
        row[5] += log.cached_tokens
        row[6] += log.reasoning_tokens
        if log.cost is not None:
            row[7] += log.cost
        if log.response_time is not None:
            row[8] += log.response_time
            row[9] += 1
    return sums


def array_literal(values: Iterable, *, quoted: bool = True) -> str:
    """A PostgreSQL array literal: one text parameter is far cheaper for the driver to send than a
    list it adapts element by element. Numbers need no quoting; text is quoted and escaped."""
    if not quoted:
        return "{" + ",".join(map(str, values)) + "}"
    escaped = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in escaped) + "}"


def _key_columns(grain: Grain) -> list[str]:
    return [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]


def rollup_columns(grain: Grain) -> list[str]:
    """The sums a grain's rows hold: SUM_COLUMNS, then for hour grains each prefix of them."""
    if not grain.prefixes:
        return list(SUM_COLUMNS)
    return [*SUM_COLUMNS, *(prefix_column(c, minutes) for minutes in PREFIX_MINUTES for c in SUM_COLUMNS)]


def _sums_from_quarters(grain: Grain) -> list[str]:
    """SQL sums over relation q (15-minute sums with their quarter of the hour, 0-3), in
    rollup_columns order: a prefix of n quarters sums the quarters before the n-th."""
    sums = [f"sum({c})" for c in SUM_COLUMNS]
    if grain.prefixes:
        for minutes in PREFIX_MINUTES:
            sums += [f"sum(CASE WHEN quarter < {minutes // 15} THEN {c} ELSE 0 END)" for c in SUM_COLUMNS]
    return sums


def _grain_upsert_sql(grain: Grain, vendor: str) -> str:
    """INSERT ... SELECT the sums of relation q (bucket, quarter, model_name, SUM_COLUMNS: 15-minute
    sums) regrouped by the grain's keys, in key order (the order rows are locked in), adding to the
    rows already there."""
    table = grain.model._meta.db_table
    keys = _key_columns(grain)
    stored = rollup_columns(grain)
    key_values = ", ".join([grain.from_quarters[vendor], *keys[1:]])
    order = ", ".join(str(n) for n in range(1, len(keys) + 1))
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in stored)
    # WHERE true: SQLite's parser needs it between SELECT and ON CONFLICT. Names come from metadata.
    return (
        f"INSERT INTO {table} ({', '.join([*keys, *stored])}) "  # noqa: S608
        f"SELECT {key_values}, {', '.join(_sums_from_quarters(grain))} FROM q WHERE true "
        f"GROUP BY {order} ORDER BY {order} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_Q_COLUMNS = ["bucket", "quarter", "model_name", *SUM_COLUMNS]


def _upserts_run(cursor, q_sql: str, params: list) -> None:
    """Add the 15-minute sums of q_sql (columns _Q_COLUMNS) to every grain. PostgreSQL: one
    statement. SQLite (local use) has no INSERT inside WITH: one statement per grain."""
    if connection.vendor == "postgresql":
        upserts = ", ".join(f"g{n} AS ({_grain_upsert_sql(grain, 'postgresql')})" for n, grain in enumerate(GRAINS))
        cursor.execute(f"WITH q AS ({q_sql}), {upserts} SELECT 1", params)
        return
    for grain in GRAINS:
        cursor.execute(f"WITH q AS ({q_sql}) {_grain_upsert_sql(grain, 'sqlite')}", params)


def _apply_postgresql(sums: dict[tuple[int, str], list]) -> None:
    """All rollups in one statement: the batch's 15-minute sums arrive as one array per column, and
    each grain regroups them in the database."""
    keys = sorted(sums)
    columns = [[epoch for epoch, _ in keys], [name for _, name in keys]]
    columns += [[sums[key][index] for key in keys] for index in range(len(SUM_COLUMNS))]
    types = ["bigint", "text"] + [_ARRAY_TYPES[c] for c in SUM_COLUMNS]
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    names = ", ".join(["epoch", *_Q_COLUMNS[2:]])
    # Names come from model metadata; values are parameters.
    q_sql = (
        f"SELECT to_timestamp(epoch) AS bucket, epoch %% 3600 / 900 AS quarter, {', '.join(_Q_COLUMNS[2:])} "  # noqa: S608
        f"FROM unnest({arrays}) AS u ({names})"
    )
    params = [array_literal(column, quoted=n == 1) for n, column in enumerate(columns)]
    with connection.cursor() as cursor:
        _upserts_run(cursor, q_sql, params)


def _apply_sqlite(sums: dict[tuple[int, str], list]) -> None:
    rows = [
        (_sqlite_utc_text(epoch), epoch % 3600 // QUARTER_SECONDS, name, *values[:7], str(values[7]), *values[8:])
        for (epoch, name), values in sorted(sums.items())
    ]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_Q_COLUMNS)) + ")"] * len(rows))
    names = ", ".join(f"column{n} AS {name}" for n, name in enumerate(_Q_COLUMNS, start=1))
    with connection.cursor() as cursor:
        values = f"SELECT {names} FROM (VALUES {placeholders})"  # noqa: S608 -- placeholders only
        _upserts_run(cursor, values, [v for row in rows for v in row])


def _sqlite_utc_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def rollups_apply_logs(*, logs: Sequence[LoggedCall]) -> None:
    """Add the logs to every rollup. Must run in the transaction that stores the logs."""
    if not logs:
        return
    sums = quarter_sums(logs)
    if connection.vendor == "postgresql":
        _apply_postgresql(sums)
    else:
        _apply_sqlite(sums)


# Rollup sums of a group of log rows, in SUM_COLUMNS order.
_LOG_SUMS = (
    "count(*)",
    "count(*) FILTER (WHERE success)",
    "count(*) FILTER (WHERE cost_source = 'unpriced')",
    "coalesce(sum(prompt_tokens), 0)",
    "coalesce(sum(completion_tokens), 0)",
    "coalesce(sum(cached_tokens), 0)",
    "coalesce(sum(reasoning_tokens), 0)",
    "coalesce(sum(cost), 0)",
    "coalesce(sum(response_time), 0)",
    "count(response_time)",
)
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
    sums = ", ".join(f"{expression} AS {name}" for expression, name in zip(_LOG_SUMS, SUM_COLUMNS, strict=True))
    grouped = (
        f"SELECT {_QUARTER_OF_LOG[vendor]} AS bucket, model_name, {sums} "  # noqa: S608 (model metadata)
        f"FROM {UsageLog._meta.db_table} {where} GROUP BY 1, 2"
    )
    quarter = _QUARTER_OF_HOUR[vendor]
    return f"SELECT bucket, {quarter} AS quarter, {', '.join(_Q_COLUMNS[2:])} FROM ({grouped}) AS s"  # noqa: S608


@transaction.atomic
def rollups_rebuild() -> int:
    """Recompute every rollup from the whole log, in the database (after a restore or a manual fix),
    with the statement ingestion uses. Holds an exclusive lock on the log meanwhile, so no batch is
    stored half-counted. Returns the number of log rows summed.

    Months that retention dropped from the log keep their rollups: they are all that is left of
    them. Retention drops whole UTC months, so every grain's buckets split cleanly at that edge."""
    since = _rebuild_since()
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {UsageLog._meta.db_table} IN EXCLUSIVE MODE")
        for grain in GRAINS:
            where, params = _from_edge(grain.key_column, grain.key_type, since)
            cursor.execute(f"DELETE FROM {grain.model._meta.db_table} {where}", params)  # noqa: S608 (model metadata)
        where, params = _from_edge('"timestamp"', "timestamptz", since)
        _upserts_run(cursor, _log_quarters_sql(vendor, where), params)
        where, params = _from_edge("day", "date", since)
        cursor.execute(f"SELECT coalesce(sum(calls), 0) FROM {DAY_TOTAL_GRAIN.model._meta.db_table} {where}", params)  # noqa: S608
        return cursor.fetchone()[0]


def _rebuild_since() -> datetime | None:
    """Start of the first UTC month after the last one retention dropped (None: none dropped)."""
    retired = UsageRetiredMonth.objects.aggregate(last=Max("month"))["last"]
    return None if retired is None else month_bounds_utc(next_month(retired))[0]


def _from_edge(column: str, column_type: str, since: datetime | None) -> tuple[str, list]:
    """WHERE clause keeping `column` >= since, with the value adapted for the database."""
    if since is None:
        return "", []
    ops = connection.ops
    value = ops.adapt_datefield_value(since.date()) if column_type == "date" else ops.adapt_datetimefield_value(since)
    return f"WHERE {column} >= %s", [value]
