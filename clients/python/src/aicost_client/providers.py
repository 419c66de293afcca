"""Records from the official SDKs' response objects (the `openai` and `anthropic` packages).

The provider's usage object goes to aicost as it is (`usage=response.usage.model_dump()`): the
server's mapping (usage/usage_objects.py) is the one rule for what each token kind costs. These
helpers only find the usage object, the model, the call's id (the idempotency key, so recording the
same response twice stores it once) and its moment."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import Any

from aicost_client._core import MAX_KEY

_default = None
_default_lock = threading.Lock()


def configure(client) -> None:
    """Make `client` (an AicostClient or AsyncAicostClient) the one record_openai() & co. use by default."""
    global _default
    with _default_lock:
        _default = client


def default_client():
    """The configured client, else an AicostClient from AICOST_URL and AICOST_API_KEY (made once)."""
    global _default
    if _default is not None:
        return _default
    with _default_lock:
        if _default is None:
            url, key = os.environ.get("AICOST_URL"), os.environ.get("AICOST_API_KEY")
            if not url or not key:
                raise RuntimeError(
                    "No aicost client: pass client=..., call aicost_client.configure(client), "
                    "or set AICOST_URL and AICOST_API_KEY"
                )
            from aicost_client.client import AicostClient

            _default = AicostClient(url, key)
        return _default


def _get(obj, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _dump(usage) -> dict:
    if isinstance(usage, dict):
        return usage
    if hasattr(usage, "model_dump"):
        return usage.model_dump()
    if hasattr(usage, "to_dict"):
        return usage.to_dict()
    raise TypeError(f"Not a usage object: {type(usage).__name__}")


def _key(value) -> str:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_KEY else ""


def _moment(seconds) -> datetime | None:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return datetime.fromtimestamp(seconds, UTC)
    return None


def _call_fields(extra: dict, **found) -> dict:
    """The record: what the response says, under what the caller passes (None means not given)."""
    fields = {name: value for name, value in found.items() if value not in (None, "")}
    fields.update({name: value for name, value in extra.items() if value is not None})
    return fields


def openai_record(response: Any, **fields) -> dict:
    """The record fields of an OpenAI response: a Chat Completions `ChatCompletion`, a stream's final
    `ChatCompletionChunk` (the one with usage: `stream_options={"include_usage": True}`), a Responses
    API `Response`, or a stream's `response.completed` event (any object with `.response`). Plain
    dicts of the same JSON work too."""
    if _get(response, "usage") is None and _get(response, "response") is not None:
        response = _get(response, "response")  # ResponseCompletedEvent & co.
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError(
            "This OpenAI object carries no usage. For a stream, pass the final chunk (request it with "
            'stream_options={"include_usage": True}) or the Responses stream\'s response.completed event.'
        )
    status = _get(response, "status")  # Responses API: completed, failed, incomplete, ...
    error = _get(response, "error")
    success = status != "failed"
    error_message = ""
    if not success:
        error_message = str(_get(error, "message") or _get(error, "code") or "failed")
    return _call_fields(
        fields,
        model_name=_get(response, "model"),
        usage=_dump(usage),
        idempotency_key=_key(_get(response, "id")),
        timestamp=_moment(_get(response, "created") or _get(response, "created_at")),
        success=None if success else False,
        error_message=error_message,
    )


def anthropic_record(message: Any, **fields) -> dict:
    """The record fields of an Anthropic `Message` (from messages.create, or a stream's
    get_final_message(); a MessageStream itself works too), cache writes and reads included."""
    if _get(message, "usage") is None and hasattr(message, "get_final_message"):
        message = message.get_final_message()
    usage = _get(message, "usage")
    if usage is None:
        raise ValueError("This Anthropic object carries no usage: pass the Message (or stream.get_final_message()).")
    return _call_fields(
        fields,
        model_name=_get(message, "model"),
        usage=_dump(usage),
        idempotency_key=_key(_get(message, "id")),
    )


def record_openai(
    response: Any,
    *,
    client=None,
    decision_id: str | None = None,
    user_id: int | None = None,
    purpose: str | None = None,
    **fields,
) -> None:
    """Record one OpenAI call from the response the SDK returned (see openai_record). Extra fields
    (response_time, model_name, idempotency_key, timestamp, ...) win over what the response says."""
    record = openai_record(response, decision_id=decision_id, user_id=user_id, purpose=purpose, **fields)
    (client or default_client()).record(**record)


def record_anthropic(
    message: Any,
    *,
    client=None,
    decision_id: str | None = None,
    user_id: int | None = None,
    purpose: str | None = None,
    **fields,
) -> None:
    """Record one Anthropic Messages call from the Message the SDK returned (see anthropic_record)."""
    record = anthropic_record(message, decision_id=decision_id, user_id=user_id, purpose=purpose, **fields)
    (client or default_client()).record(**record)
