"""GET /api/v1/alerts/ and GET /api/v1/budget/check."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from alerts.models import AlertStatus
from alerts.selectors import budget_alert_list
from alerts.services import budget_alerts_acknowledge, budget_alerts_resolve, global_budget_set
from ingest.services import usage_record
from tests.alert_helpers import set_budget
from tests.api_helpers import exact_json
from usage.keys import api_key_create

pytestmark = pytest.mark.django_db


def key_client(scope: str) -> APIClient:
    _key, raw_key = api_key_create(name=f"{scope}-client", scope=scope)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return api


@pytest.fixture
def reader() -> APIClient:
    return key_client("read")


@pytest.fixture
def writer() -> APIClient:
    return key_client("write_usage")


def get(api: APIClient, path: str, **params):
    return api.get(path, params, secure=True)


@pytest.fixture
def some_alerts():
    set_budget("gpt-4o", "10")
    set_budget("claude-haiku-4-5", "1")
    usage_record(model_name="gpt-4o", cost=Decimal("9"))  # 50, 80
    usage_record(model_name="claude-haiku-4-5", cost=Decimal("0.6"))  # 50
    alerts = {(a.model_name, a.threshold_percent): a for a in budget_alert_list()}
    budget_alerts_acknowledge(alert_ids=[alerts["gpt-4o", 80].pk])
    budget_alerts_resolve(alert_ids=[alerts["gpt-4o", 50].pk])
    return alerts


def test_open_alerts_for_the_cost_page(reader, some_alerts):
    response = get(reader, "/api/v1/alerts/", is_resolved="false")
    assert response.status_code == 200
    data = exact_json(response)["data"]
    assert data["count"] == 2
    assert {(a["model_name"], a["threshold_percent"], a["status"]) for a in data["results"]} == {
        ("gpt-4o", 80, "acknowledged"),
        ("claude-haiku-4-5", 50, "open"),
    }
    haiku = next(a for a in data["results"] if a["model_name"] == "claude-haiku-4-5")
    # Money and percentages are JSON numbers with the stored digits; the currency stands beside them.
    assert (haiku["current_cost"], haiku["budget_limit"], haiku["usage_percentage"]) == (
        Decimal("0.6"),
        Decimal("1"),
        Decimal("60.00"),
    )
    assert b'"current_cost":0.6,' in response.content
    assert haiku["currency"] == "USD"
    assert haiku["details"] == {
        "spent": Decimal("0.6"),
        "budget": Decimal("1"),
        "currency": "USD",
        "budget_amount": Decimal("1"),  # The budget as stated, in budget_currency (here the reporting one).
        "budget_currency": "USD",
        "exchange_rate": None,
        "unconverted_calls": 0,
    }
    assert b'"details":{"spent":0.6,"budget":1,"currency":"USD","budget_amount":1,' in response.content
    assert set(haiku) >= {"id", "alert_type", "alert_level", "message", "period_start", "created_at", "budget_limit"}


def test_filters_and_limit(reader, some_alerts):
    by_status = get(reader, "/api/v1/alerts/", status="resolved").json()["data"]["results"]
    assert [(a["model_name"], a["threshold_percent"]) for a in by_status] == [("gpt-4o", 50)]
    by_model = get(reader, "/api/v1/alerts/", model="gpt-4o").json()["data"]
    assert by_model["count"] == 2
    page = get(reader, "/api/v1/alerts/", limit=1, offset=1).json()["data"]
    assert (page["count"], page["limit"], page["offset"], len(page["results"])) == (3, 1, 1, 1)
    resolved = get(reader, "/api/v1/alerts/", is_resolved="true").json()["data"]["results"]
    assert [a["status"] for a in resolved] == [AlertStatus.RESOLVED]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "closed"}, "status"), ({"limit": "0"}, "limit"), ({"is_resolved": "maybe"}, "is_resolved")],
)
def test_bad_filters_are_400_naming_the_field(reader, params, field):
    response = get(reader, "/api/v1/alerts/", **params)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "invalid"
    assert field in body["error"]["fields"]


def test_alerts_need_read_access(writer):
    assert get(APIClient(), "/api/v1/alerts/").status_code == 401
    assert get(writer, "/api/v1/alerts/").status_code == 403


def test_staff_session_reads_alerts(staff_user):
    api = APIClient()
    api.force_login(staff_user)
    assert get(api, "/api/v1/alerts/").status_code == 200


def test_budget_check_within_budget(writer):
    set_budget("gpt-4o", "10")
    usage_record(model_name="gpt-4o", cost=Decimal("2.5"))
    response = get(writer, "/api/v1/budget/check", model="gpt-4o")
    assert response.status_code == 200
    data = exact_json(response)["data"]
    assert data["within_budget"] is True
    assert data["model_budget"].pop("forecast")["projected_month_end"] >= Decimal("2.5")
    assert data["model_budget"] == {
        "monthly_budget": 10,
        "spent": Decimal("2.5"),
        "remaining": Decimal("7.5"),
        "percent_used": 25,
        "currency": "USD",
        "within_budget": True,
        "budget_currency": "USD",
        "monthly_budget_reporting": 10,
        "exchange_rate": None,
        "convertible": True,
        "unconverted_calls": 0,
    }
    assert b'"model_budget":{"monthly_budget":10,"spent":2.5,"remaining":7.5,"percent_used":25,' in response.content
    assert data["global_budget"] is None
    assert data["period_start"] < data["period_end"]


def test_budget_check_says_stop_when_the_model_or_global_budget_is_spent(reader):
    set_budget("gpt-4o", "10")
    usage_record(model_name="gpt-4o", cost=Decimal("10"))
    data = exact_json(get(reader, "/api/v1/budget/check", model="gpt-4o"))["data"]
    assert (data["within_budget"], data["model_budget"]["remaining"], data["model_budget"]["percent_used"]) == (
        False,
        0,
        100,
    )

    global_budget_set(monthly_budget=Decimal("12"))
    usage_record(model_name="claude-haiku-4-5", cost=Decimal("3"))  # no model budget, but 13 of 12 overall
    data = exact_json(get(reader, "/api/v1/budget/check", model="claude-haiku-4-5"))["data"]
    assert data["model_budget"]["within_budget"] is True
    assert data["model_budget"]["monthly_budget"] is None
    assert (data["global_budget"]["spent"], data["global_budget"]["currency"]) == (13, "USD")
    assert data["global_budget"]["within_budget"] is False
    assert data["within_budget"] is False


def test_budget_check_errors(reader):
    missing = get(reader, "/api/v1/budget/check")
    assert missing.status_code == 400
    assert "model" in missing.json()["error"]["fields"]
    unknown = get(reader, "/api/v1/budget/check", model="no-such-model")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "unknown_model",
        "message": "Unknown model 'no-such-model': it has no price entry, so it has no budget.",
        "field": "model",
    }
    assert get(APIClient(), "/api/v1/budget/check", model="gpt-4o").status_code == 401
