"""Money and percentages leave the APIs as JSON numbers written from the exact Decimal (never through a
float), with the currency beside each money figure; money comes in exactly, as a JSON number or a
string; the OpenAPI schema says so. README, Money: "Money in JSON"."""

import io
import json
import urllib.error
import urllib.request
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from alerts.services import global_budget_set
from core.api.parsers import JSONParser
from core.api.renderers import DecimalJSONEncoder, JSONRenderer, decimal_json_text
from ingest.services import usage_record
from tests.alert_helpers import set_budget
from tests.api_helpers import exact_json
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

STATS = "/api/v1/ai-platforms/stats"
TREND = "/api/v1/ai-platforms/cost-trend-daily"
INGEST = "/api/v1/usage/"

# --- The encoder ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("36.64875634"), "36.64875634"),  # float(...) would give 36.648756339999996.
        (Decimal("2.2E-7"), "0.00000022"),  # No exponent.
        (Decimal("0E-24"), "0"),
        (Decimal("-0E-8"), "0"),
        (Decimal("1.50000000"), "1.5"),
        (Decimal("100.00"), "100"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-12.5000"), "-12.5"),
        (Decimal("0.000123456789012345678901"), "0.000123456789012345678901"),  # 24 places, 21 digits.
        (Decimal("9999999999999999.999999999999999999999999"), "9999999999999999.999999999999999999999999"),
        (Decimal("1" * 90 + ".5"), "1" * 90 + ".5"),  # More digits than any context rounds to: none dropped.
    ],
)
def test_a_decimal_is_written_as_its_exact_plain_number(value, text):
    assert decimal_json_text(value) == text
    assert JSONRenderer().render({"cost": value}) == f'{{"cost":{text}}}'.encode()
    assert json.loads(text, parse_float=Decimal) == value


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=24, min_value=-(10**16), max_value=10**16)
    | st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**12)
    | st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30)
)
def test_any_finite_decimal_reads_back_exactly(value):
    rendered = JSONRenderer().render({"a": [value, {"b": value}], "text": "x"})
    parsed = json.loads(rendered, parse_float=Decimal)
    assert parsed == {"a": [value, {"b": value}], "text": "x"}
    assert b"E" not in rendered
    assert b"e" not in rendered.replace(b"text", b"")


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_json_has_no_number_for_nan_or_infinity(value):
    with pytest.raises(ValueError, match="not JSON compliant"):
        JSONRenderer().render({"cost": value})


def test_strings_stay_strings_whatever_they_hold():
    """Only Decimals become numbers. The marks the encoder puts around a number's text (random per
    process) never reach the output, so no client can send a string that would turn into a number."""
    marked = DecimalJSONEncoder().default(Decimal("1.5"))
    rendered = JSONRenderer().render({"cost": Decimal("1.5"), "text": "36.64875634", "quoted": '"1.5"'})
    assert rendered == b'{"cost":1.5,"text":"36.64875634","quoted":"\\"1.5\\""}'
    opening, closing = marked.split("1.5")
    assert opening
    assert closing
    assert opening.encode() not in rendered
    assert closing.encode() not in rendered


def test_indented_output_and_drf_types_are_drfs():
    rendered = JSONRenderer().render(
        {"cost": Decimal("0.10"), "day": timezone.now().date()}, "application/json; indent=2"
    )
    assert rendered.startswith(b'{\n  "cost": 0.1,\n  "day": "')


# --- The parser -----------------------------------------------------------------------------------


def test_json_numbers_with_a_fraction_are_read_as_decimals_exactly():
    body = b'{"cost": 0.1, "long": 0.000123456789012345678901, "whole": 5, "exp": 1e-7, "time": 1.8}'
    parsed = JSONParser().parse(io.BytesIO(body))
    assert parsed == {
        "cost": Decimal("0.1"),
        "long": Decimal("0.000123456789012345678901"),
        "whole": 5,
        "exp": Decimal("1E-7"),
        "time": Decimal("1.8"),
    }
    assert type(parsed["whole"]) is int


@pytest.mark.django_db
def test_the_ingested_cost_is_the_json_number_as_written(writer):
    # The body as written (a Python float could not even hold the second cost).
    records = b"""[
        {"model_name": "gpt-4o", "cost": 0.1, "response_time": 1.8},
        {"model_name": "gpt-4o", "cost": 0.000123456789012345678901},
        {"model_name": "gpt-4o", "cost": "0.000000000000000000000001"},
        {"model_name": "gpt-4o", "cost": 7}
    ]"""
    response = writer.post(INGEST, records, content_type="application/json")
    assert response.status_code == 201, response.content
    logs = list(UsageLog.objects.order_by("id"))
    expected = [Decimal("0.1"), Decimal("0.000123456789012345678901"), Decimal("1E-24"), Decimal(7)]
    assert [log.cost for log in logs] == expected
    assert logs[0].response_time == 1.8  # A float field still gets the float the number always gave.
    answered = exact_json(response)["data"]["records"]
    assert [record["cost"] for record in answered] == expected
    assert {record["currency"] for record in answered} == {"USD"}  # gpt-4o's price currency.
    assert b'"cost":0.000000000000000000000001,' in response.content


@pytest.mark.django_db
def test_a_stored_cost_of_a_model_without_prices_has_no_currency(writer):
    body = b'[{"model_name": "my-finetune", "cost": 0.5}, {"model_name": "my-finetune"}]'
    records = exact_json(writer.post(INGEST, body, content_type="application/json"))["data"]["records"]
    assert [(record["cost"], record["currency"]) for record in records] == [(Decimal("0.5"), None), (None, None)]


@pytest.mark.django_db
def test_a_cost_with_more_places_than_stored_is_refused_not_rounded(writer):
    response = writer.post(
        INGEST, b'{"model_name": "gpt-4o", "cost": 0.1234567890123456789012345}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "records[0].cost"
    assert not UsageLog.objects.exists()


@pytest.mark.django_db
def test_json_number_costs_and_times_take_the_fast_path(writer):
    body = b'[{"model_name": "gpt-4o", "cost": 0.25, "response_time": 1.5}, {"model_name": "gpt-4o", "cost": 3}]'
    decimal_field = serializers.DecimalField
    spy = mock.patch.object(
        decimal_field, "to_internal_value", autospec=True, side_effect=decimal_field.to_internal_value
    )
    with spy as drf:
        response = writer.post(INGEST, body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert drf.call_count == 0  # core.api.serializers' converters take Decimal numbers as DRF would.
    assert [log.cost for log in UsageLog.objects.order_by("id")] == [Decimal("0.25"), Decimal(3)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"model_name": 1.5}', "records[0].model_name"),  # A fraction is no text (an integer still is).
        (b'{"model_name": "gpt-4o", "prompt_tokens": 1.5}', "records[0].prompt_tokens"),
        (b'{"model_name": "gpt-4o", "response_time": 1e400}', "records[0].response_time"),
        (b'{"model_name": "gpt-4o", "cost": 1e400}', "records[0].cost"),
        (b'{"model_name": "gpt-4o", "cost": -0.5}', "records[0].cost"),
    ],
)
def test_numbers_that_do_not_fit_are_400_naming_the_field(writer, body, field):
    response = writer.post(INGEST, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not UsageLog.objects.exists()


# --- Through the API: stats, trend, budgets, alerts ------------------------------------------------


def _seed() -> None:
    """Provider costs whose sums a float would misstate (0.1 + 0.2), and one with many digits."""
    now = timezone.now()
    set_budget("gpt-4o", "100")
    global_budget_set(monthly_budget=Decimal("1000"))
    for cost in ("0.1", "0.2", "36.34875634"):
        usage_record(model_name="gpt-4o", cost=Decimal(cost), response_time=1.0, timestamp=now - timedelta(minutes=5))
    usage_record(model_name="deepseek-chat", cost=Decimal("0.00000022"), success=False, timestamp=now)


@pytest.mark.django_db
def test_stats_money_and_percentages_are_exact_numbers_with_their_currency(reader):
    _seed()
    response = reader.get(STATS, {"time_range": "all"})
    body = response.content
    data = exact_json(response)["data"]
    summary = data["summary"]
    assert summary["total_cost"] == Decimal("36.64875656")
    assert b'"total_cost":36.64875656,' in body
    assert (summary["success_rate"], summary["currency"]) == (75, "USD")
    assert b'"success_rate":75,' in body
    platforms = {p["model_name"]: p for p in data["platforms"]}
    gpt4o, deepseek = platforms["gpt-4o"], platforms["deepseek-chat"]
    assert (gpt4o["cost"], gpt4o["currency"], gpt4o["monthly_budget"]) == (Decimal("36.64875634"), "USD", 100)
    assert gpt4o["budget_used_percent"] == Decimal("36.65")
    assert gpt4o["cost_share"] == Decimal("100.00")
    assert (deepseek["cost"], deepseek["success_rate"]) == (Decimal("0.00000022"), 0)
    assert b'"cost":0.00000022,' in body
    assert {p["provider"]: (p["cost"], p["currency"]) for p in data["providers"]} == {
        "OpenAI": (Decimal("36.64875634"), "USD"),
        "DeepSeek": (Decimal("0.00000022"), "USD"),
    }
    # What a JavaScript client reads: numbers, so .toFixed() works (the incident's page broke on strings).
    plain = response.json()["data"]["summary"]
    assert isinstance(plain["total_cost"], float)
    assert isinstance(plain["success_rate"], int)


@pytest.mark.django_db
def test_trend_days_are_exact_numbers_with_their_currency(reader):
    _seed()
    response = reader.get(TREND, {"days": 2})
    data = exact_json(response)["data"]
    days = data["daily_trend"]
    assert {day["currency"] for day in days} == {data["summary"]["currency"]} == {"USD"}
    assert sum(day["cost"] for day in days) == data["summary"]["total_cost"] == Decimal("36.64875656")
    assert data["summary"]["avg_daily_cost"] == Decimal("18.32437828")
    assert b'"total_cost":36.64875656,' in response.content


@pytest.mark.django_db
def test_budget_check_and_alerts_are_exact_numbers_with_their_currency(reader):
    set_budget("gpt-4o", "0.3")
    usage_record(model_name="gpt-4o", cost=Decimal("0.1"))
    usage_record(model_name="gpt-4o", cost=Decimal("0.2"))  # 0.1 + 0.2: exactly the budget.
    check = exact_json(reader.get("/api/v1/budget/check", {"model": "gpt-4o"}))["data"]["model_budget"]
    forecast = check.pop("forecast")  # Its figures are exact numbers too, in the budget's currency.
    assert (forecast["currency"], forecast["daily_pace"], forecast["already_reached"]) == ("USD", Decimal("0.3"), True)
    assert check == {
        "monthly_budget": Decimal("0.3"),
        "spent": Decimal("0.3"),
        "remaining": 0,
        "percent_used": 100,
        "currency": "USD",
        "within_budget": False,
        "budget_currency": "USD",
        "monthly_budget_reporting": Decimal("0.3"),  # No conversion: the budget is in the reporting currency.
        "exchange_rate": None,
        "convertible": True,
        "unconverted_calls": 0,
    }
    response = reader.get("/api/v1/alerts/", {"model": "gpt-4o"})
    alerts = exact_json(response)["data"]["results"]
    assert sorted(
        (a["threshold_percent"], a["usage_percentage"], a["current_cost"], a["currency"]) for a in alerts
    ) == [(threshold, 100, Decimal("0.3"), "USD") for threshold in (50, 80, 100)]
    assert all(a["details"]["spent"] == a["current_cost"] for a in alerts)
    assert b'"current_cost":0.3,' in response.content


@pytest.mark.django_db
def test_spend_spike_and_error_rate_alerts_carry_the_models_currency(reader):
    from alerts.models import AlertType, BudgetAlert

    BudgetAlert.objects.create(
        model_name="deepseek-chat",
        alert_type=AlertType.SPEND_SPIKE,
        alert_level="warning",
        current_cost=Decimal("5.5"),
        budget_limit=Decimal("1.25"),
        usage_percentage=Decimal("440.00"),
        threshold_percent=300,
        period_start=timezone.now().date(),
        details={"cost_today": "5.5", "trailing_daily_average": "1.25", "trailing_days": 7},
        message="spike",
    )
    BudgetAlert.objects.create(
        model_name="my-finetune",
        alert_type=AlertType.ERROR_RATE,
        alert_level="warning",
        current_cost=Decimal(0),
        usage_percentage=Decimal("50.00"),
        threshold_percent=20,
        period_start=timezone.now().date(),
        details={"calls": 10, "failed_calls": 5},
        message="errors",
    )
    results = {a["model_name"]: a for a in exact_json(reader.get("/api/v1/alerts/"))["data"]["results"]}
    spike = results["deepseek-chat"]
    assert (spike["currency"], spike["current_cost"], spike["budget_limit"]) == ("USD", Decimal("5.5"), Decimal("1.25"))
    assert spike["details"] == {
        "cost_today": Decimal("5.5"),
        "trailing_daily_average": Decimal("1.25"),
        "trailing_days": 7,
    }
    assert results["my-finetune"]["currency"] is None  # No prices: no currency known.


# --- The schema -----------------------------------------------------------------------------------

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
COMPONENTS = SCHEMA["components"]["schemas"]
PERCENTAGES = {"success_rate", "cost_share", "budget_used_percent", "usage_percentage", "percent_used"}


def _decimal_properties(component: dict) -> dict:
    return {name: prop for name, prop in component.get("properties", {}).items() if prop.get("format") == "decimal"}


def test_every_decimal_in_the_schema_is_a_json_number_with_its_precision():
    seen = set()
    for name, component in COMPONENTS.items():
        for field, prop in _decimal_properties(component).items():
            seen.add(field)
            assert prop["type"] == "number", (name, field)
            assert "exact decimal" in prop["description"].lower(), (name, field)
    assert seen >= PERCENTAGES | {"total_cost", "cost", "spent", "current_cost", "monthly_budget", "avg_daily_cost"}
    assert not any(
        prop.get("type") == "string" and prop.get("format") == "decimal"
        for component in COMPONENTS.values()
        for prop in component.get("properties", {}).values()
    )
    summary = COMPONENTS["UsageStatsSummary"]["properties"]
    assert summary["total_cost"]["description"].startswith("An exact decimal with at most 8 decimal places")
    assert "at most 2 decimal places" in summary["success_rate"]["description"]
    stored = COMPONENTS["UsageStoredRecord"]["properties"]["cost"]
    assert "at most 24 decimal places" in stored["description"]
    assert stored["nullable"] is True


def test_money_in_a_request_is_a_number_or_a_string():
    cost = COMPONENTS["UsageRecordRequest"]["properties"]["cost"]
    assert [option["type"] for option in cost["anyOf"]] == ["number", "string"]
    assert {option["format"] for option in cost["anyOf"]} == {"decimal"}


def test_every_money_figure_in_the_schema_has_a_currency_beside_it():
    checked = []
    for name, component in COMPONENTS.items():
        money = set(_decimal_properties(component)) - PERCENTAGES
        if money and not name.endswith("Request"):
            assert "currency" in component["properties"], (name, sorted(money))
            checked.append(name)
    assert len(checked) >= 8, checked  # Summary, model, provider, day, trend summary, budget, alert, stored row.


def test_drf_decimal_fields_hand_the_renderer_decimals():
    field = serializers.DecimalField(max_digits=40, decimal_places=8)
    assert field.to_representation(Decimal("1.5")) == Decimal("1.50000000")  # A Decimal, for the renderer.


# --- Over real HTTP: gunicorn as production runs it ------------------------------------------------


def _http(url: str, path: str, *, key: str, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}{path}", data=body, headers=headers)  # noqa: S310 -- loopback http://
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 -- loopback http://
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # Committed: gunicorn must see it.
def test_exact_digits_over_http_through_gunicorn():
    _key, raw_key = api_key_create(name="json-numbers", scope=ApiKeyScope.READ_WRITE)
    records = (
        b'[{"model_name": "gpt-4o", "cost": 36.64875634}, {"model_name": "gpt-4o", "cost": 0.000000000000000000000001}]'
    )
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1) as url:
        status, posted = _http(url, INGEST, key=raw_key, body=records)
        assert status == 201, posted
        status, stats = _http(url, f"{STATS}?time_range=all", key=raw_key)
        assert status == 200, stats
    stored = json.loads(posted, parse_float=Decimal)["data"]["records"]
    assert [record["cost"] for record in stored] == [Decimal("36.64875634"), Decimal("1E-24")]
    assert [log.cost for log in UsageLog.objects.order_by("id")] == [Decimal("36.64875634"), Decimal("1E-24")]
    summary = json.loads(stats, parse_float=Decimal)["data"]["summary"]
    assert (summary["total_cost"], summary["currency"], summary["success_rate"]) == (Decimal("36.64875634"), "USD", 100)
    assert b'"total_cost":36.64875634,' in stats
