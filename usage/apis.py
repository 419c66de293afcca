"""The usage API: recording calls (POST /api/v1/usage/), stats, daily trend and the CSV export."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.views import APIView

from aicost.api.fields import lookup_field
from aicost.api.negotiation import ErrorsAsJsonNegotiation
from aicost.api.permissions import CanWriteUsage
from aicost.api.responses import success_response
from aicost.api.serializers import (
    FastListSerializer,
    NotFast,
    StrictSerializer,
    aware_datetime_converter,
    fast_converter_for,
)
from aicost.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS, PERCENT_DECIMAL_PLACES, PERCENT_MAX_DIGITS
from usage.export import usage_csv_response, usage_export_filename
from usage.selectors import USAGE_EXPORT_COLUMNS, usage_export_rows
from usage.services import UsageRecordInput, usage_ingest
from usage.stats import TIME_RANGES, time_range_window, usage_daily_trend, usage_filters_resolve, usage_stats

MAX_TOKENS = 2_147_483_647  # The columns are PostgreSQL integers.
MAX_TREND_DAYS = 366


EARLIEST_CALL = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_CLOCK_SKEW = timedelta(days=1)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset (or Z). A naive timestamp is ambiguous, so it is refused; so is one
    no LLM call can have (before 2000, or more than a day ahead of this server's clock)."""

    default_error_messages = {
        "naive": "Timestamp must include a time zone offset, e.g. 2026-11-24T10:00:00Z.",
        "implausible": "Timestamp must lie between 2000-01-01 and one day after the server's current time.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="ISO 8601 with offset")
            if parsed.tzinfo is None:
                self.fail("naive")
        moment = super().to_internal_value(value)
        if not self.is_plausible(moment):
            self.fail("implausible")
        return moment

    @staticmethod
    def is_plausible(moment: datetime) -> bool:
        return EARLIEST_CALL <= moment <= timezone.now() + LATEST_CLOCK_SKEW


@fast_converter_for(AwareDateTimeField)
def _fast_aware_timestamp(field: AwareDateTimeField):
    """The fast path's timestamp: DRF's conversion of an ISO string with offset, if plausible."""
    to_moment = aware_datetime_converter(field)

    def convert(value):
        moment = to_moment(value)
        if not field.is_plausible(moment):
            raise NotFast
        return moment

    return convert


def _token_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, **kwargs)


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
    class Meta:
        # Batches of up to AICOST_MAX_BATCH_SIZE records: canonical records skip DRF's per-field machinery.
        list_serializer_class = FastListSerializer

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
    cached_tokens = _token_field(
        required=False, help_text="Part of prompt_tokens served from cache: at most prompt_tokens."
    )
    reasoning_tokens = _token_field(
        required=False, help_text="Part of completion_tokens spent reasoning: at most completion_tokens."
    )
    usage = OpenAIUsageSerializer(
        required=False, help_text="An OpenAI-style usage object, instead of the token fields (never with them)."
    )
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
        class Meta:
            ref_name = "UsageIngestResult"

        class StoredSerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageStoredRecord"
                list_serializer_class = FastListSerializer

            id = serializers.IntegerField()
            model_name = serializers.CharField()
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
        result = usage_ingest(records=records)
        data = {
            "stored": len(result.stored),
            "duplicates": result.duplicates,
            "unpriced": sum(1 for log in result.stored if log.cost is None),
            "records": result.stored,
        }
        return success_response(self.OutputSerializer(data).data, status=status.HTTP_201_CREATED)


# --- Stats and daily trend: what the AI cost page reads -----------------------------------------


# The zones this system's tz database knows: the schema lists exactly what the API accepts.
TIME_ZONE_NAMES = frozenset(available_timezones())


@extend_schema_field({"type": "string", "enum": sorted(TIME_ZONE_NAMES), "example": "Asia/Shanghai"})
class TimeZoneField(serializers.CharField):
    default_error_messages = {"unknown": "Unknown time zone {value!r}; use an IANA name such as Asia/Shanghai."}

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)  # Exactly a listed name, as the schema says.

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        if name not in TIME_ZONE_NAMES:  # Also keeps arbitrary input away from the file system.
            self.fail("unknown", value=name)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail("unknown", value=name)


class UsageFilterSerializer(serializers.Serializer):
    tz = TimeZoneField(required=False, help_text="IANA time zone for calendar days; default: TIME_ZONE.")
    model = lookup_field(required=False, max_length=100)
    provider = lookup_field(required=False, max_length=50)
    user_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_TOKENS)
    purpose = lookup_field(required=False, max_length=100)


def _filters_and_zone(validated: dict) -> tuple:
    filters = usage_filters_resolve(
        model=validated.get("model"),
        provider=validated.get("provider"),
        user_id=validated.get("user_id"),
        purpose=validated.get("purpose"),
    )
    return filters, validated.get("tz") or timezone.get_current_timezone()


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, **kwargs)


def _percent(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES, **kwargs)


class CallRatesSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    successful_calls = serializers.IntegerField()
    failed_calls = serializers.IntegerField()
    success_rate = _percent(help_text="Percent of calls that succeeded.")
    unpriced_calls = serializers.IntegerField(help_text="Calls of unknown or disabled models: no cost known.")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost = _money()
    avg_response_time = serializers.FloatField(allow_null=True, help_text="Seconds.")
    cost_share = _percent(help_text="Percent of the window's total cost.")


class UsageStatsApi(APIView):
    """GET /api/v1/ai-platforms/stats?time_range=all: totals, per model and per provider."""

    class InputSerializer(UsageFilterSerializer):
        time_range = serializers.ChoiceField(choices=list(TIME_RANGES), default="all")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageStats"

        class SummarySerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageStatsSummary"

            total_calls = serializers.IntegerField()
            successful_calls = serializers.IntegerField()
            failed_calls = serializers.IntegerField()
            success_rate = _percent()
            total_cost = _money()
            unpriced_calls = serializers.IntegerField()
            prompt_tokens = serializers.IntegerField()
            completion_tokens = serializers.IntegerField()
            cached_tokens = serializers.IntegerField()
            avg_response_time = serializers.FloatField(allow_null=True)
            currency = serializers.CharField()

        class PlatformSerializer(CallRatesSerializer):
            class Meta:
                ref_name = "UsagePlatform"

            provider = serializers.CharField()
            model_name = serializers.CharField()
            display_name = serializers.CharField()
            currency = serializers.CharField(allow_null=True)
            monthly_budget = _money(allow_null=True)
            current_month_cost = _money()
            budget_used_percent = _percent(allow_null=True)

        class ProviderSerializer(CallRatesSerializer):
            class Meta:
                ref_name = "UsageProvider"

            provider = serializers.CharField()

        time_range = serializers.CharField()
        time_label = serializers.CharField()
        start = serializers.DateTimeField(allow_null=True, help_text="Null for all time.")
        end = serializers.DateTimeField(help_text="Exclusive.")
        summary = SummarySerializer()
        platforms = PlatformSerializer(many=True)
        providers = ProviderSerializer(many=True)

    @extend_schema(
        parameters=[InputSerializer],
        responses=inline_serializer(
            name="UsageStatsResponse", fields={"success": serializers.BooleanField(), "data": OutputSerializer()}
        ),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters, zone = _filters_and_zone(params.validated_data)
        data = usage_stats(
            time_range=params.validated_data["time_range"], now=timezone.now(), zone=zone, filters=filters
        )
        return success_response(self.OutputSerializer(data).data)


class UsageDailyTrendApi(APIView):
    """GET /api/v1/ai-platforms/cost-trend-daily?days=7: cost and calls per calendar day, zero-filled."""

    class InputSerializer(UsageFilterSerializer):
        days = serializers.IntegerField(min_value=1, max_value=MAX_TREND_DAYS, default=7)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageDailyTrend"

        class DaySerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageDay"

            date = serializers.DateField()
            cost = _money()
            calls = serializers.IntegerField()
            successful_calls = serializers.IntegerField()
            failed_calls = serializers.IntegerField()
            unpriced_calls = serializers.IntegerField()
            prompt_tokens = serializers.IntegerField()
            completion_tokens = serializers.IntegerField()

        class SummarySerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageDailyTrendSummary"

            total_cost = _money()
            avg_daily_cost = _money()
            max_daily_cost = _money()
            min_daily_cost = _money()
            total_calls = serializers.IntegerField()
            unpriced_calls = serializers.IntegerField()
            currency = serializers.CharField()

        days = serializers.IntegerField()
        time_zone = serializers.CharField()
        daily_trend = DaySerializer(many=True)
        summary = SummarySerializer()

    @extend_schema(
        parameters=[InputSerializer],
        responses=inline_serializer(
            name="UsageDailyTrendResponse", fields={"success": serializers.BooleanField(), "data": OutputSerializer()}
        ),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters, zone = _filters_and_zone(params.validated_data)
        data = usage_daily_trend(days=params.validated_data["days"], now=timezone.now(), zone=zone, filters=filters)
        return success_response(self.OutputSerializer(data).data)


class UsageExportApi(APIView):
    """GET /api/v1/usage/export.csv: the raw log rows behind the stats, as a streamed CSV download."""

    content_negotiation_class = ErrorsAsJsonNegotiation
    InputSerializer = UsageStatsApi.InputSerializer

    @extend_schema(
        operation_id="v1_usage_export_csv",
        parameters=[InputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description=(
                    "A header row, then one row per logged call, oldest first: "
                    f"{', '.join(USAGE_EXPORT_COLUMNS)}. The same rows the stats API counts for the same "
                    "parameters. Money is the stored decimal, timestamps ISO 8601 with offset (in tz), "
                    "free text starting with = + - @ is prefixed with a single quote. Errors are JSON."
                ),
            )
        },
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters, zone = _filters_and_zone(params.validated_data)
        time_range = params.validated_data["time_range"]
        start, end = time_range_window(time_range=time_range, now=timezone.now(), zone=zone)
        rows = usage_export_rows(start=start, end=end, filters=filters)
        filename = usage_export_filename(label=time_range, start=start, end=end)
        return usage_csv_response(rows, zone=zone, filename=filename)
