"""Recording LLM calls: the one service that stores a batch (usage) and evaluates the budgets and
anomaly alerts it touches (alerts), in the batch's transaction. The ingestion API and Python
callers both come here, so usage never imports alerts."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from alerts.services import budget_alerts_evaluate
from ingest.otlp import SPANS_RECEIVED, MappedSpans, OtlpMapping, SpanRecord, spans_mapped
from pricing.selectors import price_book_for_models
from usage.models import ApiKey, UsageLog
from usage.records import UsageRecordInput, UsageRecordInvalid, usage_records_validated
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


def usage_batch_record(*, records: Sequence[UsageRecordInput], api_key: ApiKey | None = None) -> IngestResult:
    """Check and store the calls, add them to counters and rollups, and raise the alerts they call
    for: all in one transaction, or nothing. An invalid record raises UsageRecordInvalid naming it
    (`records[2].cached_tokens`) before anything is stored; retried duplicates are skipped and counted.
    `api_key`: the key that sent them (None: a Python caller), recorded with each call."""
    return usage_batch_run(batch=usage_batch_prepare(records=records, api_key=api_key), store=_stored_and_evaluated)


def _stored_and_evaluated(batch: PreparedBatch) -> IngestResult:
    result = usage_batch_store(batch=batch)
    if result.stored:
        budget_alerts_evaluate(
            model_names={row.model_name for row in result.stored},
            user_ids={row.user_id for row in result.stored if row.user_id is not None},
            purposes={row.purpose for row in result.stored if row.purpose},
            now=batch.now,
        )
    return result


def usage_record_batch(*, records: Sequence[UsageRecordInput], api_key: ApiKey | None = None) -> list[UsageLog]:
    """Record calls (sent with `api_key`, if any); returns the stored ones (retried duplicates are skipped)."""
    return usage_rows_as_logs(usage_batch_record(records=records, api_key=api_key).stored)


def usage_record(*, api_key: ApiKey | None = None, **fields) -> UsageLog | None:
    """Record one call (keyword arguments of UsageRecordInput; `api_key`: the key it was sent with, if
    any); None if it was a retried duplicate. Raises UsageRecordInvalid naming the field
    (`cached_tokens`) if the call breaks a rule."""
    try:
        stored = usage_record_batch(records=[UsageRecordInput(**fields)], api_key=api_key)
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


def _priced_model_names(mapped: MappedSpans) -> None:
    """The request model instead of the response model where only the request model is priced (one
    query for the export, only when some span names two models)."""
    two_names = [span for span in mapped.records if span.request_model]
    if not two_names:
        return
    names = {name.strip() for span in two_names for name in (span.record.model_name, span.request_model)}
    book = price_book_for_models(model_names=names)
    for span in two_names:
        priced = book.resolve(span.record.model_name.strip()).model_name is not None
        if not priced and book.resolve(span.request_model.strip()).model_name is not None:
            span.record.model_name = span.request_model


def _spans_stored(spans: Sequence[SpanRecord], rejected: list[str], api_key: ApiKey | None) -> IngestResult:
    """Store the spans' records as one batch. If one breaks a rule (usage_batch_record refuses the
    whole batch before storing anything), each is checked alone, the ones that break a rule are
    rejected with a message naming the attribute, and the others are stored."""
    try:
        return usage_batch_record(records=[span.record for span in spans], api_key=api_key)
    except UsageRecordInvalid:
        pass
    now = timezone.now()
    valid = []
    for span in spans:
        try:
            usage_records_validated([span.record], now=now)
        except UsageRecordInvalid as error:
            name = error.field.removeprefix("records[0].")
            source = span.sources.get(name)
            where = f"{source} ({name})" if source else name
            rejected.append(
                _("span %(span)s: %(field)s: %(message)s")
                % {"span": span.span_id, "field": where, "message": error.message}
            )
            continue
        valid.append(span.record)
    return usage_batch_record(records=valid, api_key=api_key) if valid else IngestResult()


@dataclass(kw_only=True)
class SpansOutcome:
    """What became of an OTLP export's spans: stored, re-sent (duplicates), rejected (one message each,
    for the response's partial_success), ignored (no GenAI model call); warnings for spans stored anyway."""

    stored: int = 0
    duplicates: int = 0
    unpriced: int = 0
    ignored: int = 0
    rejected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def usage_spans_record(
    *, request: ExportTraceServiceRequest, mapping: OtlpMapping | None = None, api_key: ApiKey | None = None
) -> SpansOutcome:
    """Record the model calls of an OTLP export (ingest.otlp maps the spans) through usage_batch_record,
    in batches of at most AICOST_MAX_BATCH_SIZE, each its own transaction. A span that breaks a rule is
    rejected alone (the others are stored); a span stored before (same trace, span and decision id) is
    skipped, so a re-sent export stores nothing twice and a retry after a failed batch is safe.
    A span whose response model the price book does not know but whose request model it does is
    recorded under the request model, so a snapshot name without an alias is priced, not unpriced.
    `api_key`: the key that sent the export, recorded with each call."""
    mapped = spans_mapped(request, mapping=mapping or OtlpMapping.from_settings())
    _priced_model_names(mapped)
    outcome = SpansOutcome(ignored=mapped.ignored, rejected=mapped.rejected, warnings=mapped.warnings)
    size = max(1, settings.AICOST_MAX_BATCH_SIZE)
    for start in range(0, len(mapped.records), size):
        result = _spans_stored(mapped.records[start : start + size], outcome.rejected, api_key)
        outcome.stored += len(result.stored)
        outcome.duplicates += result.duplicates
        outcome.unpriced += sum(1 for row in result.stored if row.cost is None)
    # Counted once the export is through (a failed one is retried and counted then).
    for outcome_name, count in (
        ("stored", outcome.stored),
        ("duplicate", outcome.duplicates),
        ("rejected", len(outcome.rejected)),
        ("ignored", outcome.ignored),
    ):
        if count:
            SPANS_RECEIVED.labels(outcome_name).inc(count)
    return outcome
