from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingest.services import usage_record
from pricing.litellm import litellm_price_map_parse
from pricing.models import ModelPricing

pytestmark = pytest.mark.django_db

# Shaped like LiteLLM's model_prices_and_context_window.json; numbers written as LiteLLM writes them.
PRICE_MAP = """{
  "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "x"},
  "gpt-4o": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
             "cache_read_input_token_cost": 1e-06, "litellm_provider": "openai", "mode": "chat"},
  "gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
                  "cache_read_input_token_cost": 7.5e-08, "litellm_provider": "openai", "mode": "chat"},
  "mistral-large-latest": {"input_cost_per_token": 2e-06, "output_cost_per_token": 6e-06,
                           "litellm_provider": "mistral", "mode": "chat"},
  "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"}
}"""


@pytest.fixture
def price_map(tmp_path):
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(PRICE_MAP)
    return path


def _run(*args) -> str:
    out = StringIO()
    call_command("pricing_import", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_parse_keeps_exact_decimals_and_skips_non_token_prices():
    quotes, report = litellm_price_map_parse(text=PRICE_MAP)
    assert report.dropped_fields == {"output_cost_per_image": 1}
    assert set(quotes) == {"gpt-4o", "gpt-4o-mini", "mistral-large-latest"}
    mini = quotes["gpt-4o-mini"]
    assert (mini.input_price_per_million, mini.output_price_per_million) == (Decimal("0.15"), Decimal("0.6"))
    assert mini.cached_input_price_per_million == Decimal("0.075")
    assert quotes["mistral-large-latest"].cached_input_price_per_million is None


def test_dry_run_shows_differences_and_changes_nothing(price_map):
    output = _run(str(price_map))
    assert "~ gpt-4o: input_price_per_million: 2.5 -> 2;" in output
    assert "- output_cost_per_image: 1 model(s)" in output  # dall-e-3's price per image is not held.
    assert "gpt-4o-mini" not in output  # Same prices: no difference.
    assert "mistral-large-latest" not in output  # Unknown models only with --add-new.
    assert "Dry run: 1 change(s)" in output
    gpt4o = ModelPricing.objects.get(model_name="gpt-4o")
    assert gpt4o.input_price_per_million == Decimal("2.50")
    assert gpt4o.price_versions.count() == 1


def test_apply_opens_new_versions_and_never_rewrites_history(price_map):
    before = usage_record(
        model_name="gpt-4o", prompt_tokens=1_000_000, completion_tokens=0, timestamp=timezone.now() - timedelta(hours=1)
    )
    output = _run(str(price_map), "--apply", "--add-new")
    assert "Applied 2 change(s)" in output
    gpt4o = ModelPricing.objects.get(model_name="gpt-4o")
    versions = list(gpt4o.price_versions.order_by("effective_from"))
    assert [v.input_price_per_million for v in versions] == [Decimal("2.50"), Decimal("2.00")]
    assert versions[1].source == "LiteLLM price map model_prices_and_context_window.json"
    before.refresh_from_db()
    assert before.cost == Decimal("2.50000000")
    after = usage_record(model_name="gpt-4o", prompt_tokens=1_000_000, completion_tokens=0)
    assert after.cost == Decimal("2.00000000")
    mistral = ModelPricing.objects.get(model_name="mistral-large-latest")
    assert (mistral.provider, mistral.output_price_per_million) == ("Mistral AI", Decimal("6.00"))
    assert "No price differences." in _run(str(price_map), "--apply", "--add-new")


def test_models_priced_in_another_currency_are_left_alone(price_map):
    ModelPricing.objects.filter(model_name="gpt-4o").update(currency="EUR")
    output = _run(str(price_map), "--apply")
    assert "No price differences." in output
    assert ModelPricing.objects.get(model_name="gpt-4o").price_versions.count() == 1


def test_effective_from_must_be_aware(price_map):
    with pytest.raises(CommandError, match="UTC offset"):
        _run(str(price_map), "--effective-from", "2026-12-01T00:00:00")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        _run(str(tmp_path / "absent.json"))


def test_model_filter_limits_the_import(price_map):
    assert _run(str(price_map), "--model", "gpt-4o-mini").strip() == "No price differences."
    assert "~ gpt-4o:" in _run(str(price_map), "--model", "gpt-4o")
