"""POST /v1/traces: OTLP/HTTP trace exports (the OpenTelemetry SDK exporters and the collector's
otlphttp exporter post to <endpoint>/v1/traces). Answers as the OTLP/HTTP specification prescribes:
200 with an ExportTraceServiceResponse (partial_success when spans were rejected), and for failures
a google.rpc.Status, both in the request's encoding (binary protobuf or JSON): 400 for a body that
cannot be decoded (not retried by exporters), 401/403 for the key, 413 for an oversized body, 415 for
another content type or encoding, 503 with Retry-After while the database is unavailable (retried)."""

import logging

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.views import APIView

from core.api.negotiation import ErrorsAsJsonNegotiation
from core.db_errors import REPAIR_COMMAND, database_unavailable, missing_schema_object
from ingest.otlp import (
    CONTENT_ENCODINGS,
    CONTENT_TYPES,
    JSON,
    PROTOBUF,
    OtlpPayloadInvalid,
    OtlpPayloadTooLarge,
    body_decompressed,
    export_request_decoded,
    messages_summary,
)
from ingest.services import usage_spans_record
from usage.authentication import KEYWORD, ApiKeyAuthentication
from usage.permissions import CanWriteUsage, sending_key
from usage.selectors import api_key_get_active

logger = logging.getLogger("aicost.otlp")
BEARER = "Bearer"


class OtlpApiKeyAuthentication(ApiKeyAuthentication):
    """An API key as an OTLP exporter sends it (OTEL_EXPORTER_OTLP_HEADERS, the collector's `headers`):
    `Authorization: Bearer <key>`, or as everywhere else `Authorization: Api-Key <key>` / `X-API-Key`."""

    accepted = gettext_lazy(
        "`Authorization: Bearer <key>` (an API key with write_usage scope), `Authorization: Api-Key <key>` "
        "or the `X-API-Key: <key>` header"
    )

    def authenticate(self, request):
        keyword, _sep, value = get_authorization_header(request).decode("latin-1").partition(" ")
        if keyword.lower() != BEARER.lower():
            return super().authenticate(request)
        api_key = api_key_get_active(raw_key=value.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return (AnonymousUser(), api_key)

    def authenticate_header(self, request) -> str:
        return BEARER


class OtlpApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = OtlpApiKeyAuthentication
    name = "OtlpBearerAuth"
    priority = 1  # Before usage's ApiKeyAuthenticationScheme, whose class this one extends.

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key with write_usage scope, `Authorization: Bearer <key>` (also accepted: "
            "`Authorization: Api-Key <key>`, `X-API-Key: <key>`).",
        }


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _body(request, size: int) -> bytes:
    """At most `size` bytes of the body. With a Content-Length, Django's stream (bounded by it); without
    one (Transfer-Encoding: chunked, which gunicorn decodes), Django's stream would read nothing, so
    the WSGI input is read to its end."""
    if request.META.get("CONTENT_LENGTH"):
        return request.read(size)
    stream = request.META.get("wsgi.input")
    return stream.read(size) if stream is not None else b""


def _encoded(message, media_type: str, status: int, headers: dict | None = None) -> HttpResponse:
    if media_type == PROTOBUF:
        body = message.SerializeToString()
    else:
        body = json_format.MessageToJson(message, indent=None).encode()
    response = HttpResponse(body, status=status, content_type=media_type)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _status(code: int, message: str, *, bad_request: bool = False) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    if bad_request:  # The specification: Status.details SHOULD hold a BadRequest describing the bad data.
        detail = Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[{"field": "body", "description": message}]))
        status.details.append(detail)
    return status


# OTLP JSON, as documented here (the full messages: opentelemetry-proto, OTLP specification).
_REQUEST_JSON = {
    "type": "object",
    "description": "ExportTraceServiceRequest in OTLP JSON: lowerCamelCase keys, hex trace and span ids, "
    "integer enums; unknown fields are ignored.",
    # proto3's JSON mapping reads null as the default (no spans).
    "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}, "nullable": True}},
}
_RESPONSE_JSON = {
    "type": "object",
    "description": "ExportTraceServiceResponse; partialSuccess only when spans were rejected or a warning is given.",
    "properties": {
        "partialSuccess": {
            "type": "object",
            "properties": {
                "rejectedSpans": {"type": "string", "format": "int64"},
                "errorMessage": {"type": "string"},
            },
        }
    },
}
_STATUS_JSON = {
    "type": "object",
    "description": "google.rpc.Status.",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}


class OtlpTracesApi(APIView):
    """OTLP/HTTP trace export: GenAI spans become usage records."""

    authentication_classes = [OtlpApiKeyAuthentication]
    permission_classes = [CanWriteUsage]
    parser_classes: list = []  # The body is read as bytes: protobuf or OTLP JSON, maybe compressed.
    content_negotiation_class = ErrorsAsJsonNegotiation  # An exporter's Accept never refuses the answer.

    def _answer_type(self) -> str:
        media_type = _media_type(self.request.content_type if self.request else None)
        return media_type if media_type in CONTENT_TYPES else JSON

    def _export(self, request) -> ExportTraceServiceRequest | HttpResponse:
        """The decoded export, or the 415 answer; decoded once (the rate limit counts its spans first)."""
        if (decoded := getattr(self, "_decoded", None)) is not None:
            return decoded
        media_type = _media_type(request.content_type)
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if media_type not in CONTENT_TYPES:
            message = _("Unsupported content type %(type)s: send application/x-protobuf or application/json.")
            return _encoded(_status(code_pb2.INVALID_ARGUMENT, message % {"type": media_type or "(none)"}), JSON, 415)
        if encoding not in CONTENT_ENCODINGS:
            message = _("Unsupported content encoding %(encoding)s: send gzip, deflate or none.")
            return _encoded(_status(code_pb2.INVALID_ARGUMENT, message % {"encoding": encoding}), media_type, 415)
        limit = settings.AICOST_OTLP_MAX_BODY_BYTES
        body = _body(request._request, limit + 1)
        if len(body) > limit:
            raise OtlpPayloadTooLarge(_("The request body exceeds %(limit)s bytes.") % {"limit": limit})
        self._decoded = export_request_decoded(
            body_decompressed(body, content_encoding=encoding, limit=limit), content_type=media_type
        )
        return self._decoded

    def ingest_records(self, request) -> int:
        """Every span of the export counts against the key's ingest limit (usage.throttles), GenAI or not."""
        export = self._export(request)
        if isinstance(export, HttpResponse):
            return 0  # Refused with 415 by post.
        return sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)

    @extend_schema(
        operation_id="otlp_traces_export",
        summary="Record OpenTelemetry GenAI spans (OTLP/HTTP traces)",
        description=(
            "An OTLP ExportTraceServiceRequest, binary protobuf (`application/x-protobuf`) or OTLP JSON "
            "(`application/json`), optionally with `Content-Encoding: gzip` or `deflate`. Spans with a "
            "`gen_ai.response.model` or `gen_ai.request.model` become usage records (README, Send your usage, "
            "OpenTelemetry); other spans are counted and ignored. The span id is the idempotency key: a re-sent "
            "export stores nothing twice. Answers are OTLP messages in the request's encoding: "
            "ExportTraceServiceResponse (with partialSuccess when spans were rejected), or a google.rpc.Status."
        ),
        tags=["otlp"],
        request={PROTOBUF: OpenApiTypes.BINARY, JSON: _REQUEST_JSON},
        responses={
            (200, JSON): OpenApiResponse(_RESPONSE_JSON, description="ExportTraceServiceResponse."),
            (200, PROTOBUF): OpenApiResponse(OpenApiTypes.BINARY, description="ExportTraceServiceResponse."),
            **{
                (code, media_type): OpenApiResponse(
                    _STATUS_JSON if media_type == JSON else OpenApiTypes.BINARY,
                    description=f"google.rpc.Status: {meaning}",
                )
                for code, meaning in (
                    (400, "the body cannot be decoded (not to be retried)."),
                    (401, "no valid API key."),
                    (403, "the key lacks write_usage scope."),
                    (413, "the body is larger than AICOST_OTLP_MAX_BODY_BYTES."),
                    (415, "another content type or content encoding."),
                    (429, "the key's ingest rate limit; nothing stored, retry after Retry-After seconds."),
                    (503, "the database is unavailable; retry after Retry-After seconds."),
                )
                for media_type in (JSON, PROTOBUF)
            },
        },
    )
    def post(self, request):
        media_type = _media_type(request.content_type)
        export = self._export(request)
        if isinstance(export, HttpResponse):
            return export
        outcome = usage_spans_record(request=export, api_key=sending_key(request))
        answer = ExportTraceServiceResponse()
        if outcome.rejected or outcome.warnings:
            # The specification: rejected spans counted, or warnings with rejected_spans 0 (not retried).
            logger.warning("OTLP export: %s span(s) rejected: %s", len(outcome.rejected), outcome.rejected[:5])
            answer.partial_success.rejected_spans = len(outcome.rejected)
            answer.partial_success.error_message = " ".join(messages_summary(outcome.rejected + outcome.warnings))
        return _encoded(answer, media_type, 200)

    def handle_exception(self, exc):
        """Every failure as a google.rpc.Status in the request's encoding, with the OTLP/HTTP status codes."""
        media_type = self._answer_type()
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            message = str(exc.detail)
            if isinstance(exc, exceptions.NotAuthenticated):
                message = _("Send %(accepted)s.") % {"accepted": OtlpApiKeyAuthentication.accepted}
            headers = {"WWW-Authenticate": f"{BEARER}, {KEYWORD}"}
            return _encoded(_status(code_pb2.UNAUTHENTICATED, message), media_type, 401, headers)
        if isinstance(exc, exceptions.PermissionDenied):
            return _encoded(_status(code_pb2.PERMISSION_DENIED, str(exc.detail)), media_type, 403)
        if isinstance(exc, exceptions.Throttled):  # The key's rate limit (usage.throttles): nothing stored.
            headers = {"Retry-After": str(exc.wait)} if exc.wait is not None else {}
            return _encoded(_status(code_pb2.RESOURCE_EXHAUSTED, str(exc.detail)), media_type, 429, headers)
        if isinstance(exc, OtlpPayloadTooLarge):
            return _encoded(_status(code_pb2.RESOURCE_EXHAUSTED, exc.message), media_type, 413)
        if isinstance(exc, OtlpPayloadInvalid):
            return _encoded(_status(code_pb2.INVALID_ARGUMENT, exc.message, bad_request=True), media_type, 400)
        if isinstance(exc, DatabaseError):
            missing = missing_schema_object(exc)
            if missing is None and not database_unavailable(exc):
                raise exc  # Unexpected: Django logs it and answers 500.
            logger.error("OTLP export: database unavailable or schema broken: %s", exc)
            if missing is None:
                message, headers = (
                    _("The database is unavailable; nothing was stored. Retry shortly."),
                    {"Retry-After": "5"},
                )
            else:
                message = _(
                    "The database schema is broken: %(missing)s is missing. "
                    "An operator must run `%(repair)s`; see /api/v1/admin/health/database."
                ) % {"missing": missing, "repair": REPAIR_COMMAND}
                headers = {"Retry-After": "30"}
            return _encoded(_status(code_pb2.UNAVAILABLE, message), media_type, 503, headers)
        if isinstance(exc, exceptions.APIException):
            return _encoded(_status(code_pb2.UNKNOWN, str(exc.detail)), media_type, exc.status_code)
        raise exc
