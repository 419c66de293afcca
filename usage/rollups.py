"""Upkeep of the usage rollups, inside the ingestion transaction.

Three grains: 15-minute buckets (exact calendar days in any time zone), UTC hours and UTC days
(long ranges), each per model and for all models together (the unfiltered daily trend reads one
row per bucket). Each batch adds its sums with one INSERT ... ON CONFLICT DO UPDATE per table;
tables are written in a fixed order and rows in key order, so concurrent batches lock rollup rows
in the same order and cannot deadlock.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, models, transaction
from django.db.models import Max

from usage.models import (
    CostSource,
    UsageLog,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    UsageRollupQuarterHour,
    UsageRollupQuarterHourTotal,
)
from usage.partitions import month_bounds_utc, next_month

QUARTER_HOUR = timedelta(minutes=15)
HOUR = timedelta(hours=1)


@dataclass
class RollupDelta:
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

    def add(self, log: UsageLog) -> None:
        self.calls += 1
        self.successful_calls += log.success
        self.unpriced_calls += log.cost_source == CostSource.UNPRICED
        self.prompt_tokens += log.prompt_tokens
        self.completion_tokens += log.completion_tokens
        self.cached_tokens += log.cached_tokens
        self.reasoning_tokens += log.reasoning_tokens
        if log.cost is not None:
            self.cost += log.cost
        if log.response_time is not None:
            self.response_time_sum += log.response_time
            self.response_time_count += 1

    def merge(self, other: "RollupDelta") -> None:
        for column in SUM_COLUMNS:
            setattr(self, column, getattr(self, column) + getattr(other, column))


SUM_COLUMNS = [f.name for f in fields(RollupDelta)]
_ARRAY_TYPES = dict.fromkeys(SUM_COLUMNS, "bigint") | {"cost": "numeric", "response_time_sum": "float8"}


def quarter_hour_floor(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass(frozen=True)
class Grain:
    """One rollup table: its bucket column, the bucket of a moment, and whether rows are per model.
    `from_quarters` maps a 15-minute bucket to this grain's bucket in SQL, per database vendor."""

    model: type[models.Model]
    key_column: str
    key_type: str
    bucket_of: Callable[[datetime], date | datetime]
    per_model: bool
    from_quarters: dict[str, str]


_HOUR_OF_QUARTER = {
    "postgresql": "date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    "sqlite": "strftime('%Y-%m-%d %H:00:00', bucket)",  # SQLite stores UTC text.
}
_DAY_OF_QUARTER = {"postgresql": "(bucket AT TIME ZONE 'UTC')::date", "sqlite": "date(bucket)"}
_QUARTER_OF_QUARTER = {"postgresql": "bucket", "sqlite": "bucket"}

QUARTER_HOUR_GRAIN = Grain(UsageRollupQuarterHour, "bucket", "timestamptz", quarter_hour_floor, True, {})
QUARTER_HOUR_TOTAL_GRAIN = Grain(
    UsageRollupQuarterHourTotal, "bucket", "timestamptz", quarter_hour_floor, False, _QUARTER_OF_QUARTER
)
HOUR_GRAIN = Grain(UsageRollupHour, "bucket", "timestamptz", hour_floor, True, _HOUR_OF_QUARTER)
HOUR_TOTAL_GRAIN = Grain(UsageRollupHourTotal, "bucket", "timestamptz", hour_floor, False, _HOUR_OF_QUARTER)
DAY_GRAIN = Grain(UsageRollupDaily, "day", "date", utc_day, True, _DAY_OF_QUARTER)
DAY_TOTAL_GRAIN = Grain(UsageRollupDailyTotal, "day", "date", utc_day, False, _DAY_OF_QUARTER)
# The order batches lock rollup rows in; the 15-minute rollup first: the others are derived from it.
GRAINS = (
    QUARTER_HOUR_GRAIN,
    QUARTER_HOUR_TOTAL_GRAIN,
    HOUR_GRAIN,
    HOUR_TOTAL_GRAIN,
    DAY_GRAIN,
    DAY_TOTAL_GRAIN,
)


def rollup_deltas(logs: Iterable[UsageLog]) -> dict[tuple, RollupDelta]:
    """Sums of the logs per (15-minute bucket, model_name)."""
    deltas: dict[tuple, RollupDelta] = {}
    for log in logs:
        key = (quarter_hour_floor(log.timestamp), log.model_name)
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = RollupDelta()
        delta.add(log)
    return deltas


def coarser_deltas(deltas: dict[tuple, RollupDelta], grain: Grain) -> dict[tuple, RollupDelta]:
    """Finer per-model sums (15-minute or hour) summed again per key of the grain."""
    coarser: dict[tuple, RollupDelta] = {}
    for (bucket, model_name), delta in deltas.items():
        coarse_bucket = grain.bucket_of(bucket)
        key = (coarse_bucket, model_name) if grain.per_model else (coarse_bucket,)
        target = coarser.get(key)
        if target is None:
            target = coarser[key] = RollupDelta()
        target.merge(delta)
    return coarser


def array_literal(values: Iterable) -> str:
    """A PostgreSQL array literal, every element quoted: one text parameter is far cheaper for the
    driver to send than a list it adapts element by element."""
    quoted = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in quoted) + "}"


def _key_columns(grain: Grain) -> list[str]:
    return [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]


def _upsert(grain: Grain, deltas: dict[tuple, RollupDelta]) -> None:
    table = grain.model._meta.db_table
    quote = connection.ops.quote_name
    keys = _key_columns(grain)
    columns = ", ".join(quote(c) for c in [*keys, *SUM_COLUMNS])
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in SUM_COLUMNS)
    rows = [[*key, *(getattr(delta, c) for c in SUM_COLUMNS)] for key, delta in sorted(deltas.items())]
    if connection.vendor == "postgresql":
        # One array per column: a dozen parameters however many buckets the batch touches.
        types = [grain.key_type, "text"][: len(keys)] + [_ARRAY_TYPES[c] for c in SUM_COLUMNS]
        source = "SELECT * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"  # noqa: S608
        params = [array_literal(column) for column in zip(*rows, strict=True)]
    else:
        source = "VALUES " + ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
        params = [_sqlite_value(value) for row in rows for value in row]
    # Identifiers come from model metadata; values are bound parameters.
    conflict = ", ".join(quote(c) for c in keys)
    sql = f"INSERT INTO {table} ({columns}) {source} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _sqlite_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date | Decimal):
        return str(value)
    return value


def rollups_apply_logs(*, logs: Sequence[UsageLog]) -> None:
    """Add the logs to every rollup. Must run in the transaction that stores the logs."""
    if not logs:
        return
    quarters = rollup_deltas(logs)
    hours = coarser_deltas(quarters, HOUR_GRAIN)
    for grain, deltas in (  # In GRAINS order, the order rows are locked in.
        (QUARTER_HOUR_GRAIN, quarters),
        (QUARTER_HOUR_TOTAL_GRAIN, coarser_deltas(quarters, QUARTER_HOUR_TOTAL_GRAIN)),
        (HOUR_GRAIN, hours),
        (HOUR_TOTAL_GRAIN, coarser_deltas(hours, HOUR_TOTAL_GRAIN)),
        (DAY_GRAIN, coarser_deltas(hours, DAY_GRAIN)),
        (DAY_TOTAL_GRAIN, coarser_deltas(hours, DAY_TOTAL_GRAIN)),
    ):
        _upsert(grain, deltas)


# Rollup sums of a group of log rows, in SUM_COLUMNS order.
_LOG_SUMS = (
    "count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE cost_source = 'unpriced'), "
    "coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cached_tokens), 0), "
    "coalesce(sum(reasoning_tokens), 0), coalesce(sum(cost), 0), coalesce(sum(response_time), 0), "
    "count(response_time)"
)
_QUARTER_OF_LOG = {
    "postgresql": "date_bin('15 minutes', timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    "sqlite": (  # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
        "strftime('%Y-%m-%d %H:', timestamp) "
        "|| printf('%02d', (CAST(strftime('%M', timestamp) AS INTEGER) / 15) * 15) || ':00'"
    ),
}


@transaction.atomic
def rollups_rebuild() -> int:
    """Recompute every rollup from the whole log, in the database (after a restore or a manual fix):
    the 15-minute rollup from the log, the coarser ones from it. Holds an exclusive lock on the log
    meanwhile, so no batch is stored half-counted. Returns the number of log rows summed.

    Months that retention dropped from the log keep their rollups: they are all that is left of
    them. Retention drops whole UTC months, so every grain's buckets split cleanly at that edge."""
    since = _rebuild_since()
    vendor = connection.vendor
    log_table = UsageLog._meta.db_table
    quarters = UsageRollupQuarterHour._meta.db_table
    sums = ", ".join(f"sum({c})" for c in SUM_COLUMNS)
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {log_table} IN EXCLUSIVE MODE")
        for grain in GRAINS:
            where, params = _from_edge(grain.key_column, grain.key_type, since)
            cursor.execute(f"DELETE FROM {grain.model._meta.db_table} {where}", params)  # noqa: S608 (model metadata)
        columns = ", ".join(["bucket", "model_name", *SUM_COLUMNS])
        where, params = _from_edge('"timestamp"', "timestamptz", since)
        cursor.execute(
            f"INSERT INTO {quarters} ({columns}) "  # noqa: S608
            f"SELECT {_QUARTER_OF_LOG[vendor]}, model_name, {_LOG_SUMS} FROM {log_table} {where} GROUP BY 1, 2",
            params,
        )
        where, params = _from_edge("bucket", "timestamptz", since)
        for grain in GRAINS[1:]:
            keys = _key_columns(grain)
            group = ", ".join(str(n) for n in range(1, len(keys) + 1))
            source_keys = ", ".join([grain.from_quarters[vendor], *keys[1:]])
            cursor.execute(
                f"INSERT INTO {grain.model._meta.db_table} ({', '.join([*keys, *SUM_COLUMNS])}) "  # noqa: S608
                f"SELECT {source_keys}, {sums} FROM {quarters} {where} GROUP BY {group}",
                params,
            )
        cursor.execute(f"SELECT coalesce(sum(calls), 0) FROM {quarters} {where}", params)  # noqa: S608
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
