"""Writes of usage: recording calls, with their cost fixed at ingestion."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from aicost.money import ZERO, quantize_cost
from aicost.timeutils import month_start
from alerts.services import budget_alerts_evaluate
from pricing.models import ModelPricing
from pricing.selectors import PriceBook, price_book_for_models
from usage.costing import call_cost
from usage.models import CostSource, UsageLog
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
    user_id: int | None = None
    response_time: float | None = None
    success: bool = True
    error_message: str = ""
    purpose: str = ""
    timestamp: datetime | None = None
    cost: Decimal | None = None  # The provider's figure, when the caller has one.


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
def usage_record_batch(*, records: Sequence[UsageRecordInput]) -> list[UsageLog]:
    """Store calls with their cost, and update counters, rollups and alerts in one transaction."""
    if not records:
        return []
    now = timezone.now()
    book = price_book_for_models(model_names={r.model_name for r in records})
    logs = UsageLog.objects.bulk_create([_priced_log(r, book, now) for r in records])
    _pricing_counters_add(logs=logs, now=now)
    rollups_apply_logs(logs=logs)
    budget_alerts_evaluate(model_names={log.model_name for log in logs}, now=now)
    return logs


def usage_record(**fields) -> UsageLog:
    """Record one call; same semantics as usage_record_batch. Keyword arguments of UsageRecordInput."""
    return usage_record_batch(records=[UsageRecordInput(**fields)])[0]
