"""Writes of usage: recording calls, with their cost fixed at ingestion.

Every record is checked against the rules of usage.records first, whoever calls (the API or Python);
a batch with one invalid record raises UsageRecordInvalid and stores nothing. One batch is one
transaction: the log rows, the idempotency keys, the per-model counters and the rollups' appends
are all written together, or none of them is (ingest.services adds budget evaluation to it).
"""

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.money import ZERO, cost_exact, cost_from_float
from core.timeutils import month_bounds, month_start
from pricing.generation import generation_select_sql
from pricing.models import ModelPriceVersion, ModelPricing
from pricing.selectors import (
    PriceBook,
    RateBook,
    exchange_rate_book,
    model_currencies,
    model_pricing_get,
    name_matcher_all,
    price_book_cached,
    price_book_for_models,
    rate_book_for_prices,
)
from pricing.services import price_version_backdate
from usage.consistency import (
    ConsistencyReading,
    CounterFigure,
    MonthModel,
    usage_consistency_read,
    usage_snapshot,
)
from usage.costing import call_cost, cost_function, integer_rates
from usage.models import (
    ApiKey,
    CostSource,
    RepriceStatus,
    UsageCounter,
    UsageIdempotencyKey,
    UsageLog,
    UsageLogGap,
    UsageRepriceChange,
    UsageRepriceRun,
    UsageRetiredMonth,
)
from usage.partitions import (
    LOG_TABLE,
    add_months,
    create_partition_sql,
    month_of,
    months_due,
    partition_months,
    partition_name,
)
from usage.records import CheckedRecord, UsageRecordInput, usage_records_validated, zone_offset_fixed
from usage.rollups import (
    COMPACT_LOCK,
    rollups_apply_changes,
    rollups_apply_logs,
    rollups_rebuild,
    rollups_rebuild_first_month,
)
from usage.selectors import partition_model_sums, rollup_month_calls, usage_log_gap_calls


class UsageRow(NamedTuple):
    """One call as stored: the log's columns in the model's field order, which is also the order
    COPY sends them in. Ingestion handles thousands of these per batch; a tuple costs a fraction of
    a model instance to build and to read."""

    id: int | None
    model_name: str
    decision_id: str
    user_id: int | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    input_audio_tokens: int
    output_audio_tokens: int
    output_image_tokens: int
    cost: Decimal | None
    cost_source: str
    price_version_id: int | None
    reporting_cost: Decimal | None
    exchange_rate_id: int | None
    unconverted: bool
    response_time: float | None
    success: bool
    error_message: str
    purpose: str
    timestamp: datetime
    sent_model_name: str
    api_key_id: int | None


T = TypeVar("T")


@dataclass
class IngestResult:
    stored: list[UsageRow] = field(default_factory=list)
    duplicates: int = 0
    # model_name -> the currency of its prices (and of its stored costs), for the batch's priced models.
    currencies: dict[str, str] = field(default_factory=dict)


_new_tuple = tuple.__new__


class _Span(NamedTuple):
    """A price version as a batch reads it: its end (None: in force), id, and cost function (None:
    call_cost prices its calls)."""

    end: datetime | None
    version_id: int
    version: ModelPriceVersion
    cost: Callable[[CheckedRecord], Decimal] | None


class _ModelPrices(NamedTuple):
    """One model's price history: its versions' starts and spans (each version says whether its
    calls are priced, enabled, and free, is_free, and its currency), the model's currency (of a
    provider-reported cost at a moment no version covers), and the last span's start per zone (most
    calls fall in the last span: one comparison instead of a search)."""

    starts: list[datetime]
    spans: list[_Span]
    currency: str
    last_start_in: dict  # tzinfo -> the last span's start in that zone (usage.records.zone_offset_fixed).

    def last_start_for(self, zone) -> datetime:
        """The last span's start, moved into `zone` when it has a fixed offset (a comparison within one
        zone object is a plain one, ten times cheaper than across zones), else as stored."""
        start = self.starts[-1]
        start = start.astimezone(zone) if zone_offset_fixed(zone) else start
        self.last_start_in[zone] = start
        return start


def _span(version: ModelPriceVersion) -> _Span:
    rates = integer_rates(version)
    cost = None if rates is None else cost_function(rates)
    return _Span(version.effective_to, version.pk, version, cost)


_UNSEEN = object()
_INSTANT = timedelta(microseconds=1)  # A half-open range's end just after its last moment.
_FREE = cost_exact(ZERO)


class BatchPricer:
    """Prices a batch's calls from its price book: each model's history is prepared once per batch,
    and a call costs a lookup and its version's cost function (usage.costing.cost_function)."""

    def __init__(self, book: PriceBook, rates: RateBook | None = None):
        self._book = book
        self._rates = rates if rates is not None else rate_book_for_prices(book)
        self._reporting = self._rates.quote_currency
        # Prepared once per book: a cached book (pricing.selectors.price_book_cached) keeps them across batches.
        prepared = book.prepared
        if not prepared:
            prepared.update(models={}, priced={}, counted_names={})
        self._models: dict[str, _ModelPrices | None] = prepared["models"]  # By sent name.
        self._priced: dict[str | None, _ModelPrices | None] = prepared["priced"]  # By the model a name is priced as.
        self.counted_names: dict[str, str] = prepared["counted_names"]  # Sent name -> counted_name's answer.

    def counted_name(self, sent_name: str) -> str:
        """The name a call sent as sent_name is stored and counted under: the model it is priced as
        (pricing.matching), or the name as sent when it matches none (or is ambiguous)."""
        name = self.counted_names.get(sent_name)
        if name is None:
            name = self.counted_names[sent_name] = self._book.resolve(sent_name).model_name or sent_name
        return name

    def _model(self, sent_name: str) -> _ModelPrices | None:
        model_name = self._book.resolve(sent_name).model_name
        prices = self._priced.get(model_name, _UNSEEN)
        if prices is _UNSEEN:  # Each priced model's history once, whatever names its calls arrive under.
            pricing = None if model_name is None else self._book.pricing(model_name)
            versions = self._book.versions(model_name) if pricing is not None else []
            prices = None
            if versions:
                spans = [_span(version) for version in versions]
                starts = [version.effective_from for version in versions]
                prices = _ModelPrices(starts, spans, pricing.currency, {})
            self._priced[model_name] = prices
        self._models[sent_name] = prices
        return prices

    def price(self, record: CheckedRecord, timestamp: datetime) -> tuple[Decimal | None, str, int | None]:
        """(cost, cost_source, price_version_id) of one call at `timestamp`: what PriceBook.version_at
        and call_cost give (tests/test_ingest_fast_paths.py compares the two)."""
        cost, source, version_id, _currency = self._price_at(record, timestamp)
        return cost, source, version_id

    def price_converted(self, record: CheckedRecord, timestamp: datetime) -> tuple:
        """(cost, cost_source, price_version_id, reporting_cost, exchange_rate_id, unconverted): the
        price, and the cost in the reporting currency at the rate in force at `timestamp`. No rate in
        force: reporting_cost None and unconverted True, never a cost of 0."""
        cost, source, version_id, currency = self._price_at(record, timestamp)
        if cost is None:
            return cost, source, version_id, None, None, False
        if currency == self._reporting:  # Most calls: no conversion to make.
            return cost, source, version_id, cost, None, False
        amount, rate = self._rates.convert(cost, currency, timestamp)
        if amount is None:
            return cost, source, version_id, None, None, True
        return cost, source, version_id, amount, rate.pk, False

    def _price_at(self, record: CheckedRecord, timestamp: datetime) -> tuple[Decimal | None, str, int | None, str]:
        prices = self._models.get(record.model_name, _UNSEEN)
        if prices is _UNSEEN:
            prices = self._model(record.model_name)
        span = None
        if prices is not None:
            zone = timestamp.tzinfo
            last_start = prices.last_start_in.get(zone) or prices.last_start_for(zone)
            if timestamp >= last_start:
                span = prices.spans[-1]
            else:
                index = bisect_right(prices.starts, timestamp) - 1
                if index >= 0:
                    span = prices.spans[index]
            if span is not None and span.end is not None and timestamp >= span.end:
                span = None
        if span is None:
            version_id = None
            currency = settings.AICOST_CURRENCY if prices is None else prices.currency
        else:
            version_id, currency = span.version_id, span.version.currency
        if record.cost is not None:
            return cost_exact(record.cost), CostSource.PROVIDER, version_id, currency
        if span is None or not span.version.enabled:  # Disabled at the call's moment.
            return None, CostSource.UNPRICED, version_id, currency
        if span.version.is_free:  # Free at the call's moment: costs nothing, and says which version.
            return _FREE, CostSource.COMPUTED, version_id, currency
        cost = call_cost(version=span.version, tokens=record) if span.cost is None else span.cost(record)
        return cost, CostSource.COMPUTED, version_id, currency


def _rows_priced(
    records: Sequence[CheckedRecord],
    log_ids: Sequence[int | None],
    book: PriceBook,
    now: datetime,
    api_key_id: int | None = None,
) -> list[UsageRow]:
    """The batch's rows as stored: each record with its id, its moment (now when it gave none), its
    price, and the API key that sent the batch (None: none did)."""
    moments = [record.timestamp or now for record in records]
    rates = rate_book_for_prices(book, start=min(moments), end=max(moments) + _INSTANT) if moments else None
    pricer = BatchPricer(book, rates)
    price, counted_name, counted = pricer.price_converted, pricer.counted_name, pricer.counted_names.get
    rows = []
    append = rows.append
    for record, log_id in zip(records, log_ids, strict=True):
        timestamp = record.timestamp or now
        cost, source, version_id, reporting_cost, rate_id, unconverted = price(record, timestamp)
        fields = (
            log_id,
            counted(record.model_name) or counted_name(record.model_name),  # A dict hit after each name's first.
            record.decision_id,
            record.user_id,
            record.prompt_tokens,
            record.completion_tokens,
            record.cached_tokens,
            record.reasoning_tokens,
            record.cache_write_5m_tokens,
            record.cache_write_1h_tokens,
            record.input_audio_tokens,
            record.output_audio_tokens,
            record.output_image_tokens,
            cost,
            source,
            version_id,
            reporting_cost,
            rate_id,
            unconverted,
            record.response_time,
            record.success,
            record.error_message,
            record.purpose,
            timestamp,
            record.model_name,
            api_key_id,
        )
        append(_new_tuple(UsageRow, fields))  # UsageRow(*fields) without its argument parsing.
    return rows


def _claim_idempotency_keys(*, records: Sequence[CheckedRecord], now: datetime) -> tuple[list[CheckedRecord], int]:
    """Keep the records whose (decision_id, idempotency_key) was never stored, each pair once.

    INSERT ... ON CONFLICT DO NOTHING RETURNING tells which pairs this transaction claimed; a
    concurrent batch with the same pair waits on the unique index and then sees it as taken."""
    fresh: list[CheckedRecord] = []
    keyed: dict[tuple[str, str], CheckedRecord] = {}
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
    conflict = "ON CONFLICT (decision_id, idempotency_key) DO NOTHING RETURNING decision_id, idempotency_key"
    decision_ids, keys = zip(*pairs, strict=True)
    if connection.vendor == "postgresql":
        # Two array parameters instead of thousands of placeholders: far cheaper to send and parse.
        sql = (
            f"INSERT INTO {table} (decision_id, idempotency_key, created_at) "  # noqa: S608 -- name from metadata
            f"SELECT d, k, %s FROM unnest(%s::text[], %s::text[]) AS pairs(d, k) {conflict}"
        )
        params = [now, list(decision_ids), list(keys)]
    else:
        created_at = UsageIdempotencyKey._meta.get_field("created_at").get_db_prep_save(now, connection)
        values = ", ".join(["(%s, %s, %s)"] * len(pairs))
        sql = f"INSERT INTO {table} (decision_id, idempotency_key, created_at) VALUES {values} {conflict}"  # noqa: S608
        params = [value for pair in pairs for value in (*pair, created_at)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {tuple(row) for row in cursor.fetchall()}


_IDEMPOTENCY_TABLE = UsageIdempotencyKey._meta.db_table

# PostgreSQL: the idempotency claim and the log ids of the records it keeps, in one statement. Each
# (decision_id, key) pair is claimed once, by its first record, in code-point order (the order of
# the Python path's sorted(), so concurrent batches lock the unique index's entries in one order and
# cannot deadlock); records without a key are always kept. Returns the kept records' positions
# (1-based, ascending) and an id from the log's sequence for each (%s 4: its regclass, folded once).
_CLAIM_AND_IDS_SQL = f"""
WITH batch AS (
    SELECT d COLLATE "C" AS d, k COLLATE "C" AS k, n
    FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS b(d, k, n)
), firsts AS (
    SELECT DISTINCT ON (d, k) d, k, n FROM batch WHERE k <> '' ORDER BY d, k, n
), claimed AS (
    INSERT INTO {_IDEMPOTENCY_TABLE} (decision_id, idempotency_key, created_at)
    SELECT d, k, %s FROM firsts ORDER BY d, k
    ON CONFLICT (decision_id, idempotency_key) DO NOTHING
    RETURNING decision_id, idempotency_key
), kept AS (
    SELECT n FROM batch WHERE k = ''
    UNION ALL
    SELECT f.n FROM firsts f JOIN claimed c ON c.decision_id = f.d AND c.idempotency_key = f.k
)
SELECT array_agg(n), array_agg(id) FROM (
    SELECT n, nextval(%s::regclass) AS id FROM (SELECT n FROM kept ORDER BY n) AS ordered
) AS numbered
"""  # noqa: S608 -- the table name comes from the model's metadata


def _claim_and_allocate(
    *, records: Sequence[CheckedRecord], now: datetime
) -> tuple[list[CheckedRecord], list[int] | list[None], int]:
    """(the records to store, their log ids, how many were duplicates): what
    _claim_idempotency_keys and _log_ids_allocate give, in one round trip on PostgreSQL."""
    if connection.vendor != "postgresql":
        fresh, duplicates = _claim_idempotency_keys(records=records, now=now)
        return fresh, _log_ids_allocate(len(fresh)), duplicates
    decision_ids = [record.decision_id for record in records]
    keys = [record.idempotency_key for record in records]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_AND_IDS_SQL, [decision_ids, keys, now, _log_id_sequence()])
        positions, ids = cursor.fetchone()
    if not positions:
        return [], [], len(records)
    fresh = [records[n - 1] for n in positions]
    return fresh, ids, len(records) - len(fresh)


# Every column of the log, as COPY sends them: UsageRow's fields (a test holds the two in step).
COPY_COLUMNS = [field.column for field in UsageLog._meta.concrete_fields]


_copy_types_cache: dict[str, list[str]] = {}


def _copy_types() -> list[str]:
    """PostgreSQL type of each COPY column, for binary COPY (no text formatting of each value);
    read from the catalog once per process and database."""
    alias = connection.alias
    if alias not in _copy_types_cache:
        _copy_types_cache[alias] = _copy_types_read()
    return _copy_types_cache[alias]


def _copy_types_read() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [UsageLog._meta.db_table],
        )
        types = dict(cursor.fetchall())
    return [types[column] for column in COPY_COLUMNS]


def _log_ids_allocate(count: int) -> list[int] | list[None]:
    """PostgreSQL: ids from the log's identity sequence, one round trip for the whole batch, so
    rows go out with their ids (COPY returns nothing). SQLite: None, bulk_create sets them."""
    if connection.vendor != "postgresql":
        return [None] * count
    with connection.cursor() as cursor:
        # A constant regclass, folded once: looking the sequence up in the query would cost it per id.
        cursor.execute(
            "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)", [_log_id_sequence(), count]
        )
        return cursor.fetchone()[0]


_id_sequence_cache: dict[str, str] = {}


def _log_id_sequence() -> str:
    """The log's identity sequence, read from the catalog once per process and database."""
    if connection.alias not in _id_sequence_cache:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [UsageLog._meta.db_table])
            _id_sequence_cache[connection.alias] = cursor.fetchone()[0]
    return _id_sequence_cache[connection.alias]


def _rows_insert(rows: list[UsageRow]) -> list[UsageRow]:
    """Store the rows; returns them with their ids. PostgreSQL: binary COPY, an order of magnitude
    faster than a multi-row INSERT for large batches."""
    if connection.vendor != "postgresql":
        logs = UsageLog.objects.bulk_create([UsageLog(*row) for row in rows])
        return [row._replace(id=log.pk) for row, log in zip(rows, logs, strict=True)]
    columns = ", ".join(f'"{name}"' for name in COPY_COLUMNS)
    types = _copy_types()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {UsageLog._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
    return rows


def _counter_deltas(
    *, logs: Sequence[UsageRow] | Sequence[UsageLog], now: datetime, sign: int = 1, into: dict | None = None
) -> dict[str, list]:
    """Per model: [calls, cost, cost in now's month] of the logs, each counted `sign` times (-1: taken
    out), added to `into` when given."""
    month_from, month_to = month_bounds(now)
    deltas: dict[str, list] = {} if into is None else into
    for log in logs:
        delta = deltas.setdefault(log.model_name, [0, ZERO, ZERO])
        delta[0] += sign
        if log.cost is not None:
            delta[1] += sign * log.cost
            if month_from <= log.timestamp < month_to:
                delta[2] += sign * log.cost
    return deltas


def _counters_add(*, logs: Sequence[UsageRow], now: datetime) -> None:
    """Add the batch's calls and cost to each model's counters, in one upsert. The database adds to
    the stored values, so concurrent batches lose no update; rows are written in name order, so two
    batches touching the same models cannot deadlock."""
    deltas = _counter_deltas(logs=logs, now=now)
    table = UsageCounter._meta.db_table
    month = UsageCounter._meta.get_field("current_month").get_db_prep_save(month_start(now), connection)
    updated_at = UsageCounter._meta.get_field("updated_at").get_db_prep_save(now, connection)
    params: list = []
    for name in sorted(deltas):
        calls, cost, month_cost = deltas[name]
        params += [name, calls, cost, month, month_cost, updated_at]
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(deltas))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS c (model_name, total_calls, total_cost, current_month, current_month_cost, "  # noqa: S608
            f"updated_at) VALUES {rows} ON CONFLICT (model_name) DO UPDATE SET "
            "total_calls = c.total_calls + excluded.total_calls, total_cost = c.total_cost + excluded.total_cost, "
            "current_month_cost = CASE WHEN c.current_month = excluded.current_month "
            "THEN c.current_month_cost + excluded.current_month_cost ELSE excluded.current_month_cost END, "
            "current_month = excluded.current_month, updated_at = excluded.updated_at",
            params,
        )


@dataclass(frozen=True)
class PreparedBatch:
    """Records checked against the rules, with the moment they are recorded at, and their log
    partitions created: what usage_batch_store stores in one transaction."""

    records: Sequence[CheckedRecord]
    now: datetime
    months: frozenset[date] = frozenset()  # The log partitions (UTC months) the records go to.
    api_key_id: int | None = None  # The key that sent the batch, stored on each of its calls.


def usage_batch_prepare(*, records: Sequence[UsageRecordInput], api_key: ApiKey | None = None) -> PreparedBatch:
    """Check every record (UsageRecordInvalid, path `records[i].field`, before anything is stored)
    and create the log partitions the batch needs. Runs before the batch's transaction: creating a
    partition locks the whole log, so that lock is kept short. `api_key`: the key that sent the
    records (None: a Python caller or a staff login), recorded with each call."""
    now = timezone.now()
    checked = usage_records_validated(records, now=now) if records else []
    months = frozenset(_months_of(checked, now))
    usage_partitions_ensure_known(months=months)
    api_key_id = None if api_key is None else api_key.pk
    return PreparedBatch(records=checked, now=now, months=months, api_key_id=api_key_id)


def _months_of(records: Sequence[CheckedRecord], now: datetime) -> set[date]:
    """The UTC months of the records' moments; a batch within one month (the usual case) costs a min
    and a max, not a conversion per record."""
    if not records:
        return set()
    moments = [record.timestamp or now for record in records]
    first, last = month_of(min(moments)), month_of(max(moments))
    return {first} if first == last else {month_of(moment) for moment in moments}


@transaction.atomic(savepoint=False)
def usage_batch_store(*, batch: PreparedBatch) -> IngestResult:
    """Store the calls with their cost, and add them to the counters and the rollups, in one
    transaction. Records whose (decision_id, idempotency_key) was stored before are skipped and counted.
    Budget evaluation is not usage's: ingest.services.usage_batch_record runs it in the same transaction.

    Inside a caller's transaction (usage_batch_run's) it takes no savepoint of its own: a failure
    fails the caller's whole block, which is what every caller wants, and a batch saves two round trips."""
    if not batch.records:
        return IngestResult()
    fresh, log_ids, duplicates = _claim_and_allocate(records=batch.records, now=batch.now)
    if not fresh:
        return IngestResult(duplicates=duplicates)
    generation = _log_lock_for_pricing()
    book = price_book_cached(model_names={r.model_name for r in fresh}, generation=generation)
    rows = _rows_insert(_rows_priced(fresh, log_ids, book, batch.now, batch.api_key_id))
    _counters_add(logs=rows, now=batch.now)
    rollups_apply_logs(logs=rows)
    currencies = {model_name: pricing.currency for model_name, pricing in book.pricing_by_model.items()}
    return IngestResult(stored=rows, duplicates=duplicates, currencies=currencies)


def _log_lock_for_pricing() -> int | None:
    """PostgreSQL: take the lock the batch's COPY takes anyway (ROW EXCLUSIVE on the log, shared
    with other batches) before reading prices, not after: a back-dating reprice holds the log in
    EXCLUSIVE mode while it moves price spans, so a batch either priced its calls before that
    began, or waits and reads the new spans; it never stores a call against a span just moved.

    Returns the price generation (pricing.generation), read after the lock is granted in the same
    round trip (two statements, each with its own snapshot), or None when there is no generation row."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"LOCK TABLE ONLY {UsageLog._meta.db_table} IN ROW EXCLUSIVE MODE; {generation_select_sql()}"
            )
            cursor.cursor.nextset()
        else:
            cursor.execute(generation_select_sql())
        row = cursor.fetchone()
    return None if row is None else row[0]


def usage_batch_run(*, batch: PreparedBatch, store: Callable[[PreparedBatch], T]) -> T:
    """Run `store` (usage_batch_store and what the caller adds to its transaction) in one transaction
    (a savepoint inside the caller's). The batch's partitions were known to exist when it was
    prepared; if one was dropped since (retention, a repair), the transaction fails on the first row
    it has no partition for: the partitions are then checked again in the database, created, and
    `store` runs once more, from scratch (nothing of the failed attempt was kept)."""
    try:
        with transaction.atomic():
            return store(batch)
    except Exception as error:  # COPY raises the driver's own error, other statements Django's.
        if not _no_partition_for_row(error):
            raise
    _known_partitions().difference_update(batch.months)
    usage_partitions_ensure(months=set(batch.months))
    with transaction.atomic():
        return store(batch)


def _no_partition_for_row(error: Exception) -> bool:
    """PostgreSQL's "no partition of relation ... found for row" (a check violation of no constraint),
    raised by the driver (COPY) or wrapped by Django."""
    cause = error if hasattr(error, "diag") else error.__cause__
    diag = getattr(cause, "diag", None)
    return (
        getattr(cause, "sqlstate", None) == "23514"
        and diag is not None
        and diag.constraint_name is None
        and (diag.message_primary or "").startswith("no partition of relation")
    )


def usage_ingest(*, records: Sequence[UsageRecordInput], api_key: ApiKey | None = None) -> IngestResult:
    """Store calls (usage_batch_prepare, then usage_batch_store), without budget evaluation: the
    service's callers use ingest.services.usage_batch_record, which adds it."""
    return usage_batch_run(batch=usage_batch_prepare(records=records, api_key=api_key), store=_stored)


def _stored(batch: PreparedBatch) -> IngestResult:
    return usage_batch_store(batch=batch)


def usage_rows_as_logs(rows: Sequence[UsageRow]) -> list[UsageLog]:
    """Stored rows as UsageLog instances (no query)."""
    return [UsageLog.from_db(connection.alias, None, row) for row in rows]


FROM_ROLLUPS = "rollups"
FROM_LOG = "log"
RECONCILE_SOURCES = (FROM_ROLLUPS, FROM_LOG)


@dataclass(frozen=True)
class CounterDifference:
    """A counter that differs from the record: what is stored, what the log holds (with retired
    months and the gaps a rebuild keeps: what `--from-log` sets), what the rollups hold (what
    `--from-rollups` sets), and what this run sets or would set (None: it may not choose)."""

    model_name: str
    field: str
    stored: int | Decimal
    from_log: int | Decimal
    from_rollups: int | Decimal
    target: int | Decimal | None = None

    @property
    def lowered(self) -> bool:
        return self.target is not None and self.target < self.stored


@dataclass
class ReconcileOutcome:
    reading: ConsistencyReading  # As found, before any change.
    differences: list[CounterDifference]
    source: str | None
    fix: bool
    refused: bool = False  # --fix without a source while the log and the rollups disagree.
    gaps_recorded: list[UsageLogGap] = field(default_factory=list)
    gaps_removed: int = 0
    rebuilt_rows: int | None = None

    @property
    def lowered(self) -> list[CounterDifference]:
        return [d for d in self.differences if d.lowered]

    @property
    def changed(self) -> bool:
        return bool(self.differences or self.gaps_recorded or self.gaps_removed or self.rebuilt_rows is not None)


class ReconcileRefused(Exception):
    """--fix was asked for without saying which side is the truth, and the log and rollups disagree."""

    def __init__(self, outcome: ReconcileOutcome):
        super().__init__("the usage log and its rollups disagree: choose --from-rollups or --from-log")
        self.outcome = outcome


def _counter_target(figure: CounterFigure, *, source: str | None, disagree: bool) -> int | Decimal | None:
    if source == FROM_LOG:
        return figure.log
    if source == FROM_ROLLUPS or not disagree:
        # Where every month agrees, the rollups are the log plus retired months plus recorded gaps.
        return figure.rollups
    return None


def _counter_differences(reading: ConsistencyReading, source: str | None) -> list[CounterDifference]:
    disagree = bool(reading.disagreements)
    differences = []
    for figure in reading.counters:
        target = _counter_target(figure, source=source, disagree=disagree)
        if target is None:
            differs = figure.stored != figure.log or figure.stored != figure.rollups
        else:
            differs = figure.stored != target
        if differs:
            differences.append(
                CounterDifference(figure.model_name, figure.field, figure.stored, figure.log, figure.rollups, target)
            )
    return differences


def _reconcile_locks() -> None:
    """--fix: no compaction meanwhile (the log's SHARE lock, taken first, holds batches back), and the
    counters locked in name order, as batches lock them."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COMPACT_LOCK])
    list(UsageCounter.objects.select_for_update().order_by("model_name").values_list("pk", flat=True))


def _gaps_record(*, lost: list[MonthModel], now: datetime) -> list[UsageLogGap]:
    """Record what the rollups hold and the log lost, so log + retired + gaps = rollups again."""
    recorded = []
    for entry in lost:
        total = entry.gaps + entry.missing
        gap, _created = UsageLogGap.objects.update_or_create(
            month=entry.month,
            model_name=entry.model_name,
            defaults={"calls": total.calls, "cost": total.cost, "recorded_at": now},
        )
        recorded.append(gap)
    return recorded


def _counters_set(*, differences: list[CounterDifference], this_month: date, now: datetime) -> None:
    targets: dict[str, dict] = {}
    for difference in differences:
        targets.setdefault(difference.model_name, {})[difference.field] = difference.target
    for model_name, values in targets.items():
        if "current_month_cost" in values:  # Else the stored month and its cost stay as they are.
            values["current_month"] = this_month
        UsageCounter.objects.update_or_create(model_name=model_name, defaults={**values, "updated_at": now})


@transaction.atomic
def usage_reconcile(*, source: str | None, fix: bool, now: datetime | None = None) -> ReconcileOutcome:
    """Compare the log, the rollups, the retired months, the recorded gaps and the counters, per UTC
    month and model; with fix=True, make them agree from the side `source` names:

    - FROM_ROLLUPS: the rollups are the truth. Lost rows are recorded (UsageLogGap), the counters
      set to the rollups' figures. Rows the log holds beyond the rollups stay reported.
    - FROM_LOG: the log is the truth. The rollups are rebuilt from it (retired months keep theirs),
      the gaps of the rebuilt months removed, the counters set to log + retired (+ kept gaps).
    - None: only where every month agrees (then rollups = log + retired + gaps): counters from that
      record. Where they disagree the outcome is `refused` and nothing changes.

    With fix=True the log is locked in SHARE mode (EXCLUSIVE for FROM_LOG, which rebuilds) and compaction
    and the pricing rows are locked before anything is read: a batch committed before is counted,
    one arriving meanwhile waits and then adds its own figures on top."""
    if source not in (None, *RECONCILE_SOURCES):
        raise ValueError(f"source must be one of {RECONCILE_SOURCES} or None, not {source!r}")
    now = now or timezone.now()
    lock_mode = ("EXCLUSIVE" if source == FROM_LOG else "SHARE") if fix else "ACCESS SHARE"
    with usage_snapshot(lock_mode=lock_mode, lock_timeout=None, repeatable=not fix):
        if fix:
            _reconcile_locks()
        reading = usage_consistency_read(full=True, now=now)
        differences = _counter_differences(reading, source)
        outcome = ReconcileOutcome(reading=reading, differences=differences, source=source, fix=fix)
        if not fix:
            return outcome
        if source is None and reading.disagreements:
            outcome.refused = True
            return outcome
        if source == FROM_ROLLUPS:
            outcome.gaps_recorded = _gaps_record(lost=reading.lost, now=now)
        elif source == FROM_LOG:
            since = rollups_rebuild_first_month()
            rebuilt_gaps = UsageLogGap.objects.all() if since is None else UsageLogGap.objects.filter(month__gte=since)
            outcome.gaps_removed, _ = rebuilt_gaps.delete()
            outcome.rebuilt_rows = rollups_rebuild()
        _counters_set(differences=differences, this_month=month_start(now), now=now)
    return outcome


def usage_counters_reconcile(*, fix: bool, now: datetime | None = None) -> list[CounterDifference]:
    """The counters that differ from the record; with fix=True, set them to it. Raises
    ReconcileRefused when the log and its rollups disagree (see usage_reconcile)."""
    outcome = usage_reconcile(source=None, fix=fix, now=now)
    if outcome.refused:
        raise ReconcileRefused(outcome)
    return outcome.differences


# --- The partitioned usage log (PostgreSQL) -------------------------------------------------------

PARTITION_LOCK = 0x61695F6C6F67  # pg_advisory_xact_lock key: one partition creator at a time.


def _missing_partition_months(months: set[date]) -> list[date]:
    names = [partition_name(month) for month in sorted(months)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL", [names])
        missing = {row[0] for row in cursor.fetchall()}
    return [month for month in sorted(months) if partition_name(month) in missing]


def usage_partitions_ensure(*, months: set[date]) -> list[date]:
    """Create the log's partitions for these UTC months where missing; returns the months created.
    Safe from many processes at once (an advisory lock, then CREATE ... IF NOT EXISTS)."""
    if connection.vendor != "postgresql" or not months:
        return []
    missing = _missing_partition_months(months)
    if missing:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK])
            missing = _missing_partition_months(set(missing))
            for month in missing:
                cursor.execute(create_partition_sql(month))
    if not connection.in_atomic_block:  # Committed: other transactions see the partitions too.
        _known_partitions().update(months)
    return missing


# Per database: the UTC months whose log partition this process saw or created. Ingestion checks the
# catalog only for others; a partition dropped meanwhile (by retention here or anywhere) is found
# when a batch's first row fails to find it, and usage_batch_run checks again and retries that batch.
_partitions_known: dict[str, set[date]] = {}


def _known_partitions() -> set[date]:
    return _partitions_known.setdefault(connection.alias, set())


def usage_partitions_ensure_known(*, months: frozenset[date] | set[date]) -> None:
    """usage_partitions_ensure for the months this process does not know to exist (ingestion)."""
    unknown = months - _known_partitions()
    if unknown:
        usage_partitions_ensure(months=set(unknown))


def usage_partitions_ensure_ahead(*, now: datetime, ahead: int | None = None) -> list[date]:
    """The current UTC month and `ahead` months after it (cron; also run by migrate)."""
    ahead = settings.AICOST_USAGE_PARTITIONS_AHEAD if ahead is None else ahead
    return usage_partitions_ensure(months=set(months_due(now, ahead)))


def usage_retention_months(*, keep_months: int, now: datetime) -> list[date]:
    """Partitions older than the current UTC month and the keep_months - 1 months before it."""
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1: the current month is always kept")
    oldest_kept = add_months(month_of(now), -(keep_months - 1))
    return [month for month in partition_months(connection) if month < oldest_kept]


@dataclass(frozen=True)
class RetentionOutcome:
    month: date
    rows: int
    dropped: bool
    reason: str = ""


@transaction.atomic
def usage_partition_retire(*, month: date, now: datetime) -> RetentionOutcome:
    """Drop one month of the log after checking that the rollups hold it (the stats keep reading
    them) and recording its per-model totals (the counters' reconciliation keeps adding them)."""
    sums = partition_model_sums(month=month)
    rows = sum(calls for calls, _cost in sums.values())
    rolled_up = rollup_month_calls(month=month)
    lost = usage_log_gap_calls(month=month)  # Recorded by `usage_reconcile --from-rollups --fix`.
    if rolled_up != rows + lost:
        recorded = f" and {lost} recorded as lost" if lost else ""
        reason = (
            f"the rollups hold {rolled_up} calls for {month:%Y-%m} but the partition has {rows}{recorded}; "
            "compare them first (python manage.py usage_verify --month "
            f"{month:%Y-%m}, then usage_reconcile or usage_rollups_rebuild)"
        )
        return RetentionOutcome(month=month, rows=rows, dropped=False, reason=reason)
    UsageRetiredMonth.objects.bulk_create(
        [
            UsageRetiredMonth(month=month, model_name=name, calls=calls, cost=cost, retired_at=now)
            for name, (calls, cost) in sums.items()
        ]
    )
    _known_partitions().discard(month)
    with connection.cursor() as cursor:
        # DETACH first: DROP then only touches the detached table, however large it is.
        cursor.execute(f"ALTER TABLE {LOG_TABLE} DETACH PARTITION {partition_name(month)}")
        cursor.execute(f"DROP TABLE {partition_name(month)}")
    return RetentionOutcome(month=month, rows=rows, dropped=True)


# --- Idempotency keys: retention ------------------------------------------------------------------

IDEMPOTENCY_EXPIRE_BATCH = 2000  # Keys looked at (and at most removed) per statement.
IDEMPOTENCY_EXPIRE_SECONDS = 30.0  # One run stops after this long; the next run goes on from the oldest key.


@dataclass(frozen=True)
class IdempotencyExpiry:
    cutoff: datetime
    removed: int
    batches: int
    finished: bool  # False: stopped by the time bound, older keys remain for the next run.


def idempotency_cutoff(*, now: datetime, days: int | None = None) -> datetime:
    """Keys created before this are forgotten (AICOST_IDEMPOTENCY_RETENTION_DAYS before now)."""
    days = settings.AICOST_IDEMPOTENCY_RETENTION_DAYS if days is None else days
    if days < 1:
        raise ValueError("the idempotency retention must be at least one day")
    return now - timedelta(days=days)


def usage_idempotency_keys_expire(
    *,
    now: datetime,
    days: int | None = None,
    batch_size: int = IDEMPOTENCY_EXPIRE_BATCH,
    max_seconds: float = IDEMPOTENCY_EXPIRE_SECONDS,
    max_batches: int | None = None,
) -> IdempotencyExpiry:
    """Remove the idempotency keys older than the retention window, in small batches.

    Walks the table in primary-key order (ids grow with time) from the oldest key: each batch reads
    the next `batch_size` ids and deletes those of them older than the cutoff, one short statement in
    its own transaction (autocommit), so ingestion never waits for more than one batch's row locks and
    no table lock is taken. It stops at the first batch that holds a key within the window (the rest
    is newer) or after `max_seconds` (or `max_batches` batches). A key whose id is past that point but
    whose created_at is older (a batch that committed late) goes at the next run."""
    cutoff = idempotency_cutoff(now=now, days=days)
    started = time.monotonic()
    keys = UsageIdempotencyKey.objects
    after = 0
    removed = batches = 0
    while True:
        if time.monotonic() - started > max_seconds or (max_batches is not None and batches >= max_batches):
            return IdempotencyExpiry(cutoff=cutoff, removed=removed, batches=batches, finished=False)
        batch = list(keys.filter(pk__gt=after).order_by("pk").values_list("pk", "created_at")[:batch_size])
        if not batch:
            break
        last = batch[-1][0]
        expired = sum(1 for _pk, created_at in batch if created_at < cutoff)
        if expired:
            deleted, _by_model = keys.filter(pk__gt=after, pk__lte=last, created_at__lt=cutoff).delete()
            removed += deleted
            batches += 1
        if expired < len(batch) or len(batch) < batch_size:
            break
        after = last
    return IdempotencyExpiry(cutoff=cutoff, removed=removed, batches=batches, finished=True)


def usage_idempotency_keys_vacuum() -> bool:
    """PostgreSQL, outside a transaction: VACUUM the keys' table after a removal, so the space of the
    removed keys is reused by new ones and the table stays the size of one retention window (autovacuum
    would wait for 20% dead rows; a day's removal is 1/7). VACUUM takes a lock that inserts and deletes
    do not wait for. False where it cannot run (SQLite, or inside a transaction)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {_IDEMPOTENCY_TABLE}")
    return True


# --- Repricing stored calls (usage_reprice) -------------------------------------------------------

REPRICE_CHUNK = 2000  # Calls per transaction of an applied run.


class RepriceInvalid(ValueError):
    """The run was asked for something it cannot do (unknown model, empty span, ...)."""


class RepriceInterrupted(Exception):
    """Test hook (stop_after): the run stopped after that many committed transactions, as a crash
    between two of them would leave it."""


@dataclass
class RepriceDay:
    """One model's calls of one local day (TIME_ZONE) in a run: their old and new totals per currency."""

    model_name: str
    day: date
    calls: int = 0
    changed: int = 0
    old: dict[str, Decimal] = field(default_factory=dict)
    new: dict[str, Decimal] = field(default_factory=dict)

    def currencies(self) -> list[str]:
        return sorted(self.old.keys() | self.new.keys())


@dataclass
class RepriceOutcome:
    run: UsageRepriceRun
    days: list[RepriceDay]  # What this invocation went through (a resumed run: from its cursor on).
    resumed: bool = False


def _money_add(totals: dict[str, Decimal], currency: str, amount: Decimal | None) -> None:
    totals[currency] = totals.get(currency, ZERO) + (amount or ZERO)


def _same_cost(left: Decimal | None, right: Decimal | None) -> bool:
    if left is None or right is None:
        return left is right
    if connection.vendor != "postgresql":  # SQLite keeps 15 significant digits (core.money).
        return cost_from_float(float(left)) == cost_from_float(float(right))
    return left == right


def _reprice_names(*, model_name: str, since: datetime, until: datetime) -> list[str]:
    """The names as sent of the span's unpriced calls that are now priced as model_name."""
    rows = (
        UsageLog.objects.filter(timestamp__gte=since, timestamp__lt=until, cost_source=CostSource.UNPRICED)
        .exclude(model_name=model_name)
        .order_by()
        .values_list("sent_model_name", "model_name")
        .distinct()
    )
    matcher = name_matcher_all()
    names = {sent or counted for sent, counted in rows}
    return sorted(name for name in names if matcher.match(name).model_name == model_name)


def _reprice_selection(*, model_name: str, since: datetime, until: datetime, names: list[str], backdate: bool):
    """The span's calls of model_name, and its unpriced calls sent under a name now priced as it.
    Provider-reported costs stay as reported (a back-dated run still moves them to the right version)."""
    span = UsageLog.objects.filter(timestamp__gte=since, timestamp__lt=until)
    unpriced = Q(cost_source=CostSource.UNPRICED) & (
        Q(sent_model_name__in=names) | Q(sent_model_name="", model_name__in=names)
    )
    selected = span.filter(Q(model_name=model_name) | unpriced)
    return selected if backdate else selected.exclude(cost_source=CostSource.PROVIDER)


def _after_cursor(queryset, cursor: tuple[datetime, int] | None):
    if cursor is None:
        return queryset
    moment, log_id = cursor
    return queryset.filter(Q(timestamp__gt=moment) | Q(timestamp=moment, id__gt=log_id))


def _as_record(log: UsageLog, model_name: str) -> CheckedRecord:
    """A stored call as the pricer reads it, priced as model_name (a provider's cost kept)."""
    return CheckedRecord(
        model_name=model_name,
        prompt_tokens=log.prompt_tokens,
        completion_tokens=log.completion_tokens,
        cached_tokens=log.cached_tokens,
        reasoning_tokens=log.reasoning_tokens,
        cache_write_5m_tokens=log.cache_write_5m_tokens,
        cache_write_1h_tokens=log.cache_write_1h_tokens,
        input_audio_tokens=log.input_audio_tokens,
        output_audio_tokens=log.output_audio_tokens,
        output_image_tokens=log.output_image_tokens,
        decision_id=log.decision_id,
        idempotency_key="",
        user_id=log.user_id,
        response_time=log.response_time,
        success=log.success,
        error_message=log.error_message,
        purpose=log.purpose,
        timestamp=log.timestamp,
        cost=log.cost if log.cost_source == CostSource.PROVIDER else None,
    )


def _counters_shift(*, removed: Sequence[UsageLog], added: Sequence[UsageLog], now: datetime) -> None:
    """Move the counters by exactly the difference between the calls as they were and as they are.
    Locked in name order after the log rows, as batches and usage_reconcile lock them. Not the
    batches' upsert: a difference may be negative, and PostgreSQL checks an upsert's proposed row
    (the delta) against the counters' CHECK before it finds the conflict. The month's cost moves only
    where the counter counts the current month; one that counts an earlier month starts the current
    month at the difference."""
    this_month = month_start(now)
    deltas = _counter_deltas(logs=removed, now=now, sign=-1)
    _counter_deltas(logs=added, now=now, into=deltas)
    deltas = {name: delta for name, delta in deltas.items() if any(delta)}
    if not deltas:
        return
    counters = {
        counter.model_name: counter
        for counter in UsageCounter.objects.select_for_update().filter(model_name__in=deltas).order_by("model_name")
    }
    for name in sorted(deltas):
        calls, cost, month_cost = deltas[name]
        counter = counters.get(name) or UsageCounter(model_name=name, current_month=this_month)
        counter.total_calls += calls
        counter.total_cost += cost
        if counter.current_month == this_month:
            counter.current_month_cost += month_cost
        elif month_cost:
            counter.current_month, counter.current_month_cost = this_month, month_cost
        counter.updated_at = now
        counter.save()


# The columns repricing and conversion rewrite, with their PostgreSQL array types.
_REWRITTEN_COLUMNS = (
    ("model_name", "text"),
    ("cost", "numeric"),
    ("cost_source", "text"),
    ("price_version_id", "bigint"),
    ("reporting_cost", "numeric"),
    ("exchange_rate_id", "bigint"),
    ("unconverted", "boolean"),
)
_REWRITTEN_SQL = (
    f"UPDATE {LOG_TABLE} AS l SET "  # noqa: S608 -- the table and column names are the module's constants
    + ", ".join(f"{column} = v.{column}" for column, _type in _REWRITTEN_COLUMNS)
    + " FROM unnest(%s::bigint[], %s::timestamptz[], "
    + ", ".join(f"%s::{sql_type}[]" for _column, sql_type in _REWRITTEN_COLUMNS)
    + ") AS v(id, ts, "
    + ", ".join(column for column, _type in _REWRITTEN_COLUMNS)
    + ') WHERE l.id = v.id AND l."timestamp" = v.ts'
)


def _logs_rewritten(logs: Sequence[UsageLog]) -> None:
    """Write the priced and converted columns of the logs (repricing, conversion). PostgreSQL: one
    statement (each row found by id and timestamp, so in its partition only); SQLite: one per row."""
    attnames = [UsageLog._meta.get_field(column.removesuffix("_id")).attname for column, _type in _REWRITTEN_COLUMNS]
    if connection.vendor == "postgresql":
        arrays = [[log.pk for log in logs], [log.timestamp for log in logs]]
        arrays += [[getattr(log, attname) for log in logs] for attname in attnames]
        with connection.cursor() as cursor:
            cursor.execute(_REWRITTEN_SQL, arrays)
        return
    fields = [UsageLog._meta.get_field(column.removesuffix("_id")) for column, _type in _REWRITTEN_COLUMNS]
    assignments = ", ".join(f"{column} = %s" for column, _type in _REWRITTEN_COLUMNS)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {LOG_TABLE} SET {assignments} WHERE id = %s",  # noqa: S608
            [
                [
                    *(
                        field.get_db_prep_save(getattr(log, attname), connection)
                        for field, attname in zip(fields, attnames, strict=True)
                    ),
                    log.pk,
                ]
                for log in logs
            ],
        )


@dataclass
class _RepriceState:
    """What a run carries from chunk to chunk."""

    run: UsageRepriceRun
    model_name: str
    selection: object
    currencies: dict[int, str]  # Version id -> its currency (also of versions a back-date removes).
    currency: str  # The model's, for a call that has no version.
    days: dict[tuple[str, date], RepriceDay] = field(default_factory=dict)
    old_version_of: Callable[[UsageLog], int | None] | None = None  # Back-date: the version before it.


def _reprice_chunk(*, state: _RepriceState, chunk_size: int, apply: bool, now: datetime) -> tuple[int, set[str]]:
    """Price the next chunk of calls after the run's cursor at their own moments with today's price
    book; with apply, write what changed (log, history, rollups, counters) and move the cursor.
    Returns (calls read, names whose figures changed)."""
    run = state.run
    cursor = None if run.cursor_timestamp is None else (run.cursor_timestamp, run.cursor_id)
    queryset = _after_cursor(state.selection, cursor).order_by("timestamp", "id")
    if apply:
        queryset = queryset.select_for_update()
    logs = list(queryset[:chunk_size])
    if not logs:
        return 0, set()
    book = price_book_for_models(model_names=[state.model_name])
    # The chunk is in timestamp order: the rates in force over its span.
    pricer = BatchPricer(book, rate_book_for_prices(book, start=logs[0].timestamp, end=logs[-1].timestamp + _INSTANT))
    removed: list[UsageLog] = []
    added: list[UsageLog] = []
    history: list[UsageRepriceChange] = []
    versions: set[int] = set(run.version_ids)
    delta = {currency: Decimal(amount) for currency, amount in run.delta.items()}
    zone = timezone.get_current_timezone()
    for log in logs:
        cost, source, version_id, reporting_cost, rate_id, unconverted = pricer.price_converted(
            _as_record(log, state.model_name), log.timestamp
        )
        old_version = state.old_version_of(log) if state.old_version_of else log.price_version_id
        old_currency = state.currencies.get(old_version, state.currency)
        new_currency = state.currencies.get(version_id, state.currency)
        local_day = log.timestamp.astimezone(zone).date()
        day = state.days.get((state.model_name, local_day))
        if day is None:
            day = state.days[state.model_name, local_day] = RepriceDay(state.model_name, local_day)
        day.calls += 1
        _money_add(day.old, old_currency, log.cost)
        _money_add(day.new, new_currency, cost)
        changed = (
            not _same_cost(log.cost, cost)
            or log.cost_source != source
            or old_version != version_id
            or log.model_name != state.model_name
            or not _same_cost(log.reporting_cost, reporting_cost)
            or log.exchange_rate_id != rate_id
            or log.unconverted != unconverted
        )
        if version_id is not None:
            versions.add(version_id)
        if not changed:
            continue
        day.changed += 1
        _money_add(delta, old_currency, -(log.cost or ZERO))
        _money_add(delta, new_currency, cost)
        before = UsageLog.from_db(
            connection.alias, None, [getattr(log, f.attname) for f in UsageLog._meta.concrete_fields]
        )
        history.append(
            UsageRepriceChange(
                run=run,
                log_id=log.pk,
                timestamp=log.timestamp,
                old_model_name=log.model_name,
                old_cost=log.cost,
                old_cost_source=log.cost_source,
                old_version_id=old_version,
                new_cost=cost,
                new_cost_source=source,
                new_version_id=version_id,
            )
        )
        log.model_name, log.cost, log.cost_source, log.price_version_id = state.model_name, cost, source, version_id
        log.reporting_cost, log.exchange_rate_id, log.unconverted = reporting_cost, rate_id, unconverted
        removed.append(before)
        added.append(log)
    last = logs[-1]
    run.cursor_timestamp, run.cursor_id = last.timestamp, last.pk
    run.calls_seen += len(logs)
    run.calls_changed += len(added)
    run.version_ids = sorted(versions)
    run.delta = {currency: str(amount) for currency, amount in sorted(delta.items())}
    if not apply:
        return len(logs), set()
    if added:
        _logs_rewritten(added)
        UsageRepriceChange.objects.bulk_create(history, batch_size=500)
        _counters_shift(removed=removed, added=added, now=now)
        rollups_apply_changes(removed=removed, added=added)
    run.transactions += 1
    run.save()
    return len(logs), {log.model_name for log in (*removed, *added)}


def _reprice_resumable(*, model_name: str, since: datetime, until: datetime | None) -> UsageRepriceRun | None:
    runs = UsageRepriceRun.objects.filter(
        status=RepriceStatus.RUNNING, model_name=model_name, since=since, backdate=False
    )
    if until is not None:
        runs = runs.filter(until=until)
    return runs.order_by("-started_at", "-id").first()


def _version_currencies(pricing: ModelPricing) -> dict[int, str]:
    return dict(pricing.price_versions.values_list("pk", "currency"))


def usage_reprice(
    *,
    model_name: str,
    since: datetime,
    until: datetime | None = None,
    apply: bool = False,
    backdate: bool = False,
    actor: str,
    after_chunk: Callable[[set[str], datetime], object] | None = None,
    chunk_size: int = REPRICE_CHUNK,
    stop_after: int | None = None,
    now: datetime | None = None,
) -> RepriceOutcome:
    """Price the stored calls of model_name in [since, until) (until: now) again, each at its own
    moment with today's price book (BatchPricer, as ingestion): the calls counted under it and the
    unpriced calls whose name as sent is now priced as it; provider-reported costs stay.

    Dry run (default): the per-model, per-day old and new totals per currency; nothing changes but
    the run's record. apply: the log rows (cost, cost_source, price_version, model_name), a history
    row per changed call, the rollups (the difference, as batches add), the counters and, through
    after_chunk (ingest.services passes budget evaluation: usage does not import alerts), the
    alerts, in transactions of chunk_size calls in (timestamp, id) order, each moving the run's
    cursor: a rerun of an interrupted run (same model and since) continues after it.

    backdate: first put the model's current price in force from since (pricing.services.
    price_version_backdate, allow_past) and reprice every stored call from since to now with it,
    all in one transaction, so no committed row ever points at a version whose span excludes its
    moment. Without apply that transaction is rolled back."""
    now = now or timezone.now()
    if timezone.is_naive(since) or (until is not None and timezone.is_naive(until)):
        raise RepriceInvalid("since and until need a UTC offset.")
    if chunk_size < 1:
        raise RepriceInvalid("chunk_size must be at least 1.")
    pricing = model_pricing_get(model_name=model_name)
    if pricing is None:
        raise RepriceInvalid(f"{model_name!r} is not a priced model.")
    if backdate:
        if until is not None:
            raise RepriceInvalid("--backdate reprices from --since to now: leave --until out.")
        return _reprice_backdated(
            pricing=pricing,
            since=since,
            apply=apply,
            actor=actor,
            after_chunk=after_chunk,
            chunk_size=chunk_size,
            now=now,
        )
    resumed = _reprice_resumable(model_name=model_name, since=since, until=until) if apply else None
    until = resumed.until if resumed is not None else (until or now)
    if until <= since:
        raise RepriceInvalid("--until must be after --since.")
    run = resumed or UsageRepriceRun(
        actor=actor,
        model_name=model_name,
        since=since,
        until=until,
        status=RepriceStatus.RUNNING if apply else RepriceStatus.DRY_RUN,
        started_at=now,
    )
    if apply and resumed is None:
        run.save()
    names = _reprice_names(model_name=model_name, since=since, until=until)
    state = _RepriceState(
        run=run,
        model_name=model_name,
        selection=_reprice_selection(model_name=model_name, since=since, until=until, names=names, backdate=False),
        currencies=_version_currencies(pricing),
        currency=pricing.currency,
    )
    committed = 0
    while True:
        if apply:
            with transaction.atomic():
                # One runner at a time, from the cursor as committed (another may have moved it).
                run = state.run = UsageRepriceRun.objects.select_for_update().get(pk=run.pk)
                if run.status != RepriceStatus.RUNNING:
                    break
                read, touched = _reprice_chunk(state=state, chunk_size=chunk_size, apply=True, now=timezone.now())
                if touched and after_chunk is not None:
                    after_chunk(touched, timezone.now())
        else:
            read, _touched = _reprice_chunk(state=state, chunk_size=chunk_size, apply=False, now=now)
        if not read:
            break
        committed += 1
        if apply and stop_after is not None and committed >= stop_after:
            raise RepriceInterrupted(f"stopped after {committed} transaction(s); run {run.pk} continues on rerun")
    if run.status != RepriceStatus.FINISHED:
        run.status = RepriceStatus.FINISHED if apply else RepriceStatus.DRY_RUN
        run.finished_at = timezone.now()
        if not apply:
            run.cursor_timestamp = run.cursor_id = None
        run.save()
    return RepriceOutcome(run=run, days=_days_sorted(state), resumed=resumed is not None)


def _days_sorted(state: _RepriceState) -> list[RepriceDay]:
    return [state.days[key] for key in sorted(state.days)]


def _reprice_backdated(
    *,
    pricing: ModelPricing,
    since: datetime,
    apply: bool,
    actor: str,
    after_chunk: Callable[[set[str], datetime], object] | None,
    chunk_size: int,
    now: datetime,
) -> RepriceOutcome:
    model_name = pricing.model_name
    with transaction.atomic():
        if apply and connection.vendor == "postgresql":  # No batch stores a call meanwhile (spans move).
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {UsageLog._meta.db_table} IN EXCLUSIVE MODE")
        versions = list(pricing.price_versions.order_by("effective_from"))
        currencies = {version.pk: version.currency for version in versions}
        current = next((version for version in versions if version.effective_to is None), None)
        if current is None:
            raise RepriceInvalid(f"{model_name!r} has no price in force to back-date.")
        if since >= current.effective_from:
            raise RepriceInvalid(
                f"The price of {model_name!r} in force already starts at {current.effective_from.isoformat()}."
            )
        covered = {v.pk: v for v in versions if v is not current and since <= v.effective_from < current.effective_from}
        previous_start = current.effective_from

        def old_version_of(log: UsageLog) -> int | None:
            # Calls of a removed version were moved onto the current one first (so it can be removed).
            if log.price_version_id == current.pk and log.timestamp < previous_start:
                for version in covered.values():
                    if version.effective_from <= log.timestamp and (
                        version.effective_to is None or log.timestamp < version.effective_to
                    ):
                        return version.pk
            return log.price_version_id

        UsageLog.objects.filter(price_version_id__in=list(covered)).update(price_version_id=current.pk)
        price_version_backdate(pricing=pricing, effective_from=since, allow_past=True)
        run = UsageRepriceRun.objects.create(
            actor=actor,
            model_name=model_name,
            since=since,
            until=now,
            backdate=True,
            status=RepriceStatus.RUNNING,
            started_at=now,
        )
        names = _reprice_names(model_name=model_name, since=since, until=now)
        state = _RepriceState(
            run=run,
            model_name=model_name,
            selection=_reprice_selection(model_name=model_name, since=since, until=now, names=names, backdate=True),
            currencies=currencies,
            currency=pricing.currency,
            old_version_of=old_version_of,
        )
        touched_all: set[str] = set()
        while True:
            read, touched = _reprice_chunk(state=state, chunk_size=chunk_size, apply=True, now=now)
            if not read:
                break
            touched_all |= touched
        if apply and touched_all and after_chunk is not None:  # A dry run raises no alert.
            after_chunk(touched_all, now)
        run.status = RepriceStatus.FINISHED
        run.finished_at = timezone.now()
        run.save()
        if not apply:
            transaction.set_rollback(True)
    if not apply:  # What it would do, recorded as a dry run (the transaction above was rolled back).
        run.pk = None
        run.status, run.cursor_timestamp, run.cursor_id = RepriceStatus.DRY_RUN, None, None
        run.save(force_insert=True)
    return RepriceOutcome(run=run, days=_days_sorted(state))


# --- Converting the calls stored with no exchange rate in force (issue 16) ------------------------

CONVERT_CHUNK = 2000  # Calls per transaction of an applied conversion.


@dataclass
class ConversionTotals:
    """The calls of one price currency a conversion went through: those converted, with their cost
    in that currency and in the reporting currency, and those still without a rate in force."""

    currency: str
    converted: int = 0
    cost: Decimal = ZERO
    reporting_cost: Decimal = ZERO
    still_unconverted: int = 0


@dataclass
class ConvertOutcome:
    reporting_currency: str
    applied: bool
    by_currency: dict[str, ConversionTotals] = field(default_factory=dict)

    @property
    def converted(self) -> int:
        return sum(totals.converted for totals in self.by_currency.values())

    @property
    def still_unconverted(self) -> int:
        return sum(totals.still_unconverted for totals in self.by_currency.values())


def usage_convert(
    *,
    since: datetime,
    until: datetime | None = None,
    apply: bool = False,
    after_chunk: Callable[[set[str], datetime], object] | None = None,
    chunk_size: int = CONVERT_CHUNK,
    now: datetime | None = None,
) -> ConvertOutcome:
    """Convert the unconverted calls of [since, until) (until: now) into the reporting currency, each
    at the rate in force at its own timestamp, now that rates exist; calls still without one stay
    unconverted and are counted. Converted calls are never touched again: a changed rate does not
    rewrite stored figures.

    Dry run (default): the totals per price currency; nothing changes. apply: the log rows
    (reporting_cost, exchange_rate, unconverted), the rollups (the difference, as batches add) and,
    through after_chunk (ingest.services passes budget evaluation), the alerts, in transactions of
    chunk_size calls in (timestamp, id) order; an interrupted run is simply run again."""
    now = now or timezone.now()
    if timezone.is_naive(since) or (until is not None and timezone.is_naive(until)):
        raise RepriceInvalid("since and until need a UTC offset.")
    until = until or now
    if until <= since:
        raise RepriceInvalid("--until must be after --since.")
    if chunk_size < 1:
        raise RepriceInvalid("chunk_size must be at least 1.")
    outcome = ConvertOutcome(reporting_currency=settings.AICOST_REPORTING_CURRENCY, applied=apply)
    selection = UsageLog.objects.filter(unconverted=True, timestamp__gte=since, timestamp__lt=until)
    currencies = model_currencies()
    cursor = None
    while True:
        with transaction.atomic():
            chunk = _after_cursor(selection, cursor).order_by("timestamp", "id").select_related("price_version")
            logs = list((chunk.select_for_update(of=("self",)) if apply else chunk)[:chunk_size])
            if not logs:
                return outcome
            touched = _convert_chunk(logs, currencies=currencies, outcome=outcome, apply=apply)
            if apply and touched and after_chunk is not None:
                after_chunk(touched, timezone.now())
        cursor = (logs[-1].timestamp, logs[-1].pk)


def _convert_chunk(
    logs: list[UsageLog], *, currencies: dict[str, str], outcome: ConvertOutcome, apply: bool
) -> set[str]:
    """Convert one chunk (ordered by timestamp); returns the models whose figures changed."""

    def currency_of(log: UsageLog) -> str:
        if log.price_version is not None:
            return log.price_version.currency
        return currencies.get(log.model_name, settings.AICOST_CURRENCY)

    rates = exchange_rate_book(
        base_currencies={currency_of(log) for log in logs},
        start=logs[0].timestamp,
        end=logs[-1].timestamp + _INSTANT,
    )
    removed: list[UsageLog] = []
    converted: list[UsageLog] = []
    for log in logs:
        currency = currency_of(log)
        totals = outcome.by_currency.setdefault(currency, ConversionTotals(currency))
        conversion = rates.convert(log.cost, currency, log.timestamp)
        if conversion.amount is None:
            totals.still_unconverted += 1
            continue
        totals.converted += 1
        totals.cost += log.cost
        totals.reporting_cost += conversion.amount
        removed.append(
            UsageLog.from_db(connection.alias, None, [getattr(log, f.attname) for f in UsageLog._meta.concrete_fields])
        )
        log.reporting_cost, log.unconverted = conversion.amount, False
        log.exchange_rate_id = None if conversion.rate is None else conversion.rate.pk
        converted.append(log)
    if not (apply and converted):
        return set()
    _logs_rewritten(converted)
    rollups_apply_changes(removed=removed, added=converted)
    return {log.model_name for log in converted}
