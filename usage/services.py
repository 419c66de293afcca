"""Writes of usage: recording calls, with their cost fixed at ingestion.

One batch is one transaction: the log rows, the idempotency keys, the per-model counters, the
rollups and the budget alerts are all written together, or none of them is.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from aicost.money import ZERO, quantize_cost
from aicost.timeutils import month_start
from alerts.services import budget_alerts_evaluate
from pricing.models import ModelPricing
from pricing.selectors import PriceBook, price_book_for_models
from usage.costing import call_cost
from usage.models import CostSource, UsageIdempotencyKey, UsageLog
from usage.rollups import rollups_apply_logs


@dataclass(frozen=True, kw_only=True)
class UsageRecordInput:
    """One call as a client reports it. Validation happens before this (API serializers)."""

    model_name: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    decision_id: str = ""
    idempotency_key: str = ""
    user_id: int | None = None
    response_time: float | None = None
    success: bool = True
    error_message: str = ""
    purpose: str = ""
    timestamp: datetime | None = None
    cost: Decimal | None = None  # The provider's figure, when the caller has one.

    @property
    def idempotency_pair(self) -> tuple[str, str] | None:
        return (self.decision_id, self.idempotency_key) if self.idempotency_key else None


@dataclass
class IngestResult:
    stored: list[UsageLog] = field(default_factory=list)
    duplicates: int = 0


def _priced_log(record: UsageRecordInput, book: PriceBook, now: datetime) -> UsageLog:
    timestamp = record.timestamp or now
    pricing = book.pricing(record.model_name)
    version = book.version_at(record.model_name, timestamp) if pricing is not None else None
    if record.cost is not None:
        cost, source = quantize_cost(record.cost), CostSource.PROVIDER
    elif version is not None and pricing.enabled:
        cost = call_cost(
            version=version,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cached_tokens=record.cached_tokens,
        )
        source = CostSource.COMPUTED
    else:
        cost, source = None, CostSource.UNPRICED
    return UsageLog(
        model_name=record.model_name,
        decision_id=record.decision_id,
        user_id=record.user_id,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,
        reasoning_tokens=record.reasoning_tokens,
        cost=cost,
        cost_source=source,
        price_version=version,
        response_time=record.response_time,
        success=record.success,
        error_message=record.error_message,
        purpose=record.purpose,
        timestamp=timestamp,
    )


def _claim_idempotency_keys(
    *, records: Sequence[UsageRecordInput], now: datetime
) -> tuple[list[UsageRecordInput], int]:
    """Keep the records whose (decision_id, idempotency_key) was never stored, each pair once.

    INSERT ... ON CONFLICT DO NOTHING RETURNING tells which pairs this transaction claimed; a
    concurrent batch with the same pair waits on the unique index and then sees it as taken."""
    fresh: list[UsageRecordInput] = []
    keyed: dict[tuple[str, str], UsageRecordInput] = {}
    for record in records:
        pair = record.idempotency_pair
        if pair is None:
            fresh.append(record)
        else:
            keyed.setdefault(pair, record)
    if keyed:
        claimed = _insert_new_pairs(pairs=sorted(keyed), now=now)
        fresh += [record for pair, record in keyed.items() if pair in claimed]
    return fresh, len(records) - len(fresh)


def _insert_new_pairs(*, pairs: list[tuple[str, str]], now: datetime) -> set[tuple[str, str]]:
    table = UsageIdempotencyKey._meta.db_table
    created_at = UsageIdempotencyKey._meta.get_field("created_at").get_db_prep_save(now, connection)
    values = ", ".join(["(%s, %s, %s)"] * len(pairs))
    params = [value for pair in pairs for value in (*pair, created_at)]
    # The table name comes from model metadata; all values are bound parameters.
    sql = (
        f"INSERT INTO {table} (decision_id, idempotency_key, created_at) VALUES {values} "  # noqa: S608
        "ON CONFLICT (decision_id, idempotency_key) DO NOTHING RETURNING decision_id, idempotency_key"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {tuple(row) for row in cursor.fetchall()}


COPY_COLUMNS = [
    "id",
    "model_name",
    "decision_id",
    "user_id",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "cost_source",
    "price_version_id",
    "response_time",
    "success",
    "error_message",
    "purpose",
    "timestamp",
]


def _logs_insert_copy(logs: list[UsageLog]) -> None:
    """PostgreSQL: ids from the table's sequence, rows through COPY (an order of magnitude faster
    than a multi-row INSERT for large batches)."""
    table = UsageLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(logs)]
        )
        for log, (log_id,) in zip(logs, cursor.fetchall(), strict=True):
            log.id = log_id
        columns = ", ".join(f'"{name}"' for name in COPY_COLUMNS)
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for log in logs:
                copy.write_row([getattr(log, name) for name in COPY_COLUMNS])


def _logs_insert(logs: list[UsageLog]) -> None:
    if connection.vendor == "postgresql":
        _logs_insert_copy(logs)
    else:
        UsageLog.objects.bulk_create(logs)


def _pricing_counters_add(*, logs: Sequence[UsageLog], now: datetime) -> None:
    """Add calls and cost to each model's counters with one UPDATE per model (no lost updates:
    the database adds to the stored value). Models are updated in name order to avoid deadlocks."""
    this_month = month_start(now)
    calls: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(lambda: ZERO)
    month_cost: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for log in logs:
        calls[log.model_name] += 1
        cost[log.model_name] += log.cost or ZERO
        if month_start(log.timestamp) == this_month:
            month_cost[log.model_name] += log.cost or ZERO
    for model_name in sorted(calls):
        ModelPricing.objects.filter(model_name=model_name).update(
            total_calls=F("total_calls") + calls[model_name],
            total_cost=F("total_cost") + cost[model_name],
            current_month_cost=Case(
                When(current_month=this_month, then=F("current_month_cost") + month_cost[model_name]),
                default=Value(month_cost[model_name]),
            ),
            current_month=this_month,
            updated_at=now,
        )


@transaction.atomic
def usage_ingest(*, records: Sequence[UsageRecordInput]) -> IngestResult:
    """Store calls with their cost, and update counters, rollups and alerts in one transaction.
    Records whose (decision_id, idempotency_key) was stored before are skipped and counted."""
    if not records:
        return IngestResult()
    now = timezone.now()
    fresh, duplicates = _claim_idempotency_keys(records=records, now=now)
    if not fresh:
        return IngestResult(duplicates=duplicates)
    book = price_book_for_models(model_names={r.model_name for r in fresh})
    logs = [_priced_log(record, book, now) for record in fresh]
    _logs_insert(logs)
    _pricing_counters_add(logs=logs, now=now)
    rollups_apply_logs(logs=logs)
    budget_alerts_evaluate(model_names={log.model_name for log in logs}, now=now)
    return IngestResult(stored=logs, duplicates=duplicates)


def usage_record_batch(*, records: Sequence[UsageRecordInput]) -> list[UsageLog]:
    """Record calls; returns the stored ones (retried duplicates are skipped)."""
    return usage_ingest(records=records).stored


def usage_record(**fields) -> UsageLog | None:
    """Record one call (keyword arguments of UsageRecordInput); None if it was a retried duplicate."""
    stored = usage_record_batch(records=[UsageRecordInput(**fields)])
    return stored[0] if stored else None
