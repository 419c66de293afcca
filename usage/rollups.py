"""Upkeep of the usage rollups, inside the ingestion transaction.

Two grains: 15-minute buckets (exact calendar days in any time zone) and UTC days (long ranges).
Each batch adds its sums with one INSERT ... ON CONFLICT DO UPDATE per grain; rows are sent in key
order so concurrent batches lock rollup rows in the same order and cannot deadlock.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, models, transaction
from django.db.models import Max

from usage.models import CostSource, UsageLog, UsageRetiredMonth, UsageRollupDaily, UsageRollupQuarterHour
from usage.partitions import month_bounds_utc, next_month

QUARTER_HOUR = timedelta(minutes=15)


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


SUM_COLUMNS = [f.name for f in fields(RollupDelta)]
_ARRAY_TYPES = dict.fromkeys(SUM_COLUMNS, "bigint") | {"cost": "numeric", "response_time_sum": "float8"}


def quarter_hour_floor(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def rollup_deltas(logs: Iterable[UsageLog], bucket_of: Callable[[datetime], object]) -> dict[tuple, RollupDelta]:
    deltas: dict[tuple, RollupDelta] = {}
    for log in logs:
        key = (bucket_of(log.timestamp), log.model_name)
        delta = deltas.get(key)
        if delta is None:
            delta = deltas[key] = RollupDelta()
        delta.add(log)
    return deltas


def _upsert(model: type[models.Model], key_column: str, key_type: str, deltas: dict[tuple, RollupDelta]) -> None:
    table = model._meta.db_table
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in [key_column, "model_name", *SUM_COLUMNS])
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in SUM_COLUMNS)
    rows = [[key, name, *(getattr(delta, c) for c in SUM_COLUMNS)] for (key, name), delta in sorted(deltas.items())]
    if connection.vendor == "postgresql":
        # One array per column: a dozen parameters however many buckets the batch touches.
        types = [key_type, "text", *(_ARRAY_TYPES[c] for c in SUM_COLUMNS)]
        source = "SELECT * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"  # noqa: S608
        params = [list(column) for column in zip(*rows, strict=True)]
    else:
        source = "VALUES " + ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
        params = [_sqlite_value(value) for row in rows for value in row]
    # Identifiers come from model metadata; values are bound parameters.
    sql = (
        f"INSERT INTO {table} ({columns}) {source} "
        f"ON CONFLICT ({quote(key_column)}, model_name) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _sqlite_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date | Decimal):
        return str(value)
    return value


def rollups_apply_logs(*, logs: Sequence[UsageLog]) -> None:
    """Add the logs to both rollups. Must run in the transaction that stores the logs."""
    if not logs:
        return
    _upsert(UsageRollupQuarterHour, "bucket", "timestamptz", rollup_deltas(logs, quarter_hour_floor))
    _upsert(UsageRollupDaily, "day", "date", rollup_deltas(logs, utc_day))


@transaction.atomic
def rollups_rebuild(*, chunk_size: int = 5000) -> int:
    """Recompute both rollups from the whole log (after a restore or a manual fix). Returns rows read.
    Months that retention dropped from the log keep their rollups: they are all that is left of them."""
    retired = UsageRetiredMonth.objects.aggregate(last=Max("month"))["last"]
    if retired is None:
        UsageRollupQuarterHour.objects.all().delete()
        UsageRollupDaily.objects.all().delete()
    else:
        kept_until, _ = month_bounds_utc(next_month(retired))
        UsageRollupQuarterHour.objects.filter(bucket__gte=kept_until).delete()
        UsageRollupDaily.objects.filter(day__gte=kept_until.date()).delete()
    read = 0
    chunk: list[UsageLog] = []
    for log in UsageLog.objects.order_by().iterator(chunk_size=chunk_size):
        chunk.append(log)
        if len(chunk) == chunk_size:
            rollups_apply_logs(logs=chunk)
            read, chunk = read + len(chunk), []
    rollups_apply_logs(logs=chunk)
    return read + len(chunk)
