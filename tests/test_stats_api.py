from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.api.serializers import output_data
from ingest.services import usage_record_batch
from pricing.models import ModelPricing
from tests.api_helpers import HttpsApiClient, exact_json
from usage.apis import UsageDailyTrendApi
from usage.reports import usage_daily_trend
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters

pytestmark = pytest.mark.django_db
STATS = "/api/v1/ai-platforms/stats"
TREND = "/api/v1/ai-platforms/cost-trend-daily"


def _seed() -> None:
    now = timezone.now()
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=1_000_000, completion_tokens=0, timestamp=now),
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=0, completion_tokens=0, success=False, timestamp=now),
            UsageRecordInput(
                model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0, user_id=5, purpose="batch"
            ),
            UsageRecordInput(model_name="llama-local", prompt_tokens=10, completion_tokens=10),
            UsageRecordInput(model_name="gpt-4o-mini", prompt_tokens=1_000_000, timestamp=now - timedelta(days=40)),
        ]
    )


def test_empty_database_gives_zeros_not_an_error(reader):
    body = reader.get(STATS, {"time_range": "all"}).json()
    assert body["success"] is True
    assert body["data"]["summary"]["total_calls"] == 0
    assert Decimal(body["data"]["summary"]["total_cost"]) == 0
    assert body["data"]["platforms"] == []
    trend = reader.get(TREND, {"days": 7}).json()["data"]
    assert len(trend["daily_trend"]) == 7
    assert all(Decimal(day["cost"]) == 0 for day in trend["daily_trend"])
    assert Decimal(trend["summary"]["max_daily_cost"]) == 0


def test_stats_shape_and_numbers(reader):
    _seed()
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal("10"))
    data = exact_json(reader.get(STATS, {"time_range": "all"}))["data"]
    assert (data["time_range"], data["time_label"]) == ("all", "All time")
    summary = data["summary"]
    assert (summary["total_calls"], summary["successful_calls"], summary["failed_calls"]) == (5, 4, 1)
    assert summary["success_rate"] == Decimal("80.00")
    assert summary["unpriced_calls"] == 1
    assert Decimal(summary["total_cost"]) == Decimal("2.50") + Decimal("0.28") + Decimal("0.15")
    platforms = {p["model_name"]: p for p in data["platforms"]}
    gpt4o = platforms["gpt-4o"]
    assert (gpt4o["provider"], gpt4o["calls"], gpt4o["failed_calls"], gpt4o["success_rate"]) == (
        "OpenAI",
        2,
        1,
        Decimal("50.00"),
    )
    assert gpt4o["cost"] == Decimal("2.50000000")
    assert gpt4o["budget_used_percent"] == Decimal("25.00")
    assert (gpt4o["currency"], summary["currency"]) == ("USD", "USD")
    assert {p["provider"]: p["currency"] for p in data["providers"]}["OpenAI"] == "USD"
    assert platforms["llama-local"]["provider"] == "unknown"
    assert platforms["llama-local"]["unpriced_calls"] == 1
    assert {p["provider"] for p in data["providers"]} == {"OpenAI", "DeepSeek", "unknown"}
    assert sum(Decimal(p["cost_share"]) for p in data["platforms"]) == pytest.approx(Decimal(100), abs=Decimal("0.05"))


@pytest.mark.parametrize(
    ("params", "calls"),
    [
        ({"time_range": "7d"}, 4),
        ({"time_range": "90d"}, 5),
        ({"model": "gpt-4o"}, 2),
        ({"provider": "OpenAI"}, 3),
        ({"provider": "openai", "model": "deepseek-chat"}, 0),
        ({"user_id": 5}, 1),
        ({"purpose": "batch"}, 1),
    ],
)
def test_filters_and_ranges(reader, params, calls):
    _seed()
    assert reader.get(STATS, params).json()["data"]["summary"]["total_calls"] == calls


def test_trend_is_zero_filled_in_the_requested_zone(reader):
    _seed()
    data = exact_json(reader.get(TREND, {"days": 30, "tz": "Asia/Kathmandu"}))["data"]
    assert data["days"] == 30
    assert data["time_zone"] == "Asia/Kathmandu"
    assert len(data["daily_trend"]) == 30
    dates = [day["date"] for day in data["daily_trend"]]
    assert dates == sorted(dates)
    assert sum(day["calls"] for day in data["daily_trend"]) == 4  # The 40-day-old call is outside.
    summary = data["summary"]
    assert Decimal(summary["total_cost"]) == Decimal("2.78")
    assert Decimal(summary["avg_daily_cost"]) == (Decimal("2.78") / 30).quantize(Decimal("0.00000001"))
    assert Decimal(summary["min_daily_cost"]) == 0
    assert {day["currency"] for day in data["daily_trend"]} == {summary["currency"]} == {"USD"}


def test_trend_days_render_as_their_serializer_says():
    """The trend renders through the compiled output (speed): exactly what its OutputSerializer gives."""
    _seed()
    data = usage_daily_trend(days=45, now=timezone.now(), zone=ZoneInfo("Asia/Kathmandu"), filters=UsageFilters())
    assert any(day["calls"] for day in data["daily_trend"])
    assert output_data(UsageDailyTrendApi.OutputSerializer, data) == UsageDailyTrendApi.OutputSerializer(data).data


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        (STATS, {"time_range": "bogus"}, "time_range"),
        (TREND, {"days": 0}, "days"),
        (TREND, {"days": -1}, "days"),
        (TREND, {"days": "abc"}, "days"),
        (TREND, {"days": 100000}, "days"),
        (TREND, {"tz": "Mars/Olympus_Mons"}, "tz"),
        (TREND, {"tz": "../../etc/passwd"}, "tz"),
        (STATS, {"user_id": "me"}, "user_id"),
    ],
)
def test_bad_parameters_are_400_never_500(reader, url, params, field):
    response = reader.get(url, params)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "invalid"
    assert body["error"]["field"] == field
    assert body["error"]["message"]


@pytest.mark.parametrize("url", [STATS, TREND])
def test_reading_needs_staff_or_a_read_key(url, writer, staff_client):
    assert HttpsApiClient().get(url).status_code == 401
    assert writer.get(url).status_code == 403
    assert staff_client.get(url).status_code == 200


def test_openapi_schema_and_docs(staff_client):
    schema = staff_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/ai-platforms/stats", "/api/v1/ai-platforms/cost-trend-daily", "/api/v1/usage/"} <= set(
        schema["paths"]
    )
    money = schema["components"]["schemas"]["UsageStatsSummary"]["properties"]["total_cost"]
    assert money["type"] == "number"
    assert money["format"] == "decimal"
    docs = staff_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"//cdn" not in docs.content
    assert b"https://" not in docs.content.replace(b"https://testserver", b"")


def test_schema_is_not_public(client):
    assert client.get("/api/schema/").status_code in (401, 403)


def test_stats_read_the_pricing_table_as_it_is_at_each_request(reader):
    """The pricing query is compiled once per process (usage.reports): its rows are read every time."""
    _seed()
    first = {p["model_name"]: p for p in exact_json(reader.get(STATS, {"time_range": "all"}))["data"]["platforms"]}
    assert (first["gpt-4o"]["display_name"], first["gpt-4o"]["monthly_budget"]) != ("GPT-4o renamed", Decimal("7"))
    ModelPricing.objects.filter(model_name="gpt-4o").update(
        display_name="GPT-4o renamed", monthly_budget=Decimal("7"), budget_currency="CNY"
    )
    ModelPricing.objects.filter(model_name="deepseek-chat").update(provider="elsewhere")
    again = {p["model_name"]: p for p in exact_json(reader.get(STATS, {"time_range": "all"}))["data"]["platforms"]}
    assert (again["gpt-4o"]["display_name"], again["gpt-4o"]["monthly_budget"]) == ("GPT-4o renamed", Decimal("7"))
    assert again["gpt-4o"]["budget_currency"] == "CNY"
    assert again["deepseek-chat"]["provider"] == "elsewhere"
    assert again["llama-local"]["provider"] == "unknown"  # Unpriced: no row, whatever the others.


def test_compiled_output_writes_int_and_str_subclasses_as_drf_does():
    """Plain ints and strs are written as they are; a bool or a str subclass still goes through int()/str()."""

    class Code(str):
        pass

    data = usage_daily_trend(days=2, now=timezone.now(), zone=ZoneInfo("UTC"), filters=UsageFilters())
    data["daily_trend"][0] |= {"calls": True, "currency": Code("USD")}
    written = output_data(UsageDailyTrendApi.OutputSerializer, data)
    assert written == UsageDailyTrendApi.OutputSerializer(data).data
    day = written["daily_trend"][0]
    assert (type(day["calls"]), type(day["currency"]), day["calls"]) == (int, str, 1)
