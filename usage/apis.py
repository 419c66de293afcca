"""The usage API: POST /api/v1/usage/ records one call or a batch of calls."""

from datetime import datetime

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.views import APIView

from aicost.api.permissions import CanWriteUsage
from aicost.api.responses import success_response
from aicost.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from usage.services import UsageRecordInput, usage_ingest

MAX_TOKENS = 2_147_483_647  # The columns are PostgreSQL integers.


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset (or Z). A naive timestamp is ambiguous, so it is refused."""

    default_error_messages = {"naive": "Timestamp must include a time zone offset, e.g. 2026-11-24T10:00:00Z."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="ISO 8601 with offset")
            if parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


def _token_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, **kwargs)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never silently drops data."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class OpenAIUsageSerializer(serializers.Serializer):
    """OpenAI's `usage` object as the SDK returns it; fields it may add later are ignored."""

    class PromptDetails(serializers.Serializer):
        cached_tokens = _token_field(required=False, allow_null=True)

    class CompletionDetails(serializers.Serializer):
        reasoning_tokens = _token_field(required=False, allow_null=True)

    prompt_tokens = _token_field()
    completion_tokens = _token_field(default=0)
    total_tokens = _token_field(required=False)
    prompt_tokens_details = PromptDetails(required=False, allow_null=True)
    completion_tokens_details = CompletionDetails(required=False, allow_null=True)


def _tokens_from_openai_usage(usage: dict) -> dict:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "cached_tokens": prompt_details.get("cached_tokens") or 0,
        "reasoning_tokens": completion_details.get("reasoning_tokens") or 0,
    }


TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


class UsageRecordSerializer(StrictSerializer):
    model_name = serializers.CharField(max_length=100)
    decision_id = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    idempotency_key = serializers.CharField(
        max_length=100,
        required=False,
        default="",
        allow_blank=True,
        help_text="With decision_id, makes a retry safe: the same pair is stored once.",
    )
    user_id = serializers.IntegerField(min_value=1, max_value=MAX_TOKENS, required=False, allow_null=True)
    prompt_tokens = _token_field(required=False)
    completion_tokens = _token_field(required=False)
    cached_tokens = _token_field(required=False, help_text="Part of prompt_tokens served from cache.")
    reasoning_tokens = _token_field(required=False, help_text="Part of completion_tokens spent reasoning.")
    usage = OpenAIUsageSerializer(required=False, help_text="An OpenAI-style usage object, instead of token fields.")
    response_time = serializers.FloatField(min_value=0, max_value=86_400, required=False, allow_null=True)
    success = serializers.BooleanField(required=False, default=True)
    error_message = serializers.CharField(required=False, default="", allow_blank=True, max_length=10_000)
    purpose = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    timestamp = AwareDateTimeField(required=False, help_text="When the call happened; default: now.")
    cost = serializers.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="The provider's own figure; stored as is and flagged cost_source=provider.",
    )

    def validate(self, attrs):
        usage = attrs.pop("usage", None)
        if usage is not None:
            given = [name for name in TOKEN_FIELDS if name in attrs]
            if given:
                raise serializers.ValidationError({"usage": [f"Give either usage or {', '.join(given)}, not both."]})
            attrs.update(_tokens_from_openai_usage(usage))
        for name in TOKEN_FIELDS:
            attrs.setdefault(name, 0)
        if attrs["cached_tokens"] > attrs["prompt_tokens"]:
            raise serializers.ValidationError({"cached_tokens": ["Cannot exceed prompt_tokens."]})
        if attrs["reasoning_tokens"] > attrs["completion_tokens"]:
            raise serializers.ValidationError({"reasoning_tokens": ["Cannot exceed completion_tokens."]})
        return attrs


class UsageBatchSerializer(StrictSerializer):
    records = UsageRecordSerializer(many=True, allow_empty=False)

    def validate_records(self, records):
        limit = settings.AICOST_MAX_BATCH_SIZE
        if len(records) > limit:
            raise serializers.ValidationError(f"At most {limit} records per request; got {len(records)}.")
        return records


class UsageIngestApi(APIView):
    """Record LLM calls: one record object, a JSON array of records, or {"records": [...]}.

    The whole request is one transaction: if any record is invalid, nothing is stored (400
    naming the record and field). Retried records with a known (decision_id, idempotency_key)
    are skipped and counted as duplicates."""

    permission_classes = [CanWriteUsage]

    class OutputSerializer(serializers.Serializer):
        class StoredSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            model_name = serializers.CharField()
            cost = serializers.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)
            cost_source = serializers.CharField()
            timestamp = serializers.DateTimeField()

        stored = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        unpriced = serializers.IntegerField()
        records = StoredSerializer(many=True)

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
            )
        ],
    )
    def post(self, request):
        payload = request.data
        if isinstance(payload, list):
            payload = {"records": payload}
        elif isinstance(payload, dict) and "records" not in payload:
            payload = {"records": [payload]}
        batch = UsageBatchSerializer(data=payload)
        batch.is_valid(raise_exception=True)
        records = [UsageRecordInput(**record) for record in batch.validated_data["records"]]
        result = usage_ingest(records=records)
        data = {
            "stored": len(result.stored),
            "duplicates": result.duplicates,
            "unpriced": sum(1 for log in result.stored if log.cost is None),
            "records": result.stored,
        }
        return success_response(self.OutputSerializer(data).data, status=status.HTTP_201_CREATED)
