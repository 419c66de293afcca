"""OpenTelemetry end to end: the real openai SDK, instrumented by opentelemetry-instrumentation-openai-v2,
its spans exported by the real opentelemetry-sdk with opentelemetry-exporter-otlp-proto-http to a live
gunicorn. Only OpenAI's answer is canned (httpx's MockTransport returning the documented JSON)."""

import base64
import http.client
import json
import urllib.request
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageCounter, UsageLog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# OpenAI's documented Chat Completions answer (API reference, "The chat completion object").
CHAT_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 10,
        "total_tokens": 2016,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}
RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM).",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


def _openai_answer(request: httpx2.Request) -> httpx2.Response:
    if json.loads(request.content)["messages"][0]["content"] == "too much":
        return httpx2.Response(429, json=RATE_LIMITED)
    return httpx2.Response(200, json=CHAT_COMPLETION)


@pytest.fixture
def instrumented():
    """A tracer provider whose spans also land in memory (to export them again), the OpenAI SDK
    instrumented with it, and a client whose transport answers as OpenAI's API documents."""
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(
        api_key="sk-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(_openai_answer))
    )
    try:
        yield provider, memory, client
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def _calls(provider: TracerProvider, client: openai.OpenAI) -> str:
    """A request handler's span around two model calls, one answered and one refused; its trace id."""
    tracer = provider.get_tracer("checkout")
    with tracer.start_as_current_span("POST /checkout", attributes={"http.request.method": "POST"}) as parent:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "too much"}])
    return format(parent.get_span_context().trace_id, "032x")


def _stored():
    return [
        (
            log.model_name,
            log.prompt_tokens,
            log.cached_tokens,
            log.completion_tokens,
            log.success,
            log.cost_source,
            log.decision_id,
            log.purpose,
        )
        for log in UsageLog.objects.order_by("success", "id")
    ]


def test_spans_of_the_instrumented_openai_sdk_are_stored_priced_exactly_once(instrumented, monkeypatch):
    provider, memory, client = instrumented
    _key, raw_key = api_key_create(name="otel", scope=ApiKeyScope.WRITE_USAGE)
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1) as url:
        # How the README configures an exporter: the endpoint and the header from the environment.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{raw_key}")
        exporter = OTLPSpanExporter(compression=Compression.Gzip)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace_id = _calls(provider, client)
        assert provider.force_flush(10_000)
        assert len(memory.get_finished_spans()) == 3
        stored = _stored()
        # An exporter that lost the answer sends the same spans again: nothing is stored twice.
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
        assert _stored() == stored
        # Counted over gunicorn's workers (prometheus_client's multiprocess mode).
        metrics = _get(f"{url}/metrics", api_key_create(name="scraper", scope=ApiKeyScope.READ)[1])
    for outcome, count in (("stored", 2), ("duplicate", 2), ("ignored", 2)):
        assert f'aicost_otlp_spans_total{{outcome="{outcome}"}} {count}.0' in metrics, metrics
    failed, answered = stored
    # The response model (a dated snapshot the seed prices know no alias for) is priced as the request's.
    # The instrumentation reports no cached tokens (gen_ai.usage.cache_read.input_tokens): all 2006 are input.
    assert answered == ("gpt-4o-mini", 2006, 0, 10, True, "computed", trace_id, "chat")
    assert failed == ("gpt-4o-mini", 0, 0, 0, False, "computed", trace_id, "chat")
    log = UsageLog.objects.get(success=True)
    # 2006 input tokens at 0.15 and 10 output at 0.60 per million.
    assert str(log.cost.normalize()) == "0.0003069"
    assert log.response_time > 0
    assert UsageLog.objects.get(success=False).error_message == (
        "Error code: 429 - Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM)."
    )
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 2


def test_otlp_json_of_the_same_spans_through_gunicorn(instrumented):
    provider, memory, client = instrumented
    _key, raw_key = api_key_create(name="otel-json", scope=ApiKeyScope.WRITE_USAGE)
    trace_id = _calls(provider, client)
    document = json_format.MessageToDict(encode_spans(memory.get_finished_spans()))
    for resource_spans in document["resourceSpans"]:  # OTLP JSON: hex ids, not proto3's base64.
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    body = json.dumps(document).encode()
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1) as url:
        answers = [_post_json(f"{url}/v1/traces", body, raw_key) for _ in range(2)]
    assert answers == [(200, "application/json", {}), (200, "application/json", {})]
    assert [row[:6] for row in _stored()] == [
        ("gpt-4o-mini", 0, 0, 0, False, "computed"),
        ("gpt-4o-mini", 2006, 0, 10, True, "computed"),
    ]
    assert {row[6] for row in _stored()} == {trace_id}


def _get(url: str, key: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Api-Key {key}"})  # noqa: S310 -- loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback http://
        return response.read().decode()


def _post_json(url: str, body: bytes, key: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(  # noqa: S310 -- loopback http://
        url, data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback http://
        return response.status, response.headers["Content-Type"], json.loads(response.read())


def test_a_chunked_export_is_read_to_its_end():
    """An exporter that streams its body (Transfer-Encoding: chunked, no Content-Length)."""
    from tests.otlp_helpers import chat, export, span

    _key, raw_key = api_key_create(name="otel-chunked", scope=ApiKeyScope.WRITE_USAGE)
    body = export(*(span(chat()) for _ in range(40))).SerializeToString()
    chunks = [body[start : start + 1000] for start in range(0, len(body), 1000)]
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {raw_key}"}
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1) as url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("POST", "/v1/traces", body=iter(chunks), headers=headers, encode_chunked=True)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        connection.close()
    assert len(chunks) > 1
    assert UsageLog.objects.count() == 40
