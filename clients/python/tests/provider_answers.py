"""Each provider's documented response JSON (API references: the chat completion object and its
streamed chunks, the Responses object and its response.completed event, the Anthropic Message and
its stream events), served to the real SDKs through httpx2.MockTransport: the SDK objects the tests
record are the ones the SDKs build. No network is used."""

from __future__ import annotations

import copy
import json

import anthropic
import httpx2
import openai

CHAT_COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1764500000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_44709d6fcb",
}


def _chunk(delta: dict, *, finish=None, choices=True, usage=None) -> dict:
    chunk = {
        "id": "chatcmpl-stream-7",
        "object": "chat.completion.chunk",
        "created": 1764500100,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }
    return chunk


CHAT_STREAM = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Par"}),
    _chunk({"content": "is."}),
    _chunk({}, finish="stop"),
    _chunk(
        {},
        choices=False,
        usage={
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
    ),
]

RESPONSE = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    "object": "response",
    "created_at": 1764500200,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd3acc8d48190a77525dc6de64b4104becb25c45c1d41",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": "medium", "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 1328,
        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0},
        "output_tokens": 852,
        "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 2180,
    },
    "user": None,
    "metadata": {},
}

MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Paris."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 248,
        "cache_read_input_tokens": 100000,
        "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}


def message_stream_events() -> list[tuple[str, dict]]:
    """The Messages streaming events: usage in message_start (input and cache), output in message_delta."""
    start = copy.deepcopy(MESSAGE)
    start.update(id="msg_stream_01", content=[], stop_reason=None)
    start["usage"] = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1,
        "service_tier": "standard",
    }
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Paris."}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def response_stream_events() -> list[tuple[str, dict]]:
    created = copy.deepcopy(RESPONSE)
    created.update(status="in_progress", output=[], usage=None)
    return [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Paris.",
                "logprobs": [],
            },
        ),
        ("response.completed", {"type": "response.completed", "sequence_number": 2, "response": RESPONSE}),
    ]


def _sse(events, *, named: bool, done: bool = False) -> bytes:
    lines = []
    for name, data in events:
        if named:
            lines.append(f"event: {name}")
        lines.append(f"data: {json.dumps(data)}")
        lines.append("")
    if done:
        lines += ["data: [DONE]", ""]
    return ("\n".join(lines) + "\n").encode()


def _handler(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content) if request.content else {}
    path = request.url.path
    stream = body.get("stream")
    if path.endswith("/chat/completions"):
        if stream:
            return httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=_sse([("", c) for c in CHAT_STREAM], named=False, done=True),
            )
        return httpx2.Response(200, json=CHAT_COMPLETION)
    if path.endswith("/responses"):
        if stream:
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=_sse(response_stream_events(), named=True)
            )
        return httpx2.Response(200, json=RESPONSE)
    if path.endswith("/messages"):
        if stream:
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=_sse(message_stream_events(), named=True)
            )
        return httpx2.Response(200, json=MESSAGE)
    return httpx2.Response(404, json={"error": {"message": f"no such path {path}"}})


def openai_sdk() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(_handler))
    )


def anthropic_sdk() -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(_handler))
    )


QUESTION = [{"role": "user", "content": "The capital of France?"}]


def chat_completion():
    return openai_sdk().chat.completions.create(model="gpt-4o-mini", messages=QUESTION)


def chat_stream_final_chunk():
    chunks = list(
        openai_sdk().chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
    )
    return chunks


def response():
    return openai_sdk().responses.create(model="gpt-4.1", input="The capital of France?")


def response_stream_events_received():
    return list(openai_sdk().responses.create(model="gpt-4.1", input="The capital of France?", stream=True))


def message():
    return anthropic_sdk().messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=QUESTION)


def message_streamed():
    with anthropic_sdk().messages.stream(model="claude-sonnet-4-5", max_tokens=1024, messages=QUESTION) as stream:
        for _text in stream.text_stream:
            pass
        return stream.get_final_message()
