"""Budgets per user and per purpose (issue 17 point 4) and the forecast (point 5) against the database:
thresholds raised at ingestion once per budget, period and threshold, the default user budget and
overrides, budget/check for every budget that applies, the "forecast to exceed" alert, and the
month's spend per user read through the log's (user_id, timestamp) index."""

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import AlertType, BudgetAlert, PurposeBudget, UserBudget
from alerts.services import alerts_evaluate_all, global_budget_set
from ingest.services import usage_record, usage_record_batch
from tests.alert_helpers import set_budget
from tests.api_helpers import exact_json
from usage.keys import api_key_create
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def evaluate_every_batch(settings):
    settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS = 0


def spend(amount: str, **fields) -> None:
    fields.setdefault("model_name", "gpt-4o")
    usage_record(prompt_tokens=10, completion_tokens=10, cost=Decimal(amount), **fields)


def thresholds(alert_type: str, scope: str) -> list[int]:
    rows = BudgetAlert.objects.filter(alert_type=alert_type, model_name=scope).order_by("threshold_percent")
    return list(rows.values_list("threshold_percent", flat=True))


def client(scope: str) -> APIClient:
    _key, raw_key = api_key_create(name=f"{scope}-client", scope=scope)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return api


def test_default_user_budget_and_an_override_raise_their_thresholds_once():
    UserBudget.objects.create(user_id=None, monthly_budget=Decimal("10"), currency="USD")
    UserBudget.objects.create(user_id=7, monthly_budget=Decimal("100"), currency="USD")
    spend("5", user_id=3)
    spend("5", user_id=7)
    assert thresholds(AlertType.USER_BUDGET, "3") == [50]
    assert thresholds(AlertType.USER_BUDGET, "7") == []  # 5 of its own 100.
    spend("3", user_id=3)
    spend("3", user_id=3)
    assert thresholds(AlertType.USER_BUDGET, "3") == [50, 80, 100]
    spend("45", user_id=7)
    assert thresholds(AlertType.USER_BUDGET, "7") == [50]
    spend("1", user_id=3)  # Past 100% again: nothing new.
    assert BudgetAlert.objects.filter(alert_type=AlertType.USER_BUDGET).count() == 4
    alert = BudgetAlert.objects.get(alert_type=AlertType.USER_BUDGET, model_name="3", threshold_percent=100)
    assert (alert.current_cost, alert.budget_limit) == (Decimal("11"), Decimal("10"))
    assert alert.message.startswith("User 3 has used 110.00% of their monthly budget (11.00000000 of 10.00000000 USD")
    assert alert.details["budget_currency"] == "USD"
    # Other users' and purposeless calls count nowhere else.
    spend("100")
    assert BudgetAlert.objects.filter(alert_type=AlertType.USER_BUDGET).count() == 4


def test_purpose_budget_counts_every_model_of_the_purpose_in_one_batch():
    PurposeBudget.objects.create(purpose="extract", monthly_budget=Decimal("4"), currency="USD")
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="gpt-4o", cost=Decimal("1"), purpose="extract"),
            UsageRecordInput(model_name="claude-haiku-4-5", cost=Decimal("1.5"), purpose="extract"),
            UsageRecordInput(model_name="gpt-4o", cost=Decimal("9"), purpose="chat"),
        ]
    )
    assert thresholds(AlertType.PURPOSE_BUDGET, "extract") == [50]
    spend("0.7", purpose="extract")
    assert thresholds(AlertType.PURPOSE_BUDGET, "extract") == [50, 80]
    alert = BudgetAlert.objects.get(alert_type=AlertType.PURPOSE_BUDGET, threshold_percent=80)
    assert alert.current_cost == Decimal("3.2")
    assert "Calls for extract have used 80.00% of the purpose's monthly budget" in alert.message


def test_a_user_budget_in_another_currency_is_compared_in_the_reporting_currency_and_none_without_a_rate():
    UserBudget.objects.create(user_id=5, monthly_budget=Decimal("10"), currency="EUR")  # No EUR rate: not compared.
    spend("50", user_id=5)
    assert thresholds(AlertType.USER_BUDGET, "5") == []
    data = exact_json(client("read").get("/api/v1/budget/check", {"user_id": 5}, secure=True))["data"]
    assert data["user_budget"]["convertible"] is False
    assert data["user_budget"]["within_budget"] is True
    assert data["user_budget"]["spent"] == 50


def test_budget_check_answers_for_every_budget_that_applies():
    set_budget("gpt-4o", "100")
    global_budget_set(monthly_budget=Decimal("1000"))
    UserBudget.objects.create(user_id=None, monthly_budget=Decimal("10"), currency="USD")
    PurposeBudget.objects.create(purpose="extract", monthly_budget=Decimal("20"), currency="USD")
    spend("12", user_id=9, purpose="extract")
    reader, writer = client("read"), client("write_usage")
    params = {"model": "gpt-4o", "user_id": 9, "purpose": "extract"}
    data = exact_json(reader.get("/api/v1/budget/check", params, secure=True))["data"]
    assert [(b["type"], b["scope"], b["is_default"], b["within_budget"]) for b in data["budgets"]] == [
        ("model", "gpt-4o", False, True),
        ("global", "*", False, True),
        ("user", "9", True, False),
        ("purpose", "extract", False, True),
    ]
    assert data["within_budget"] is False  # The user's default budget is used up.
    assert (data["user_budget"]["spent"], data["user_budget"]["percent_used"]) == (12, 120)
    assert data["purpose_budget"]["remaining"] == 8
    assert data["user_budget"]["forecast"]["already_reached"] is True
    assert data["user_id"] == 9
    # A write_usage key asks too, but is not shown the purpose (free text).
    written = exact_json(writer.get("/api/v1/budget/check", params, secure=True))["data"]
    assert [b["scope"] for b in written["budgets"]] == ["gpt-4o", "*", "9", None]
    assert b"extract" not in writer.get("/api/v1/budget/check", params, secure=True).content
    # A user without any budget: spend and forecast, no budget.
    UserBudget.objects.all().delete()
    alone = exact_json(reader.get("/api/v1/budget/check", {"user_id": 9}, secure=True))["data"]
    assert alone["model"] is None
    assert alone["model_budget"] is None
    assert alone["user_budget"]["monthly_budget"] is None
    assert alone["user_budget"]["spent"] == 12
    assert alone["user_budget"]["forecast"]["reaches_budget_on"] is None
    assert [b["type"] for b in alone["budgets"]] == ["global"]


def test_budget_check_parameters():
    reader = client("read")
    bad = reader.get("/api/v1/budget/check", {"user_id": 0}, secure=True)
    assert bad.status_code == 400
    assert "user_id" in bad.json()["error"]["fields"]
    none = reader.get("/api/v1/budget/check", secure=True)
    assert none.status_code == 400
    assert "model" in none.json()["error"]["fields"]


def _noon_days_ago(days: int) -> datetime:
    """Noon of a local day before today: inside that day whatever the time of day now."""
    day = timezone.localdate() - timedelta(days=days)
    return datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone())


def _spend_on_past_days(days: int, amount: str, **fields) -> None:
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="gpt-4o", cost=Decimal(amount), timestamp=_noon_days_ago(n), **fields)
            for n in range(1, days + 1)
        ]
    )


def test_forecast_to_exceed_is_raised_once_per_budget_and_period():
    # 10 a day for the last 7 days (what falls in this month counts as spent): at that pace a budget a
    # little above the month so far is reached before the month ends, unless today is its last day.
    _spend_on_past_days(7, "10", user_id=4, purpose="extract")
    month_start = timezone.localdate().replace(day=1)
    spent_this_month = sum(Decimal(10) for n in range(1, 8) if _noon_days_ago(n).date() >= month_start)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    if (next_month - timezone.localdate()).days < 2:
        pytest.skip("the month ends today: no room for a forecast to exceed")
    UserBudget.objects.create(user_id=4, monthly_budget=spent_this_month + Decimal("15"), currency="USD")
    PurposeBudget.objects.create(purpose="extract", monthly_budget=Decimal("100000"), currency="USD")
    spend("0.01", user_id=4, purpose="extract")
    forecasts = BudgetAlert.objects.filter(alert_type=AlertType.FORECAST)
    assert list(forecasts.values_list("model_name", flat=True)) == ["user_budget:4"]
    alert = forecasts.get()
    assert alert.details["method"] == "trailing_7_day_average"
    assert Decimal(alert.details["daily_pace"]) == Decimal(10)
    assert alert.details["reaches_on"] is not None
    assert "at the current pace (10.00000000 USD a day)" in alert.message
    spend("0.01", user_id=4, purpose="extract")
    alerts_evaluate_all(now=timezone.now())
    assert forecasts.count() == 1  # Once per budget and period.
    data = exact_json(client("read").get("/api/v1/budget/check", {"user_id": 4}, secure=True))["data"]
    forecast = data["user_budget"]["forecast"]
    assert forecast["daily_pace"] == 10
    assert forecast["reaches_budget_on"] == alert.details["reaches_on"]
    assert forecast["projected_percent"] > 100


def test_the_months_spend_per_user_is_an_index_range_scan():
    # Many calls of one user this month, a few of another: the other's month is not read row by row.
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", cost=Decimal("0.01"), user_id=1)] * 3000)
    spend("1", user_id=3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ai_model_usage_log")
    sql = (
        "EXPLAIN SELECT sum(reporting_cost) FROM ai_model_usage_log AS t WHERE t.user_id IS NOT NULL "
        "AND t.user_id IN (3, 4) AND t.timestamp >= now() - interval '30 days' AND t.timestamp < now()"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "ai_usage_log_user_ts" in plan or "user_id_timestamp" in plan, plan


SQLITE_SCRIPT = """
import django
django.setup()
from datetime import timedelta
from decimal import Decimal
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from alerts.models import AlertType, BudgetAlert, PurposeBudget, UserBudget
from alerts.selectors import budget_check
from ingest.services import usage_record_batch
from usage.selectors import usage_decision_calls, usage_decision_totals
from usage.services import UsageRecordInput
UserBudget.objects.create(user_id=None, monthly_budget=Decimal("10"), currency="USD")
PurposeBudget.objects.create(purpose="extract", monthly_budget=Decimal("4"), currency="USD")
now = timezone.now()
usage_record_batch(records=[
    UsageRecordInput(model_name="gpt-4o", cost=Decimal("9"), user_id=3, purpose="extract", decision_id="d1",
                     timestamp=now - timedelta(minutes=1)),
    UsageRecordInput(model_name="gpt-4o", cost=Decimal("1"), user_id=4, decision_id="d1", timestamp=now),
])
alerts = BudgetAlert.objects
users = sorted(alerts.filter(alert_type=AlertType.USER_BUDGET).values_list("model_name", "threshold_percent"))
assert users == [("3", 50), ("3", 80)], users
purposes = sorted(alerts.filter(alert_type=AlertType.PURPOSE_BUDGET).values_list("threshold_percent", flat=True))
assert purposes == [50, 80, 100], purposes
check = budget_check(pricing=None, user_id=3, purpose="extract", now=timezone.now())
assert check.user.status.spent == Decimal("9"), check.user.status
assert check.forecasts[check.purpose.key].already_reached
assert usage_decision_totals(decision_id="d1")["calls"] == 2
assert [c["user_id"] for c in usage_decision_calls(decision_id="d1")] == [3, 4]
print("dimensions ok")
"""


@pytest.mark.slow
def test_user_and_purpose_budgets_forecast_and_decisions_on_sqlite(tmp_path):
    from tests.sqlite_process import sqlite_python

    result = sqlite_python(tmp_path / "dimensions.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dimensions ok" in result.stdout
