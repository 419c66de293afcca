"""Upkeep of the hourly rollups, inside the ingestion transaction.

One multi-row INSERT ... ON CONFLICT DO UPDATE adds a batch's sums to the buckets; rows are
sent in key order so concurrent batches lock buckets in the same order and cannot deadlock.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from usage.models import CostSource, UsageLog, UsageRollupHourly


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
        self.successful_calls += int(log.success)
        self.unpriced_calls += int(log.cost_source == CostSource.UNPRICED)
        self.prompt_tokens += log.prompt_tokens
        self.completion_tokens += log.completion_tokens
        self.cached_tokens += log.cached_tokens
        self.reasoning_tokens += log.reasoning_tokens
        self.cost += log.cost or 0
        if log.response_time is not None:
            self.response_time_sum += log.response_time
            self.response_time_count += 1


SUM_COLUMNS = [f.name for f in fields(RollupDelta)]


def hour_bucket(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rollup_deltas(logs: Iterable[UsageLog]) -> dict[tuple[datetime, str], RollupDelta]:
    deltas: dict[tuple[datetime, str], RollupDelta] = {}
    for log in logs:
        key = (hour_bucket(log.timestamp), log.model_name)
        deltas.setdefault(key, RollupDelta()).add(log)
    return deltas


def rollups_apply_logs(*, logs: Sequence[UsageLog]) -> None:
    """Add the logs to the hourly rollups. Must run in the transaction that stores the logs."""
    deltas = sorted(rollup_deltas(logs).items())  # Key order: concurrent batches lock buckets alike.
    if not deltas:
        return
    table = UsageRollupHourly._meta.db_table
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ["bucket", "model_name", *SUM_COLUMNS])
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in SUM_COLUMNS)
    rows = [[bucket, model_name, *(getattr(delta, c) for c in SUM_COLUMNS)] for (bucket, model_name), delta in deltas]
    if connection.vendor == "postgresql":
        # One array per column: a handful of parameters however many buckets the batch touches.
        types = ["timestamptz", "text", *(_SQL_TYPES[c] for c in SUM_COLUMNS)]
        source = "SELECT * FROM unnest(" + ", ".join(f"%s::{t}[]" for t in types) + ")"  # noqa: S608
        params = [list(column) for column in zip(*rows, strict=True)]
    else:
        source = "VALUES " + ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
        params = [_sqlite_value(value) for row in rows for value in row]
    # Identifiers come from model metadata; values are bound parameters.
    sql = f"INSERT INTO {table} ({columns}) {source} ON CONFLICT (bucket, model_name) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_SQL_TYPES = dict.fromkeys(SUM_COLUMNS, "bigint") | {"cost": "numeric", "response_time_sum": "float8"}


def _sqlite_value(value):
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, Decimal):
        return str(value)
    return value
