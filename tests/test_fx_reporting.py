"""Issue 16, reading money in the reporting currency: stats, trend, export, metrics and budgets add the
calls' stored reporting_cost (AICOST_REPORTING_CURRENCY), each model's own figures stay in its price
currency, unconverted calls are counted and never added as 0, budgets are stated in a currency of
their own and compared in the reporting currency at the rate in force now.

The fixture: reporting currency CNY, TIME_ZONE UTC, now = 20 November 2026 12:00 UTC.
  USD->CNY rates: 7.0 over [5 Nov, 15 Nov), 7.2 from 15 Nov (open). No rate before 5 Nov.
  gpt-4o (USD) calls, provider costs in USD:
    3 Nov 10:00  0.50 USD  no rate in force          -> unconverted (reporting_cost null)
    10 Nov 09:00 1.00 USD  x 7.0                     -> 7.00 CNY
    15 Nov 00:00 1.00 USD  at the change (half-open) -> 7.20 CNY
    18 Nov 08:00 2.50 USD  x 7.2                     -> 18.00 CNY
  qwen-cny (CNY) calls: 12 Nov 3.30 CNY, 19 Nov 10.00 CNY (no conversion: reporting = cost).
  Reporting total: 7.00 + 7.20 + 18.00 + 3.30 + 10.00 = 45.50 CNY, 1 call unconverted.
  gpt-4o alone: 5.00 USD (0.50 + 1 + 1 + 2.50) of its own, 32.20 CNY (7 + 7.2 + 18) in the reporting currency.
"""

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from alerts.models import GLOBAL_SCOPE, AlertType, BudgetAlert
from alerts.selectors import budgets_this_month, budgets_to_evaluate, global_budget_status, model_budget_status
from alerts.services import budget_alerts_evaluate, global_budget_set
from ingest.services import usage_record_batch
from pricing.models import ExchangeRate, ModelPricing
from pricing.services import model_pricing_budgets_set, model_pricing_create
from tests.metrics_helpers import samples, value
from usage.models import UsageLog
from usage.records import UsageRecordInput
from usage.reports import usage_daily_trend, usage_stats
from usage.selectors import usage_log_rows
from usage.window_sums import UsageFilters

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RATE_CHANGE = datetime(2026, 11, 15, tzinfo=UTC)


def _at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _call(model_name: str, cost: str, at: datetime) -> UsageRecordInput:
    return UsageRecordInput(
        model_name=model_name, prompt_tokens=100, completion_tokens=10, cost=Decimal(cost), timestamp=at
    )


def _rate(base: str, quote: str, rate: str, start: datetime, end: datetime | None = None) -> ExchangeRate:
    return ExchangeRate.objects.create(
        base_currency=base, quote_currency=quote, rate=Decimal(rate), effective_from=start, effective_to=end
    )


@pytest.fixture
def cny_reporting(settings):
    settings.AICOST_REPORTING_CURRENCY = "CNY"
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def qwen_cny(cny_reporting):
    return model_pricing_create(
        model_name="qwen-cny",
        provider="Alibaba Cloud",
        display_name="Qwen (CNY)",
        model_type="chat",
        currency="CNY",
        input_price_per_million=Decimal("0.8"),
        output_price_per_million=Decimal("2"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        allow_past=True,
    )


@pytest.fixture
def rates(cny_reporting):
    return [_rate("USD", "CNY", "7.0", _at(5), RATE_CHANGE), _rate("USD", "CNY", "7.2", RATE_CHANGE)]


@pytest.fixture
def usd_calls(rates):
    usage_record_batch(
        records=[
            _call("gpt-4o", "0.50", _at(3, 10)),
            _call("gpt-4o", "1.00", _at(10, 9)),
            _call("gpt-4o", "1.00", RATE_CHANGE),
            _call("gpt-4o", "2.50", _at(18, 8)),
        ]
    )


@pytest.fixture
def cny_calls(qwen_cny):
    usage_record_batch(records=[_call("qwen-cny", "3.30", _at(12, 6)), _call("qwen-cny", "10.00", _at(19, 6))])


@pytest.fixture
def mixed(usd_calls, cny_calls):
    """Both models' calls (the module docstring's figures)."""


def _stats(time_range: str = "all") -> dict:
    return usage_stats(time_range=time_range, now=NOW, zone=ZoneInfo("UTC"), filters=UsageFilters())


def _model(stats: dict, name: str) -> dict:
    return next(entry for entry in stats["platforms"] if entry["model_name"] == name)


# --- Stats and trend -------------------------------------------------------------------------------


@pytest.mark.usefixtures("mixed")
def test_the_stored_reporting_costs_are_the_hand_computed_conversions():
    logged = {
        (row.model_name, row.timestamp): (row.reporting_cost, row.unconverted)
        for row in UsageLog.objects.select_related("exchange_rate")
    }
    assert logged[("gpt-4o", _at(3, 10))] == (None, True)  # No rate before 5 November: never 0.
    assert logged[("gpt-4o", _at(10, 9))] == (Decimal("7.00"), False)  # 1.00 x 7.0
    assert logged[("gpt-4o", RATE_CHANGE)] == (Decimal("7.20"), False)  # The new rate's first instant.
    assert logged[("gpt-4o", _at(18, 8))] == (Decimal("18.00"), False)  # 2.50 x 7.2
    assert logged[("qwen-cny", _at(12, 6))] == (Decimal("3.30"), False)


@pytest.mark.usefixtures("mixed")
def test_stats_add_every_model_in_the_reporting_currency_and_keep_each_models_own():
    stats = _stats()
    summary = stats["summary"]
    # 7.00 + 7.20 + 18.00 (gpt-4o, USD converted) + 3.30 + 10.00 (qwen-cny) = 45.50 CNY.
    assert (summary["total_cost"], summary["currency"]) == (Decimal("45.5"), "CNY")
    assert (summary["total_calls"], summary["unconverted_calls"], summary["unpriced_calls"]) == (6, 1, 0)

    gpt = _model(stats, "gpt-4o")
    assert (gpt["cost"], gpt["currency"]) == (Decimal("5.00"), "USD")  # 0.50 + 1 + 1 + 2.50, its own currency.
    assert (gpt["reporting_cost"], gpt["reporting_currency"]) == (Decimal("32.20"), "CNY")  # 7 + 7.2 + 18.
    assert gpt["unconverted_calls"] == 1
    qwen = _model(stats, "qwen-cny")
    assert (qwen["cost"], qwen["currency"], qwen["reporting_cost"], qwen["unconverted_calls"]) == (
        Decimal("13.30"),
        "CNY",
        Decimal("13.30"),
        0,
    )
    # Shares of the reporting total: 32.20 / 45.50 = 70.77%, 13.30 / 45.50 = 29.23%.
    assert (gpt["cost_share"], qwen["cost_share"]) == (Decimal("70.77"), Decimal("29.23"))
    assert [entry["model_name"] for entry in stats["platforms"]] == ["gpt-4o", "qwen-cny"]

    providers = {entry["provider"]: entry for entry in stats["providers"]}
    assert {name: (p["cost"], p["currency"], p["unconverted_calls"]) for name, p in providers.items()} == {
        "OpenAI": (Decimal("32.20"), "CNY", 1),
        "Alibaba Cloud": (Decimal("13.30"), "CNY", 0),
    }


@pytest.mark.usefixtures("mixed")
def test_a_window_after_the_unconverted_call_has_none():
    # 7d: [13 Nov 12:00, 20 Nov 12:00): 7.20 + 18.00 + 10.00 = 35.20 CNY, all converted.
    summary = _stats("7d")["summary"]
    assert (summary["total_cost"], summary["unconverted_calls"], summary["total_calls"]) == (Decimal("35.2"), 0, 3)


@pytest.mark.usefixtures("mixed")
def test_the_trend_gives_each_day_in_the_reporting_currency_with_its_unconverted_calls():
    trend = usage_daily_trend(days=20, now=NOW, zone=ZoneInfo("UTC"), filters=UsageFilters())
    days = {entry["date"].day: entry for entry in trend["daily_trend"]}
    assert trend["daily_trend"][0]["date"].day == 1
    assert len(days) == 20
    assert {entry["currency"] for entry in trend["daily_trend"]} == {"CNY"}
    assert (days[3]["cost"], days[3]["calls"], days[3]["unconverted_calls"]) == (Decimal(0), 1, 1)
    assert (days[10]["cost"], days[12]["cost"], days[15]["cost"]) == (Decimal(7), Decimal("3.3"), Decimal("7.2"))
    assert (days[18]["cost"], days[19]["cost"]) == (Decimal(18), Decimal(10))
    summary = trend["summary"]
    assert (summary["total_cost"], summary["currency"], summary["unconverted_calls"]) == (Decimal("45.5"), "CNY", 1)
    assert summary["max_daily_cost"] == Decimal(18)
    assert summary["avg_daily_cost"] == Decimal("2.275")  # 45.50 / 20 days.


@pytest.mark.usefixtures("mixed")
def test_the_stats_and_trend_apis_answer_the_new_fields(reader, settings):
    """Through the real API (today's window: the fixture's November lies in the past, so "all")."""
    stats = json.loads(reader.get("/api/v1/ai-platforms/stats?time_range=all").content, parse_float=Decimal)["data"]
    summary = stats["summary"]
    assert (summary["total_cost"], summary["currency"], summary["unconverted_calls"]) == (Decimal("45.5"), "CNY", 1)
    gpt = _model(stats, "gpt-4o")
    assert (gpt["cost"], gpt["currency"], gpt["reporting_cost"], gpt["reporting_currency"]) == (
        Decimal(5),
        "USD",
        Decimal("32.2"),
        "CNY",
    )
    assert {p["provider"]: p["unconverted_calls"] for p in stats["providers"]} == {"OpenAI": 1, "Alibaba Cloud": 0}
    trend = reader.get("/api/v1/ai-platforms/cost-trend-daily?days=7").json()["data"]
    assert {"unconverted_calls", "currency"} <= set(trend["summary"])
    assert trend["summary"]["currency"] == "CNY"
    assert all("unconverted_calls" in day for day in trend["daily_trend"])


# --- Export and metrics ----------------------------------------------------------------------------


@pytest.mark.usefixtures("mixed")
def test_the_export_has_the_currency_the_reporting_cost_and_the_rate_of_each_call(reader):
    response = reader.get("/api/v1/usage/export.csv?time_range=all")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    cells = [
        (
            row["model_name"],
            row["cost"],
            row["currency"],
            row["reporting_cost"],
            row["reporting_currency"],
            row["exchange_rate"],
        )
        for row in rows
    ]
    number = lambda text: None if text == "" else Decimal(text)  # noqa: E731
    assert [(m, number(c), cur, number(r), rc, number(x)) for m, c, cur, r, rc, x in cells] == [
        ("gpt-4o", Decimal("0.5"), "USD", None, "CNY", None),  # Unconverted: no amount, no rate.
        ("gpt-4o", Decimal(1), "USD", Decimal(7), "CNY", Decimal(7)),
        ("qwen-cny", Decimal("3.3"), "CNY", Decimal("3.3"), "CNY", None),  # Already in CNY: no rate.
        ("gpt-4o", Decimal(1), "USD", Decimal("7.2"), "CNY", Decimal("7.2")),
        ("gpt-4o", Decimal("2.5"), "USD", Decimal(18), "CNY", Decimal("7.2")),
        ("qwen-cny", Decimal(10), "CNY", Decimal(10), "CNY", None),
    ]
    assert list(rows[0])[15:20] == ["cost", "currency", "reporting_cost", "reporting_currency", "exchange_rate"]


@pytest.mark.usefixtures("mixed")
def test_an_unpriced_call_has_no_currency_in_the_export():
    usage_record_batch(records=[UsageRecordInput(model_name="never-priced", prompt_tokens=1, timestamp=_at(19))])
    row = next(r for r in usage_log_rows(UsageLog.objects.all()) if r[2] == "never-priced")
    assert row[15:20] == (None, "USD", None, "CNY", None)  # The formatter writes both currencies empty.
    from usage.export import usage_csv_chunks

    text = "".join(usage_csv_chunks(iter([row]), zone=UTC))
    assert list(csv.reader(io.StringIO(text)))[1][15:20] == ["", "", "", "", ""]


@pytest.mark.usefixtures("mixed")
def test_metrics_give_the_reporting_total_and_the_unconverted_calls(client, settings):
    settings.AICOST_METRICS_TOKEN = "metrics-token"
    scraped = samples(client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token").content.decode())
    assert value(scraped, "aicost_cost_total", currency="CNY") == pytest.approx(45.5)
    assert value(scraped, "aicost_model_unconverted_calls_total", model="gpt-4o") == 1
    assert ("aicost_model_unconverted_calls_total", frozenset({("model", "qwen-cny")})) not in scraped
    assert value(scraped, "aicost_model_cost_total", model="gpt-4o", provider="OpenAI", currency="USD") == 5
    assert value(scraped, "aicost_model_cost_total", model="qwen-cny", provider="Alibaba Cloud", currency="CNY") == (
        pytest.approx(13.3)
    )


# --- Budgets -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("usd_calls", "qwen_cny")
def test_a_cny_models_spend_counts_toward_a_usd_global_budget():
    global_budget_set(monthly_budget=Decimal("10"), currency="USD")
    status = global_budget_status(now=NOW)
    # 10 USD x 7.2 (in force now) = 72 CNY; November's USD calls: 7 + 7.2 + 18 = 32.20 CNY (44.72%).
    assert (status.budget, status.budget_currency, status.budget_reporting) == (Decimal(10), "USD", Decimal(72))
    assert (status.spent, status.currency, status.unconverted_calls) == (Decimal("32.2"), "CNY", 1)
    assert status.percent_used == Decimal("44.72")
    assert budget_alerts_evaluate(model_names=["gpt-4o"], now=NOW, include_anomalies=False) == []

    usage_record_batch(records=[_call("qwen-cny", "3.30", _at(12, 6)), _call("qwen-cny", "10.00", _at(19, 6))])
    status = global_budget_status(now=NOW)
    assert status.spent == Decimal("45.5")  # + 3.30 + 10.00 CNY of the CNY-priced model.
    assert status.percent_used == Decimal("63.19")  # 45.50 / 72 = 63.194...%
    [alert] = budget_alerts_evaluate(model_names=["qwen-cny"], now=NOW, include_anomalies=False)
    assert (alert.alert_type, alert.threshold_percent, alert.model_name) == (AlertType.GLOBAL_BUDGET, 50, GLOBAL_SCOPE)
    assert (alert.current_cost, alert.budget_limit) == (Decimal("45.5"), Decimal(72))
    assert alert.details["currency"] == "CNY"
    assert (Decimal(alert.details["budget_amount"]), alert.details["budget_currency"]) == (Decimal(10), "USD")
    assert Decimal(alert.details["exchange_rate"]) == Decimal("7.2")
    assert alert.details["unconverted_calls"] == 1
    assert "45.50000000 of 72.00000000 CNY" in alert.message
    assert "The budget is 10.00000000 USD, at 7.2 CNY per USD." in alert.message
    assert "1 calls of the month have no exchange rate yet" in alert.message


@pytest.mark.usefixtures("mixed")
def test_a_budget_in_a_third_currency_without_a_rate_is_reported_and_raises_nothing():
    model_pricing_budgets_set(budgets={"gpt-4o": Decimal("5")}, currency="EUR")
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    status = model_budget_status(pricing=pricing, now=NOW)
    assert (status.budget, status.budget_currency, status.budget_reporting) == (Decimal(5), "EUR", None)
    assert (status.convertible, status.percent_used, status.remaining, status.within_budget) == (
        False,
        None,
        None,
        True,
    )
    assert status.spent == Decimal("32.2")  # Still shown: in CNY, never compared with 5 EUR.
    assert budget_alerts_evaluate(model_names=["gpt-4o"], now=NOW, include_anomalies=False) == []
    assert not BudgetAlert.objects.exists()
    stats_model = _model(_stats("month"), "gpt-4o")
    assert (stats_model["monthly_budget"], stats_model["budget_currency"]) == (Decimal(5), "EUR")
    assert (stats_model["budget_convertible"], stats_model["monthly_budget_reporting"]) == (False, None)
    assert stats_model["budget_used_percent"] is None


@pytest.mark.usefixtures("mixed")
def test_a_budget_in_a_third_currency_is_converted_at_the_rate_in_force_now():
    model_pricing_budgets_set(budgets={"gpt-4o": Decimal("5")}, currency="EUR")
    _rate("EUR", "CNY", "7.5", _at(1), _at(16))  # Ended before now: not the one in force.
    _rate("EUR", "CNY", "7.8", _at(16))
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    status = model_budget_status(pricing=pricing, now=NOW)
    # 5 EUR x 7.8 = 39 CNY; spent 32.20 CNY: 82.56% (32.2 / 39 = 0.825641...), 6.80 CNY left.
    assert (status.budget_reporting, status.rate) == (Decimal(39), Decimal("7.8"))
    assert status.percent_used == Decimal("82.56")
    assert status.remaining == Decimal("6.8")
    levels = {
        alert.threshold_percent: alert.alert_level
        for alert in budget_alerts_evaluate(model_names=["gpt-4o"], now=NOW, include_anomalies=False)
    }
    assert levels == {50: "info", 80: "warning"}
    [watched] = budgets_to_evaluate(model_names=["gpt-4o"], now=NOW, include_global=True)
    assert watched.status == status  # The ingestion path and the budget check give the same figures.
    stats_model = _model(_stats("month"), "gpt-4o")
    assert (stats_model["monthly_budget_reporting"], stats_model["budget_used_percent"]) == (
        Decimal(39),
        Decimal("82.56"),
    )
    assert stats_model["current_month_reporting_cost"] == Decimal("32.2")
    assert stats_model["current_month_cost"] == Decimal(5)  # USD, the model's currency.
    assert stats_model["current_month_unconverted_calls"] == 1


@pytest.mark.usefixtures("mixed")
def test_a_global_budget_without_a_rate_is_reported_and_raises_nothing():
    global_budget_set(monthly_budget=Decimal("1"), currency="GBP")  # Far exceeded, if it were compared.
    status = global_budget_status(now=NOW)
    assert (status.convertible, status.budget_reporting, status.spent) == (False, None, Decimal("45.5"))
    assert budget_alerts_evaluate(model_names=["gpt-4o", "qwen-cny"], now=NOW, include_anomalies=False) == []
    panel = budgets_this_month(now=NOW)
    assert panel["global"] == status


@pytest.mark.usefixtures("mixed")
def test_budget_check_answers_both_currencies_and_the_months_unconverted_calls(reader, settings, monkeypatch):
    """The real API at the fixture's moment (timezone.now() moved to NOW)."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    global_budget_set(monthly_budget=Decimal("10"), currency="USD")
    model_pricing_budgets_set(budgets={"gpt-4o": Decimal("5")}, currency="EUR")
    body = json.loads(reader.get("/api/v1/budget/check?model=gpt-4o").content, parse_float=Decimal)["data"]
    model_budget = body["model_budget"]
    assert (model_budget["monthly_budget"], model_budget["budget_currency"]) == (Decimal(5), "EUR")
    assert (model_budget["convertible"], model_budget["monthly_budget_reporting"]) == (False, None)
    assert (model_budget["spent"], model_budget["currency"], model_budget["unconverted_calls"]) == (
        Decimal("32.2"),
        "CNY",
        1,
    )
    assert (model_budget["percent_used"], model_budget["within_budget"]) == (None, True)
    global_budget = body["global_budget"]
    assert (global_budget["monthly_budget"], global_budget["budget_currency"]) == (Decimal(10), "USD")
    assert (global_budget["monthly_budget_reporting"], global_budget["exchange_rate"]) == (Decimal(72), Decimal("7.2"))
    assert (global_budget["spent"], global_budget["remaining"], global_budget["percent_used"]) == (
        Decimal("45.5"),
        Decimal("26.5"),
        Decimal("63.19"),
    )
    assert (global_budget["unconverted_calls"], global_budget["within_budget"]) == (1, True)
    assert body["within_budget"] is True


@pytest.mark.usefixtures("mixed")
def test_the_budgets_panel_says_a_budget_cannot_be_converted(staff_client):
    model_pricing_budgets_set(budgets={"gpt-4o": Decimal("5")}, currency="EUR")
    global_budget_set(monthly_budget=Decimal("1000"), currency="CNY")
    page = staff_client.get("/admin/ai-cost").content.decode()
    assert 'data-unconvertible="true"' in page
    assert "No exchange rate from EUR to CNY: not compared, no alerts" in page
    assert "Cost in CNY" in page
