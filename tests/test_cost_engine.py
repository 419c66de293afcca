"""The cost engine (usage.costing) and the prices it reads (pricing): every token kind and its
fallback, long-context tiers, the fee per call, exact money, price versions with tiers, admin."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from core.money import money_display
from ingest.services import usage_record_batch
from pricing.models import TOKEN_PRICE_FIELDS, ModelPriceTier, ModelPriceVersion, ModelPriceVersionTier, ModelPricing
from pricing.selectors import price_book_for_models
from pricing.services import PriceTierInput, model_pricing_create, model_pricing_set_prices, price_validated
from tests.api_helpers import exact_json
from usage.costing import call_cost, call_cost_at_rates, integer_rates
from usage.models import UsageCounter, UsageLog, UsageRollupHour
from usage.records import UsageRecordInput
from usage.rollups import rollups_compact

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
M = Decimal(1_000_000)


class Tokens(NamedTuple):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    reasoning_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0
    success: bool = True


BASE = {"input_price_per_million": Decimal("3"), "output_price_per_million": Decimal("15")}


def _version(*, fee=None, tiers=(), **prices) -> ModelPriceVersion:
    version = ModelPriceVersion(**{**BASE, **prices}, price_per_call=fee, effective_from=EPOCH)
    version.price_tiers_set([ModelPriceVersionTier(above_prompt_tokens=above, **tier) for above, tier in tiers])
    return version


def _both(version: ModelPriceVersion, tokens: Tokens) -> Decimal:
    """call_cost, checked against the integer fast path to the digit."""
    cost = call_cost(version=version, tokens=tokens)
    assert str(call_cost_at_rates(integer_rates(version), tokens)) == str(cost)
    return cost


# --- Each kind priced, and each fallback ------------------------------------------------------------

KINDS = [  # (count field, its price field, the price it falls back to)
    ("cached_tokens", "cached_input_price_per_million", "input_price_per_million"),
    ("cache_write_5m_tokens", "cache_write_5m_price_per_million", "input_price_per_million"),
    ("input_audio_tokens", "input_audio_price_per_million", "input_price_per_million"),
    ("reasoning_tokens", "reasoning_price_per_million", "output_price_per_million"),
    ("output_audio_tokens", "output_audio_price_per_million", "output_price_per_million"),
    ("output_image_tokens", "output_image_price_per_million", "output_price_per_million"),
]


@pytest.mark.parametrize(("count", "price", "fallback"), KINDS)
def test_each_kind_costs_its_own_price_and_falls_back_when_empty(count, price, fallback):
    whole = "prompt_tokens" if fallback == "input_price_per_million" else "completion_tokens"
    tokens = Tokens(**{whole: 1_000, count: 400})
    plain = 600 * BASE[fallback] / M
    priced = _both(_version(**{price: Decimal("0.7")}), tokens)
    assert priced == plain + 400 * Decimal("0.7") / M
    assert _both(_version(), tokens) == 1_000 * BASE[fallback] / M


def test_the_one_hour_cache_write_falls_back_to_the_five_minute_write_then_to_input():
    tokens = Tokens(prompt_tokens=1_000_000, cache_write_1h_tokens=1_000_000)
    assert _both(_version(cache_write_1h_price_per_million=Decimal("6")), tokens) == Decimal("6")
    assert _both(_version(cache_write_5m_price_per_million=Decimal("3.75")), tokens) == Decimal("3.75")
    assert _both(_version(), tokens) == Decimal("3")


def test_every_kind_in_one_call_is_the_formula_of_tokens_md():
    version = _version(
        cached_input_price_per_million=Decimal("0.3"),
        cache_write_5m_price_per_million=Decimal("3.75"),
        cache_write_1h_price_per_million=Decimal("6"),
        input_audio_price_per_million=Decimal("40"),
        reasoning_price_per_million=Decimal("20"),
        output_audio_price_per_million=Decimal("80"),
        output_image_price_per_million=Decimal("30"),
        fee=Decimal("0.01"),
    )
    tokens = Tokens(
        prompt_tokens=10_000,
        cached_tokens=4_000,
        cache_write_5m_tokens=1_000,
        cache_write_1h_tokens=500,
        input_audio_tokens=2_000,
        completion_tokens=5_000,
        reasoning_tokens=1_000,
        output_audio_tokens=1_500,
        output_image_tokens=500,
    )
    # 2500 x 3 + 4000 x 0.3 + 1000 x 3.75 + 500 x 6 + 2000 x 40 + 2000 x 15 + 1000 x 20 + 1500 x 80 + 500 x 30
    expected = Decimal(7_500 + 1_200 + 3_750 + 3_000 + 80_000 + 30_000 + 20_000 + 120_000 + 15_000) / M
    assert _both(version, tokens) == expected + Decimal("0.01")


def test_the_fee_is_charged_on_successful_calls_only_and_is_not_tiered():
    tiers = [(100, {"input_price_per_million": Decimal("6"), "output_price_per_million": Decimal("30")})]
    version = _version(fee=Decimal("0.0025"), tiers=tiers)
    assert _both(version, Tokens(prompt_tokens=0, success=True)) == Decimal("0.0025")
    assert _both(version, Tokens(prompt_tokens=0, success=False)) == 0
    assert _both(version, Tokens(prompt_tokens=1_000, success=True)) == Decimal("0.006") + Decimal("0.0025")
    assert _both(version, Tokens(prompt_tokens=1_000, success=False)) == Decimal("0.006")


# --- Long-context tiers ------------------------------------------------------------------------------

GEMINI_PRO = {  # Gemini 2.5 Pro: 1.25 / 10 up to 200k prompt tokens, 2.50 / 15 above; cached 0.31 / 0.625.
    "input_price_per_million": Decimal("1.25"),
    "output_price_per_million": Decimal("10"),
    "cached_input_price_per_million": Decimal("0.31"),
}
GEMINI_PRO_LONG = {
    "input_price_per_million": Decimal("2.5"),
    "output_price_per_million": Decimal("15"),
    "cached_input_price_per_million": Decimal("0.625"),
}


def test_a_prompt_exactly_at_the_threshold_stays_below_and_one_more_token_prices_all_at_the_tier():
    version = _version(**GEMINI_PRO, tiers=[(200_000, GEMINI_PRO_LONG)])
    at = Tokens(prompt_tokens=200_000, cached_tokens=50_000, completion_tokens=1_000)
    above = at._replace(prompt_tokens=200_001)
    assert _both(version, at) == (150_000 * Decimal("1.25") + 50_000 * Decimal("0.31") + 1_000 * 10) / M
    assert _both(version, above) == (150_001 * Decimal("2.5") + 50_000 * Decimal("0.625") + 1_000 * 15) / M


def test_cache_reads_and_writes_count_toward_the_threshold():
    # Anthropic decides on input + cache creation + cache read: all of them are in prompt_tokens here.
    version = _version(tiers=[(200_000, {"input_price_per_million": Decimal(6), "output_price_per_million": 22})])
    tokens = Tokens(prompt_tokens=250_000, cached_tokens=150_000, cache_write_5m_tokens=90_000)
    # Empty cached and write prices fall back within the tier: to the tier's input price.
    assert _both(version, tokens) == 250_000 * Decimal(6) / M


def test_several_tiers_the_highest_exceeded_threshold_prices_the_call():
    tiers = [
        (272_000, {"input_price_per_million": Decimal(4), "output_price_per_million": Decimal(20)}),
        (128_000, {"input_price_per_million": Decimal(2), "output_price_per_million": Decimal(10)}),
        (1_000_000, {"input_price_per_million": Decimal(8), "output_price_per_million": Decimal(40)}),
    ]
    version = _version(input_price_per_million=Decimal(1), output_price_per_million=Decimal(5), tiers=tiers)
    expected = {
        128_000: 1,
        128_001: 2,
        272_000: 2,
        272_001: 4,
        1_000_000: 4,
        1_000_001: 8,
    }
    for prompt, input_price in expected.items():
        assert _both(version, Tokens(prompt_tokens=prompt)) == prompt * Decimal(input_price) / M, prompt


def test_a_tiers_own_optional_prices_are_used_within_it():
    tier = {**GEMINI_PRO_LONG, "reasoning_price_per_million": Decimal("18")}
    version = _version(**GEMINI_PRO, reasoning_price_per_million=Decimal("12"), tiers=[(200_000, tier)])
    assert (
        _both(version, Tokens(prompt_tokens=10, completion_tokens=100, reasoning_tokens=100))
        == (10 * Decimal("1.25") + 100 * 12) / M
    )
    big = Tokens(prompt_tokens=200_001, completion_tokens=100, reasoning_tokens=100)
    assert _both(version, big) == (200_001 * Decimal("2.5") + 100 * 18) / M


# --- Exact money -------------------------------------------------------------------------------------


def test_a_cost_keeps_every_place_of_a_price_with_eighteen():
    version = _version(input_price_per_million=Decimal("0.200000000000000002"))
    assert _both(version, Tokens(prompt_tokens=3)) == Decimal("0.000000600000000000000006")


def test_display_rounds_to_eight_places_half_to_even():
    assert str(money_display(Decimal("0.000000075"))) == "8E-8"
    assert money_display(Decimal("0.000000065")) == Decimal("0.00000006")
    assert money_display(Decimal("12345678901234.123456789012345678901234")) == Decimal("12345678901234.12345679")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "input_price", "cached_price"),
    [("gpt-4o-mini", "0.15", "0.075"), ("deepseek-chat", "0.28", "0.028"), ("gpt-5-nano", "0.05", "0.005")],
)
def test_a_thousand_calls_of_one_cached_token_cost_exactly_a_thousand_cached_tokens(name, input_price, cached_price):
    model = f"exact-{name}"
    pricing = model_pricing_create(
        model_name=model,
        provider="OpenAI",
        display_name=model,
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal(input_price),
        output_price_per_million=Decimal("1"),
        cached_input_price_per_million=Decimal(cached_price),
        effective_from=timezone.now() - timedelta(days=1),
        allow_past=True,  # History set up before the calls.
    )
    one = UsageRecordInput(model_name=model, prompt_tokens=1, completion_tokens=0, cached_tokens=1)
    usage_record_batch(records=[one] * 1_000)
    expected = 1_000 * Decimal(cached_price) / M
    assert UsageLog.objects.filter(model_name=model).aggregate(c=Sum("cost"))["c"] == expected
    assert UsageCounter.objects.get(model_name=model).total_cost == expected
    rollups_compact()
    assert UsageRollupHour.objects.filter(model_name=model).aggregate(c=Sum("cost"))["c"] == expected
    assert pricing.price_versions.get().cached_input_price_per_million == Decimal(cached_price)


@pytest.mark.django_db
def test_a_price_with_eighteen_places_is_stored_and_read_back_exactly():
    price = Decimal("0.200000000000000002")
    fee = Decimal("123456789012.123456789012345678")
    pricing = model_pricing_create(
        model_name="eighteen",
        provider="OpenAI",
        display_name="eighteen",
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("0.0359375"),
        output_price_per_million=price,
        price_per_call=fee,
    )
    stored = ModelPricing.objects.get(pk=pricing.pk)
    version = stored.price_versions.get()
    for row in (stored, version):
        assert (row.input_price_per_million, row.output_price_per_million) == (Decimal("0.0359375"), price)
        assert row.price_per_call == fee
    log = usage_record_batch(records=[UsageRecordInput(model_name="eighteen", prompt_tokens=0, completion_tokens=7)])
    exact = fee + 7 * price / M  # 36 significant digits: Python's default context would keep 28.
    assert UsageLog.objects.get(pk=log[0].pk).cost == exact
    assert UsageCounter.objects.get(model_name="eighteen").total_cost == exact  # Summed in Python, then SQL.
    rollups_compact()
    assert UsageRollupHour.objects.get(model_name="eighteen").cost == exact


def test_price_validation_rejects_negative_too_precise_and_missing_prices():
    assert price_validated(field="p", value=Decimal("0.000000000000000001"), required=True) == Decimal("1E-18")
    for value, message in [
        (Decimal("-0.1"), "cannot be negative"),
        (Decimal("0.0000000000000000001"), "at most 18 decimal places"),
        (Decimal("1234567890123"), "at most 12 digits before"),
        (None, "required"),
    ]:
        with pytest.raises(ValidationError, match=message) as caught:
            price_validated(field="input_price_per_million", value=value, required=True)
        assert list(caught.value.message_dict) == ["input_price_per_million"]
    assert price_validated(field="p", value=None, required=False) is None


# --- Versions copy prices and tiers; ingestion prices at the tier ------------------------------------


def _tier(above: int, input_price: str, output_price: str, **more) -> PriceTierInput:
    return PriceTierInput(
        above_prompt_tokens=above,
        input_price_per_million=Decimal(input_price),
        output_price_per_million=Decimal(output_price),
        **more,
    )


@pytest.mark.django_db
def test_a_new_version_copies_prices_and_tiers_and_unchanged_prices_add_none():
    start = timezone.now() - timedelta(days=2)
    pricing = model_pricing_create(
        model_name="gemini-test",
        provider="Google",
        display_name="Gemini test",
        model_type="chat",
        currency="USD",
        **GEMINI_PRO,
        tiers=[_tier(200_000, "2.5", "15", cached_input_price_per_million=Decimal("0.625"))],
        effective_from=start,
        allow_past=True,
    )
    first = pricing.price_versions.get()
    assert [(t.above_prompt_tokens, t.input_price_per_million) for t in first.tiers.all()] == [
        (200_000, Decimal("2.5"))
    ]
    same = model_pricing_set_prices(
        pricing=pricing,
        **GEMINI_PRO,
        tiers=[_tier(200_000, "2.50", "15.0", cached_input_price_per_million=Decimal("0.625"))],
    )
    assert same.pk == first.pk
    assert pricing.price_versions.count() == 1

    changed = model_pricing_set_prices(
        pricing=pricing,
        **GEMINI_PRO,
        output_audio_price_per_million=Decimal("40"),
        tiers=[_tier(200_000, "2.5", "15"), _tier(1_000_000, "5", "30")],
        effective_from=start + timedelta(days=1),
        allow_past=True,
    )
    assert pricing.price_versions.count() == 2
    assert changed.output_audio_price_per_million == Decimal("40")
    assert [(t.above_prompt_tokens, t.cached_input_price_per_million) for t in changed.tiers.order_by("pk")] == [
        (200_000, None),
        (1_000_000, None),
    ]
    first.refresh_from_db()
    assert first.effective_to == changed.effective_from
    assert list(first.tiers.values_list("above_prompt_tokens", "cached_input_price_per_million")) == [
        (200_000, Decimal("0.625"))
    ]
    assert list(ModelPriceTier.objects.filter(pricing=pricing).values_list("above_prompt_tokens", flat=True)) == [
        200_000,
        1_000_000,
    ]
    # Ingestion reads the tiers of the version in force at each call's moment.
    book = price_book_for_models(model_names=["gemini-test"])
    assert [len(v.price_tiers()) for v in book.versions("gemini-test")] == [1, 2]
    logs = usage_record_batch(
        records=[
            UsageRecordInput(model_name="gemini-test", prompt_tokens=250_000, timestamp=start + timedelta(hours=1)),
            UsageRecordInput(model_name="gemini-test", prompt_tokens=200_000, timestamp=start + timedelta(hours=1)),
            UsageRecordInput(model_name="gemini-test", prompt_tokens=1_000_001),
        ]
    )
    costs = [UsageLog.objects.get(pk=log.pk).cost for log in logs]
    assert costs == [250_000 * Decimal("2.5") / M, 200_000 * Decimal("1.25") / M, 1_000_001 * Decimal(5) / M]


@pytest.mark.django_db
def test_tiers_need_input_and_output_and_distinct_positive_thresholds():
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    for tiers, field in [
        ([_tier(0, "1", "2")], "tiers[0].above_prompt_tokens"),
        ([_tier(10, "1", "2"), _tier(10, "3", "4")], "tiers[1].above_prompt_tokens"),
        ([PriceTierInput(above_prompt_tokens=5, input_price_per_million=None, output_price_per_million=1)], None),
    ]:
        with pytest.raises(ValidationError) as caught:
            model_pricing_set_prices(pricing=pricing, **BASE, tiers=tiers)
        assert field is None or field in caught.value.message_dict
    assert pricing.price_versions.count() == 1


# --- Admin ---------------------------------------------------------------------------------------------


def _change_form(pricing: ModelPricing, **prices) -> dict:
    data = {
        "model_name": pricing.model_name,
        "provider": pricing.provider,
        "display_name": pricing.display_name,
        "model_type": pricing.model_type,
        "currency": pricing.currency,
        "enabled": "on",
        "tiers-TOTAL_FORMS": "0",
        "tiers-INITIAL_FORMS": "0",
        "price_versions-TOTAL_FORMS": "0",
        "price_versions-INITIAL_FORMS": "0",
        "name_patterns-TOTAL_FORMS": "0",
        "name_patterns-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    for name in (*TOKEN_PRICE_FIELDS, "price_per_call"):
        value = prices.get(name, getattr(pricing, name))
        data[name] = "" if value is None else str(value)
    return data


def _with_tiers(data: dict, tiers: list[dict]) -> dict:
    data = {**data, "tiers-TOTAL_FORMS": str(len(tiers))}
    for index, tier in enumerate(tiers):
        data.update({f"tiers-{index}-{key}": str(value) for key, value in tier.items()})
    return data


@pytest.mark.django_db
def test_the_admin_change_form_saves_prices_and_tiers_as_one_new_version(staff_client):
    pricing = ModelPricing.objects.get(model_name="claude-sonnet-4-5")
    url = reverse("admin:pricing_modelpricing_change", args=[pricing.pk])
    page = staff_client.get(url).content.decode()
    for name in (*TOKEN_PRICE_FIELDS, "price_per_call", "tiers-0-above_prompt_tokens"):
        assert f'name="{name}"' in page
    data = _change_form(pricing, cache_write_5m_price_per_million="3.75", cache_write_1h_price_per_million="6")
    data = _with_tiers(
        data, [{"above_prompt_tokens": 200_000, "input_price_per_million": "6", "output_price_per_million": "22.5"}]
    )
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    versions = list(pricing.price_versions.order_by("effective_from"))
    assert len(versions) == 2
    current = versions[-1]
    assert (current.cache_write_5m_price_per_million, current.cache_write_1h_price_per_million) == (
        Decimal("3.75"),
        Decimal("6"),
    )
    assert list(current.tiers.values_list("above_prompt_tokens", "output_price_per_million")) == [
        (200_000, Decimal("22.5"))
    ]
    tier = ModelPriceTier.objects.get(pricing=pricing)
    version_page = staff_client.get(reverse("admin:pricing_modelpriceversion_change", args=[current.pk]))
    shown = version_page.content.decode()
    assert "200000" in shown
    assert "3.75" in shown

    # Deleting the tier is a price change too.
    data = _change_form(ModelPricing.objects.get(pk=pricing.pk))
    data = _with_tiers(
        data,
        [
            {
                "id": tier.pk,
                "pricing": pricing.pk,
                "above_prompt_tokens": 200_000,
                "input_price_per_million": "6",
                "output_price_per_million": "22.5",
                "DELETE": "on",
            }
        ],
    )
    data["tiers-INITIAL_FORMS"] = "1"
    assert staff_client.post(url, data).status_code == 302
    assert pricing.price_versions.count() == 3
    assert not ModelPriceTier.objects.filter(pricing=pricing).exists()
    assert not pricing.price_versions.get(effective_to__isnull=True).tiers.exists()


@pytest.mark.django_db
def test_the_admin_refuses_bad_tiers_and_bad_prices_with_the_services_messages(staff_client):
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    url = reverse("admin:pricing_modelpricing_change", args=[pricing.pk])
    same = {"input_price_per_million": "1", "output_price_per_million": "2"}
    twice = _with_tiers(
        _change_form(pricing), [{"above_prompt_tokens": 10, **same}, {"above_prompt_tokens": 10, **same}]
    )
    no_output = _with_tiers(_change_form(pricing), [{"above_prompt_tokens": 10, "input_price_per_million": "1"}])
    negative = _change_form(pricing, reasoning_price_per_million="-1")
    for data, message in [
        (twice, "Two tiers start above 10 prompt tokens"),
        (no_output, "This field is required"),
        (negative, "A price cannot be negative."),
    ]:
        response = staff_client.post(url, data)
        assert response.status_code == 200
        assert message in response.content.decode()
    assert pricing.price_versions.count() == 1


@pytest.mark.django_db
def test_the_admin_add_form_creates_the_model_with_its_tiers_in_its_first_version(staff_client):
    data = {
        "model_name": "gemini-admin",
        "provider": "google",
        "display_name": "Gemini admin",
        "model_type": "chat",
        "currency": "USD",
        "input_price_per_million": "1.25",
        "output_price_per_million": "10",
        "price_per_call": "0.000000000000000001",
        "enabled": "on",
        "price_versions-TOTAL_FORMS": "0",
        "price_versions-INITIAL_FORMS": "0",
        "name_patterns-TOTAL_FORMS": "0",
        "name_patterns-INITIAL_FORMS": "0",
        "tiers-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    data = _with_tiers(
        data, [{"above_prompt_tokens": 200_000, "input_price_per_million": "2.5", "output_price_per_million": "15"}]
    )
    response = staff_client.post(reverse("admin:pricing_modelpricing_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    pricing = ModelPricing.objects.get(model_name="gemini-admin")
    assert pricing.provider == "Google"
    version = pricing.price_versions.get()
    assert version.price_per_call == Decimal("1E-18")
    assert list(version.tiers.values_list("above_prompt_tokens", "input_price_per_million")) == [
        (200_000, Decimal("2.5"))
    ]
    assert list(pricing.tiers.values_list("above_prompt_tokens", flat=True)) == [200_000]


SQLITE_SCRIPT = """
import django
django.setup()
from datetime import timedelta
from decimal import Context, Decimal
from django.core.management import call_command
from django.utils import timezone
from ingest.services import usage_record_batch
from pricing.services import PriceTierInput, model_pricing_create
from usage.models import UsageCounter, UsageLog
from usage.records import UsageRecordInput

call_command("migrate", verbosity=0)
model_pricing_create(
    model_name="sqlite-tiered", provider="Google", display_name="t", model_type="chat", currency="USD",
    input_price_per_million=Decimal("1.25"), output_price_per_million=Decimal("0.200000000000000002"),
    tiers=[PriceTierInput(above_prompt_tokens=200_000, input_price_per_million=Decimal("2.5"),
                          output_price_per_million=Decimal("15"))],
    effective_from=timezone.now() - timedelta(days=1),
    allow_past=True,
)
usage_record_batch(records=[
    UsageRecordInput(model_name="sqlite-tiered", prompt_tokens=200_001, completion_tokens=0),
    UsageRecordInput(model_name="sqlite-tiered", prompt_tokens=10, completion_tokens=3),
])
fifteen = Context(prec=15)
costs = [log.cost for log in UsageLog.objects.order_by("id")]
expected = [Decimal("0.5000025"), Decimal("0.000013100000000000000006")]
assert [fifteen.plus(c) for c in costs] == [fifteen.plus(e) for e in expected], costs
total = UsageCounter.objects.get(model_name="sqlite-tiered").total_cost
assert fifteen.plus(total) == fifteen.plus(sum(expected)), total
print("sqlite tiers ok")
"""


def test_sqlite_prices_tiers_and_is_exact_to_fifteen_significant_digits(tmp_path):
    from tests.sqlite_process import sqlite_python

    result = sqlite_python(tmp_path / "tiers.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite tiers ok" in result.stdout


@pytest.mark.django_db
def test_stats_show_the_exact_sum_rounded_once_at_display(staff_client):
    model_pricing_create(
        model_name="display-test",
        provider="OpenAI",
        display_name="display-test",
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("0.15"),
        output_price_per_million=Decimal("0.6"),
        cached_input_price_per_million=Decimal("0.075"),
        effective_from=timezone.now() - timedelta(days=1),
        allow_past=True,  # History set up before the calls.
    )
    one = UsageRecordInput(model_name="display-test", prompt_tokens=1, completion_tokens=0, cached_tokens=1)
    usage_record_batch(records=[one] * 3)
    assert UsageLog.objects.filter(model_name="display-test").aggregate(c=Sum("cost"))["c"] == Decimal("2.25E-7")
    response = staff_client.get("/api/v1/ai-platforms/stats", {"time_range": "all"})
    summary = exact_json(response)["data"]["summary"]
    assert summary["total_cost"] == Decimal("0.00000022")  # 0.000000225, half to even once; not 3 x 0.00000008.
    assert b'"total_cost":0.00000022,' in response.content  # A JSON number in plain notation, not 2.2E-7.


@pytest.mark.django_db
def test_the_admin_change_form_saved_unchanged_adds_no_version_and_keeps_the_tiers(staff_client):
    pricing = model_pricing_create(
        model_name="unchanged",
        provider="Google",
        display_name="unchanged",
        model_type="chat",
        currency="USD",
        **GEMINI_PRO,
        tiers=[_tier(200_000, "2.5", "15")],
    )
    tier = ModelPriceTier.objects.get(pricing=pricing)
    data = _with_tiers(
        _change_form(pricing),
        [
            {
                "id": tier.pk,
                "pricing": pricing.pk,
                "above_prompt_tokens": tier.above_prompt_tokens,
                "input_price_per_million": tier.input_price_per_million,
                "output_price_per_million": tier.output_price_per_million,
            }
        ],
    )
    data["tiers-INITIAL_FORMS"] = "1"
    data["display_name"] = "renamed"
    url = reverse("admin:pricing_modelpricing_change", args=[pricing.pk])
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ModelPricing.objects.get(pk=pricing.pk).display_name == "renamed"
    assert pricing.price_versions.count() == 1
    assert list(ModelPriceTier.objects.filter(pricing=pricing).values_list("pk", flat=True)) == [tier.pk]
