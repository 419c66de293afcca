"""ingest.otlp: decoding OTLP/HTTP bodies and mapping GenAI spans onto usage records (no database)."""

import gzip
import json
import zlib

import pytest

from ingest.otlp import (
    JSON,
    PROTOBUF,
    OtlpMapping,
    OtlpPayloadInvalid,
    OtlpPayloadTooLarge,
    body_decompressed,
    export_request_decoded,
    spans_mapped,
)
from tests.otlp_helpers import START, chat, export, span

MAPPING = OtlpMapping(
    decision_id_keys=("aicost.decision_id",),
    user_id_keys=("aicost.user_id", "user.id", "enduser.id"),
    purpose_keys=("aicost.purpose", "gen_ai.operation.name"),
    ignored_operations=frozenset({"invoke_agent", "execute_tool"}),
)
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def _one(attributes: dict, **kwargs):
    mapped = spans_mapped(export(span(attributes, trace_id=TRACE, span_id=SPAN, **kwargs)), mapping=MAPPING)
    assert (mapped.ignored, mapped.rejected) == (0, [])
    [spanned] = mapped.records
    return spanned.record


def test_a_chat_span_becomes_a_record_with_every_field():
    record = _one(
        chat(
            "gpt-4o",
            1200,
            300,
            **{
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.usage.cache_creation.input_tokens": 100,
                "gen_ai.usage.reasoning.output_tokens": 64,
                "aicost.decision_id": "order-7",
                "user.id": 42,
                "aicost.purpose": "summarise",
            },
        ),
        seconds=2.25,
    )
    assert record.model_name == "gpt-4o-2024-08-06"  # The model that answered (the request's is gpt-4o).
    assert (record.prompt_tokens, record.completion_tokens) == (1200, 300)
    assert (record.cached_tokens, record.cache_write_5m_tokens, record.reasoning_tokens) == (1024, 100, 64)
    assert (record.decision_id, record.idempotency_key) == ("order-7", SPAN.hex())
    assert (record.user_id, record.purpose) == (42, "summarise")
    assert (record.success, record.error_message) == (True, "")
    assert record.response_time == 2.25
    assert record.timestamp == START


def test_without_mapped_ids_the_trace_id_is_the_decision_and_the_operation_the_purpose():
    record = _one(chat())
    assert (record.model_name, record.decision_id, record.idempotency_key) == ("gpt-4o-mini", TRACE.hex(), SPAN.hex())
    assert (record.user_id, record.purpose) == (None, "chat")


def test_older_attribute_names_are_read():
    record = _one(
        {
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.prompt_tokens": 500,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.usage.cache_read_input_tokens": 300,
            "gen_ai.usage.cache_creation_input_tokens": 100,
            "enduser.id": "17",
        }
    )
    assert (record.prompt_tokens, record.completion_tokens) == (500, 20)
    assert (record.cached_tokens, record.cache_write_5m_tokens) == (300, 100)
    assert (record.user_id, record.purpose) == (17, "")


def test_the_resource_gives_what_the_span_does_not():
    mapped = spans_mapped(
        export(span(chat(**{"aicost.purpose": "span's"})), resource={"aicost.purpose": "resource's", "user.id": 5}),
        mapping=MAPPING,
    )
    record = mapped.records[0].record
    assert (record.purpose, record.user_id) == ("span's", 5)


def test_an_error_status_is_a_failed_call_with_its_message():
    record = _one(chat(input_tokens=0, output_tokens=0), error="Rate limit reached")
    assert (record.success, record.error_message) == (False, "Rate limit reached")
    record = _one({**chat(), "error.type": "RateLimitError"}, error="")
    assert (record.success, record.error_message) == (False, "RateLimitError")


def test_a_user_id_that_is_not_a_whole_number_is_left_out_with_a_warning():
    mapped = spans_mapped(export(span(chat(**{"user.id": "alice"}), span_id=SPAN)), mapping=MAPPING)
    assert mapped.records[0].record.user_id is None
    assert mapped.warnings == [f'span {SPAN.hex()}: user.id "alice" is not a whole number; stored without user_id.']


def test_whole_doubles_are_token_counts_and_fractions_stay_for_the_rules_to_refuse():
    record = _one(chat(input_tokens=10, **{"gen_ai.usage.output_tokens": 7.0}))
    assert record.completion_tokens == 7
    assert type(record.completion_tokens) is int
    record = _one(chat(**{"gen_ai.usage.output_tokens": 7.5}))
    assert record.completion_tokens == 7.5


def test_spans_without_a_genai_call_are_ignored_and_tokens_without_a_model_rejected():
    mapped = spans_mapped(
        export(
            span({"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat"}, name="POST"),
            span(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 9,
                }
            ),
            span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
            span({"gen_ai.usage.input_tokens": 10}, span_id=SPAN),
            span(chat()),
        ),
        mapping=MAPPING,
    )
    assert (len(mapped.records), mapped.ignored) == (1, 3)
    assert mapped.rejected == [
        f"span {SPAN.hex()}: has token counts but no gen_ai.response.model or gen_ai.request.model, "
        "so it cannot be priced."
    ]


def test_protobuf_and_otlp_json_decode_to_the_same_request():
    request = export(span(chat(), trace_id=TRACE, span_id=SPAN))
    from_protobuf = export_request_decoded(request.SerializeToString(), content_type=PROTOBUF)
    assert from_protobuf == request
    # OTLP JSON as the specification writes it: hex ids (either case), integer enums, int64 as strings.
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "test"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE.hex().upper(),
                                "spanId": SPAN.hex(),
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(
                                    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano
                                ),
                                "endTimeUnixNano": request.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano,
                                "attributes": [
                                    {
                                        "key": key,
                                        "value": {"intValue": str(value)}
                                        if isinstance(value, int)
                                        else {"stringValue": value},
                                    }
                                    for key, value in chat().items()
                                ],
                                "status": {},
                                "aFieldFromTheFuture": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    from_json = export_request_decoded(json.dumps(document).encode(), content_type=JSON)
    assert from_json == request
    assert spans_mapped(from_json, mapping=MAPPING).records[0].record.idempotency_key == SPAN.hex()


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"\xff\xff\xff", PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", JSON, "not valid JSON"),
        (b"[]", JSON, "must be a JSON object"),
        (b'{"resourceSpans": {}}', JSON, "resourceSpans must be an array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, "traceId is not hex-encoded"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": [1]}]}]}]}', JSON, "not an OTLP JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            JSON,
            "not an OTLP JSON",
        ),
    ],
)
def test_undecodable_bodies_are_refused_with_a_reason(body, content_type, says):
    with pytest.raises(OtlpPayloadInvalid, match=says):
        export_request_decoded(body, content_type=content_type)


def test_gzip_and_deflate_bodies_are_inflated_within_the_limit():
    data = export(span(chat())).SerializeToString()
    assert body_decompressed(gzip.compress(data), content_encoding="gzip", limit=10_000) == data
    assert body_decompressed(zlib.compress(data), content_encoding="deflate", limit=10_000) == data
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert body_decompressed(raw.compress(data) + raw.flush(), content_encoding="deflate", limit=10_000) == data
    assert body_decompressed(data, content_encoding="identity", limit=10_000) == data
    with pytest.raises(OtlpPayloadTooLarge):
        body_decompressed(gzip.compress(b"\0" * 100_000), content_encoding="gzip", limit=10_000)  # A small bomb.
    with pytest.raises(OtlpPayloadInvalid, match="not valid gzip"):
        body_decompressed(data, content_encoding="gzip", limit=10_000)
    with pytest.raises(OtlpPayloadInvalid, match="not valid gzip"):
        body_decompressed(gzip.compress(data)[:-12], content_encoding="gzip", limit=10_000)  # Truncated.
