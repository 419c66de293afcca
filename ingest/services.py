"""Recording LLM calls: the one service that stores a batch (usage) and evaluates the budgets and
anomaly alerts it touches (alerts), in the batch's transaction. The ingestion API and Python
callers both come here, so usage never imports alerts."""

from collections.abc import Sequence
from datetime import datetime

from alerts.services import budget_alerts_evaluate
from usage.models import UsageLog
from usage.records import UsageRecordInput, UsageRecordInvalid
from usage.services import (
    CONVERT_CHUNK,
    REPRICE_CHUNK,
    ConvertOutcome,
    IngestResult,
    PreparedBatch,
    RepriceOutcome,
    usage_batch_prepare,
    usage_batch_run,
    usage_batch_store,
    usage_convert,
    usage_reprice,
    usage_rows_as_logs,
)


def usage_batch_record(*, records: Sequence[UsageRecordInput]) -> IngestResult:
    """Check and store the calls, add them to counters and rollups, and raise the alerts they call
    for: all in one transaction, or nothing. An invalid record raises UsageRecordInvalid naming it
    (`records[2].cached_tokens`) before anything is stored; retried duplicates are skipped and counted."""
    return usage_batch_run(batch=usage_batch_prepare(records=records), store=_stored_and_evaluated)


def _stored_and_evaluated(batch: PreparedBatch) -> IngestResult:
    result = usage_batch_store(batch=batch)
    if result.stored:
        budget_alerts_evaluate(model_names={row.model_name for row in result.stored}, now=batch.now)
    return result


def usage_record_batch(*, records: Sequence[UsageRecordInput]) -> list[UsageLog]:
    """Record calls; returns the stored ones (retried duplicates are skipped)."""
    return usage_rows_as_logs(usage_batch_record(records=records).stored)


def usage_record(**fields) -> UsageLog | None:
    """Record one call (keyword arguments of UsageRecordInput); None if it was a retried duplicate.
    Raises UsageRecordInvalid naming the field (`cached_tokens`) if the call breaks a rule."""
    try:
        stored = usage_record_batch(records=[UsageRecordInput(**fields)])
    except UsageRecordInvalid as error:
        raise UsageRecordInvalid(error.field.removeprefix("records[0]."), error.message, error.code) from None
    return stored[0] if stored else None


def _budgets_evaluated(model_names: set[str], now: datetime) -> None:
    budget_alerts_evaluate(model_names=model_names, now=now)


def usage_reprice_evaluated(
    *,
    model_name: str,
    since: datetime,
    until: datetime | None = None,
    apply: bool = False,
    backdate: bool = False,
    actor: str,
    chunk_size: int = REPRICE_CHUNK,
    stop_after: int | None = None,
) -> RepriceOutcome:
    """usage.services.usage_reprice with the budgets of the models whose figures changed evaluated
    in each of its transactions, as ingestion evaluates a batch's (usage does not import alerts)."""
    return usage_reprice(
        model_name=model_name,
        since=since,
        until=until,
        apply=apply,
        backdate=backdate,
        actor=actor,
        after_chunk=_budgets_evaluated,
        chunk_size=chunk_size,
        stop_after=stop_after,
    )


def usage_convert_evaluated(
    *, since: datetime, until: datetime | None = None, apply: bool = False, chunk_size: int = CONVERT_CHUNK
) -> ConvertOutcome:
    """usage.services.usage_convert with the budgets of the models whose figures changed evaluated in
    each of its transactions, as ingestion evaluates a batch's."""
    return usage_convert(since=since, until=until, apply=apply, after_chunk=_budgets_evaluated, chunk_size=chunk_size)
