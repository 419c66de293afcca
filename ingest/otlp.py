"""OpenTelemetry traces as usage records: decoding OTLP/HTTP export requests (binary protobuf or the
OTLP JSON encoding, plain, gzip or deflate) and mapping spans that carry GenAI semantic-convention
attributes (gen_ai.*) onto UsageRecordInput. Pure functions: ingest.services stores what they give,
through the same service as POST /api/v1/usage/, so pricing, exactly-once and the rules are the same.

A span is a model call when it names a model (gen_ai.response.model or gen_ai.request.model) and its
gen_ai.operation.name is not one of the operations that only group calls (agents, tools, retrieval,
memory: their tokens, if any, are the sums of the calls below them). A span with token counts but no
model is rejected (it cannot be priced); every other span is ignored.

Mapping (semantic conventions for GenAI spans; older and widespread spellings after the current one):
- model_name: gen_ai.response.model (the model that answered, as billed), else gen_ai.request.model;
  aicost keeps it as the name as sent (sent_model_name) and counts it under the priced model it matches.
  When the price book matches the request model but not the response model (a dated snapshot such as
  gpt-4o-mini-2024-07-18 without an alias or pattern), ingest.services records the request model.
- prompt_tokens: gen_ai.usage.input_tokens (inclusive of cached tokens, as the conventions say and as
  aicost counts), gen_ai.usage.prompt_tokens; completion_tokens: gen_ai.usage.output_tokens,
  gen_ai.usage.completion_tokens.
- cached_tokens: gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cache_read_input_tokens;
  cache_write_5m_tokens (a cache write whose duration is not said): gen_ai.usage.cache_creation.input_tokens,
  gen_ai.usage.cache_creation_input_tokens; reasoning_tokens: gen_ai.usage.reasoning.output_tokens.
- success: the span's status is not ERROR; error_message: the status message, else error.type.
- response_time: end - start, in seconds; timestamp: the start (when the call was made).
- decision_id, user_id, purpose: the first of the configured attribute keys the span (else its
  resource) has (AICOST_OTLP_*_ATTRIBUTES); decision_id defaults to the trace id.
- idempotency_key: the span id, so a re-sent export (same trace and span ids) is stored once.
"""

import base64
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from prometheus_client import Counter

from usage.records import UsageRecordInput

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CONTENT_TYPES = (PROTOBUF, JSON)
CONTENT_ENCODINGS = ("identity", "gzip", "deflate")

REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
OPERATION = "gen_ai.operation.name"
ERROR_TYPE = "error.type"
# record field -> attribute keys, current convention first.
TOKEN_ATTRIBUTES = {
    "prompt_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "completion_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_5m_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens",),
}
TOKEN_KEYS = frozenset(key for keys in TOKEN_ATTRIBUTES.values() for key in keys)
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")

# What became of each span received (per process; gunicorn's workers are added up at scrape, see
# dashboard.metrics): stored, duplicate (re-sent, stored before), rejected (partial_success), ignored
# (no GenAI model call: HTTP, database, agent and tool spans).
SPANS_RECEIVED = Counter(
    "aicost_otlp_spans",
    "Spans received on POST /v1/traces, by outcome: stored, duplicate, rejected, ignored (no GenAI model call).",
    ["outcome"],
)


class OtlpPayloadInvalid(Exception):
    """The body cannot be decoded as an ExportTraceServiceRequest (a 400 with a google.rpc.Status)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class OtlpPayloadTooLarge(OtlpPayloadInvalid):
    """The body, once decompressed, is larger than AICOST_OTLP_MAX_BODY_BYTES (a 413)."""


@dataclass(frozen=True, slots=True)
class OtlpMapping:
    """Which attributes give decision_id, user_id and purpose, and which operations are not calls."""

    decision_id_keys: tuple[str, ...]
    user_id_keys: tuple[str, ...]
    purpose_keys: tuple[str, ...]
    ignored_operations: frozenset[str]

    @classmethod
    def from_settings(cls) -> "OtlpMapping":
        return cls(
            decision_id_keys=tuple(settings.AICOST_OTLP_DECISION_ID_ATTRIBUTES),
            user_id_keys=tuple(settings.AICOST_OTLP_USER_ID_ATTRIBUTES),
            purpose_keys=tuple(settings.AICOST_OTLP_PURPOSE_ATTRIBUTES),
            ignored_operations=frozenset(settings.AICOST_OTLP_IGNORED_OPERATIONS),
        )

    @property
    def wanted(self) -> frozenset[str]:
        """Every attribute key the mapping reads (the others are skipped without converting their value)."""
        keys = {REQUEST_MODEL, RESPONSE_MODEL, OPERATION, ERROR_TYPE, *TOKEN_KEYS}
        return frozenset(keys | {*self.decision_id_keys, *self.user_id_keys, *self.purpose_keys})


@dataclass(slots=True)
class SpanRecord:
    """A span mapped onto a record, with its id and the attribute each token count came from (messages)."""

    span_id: str
    record: UsageRecordInput
    sources: dict[str, str]
    request_model: str | None = None  # When it differs from the response model the record names.


@dataclass(slots=True)
class MappedSpans:
    records: list[SpanRecord] = field(default_factory=list)
    ignored: int = 0
    rejected: list[str] = field(default_factory=list)  # One message per rejected span.
    warnings: list[str] = field(default_factory=list)


# --- Decoding --------------------------------------------------------------------------------------


def body_decompressed(body: bytes, *, content_encoding: str, limit: int) -> bytes:
    """The body as sent before compression (gzip or deflate, as exporters send it), at most `limit` bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        data = body
    elif encoding in ("gzip", "deflate"):
        # gzip: a gzip header; deflate: zlib's (RFC 9110), though some send raw deflate.
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS | 32
        attempts = (wbits, -zlib.MAX_WBITS) if encoding == "deflate" else (wbits,)
        for attempt in attempts:
            try:
                data = _inflated(body, attempt, limit)
                break
            except zlib.error:
                continue
        else:
            raise OtlpPayloadInvalid(_("The body is not valid %(encoding)s data.") % {"encoding": encoding})
    else:
        raise ValueError(encoding)  # The view answers 415 before: see CONTENT_ENCODINGS.
    if len(data) > limit:
        raise OtlpPayloadTooLarge(_("The request body exceeds %(limit)s bytes.") % {"limit": limit})
    return data


def _inflated(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, limit + 1)  # One byte past the limit tells it was exceeded.
    if len(data) <= limit and not inflater.eof:
        raise zlib.error("truncated")
    return data


def export_request_decoded(data: bytes, *, content_type: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from binary protobuf, or from OTLP JSON (the proto3 JSON mapping
    with hex trace and span ids, lowerCamelCase keys, integer enums; unknown fields ignored)."""
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as error:
            raise OtlpPayloadInvalid(
                _("The body is not a protobuf ExportTraceServiceRequest: %(error)s") % {"error": error}
            ) from None
        return request
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise OtlpPayloadInvalid(_("The body is not valid JSON: %(error)s") % {"error": error}) from None
    if not isinstance(document, dict):
        raise OtlpPayloadInvalid(_("The body must be a JSON object (ExportTraceServiceRequest)."))
    try:
        _hex_ids_as_base64(document)
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as error:
        raise OtlpPayloadInvalid(
            _("The body is not an OTLP JSON ExportTraceServiceRequest: %(error)s") % {"error": error}
        ) from None
    return request


def _hex_ids_as_base64(document: dict) -> None:
    """OTLP JSON writes trace and span ids in hex; the proto3 JSON mapping reads bytes as base64."""
    for resource_spans in _list(document, "resourceSpans"):
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                _hex_fields_as_base64(span, "spans")
                for link in _list(span, "links"):
                    _hex_fields_as_base64(link, "links")


def _list(container, key: str) -> list:
    if not isinstance(container, dict):
        raise json_format.ParseError(_("Expected an object, got %(value)s.") % {"value": json.dumps(container)[:80]})
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise json_format.ParseError(_("%(key)s must be an array.") % {"key": key})
    return value


def _hex_fields_as_base64(item, where: str) -> None:
    if not isinstance(item, dict):
        raise json_format.ParseError(_("Each item of %(key)s must be an object.") % {"key": where})
    for name in _ID_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and value:
            try:
                item[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise json_format.ParseError(
                    _("%(field)s is not hex-encoded: %(value)s") % {"field": name, "value": value[:64]}
                ) from None


# --- Mapping ---------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _attributes(key_values: Iterable, wanted: frozenset[str]) -> dict:
    """The wanted attributes as Python values: str, bool, int, float (whole floats as int), or None
    (arrays, maps, bytes). Runs for every attribute of every span: kept to one loop."""
    found = {}
    for kv in key_values:
        key = kv.key
        if key in wanted:
            value = kv.value
            kind = value.WhichOneof("value")
            if kind == "double_value":
                number = value.double_value
                found[key] = int(number) if number.is_integer() else number
            elif kind in _SCALARS:
                found[key] = getattr(value, kind)
            else:
                found[key] = None
    return found


_SCALARS = frozenset({"string_value", "int_value", "bool_value"})


def _first(keys: Iterable[str], *sources: Mapping):
    for key in keys:
        for source in sources:
            value = source.get(key)
            if value is not None and value != "":
                return key, value
    return None, None


def _moment(nanos: int) -> datetime | None:
    return _EPOCH + timedelta(microseconds=nanos // 1000) if nanos > 0 else None


def _text(value) -> str:
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _user_id(key: str | None, value, span_id: str, warnings: list[str]) -> int | None:
    if key is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        warnings.append(
            _("span %(span)s: %(key)s %(value)s is not a whole number; stored without user_id.")
            % {"span": span_id, "key": key, "value": json.dumps(value)[:60]}
        )
        return None
    return value


def spans_mapped(request: ExportTraceServiceRequest, *, mapping: OtlpMapping) -> MappedSpans:
    """The export's spans as records (model calls), counted as ignored (no GenAI call) or rejected."""
    mapped = MappedSpans()
    wanted = mapping.wanted
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes, wanted)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _span_mapped(span, resource, mapping, wanted, mapped)
    return mapped


def _span_mapped(span, resource: dict, mapping: OtlpMapping, wanted: frozenset[str], mapped: MappedSpans) -> None:
    attributes = _attributes(span.attributes, wanted)
    if not attributes:  # Most spans of an instrumented service: HTTP, database, ...
        mapped.ignored += 1
        return
    response_model, request_model = attributes.get(RESPONSE_MODEL), attributes.get(REQUEST_MODEL)
    model = response_model or request_model
    if attributes.get(OPERATION) in mapping.ignored_operations or not (
        model or any(key in attributes for key in TOKEN_KEYS)
    ):
        mapped.ignored += 1
        return
    span_id = span.span_id.hex()
    if not model:
        mapped.rejected.append(
            _("span %(span)s: has token counts but no %(response)s or %(request)s, so it cannot be priced.")
            % {"span": span_id, "response": RESPONSE_MODEL, "request": REQUEST_MODEL}
        )
        return
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        mapped.rejected.append(
            _("span %(span)s: trace_id must be 16 bytes and span_id 8 bytes.") % {"span": span_id or "(empty)"}
        )
        return
    tokens, sources = {}, {}
    for name, keys in TOKEN_ATTRIBUTES.items():
        key, value = _first(keys, attributes)
        if value is not None:
            tokens[name], sources[name] = value, key
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    failed = span.status.code == Status.STATUS_CODE_ERROR
    error_message = ""
    if failed:
        error_message = span.status.message or _text(attributes.get(ERROR_TYPE) or "")
    sources_of_ids = (attributes, resource) if resource else (attributes,)
    _key, decision_id = _first(mapping.decision_id_keys, *sources_of_ids)
    user_key, user_value = _first(mapping.user_id_keys, *sources_of_ids)
    _key, purpose = _first(mapping.purpose_keys, *sources_of_ids)
    record = UsageRecordInput(
        model_name=_text(model),
        decision_id=span.trace_id.hex() if decision_id is None else _text(decision_id),
        idempotency_key=span_id,
        user_id=_user_id(user_key, user_value, span_id, mapped.warnings),
        response_time=(end - start) / 1e9 if start and end >= start else None,
        success=not failed,
        error_message=error_message,
        purpose="" if purpose is None else _text(purpose),
        timestamp=_moment(start) or _moment(end),
        **tokens,
    )
    if user_key is not None:
        sources["user_id"] = user_key
    other = _text(request_model) if response_model and request_model and request_model != response_model else None
    mapped.records.append(SpanRecord(span_id=span_id, record=record, sources=sources, request_model=other))


def messages_summary(messages: list[str], *, limit: int = 5) -> Iterator[str]:
    """The first `limit` messages, and how many more there were."""
    yield from messages[:limit]
    if len(messages) > limit:
        more = len(messages) - limit
        yield ngettext("… and %(more)s more.", "… and %(more)s more.", more) % {"more": more}
