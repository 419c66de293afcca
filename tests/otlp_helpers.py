"""OTLP export requests for tests, built from the opentelemetry-proto messages exporters send."""

import os
from datetime import UTC, datetime

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
START_NANOS = int(START.timestamp()) * 10**9


def any_value(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def key_values(attributes: dict) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(
    attributes: dict,
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    start: int = START_NANOS,
    seconds: float = 1.5,
    error: str | None = None,
    name: str = "chat",
) -> Span:
    status = Status(code=Status.STATUS_CODE_ERROR, message=error) if error is not None else Status()
    return Span(
        trace_id=trace_id or os.urandom(16),
        span_id=span_id or os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(seconds * 10**9),
        attributes=key_values(attributes),
        status=status,
    )


def export(*spans: Span, resource: dict | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": "test", **(resource or {})}))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def chat(model: str = "gpt-4o-mini", input_tokens: int = 1000, output_tokens: int = 500, **more) -> dict:
    """A chat span's GenAI attributes, as the OpenAI instrumentation writes them."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        **more,
    }
