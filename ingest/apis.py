"""POST /api/v1/usage/: recording LLM calls. The serializers parse JSON only; the rules are
usage.records', which the ingest service applies to every record, as for Python callers."""

from datetime import datetime

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
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
from usage.permissions import CanWriteUsage
from usage.records import (
    MAX_RESPONSE_SECONDS,
    MAX_TOKENS,
    MAX_USER_ID,
    TEXT_LIMITS,
    UsageRecordInput,
    UsageRecordInvalid,
)


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


class OpenAIUsageSerializer(serializers.Serializer):
    """OpenAI's `usage` object as the SDK returns it; fields it may add later are ignored. Only JSON
    types are checked here; usage.records maps it to token counts and checks them."""

    class PromptDetails(serializers.Serializer):
        cached_tokens = serializers.IntegerField(required=False, allow_null=True)

    class CompletionDetails(serializers.Serializer):
        reasoning_tokens = serializers.IntegerField(required=False, allow_null=True)

    prompt_tokens = serializers.IntegerField(required=False)
    completion_tokens = serializers.IntegerField(required=False)
    total_tokens = serializers.IntegerField(required=False)
    prompt_tokens_details = PromptDetails(required=False, allow_null=True)
    completion_tokens_details = CompletionDetails(required=False, allow_null=True)


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
    usage = OpenAIUsageSerializer(
        required=False, help_text="An OpenAI-style usage object, instead of the token fields (never with them)."
    )
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
            raise serializers.ValidationError(f"At most {limit} records per request; got {len(records)}.")
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
        try:
            result = usage_batch_record(records=records)
        except UsageRecordInvalid as error:
            raise _rule_error(error) from None
        data = {
            "stored": len(result.stored),
            "duplicates": result.duplicates,
            "unpriced": sum(1 for log in result.stored if log.cost is None),
            "records": result.stored,
        }
        return success_response(output_data(self.OutputSerializer, data), status=status.HTTP_201_CREATED)
