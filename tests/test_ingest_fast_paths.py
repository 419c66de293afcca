"""Ingestion's and the APIs' fast paths give what the slow paths they replace give:

- the per-batch pricer (integer rates) and PriceBook.version_at + call_cost;
- the one-statement idempotency claim with ids and the claim plus the id allocation;
- partitions remembered per process, and a partition dropped behind the process's back;
- the compiled output of the stats, trend and ingestion responses and DRF's serializers;
- the API key lookup by precompiled SQL and the ORM's.
"""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as timezone_fixed
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.api.renderers import JSONRenderer
from core.api.serializers import output_data
from core.money import cost_exact
from ingest.apis import UsageIngestApi
from ingest.services import usage_record, usage_record_batch
from pricing.models import TOKEN_PRICE_FIELDS, ModelPriceVersion, ModelPriceVersionTier, ModelPricing
from pricing.selectors import PriceBook, price_book_for_models
from usage import services
from usage.apis import UsageDailyTrendApi, UsageStatsApi
from usage.costing import call_cost, call_cost_at_rates, integer_rates
from usage.keys import api_key_create, api_key_revoke
from usage.models import ApiKey, ApiKeyScope, CostSource, UsageLog
from usage.partitions import month_of, partition_name
from usage.records import MAX_TOKENS, CheckedRecord, UsageRecordInput
from usage.reports import TOKEN_KIND_SUMS
from usage.selectors import api_key_get_active, api_key_hash

PROPERTY = settings(max_examples=300, derandomize=True, database=None, deadline=None)
# Prices as stored: up to 12 whole digits and 18 places (core.money).
PRICES = st.decimals(min_value=0, max_value=Decimal("999999999999.999999999999999999"), places=18) | st.decimals(
    min_value=0, max_value=Decimal("99.99"), places=2
)
TOKENS = st.integers(min_value=0, max_value=MAX_TOKENS)
THRESHOLDS = st.integers(min_value=1, max_value=MAX_TOKENS)
OPTIONAL = [name for name in TOKEN_PRICE_FIELDS if name not in ("input_price_per_million", "output_price_per_million")]
# A full price: input, output, then each optional price (None: its fallback), and the fee.
FULL_PRICES = st.tuples(PRICES, PRICES, st.tuples(*[st.none() | PRICES for _ in OPTIONAL]))


def _prices(prices: tuple) -> dict:
    """A price tuple as fields: (input, output, cached) as the tests had it, or FULL_PRICES' shape."""
    optional = prices[2] if isinstance(prices[2], tuple) else (prices[2],)
    return {
        "input_price_per_million": prices[0],
        "output_price_per_million": prices[1],
        **dict(zip(OPTIONAL, optional, strict=False)),
    }


def _version(
    pk: int,
    prices: tuple,
    start: datetime,
    end: datetime | None,
    *,
    fee=None,
    tiers=(),
    enabled=True,
    is_free=False,
) -> ModelPriceVersion:
    version = ModelPriceVersion(
        pk=pk,
        **_prices(prices),
        price_per_call=fee,
        currency="USD",  # The reporting currency (settings): no exchange rate is read.
        enabled=enabled,
        is_free=is_free,
        effective_from=start,
        effective_to=end,
    )
    version.price_tiers_set(
        [ModelPriceVersionTier(above_prompt_tokens=above, **_prices(tier_prices)) for above, tier_prices in tiers]
    )
    return version


def _tokens(draw_counts: tuple, success: bool) -> CheckedRecord:
    """A call with every kind of token: (prompt parts, completion parts), each part a share of what is left."""
    (prompt, input_shares), (completion, output_shares) = draw_counts
    inputs, left = [], prompt
    for share in input_shares:
        inputs.append(int(left * share))
        left -= inputs[-1]
    outputs, left = [], completion
    for share in output_shares:
        outputs.append(int(left * share))
        left -= outputs[-1]
    record = _record("m", None, prompt=prompt, completion=completion, cached=inputs[0])
    return record._replace(
        cache_write_5m_tokens=inputs[1],
        cache_write_1h_tokens=inputs[2],
        input_audio_tokens=inputs[3],
        reasoning_tokens=outputs[0],
        output_audio_tokens=outputs[1],
        output_image_tokens=outputs[2],
        success=success,
    )


SHARES = st.floats(min_value=0, max_value=1)
CALLS = st.tuples(
    st.tuples(TOKENS, st.tuples(SHARES, SHARES, SHARES, SHARES)), st.tuples(TOKENS, st.tuples(SHARES, SHARES, SHARES))
)


# --- Pricing ----------------------------------------------------------------------------------------


@PROPERTY
@given(
    prices=FULL_PRICES,
    fee=st.none() | PRICES,
    tiers=st.lists(st.tuples(THRESHOLDS, FULL_PRICES), max_size=3, unique_by=lambda tier: tier[0]),
    counts=CALLS,
    success=st.booleans(),
)
def test_the_integer_cost_equals_call_cost_to_the_digit(prices, fee, tiers, counts, success):
    version = _version(1, prices, datetime(2026, 1, 1, tzinfo=UTC), None, fee=fee, tiers=tiers)
    tokens = _tokens(counts, success)
    expected = call_cost(version=version, tokens=tokens)
    got = call_cost_at_rates(integer_rates(version), tokens)
    assert str(got) == str(expected)  # Same value and the same exponent (24 places).


@pytest.mark.parametrize("offset", [-1, 0, 1])
@pytest.mark.parametrize("threshold", [1, 128_000, 200_000, 272_000, 1_000_000])
def test_the_integer_cost_picks_the_tier_call_cost_picks_at_below_and_above_each_threshold(threshold, offset):
    tiers = [(threshold, (Decimal("2.5"), Decimal("15"), None)), (threshold * 2, (Decimal("5"), Decimal("30"), None))]
    version = _version(1, (Decimal("1.25"), Decimal("10"), Decimal("0.125")), EPOCH, None, tiers=tiers)
    for prompt in (threshold + offset, threshold * 2 + offset):
        tokens = _record("m", None, prompt=max(prompt, 0), completion=1_000, cached=max(prompt, 0) // 2)
        assert str(call_cost_at_rates(integer_rates(version), tokens)) == str(call_cost(version=version, tokens=tokens))


def test_prices_with_more_places_than_stored_have_no_integer_rates_and_keep_call_cost():
    version = _version(1, (Decimal("1E-19"), Decimal(1), None), datetime(2026, 1, 1, tzinfo=UTC), None)
    assert integer_rates(version) is None
    book = PriceBook(pricing_by_model={"m": ModelPricing(model_name="m", enabled=True)})
    book.add_version(version, "m")
    record = _record("m", datetime(2026, 2, 1, tzinfo=UTC), prompt=10**7, completion=3)
    cost, source, version_id = services.BatchPricer(book.finish()).price(record, record.timestamp)
    assert (cost, source, version_id) == (Decimal("0.000003000000000001"), CostSource.COMPUTED, 1)


def _record(model: str, at: datetime | None, *, prompt=100, completion=10, cached=0, cost=None) -> CheckedRecord:
    return CheckedRecord(
        model_name=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=0,
        decision_id="d",
        idempotency_key="",
        user_id=None,
        response_time=None,
        success=True,
        error_message="",
        purpose="",
        timestamp=at,
        cost=cost,
        cache_write_5m_tokens=0,
        cache_write_1h_tokens=0,
        input_audio_tokens=0,
        output_audio_tokens=0,
        output_image_tokens=0,
    )


def _slow_price(record: CheckedRecord, book: PriceBook, at: datetime) -> tuple:
    """What ingestion priced a call with before the per-batch pricer (the reference)."""
    pricing = book.pricing(record.model_name)
    version = book.version_at(record.model_name, at) if pricing is not None else None
    version_id = None if version is None else version.pk
    if record.cost is not None:
        return cost_exact(record.cost), CostSource.PROVIDER, version_id  # At the stored scale, unrounded.
    if version is not None and version.enabled and version.is_free:
        return cost_exact(Decimal(0)), CostSource.COMPUTED, version_id
    if version is not None and version.enabled:
        return call_cost(version=version, tokens=record), CostSource.COMPUTED, version_id
    return None, CostSource.UNPRICED, version_id


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Calls' zones: the API's (the current zone, UTC), Python callers' (UTC, an offset), zones with changing offsets.
CALL_ZONES = [
    UTC,
    ZoneInfo("UTC"),
    timezone_fixed(timedelta(hours=8)),
    ZoneInfo("Asia/Kathmandu"),
    ZoneInfo("Pacific/Chatham"),
    ZoneInfo("America/New_York"),
]
HOURS = st.integers(min_value=-50, max_value=500)
HISTORY = st.lists(  # Per version: hours from the previous end to its start (0: contiguous), its length (None: open),
    # its prices, enabled and is_free.
    st.tuples(
        st.integers(0, 30),
        st.none() | st.integers(1, 100),
        st.tuples(PRICES, PRICES, st.none() | PRICES),
        st.booleans(),
        st.booleans(),
    ),
    min_size=0,
    max_size=4,
)


def _book(histories: dict[str, tuple[bool, list]]) -> PriceBook:
    book = PriceBook(pricing_by_model={})
    pk = 0
    for name, history in histories.items():
        if not history:
            continue
        book.pricing_by_model[name] = ModelPricing(model_name=name)
        at = EPOCH
        for gap, length, prices, enabled, is_free in history:
            pk += 1
            start = at + timedelta(hours=gap)
            end = None if length is None else start + timedelta(hours=length)
            book.add_version(_version(pk, prices, start, end, enabled=enabled, is_free=is_free), name)
            if end is None:
                break
            at = end
    return book.finish()


@PROPERTY
@given(
    histories=st.dictionaries(st.sampled_from(["a", "b", "c"]), HISTORY, max_size=3),
    calls=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "unknown"]),
            HOURS,
            TOKENS,
            TOKENS,
            st.floats(0, 1),
            st.none() | st.decimals(min_value=0, max_value=1000, places=8),
            st.sampled_from([timedelta(0), timedelta(microseconds=-1), timedelta(minutes=17)]),
            st.sampled_from(CALL_ZONES),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_the_batch_pricer_prices_every_call_as_version_at_and_call_cost_do(histories, calls):
    """At, just before and inside version edges (whole hours), in zones of fixed and changing offset
    mixed in one batch (the pricer compares within a fixed-offset zone as wall times)."""
    book = _book(histories)
    price = services.BatchPricer(book).price
    for model, hours, prompt, completion, cached_share, provider_cost, past_the_hour, zone in calls:
        at = (EPOCH + timedelta(hours=hours) + past_the_hour).astimezone(zone)
        record = _record(model, at, prompt=prompt, completion=completion, cached=int(prompt * cached_share))
        record = record._replace(cost=provider_cost)
        got = price(record, at)
        expected = _slow_price(record, book, at)
        assert got == expected
        assert str(got[0]) == str(expected[0])


pytestmark_db = pytest.mark.django_db


@pytestmark_db
def test_the_price_book_query_loads_what_the_orm_loads():
    names = set(ModelPricing.objects.values_list("model_name", flat=True)[:4]) | {"no-such-model"}
    book = price_book_for_models(model_names=names)
    versions = ModelPriceVersion.objects.filter(pricing__model_name__in=names).select_related("pricing")
    by_model: dict[str, list] = {}
    for version in versions:
        by_model.setdefault(version.pricing.model_name, []).append(version)
    assert set(book.pricing_by_model) == set(by_model)
    for name, expected in by_model.items():
        expected.sort(key=lambda v: v.effective_from)
        got = book.versions(name)
        fields = [f.attname for f in ModelPriceVersion._meta.concrete_fields]
        assert [[getattr(v, f) for f in fields] for v in got] == [[getattr(v, f) for f in fields] for v in expected]
        pricing_fields = [f.attname for f in ModelPricing._meta.concrete_fields]
        assert [getattr(book.pricing(name), f) for f in pricing_fields] == [
            getattr(expected[0].pricing, f) for f in pricing_fields
        ]
        assert all(v.pricing is book.pricing(name) for v in got)


# --- Idempotency claim and ids ----------------------------------------------------------------------


class _Rollback(Exception):
    pass


def _in_savepoint(function):
    try:
        with transaction.atomic():
            result = function()
            raise _Rollback
    except _Rollback:
        return result


@pytestmark_db
@settings(max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pairs=st.lists(st.tuples(st.sampled_from(["d1", "d2", "é", "D1", ""]), st.sampled_from(["", "k", "K", "ß"]))),
    stored=st.lists(st.tuples(st.sampled_from(["d1", "d2", "é"]), st.sampled_from(["k", "ß"])), max_size=3),
)
def test_the_one_statement_claim_keeps_the_records_the_claim_and_ids_kept(pairs, stored):
    now = timezone.now()
    records = [
        _record("gpt-4o", now, prompt=n)._replace(decision_id=d, idempotency_key=k) for n, (d, k) in enumerate(pairs)
    ]
    if not records:
        return
    services._claim_idempotency_keys(
        records=[_record("x", now)._replace(decision_id=d, idempotency_key=k) for d, k in stored], now=now
    )

    def slow():
        fresh, duplicates = services._claim_idempotency_keys(records=records, now=now)
        return fresh, services._log_ids_allocate(len(fresh)), duplicates

    def fast():
        return services._claim_and_allocate(records=records, now=now)

    slow_fresh, _slow_ids, slow_duplicates = _in_savepoint(slow)
    fast_fresh, fast_ids, fast_duplicates = _in_savepoint(fast)
    assert Counter(fast_fresh) == Counter(slow_fresh)
    assert fast_duplicates == slow_duplicates
    assert fast_fresh == [r for r in records if r in fast_fresh]  # In the batch's order.
    assert len(set(fast_ids)) == len(fast_ids) == len(fast_fresh)
    assert all(isinstance(i, int) for i in fast_ids)


@pytestmark_db
def test_a_retry_in_one_batch_and_across_batches_is_stored_once():
    records = [UsageRecordInput(model_name="gpt-4o", decision_id="x", idempotency_key="1", prompt_tokens=5)] * 3
    assert len(usage_record_batch(records=records)) == 1
    assert usage_record_batch(records=records) == []
    assert UsageLog.objects.filter(decision_id="x").count() == 1


# --- Partitions known per process ------------------------------------------------------------------


@pytestmark_db
def test_a_partition_dropped_behind_the_process_is_made_again_and_the_batch_stored_once():
    month = date(2017, 5, 1)
    at = datetime(2017, 5, 10, 12, tzinfo=UTC)
    usage_record(model_name="gpt-4o", prompt_tokens=1, timestamp=at)
    services._known_partitions().add(month)  # As a process that saw it (outside a transaction) knows it.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP TABLE {partition_name(month)}")
    log = usage_record(model_name="gpt-4o", prompt_tokens=2, decision_id="again", idempotency_key="k", timestamp=at)
    assert log is not None
    assert list(UsageLog.objects.filter(timestamp=at).values_list("prompt_tokens", flat=True)) == [2]
    assert usage_record(model_name="gpt-4o", prompt_tokens=2, decision_id="again", idempotency_key="k") is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_outside_a_transaction_the_partition_is_remembered_and_a_drop_elsewhere_retried():
    month = date(2016, 2, 1)
    at = datetime(2016, 2, 10, 12, tzinfo=UTC)
    usage_record(model_name="gpt-4o", prompt_tokens=1, timestamp=at)
    assert month in services._known_partitions()  # Committed: the next batch asks no catalog.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partition_name(month)}")  # Another process's retention, say.
    logs = usage_record_batch(
        records=[UsageRecordInput(model_name="gpt-4o", prompt_tokens=n, timestamp=at) for n in (2, 3)]
    )
    assert len(logs) == 2
    assert sorted(UsageLog.objects.filter(timestamp=at).values_list("prompt_tokens", flat=True)) == [2, 3]
    assert month in services._known_partitions()


@pytestmark_db
def test_other_integrity_errors_are_not_retried():
    calls = []

    def store(batch):
        calls.append(batch)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ai_usage_idempotency (decision_id, idempotency_key, created_at) "
                "VALUES ('a', 'b', now()), ('a', 'b', now())"
            )

    batch = services.usage_batch_prepare(records=[UsageRecordInput(model_name="m")])
    with pytest.raises(Exception, match="duplicate key"):
        services.usage_batch_run(batch=batch, store=store)
    assert len(calls) == 1


def test_the_months_of_a_batch_are_every_utc_month_it_touches():
    now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    in_march = [_record("m", datetime(2026, 3, d, tzinfo=UTC)) for d in (1, 15, 31)]
    assert services._months_of(in_march, now) == {date(2026, 3, 1)}
    spread = [*in_march, _record("m", None), _record("m", datetime(2024, 1, 1, 0, 30, tzinfo=UTC))]
    assert services._months_of(spread, now) == {date(2026, 3, 1), date(2024, 1, 1)}
    shanghai_new_year = datetime.fromisoformat("2025-01-01T07:00:00+08:00")  # 2024-12-31 23:00 UTC.
    assert services._months_of([_record("m", shanghai_new_year)], now) == {date(2024, 12, 1)}
    assert services._months_of([], now) == set()
    assert month_of(shanghai_new_year) == date(2024, 12, 1)


# --- Compiled response output ----------------------------------------------------------------------

MONEY = (
    st.decimals(min_value=0, max_value=Decimal("999999999999.99999999"), places=8)
    | st.decimals(min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False)  # Other places.
    | st.sampled_from([Decimal("1E+2"), Decimal("-0E-8"), Decimal("0"), Decimal("12345678901234567890E-8")])
)
PERCENT = st.decimals(min_value=0, max_value=100, places=2) | st.none()
COUNT = st.integers(min_value=0, max_value=10**12)
NAIVE_BOUNDS = (datetime(2001, 1, 1), datetime(2099, 1, 1))  # noqa: DTZ001 -- hypothesis wants naive bounds
MOMENT = st.datetimes(
    min_value=NAIVE_BOUNDS[0],
    max_value=NAIVE_BOUNDS[1],
    timezones=st.sampled_from([UTC, ZoneInfo("Asia/Kathmandu"), ZoneInfo("America/New_York")]),
)


TOKEN_KINDS = dict.fromkeys(TOKEN_KIND_SUMS, COUNT)


def _rates():
    return {
        "calls": COUNT,
        "successful_calls": COUNT,
        "failed_calls": COUNT,
        "success_rate": PERCENT,
        "unpriced_calls": COUNT,
        "unconverted_calls": COUNT,
        "prompt_tokens": COUNT,
        "completion_tokens": COUNT,
        "cached_tokens": COUNT,
        "reasoning_tokens": COUNT,
        **TOKEN_KINDS,
        "cost": MONEY,
        "avg_response_time": st.none() | st.floats(0, 86400),
        "cost_share": PERCENT,
    }


STATS = st.fixed_dictionaries(
    {
        "time_range": st.sampled_from(["today", "all"]),
        "time_label": st.text(max_size=10),
        "start": st.none() | MOMENT,
        "end": MOMENT,
        "summary": st.fixed_dictionaries(
            {
                "total_calls": COUNT,
                "successful_calls": COUNT,
                "failed_calls": COUNT,
                "success_rate": PERCENT,
                "total_cost": MONEY,
                "unpriced_calls": COUNT,
                "unconverted_calls": COUNT,
                "prompt_tokens": COUNT,
                "completion_tokens": COUNT,
                "cached_tokens": COUNT,
                "reasoning_tokens": COUNT,
                **TOKEN_KINDS,
                "avg_response_time": st.none() | st.floats(0, 86400),
                "currency": st.sampled_from(["USD", "CNY"]),
            }
        ),
        "platforms": st.lists(
            st.fixed_dictionaries(
                {
                    **_rates(),
                    "provider": st.text(max_size=5),
                    "model_name": st.text(max_size=5),
                    "display_name": st.text(max_size=5),
                    "currency": st.none() | st.just("USD"),
                    "reporting_cost": MONEY,
                    "reporting_currency": st.just("CNY"),
                    "monthly_budget": st.none() | MONEY,
                    "budget_currency": st.none() | st.just("CNY"),
                    "monthly_budget_reporting": st.none() | MONEY,
                    "budget_convertible": st.booleans(),
                    "current_month_cost": MONEY,
                    "current_month_reporting_cost": MONEY,
                    "current_month_unconverted_calls": COUNT,
                    "budget_used_percent": PERCENT,
                }
            ),
            max_size=3,
        ),
        "providers": st.lists(
            st.fixed_dictionaries({**_rates(), "provider": st.text(max_size=5), "currency": st.just("USD")}),
            max_size=3,
        ),
    }
)
TREND = st.fixed_dictionaries(
    {
        "days": st.integers(1, 366),
        "time_zone": st.just("UTC"),
        "daily_trend": st.lists(
            st.fixed_dictionaries(
                {
                    "date": st.dates(),
                    "cost": MONEY,
                    "currency": st.just("USD"),
                    "calls": COUNT,
                    "successful_calls": COUNT,
                    "failed_calls": COUNT,
                    "unpriced_calls": COUNT,
                    "unconverted_calls": COUNT,
                    "prompt_tokens": COUNT,
                    "completion_tokens": COUNT,
                    "cached_tokens": COUNT,
                    "reasoning_tokens": COUNT,
                    **TOKEN_KINDS,
                }
            ),
            max_size=5,
        ),
        "summary": st.fixed_dictionaries(
            {
                "total_cost": MONEY,
                "avg_daily_cost": MONEY,
                "max_daily_cost": MONEY,
                "min_daily_cost": MONEY,
                "total_calls": COUNT,
                "unpriced_calls": COUNT,
                "unconverted_calls": COUNT,
                "currency": st.just("USD"),
            }
        ),
    }
)


ZONES = ["UTC", "Asia/Kolkata", "America/St_Johns"]


def _plain(value):
    """DRF's ReturnDict / ReturnList / OrderedDict as dict and list, leaves untouched: repr then
    tells types apart (1 and 1.0, "1" and Decimal(1)) as well as values and key order."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _same_as_drf(serializer_class, data) -> None:
    compiled, drf = output_data(serializer_class, data), serializer_class(data).data
    assert repr(compiled) == repr(_plain(drf))
    assert JSONRenderer().render(compiled) == JSONRenderer().render(drf)  # And so the same response bytes.


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(data=STATS)
def test_the_compiled_stats_output_is_drfs(zone, data):
    with timezone.override(ZoneInfo(zone)):
        _same_as_drf(UsageStatsApi.OutputSerializer, data)


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(data=TREND)
def test_the_compiled_trend_output_is_drfs(zone, data):
    with timezone.override(ZoneInfo(zone)):
        _same_as_drf(UsageDailyTrendApi.OutputSerializer, data)


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            st.integers(1, 2**62),
            st.text(max_size=5),
            st.none() | MONEY,
            st.sampled_from(["computed"]),
            MOMENT,
            st.none() | st.just("USD"),
        )
    )
)
def test_the_compiled_ingestion_output_is_drfs(zone, rows):
    stored = [  # What UsageIngestApi answers of each stored row.
        {"id": i, "model_name": m, "sent_model_name": m, "cost": c, "currency": u, "cost_source": s}
        | {"timestamp": t.astimezone(ZoneInfo(zone))}
        for i, m, c, s, t, u in rows
    ]
    data = {"stored": len(stored), "duplicates": 0, "unpriced": 0, "records": stored}
    with timezone.override(ZoneInfo(zone)):
        _same_as_drf(UsageIngestApi.OutputSerializer, data)


def test_what_the_compiled_output_cannot_vouch_for_goes_to_drf():
    data = {"days": 1, "time_zone": "UTC", "summary": {}}  # No daily_trend: DRF's error, as before.
    with pytest.raises(KeyError) as drf_error:
        UsageDailyTrendApi.OutputSerializer(data).data  # noqa: B018
    with pytest.raises(KeyError) as compiled_error:
        output_data(UsageDailyTrendApi.OutputSerializer, data)
    assert str(compiled_error.value) == str(drf_error.value)


# --- API keys --------------------------------------------------------------------------------------


@pytestmark_db
def test_the_api_key_lookup_finds_what_the_orm_finds_and_nothing_once_revoked():
    key, raw_key = api_key_create(name="k", scope=ApiKeyScope.READ)
    found = api_key_get_active(raw_key=raw_key)
    expected = ApiKey.objects.get(key_hash=api_key_hash(raw_key))
    fields = [f.attname for f in ApiKey._meta.concrete_fields]
    assert [getattr(found, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert found.can_read
    assert not found.can_write_usage
    assert api_key_get_active(raw_key=raw_key + "x") is None
    api_key_revoke(api_key=key)
    assert api_key_get_active(raw_key=raw_key) is None
