"""Budgets read each model's spend in the budget month through the read path (usage.window_sums),
exactly, in the reporting currency: the calendar month in TIME_ZONE, to the call, whatever the counters say."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.models import GLOBAL_SCOPE
from alerts.selectors import budgets_to_evaluate, global_budget_status, model_budget_status
from alerts.services import global_budget_set
from ingest.services import usage_record_batch
from pricing.models import ModelPricing
from tests.counters import counters_set
from usage.models import UsageCounter
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db

# 18:15 UTC on 31 October is 00:00 on 1 November in Kathmandu (+5:45): off the hour, on a quarter.
KATHMANDU_NOVEMBER = datetime(2026, 10, 31, 18, 15, tzinfo=UTC)
NOW = KATHMANDU_NOVEMBER + timedelta(days=10, hours=3, minutes=7, seconds=11)


def _call(model_name: str, cost: str, at: datetime) -> UsageRecordInput:
    return UsageRecordInput(
        model_name=model_name, prompt_tokens=10, completion_tokens=5, cost=Decimal(cost), timestamp=at
    )


@pytest.fixture
def kathmandu(settings):
    settings.TIME_ZONE = "Asia/Kathmandu"


def _spent(model_name: str, now: datetime = NOW) -> Decimal:
    pricing = ModelPricing.objects.get(model_name=model_name)
    return model_budget_status(pricing=pricing, now=now).spent


@pytest.mark.usefixtures("kathmandu")
def test_month_spend_is_exact_at_the_local_month_edges_and_within_quarter_hours():
    usage_record_batch(
        records=[
            _call("gpt-4o", "100", KATHMANDU_NOVEMBER - timedelta(microseconds=1)),  # October there
            _call("gpt-4o", "0.00000001", KATHMANDU_NOVEMBER),
            _call("gpt-4o", "1.25", KATHMANDU_NOVEMBER + timedelta(days=3, minutes=7, seconds=3)),
            _call("gpt-4o", "2.5", NOW - timedelta(seconds=1)),  # the unfinished quarter hour
            _call("gpt-4o", "0.75", NOW + timedelta(minutes=20)),  # stamped ahead, still November
            _call("gpt-4o-mini", "9", NOW),
        ]
    )
    assert _spent("gpt-4o") == Decimal("4.50000001")
    assert _spent("gpt-4o-mini") == Decimal("9")
    assert _spent("gpt-4o", now=KATHMANDU_NOVEMBER - timedelta(seconds=1)) == Decimal("100")


@pytest.mark.usefixtures("kathmandu")
def test_spend_comes_from_the_usage_not_the_counters():
    usage_record_batch(records=[_call("gpt-4o", "3", NOW - timedelta(hours=2))])
    counters_set(model_name="gpt-4o", current_month_cost=Decimal(999), current_month=NOW.date().replace(day=1))
    assert _spent("gpt-4o") == Decimal("3")
    counter = UsageCounter.objects.get(model_name="gpt-4o")
    assert counter.current_month_cost == Decimal(999)  # Untouched: the consistency check compares them.


@pytest.mark.usefixtures("kathmandu")
def test_the_global_budget_adds_up_every_model_in_the_reporting_currency():
    """Issue 16: the global budget sees every model (it used to count only the models priced in its
    currency, so a CNY model's spend escaped it), compared in the reporting currency (USD here)."""
    usage_record_batch(
        records=[
            _call("gpt-4o", "1.5", NOW - timedelta(days=1)),
            _call("claude-haiku-4-5", "2.25", NOW - timedelta(minutes=3)),
            _call("qwen-plus", "70", NOW - timedelta(hours=5)),
            _call("deepseek-chat", "30.00000001", NOW - timedelta(seconds=40)),
            _call("not-in-pricing", "1000", NOW - timedelta(hours=1)),  # a provider's cost: counted too
            _call("qwen-plus", "500", KATHMANDU_NOVEMBER - timedelta(minutes=1)),  # October
        ]
    )
    global_budget_set(monthly_budget=Decimal(2000), currency="USD")
    status = global_budget_status(now=NOW)
    # 1.5 + 2.25 + 70 + 30.00000001 + 1000 (October's 500 left out) = 1103.75000001 USD.
    assert (status.spent, status.currency, status.budget_reporting) == (Decimal("1103.75000001"), "USD", Decimal(2000))
    watched = budgets_to_evaluate(model_names=["qwen-plus"], now=NOW, include_global=True)
    assert [(w.scope, w.status.spent, w.status.currency) for w in watched] == [
        (GLOBAL_SCOPE, Decimal("1103.75000001"), "USD")
    ]
    # Stated in CNY with no CNY->USD rate: the spend is still read, the budget is not compared.
    global_budget_set(monthly_budget=Decimal(200), currency="CNY")
    status = global_budget_status(now=NOW)
    assert (status.spent, status.budget_currency, status.convertible, status.percent_used) == (
        Decimal("1103.75000001"),
        "CNY",
        False,
        None,
    )


@pytest.mark.usefixtures("kathmandu")
def test_ingestion_time_and_page_figures_agree():
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    usage_record_batch(
        records=[
            _call("gpt-4o", "4", NOW - timedelta(days=2, minutes=1)),
            _call("gpt-4o", "0.5", NOW - timedelta(seconds=5)),
        ]
    )
    watched = budgets_to_evaluate(model_names=["gpt-4o"], now=NOW, include_global=False)
    assert [(w.scope, w.status.spent) for w in watched] == [("gpt-4o", Decimal("4.5"))]
    assert _spent("gpt-4o") == Decimal("4.5")
    assert model_budget_status(pricing=ModelPricing.objects.get(model_name="gpt-4o"), now=timezone.now()).spent == 0
