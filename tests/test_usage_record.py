from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ingest.services import usage_record, usage_record_batch
from pricing.models import ModelPricing
from pricing.services import model_pricing_set_enabled, model_pricing_set_prices
from usage.costing import call_cost
from usage.models import CostSource, UsageCounter, UsageLog, UsageRollupHour
from usage.records import CheckedRecord, UsageRecordInvalid
from usage.rollups import rollups_compact
from usage.services import UsageRecordInput, UsageRow

pytestmark = pytest.mark.django_db


def _tokens(**counts) -> CheckedRecord:
    fields = {name: 0 for name in CheckedRecord._fields if name.endswith("_tokens")}
    return CheckedRecord(
        **{**fields, **counts}, model_name="m", decision_id="d", idempotency_key="", user_id=None,
        response_time=None, success=True, error_message="", purpose="", timestamp=None, cost=None,
    )  # fmt: skip


def test_cost_uses_input_output_and_cached_prices():
    pricing = ModelPricing.objects.get(model_name="gpt-4o")  # 2.50 in, 1.25 cached, 10.00 out per 1M
    version = pricing.price_versions.get()
    cost = call_cost(version=version, tokens=_tokens(prompt_tokens=1_000, completion_tokens=500, cached_tokens=400))
    # 600 * 2.50 + 400 * 1.25 + 500 * 10.00 = 7000 per million tokens
    assert cost == Decimal("0.00700000")


def test_cached_tokens_cost_the_input_price_when_model_has_no_cached_price():
    version = ModelPricing.objects.get(model_name="qwen-plus").price_versions.get()
    tokens = _tokens(prompt_tokens=1_000_000, completion_tokens=0, cached_tokens=500_000)
    assert call_cost(version=version, tokens=tokens) == Decimal("0.40000000")


def test_stored_rows_list_the_logs_columns_in_copy_order():
    # Ingestion COPYs each UsageRow as is, so its fields must be the model's fields, in order.
    assert list(UsageRow._fields) == [field.attname for field in UsageLog._meta.concrete_fields]


def test_recording_fixes_cost_counters_and_rollups():
    at = timezone.now()
    log = usage_record(model_name="gpt-4o-mini", prompt_tokens=2_000, completion_tokens=1_000, timestamp=at)
    assert log.cost == Decimal("0.00090000")  # 2000 * 0.15 + 1000 * 0.60 per million
    assert log.cost_source == CostSource.COMPUTED
    assert log.price_version.input_price_per_million == Decimal("0.15")
    counter = UsageCounter.objects.get(model_name="gpt-4o-mini")
    assert (counter.total_calls, counter.total_cost, counter.current_month_cost) == (1, log.cost, log.cost)
    rollups_compact()
    rollup = UsageRollupHour.objects.get(model_name="gpt-4o-mini")
    assert rollup.bucket == at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    assert (rollup.calls, rollup.cost, rollup.prompt_tokens) == (1, log.cost, 2_000)
    in_first = {minutes: int(at.minute < minutes) for minutes in (15, 30, 45)}
    assert {m: getattr(rollup, f"calls_{m}m") for m in (15, 30, 45)} == in_first


def test_unknown_and_disabled_models_are_recorded_unpriced_never_at_zero():
    model_pricing_set_enabled(model_names=["gpt-4.1"], enabled=False)
    logs = usage_record_batch(
        records=[
            UsageRecordInput(model_name="no-such-model", prompt_tokens=10, completion_tokens=10),
            UsageRecordInput(model_name="gpt-4.1", prompt_tokens=10, completion_tokens=10),
        ]
    )
    assert [(log.cost, log.cost_source) for log in logs] == [(None, CostSource.UNPRICED)] * 2
    rollups_compact()
    assert UsageRollupHour.objects.get(model_name="no-such-model").unpriced_calls == 1


def test_provider_reported_cost_is_kept_and_flagged():
    log = usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=10, cost=Decimal("0.12345678"))
    assert (log.cost, log.cost_source) == (Decimal("0.12345678"), CostSource.PROVIDER)


def test_a_provider_cost_finer_than_stored_is_refused_not_rounded():
    # Stored as is, or not at all: as the API says, a 25th decimal place would be lost.
    cost = Decimal("0.1234567890123456789012345")
    with pytest.raises(UsageRecordInvalid, match=r"^cost: Ensure that there are no more than 24 decimal places\.$"):
        usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=10, cost=cost)
    assert not UsageLog.objects.exists()


def test_a_price_change_never_rewrites_history():
    pricing = ModelPricing.objects.get(model_name="deepseek-chat")
    before = timezone.now() - timedelta(hours=2)
    old = usage_record(model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0, timestamp=before)
    model_pricing_set_prices(
        pricing=pricing,
        input_price_per_million=Decimal("1.00"),
        output_price_per_million=Decimal("2.00"),
        cached_input_price_per_million=None,
        effective_from=timezone.now() - timedelta(hours=1),
        allow_past=True,  # What usage's repricing passes after checking the span; refused otherwise.
    )
    late_for_old_price = usage_record(
        model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0, timestamp=before
    )
    new = usage_record(model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0)
    old.refresh_from_db()
    assert old.cost == late_for_old_price.cost == Decimal("0.28000000")
    assert new.cost == Decimal("1.00000000")
    assert pricing.price_versions.count() == 2
    assert pricing.price_versions.filter(effective_to__isnull=True).get().input_price_per_million == Decimal("1.00")


def test_calls_before_any_price_are_unpriced():
    log = usage_record(
        model_name="gpt-4o", prompt_tokens=1, completion_tokens=1, timestamp=datetime(2020, 1, 1, tzinfo=UTC)
    )
    assert log.cost_source == CostSource.UNPRICED
    assert UsageLog.objects.filter(cost__isnull=True).count() == 1
