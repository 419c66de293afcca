"""Provider usage objects (usage.usage_objects), built from the JSON each provider documents in its
API reference and guides, mapped onto aicost's token counts without double counting; inconsistent
or unknown ones refused naming the key, from Python (usage_record) and HTTP alike."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.services import usage_record
from usage.models import UsageLog
from usage.records import UsageRecordInvalid
from usage.rollup_sums import SUM_NAMES
from usage.usage_objects import MAX_TOKENS, TokenCounts, UsageObjectInvalid, usage_object_tokens
from usage.window_sums import UsageFilters, usage_sums_over_spans

# (case, the provider's usage object, the counts aicost records)
DOCUMENTED = [
    (
        "OpenAI Chat Completions, plain (API reference: the chat completion object)",
        {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        TokenCounts(prompt_tokens=19, completion_tokens=10),
    ),
    (
        "OpenAI Chat Completions, prompt caching guide",
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        TokenCounts(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920),
    ),
    (
        "OpenAI Chat Completions, reasoning model",
        {
            "prompt_tokens": 9,
            "completion_tokens": 1843,
            "total_tokens": 1852,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 1024,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        TokenCounts(prompt_tokens=9, completion_tokens=1843, reasoning_tokens=1024),
    ),
    (
        "OpenAI Chat Completions, audio in and out (gpt-audio)",
        {
            "prompt_tokens": 1047,
            "completion_tokens": 2287,
            "total_tokens": 3334,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1024, "text_tokens": 23, "image_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 2048,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
                "text_tokens": 239,
            },
        },
        TokenCounts(prompt_tokens=1047, completion_tokens=2287, input_audio_tokens=1024, output_audio_tokens=2048),
    ),
    (
        "OpenAI Chat Completions, predicted outputs guide (predictions already in completion_tokens)",
        {
            "prompt_tokens": 242,
            "completion_tokens": 288,
            "total_tokens": 530,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 18,
                "rejected_prediction_tokens": 10,
            },
        },
        TokenCounts(prompt_tokens=242, completion_tokens=288),
    ),
    (
        "OpenAI Chat Completions as the SDK's model_dump() without details",
        {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
        TokenCounts(prompt_tokens=12, completion_tokens=3),
    ),
    (
        "DeepSeek context caching guide",
        {
            "prompt_tokens": 1000,
            "completion_tokens": 20,
            "total_tokens": 1020,
            "prompt_cache_hit_tokens": 768,
            "prompt_cache_miss_tokens": 232,
        },
        TokenCounts(prompt_tokens=1000, completion_tokens=20, cached_tokens=768),
    ),
    (
        "DeepSeek reasoner, with the OpenAI-compatible details",
        {
            "prompt_tokens": 16,
            "completion_tokens": 520,
            "total_tokens": 536,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 470},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 16,
        },
        TokenCounts(prompt_tokens=16, completion_tokens=520, reasoning_tokens=470),
    ),
    (
        "OpenAI Responses (API reference: the response object)",
        {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        },
        TokenCounts(prompt_tokens=36, completion_tokens=87),
    ),
    (
        "OpenAI Responses, cached input and reasoning",
        {
            "input_tokens": 5200,
            "input_tokens_details": {"cached_tokens": 4864},
            "output_tokens": 1200,
            "output_tokens_details": {"reasoning_tokens": 896},
            "total_tokens": 6400,
        },
        TokenCounts(prompt_tokens=5200, completion_tokens=1200, cached_tokens=4864, reasoning_tokens=896),
    ),
    (
        "Anthropic Messages, plain (API reference: Messages)",
        {"input_tokens": 2095, "output_tokens": 503},
        TokenCounts(prompt_tokens=2095, completion_tokens=503),
    ),
    (
        "Anthropic Messages, prompt caching guide: cache writes and reads are not in input_tokens",
        {
            "input_tokens": 50,
            "cache_read_input_tokens": 100000,
            "cache_creation_input_tokens": 248,
            "output_tokens": 503,
            "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100},
        },
        TokenCounts(
            prompt_tokens=50 + 100000 + 248,
            completion_tokens=503,
            cached_tokens=100000,
            cache_write_5m_tokens=148,
            cache_write_1h_tokens=100,
        ),
    ),
    (
        "Anthropic Messages, a cache write without the split: 5-minute",
        {"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 0, "output_tokens": 393},
        TokenCounts(prompt_tokens=21 + 188086, completion_tokens=393, cache_write_5m_tokens=188086),
    ),
    (
        "Anthropic Messages as the SDK's model_dump(), with server tools and tier",
        {
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2048,
            "inference_geo": None,
            "input_tokens": 410,
            "output_tokens": 96,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": None},
            "service_tier": "standard",
        },
        TokenCounts(prompt_tokens=410 + 2048, completion_tokens=96, cached_tokens=2048),
    ),
    (
        "Gemini usageMetadata, text (API reference: GenerateContentResponse)",
        {
            "promptTokenCount": 8,
            "candidatesTokenCount": 12,
            "totalTokenCount": 20,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
        },
        TokenCounts(prompt_tokens=8, completion_tokens=12),
    ),
    (
        "Gemini usageMetadata, thinking: thoughts billed as output on top of candidates",
        {
            "promptTokenCount": 11,
            "candidatesTokenCount": 133,
            "totalTokenCount": 1157,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
            "thoughtsTokenCount": 1013,
        },
        TokenCounts(prompt_tokens=11, completion_tokens=133 + 1013, reasoning_tokens=1013),
    ),
    (
        "Gemini usageMetadata, context caching: cached content is part of the prompt",
        {
            "promptTokenCount": 696219,
            "candidatesTokenCount": 214,
            "totalTokenCount": 696433,
            "cachedContentTokenCount": 696190,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 29},
                {"modality": "VIDEO", "tokenCount": 696190},
            ],
            "cacheTokensDetails": [{"modality": "VIDEO", "tokenCount": 696190}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 214}],
        },
        TokenCounts(prompt_tokens=696219, completion_tokens=214, cached_tokens=696190),
    ),
    (
        "Gemini usageMetadata, audio in, tool use prompt",
        {
            "promptTokenCount": 1650,
            "candidatesTokenCount": 80,
            "toolUsePromptTokenCount": 300,
            "totalTokenCount": 2030,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 1600}, {"modality": "TEXT", "tokenCount": 50}],
            "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 300}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 80}],
        },
        TokenCounts(prompt_tokens=1650 + 300, completion_tokens=80, input_audio_tokens=1600),
    ),
    (
        "Gemini usageMetadata, cached audio is priced as cached, not as audio",
        {
            "promptTokenCount": 2000,
            "cachedContentTokenCount": 1500,
            "candidatesTokenCount": 10,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 1800}, {"modality": "TEXT", "tokenCount": 200}],
            "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 1500}],
        },
        TokenCounts(prompt_tokens=2000, completion_tokens=10, cached_tokens=1500, input_audio_tokens=300),
    ),
    (
        "Gemini usageMetadata, image output (gemini-2.5-flash-image)",
        {
            "promptTokenCount": 13,
            "candidatesTokenCount": 1300,
            "totalTokenCount": 1313,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 13}],
            "candidatesTokensDetails": [
                {"modality": "IMAGE", "tokenCount": 1290},
                {"modality": "TEXT", "tokenCount": 10},
            ],
        },
        TokenCounts(prompt_tokens=13, completion_tokens=1300, output_image_tokens=1290),
    ),
    (
        "Gemini usage_metadata as the google-genai SDK's model_dump() (snake_case, None for unused)",
        {
            "cache_tokens_details": None,
            "cached_content_token_count": None,
            "candidates_token_count": 700,
            "candidates_tokens_details": [{"modality": "AUDIO", "token_count": 700}],
            "prompt_token_count": 12,
            "prompt_tokens_details": [{"modality": "TEXT", "token_count": 12}],
            "thoughts_token_count": None,
            "tool_use_prompt_token_count": None,
            "tool_use_prompt_tokens_details": None,
            "total_token_count": 712,
            "traffic_type": "ON_DEMAND",
        },
        TokenCounts(prompt_tokens=12, completion_tokens=700, output_audio_tokens=700),
    ),
    (
        "OpenAI Chat Completions as the openai 3.x SDK dumps it (cache_write_tokens, None where unused)",
        {
            "prompt_tokens": 3000,
            "completion_tokens": 200,
            "total_tokens": 3200,
            "prompt_tokens_details": {
                "cached_tokens": 1024,
                "cache_write_tokens": 1500,
                "audio_tokens": None,
                "image_tokens": None,
                "text_tokens": None,
            },
            "completion_tokens_details": None,
        },
        TokenCounts(prompt_tokens=3000, completion_tokens=200, cached_tokens=1024, cache_write_5m_tokens=1500),
    ),
    (
        "OpenAI Responses with cache writes (input_tokens_details.cache_write_tokens, ttl split of zeros)",
        {
            "input_tokens": 4000,
            "input_tokens_details": {
                "cached_tokens": 2048,
                "cache_write_tokens": 0,
                "cache_write_tokens_details": {"ttl_30m_tokens": 0, "ttl_12h_tokens": 0},
            },
            "output_tokens": 900,
            "output_tokens_details": {"reasoning_tokens": 512},
            "total_tokens": 4900,
        },
        TokenCounts(prompt_tokens=4000, completion_tokens=900, cached_tokens=2048, reasoning_tokens=512),
    ),
    (
        "OpenAI Responses with cache writes of no stated time to live",
        {
            "input_tokens": 4000,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 3000},
            "output_tokens": 10,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 4010,
        },
        TokenCounts(prompt_tokens=4000, completion_tokens=10, cache_write_5m_tokens=3000),
    ),
    (
        "Anthropic Messages with extended thinking (output_tokens_details.thinking_tokens)",
        {
            "input_tokens": 30,
            "output_tokens": 1200,
            "output_tokens_details": {"thinking_tokens": 1000},
            "cache_creation_input_tokens": None,
            "cache_read_input_tokens": None,
            "cache_creation": None,
            "server_tool_use": None,
            "service_tier": "standard",
            "inference_geo": None,
            "speed": None,
        },
        TokenCounts(prompt_tokens=30, completion_tokens=1200, reasoning_tokens=1000),
    ),
]


@pytest.mark.parametrize(("usage", "expected"), [pytest.param(*case[1:], id=case[0]) for case in DOCUMENTED])
def test_each_documented_usage_object_maps_onto_the_token_counts(usage, expected):
    counts = usage_object_tokens(usage)
    assert counts == expected
    # No double counting: the parts fit within their totals, so each token is priced exactly once.
    prompt_parts = counts.cached_tokens + counts.cache_write_5m_tokens + counts.cache_write_1h_tokens
    assert prompt_parts + counts.input_audio_tokens <= counts.prompt_tokens
    assert counts.reasoning_tokens + counts.output_audio_tokens + counts.output_image_tokens <= counts.completion_tokens


# (case, usage object, the path named, the message)
REFUSED = [
    ("not an object", [1, 2], "usage", "Invalid data. Expected a dictionary, but got list."),
    ("no provider's keys", {}, "usage", None),
    (
        "an unknown top-level key (Chat)",
        {"prompt_tokens": 5, "completion_tokens": 1, "cache_write_tokens": 3},
        "usage.cache_write_tokens",
        "Unknown field of an OpenAI Chat Completions (or DeepSeek) usage object.",
    ),
    (
        "an unknown detail (Chat)",
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1, "video_tokens": 2}},
        "usage.prompt_tokens_details.video_tokens",
        "Unknown field of an OpenAI Chat Completions (or DeepSeek) usage object.",
    ),
    (
        "cached above prompt (Chat)",
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}},
        "usage.prompt_tokens_details.cached_tokens",
        "Cannot exceed usage.prompt_tokens.",
    ),
    (
        "cached and audio above prompt (Chat)",
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 3}},
        "usage.prompt_tokens_details.audio_tokens",
        "cached_tokens and audio_tokens together cannot exceed prompt_tokens.",
    ),
    (
        "a negative count (Chat)",
        {"prompt_tokens": 5, "completion_tokens": -1},
        "usage.completion_tokens",
        "Ensure this value is greater than or equal to 0.",
    ),
    (
        "a count as text (Chat)",
        {"prompt_tokens": "5"},
        "usage.prompt_tokens",
        "A valid integer is required.",
    ),
    (
        "a count beyond the log's integers",
        {"prompt_tokens": MAX_TOKENS + 1},
        "usage.prompt_tokens",
        f"Ensure this value is less than or equal to {MAX_TOKENS}.",
    ),
    (
        "rejected predictions beyond completion (Chat)",
        {"prompt_tokens": 5, "completion_tokens": 2, "completion_tokens_details": {"rejected_prediction_tokens": 3}},
        "usage.completion_tokens_details.rejected_prediction_tokens",
        "Cannot exceed usage.completion_tokens.",
    ),
    (
        "DeepSeek hits and misses not adding up to prompt",
        {"prompt_tokens": 100, "prompt_cache_hit_tokens": 60, "prompt_cache_miss_tokens": 50},
        "usage.prompt_cache_hit_tokens",
        "prompt_cache_hit_tokens + prompt_cache_miss_tokens must equal prompt_tokens (100).",
    ),
    (
        "DeepSeek hits without misses",
        {"prompt_tokens": 100, "prompt_cache_hit_tokens": 60},
        "usage.prompt_cache_miss_tokens",
        "Give prompt_cache_hit_tokens and prompt_cache_miss_tokens together (only the hit was).",
    ),
    (
        "DeepSeek hits disagreeing with the OpenAI-style cached tokens",
        {
            "prompt_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 10},
            "prompt_cache_hit_tokens": 60,
            "prompt_cache_miss_tokens": 40,
        },
        "usage.prompt_cache_hit_tokens",
        "Must equal prompt_tokens_details.cached_tokens: both count the cache hits.",
    ),
    (
        "Chat and Responses keys mixed",
        {"prompt_tokens": 5, "input_tokens": 5},
        "usage.input_tokens",
        "Unknown field of an OpenAI Chat Completions (or DeepSeek) usage object.",
    ),
    (
        "Responses without input_tokens",
        {"output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 1}},
        "usage.input_tokens",
        "This field is required.",
    ),
    (
        "Responses cached above input",
        {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 9}},
        "usage.input_tokens_details.cached_tokens",
        "Cannot exceed usage.input_tokens.",
    ),
    (
        "Anthropic split not adding up",
        {
            "input_tokens": 1,
            "cache_creation_input_tokens": 10,
            "cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 5},
        },
        "usage.cache_creation.ephemeral_1h_input_tokens",
        "ephemeral_5m_input_tokens + ephemeral_1h_input_tokens must equal cache_creation_input_tokens (10).",
    ),
    (
        "Anthropic unknown cache duration",
        {"input_tokens": 1, "cache_creation": {"ephemeral_24h_input_tokens": 4}},
        "usage.cache_creation.ephemeral_24h_input_tokens",
        "Unknown field of an Anthropic Messages usage object.",
    ),
    (
        "Anthropic with its cache beyond the log's integers",
        {"input_tokens": MAX_TOKENS, "cache_read_input_tokens": 1},
        "usage.input_tokens",
        None,
    ),
    (
        "Anthropic web search requests (billed per request: no price holds them)",
        {"input_tokens": 1, "output_tokens": 2, "server_tool_use": {"web_search_requests": 3}},
        "usage.server_tool_use.web_search_requests",
        "Server tool requests are billed per request and aicost has no price for them, so the call would be "
        "under-counted. Send the usage object without server_tool_use, or the token counts as fields.",
    ),
    (
        "OpenAI Chat cache writes with the cache reads above prompt",
        {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 50}},
        "usage.prompt_tokens_details.cache_write_tokens",
        "cached_tokens, audio_tokens and cache_write_tokens together cannot exceed prompt_tokens.",
    ),
    (
        "OpenAI Responses 30-minute cache writes (no price for them)",
        {
            "input_tokens": 100,
            "input_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 80,
                "cache_write_tokens_details": {"ttl_30m_tokens": 80, "ttl_12h_tokens": 0},
            },
        },
        "usage.input_tokens_details.cache_write_tokens_details.ttl_30m_tokens",
        "aicost has prices for 5-minute and 1-hour cache writes only, so a write with this time to live cannot "
        "be priced. Send the token counts as fields instead.",
    ),
    (
        "OpenAI Responses cache writes whose ttl split does not add up",
        {
            "input_tokens": 100,
            "input_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 80,
                "cache_write_tokens_details": {"ttl_30m_tokens": 0, "ttl_12h_tokens": 0},
            },
        },
        "usage.input_tokens_details.cache_write_tokens_details.ttl_30m_tokens",
        "ttl_30m_tokens + ttl_12h_tokens must equal cache_write_tokens.",
    ),
    (
        "OpenAI Responses cache reads and writes above input",
        {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 50}},
        "usage.input_tokens_details.cache_write_tokens",
        "cached_tokens and cache_write_tokens together cannot exceed input_tokens.",
    ),
    (
        "Anthropic thinking above output",
        {"input_tokens": 1, "output_tokens": 5, "output_tokens_details": {"thinking_tokens": 6}, "service_tier": None},
        "usage.output_tokens_details.thinking_tokens",
        "Cannot exceed usage.output_tokens.",
    ),
    (
        "Anthropic tier not a string",
        {"input_tokens": 1, "service_tier": 5},
        "usage.service_tier",
        "Not a valid string.",
    ),
    (
        "Gemini cached above prompt",
        {"promptTokenCount": 10, "cachedContentTokenCount": 11},
        "usage.cachedContentTokenCount",
        "Cannot exceed usage.promptTokenCount.",
    ),
    (
        "Gemini unknown modality",
        {"promptTokenCount": 10, "promptTokensDetails": [{"modality": "SMELL", "tokenCount": 1}]},
        "usage.promptTokensDetails[0].modality",
        None,
    ),
    (
        "Gemini video output (no price of its own)",
        {
            "promptTokenCount": 10,
            "candidatesTokenCount": 5,
            "candidatesTokensDetails": [{"modality": "VIDEO", "tokenCount": 5}],
        },
        "usage.candidatesTokensDetails",
        "VIDEO output has no price of its own in aicost; it cannot be priced as text.",
    ),
    (
        "Gemini image output above candidates",
        {
            "promptTokenCount": 10,
            "candidatesTokenCount": 5,
            "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 6}],
        },
        "usage.candidatesTokensDetails",
        "The IMAGE tokens (6) exceed usage.candidatesTokenCount (5).",
    ),
    (
        "Gemini cached tokens without saying they are audio",
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 100}],
        },
        "usage.cacheTokensDetails",
        None,
    ),
    (
        "Gemini details not a list",
        {"promptTokenCount": 10, "promptTokensDetails": {"TEXT": 10}},
        "usage.promptTokensDetails",
        None,
    ),
    (
        "Gemini snake_case with a negative count",
        {"prompt_token_count": 10, "thoughts_token_count": -2},
        "usage.thoughts_token_count",
        "Ensure this value is greater than or equal to 0.",
    ),
    (
        "Gemini unknown key",
        {"promptTokenCount": 10, "promptAudioTokens": 2},
        "usage.promptAudioTokens",
        "Unknown field of a Gemini usageMetadata object.",
    ),
]


@pytest.mark.parametrize(("usage", "path", "message"), [pytest.param(*case[1:], id=case[0]) for case in REFUSED])
def test_inconsistent_or_unknown_usage_objects_are_refused_naming_the_key(usage, path, message):
    with pytest.raises(UsageObjectInvalid) as error:
        usage_object_tokens(usage)
    assert error.value.path == path
    if message is not None:
        assert error.value.message == message


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["Anthropic Messages, prompt caching guide", "Gemini usageMetadata, image output"])
def test_a_usage_object_is_stored_and_rolled_up_with_every_kind(case):
    (usage, expected), *_ = [(u, e) for name, u, e in DOCUMENTED if name.startswith(case)]
    at = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
    log = usage_record(model_name="gpt-4o", usage=usage, timestamp=at)
    stored = UsageLog.objects.get(pk=log.pk)
    assert TokenCounts(*(getattr(stored, name) for name in TokenCounts._fields)) == expected
    sums = usage_sums_over_spans(spans=[(at.replace(hour=0), at.replace(hour=23))], filters=UsageFilters())[0]
    rolled = sums["gpt-4o"]
    assert {name: getattr(rolled, name) for name in TokenCounts._fields if name in SUM_NAMES} == expected._asdict()


@pytest.mark.django_db
def test_usage_record_refuses_an_inconsistent_object_naming_the_key():
    usage = {"prompt_tokens": 100, "prompt_cache_hit_tokens": 101, "prompt_cache_miss_tokens": 0}
    with pytest.raises(UsageRecordInvalid) as error:
        usage_record(model_name="deepseek-chat", usage=usage)
    assert error.value.field == "usage.prompt_cache_hit_tokens"
    assert not UsageLog.objects.exists()


@pytest.mark.django_db
def test_stats_and_trend_return_every_token_kind(writer, reader):
    """An Anthropic call with cache writes and a Gemini call with image and audio output, recorded
    through the API as their SDKs return them, then read back from the stats and the trend."""
    anthropic = next(u for name, u, _e in DOCUMENTED if name.startswith("Anthropic Messages, prompt caching"))
    gemini = next(u for name, u, _e in DOCUMENTED if name.startswith("Gemini usageMetadata, image output"))
    audio = next(u for name, u, _e in DOCUMENTED if name.startswith("OpenAI Chat Completions, audio"))
    records = [
        {"model_name": "claude-sonnet-4", "usage": anthropic},
        {"model_name": "gemini-2.5-flash-image", "usage": gemini},
        {"model_name": "gpt-audio", "usage": audio},
    ]
    assert writer.post("/api/v1/usage/", records, format="json").status_code == 201
    expected = {
        "prompt_tokens": 100298 + 13 + 1047,
        "completion_tokens": 503 + 1300 + 2287,
        "cached_tokens": 100000,
        "reasoning_tokens": 0,
        "cache_write_5m_tokens": 148,
        "cache_write_1h_tokens": 100,
        "input_audio_tokens": 1024,
        "output_audio_tokens": 2048,
        "output_image_tokens": 1290,
    }
    stats = reader.get("/api/v1/ai-platforms/stats", {"time_range": "today"}).json()["data"]
    assert {name: stats["summary"][name] for name in expected} == expected
    by_model = {platform["model_name"]: platform for platform in stats["platforms"]}
    assert by_model["claude-sonnet-4"]["cache_write_1h_tokens"] == 100
    assert by_model["gemini-2.5-flash-image"]["output_image_tokens"] == 1290
    assert sum(provider["output_audio_tokens"] for provider in stats["providers"]) == 2048
    trend = reader.get("/api/v1/ai-platforms/cost-trend-daily", {"days": 1}).json()["data"]
    assert {name: trend["daily_trend"][-1][name] for name in expected} == expected


_KEYS = sorted(
    {key for _name, usage, _expected in DOCUMENTED for key in usage}
    | {"cached_tokens", "audio_tokens", "reasoning_tokens", "ephemeral_5m_input_tokens", "modality", "tokenCount"}
    | {"cache_write_tokens", "cache_write_tokens_details", "ttl_30m_tokens", "thinking_tokens"}
)
_LEAVES = st.one_of(
    st.integers(-2, 3000),
    st.sampled_from([None, MAX_TOKENS, MAX_TOKENS + 1, True, 1.5, "5", "AUDIO", "IMAGE", "TEXT", "VIDEO"]),
)
_JSON = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=4),
    ),
    max_leaves=12,
)
_OBJECTS = st.one_of(
    st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6),
    # A documented object with one key changed: mostly valid, now and then a near miss.
    st.builds(
        lambda usage, key, value: {**usage, key: value},
        st.sampled_from([usage for _name, usage, _expected in DOCUMENTED]),
        st.sampled_from(_KEYS),
        _JSON,
    ),
)


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(usage=_OBJECTS)
def test_any_object_maps_within_its_totals_or_is_refused_naming_a_key(usage):
    """Whatever the object, the mapping gives counts that price every token once, or refuses it
    with UsageObjectInvalid (never another error: the API would answer 500)."""
    try:
        counts = usage_object_tokens(usage)
    except UsageObjectInvalid as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.path.startswith("usage")
        return
    assert all(type(count) is int and 0 <= count <= MAX_TOKENS for count in counts)
    prompt_parts = counts.cached_tokens + counts.cache_write_5m_tokens + counts.cache_write_1h_tokens
    assert prompt_parts + counts.input_audio_tokens <= counts.prompt_tokens
    assert counts.reasoning_tokens + counts.output_audio_tokens + counts.output_image_tokens <= counts.completion_tokens


@pytest.mark.django_db
def test_the_logs_admin_list_shows_each_calls_token_parts(staff_client):
    anthropic = next(u for name, u, _e in DOCUMENTED if name.startswith("Anthropic Messages, prompt caching"))
    usage_record(model_name="claude-sonnet-4", usage=anthropic)
    page = staff_client.get("/admin/usage/usagelog/").content.decode()
    assert "cached 100,000 · cache write 5m 148 · cache write 1h 100" in page


@pytest.mark.django_db
def test_the_api_names_a_key_inside_a_gemini_details_list(writer):
    usage = {"promptTokenCount": 10, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": -1}]}
    response = writer.post("/api/v1/usage/", {"model_name": "gemini-2.5-pro", "usage": usage}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "records[0].usage.promptTokensDetails[0].tokenCount"
    assert error["message"] == f"{error['field']}: Ensure this value is greater than or equal to 0."
    assert not UsageLog.objects.exists()
