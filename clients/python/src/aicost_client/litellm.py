"""A LiteLLM callback that records every call, success or failure, sync or async:

    import litellm
    from aicost_client.litellm import AicostLogger

    litellm.callbacks = [AicostLogger(client)]
    litellm.completion(model="gpt-4o-mini", messages=[...], metadata={"decision_id": "order-1234", "user_id": 42})

LiteLLM hands callbacks its own OpenAI-shaped usage (every provider's, cache tokens folded into
prompt_tokens), not the provider's object, so it is read here into aicost's token fields."""

from __future__ import annotations

from datetime import UTC, datetime

from litellm.integrations.custom_logger import CustomLogger

from aicost_client._core import MAX_KEY, logger
from aicost_client.providers import default_client

METADATA_FIELDS = ("decision_id", "user_id", "purpose")


def _get(obj, name: str):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_fields(usage) -> dict:
    """aicost's token fields from LiteLLM's Usage (OpenAI's inclusive convention, as aicost's)."""
    prompt, completion = _count(_get(usage, "prompt_tokens")), _count(_get(usage, "completion_tokens"))
    fields = {"prompt_tokens": prompt, "completion_tokens": completion}
    prompt_details, completion_details = _get(usage, "prompt_tokens_details"), _get(usage, "completion_tokens_details")
    cached = _count(_get(prompt_details, "cached_tokens"))
    written = _count(_get(prompt_details, "cache_write_tokens")) or _count(
        _get(prompt_details, "cache_creation_tokens") or _get(usage, "cache_creation_input_tokens")
    )
    split = _get(prompt_details, "cache_creation_token_details")
    written_1h = min(written, _count(_get(split, "ephemeral_1h_input_tokens")))
    parts = {
        "cached_tokens": cached,
        # Writes of no stated duration (or a duration aicost has no price for) are 5-minute writes.
        "cache_write_5m_tokens": written - written_1h,
        "cache_write_1h_tokens": written_1h,
        "input_audio_tokens": _count(_get(prompt_details, "audio_tokens")),
        "reasoning_tokens": _count(_get(completion_details, "reasoning_tokens")),
        "output_audio_tokens": _count(_get(completion_details, "audio_tokens")),
        "output_image_tokens": _count(_get(completion_details, "image_tokens")),
    }
    fields.update({name: value for name, value in parts.items() if value})
    return fields


def _seconds(start, end) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, (end - start).total_seconds())
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(0.0, float(end - start))
    return None


def _moment(start) -> datetime | None:
    if isinstance(start, datetime):
        return start if start.utcoffset() is not None else start.astimezone(UTC)  # LiteLLM's are local, naive.
    if isinstance(start, int | float):
        return datetime.fromtimestamp(start, UTC)
    return None


class AicostLogger(CustomLogger):
    """Records each LiteLLM call: model, tokens, response time, success or the error, and
    decision_id / user_id / purpose from the call's `metadata` (names configurable: `metadata_keys`,
    aicost field -> metadata key). Sends through `client` (default: aicost_client.default_client())."""

    def __init__(self, client=None, *, metadata_keys: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.metadata_keys = {name: name for name in METADATA_FIELDS} | (metadata_keys or {})

    def record_fields(self, kwargs: dict, response_obj, start_time, end_time, *, success: bool) -> dict:
        """The record of one call, from what LiteLLM passes a callback."""
        logged = kwargs.get("standard_logging_object") or {}
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") or kwargs.get("metadata") or {}
        model = _get(response_obj, "model") if success else None
        model = model or logged.get("model") or kwargs.get("model") or "unknown"
        usage = _get(response_obj, "usage") if success else None
        if usage is not None:
            fields = usage_fields(usage)
        else:
            fields = {
                "prompt_tokens": _count(logged.get("prompt_tokens")),
                "completion_tokens": _count(logged.get("completion_tokens")),
            }
        fields["model_name"] = str(model)[:MAX_KEY]
        response_time = logged.get("response_time")
        if not isinstance(response_time, int | float) or isinstance(response_time, bool):
            response_time = _seconds(start_time, end_time)
        if response_time is not None:
            fields["response_time"] = float(response_time)
        moment = _moment(start_time)
        if moment is not None:
            fields["timestamp"] = moment
        call_id = logged.get("id") or kwargs.get("litellm_call_id")
        if isinstance(call_id, str) and 0 < len(call_id) <= MAX_KEY:
            fields["idempotency_key"] = call_id
        if not success:
            fields["success"] = False
            error = kwargs.get("exception") or logged.get("error_str") or "failed"
            fields["error_message"] = str(error)[:10_000]
        for name, key in self.metadata_keys.items():
            value = metadata.get(key) if isinstance(metadata, dict) else None
            if value is not None and value != "":
                fields[name] = int(value) if name == "user_id" and str(value).isdigit() else value
        return fields

    def _record(self, kwargs, response_obj, start_time, end_time, *, success: bool) -> None:
        try:
            fields = self.record_fields(kwargs, response_obj, start_time, end_time, success=success)
            (self.client or default_client()).record(**fields)
        except Exception:  # A callback must never break the caller's LLM call.
            logger.exception("aicost: could not record a LiteLLM call")

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, response_obj, start_time, end_time, success=True)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, response_obj, start_time, end_time, success=False)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, response_obj, start_time, end_time, success=True)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record(kwargs, response_obj, start_time, end_time, success=False)
