"""Reads of usage data and API keys, and the raw rows of the CSV export."""

import functools
import hashlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, connections, router
from django.db.models import CharField, Count, DecimalField, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from core.db_routers import replica_read_alias
from core.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from core.timeutils import month_bounds
from pricing.models import ModelPricing
from pricing.selectors import RateBook, exchange_rate_book, reporting_currency
from usage.models import (
    ApiKey,
    UsageCounter,
    UsageIdempotencyKey,
    UsageLog,
    UsageLogGap,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
)
from usage.partitions import month_bounds_utc, partition_name
from usage.records import TOKEN_FIELDS
from usage.rollup_sums import RollupDelta
from usage.window_sums import UsageFilters, usage_log_window, usage_sums_over_spans

COST_FIELD = DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)
_INSTANT = timedelta(microseconds=1)


def api_key_hash(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to guess from).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_get_active(*, raw_key: str) -> ApiKey | None:
    """The unrevoked key with this secret. Every API request asks: on PostgreSQL the query is written
    once per process and its row made an instance with from_db (the ORM would compile it each time,
    most of the lookup's cost); SQLite's raw values need the ORM's converters."""
    if not raw_key:
        return None
    key_hash = api_key_hash(raw_key)
    alias = router.db_for_read(ApiKey)
    if connections[alias].vendor != "postgresql":
        return ApiKey.objects.using(alias).filter(key_hash=key_hash, revoked_at__isnull=True).first()
    with connections[alias].cursor() as cursor:
        cursor.execute(_active_api_key_sql(), [key_hash])
        row = cursor.fetchone()
    return None if row is None else ApiKey.from_db(alias, _API_KEY_NAMES, row)


_API_KEY_FIELDS = ApiKey._meta.concrete_fields
_API_KEY_NAMES = [field.attname for field in _API_KEY_FIELDS]


@functools.cache
def _active_api_key_sql() -> str:
    """key_hash is unique: at most one row."""
    qn = connection.ops.quote_name
    columns = ", ".join(qn(field.column) for field in _API_KEY_FIELDS)
    key_hash, revoked_at = (qn(ApiKey._meta.get_field(name).column) for name in ("key_hash", "revoked_at"))
    return f"SELECT {columns} FROM {qn(ApiKey._meta.db_table)} WHERE {key_hash} = %s AND {revoked_at} IS NULL"  # noqa: S608


def api_key_labels(*, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """(name, prefix) of the keys with these ids, revoked ones included."""
    ids = list(ids)
    if not ids:
        return {}
    return {
        pk: (name, prefix) for pk, name, prefix in ApiKey.objects.filter(pk__in=ids).values_list("pk", "name", "prefix")
    }


def usage_any_recorded() -> bool:
    """Whether any usage is on record: in the log, or in what is derived from it (the hour and day
    rollups, the months retention retired). After rows were lost the
    log may be empty while the rollups still count them."""
    holders = (
        UsageLog,
        UsageRollupHour,
        UsageRollupHourTotal,
        UsageRollupDaily,
        UsageRollupDailyTotal,
        UsageRetiredMonth,
    )
    return any(model.objects.exists() for model in holders)


# The tables usage_month_sums reads: the month is whole days and hours, so never the log (the cost
# page shows budgets while the log is missing).
USAGE_SPEND_TABLES = (UsageRollupHour._meta.db_table, UsageRollupDaily._meta.db_table)


def usage_counters_list() -> list[UsageCounter]:
    """Every model's running counters (kept by ingestion in its transaction), by name: one small query."""
    return list(UsageCounter.objects.order_by("model_name"))


def usage_month_span(*, now: datetime) -> tuple[datetime, datetime]:
    """The budget month containing `now`: [its first midnight, the next month's) in TIME_ZONE, the
    calendar month the counters count (calls may be stamped up to a day ahead)."""
    return month_bounds(now)


def usage_month_sums(*, model_names: Iterable[str] | None, now: datetime) -> dict[str, RollupDelta]:
    """The sums of each named model (None: every model) in the budget month containing `now` (models
    without calls in it are left out), from the rollups through the read path. Budgets compare the
    month's `reporting_cost` (AICOST_REPORTING_CURRENCY) and report its `unconverted_calls`."""
    names = None if model_names is None else frozenset(model_names)
    if names is not None and not names:
        return {}
    return usage_sums_over_spans(spans=[usage_month_span(now=now)], filters=UsageFilters(model_names=names))[0]


def budget_rates_now(*, currencies: Iterable[str], now: datetime) -> RateBook:
    """The exchange rates in force at `now` from `currencies` into the reporting currency: what a
    budget stated in another currency is converted at (one small query; none when every currency is
    the reporting currency)."""
    return exchange_rate_book(base_currencies=currencies, start=now, end=now + _INSTANT)


def partition_model_sums(*, month: date) -> dict[str, tuple[int, Decimal]]:
    """model_name -> (calls, cost) of one partition of the log (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT model_name, count(*), coalesce(sum(cost), 0) FROM {partition_name(month)} GROUP BY model_name"  # noqa: S608
        )
        return {name: (calls, cost) for name, calls, cost in cursor.fetchall()}


def rollup_month_calls(*, month: date) -> int:
    """Calls the daily rollups hold for one UTC month (partitions and rollup days are both UTC)."""
    start, end = month_bounds_utc(month)
    total = UsageRollupDaily.objects.filter(day__gte=start.date(), day__lt=end.date()).aggregate(n=Sum("calls"))["n"]
    return total or 0


def usage_log_gap_calls(*, month: date) -> int:
    """Calls of one UTC month recorded as lost from the log (all models)."""
    return UsageLogGap.objects.filter(month=month).aggregate(n=Sum("calls"))["n"] or 0


def idempotency_keys_older_count(*, cutoff: datetime) -> int:
    """Idempotency keys created before `cutoff` (a dry run of their removal; reads the whole table)."""
    return UsageIdempotencyKey.objects.filter(created_at__lt=cutoff).count()


# --- The CSV export: raw rows, streamed ------------------------------------------------------------

USAGE_EXPORT_COLUMNS = (
    "id",
    "timestamp",
    "model_name",
    "decision_id",
    "user_id",
    "purpose",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "output_image_tokens",
    "cost",
    "currency",
    "reporting_cost",
    "reporting_currency",
    "exchange_rate",
    "cost_source",
    "price_version_id",
    "response_time",
    "success",
    "error_message",
)
EXPORT_FETCH_ROWS = 5000  # Rows per round trip from the server-side cursor: memory stays at one batch.


def _export_annotations() -> dict:
    """The export's columns that are not log columns: the cost's currency (its price version's, else
    its model's, else AICOST_CURRENCY as ingestion priced a provider's cost of an unknown model), the
    reporting currency, and the value of the rate the reporting cost was converted at (empty: none
    needed, or none in force: unconverted)."""
    model_currency = ModelPricing.objects.filter(model_name=OuterRef("model_name")).values("currency")[:1]
    return {
        "currency": Coalesce(
            F("price_version__currency"),
            Subquery(model_currency),
            Value(settings.AICOST_CURRENCY),
            output_field=CharField(),
        ),
        "reporting_currency": Value(reporting_currency(), output_field=CharField()),
        "exchange_rate_value": F("exchange_rate__rate"),
    }


# What each export column is selected as (the rate's column holds the rate's value, not its id).
_EXPORT_SELECTED = tuple("exchange_rate_value" if name == "exchange_rate" else name for name in USAGE_EXPORT_COLUMNS)


def usage_log_rows(queryset: QuerySet[UsageLog]) -> Iterator[tuple]:
    """`queryset`'s rows as USAGE_EXPORT_COLUMNS tuples, oldest first, fetched batch by batch from a
    server-side cursor (PostgreSQL), so memory does not grow with the number of rows."""
    return (
        queryset.order_by("timestamp", "id")
        .annotate(**_export_annotations())
        .values_list(*_EXPORT_SELECTED)
        .iterator(chunk_size=EXPORT_FETCH_ROWS)
    )


def usage_export_rows(*, start: datetime | None, end: datetime, filters: UsageFilters) -> Iterator[tuple]:
    """The raw rows behind the stats for the same window and filters, from the read replica if any.

    The rows are fetched lazily (while the response streams, after any context has been left), so the
    alias is fixed on the queryset now."""
    alias = replica_read_alias(UsageLog)
    return usage_log_rows(usage_log_window(start=start, end=end, filters=filters).using(alias))


def _rollup_calls_by_model(column: str) -> dict[str, int]:
    rows = (
        UsageRollupDaily.objects.values("model_name")
        .annotate(calls=Sum(column))
        .filter(calls__gt=0)
        .values_list("model_name", "calls")
    )
    return dict(rows)


def unpriced_calls_by_model() -> dict[str, int]:
    """Calls stored without a cost, per model, all time, from the daily rollups (a row per model and
    day, so far fewer rows than the log). Models without a price entry appear here too."""
    return _rollup_calls_by_model("unpriced_calls")


def unconverted_calls_by_model() -> dict[str, int]:
    """Priced calls stored without a cost in the reporting currency (no exchange rate in force at
    their timestamp), per model, all time, from the daily rollups."""
    return _rollup_calls_by_model("unconverted_calls")


def reporting_cost_total() -> Decimal:
    """Every call's cost in the reporting currency, all time, from the all-models daily rollups (a
    row per day); unconverted calls add nothing."""
    total = UsageRollupDailyTotal.objects.aggregate(total=Sum("reporting_cost"))["total"]
    return Decimal(0) if total is None else total


# --- One decision's calls --------------------------------------------------------------------------

DECISION_CALL_FIELDS = (
    "id",
    "timestamp",
    "model_name",
    "sent_model_name",
    "user_id",
    "purpose",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "output_image_tokens",
    "cost",
    "currency",
    "reporting_cost",
    "reporting_currency",
    "unconverted",
    "cost_source",
    "success",
    "response_time",
    "error_message",
)
DECISION_MAX_CALLS = 1000


def usage_decision_calls(*, decision_id: str, limit: int = DECISION_MAX_CALLS) -> list[dict]:
    """The first `limit` calls recorded under `decision_id`, oldest first, each with its cost's currency
    and its reporting cost: a lookup through the log's decision_id index (each partition's)."""
    rows = (
        UsageLog.objects.using(replica_read_alias(UsageLog))
        .filter(decision_id=decision_id)
        .order_by("timestamp", "id")
        .annotate(**{name: value for name, value in _export_annotations().items() if name != "exchange_rate_value"})
        .values(*DECISION_CALL_FIELDS)
    )
    return list(rows[:limit])


def usage_decision_totals(*, decision_id: str) -> dict:
    """The sums of every call of `decision_id` (through the decision_id index): calls, every token kind, the cost
    in the reporting currency (unconverted and unpriced calls counted, not added), first and last call."""
    rows = UsageLog.objects.using(replica_read_alias(UsageLog)).filter(decision_id=decision_id)
    totals = rows.aggregate(
        calls=Count("id"),
        successful_calls=Count("id", filter=Q(success=True)),
        **{name: Coalesce(Sum(name), 0) for name in TOKEN_FIELDS},
        reporting_cost=Sum("reporting_cost"),
        unconverted_calls=Count("id", filter=Q(unconverted=True)),
        unpriced_calls=Count("id", filter=Q(cost_source="unpriced")),  # CostSource.UNPRICED
        first_call_at=Min("timestamp"),
        last_call_at=Max("timestamp"),
    )
    totals["reporting_cost"] = totals["reporting_cost"] or Decimal(0)
    totals["failed_calls"] = totals["calls"] - totals["successful_calls"]
    totals["currency"] = reporting_currency()
    return totals
