"""An independent reference for the cost engine (issue 15, point 9).

LiteLLM's bundled price map (litellm 1.110.2, tests/fixtures) is imported with `manage.py
pricing_import`, the real command; a table of calls is recorded through usage_record, and each stored
cost is checked against a cost worked out by hand from the provider's published billing rule, written
out below as a literal with its arithmetic. Prices are USD per million tokens as the map publishes them.

The rules the table exercises (token counts in aicost's inclusive convention, tokens.md):
- OpenAI: cached input tokens at the cached rate, the rest of the prompt at the input rate; reasoning
  tokens are output tokens at the output rate; audio tokens in and out at the audio rates.
- Anthropic (also through Vertex AI and Bedrock): cache reads at 0.1x input, 5-minute cache writes at
  1.25x, 1-hour writes at 2x; a prompt of more than 200,000 tokens, counting input, cache writes and
  cache reads, prices the whole call at the long-context rates (input 2x, output 1.5x, cache rates from
  the long-context input). Exactly 200,000 stays at the standard rates.
- Google Gemini 2.5 Pro: a prompt of more than 200,000 tokens (cached content included) prices the whole
  call at the higher rates; thinking tokens are output tokens. Gemini image output tokens at 30/M.
- DeepSeek: cache-hit input tokens at the hit rate, misses at the input rate.
- Alibaba Cloud (Qwen, dashscope): thinking-mode output at the reasoning rate; qwen-plus prices a call
  by its input size, above 256,000 tokens at the higher tier.
- Perplexity's online models: a fee per request on top of the tokens, for a successful call.
"""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from ingest.services import usage_record, usage_record_batch
from pricing.litellm import litellm_price_map_parse
from pricing.models import ModelPriceTier, ModelPricing
from usage.records import UsageRecordInput

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_model_prices_1.110.2.json"

SONNET_VERTEX = "vertex_ai/claude-sonnet-4-5"
SONNET_BEDROCK = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
QWEN_PLUS = "dashscope/qwen-plus-2025-07-28"

# (case, model, token counts, expected cost).
# fmt: off
CALLS = [
    # --- OpenAI ---
    ("gpt-4o plain", "gpt-4o", {"prompt_tokens": 1_000, "completion_tokens": 500},
     # 1,000 x 2.50/M + 500 x 10.00/M
     Decimal("0.0075")),
    ("gpt-4o cached", "gpt-4o", {"prompt_tokens": 10_000, "cached_tokens": 4_000, "completion_tokens": 1_000},
     # 6,000 x 2.50/M + 4,000 x 1.25/M + 1,000 x 10.00/M
     Decimal("0.030")),
    ("gpt-4o-mini one cached token", "gpt-4o-mini", {"prompt_tokens": 1, "cached_tokens": 1, "completion_tokens": 0},
     # 1 x 0.075/M
     Decimal("0.000000075")),
    ("gpt-4o-mini cached", "gpt-4o-mini",
     {"prompt_tokens": 123_457, "cached_tokens": 100_000, "completion_tokens": 7_891},
     # 23,457 x 0.15/M + 100,000 x 0.075/M + 7,891 x 0.60/M = 0.00351855 + 0.0075 + 0.0047346
     Decimal("0.01575315")),
    ("gpt-5-nano reasoning", "gpt-5-nano",
     {"prompt_tokens": 2_000, "cached_tokens": 1_000, "completion_tokens": 5_000, "reasoning_tokens": 4_000},
     # 1,000 x 0.05/M + 1,000 x 0.005/M + 5,000 x 0.40/M (reasoning is output at the output rate)
     Decimal("0.002055")),
    ("gpt-5-nano one cached token", "gpt-5-nano", {"prompt_tokens": 1, "cached_tokens": 1, "completion_tokens": 0},
     # 1 x 0.005/M
     Decimal("0.000000005")),
    ("gpt-audio", "gpt-audio",
     {"prompt_tokens": 1_000, "input_audio_tokens": 800, "completion_tokens": 600, "output_audio_tokens": 500},
     # 200 x 2.50/M + 800 x 32.00/M + 100 x 10.00/M + 500 x 64.00/M = 0.0005 + 0.0256 + 0.001 + 0.032
     Decimal("0.0591")),
    # --- Anthropic ---
    ("claude-sonnet-4-5 cache reads and writes", "claude-sonnet-4-5",
     # Messages usage: input_tokens 2,000, cache_read 20,000, ephemeral_5m 10,000, ephemeral_1h 3,000.
     {"prompt_tokens": 35_000, "cached_tokens": 20_000, "cache_write_5m_tokens": 10_000,
      "cache_write_1h_tokens": 3_000, "completion_tokens": 1_500},
     # 2,000 x 3.00/M + 20,000 x 0.30/M + 10,000 x 3.75/M + 3,000 x 6.00/M + 1,500 x 15.00/M
     # = 0.006 + 0.006 + 0.0375 + 0.018 + 0.0225
     Decimal("0.09")),
    ("sonnet (Vertex) prompt of exactly 200,000: standard rates", SONNET_VERTEX,
     # 200,000 = input 150,000 + cache read 40,000 + 5-minute write 10,000
     {"prompt_tokens": 200_000, "cached_tokens": 40_000, "cache_write_5m_tokens": 10_000, "completion_tokens": 2_000},
     # 150,000 x 3.00/M + 40,000 x 0.30/M + 10,000 x 3.75/M + 2,000 x 15.00/M = 0.45 + 0.012 + 0.0375 + 0.03
     Decimal("0.5295")),
    ("sonnet (Vertex) prompt of 200,001: long-context rates", SONNET_VERTEX,
     # 200,001 = input 150,001 + cache read 40,000 + 1-hour write 10,000
     {"prompt_tokens": 200_001, "cached_tokens": 40_000, "cache_write_1h_tokens": 10_000, "completion_tokens": 2_000},
     # 150,001 x 6.00/M + 40,000 x 0.60/M + 10,000 x 12.00/M + 2,000 x 22.50/M = 0.900006 + 0.024 + 0.12 + 0.045
     Decimal("1.089006")),
    ("sonnet (Vertex) prompt of 250,000", SONNET_VERTEX,
     {"prompt_tokens": 250_000, "cache_write_5m_tokens": 50_000, "completion_tokens": 1_000},
     # 200,000 x 6.00/M + 50,000 x 7.50/M + 1,000 x 22.50/M = 1.2 + 0.375 + 0.0225
     Decimal("1.5975")),
    ("sonnet (Bedrock) prompt of 300,000, every cache kind", SONNET_BEDROCK,
     {"prompt_tokens": 300_000, "cached_tokens": 150_000, "cache_write_5m_tokens": 30_000,
      "cache_write_1h_tokens": 20_000, "completion_tokens": 4_000},
     # 100,000 x 6.00/M + 150,000 x 0.60/M + 30,000 x 7.50/M + 20,000 x 12.00/M + 4,000 x 22.50/M
     # = 0.6 + 0.09 + 0.225 + 0.24 + 0.09
     Decimal("1.245")),
    ("sonnet (Bedrock) below the tier", SONNET_BEDROCK,
     {"prompt_tokens": 100_000, "cached_tokens": 60_000, "cache_write_1h_tokens": 10_000, "completion_tokens": 1_000},
     # 30,000 x 3.00/M + 60,000 x 0.30/M + 10,000 x 6.00/M + 1,000 x 15.00/M = 0.09 + 0.018 + 0.06 + 0.015
     Decimal("0.183")),
    # --- Google ---
    ("gemini-2.5-pro below the tier, with thoughts", "gemini-2.5-pro",
     # usageMetadata: promptTokenCount 100,000, cachedContentTokenCount 20,000, candidates 1,000, thoughts 2,000.
     {"prompt_tokens": 100_000, "cached_tokens": 20_000, "completion_tokens": 3_000, "reasoning_tokens": 2_000},
     # 80,000 x 1.25/M + 20,000 x 0.125/M + 3,000 x 10.00/M = 0.1 + 0.0025 + 0.03
     Decimal("0.1325")),
    ("gemini-2.5-pro prompt of exactly 200,000", "gemini-2.5-pro",
     {"prompt_tokens": 200_000, "completion_tokens": 1_000},
     # 200,000 x 1.25/M + 1,000 x 10.00/M
     Decimal("0.26")),
    ("gemini-2.5-pro prompt of 200,001", "gemini-2.5-pro",
     {"prompt_tokens": 200_001, "completion_tokens": 1_000},
     # 200,001 x 2.50/M + 1,000 x 15.00/M = 0.5000025 + 0.015
     Decimal("0.5150025")),
    ("gemini-2.5-pro prompt of 250,000, cached content counted", "gemini-2.5-pro",
     {"prompt_tokens": 250_000, "cached_tokens": 50_000, "completion_tokens": 1_000, "reasoning_tokens": 400},
     # 200,000 x 2.50/M + 50,000 x 0.25/M + 1,000 x 15.00/M = 0.5 + 0.0125 + 0.015
     Decimal("0.5275")),
    ("gemini-2.5-flash-image output image", "gemini-2.5-flash-image",
     # One 1024x1024 image is 1,290 output tokens.
     {"prompt_tokens": 500, "completion_tokens": 1_390, "output_image_tokens": 1_290},
     # 500 x 0.30/M + 100 x 2.50/M + 1,290 x 30.00/M = 0.00015 + 0.00025 + 0.0387
     Decimal("0.0391")),
    # --- DeepSeek ---
    ("deepseek-chat cache hits", "deepseek-chat",
     # prompt_cache_hit_tokens 30,000, prompt_cache_miss_tokens 10,000.
     {"prompt_tokens": 40_000, "cached_tokens": 30_000, "completion_tokens": 2_000},
     # 10,000 x 0.28/M + 30,000 x 0.028/M + 2,000 x 0.42/M = 0.0028 + 0.00084 + 0.00084
     Decimal("0.00448")),
    ("deepseek-chat one cached token", "deepseek-chat",
     {"prompt_tokens": 1, "cached_tokens": 1, "completion_tokens": 0},
     # 1 x 0.028/M
     Decimal("0.000000028")),
    # --- Alibaba Cloud (Qwen) ---
    ("qwen-turbo thinking", "dashscope/qwen-turbo",
     {"prompt_tokens": 1_000, "completion_tokens": 3_000, "reasoning_tokens": 2_500},
     # 1,000 x 0.05/M + 500 x 0.20/M + 2,500 x 0.50/M = 0.00005 + 0.0001 + 0.00125
     Decimal("0.0014")),
    ("qwen-plus input of exactly 256,000, thinking", QWEN_PLUS,
     {"prompt_tokens": 256_000, "completion_tokens": 1_000, "reasoning_tokens": 800},
     # 256,000 x 0.40/M + 200 x 1.20/M + 800 x 4.00/M = 0.1024 + 0.00024 + 0.0032
     Decimal("0.10584")),
    ("qwen-plus input of 256,001, thinking", QWEN_PLUS,
     {"prompt_tokens": 256_001, "completion_tokens": 1_000, "reasoning_tokens": 800},
     # 256,001 x 1.20/M + 200 x 3.60/M + 800 x 12.00/M = 0.3072012 + 0.00072 + 0.0096
     Decimal("0.3175212")),
    # --- A fee per call ---
    ("perplexity online, successful", "perplexity/pplx-7b-online",
     {"prompt_tokens": 1_000, "completion_tokens": 1_000, "success": True},
     # 1,000 x 0.00/M + 1,000 x 0.28/M + 0.005 per request
     Decimal("0.00528")),
    ("perplexity online, failed: no fee", "perplexity/pplx-7b-online",
     {"prompt_tokens": 1_000, "completion_tokens": 1_000, "success": False, "error_message": "timeout"},
     # 1,000 x 0.28/M
     Decimal("0.00028")),
]
# fmt: on

MODELS = sorted({model for _, model, _, _ in CALLS})


def _import(*args: str) -> str:
    out = StringIO()
    call_command("pricing_import", str(FIXTURE), "--apply", "--add-new", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def imported():
    return _import(*(arg for model in MODELS for arg in ("--model", model)))


@pytest.mark.parametrize(("model", "tokens", "expected"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_stored_cost_is_the_providers_bill(imported, model, tokens, expected):
    row = usage_record(model_name=model, **tokens)
    row.refresh_from_db()
    assert row.cost == expected
    assert row.price_version.pricing.model_name == model


def test_the_table_covers_every_token_kind_and_provider(imported):
    kinds = {kind for _, _, tokens, _ in CALLS for kind, count in tokens.items() if count and kind.endswith("_tokens")}
    assert kinds == {
        "prompt_tokens",
        "cached_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "input_audio_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "output_audio_tokens",
        "output_image_tokens",
    }
    providers = set(ModelPricing.objects.filter(model_name__in=MODELS).values_list("provider", flat=True))
    assert providers == {
        "OpenAI",
        "Anthropic",
        "Google",
        "Amazon Web Services",
        "DeepSeek",
        "Alibaba Cloud",
        "Perplexity",
    }


def test_a_thousand_one_token_calls_sum_to_the_cost_of_a_thousand_tokens(imported):
    records = [UsageRecordInput(model_name="gpt-5-nano", prompt_tokens=1, cached_tokens=1, completion_tokens=0)]
    rows = usage_record_batch(records=records * 1_000)
    assert len(rows) == 1_000
    # 1,000 x 1 x 0.005/M: each call's 0.000000005 kept exactly, none rounded to 0.
    assert sum(row.cost for row in rows) == Decimal("0.000005")


def test_the_whole_map_imports_and_a_second_run_finds_nothing_to_change():
    quotes, _ = litellm_price_map_parse(text=FIXTURE.read_text(encoding="utf-8"))
    output = _import()
    assert "- input_cost_per_token_batches: 592 model(s)" in output
    assert set(quotes) <= set(ModelPricing.objects.values_list("model_name", flat=True))
    assert ModelPriceTier.objects.count() == sum(len(quote.tiers) for quote in quotes.values())
    # Every price came back from the database as published, to the 18th place (0.050000000000000004).
    nemotron = ModelPricing.objects.get(model_name="novita/nvidia/nemotron-3-nano-30b-a3b")
    assert nemotron.input_price_per_million == Decimal("0.050000000000000004")
    assert _import().rstrip().endswith("No price differences.")
