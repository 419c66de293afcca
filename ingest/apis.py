"""POST /api/v1/usage/: recording LLM calls. The serializers parse JSON only; the rules are
usage.records', which the ingest service applies to every record, as for Python callers."""

import re
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.views import APIView

from core.api.responses import success_response
from core.api.serializers import (
    FastListSerializer,
    NotFast,
    StrictSerializer,
    aware_datetime_converter,
    fast_converter_for,
    output_data,
)
from core.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from ingest.services import usage_batch_record
from usage.permissions import CanWriteUsage, sending_key
from usage.records import (
    MAX_RESPONSE_SECONDS,
    MAX_TOKENS,
    MAX_USER_ID,
    TEXT_LIMITS,
    UsageRecordInput,
    UsageRecordInvalid,
)
from usage.services import IngestResult


class TimestampField(serializers.DateTimeField):
    """ISO 8601 as written: an offset (or Z) moves it into the current zone as DRF does; a naive
    one stays naive, so that usage.records refuses it with its own message, as for Python callers."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="ISO 8601 with offset")
            if parsed.tzinfo is None:
                return parsed
        return super().to_internal_value(value)


@fast_converter_for(TimestampField)
def _fast_timestamp(field: TimestampField):
    """The fast path's timestamp: DRF's conversion of an ISO string with offset; naive ones as written."""
    to_moment = aware_datetime_converter(field)
    if to_moment is None:
        return None

    def convert(value):
        if type(value) is str:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise NotFast from None
            if parsed.tzinfo is None:
                return parsed
        return to_moment(value)

    return convert


def _counts(*names: str, required: tuple[str, ...] = ()) -> dict:
    """JSON Schema of an object of token counts (null: not used by the call, as SDKs dump it)."""
    properties = {
        name: {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS, "nullable": name not in required}
        for name in names
    }
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {**schema, "required": list(required)} if required else schema  # OpenAPI: never an empty list.


def _with(schema: dict, **properties) -> dict:
    return {**schema, "properties": {**schema["properties"], **properties}}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


_TEXT = {"type": "string", "nullable": True}
_GEMINI_DETAILS = {
    "type": "array",
    "nullable": True,
    "items": {
        "type": "object",
        "properties": {
            "modality": {
                "type": "string",
                "enum": ["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT"],
            },
            "tokenCount": {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS, "nullable": True},
        },
        "required": ["modality"],
        "additionalProperties": False,
    },
}
USAGE_OBJECT_SCHEMAS = {
    "OpenAI Chat Completions / DeepSeek": _with(
        _counts(
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_cache_hit_tokens",
            "prompt_cache_miss_tokens",
            required=("prompt_tokens",),
        ),
        prompt_tokens_details=_nullable(
            _counts("cached_tokens", "audio_tokens", "text_tokens", "image_tokens", "cache_write_tokens")
        ),
        completion_tokens_details=_nullable(
            _counts(
                "reasoning_tokens",
                "audio_tokens",
                "accepted_prediction_tokens",
                "rejected_prediction_tokens",
                "text_tokens",
            )
        ),
    ),
    "OpenAI Responses": _with(
        _counts("input_tokens", "output_tokens", "total_tokens", required=("input_tokens",)),
        input_tokens_details=_nullable(
            _with(
                _counts("cached_tokens", "cache_write_tokens"),
                cache_write_tokens_details=_nullable(_counts("ttl_30m_tokens", "ttl_12h_tokens")),
            )
        ),
        output_tokens_details=_nullable(_counts("reasoning_tokens")),
    ),
    "Anthropic Messages": _with(
        _counts(
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            required=("input_tokens",),
        ),
        cache_creation=_nullable(_counts("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")),
        output_tokens_details=_nullable(_counts("thinking_tokens")),
        server_tool_use=_nullable(_counts("web_search_requests", "web_fetch_requests")),
        service_tier=_TEXT,
        inference_geo=_TEXT,
        speed=_TEXT,
    ),
    "Gemini usageMetadata": _with(
        _counts(
            "promptTokenCount",
            "cachedContentTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "toolUsePromptTokenCount",
            "totalTokenCount",
            required=("promptTokenCount",),
        ),
        promptTokensDetails=_GEMINI_DETAILS,
        cacheTokensDetails=_GEMINI_DETAILS,
        candidatesTokensDetails=_GEMINI_DETAILS,
        toolUsePromptTokensDetails=_GEMINI_DETAILS,
        trafficType=_TEXT,
    ),
}


def _snake_case(schema):
    """The schema with every property named in snake_case, as the google-genai SDK dumps Gemini's."""
    if isinstance(schema, list):
        return [_snake_case(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    snake = lambda name: re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()  # noqa: E731
    renamed = {key: _snake_case(value) for key, value in schema.items()}
    if "properties" in schema:
        renamed["properties"] = {snake(name): _snake_case(value) for name, value in schema["properties"].items()}
        if "required" in schema:
            renamed["required"] = [snake(name) for name in schema["required"]]
    return renamed


USAGE_OBJECT_SCHEMAS["Gemini usage_metadata (google-genai SDK, snake_case)"] = _snake_case(
    USAGE_OBJECT_SCHEMAS["Gemini usageMetadata"]
)


@extend_schema_field(
    {
        "description": (
            "A provider's usage object as its SDK returns it (e.g. `response.usage.model_dump()`), instead of "
            "the token fields (never with them): " + "; ".join(USAGE_OBJECT_SCHEMAS) + ". A key none of them "
            "has is refused (400 naming it); how each maps onto the token fields: README, Recording usage."
        ),
        "anyOf": list(USAGE_OBJECT_SCHEMAS.values()),
    }
)
class UsageObjectField(serializers.Field):
    """A provider's usage object, passed on as sent: usage.usage_objects detects the provider and
    checks every key, for HTTP and Python callers alike. Here only: a JSON object."""

    default_error_messages = {"not_a_dict": "Invalid data. Expected a dictionary, but got {input_type}."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return data

    def to_representation(self, value):
        return value


@fast_converter_for(UsageObjectField)
def _fast_usage_object(_field: UsageObjectField):
    def convert(value):
        if type(value) is not dict:
            raise NotFast
        return value

    return convert


def _text_field(name: str, **kwargs) -> serializers.CharField:
    kwargs.setdefault("help_text", f"At most {TEXT_LIMITS[name]} characters.")
    return serializers.CharField(allow_blank=True, **kwargs)


def _token_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(required=False, **kwargs)


class UsageRecordSerializer(StrictSerializer):
    """One record's JSON types. The rules (limits, cached at most prompt tokens, usage or the token
    fields, aware and plausible timestamps) are usage.records', which usage_ingest applies."""

    class Meta:
        # Batches of up to AICOST_MAX_BATCH_SIZE records: canonical records skip DRF's per-field machinery.
        list_serializer_class = FastListSerializer

    model_name = _text_field("model_name", help_text=f"At most {TEXT_LIMITS['model_name']} characters, not blank.")
    decision_id = _text_field("decision_id", required=False, default="")
    idempotency_key = _text_field(
        "idempotency_key",
        required=False,
        default="",
        help_text=f"At most {TEXT_LIMITS['idempotency_key']} characters. With decision_id, makes a retry safe: "
        "the same pair is stored once.",
    )
    user_id = serializers.IntegerField(required=False, allow_null=True, help_text=f"1 to {MAX_USER_ID}.")
    prompt_tokens = _token_field(help_text=f"0 to {MAX_TOKENS}.")
    completion_tokens = _token_field(help_text=f"0 to {MAX_TOKENS}.")
    cached_tokens = _token_field(help_text="Part of prompt_tokens served from cache: at most prompt_tokens.")
    reasoning_tokens = _token_field(help_text="Part of completion_tokens spent reasoning: at most completion_tokens.")
    cache_write_5m_tokens = _token_field(
        help_text="Part of prompt_tokens written to a 5-minute cache (or to a cache, no duration said)."
    )
    cache_write_1h_tokens = _token_field(help_text="Part of prompt_tokens written to a 1-hour cache.")
    input_audio_tokens = _token_field(
        help_text="Part of prompt_tokens that is audio. cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens "
        "and input_audio_tokens together: at most prompt_tokens."
    )
    output_audio_tokens = _token_field(help_text="Part of completion_tokens that is audio.")
    output_image_tokens = _token_field(
        help_text="Part of completion_tokens that is images. reasoning_tokens, output_audio_tokens and "
        "output_image_tokens together: at most completion_tokens."
    )
    usage = UsageObjectField(required=False)
    response_time = serializers.FloatField(
        required=False, allow_null=True, help_text=f"Seconds, 0 to {MAX_RESPONSE_SECONDS}."
    )
    success = serializers.BooleanField(required=False, default=True)
    error_message = _text_field("error_message", required=False, default="")
    purpose = _text_field("purpose", required=False, default="")
    timestamp = TimestampField(
        required=False,
        help_text="When the call happened, ISO 8601 with offset, from 2000 to a day ahead; default: now.",
    )
    cost = serializers.DecimalField(
        max_digits=None,
        decimal_places=None,
        required=False,
        allow_null=True,
        help_text=(
            f"The provider's own figure, at least 0, at most {COST_DECIMAL_PLACES} decimal places; "
            "stored as is and flagged cost_source=provider."
        ),
    )


class UsageBatchSerializer(StrictSerializer):
    records = UsageRecordSerializer(many=True, allow_empty=False)

    def validate_records(self, records):
        limit = settings.AICOST_MAX_BATCH_SIZE
        if len(records) > limit:
            raise serializers.ValidationError(
                _("At most %(limit)s records per request; got %(count)s.") % {"limit": limit, "count": len(records)}
            )
        return records


def _rule_error(error: UsageRecordInvalid) -> serializers.ValidationError:
    """The service's error as DRF's nested detail ({"records": {2: {"cached_tokens": [...]}}}), so
    the 400 names the field and lists it under `fields` as a serializer's error would."""
    detail: object = [serializers.ErrorDetail(error.message, code=error.code)]
    for part in reversed(error.field.replace("]", "").replace("[", ".").split(".")):
        detail = {int(part) if part.isdigit() else part: detail}
    return serializers.ValidationError(detail)


class UsageIngestApi(APIView):
    """Record LLM calls: one record object, a JSON array of records, or {"records": [...]}.

    The whole request is one transaction: if any record is invalid, nothing is stored (400
    naming the record and field). Retried records with a known (decision_id, idempotency_key)
    are skipped and counted as duplicates."""

    permission_classes = [CanWriteUsage]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageIngestResult"

        class StoredSerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageStoredRecord"
                list_serializer_class = FastListSerializer

            id = serializers.IntegerField()
            model_name = serializers.CharField(
                help_text="The model the call is counted under: the priced model it matched, else the name as sent."
            )
            sent_model_name = serializers.CharField(help_text="The model name as sent.")
            cost = serializers.DecimalField(
                max_digits=COST_MAX_DIGITS,
                decimal_places=COST_DECIMAL_PLACES,
                allow_null=True,
                help_text="Null when the call could not be priced (cost_source unpriced).",
            )
            currency = serializers.CharField(
                allow_null=True, help_text="ISO 4217 code of cost: its model's price currency; null without prices."
            )
            cost_source = serializers.CharField()
            timestamp = serializers.DateTimeField()

        stored = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        unpriced = serializers.IntegerField()
        records = StoredSerializer(many=True)

    @staticmethod
    def _payload(request):
        payload = request.data
        if isinstance(payload, list):
            return {"records": payload}
        if isinstance(payload, dict) and "records" not in payload:
            return {"records": [payload]}
        return payload

    def ingest_records(self, request) -> int:
        """The records this request carries, as sent (usage.throttles counts them before validation)."""
        payload = self._payload(request)
        records = payload.get("records") if isinstance(payload, dict) else None
        return len(records) if isinstance(records, list) else 1

    @extend_schema(
        request=UsageBatchSerializer,
        responses={
            201: inline_serializer(
                name="UsageIngestResponse", fields={"success": serializers.BooleanField(), "data": OutputSerializer()}
            )
        },
        examples=[
            OpenApiExample(
                "OpenAI usage object",
                request_only=True,
                value={
                    "records": [
                        {
                            "model_name": "gpt-4o-mini",
                            "decision_id": "order-1234",
                            "idempotency_key": "attempt-1",
                            "usage": {
                                "prompt_tokens": 1200,
                                "completion_tokens": 300,
                                "prompt_tokens_details": {"cached_tokens": 1024},
                            },
                            "response_time": 1.8,
                            "purpose": "summarise",
                        }
                    ]
                },
            ),
            OpenApiExample(
                "Anthropic usage object with cache writes",
                request_only=True,
                value={
                    "records": [
                        {
                            "model_name": "claude-sonnet-4-5",
                            "usage": {
                                "input_tokens": 50,
                                "cache_creation_input_tokens": 248,
                                "cache_read_input_tokens": 100000,
                                "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100},
                                "output_tokens": 503,
                            },
                        }
                    ]
                },
            ),
        ],
    )
    def post(self, request):
        payload = self._payload(request)
        batch = UsageBatchSerializer(data=payload)
        batch.is_valid(raise_exception=True)
        records = [UsageRecordInput(**record) for record in batch.validated_data["records"]]
        try:
            result = usage_batch_record(records=records, api_key=sending_key(request))
        except UsageRecordInvalid as error:
            raise _rule_error(error) from None
        data = {
            "stored": len(result.stored),
            "duplicates": result.duplicates,
            "unpriced": sum(1 for log in result.stored if log.cost is None),
            "records": _answered(result),
        }
        return success_response(output_data(self.OutputSerializer, data), status=status.HTTP_201_CREATED)


def _answered(result: IngestResult) -> list[dict]:
    """What the answer lists of each stored row (StoredSerializer's fields), with its cost's currency."""
    currency_of = result.currencies.get
    return [
        {
            "id": row.id,
            "model_name": row.model_name,
            "sent_model_name": row.sent_model_name,
            "cost": row.cost,
            "currency": None if row.cost is None else currency_of(row.model_name),
            "cost_source": row.cost_source,
            "timestamp": row.timestamp,
        }
        for row in result.stored
    ]
