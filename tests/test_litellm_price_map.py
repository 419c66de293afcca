"""Reading LiteLLM's price map (pricing.litellm): the whole bundled map of litellm 1.110.2, and small
maps for each rule. Pure: no database."""

import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from pricing.litellm import PriceMapError, PriceTier, litellm_price_map_parse

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_model_prices_1.110.2.json"


@cache
def _fixture():
    text = FIXTURE.read_text(encoding="utf-8")
    quotes, report = litellm_price_map_parse(text=text)
    return json.loads(text), quotes, report


def _parse(entries: dict):
    return litellm_price_map_parse(text=json.dumps(entries))


def _count(quotes, field: str) -> int:
    return sum(1 for quote in quotes.values() if getattr(quote, field) is not None)


def test_the_whole_bundled_map_parses():
    raw, quotes, report = _fixture()
    entries = {name for name in raw if name != "sample_spec"}
    assert len(entries) == 4877
    assert len(quotes) == 3971
    assert report.skipped_models == {"no per-token input and output price": 906}
    assert len(quotes) + sum(report.skipped_models.values()) == len(entries)  # Every entry accounted for.
    # Every model with both per-token prices is kept, with them as published.
    both = [name for name in entries if "input_cost_per_token" in raw[name] and "output_cost_per_token" in raw[name]]
    assert set(both) <= set(quotes)
    for name in both:
        assert quotes[name].input_price_per_million == Decimal(str(raw[name]["input_cost_per_token"])).scaleb(6)


def test_counts_of_models_per_price_kind():
    raw, quotes, _ = _fixture()
    assert sum(1 for quote in quotes.values() if quote.tiers) == 378
    assert sum(1 for quote in quotes.values() if len(quote.tiers) > 1) == 33
    assert _count(quotes, "cached_input_price_per_million") == 1925
    assert _count(quotes, "cache_write_5m_price_per_million") == 555
    assert _count(quotes, "cache_write_1h_price_per_million") == 233
    assert _count(quotes, "input_audio_price_per_million") == 131
    assert _count(quotes, "output_audio_price_per_million") == 84
    assert _count(quotes, "reasoning_price_per_million") == 84
    assert _count(quotes, "output_image_price_per_million") == 58
    assert _count(quotes, "price_per_call") == 4
    # Each write price is in the map wherever a quote has one (and the other way round, for priced models).
    with_1h = {name for name in quotes if "cache_creation_input_token_cost_above_1hr" in raw[name]}
    assert with_1h == {name for name, quote in quotes.items() if quote.cache_write_1h_price_per_million is not None}


def test_gemini_2_5_pro_long_context_tier():
    _, quotes, _ = _fixture()
    pro = quotes["gemini-2.5-pro"]
    assert pro.provider == "Google"
    assert (pro.input_price_per_million, pro.output_price_per_million) == (Decimal("1.25"), Decimal("10"))
    assert pro.cached_input_price_per_million == Decimal("0.125")
    assert pro.tiers == (
        PriceTier(
            above_prompt_tokens=200_000,
            input_price_per_million=Decimal("2.5"),
            output_price_per_million=Decimal("15"),
            cached_input_price_per_million=Decimal("0.25"),
            cache_write_5m_price_per_million=Decimal("0.25"),
        ),
    )


def test_claude_sonnet_4_5_cache_writes_and_the_vertex_tier():
    _, quotes, _ = _fixture()
    sonnet = quotes["claude-sonnet-4-5"]
    assert sonnet.provider == "Anthropic"
    assert sonnet.cache_write_5m_price_per_million == Decimal("3.75")
    assert sonnet.cache_write_1h_price_per_million == Decimal("6")
    assert sonnet.cached_input_price_per_million == Decimal("0.3")
    assert sonnet.tiers == ()  # Anthropic's own entry has no 200k tier in this map; Vertex's and Bedrock's do.
    vertex = quotes["vertex_ai/claude-sonnet-4-5"]
    assert vertex.provider == "Google"
    (tier,) = vertex.tiers
    assert tier.above_prompt_tokens == 200_000
    assert (tier.input_price_per_million, tier.output_price_per_million) == (Decimal("6"), Decimal("22.5"))
    assert (tier.cache_write_5m_price_per_million, tier.cache_write_1h_price_per_million) == (
        Decimal("7.5"),
        Decimal("12"),
    )
    assert tier.cached_input_price_per_million == Decimal("0.6")
    assert quotes["global.anthropic.claude-sonnet-4-5-20250929-v1:0"].provider == "Amazon Web Services"


def test_audio_reasoning_and_fee_prices():
    _, quotes, _ = _fixture()
    audio = quotes["gpt-audio"]
    assert (audio.input_audio_price_per_million, audio.output_audio_price_per_million) == (Decimal(32), Decimal(64))
    assert quotes["dashscope/qwen-turbo"].reasoning_price_per_million == Decimal("0.5")
    assert quotes["gemini-2.5-flash-image"].output_image_price_per_million == Decimal("30")
    online = quotes["perplexity/pplx-7b-online"]
    assert (online.price_per_call, online.input_price_per_million) == (Decimal("0.005"), Decimal(0))


def test_tiered_pricing_tables_become_tiers():
    _, quotes, _ = _fixture()
    plus = quotes["dashscope/qwen-plus-2025-07-28"]
    assert plus.provider == "Alibaba Cloud"
    assert (plus.input_price_per_million, plus.output_price_per_million) == (Decimal("0.4"), Decimal("1.2"))
    assert plus.reasoning_price_per_million == Decimal("4")
    (tier,) = plus.tiers
    assert (tier.above_prompt_tokens, tier.input_price_per_million) == (256_000, Decimal("1.2"))
    assert (tier.output_price_per_million, tier.reasoning_price_per_million) == (Decimal("3.6"), Decimal("12"))
    assert [t.above_prompt_tokens for t in quotes["dashscope/qwen3-max"].tiers] == [32_000, 128_000]


def test_float_noise_is_kept_as_published():
    _, quotes, _ = _fixture()
    # 5.0000000000000004e-08 per token, 18 places per million.
    assert quotes["novita/nvidia/nemotron-3-nano-30b-a3b"].input_price_per_million == Decimal("0.050000000000000004")


def test_report_lists_each_dropped_field_with_its_count():
    _, _, report = _fixture()
    dropped = report.dropped_fields
    assert dropped["input_cost_per_token_batches"] == 592
    assert dropped["output_cost_per_token_priority"] == 433
    assert dropped["input_cost_per_token_above_200k_tokens_priority"] == 15
    assert dropped["cache_creation_input_token_cost_above_12hr"] == 12
    assert dropped["input_cost_per_image_token"] == 127
    assert dropped["search_context_cost_per_query"] == 503
    assert dropped["off_peak_pricing"] == 10
    assert dropped["tiered_pricing"] == 2  # Per-query search tables (exa_ai, firecrawl).
    for held in ("input_cost_per_token_above_200k_tokens", "cache_creation_input_token_cost_above_1hr"):
        assert held not in dropped
    assert "- input_cost_per_token_batches: 592 model(s)" in report.lines()
    assert "- model skipped, no per-token input and output price: 906" in report.lines()


def test_tier_prices_cascade_from_the_lower_tier_as_litellm_bills_them():
    quotes, _ = _parse(
        {
            "m": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 2e-06,
                "cache_read_input_token_cost": 1e-07,
                "input_cost_per_token_above_128k_tokens": 3e-06,
                "output_cost_per_token_above_128k_tokens": 4e-06,
                "input_cost_per_token_above_256k_tokens": 5e-06,
                "cache_read_input_token_cost_above_256_tokens": 9e-07,
            }
        }
    )
    low, high, top = quotes["m"].tiers
    assert (low.above_prompt_tokens, high.above_prompt_tokens, top.above_prompt_tokens) == (256, 128_000, 256_000)
    assert (low.input_price_per_million, low.cached_input_price_per_million) == (Decimal(1), Decimal("0.9"))
    assert (high.input_price_per_million, high.output_price_per_million) == (Decimal(3), Decimal(4))
    assert (top.input_price_per_million, top.output_price_per_million) == (Decimal(5), Decimal(4))
    assert top.cached_input_price_per_million == Decimal("0.9")


def test_kinds_a_model_lacks_stay_empty():
    quotes, _ = _parse({"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}})
    quote = quotes["m"]
    assert quote.prices() == {
        "input_price_per_million": Decimal(1),
        "cached_input_price_per_million": None,
        "cache_write_5m_price_per_million": None,
        "cache_write_1h_price_per_million": None,
        "input_audio_price_per_million": None,
        "output_price_per_million": Decimal(2),
        "reasoning_price_per_million": None,
        "output_audio_price_per_million": None,
        "output_image_price_per_million": None,
        "price_per_call": None,
    }
    assert quote.tiers == ()


def test_embeddings_image_models_and_deepseek_cache_hits():
    quotes, report = _parse(
        {
            "embed": {"input_cost_per_token": 1e-07, "mode": "embedding"},
            "image": {"input_cost_per_token": 5e-06, "output_cost_per_image_token": 3e-05, "mode": "image_generation"},
            "hits": {
                "input_cost_per_token": 2.8e-07,
                "output_cost_per_token": 4.2e-07,
                "input_cost_per_token_cache_hit": 2.8e-08,
            },
            "speech": {"input_cost_per_character": 1.5e-05, "mode": "audio_speech"},
        }
    )
    assert (quotes["embed"].output_price_per_million, quotes["embed"].model_type) == (Decimal(0), "embedding")
    assert quotes["image"].output_price_per_million == quotes["image"].output_image_price_per_million == Decimal(30)
    assert quotes["hits"].cached_input_price_per_million == Decimal("0.028")
    assert "speech" not in quotes
    assert report.dropped_fields == {"input_cost_per_character": 1}
    assert report.skipped_models == {"no per-token input and output price": 1}


@pytest.mark.parametrize(
    "ranges",
    [
        [[0, 1000], [2000, 3000]],  # A gap: LiteLLM bills 1,500 tokens at the last tier.
        [[0, 0], [0, 1000]],  # An empty range.
        [[10, 1000], [1000, 2000]],  # Not from 0.
    ],
)
def test_a_tiered_pricing_table_aicost_cannot_hold_the_same_way_is_not_held(ranges):
    table = [{"input_cost_per_token": 1e-07 * (n + 1), "range": bounds} for n, bounds in enumerate(ranges)]
    quotes, report = _parse({"odd": {"output_cost_per_token": 1e-06, "tiered_pricing": table}})
    assert quotes == {}
    assert report.dropped_fields == {"tiered_pricing": 1, "output_cost_per_token": 1}


def test_a_tier_above_zero_tokens_is_not_a_tier():
    quotes, report = _parse(
        {
            "m": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 2e-06,
                "input_cost_per_token_above_0k_tokens": 1e-06,
            }
        }
    )
    assert quotes["m"].tiers == ()
    assert report.dropped_fields == {"input_cost_per_token_above_0k_tokens": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not JSON"),
        ('{"m": {"input_cost_per_token": "abc", "output_cost_per_token": 1}}', "m.input_cost_per_token"),
        ('{"m": {"input_cost_per_token": -1, "output_cost_per_token": 1}}', "negative"),
        # 19 places per million: more than a stored price keeps.
        (
            '{"m": {"input_cost_per_token": 1, "output_cost_per_token": 1.0000000000000000000000001e-06}}',
            "m.output_cost_per_token: .* more than 18 decimal places",
        ),
        (
            '{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, '
            '"cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1e-25}}',
            "m.cache_creation_input_token_cost_above_1hr_above_200k_tokens",
        ),
        ('{"m": {"input_cost_per_token": 1e9, "output_cost_per_token": 1}}', "too large"),
        # 33 significant digits: the default 28-digit arithmetic would round them into 16 places, silently.
        (
            '{"m": {"input_cost_per_token": 1, "output_cost_per_token": 123456.789012345678901234567890123}}',
            "m.output_cost_per_token: .* more than 18 decimal places",
        ),
    ],
)
def test_what_cannot_be_held_exactly_is_an_error_naming_the_field(text, message):
    with pytest.raises(PriceMapError, match=message):
        litellm_price_map_parse(text=text)


def test_parse_of_named_models_only():
    quotes, report = litellm_price_map_parse(text=FIXTURE.read_text(encoding="utf-8"), model_names={"gpt-4o"})
    assert set(quotes) == {"gpt-4o"}
    assert report.dropped_fields == {
        "cache_read_input_token_cost_priority": 1,
        "input_cost_per_token_batches": 1,
        "input_cost_per_token_priority": 1,
        "output_cost_per_token_batches": 1,
        "output_cost_per_token_priority": 1,
    }


@pytest.mark.parametrize(
    ("model_name", "provider"),
    [
        ("qwencloud/qwen3-max", "Alibaba Cloud"),  # Alibaba's Model Studio, by another route name.
        ("qwen_ai_platform/qwen3-max", "Alibaba Cloud"),
        ("zai/glm-5", "Zhipu AI"),
        ("bigmodel/glm-5.3", "Zhipu AI"),
        ("bedrock_mantle/openai.gpt-oss-120b", "Amazon Web Services"),
        ("text-completion-codestral/codestral-latest", "Mistral AI"),
    ],
)
def test_route_names_of_one_company_become_its_name(model_name, provider):
    _, quotes, _ = _fixture()
    assert quotes[model_name].provider == provider


def test_every_vertex_and_bedrock_route_is_billed_by_its_cloud():
    raw, quotes, _ = _fixture()
    routes = {raw[name]["litellm_provider"]: quote.provider for name, quote in quotes.items()}
    for route, provider in routes.items():
        if route.startswith("vertex_ai"):
            assert provider == "Google", route
        if route.startswith("bedrock"):
            assert provider == "Amazon Web Services", route
