"""Provider usage objects, as the official SDKs return them, mapped onto aicost's token counts.

Pure functions: a usage object (a mapping, e.g. `response.usage.model_dump()`) in, TokenCounts
out, or UsageObjectInvalid naming the key's path (`usage.prompt_tokens_details.cached_tokens`).
usage.records turns that error into UsageRecordInvalid, so the API and Python callers get the same.

The counts are in OpenAI's inclusive convention (tokens.md): prompt_tokens holds every input token,
cache reads and writes and audio among them; completion_tokens every output token, reasoning, audio
and image among them. Each provider's object is detected by its keys; every key it may carry is
either mapped or known to carry no billable tokens (total_tokens, service_tier, ...). A key of none
of them is refused, so nothing a provider bills is dropped without a word:

- OpenAI Chat Completions: prompt_tokens (required), completion_tokens, total_tokens,
  prompt_tokens_details.{cached_tokens, audio_tokens, cache_write_tokens (a cache write of no stated
  duration: a 5-minute write)}, completion_tokens_details.{reasoning_tokens,
  audio_tokens, accepted_prediction_tokens, rejected_prediction_tokens}. Predicted tokens are
  already counted (and billed) in completion_tokens; text_tokens and image_tokens (audio models'
  details) are plain input or output.
- DeepSeek: the Chat Completions object plus prompt_cache_hit_tokens and prompt_cache_miss_tokens,
  with hit + miss = prompt_tokens; the hits are the cached tokens.
- OpenAI Responses: input_tokens (required), input_tokens_details.{cached_tokens, cache_write_tokens
  (5-minute writes)}, output_tokens, output_tokens_details.reasoning_tokens, total_tokens;
  input_tokens_details.cache_write_tokens_details.{ttl_30m_tokens, ttl_12h_tokens} have no price
  here, so a non-zero count is refused.
- Anthropic Messages: input_tokens (required) excludes the cache: prompt = input_tokens +
  cache_creation_input_tokens + cache_read_input_tokens. Cache writes are split by
  cache_creation.ephemeral_5m/1h_input_tokens (which then add up to cache_creation_input_tokens);
  without the split every write is a 5-minute write. output_tokens_details.thinking_tokens (part of
  output_tokens) are the reasoning tokens. server_tool_use counts requests, billed per
  request: aicost holds no such price, so a non-zero count is refused rather than left unbilled.
- Gemini usageMetadata (REST camelCase, or the google-genai SDK's snake_case): prompt =
  promptTokenCount (cached content included) + toolUsePromptTokenCount; completion =
  candidatesTokenCount + thoughtsTokenCount (thoughts are billed as output on top of candidates);
  reasoning = thoughts; input audio = the AUDIO modality of the prompt and tool-use prompt details
  less that of the cached content (cached audio is priced as cached); output audio and image = the
  AUDIO and IMAGE modalities of candidatesTokensDetails.
"""

from collections.abc import Callable, Mapping
from typing import NamedTuple

from django.utils.translation import gettext as _

MAX_TOKENS = 2_147_483_647  # The log's columns are PostgreSQL integers.
SERVER_TOOLS_UNPRICED = (
    "Server tool requests are billed per request and aicost has no price for them, so the call would be "
    "under-counted. Send the usage object without server_tool_use, or the token counts as fields."
)
CACHE_TTL_UNPRICED = (
    "aicost has prices for 5-minute and 1-hour cache writes only, so a write with this time to live cannot "
    "be priced. Send the token counts as fields instead."
)


class TokenCounts(NamedTuple):
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0


class UsageObjectInvalid(ValueError):
    """`path` (e.g. usage.cache_creation.ephemeral_1h_input_tokens) breaks `message`'s rule."""

    def __init__(self, path: str, message: str, code: str = "invalid"):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.code = code


OPENAI_CHAT = "an OpenAI Chat Completions (or DeepSeek) usage object"
OPENAI_RESPONSES = "an OpenAI Responses usage object"
ANTHROPIC = "an Anthropic Messages usage object"
GEMINI = "a Gemini usageMetadata object"
KNOWN_OBJECTS = (
    "Not a usage object aicost knows: give the usage of OpenAI Chat Completions, OpenAI Responses, "
    "Anthropic Messages, DeepSeek, or Gemini's usageMetadata, as the provider returns it."
)


class _Reader:
    """Reads one usage object: every key it reads is marked, the rest are refused at the end."""

    def __init__(self, value, path: str, kind: str):
        if not isinstance(value, Mapping):
            message = f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
            raise UsageObjectInvalid(path, message)
        self.value, self.path, self.kind = value, path, kind
        self.read: set = set()

    def key(self, name: str) -> str:
        """The key as this object spells it."""
        return name

    def _raw(self, name: str):
        key = self.key(name)
        self.read.add(key)
        return self.value.get(key)

    def tokens(self, key: str, *, required: bool = False) -> int:
        value = self._raw(key)
        path = f"{self.path}.{self.key(key)}"
        if value is None:
            if required:
                raise UsageObjectInvalid(path, "This field is required.", "required")
            return 0
        return tokens_checked(path, value)

    def text(self, key: str) -> None:
        """A key that names something (a tier, a region) and carries no tokens."""
        value = self._raw(key)
        if value is not None and not isinstance(value, str):
            raise UsageObjectInvalid(f"{self.path}.{self.key(key)}", "Not a valid string.")

    def child(self, key: str) -> "_Reader | None":
        value = self._raw(key)
        return None if value is None else _Reader(value, f"{self.path}.{self.key(key)}", self.kind)

    def child_list(self, key: str):
        value = self._raw(key)
        return None if value is None else value

    def done(self) -> None:
        for key in self.value:
            if key not in self.read:
                raise UsageObjectInvalid(f"{self.path}.{key}", f"Unknown field of {self.kind}.", "unknown")


def whole_number_checked(path: str, value, *, low: int = 0, high: int = MAX_TOKENS) -> int:
    """value as an int in [low, high], or UsageObjectInvalid in DRF's words (and msgids, so they are
    translated as DRF's are). usage.records checks its own whole numbers with it too."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageObjectInvalid(path, _("A valid integer is required."))
        value = int(value)
    if value < low:
        message = _("Ensure this value is greater than or equal to {min_value}.").format(min_value=low)
        raise UsageObjectInvalid(path, message, "min_value")
    if value > high:
        message = _("Ensure this value is less than or equal to {max_value}.").format(max_value=high)
        raise UsageObjectInvalid(path, message, "max_value")
    return value


def tokens_checked(path: str, value) -> int:
    return whole_number_checked(path, value)


def _within(path: str, part: int, whole_path: str, whole: int) -> None:
    if part > whole:
        raise UsageObjectInvalid(path, f"Cannot exceed {whole_path}.")


def _openai_chat(usage, path: str) -> TokenCounts:
    reader = _Reader(usage, path, OPENAI_CHAT)
    prompt = reader.tokens("prompt_tokens", required=True)
    completion = reader.tokens("completion_tokens")
    reader.tokens("total_tokens")
    cached = input_audio = reasoning = output_audio = written = 0
    details_cached = None
    details = reader.child("prompt_tokens_details")
    if details is not None:
        details_cached = details.value.get("cached_tokens")
        cached = details.tokens("cached_tokens")
        input_audio = details.tokens("audio_tokens")
        written = details.tokens("cache_write_tokens")  # No duration said: priced as 5-minute writes.
        # Text and image input: plain input tokens, counted in prompt_tokens.
        for key in ("text_tokens", "image_tokens"):
            _within(f"{details.path}.{key}", details.tokens(key), f"{path}.prompt_tokens", prompt)
        details.done()
        _within(f"{details.path}.cached_tokens", cached, f"{path}.prompt_tokens", prompt)
        _within(f"{details.path}.audio_tokens", input_audio, f"{path}.prompt_tokens", prompt)
        _within(f"{details.path}.cache_write_tokens", written, f"{path}.prompt_tokens", prompt)
    details = reader.child("completion_tokens_details")
    if details is not None:
        reasoning = details.tokens("reasoning_tokens")
        output_audio = details.tokens("audio_tokens")
        # Predicted output: part of completion_tokens and billed as output there, nothing to add.
        # Text output likewise.
        for key in ("accepted_prediction_tokens", "rejected_prediction_tokens", "text_tokens"):
            _within(f"{details.path}.{key}", details.tokens(key), f"{path}.completion_tokens", completion)
        details.done()
        _within(f"{details.path}.reasoning_tokens", reasoning, f"{path}.completion_tokens", completion)
        _within(f"{details.path}.audio_tokens", output_audio, f"{path}.completion_tokens", completion)
    hit, miss = reader.value.get("prompt_cache_hit_tokens"), reader.value.get("prompt_cache_miss_tokens")
    hit = None if hit is None else reader.tokens("prompt_cache_hit_tokens")
    miss = None if miss is None else reader.tokens("prompt_cache_miss_tokens")
    reader.read.update(("prompt_cache_hit_tokens", "prompt_cache_miss_tokens"))
    reader.done()
    if hit is not None or miss is not None:  # DeepSeek's cache.
        if hit is None or miss is None:
            given, other = ("hit", "miss") if miss is None else ("miss", "hit")
            message = f"Give prompt_cache_hit_tokens and prompt_cache_miss_tokens together (only the {given} was)."
            raise UsageObjectInvalid(f"{path}.prompt_cache_{other}_tokens", message, "required")
        if hit + miss != prompt:
            message = f"prompt_cache_hit_tokens + prompt_cache_miss_tokens must equal prompt_tokens ({prompt})."
            raise UsageObjectInvalid(f"{path}.prompt_cache_hit_tokens", message)
        if details_cached is not None and cached != hit:
            message = "Must equal prompt_tokens_details.cached_tokens: both count the cache hits."
            raise UsageObjectInvalid(f"{path}.prompt_cache_hit_tokens", message)
        cached = hit
    if cached + input_audio > prompt:
        message = "cached_tokens and audio_tokens together cannot exceed prompt_tokens."
        raise UsageObjectInvalid(f"{path}.prompt_tokens_details.audio_tokens", message)
    if cached + input_audio + written > prompt:
        message = "cached_tokens, audio_tokens and cache_write_tokens together cannot exceed prompt_tokens."
        raise UsageObjectInvalid(f"{path}.prompt_tokens_details.cache_write_tokens", message)
    if reasoning + output_audio > completion:
        message = "reasoning_tokens and audio_tokens together cannot exceed completion_tokens."
        raise UsageObjectInvalid(f"{path}.completion_tokens_details.audio_tokens", message)
    return TokenCounts(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cache_write_5m_tokens=written,
        input_audio_tokens=input_audio,
        output_audio_tokens=output_audio,
    )


def _cache_write_durations(details: _Reader, written: int) -> None:
    """Responses' cache_write_tokens_details: writes by time to live (30 minutes, 12 hours). aicost has
    no price for either, so a non-zero count is refused (as server tool requests are) rather than
    priced as a 5-minute write; zeros are accepted."""
    split = details.child("cache_write_tokens_details")
    if split is None:
        return
    for key in ("ttl_30m_tokens", "ttl_12h_tokens"):
        if split.tokens(key):
            raise UsageObjectInvalid(f"{split.path}.{key}", CACHE_TTL_UNPRICED, "unpriced")
    split.done()
    if written:
        message = "ttl_30m_tokens + ttl_12h_tokens must equal cache_write_tokens."
        raise UsageObjectInvalid(f"{split.path}.ttl_30m_tokens", message)


def _openai_responses(usage, path: str) -> TokenCounts:
    reader = _Reader(usage, path, OPENAI_RESPONSES)
    prompt = reader.tokens("input_tokens", required=True)
    completion = reader.tokens("output_tokens")
    reader.tokens("total_tokens")
    cached = reasoning = written = 0
    details = reader.child("input_tokens_details")
    if details is not None:
        cached = details.tokens("cached_tokens")
        written = details.tokens("cache_write_tokens")  # No duration said: priced as 5-minute writes.
        _cache_write_durations(details, written)
        details.done()
        _within(f"{details.path}.cached_tokens", cached, f"{path}.input_tokens", prompt)
        if cached + written > prompt:
            message = "cached_tokens and cache_write_tokens together cannot exceed input_tokens."
            raise UsageObjectInvalid(f"{details.path}.cache_write_tokens", message)
    details = reader.child("output_tokens_details")
    if details is not None:
        reasoning = details.tokens("reasoning_tokens")
        details.done()
        _within(f"{details.path}.reasoning_tokens", reasoning, f"{path}.output_tokens", completion)
    reader.done()
    return TokenCounts(
        prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning, cache_write_5m_tokens=written
    )


def _anthropic(usage, path: str) -> TokenCounts:
    reader = _Reader(usage, path, ANTHROPIC)
    uncached = reader.tokens("input_tokens", required=True)
    completion = reader.tokens("output_tokens")
    written = reader.tokens("cache_creation_input_tokens")
    read = reader.tokens("cache_read_input_tokens")
    write_5m, write_1h = written, 0
    split = reader.child("cache_creation")
    if split is not None:
        write_5m = split.tokens("ephemeral_5m_input_tokens")
        write_1h = split.tokens("ephemeral_1h_input_tokens")
        split.done()
        if usage.get("cache_creation_input_tokens") is not None and write_5m + write_1h != written:
            message = (
                "ephemeral_5m_input_tokens + ephemeral_1h_input_tokens must equal "
                f"cache_creation_input_tokens ({written})."
            )
            raise UsageObjectInvalid(f"{split.path}.ephemeral_1h_input_tokens", message)
    thinking = 0
    output_details = reader.child("output_tokens_details")
    if output_details is not None:  # Extended thinking: part of output_tokens, billed as output.
        thinking = output_details.tokens("thinking_tokens")
        output_details.done()
        _within(f"{output_details.path}.thinking_tokens", thinking, f"{path}.output_tokens", completion)
    tools = reader.child("server_tool_use")
    if tools is not None:  # Requests of server tools: billed per request, which no price here holds.
        for key in ("web_search_requests", "web_fetch_requests"):
            if tools.tokens(key):
                raise UsageObjectInvalid(f"{tools.path}.{key}", SERVER_TOOLS_UNPRICED, "unpriced")
        tools.done()
    for key in ("service_tier", "inference_geo", "speed"):
        reader.text(key)
    reader.done()
    prompt = uncached + write_5m + write_1h + read
    if prompt > MAX_TOKENS:
        message = f"input_tokens with the cache's tokens come to {prompt}, more than {MAX_TOKENS}."
        raise UsageObjectInvalid(f"{path}.input_tokens", message, "max_value")
    return TokenCounts(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=read,
        reasoning_tokens=thinking,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


# Gemini's keys: REST camelCase, and the google-genai SDK's model_dump() in snake_case.
_GEMINI_KEYS = (
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
    "promptTokensDetails",
    "cacheTokensDetails",
    "candidatesTokensDetails",
    "toolUsePromptTokensDetails",
    "trafficType",
)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


_GEMINI_SNAKE = {_snake(key): key for key in _GEMINI_KEYS}
_MODALITIES = frozenset({"MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT"})
# Output modalities with a token kind of their own; TEXT is plain output.
_OUTPUT_KINDS = {"AUDIO": "output_audio_tokens", "IMAGE": "output_image_tokens"}
_PLAIN_OUTPUT = frozenset({"TEXT", "MODALITY_UNSPECIFIED"})


class _GeminiReader(_Reader):
    """Reads keys by their camelCase name, whichever spelling the object uses."""

    def __init__(self, value, path: str, kind: str, snake: bool):
        super().__init__(value, path, kind)
        self.snake = snake

    def key(self, name: str) -> str:
        return _snake(name) if self.snake else name


def _modalities(reader: _GeminiReader, name: str, total_path: str, total: int) -> dict[str, int]:
    """Tokens per modality of a details list ([{"modality": "AUDIO", "tokenCount": 12}, ...])."""
    entries = reader.child_list(name)
    path = f"{reader.path}.{reader.key(name)}"
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise UsageObjectInvalid(path, f'Expected a list of items but got type "{type(entries).__name__}".')
    count_key = reader.key("tokenCount")
    by_modality: dict[str, int] = {}
    for index, entry in enumerate(entries):
        item = _Reader(entry, f"{path}[{index}]", GEMINI)
        modality = item.value.get("modality")
        item.read.add("modality")
        if not isinstance(modality, str) or modality not in _MODALITIES:
            known = ", ".join(sorted(_MODALITIES))
            raise UsageObjectInvalid(f"{item.path}.modality", f"Must be one of {known}.")
        by_modality[modality] = by_modality.get(modality, 0) + item.tokens(count_key)
        item.done()
    for modality, count in by_modality.items():
        if count > total:
            raise UsageObjectInvalid(path, f"The {modality} tokens ({count}) exceed {total_path} ({total}).")
    return by_modality


def _gemini(usage, path: str) -> TokenCounts:
    snake = isinstance(usage, Mapping) and any(key in _GEMINI_SNAKE for key in usage)
    reader = _GeminiReader(usage, path, GEMINI, snake)
    key_path = lambda name: f"{path}.{reader.key(name)}"  # noqa: E731
    prompt = reader.tokens("promptTokenCount", required=True)
    cached = reader.tokens("cachedContentTokenCount")
    candidates = reader.tokens("candidatesTokenCount")
    thoughts = reader.tokens("thoughtsTokenCount")
    tool_prompt = reader.tokens("toolUsePromptTokenCount")
    reader.tokens("totalTokenCount")
    reader.text("trafficType")
    _within(key_path("cachedContentTokenCount"), cached, key_path("promptTokenCount"), prompt)
    prompt_by = _modalities(reader, "promptTokensDetails", key_path("promptTokenCount"), prompt)
    cache_by = _modalities(reader, "cacheTokensDetails", key_path("cachedContentTokenCount"), cached)
    tool_by = _modalities(reader, "toolUsePromptTokensDetails", key_path("toolUsePromptTokenCount"), tool_prompt)
    output_by = _modalities(reader, "candidatesTokensDetails", key_path("candidatesTokenCount"), candidates)
    reader.done()
    input_audio = prompt_by.get("AUDIO", 0) + tool_by.get("AUDIO", 0) - cache_by.get("AUDIO", 0)
    if input_audio < 0:
        message = "The cached AUDIO tokens exceed the prompt's AUDIO tokens."
        raise UsageObjectInvalid(key_path("cacheTokensDetails"), message)
    if cached + input_audio > prompt + tool_prompt:
        message = (
            "The cached tokens and the uncached AUDIO tokens together exceed the prompt: "
            "cacheTokensDetails must say which cached tokens are AUDIO."
        )
        raise UsageObjectInvalid(key_path("cacheTokensDetails"), message)
    kinds = {"output_audio_tokens": 0, "output_image_tokens": 0}
    for modality, count in output_by.items():
        if modality in _OUTPUT_KINDS:
            kinds[_OUTPUT_KINDS[modality]] = count
        elif modality not in _PLAIN_OUTPUT:
            message = f"{modality} output has no price of its own in aicost; it cannot be priced as text."
            raise UsageObjectInvalid(key_path("candidatesTokensDetails"), message)
    if kinds["output_audio_tokens"] + kinds["output_image_tokens"] > candidates:
        message = f"The AUDIO and IMAGE tokens together exceed {key_path('candidatesTokenCount')} ({candidates})."
        raise UsageObjectInvalid(key_path("candidatesTokensDetails"), message)
    total_prompt, completion = prompt + tool_prompt, candidates + thoughts
    for name, value in (("promptTokenCount", total_prompt), ("candidatesTokenCount", completion)):
        if value > MAX_TOKENS:
            raise UsageObjectInvalid(key_path(name), f"The total comes to more than {MAX_TOKENS}.", "max_value")
    return TokenCounts(
        prompt_tokens=total_prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=thoughts,
        input_audio_tokens=input_audio,
        **kinds,
    )


_CHAT_KEYS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "prompt_cache_hit_tokens",
        "prompt_cache_miss_tokens",
    }
)
_ANTHROPIC_KEYS = frozenset(
    {
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "server_tool_use",
        "service_tier",
        "inference_geo",
        "speed",
    }
)
_RESPONSES_KEYS = frozenset({"input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"})
# prompt_tokens_details is a Chat Completions key as well as Gemini's in snake_case: the other keys decide.
_GEMINI_ALL = (frozenset(_GEMINI_KEYS) | frozenset(_GEMINI_SNAKE)) - _CHAT_KEYS


def usage_object_kind(usage: Mapping) -> Callable[[Mapping, str], TokenCounts] | None:
    """The mapping of the provider whose keys `usage` carries (keys, whatever their values: an SDK's
    model_dump() gives None for what a call did not use), or None. Objects with only input_tokens and
    output_tokens read the same as Responses and as Anthropic objects."""
    keys = set(usage)
    if keys & _GEMINI_ALL:
        return _gemini
    if keys & _CHAT_KEYS:
        return _openai_chat
    if keys & _ANTHROPIC_KEYS:
        return _anthropic
    if keys & _RESPONSES_KEYS:
        return _openai_responses
    return None


def usage_object_tokens(usage, *, path: str = "usage") -> TokenCounts:
    """The token counts of a provider's usage object, or UsageObjectInvalid naming the key."""
    if not isinstance(usage, Mapping):
        message = f"Invalid data. Expected a dictionary, but got {type(usage).__name__}."
        raise UsageObjectInvalid(path, message)
    mapping = usage_object_kind(usage)
    if mapping is None:
        raise UsageObjectInvalid(path, KNOWN_OBJECTS, "unknown_usage_object")
    return mapping(usage, path)
