"""The usage API: stats, daily trend and the CSV export (recording calls is ingest.apis)."""

from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.fields import SkipField
from rest_framework.views import APIView

from core.api.exceptions import ApiError
from core.api.fields import lookup_field
from core.api.negotiation import ErrorsAsJsonNegotiation
from core.api.responses import ErrorResponseSerializer, success_response
from core.api.serializers import output_data
from core.money import COST_DISPLAY_PLACES, COST_MAX_DIGITS, PERCENT_DECIMAL_PLACES, PERCENT_MAX_DIGITS
from usage.breakdowns import (
    DEFAULT_GROUP_BY,
    GROUP_BY,
    MAX_GROUPS_LIMIT,
    STATS_GROUPS_LIMIT,
    TREND_GROUPS_LIMIT,
    usage_daily_trend_groups,
    usage_export_group_columns,
    usage_export_group_rows,
    usage_stats_groups,
)
from usage.export import usage_csv_response, usage_export_filename, usage_groups_csv_chunks
from usage.records import (
    MAX_TOKENS,
    TOKEN_FIELDS,
)
from usage.reports import TIME_RANGES, time_range_window, usage_daily_trend, usage_filters_resolve, usage_stats
from usage.selectors import (
    DECISION_MAX_CALLS,
    USAGE_EXPORT_COLUMNS,
    usage_decision_calls,
    usage_decision_totals,
    usage_export_rows,
)

MAX_TREND_DAYS = 366
UNCONVERTED_HELP = (
    "Priced calls with no exchange rate into the reporting currency in force at their timestamp: their cost "
    "is left out of every reporting-currency figure (never added as 0) until usage_convert converts them."
)


# --- Stats and daily trend: what the AI cost page reads -----------------------------------------


# The zones this system's tz database knows: the schema lists exactly what the API accepts.
TIME_ZONE_NAMES = frozenset(available_timezones())


@extend_schema_field({"type": "string", "enum": sorted(TIME_ZONE_NAMES), "example": "Asia/Shanghai"})
class TimeZoneField(serializers.CharField):
    default_error_messages = {"unknown": _("Unknown time zone {value!r}; use an IANA name such as Asia/Shanghai.")}

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


GROUP_BY_HELP = (
    "Break the answer down by model, provider (the priced model's, else unknown), user_id, purpose or api_key "
    "(the key that sent the calls: its id, with its name and prefix). "
    "By model or provider (without a user_id or purpose filter) read from the rollups, as the ungrouped "
    "answer; by user_id, purpose or api_key from the usage log (slower on a large log). "
    "Cost is in the reporting currency; purpose is free text, so every group_by needs the read scope "
    "(or staff), as every read of this API does."
)


def _group_by(**kwargs) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=list(GROUP_BY), required=False, **kwargs)


def _groups_limit(default: int, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=MAX_GROUPS_LIMIT, default=default, required=False, help_text=help_text
    )


@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
        "description": "The group's model name, provider, user_id (an integer), purpose or API key id (an "
        "integer); null: the calls without a user_id, a purpose or a key (recorded from Python or by a staff login).",
    }
)
class GroupKeyField(serializers.Field):
    def to_representation(self, value):
        return value


class KeyLabelField(serializers.CharField):
    """An API key's name or prefix on a group_by=api_key entry: null for the calls without a key, left
    out of the other groupings' entries (DRF would write null for a missing nullable field)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, **kwargs)

    def get_attribute(self, instance):
        if isinstance(instance, Mapping) and self.source not in instance:
            raise SkipField
        return super().get_attribute(instance)


def _filters_and_zone(validated: dict) -> tuple:
    filters = usage_filters_resolve(
        model=validated.get("model"),
        provider=validated.get("provider"),
        user_id=validated.get("user_id"),
        purpose=validated.get("purpose"),
    )
    return filters, validated.get("tz") or timezone.get_current_timezone()


def _money(**kwargs) -> serializers.DecimalField:
    # Output only: shown as core.money.money_display shows a cost.
    return serializers.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DISPLAY_PLACES, **kwargs)


def _percent(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=PERCENT_MAX_DIGITS, decimal_places=PERCENT_DECIMAL_PLACES, **kwargs)


def _part_of(whole: str, text: str) -> serializers.IntegerField:
    return serializers.IntegerField(help_text=f"Part of {whole}: {text}.")


class CallRatesSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    successful_calls = serializers.IntegerField()
    failed_calls = serializers.IntegerField()
    success_rate = _percent(help_text="Percent of calls that succeeded.")
    unpriced_calls = serializers.IntegerField(help_text="Calls of unknown or disabled models: no cost known.")
    unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cache_write_5m_tokens = _part_of("prompt_tokens", "written to a 5-minute cache (or one without a duration)")
    cache_write_1h_tokens = _part_of("prompt_tokens", "written to a 1-hour cache")
    input_audio_tokens = _part_of("prompt_tokens", "audio")
    output_audio_tokens = _part_of("completion_tokens", "audio")
    output_image_tokens = _part_of("completion_tokens", "images")
    cost = _money(help_text="In currency: the reporting currency, except per model (the model's price currency).")
    avg_response_time = serializers.FloatField(allow_null=True, help_text="Seconds.")
    cost_share = _percent(help_text="Percent of the window's total cost, both in the reporting currency.")


class UsageStatsSummarySerializer(serializers.Serializer):
    class Meta:
        ref_name = "UsageStatsSummary"

    total_calls = serializers.IntegerField()
    successful_calls = serializers.IntegerField()
    failed_calls = serializers.IntegerField()
    success_rate = _percent()
    total_cost = _money()
    unpriced_calls = serializers.IntegerField()
    unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cache_write_5m_tokens = _part_of("prompt_tokens", "written to a 5-minute cache (or one without a duration)")
    cache_write_1h_tokens = _part_of("prompt_tokens", "written to a 1-hour cache")
    input_audio_tokens = _part_of("prompt_tokens", "audio")
    output_audio_tokens = _part_of("completion_tokens", "audio")
    output_image_tokens = _part_of("completion_tokens", "images")
    avg_response_time = serializers.FloatField(allow_null=True)
    currency = serializers.CharField(
        help_text="ISO 4217 code of total_cost: the reporting currency (AICOST_REPORTING_CURRENCY)."
    )


class UsagePlatformSerializer(CallRatesSerializer):
    class Meta:
        ref_name = "UsagePlatform"

    provider = serializers.CharField()
    model_name = serializers.CharField()
    display_name = serializers.CharField()
    currency = serializers.CharField(
        allow_null=True,
        help_text="ISO 4217 code of the model's price currency (cost, current_month_cost); null: unpriced.",
    )
    reporting_cost = _money(help_text="The model's cost in reporting_currency (unconverted calls left out).")
    reporting_currency = serializers.CharField(help_text="ISO 4217: AICOST_REPORTING_CURRENCY.")
    monthly_budget = _money(allow_null=True, help_text="The budget as stated, in budget_currency; null: none.")
    budget_currency = serializers.CharField(
        allow_null=True, help_text="ISO 4217 code of monthly_budget (default: the model's currency)."
    )
    monthly_budget_reporting = _money(
        allow_null=True,
        help_text="monthly_budget in reporting_currency at the exchange rate in force now; null: no budget, "
        "or no rate (budget_convertible false).",
    )
    budget_convertible = serializers.BooleanField(
        allow_null=True,
        help_text="False: no exchange rate from budget_currency is in force, so the budget is not compared "
        "(no budget_used_percent, no alert); null: no budget.",
    )
    current_month_cost = _money(help_text="This budget month's cost, in currency.")
    current_month_reporting_cost = _money(help_text="This budget month's cost, in reporting_currency.")
    current_month_unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
    budget_used_percent = _percent(
        allow_null=True,
        help_text="current_month_reporting_cost in percent of monthly_budget_reporting.",
    )


class UsageProviderSerializer(CallRatesSerializer):
    class Meta:
        ref_name = "UsageProvider"

    provider = serializers.CharField()
    currency = serializers.CharField(help_text="ISO 4217 code of cost: the reporting currency, the summary's.")


class UsageGroupSerializer(CallRatesSerializer):
    class Meta:
        ref_name = "UsageGroup"

    key = GroupKeyField()
    name = KeyLabelField(help_text="group_by=api_key only: the key's name (null: no key).")
    prefix = KeyLabelField(
        help_text="group_by=api_key only: the key's prefix, aic_<prefix>_… (null: no key).",
    )
    currency = serializers.CharField(help_text="ISO 4217 code of cost: the reporting currency.")


class UsageStatsGroupsSerializer(serializers.Serializer):
    """The answer's part with group_by (alone, or added to the per-model answer for group_by=model)."""

    time_range = serializers.CharField()
    time_label = serializers.CharField()
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField()
    group_by = serializers.CharField()
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    summary = UsageStatsSummarySerializer()
    groups = UsageGroupSerializer(many=True)


class UsageStatsAnswerSerializer(UsageStatsGroupsSerializer):
    """What the schema says of the stats answer: the per-model fields without group_by (and with
    group_by=model), the groups' fields with group_by."""

    class Meta:
        ref_name = "UsageStats"

    start = serializers.DateTimeField(allow_null=True, help_text="Null for all time.")
    end = serializers.DateTimeField(help_text="Exclusive.")
    platforms = UsagePlatformSerializer(many=True, required=False, help_text="Without group_by, or with model.")
    providers = UsageProviderSerializer(many=True, required=False, help_text="Without group_by, or with model.")
    group_by = serializers.CharField(required=False, help_text="With group_by: as given.")
    total = serializers.IntegerField(required=False, help_text="With group_by: the number of groups with calls.")
    limit = serializers.IntegerField(required=False, help_text="With group_by.")
    offset = serializers.IntegerField(required=False, help_text="With group_by.")
    groups = UsageGroupSerializer(
        many=True, required=False, help_text="With group_by: one page, by cost (highest first), then by key."
    )


class UsageStatsApi(APIView):
    """GET /api/v1/ai-platforms/stats?time_range=all: totals, per model and per provider."""

    class InputSerializer(UsageFilterSerializer):
        time_range = serializers.ChoiceField(choices=list(TIME_RANGES), default="all")
        group_by = _group_by(
            help_text=f"{GROUP_BY_HELP} Absent: the per-model answer (platforms, providers). Given: the "
            "groups, ranked by cost (highest first, then by key), paged by limit and offset, with their total; "
            "group_by=model adds them to the per-model answer."
        )
        limit = _groups_limit(STATS_GROUPS_LIMIT, "Groups per page (with group_by).")
        offset = serializers.IntegerField(
            min_value=0, default=0, required=False, help_text="Groups to skip (with group_by)."
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageStats"

        SummarySerializer = UsageStatsSummarySerializer
        PlatformSerializer = UsagePlatformSerializer
        ProviderSerializer = UsageProviderSerializer

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
            name="UsageStatsResponse",
            fields={"success": serializers.BooleanField(), "data": UsageStatsAnswerSerializer()},
        ),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        filters, zone = _filters_and_zone(query)
        now = timezone.now()
        group_by = query.get("group_by")
        data = {}
        if group_by in (None, DEFAULT_GROUP_BY):
            data = output_data(
                self.OutputSerializer,
                usage_stats(time_range=query["time_range"], now=now, zone=zone, filters=filters),
            )
        if group_by is not None:
            grouped = usage_stats_groups(
                time_range=query["time_range"],
                now=now,
                zone=zone,
                filters=filters,
                group_by=group_by,
                limit=query["limit"],
                offset=query["offset"],
            )
            data = {**data, **output_data(UsageStatsGroupsSerializer, grouped)}
        return success_response(data)


class UsageSeriesSerializer(serializers.Serializer):
    """One series of the trend with group_by: a group (or other) per day."""

    class Meta:
        ref_name = "UsageSeries"

    class DaySerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageSeriesDay"

        date = serializers.DateField()
        cost = _money(
            help_text="The group's cost that day, in the reporting currency, shown so that a day's series add up "
            "to its cost in daily_trend exactly: each the rounded running sum of the series so far minus the one "
            "before (within 0.00000001 of its own rounding)."
        )
        currency = serializers.CharField(help_text="ISO 4217: the reporting currency.")
        calls = serializers.IntegerField()

    key = GroupKeyField()
    name = KeyLabelField(help_text="group_by=api_key only: the key's name (null: no key, or other).")
    prefix = KeyLabelField(help_text="group_by=api_key only: the key's prefix (null: no key, or other).")
    other = serializers.BooleanField(help_text="True: every group after the first limit (key null), last.")
    groups = serializers.IntegerField(help_text="How many groups the series adds up (1, or other's).")
    cost = _money(help_text="Over the window, in currency.")
    calls = serializers.IntegerField()
    unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
    currency = serializers.CharField(help_text="ISO 4217: the reporting currency.")
    daily = DaySerializer(many=True, help_text="Every day of daily_trend, in its order.")


class UsageDailyTrendApi(APIView):
    """GET /api/v1/ai-platforms/cost-trend-daily?days=7: cost and calls per calendar day, zero-filled."""

    class InputSerializer(UsageFilterSerializer):
        days = serializers.IntegerField(min_value=1, max_value=MAX_TREND_DAYS, default=7)
        group_by = _group_by(
            help_text=f"{GROUP_BY_HELP} Given: series for a stacked chart, the window's limit costliest groups "
            "and other (every other group), whose costs and calls add up to each day's exactly."
        )
        limit = _groups_limit(TREND_GROUPS_LIMIT, "With group_by: how many groups get a series of their own.")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageDailyTrend"

        class DaySerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageDay"

            date = serializers.DateField()
            cost = _money()
            currency = serializers.CharField(help_text="ISO 4217 code of cost: the reporting currency.")
            calls = serializers.IntegerField()
            successful_calls = serializers.IntegerField()
            failed_calls = serializers.IntegerField()
            unpriced_calls = serializers.IntegerField()
            unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
            prompt_tokens = serializers.IntegerField()
            completion_tokens = serializers.IntegerField()
            cached_tokens = serializers.IntegerField()
            reasoning_tokens = serializers.IntegerField()
            cache_write_5m_tokens = _part_of("prompt_tokens", "written to a 5-minute cache (or one without a duration)")
            cache_write_1h_tokens = _part_of("prompt_tokens", "written to a 1-hour cache")
            input_audio_tokens = _part_of("prompt_tokens", "audio")
            output_audio_tokens = _part_of("completion_tokens", "audio")
            output_image_tokens = _part_of("completion_tokens", "images")

        class SummarySerializer(serializers.Serializer):
            class Meta:
                ref_name = "UsageDailyTrendSummary"

            total_cost = _money()
            avg_daily_cost = _money()
            max_daily_cost = _money()
            min_daily_cost = _money()
            total_calls = serializers.IntegerField()
            unpriced_calls = serializers.IntegerField()
            unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
            currency = serializers.CharField(
                help_text="ISO 4217 code of every cost here and in daily_trend: the reporting currency."
            )

        days = serializers.IntegerField()
        time_zone = serializers.CharField()
        daily_trend = DaySerializer(many=True)
        summary = SummarySerializer()

    class GroupsOutputSerializer(OutputSerializer):
        class Meta:
            ref_name = "UsageDailyTrendGroups"

        group_by = serializers.CharField()
        limit = serializers.IntegerField()
        total = serializers.IntegerField()
        series = UsageSeriesSerializer(many=True)

    class AnswerSerializer(OutputSerializer):
        """What the schema says: the series' fields are there with group_by."""

        class Meta:
            ref_name = "UsageDailyTrend"

        group_by = serializers.CharField(required=False, help_text="With group_by: as given.")
        limit = serializers.IntegerField(required=False, help_text="With group_by.")
        total = serializers.IntegerField(required=False, help_text="With group_by: groups with calls in the window.")
        series = UsageSeriesSerializer(
            many=True, required=False, help_text="With group_by: the top limit groups by cost, then other."
        )

    @extend_schema(
        parameters=[InputSerializer],
        responses=inline_serializer(
            name="UsageDailyTrendResponse", fields={"success": serializers.BooleanField(), "data": AnswerSerializer()}
        ),
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data
        filters, zone = _filters_and_zone(query)
        if query.get("group_by") is None:
            data = usage_daily_trend(days=query["days"], now=timezone.now(), zone=zone, filters=filters)
            return success_response(output_data(self.OutputSerializer, data))
        data = usage_daily_trend_groups(
            days=query["days"],
            now=timezone.now(),
            zone=zone,
            filters=filters,
            group_by=query["group_by"],
            limit=query["limit"],
        )
        return success_response(output_data(self.GroupsOutputSerializer, data))


class UsageExportApi(APIView):
    """GET /api/v1/usage/export.csv: the raw log rows behind the stats, as a streamed CSV download."""

    content_negotiation_class = ErrorsAsJsonNegotiation

    class InputSerializer(UsageFilterSerializer):
        time_range = serializers.ChoiceField(choices=list(TIME_RANGES), default="all")
        group_by = _group_by(
            help_text=f"{GROUP_BY_HELP} Given: one row per group instead of one per call, ranked as the stats "
            "rank them, with its counts and its exact reporting cost."
        )

    @extend_schema(
        operation_id="v1_usage_export_csv",
        parameters=[InputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description=(
                    "With group_by: a header row (group_by's name, for api_key then api_key_name and api_key_prefix, "
                    f"then {', '.join(usage_export_group_columns('')[1:])}), then one row per group, ranked by cost "
                    "(highest first), then by key; reporting_cost the exact sum of the calls' stored reporting costs "
                    "(unconverted calls counted, not added). Without: "
                    "a header row, then one row per logged call, oldest first: "
                    f"{', '.join(USAGE_EXPORT_COLUMNS)}. The same rows the stats API counts for the same "
                    "parameters. Money is the stored decimal, timestamps ISO 8601 with offset (in tz), "
                    "free text starting with = + - @ is prefixed with a single quote. Errors are JSON. "
                    "cost is in currency (the price currency of the call's price version, else its model's; "
                    "both empty for an unpriced call); reporting_cost is the cost in reporting_currency "
                    "(AICOST_REPORTING_CURRENCY), converted at ingestion at exchange_rate, the value of the "
                    "rate in force at the call's timestamp (units of reporting_currency per unit of currency; "
                    "empty when the call is in the reporting currency). A priced call with reporting_cost "
                    "empty is unconverted: no rate was in force, and it is not counted as 0."
                ),
            )
        },
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters, zone = _filters_and_zone(params.validated_data)
        time_range = params.validated_data["time_range"]
        group_by = params.validated_data.get("group_by")
        start, end = time_range_window(time_range=time_range, now=timezone.now(), zone=zone)
        filename = usage_export_filename(label=time_range, start=start, end=end, group_by=group_by)
        if group_by is None:
            rows = usage_export_rows(start=start, end=end, filters=filters)
            return usage_csv_response(rows, zone=zone, filename=filename)
        rows = usage_export_group_rows(start=start, end=end, filters=filters, group_by=group_by)
        columns = usage_export_group_columns(group_by)
        return usage_csv_response(
            rows, zone=zone, filename=filename, chunks=lambda rows: usage_groups_csv_chunks(rows, columns=columns)
        )


# --- One decision -----------------------------------------------------------------------------------


# Every token kind (usage.records.TOKEN_FIELDS) as an integer field: a call's counts, or their sums.
TokenCountsSerializer = type(
    "TokenCountsSerializer",
    (serializers.Serializer,),
    {name: serializers.IntegerField() for name in TOKEN_FIELDS},
)


class UsageDecisionApi(APIView):
    """GET /api/v1/usage/decisions/<decision_id>: the calls recorded under one decision id, and their
    totals. Read scope (or staff): the calls carry free text (purpose, error_message)."""

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(
            required=False, default=DECISION_MAX_CALLS, min_value=1, max_value=DECISION_MAX_CALLS
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageDecision"

        class CallSerializer(TokenCountsSerializer):
            class Meta:
                ref_name = "UsageDecisionCall"

            id = serializers.IntegerField()
            timestamp = serializers.DateTimeField()
            model_name = serializers.CharField(help_text="The model the call is counted under.")
            sent_model_name = serializers.CharField(help_text="The name as sent (empty: as model_name).")
            user_id = serializers.IntegerField(allow_null=True)
            purpose = serializers.CharField()
            cost = _money(allow_null=True, help_text="In currency; null: unpriced.")
            currency = serializers.CharField(help_text="ISO 4217 code of cost: the call's price currency.")
            reporting_cost = _money(allow_null=True, help_text="In reporting_currency; null: unpriced or unconverted.")
            reporting_currency = serializers.CharField()
            unconverted = serializers.BooleanField(help_text=UNCONVERTED_HELP)
            cost_source = serializers.CharField()
            success = serializers.BooleanField()
            response_time = serializers.FloatField(allow_null=True, help_text="Seconds.")
            error_message = serializers.CharField()

        class TotalsSerializer(TokenCountsSerializer):
            class Meta:
                ref_name = "UsageDecisionTotals"

            calls = serializers.IntegerField()
            successful_calls = serializers.IntegerField()
            failed_calls = serializers.IntegerField()
            reporting_cost = _money(
                help_text="Every call's reporting cost (unconverted and unpriced ones add nothing)."
            )
            currency = serializers.CharField(help_text="ISO 4217 code of reporting_cost: the reporting currency.")
            unconverted_calls = serializers.IntegerField(help_text=UNCONVERTED_HELP)
            unpriced_calls = serializers.IntegerField()
            first_call_at = serializers.DateTimeField()
            last_call_at = serializers.DateTimeField()

        decision_id = serializers.CharField()
        totals = TotalsSerializer(help_text="Over every call of the decision, also beyond limit.")
        calls = CallSerializer(many=True, help_text="Oldest first, at most limit.")
        calls_truncated = serializers.BooleanField(help_text="True: the decision has more calls than listed.")

    @extend_schema(
        parameters=[InputSerializer],
        responses={
            200: inline_serializer(
                name="UsageDecisionResponse",
                fields={"success": serializers.BooleanField(), "data": OutputSerializer()},
            ),
            404: ErrorResponseSerializer,
        },
    )
    def get(self, request, decision_id: str):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        totals = usage_decision_totals(decision_id=decision_id)
        if not totals["calls"]:
            raise ApiError(
                gettext("No calls are recorded under decision id %(decision)s.") % {"decision": repr(decision_id)},
                code="unknown_decision",
                status_code=status.HTTP_404_NOT_FOUND,
                field="decision_id",
            )
        calls = usage_decision_calls(decision_id=decision_id, limit=params.validated_data["limit"])
        data = {
            "decision_id": decision_id,
            "totals": totals,
            "calls": calls,
            "calls_truncated": len(calls) < totals["calls"],
        }
        return success_response(self.OutputSerializer(data).data)
