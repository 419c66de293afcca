"""Budget, error-rate and spend-spike alerts: raised once per budget, period and threshold."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.checks import check_alert_channels, check_alert_thresholds
from alerts.config import LEVELS, Threshold, ThresholdSyntaxError, alert_settings_validate, parse_thresholds
from alerts.models import GLOBAL_SCOPE, AlertLevel, AlertStatus, AlertType, BudgetAlert
from alerts.selectors import ActivityWindows, ModelActivity, activity_windows, model_activity
from alerts.services import (
    alerts_evaluate_all,
    budget_alerts_acknowledge,
    budget_alerts_evaluate,
    budget_alerts_resolve,
    global_budget_set,
)
from ingest.services import usage_record, usage_record_batch
from pricing.models import ModelPricing
from tests.alert_helpers import set_budget
from usage.models import UsageLog
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def anomalies_on_every_batch(settings):
    settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS = 0


def spend(model_name: str, amount: str, **fields) -> None:
    usage_record(model_name=model_name, prompt_tokens=10, completion_tokens=10, cost=Decimal(amount), **fields)


def alerts_of(alert_type: str = AlertType.MODEL_BUDGET, model_name: str = "gpt-4o") -> list[tuple[int, str]]:
    rows = BudgetAlert.objects.filter(alert_type=alert_type, model_name=model_name).order_by("threshold_percent")
    return list(rows.values_list("threshold_percent", "alert_level"))


def test_each_threshold_fires_once_when_spend_crosses_it():
    set_budget("gpt-4o", "10")
    spend("gpt-4o", "4.99")
    assert alerts_of() == []
    spend("gpt-4o", "0.01")
    assert alerts_of() == [(50, "info")]
    spend("gpt-4o", "3.50")
    assert alerts_of() == [(50, "info"), (80, "warning")]
    spend("gpt-4o", "1.50")
    spend("gpt-4o", "5")
    assert alerts_of() == [(50, "info"), (80, "warning"), (100, "critical")]
    critical = BudgetAlert.objects.get(threshold_percent=100)
    assert (critical.current_cost, critical.budget_limit, critical.usage_percentage) == (
        Decimal("10.00000000"),
        Decimal("10.00000000"),
        Decimal("100.00"),
    )
    assert critical.period_start == timezone.localdate().replace(day=1)
    assert critical.status == AlertStatus.OPEN
    assert not critical.is_resolved


def test_a_batch_that_jumps_past_every_threshold_raises_all_of_them_once():
    set_budget("gpt-4o", "1")
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", cost=Decimal("0.6"))] * 5)
    assert alerts_of() == [(50, "info"), (80, "warning"), (100, "critical")]
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", cost=Decimal("0.6"))] * 5)
    assert BudgetAlert.objects.count() == 3


def test_models_without_budget_raise_nothing():
    spend("gpt-4o", "1000")
    assert not BudgetAlert.objects.filter(alert_type=AlertType.MODEL_BUDGET).exists()


def test_a_zero_budget_means_any_spend_is_over_budget():
    set_budget("gpt-4o", "0")
    spend("gpt-4o", "0.00000001")
    assert alerts_of() == [(50, "info"), (80, "warning"), (100, "critical")]


def test_thresholds_come_from_the_setting(settings):
    settings.AICOST_ALERT_THRESHOLDS = "25:info, 90:critical"
    set_budget("gpt-4o", "10")
    spend("gpt-4o", "9.5")
    assert alerts_of() == [(25, "info"), (90, "critical")]


def test_the_database_refuses_a_second_row_for_the_same_budget_period_and_threshold():
    fields = {
        "model_name": "gpt-4o",
        "alert_type": AlertType.MODEL_BUDGET,
        "alert_level": "info",
        "current_cost": Decimal(5),
        "budget_limit": Decimal(10),
        "usage_percentage": Decimal(50),
        "message": "50%",
        "period_start": date(2026, 11, 1),
        "threshold_percent": 50,
    }
    BudgetAlert.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        BudgetAlert.objects.create(**fields)


def test_periods_are_calendar_months_in_time_zone(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    # 17:00 UTC on 31 October is 01:00 on 1 November in Shanghai: November's budget.
    now = datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    spend("gpt-4o", "60", timestamp=datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on 31 October there
    spend("gpt-4o", "6", timestamp=datetime(2026, 10, 31, 16, 0, tzinfo=UTC))  # November's first second there
    created = budget_alerts_evaluate(model_names=["gpt-4o"], now=now)
    thresholds = [(a.threshold_percent, a.period_start) for a in created if a.alert_type != AlertType.FORECAST]
    assert thresholds == [(50, date(2026, 11, 1))]


def test_last_months_counter_is_not_this_months_spend():
    now = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    spend("gpt-4o", "60", timestamp=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    assert budget_alerts_evaluate(model_names=["gpt-4o"], now=now) == []


def test_a_new_month_fires_again():
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    spend("gpt-4o", "6", timestamp=datetime(2026, 10, 10, tzinfo=UTC))
    budget_alerts_evaluate(model_names=["gpt-4o"], now=datetime(2026, 10, 20, tzinfo=UTC))
    spend("gpt-4o", "1", timestamp=datetime(2026, 11, 10, tzinfo=UTC))
    budget_alerts_evaluate(model_names=["gpt-4o"], now=datetime(2026, 11, 15, tzinfo=UTC))  # 10%: nothing
    spend("gpt-4o", "6", timestamp=datetime(2026, 11, 16, tzinfo=UTC))
    budget_alerts_evaluate(model_names=["gpt-4o"], now=datetime(2026, 11, 20, tzinfo=UTC))
    periods = (
        BudgetAlert.objects.exclude(alert_type=AlertType.FORECAST)
        .order_by("period_start")
        .values_list("period_start", "threshold_percent")
    )
    assert list(periods) == [(date(2026, 10, 1), 50), (date(2026, 11, 1), 50)]


def test_global_budget_counts_all_models_this_month():
    global_budget_set(monthly_budget=Decimal("10"), currency="USD")
    spend("gpt-4o", "4")
    assert alerts_of(AlertType.GLOBAL_BUDGET, GLOBAL_SCOPE) == []
    spend("claude-haiku-4-5", "4.5")  # 8.5 of 10 together
    assert alerts_of(AlertType.GLOBAL_BUDGET, GLOBAL_SCOPE) == [(50, "info"), (80, "warning")]
    alert = BudgetAlert.objects.get(alert_type=AlertType.GLOBAL_BUDGET, threshold_percent=80)
    assert (alert.current_cost, alert.budget_limit) == (Decimal("8.5"), Decimal("10"))
    # An old month's spend does not count (models priced in other currencies do: tests/test_fx_reporting.py).
    spend("deepseek-chat", "100", timestamp=timezone.now() - timedelta(days=62))
    budget_alerts_evaluate(model_names=["gpt-4o"], now=timezone.now())
    assert alerts_of(AlertType.GLOBAL_BUDGET, GLOBAL_SCOPE) == [(50, "info"), (80, "warning")]
    spend("gpt-4o", "1.5")
    assert alerts_of(AlertType.GLOBAL_BUDGET, GLOBAL_SCOPE) == [(50, "info"), (80, "warning"), (100, "critical")]


def test_no_global_budget_no_global_alerts():
    global_budget_set(monthly_budget=None)
    spend("gpt-4o", "1000")
    assert not BudgetAlert.objects.filter(alert_type=AlertType.GLOBAL_BUDGET).exists()


def test_a_resolved_alert_does_not_fire_again_in_its_period_but_a_higher_threshold_does():
    set_budget("gpt-4o", "10")
    spend("gpt-4o", "6")
    (fifty,) = BudgetAlert.objects.all()
    budget_alerts_resolve(alert_ids=[fifty.pk])
    spend("gpt-4o", "1")  # 70%: still only the 50% threshold, already raised and resolved
    assert BudgetAlert.objects.count() == 1
    fifty.refresh_from_db()
    assert (fifty.status, fifty.is_resolved) == (AlertStatus.RESOLVED, True)
    spend("gpt-4o", "1.5")  # 85%
    assert alerts_of() == [(50, "info"), (80, "warning")]
    assert BudgetAlert.objects.get(threshold_percent=80).status == AlertStatus.OPEN


def test_lifecycle_moves_forward_only(django_user_model):
    user = django_user_model.objects.create_user(username="ops", is_staff=True)
    set_budget("gpt-4o", "10")
    spend("gpt-4o", "9")
    fifty, eighty = BudgetAlert.objects.order_by("threshold_percent")
    assert budget_alerts_acknowledge(alert_ids=[fifty.pk], user=user) == 1
    assert budget_alerts_resolve(alert_ids=[fifty.pk, eighty.pk], user=user) == 2
    assert budget_alerts_acknowledge(alert_ids=[fifty.pk]) == 0  # resolved stays resolved
    assert budget_alerts_resolve(alert_ids=[fifty.pk]) == 0
    fifty.refresh_from_db()
    assert (fifty.status, fifty.is_resolved, fifty.acknowledged_by, fifty.resolved_by) == ("resolved", True, user, user)
    assert fifty.acknowledged_at <= fifty.resolved_at


def test_is_resolved_and_status_cannot_disagree():
    set_budget("gpt-4o", "10")
    spend("gpt-4o", "6")
    with pytest.raises(IntegrityError), transaction.atomic():
        BudgetAlert.objects.update(is_resolved=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        BudgetAlert.objects.update(status=AlertStatus.RESOLVED)


def _calls(model_name: str, ok: int, failed: int, at: datetime | None = None) -> list[UsageRecordInput]:
    return [UsageRecordInput(model_name=model_name, success=True, timestamp=at)] * ok + [
        UsageRecordInput(model_name=model_name, success=False, error_message="429", timestamp=at)
    ] * failed


def _activity_from_the_log(windows: ActivityWindows, model_name: str) -> ModelActivity:
    """What model_activity counted before the read path: whole hour rows up to the one holding `until`."""
    until = windows.until.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    logs = UsageLog.objects.filter(model_name=model_name)
    in_window = logs.filter(timestamp__gte=windows.window_start, timestamp__lt=until)

    def cost(start, end):
        return sum((log.cost or 0 for log in logs.filter(timestamp__gte=start, timestamp__lt=end)), Decimal(0))

    return ModelActivity(
        calls_in_window=in_window.count(),
        failed_in_window=in_window.filter(success=False).count(),
        cost_today=cost(windows.today_start, until),
        cost_trailing=cost(windows.trailing_start, windows.today_start),
    )


def test_model_activity_sums_its_hour_windows(settings):
    settings.TIME_ZONE = "Asia/Kathmandu"  # Its midnights are off the hour: the days are whole hours around them.
    settings.AICOST_ERROR_RATE_WINDOW_HOURS = 2
    now = timezone.now()
    windows = activity_windows(now=now)
    moments = [
        now - timedelta(minutes=1),
        now + timedelta(minutes=50),  # stamped ahead, within the current hour or the next
        windows.window_start,
        windows.window_start - timedelta(microseconds=1),
        windows.today_start,
        windows.today_start - timedelta(seconds=1),
        windows.trailing_start,
        windows.trailing_start - timedelta(seconds=1),
        now - timedelta(days=2, minutes=17),
    ]
    usage_record_batch(
        records=[
            UsageRecordInput(model_name=name, timestamp=at, success=n % 3 != 0, cost=Decimal(f"{n + 1}.1234567"))
            for n, at in enumerate(moments)
            for name in ("gpt-4o", "deepseek-chat")
        ]
    )
    activity = model_activity(windows=windows, model_names=None)
    assert set(activity) == {"gpt-4o", "deepseek-chat"}
    for name in activity:
        assert activity[name] == _activity_from_the_log(windows, name)
    assert model_activity(windows=windows, model_names=["gpt-4o"]) == {"gpt-4o": activity["gpt-4o"]}


def test_error_rate_alert_needs_enough_calls_and_fires_once_per_day(settings):
    settings.AICOST_ERROR_RATE_MIN_CALLS = 20
    usage_record_batch(records=_calls("gpt-4o-mini", ok=14, failed=5))  # 19 calls: too few to judge
    assert alerts_of(AlertType.ERROR_RATE, "gpt-4o-mini") == []
    usage_record_batch(records=_calls("gpt-4o-mini", ok=1, failed=0))  # 20 calls, 25% failed
    assert alerts_of(AlertType.ERROR_RATE, "gpt-4o-mini") == [(10, "warning"), (25, "critical")]
    alert = BudgetAlert.objects.get(alert_type=AlertType.ERROR_RATE, threshold_percent=25)
    assert alert.usage_percentage == Decimal("25.00")
    assert (alert.details["calls"], alert.details["failed_calls"]) == (20, 5)
    assert alert.period_start == timezone.localdate()
    usage_record_batch(records=_calls("gpt-4o-mini", ok=0, failed=20))
    assert BudgetAlert.objects.filter(alert_type=AlertType.ERROR_RATE).count() == 2


def test_failures_outside_the_window_do_not_count(settings):
    settings.AICOST_ERROR_RATE_WINDOW_HOURS = 1
    old = timezone.now() - timedelta(hours=3)
    usage_record_batch(records=_calls("gpt-4o-mini", ok=0, failed=30, at=old))
    usage_record_batch(records=_calls("gpt-4o-mini", ok=30, failed=1))
    assert alerts_of(AlertType.ERROR_RATE, "gpt-4o-mini") == []


def test_spend_spike_against_the_trailing_daily_average(settings):
    settings.AICOST_SPEND_SPIKE_MIN_COST = "1.00"
    settings.AICOST_SPEND_SPIKE_THRESHOLDS = "300:warning,1000:critical"
    three_days_ago = timezone.now() - timedelta(days=3)
    spend("deepseek-chat", "7", timestamp=three_days_ago)  # trailing 7-day average: 1.00 a day
    spend("deepseek-chat", "0.9")  # 90%, and under the minimum anyway
    assert alerts_of(AlertType.SPEND_SPIKE, "deepseek-chat") == []
    spend("deepseek-chat", "2.1")  # 3.00 today = 300% of the average
    assert alerts_of(AlertType.SPEND_SPIKE, "deepseek-chat") == [(300, "warning")]
    alert = BudgetAlert.objects.get(alert_type=AlertType.SPEND_SPIKE)
    assert (alert.current_cost, alert.budget_limit, alert.usage_percentage) == (
        Decimal("3"),
        Decimal("1"),
        Decimal("300.00"),
    )
    spend("deepseek-chat", "5")
    assert BudgetAlert.objects.filter(alert_type=AlertType.SPEND_SPIKE).count() == 1  # 800% < 1000%


def test_no_spike_without_history_or_below_the_minimum(settings):
    settings.AICOST_SPEND_SPIKE_MIN_COST = "50"
    spend("gpt-4.1", "20")  # no history at all
    spend("deepseek-chat", "1", timestamp=timezone.now() - timedelta(days=2))
    spend("deepseek-chat", "40")  # 28000% of the average, but under 50
    assert not BudgetAlert.objects.filter(alert_type=AlertType.SPEND_SPIKE).exists()


def test_ingestion_checks_anomalies_at_most_once_per_interval_and_cron_catches_up(settings, monkeypatch):
    settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS = 3600
    monkeypatch.setattr("alerts.services._anomalies_checked_at", {})
    usage_record_batch(records=_calls("qwen-plus", ok=30, failed=0))  # checked now: healthy
    usage_record_batch(records=_calls("qwen-plus", ok=0, failed=30))  # within the interval: not checked
    assert alerts_of(AlertType.ERROR_RATE, "qwen-plus") == []
    alerts_evaluate_all(now=timezone.now())
    assert alerts_of(AlertType.ERROR_RATE, "qwen-plus") == [(10, "warning"), (25, "critical")]


def test_empty_threshold_settings_switch_a_kind_of_alert_off(settings):
    settings.AICOST_ERROR_RATE_THRESHOLDS = ""
    usage_record_batch(records=_calls("gpt-4o-mini", ok=0, failed=40))
    assert not BudgetAlert.objects.filter(alert_type=AlertType.ERROR_RATE).exists()


def test_cron_evaluation_catches_what_ingestion_did_not_see():
    spend("gpt-4o", "9")  # Before any budget: ingestion had nothing to evaluate.
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    global_budget_set(monthly_budget=Decimal(15))
    created = alerts_evaluate_all(now=timezone.now())
    assert sorted((a.alert_type, a.threshold_percent) for a in created) == [
        ("global_budget", 50),
        ("model_budget", 50),
        ("model_budget", 80),
    ]
    assert alerts_evaluate_all(now=timezone.now()) == []


def test_ingestion_evaluation_stays_at_a_few_queries(django_assert_max_num_queries):
    set_budget("gpt-4o", "10")
    global_budget_set(monthly_budget=Decimal(100))
    spend("gpt-4o", "9")
    # budgets of the batch's models, global budget + spend, rollup activity, the forecast's days
    # (at most once per interval, like the rollup activity), the INSERT
    with django_assert_max_num_queries(5):
        budget_alerts_evaluate(model_names=["gpt-4o", "gpt-4o-mini"], now=timezone.now())


def test_threshold_syntax():
    assert parse_thresholds("100:critical, 50:INFO") == (Threshold(50, "info"), Threshold(100, "critical"))
    assert parse_thresholds("") == ()
    for bad in ("50", "50:loud", "x:info", "0:info", "50:info,50:warning"):
        with pytest.raises(ThresholdSyntaxError):
            parse_thresholds(bad)


def test_system_checks_reject_bad_alert_settings(settings):
    assert check_alert_thresholds() == []
    assert check_alert_channels() == []
    settings.AICOST_ALERT_THRESHOLDS = "50:info,eighty:warning"
    settings.AICOST_SPEND_SPIKE_MIN_COST = "a lot"
    settings.AICOST_ALERT_WEBHOOK_URL = "hooks.slack.com/services/x"
    settings.AICOST_ALERT_EMAIL_TO = ["ops"]
    assert [m.id for m in check_alert_thresholds()] == ["alerts.E001", "alerts.E002"]
    assert [m.id for m in check_alert_channels()] == ["alerts.E003", "alerts.W001"]
    assert all(m.hint for m in check_alert_thresholds() + check_alert_channels())


def test_levels_known_before_models_load_match_the_model_choices():
    assert tuple(AlertLevel.values) == LEVELS


def test_invalid_alert_settings_stop_the_service_from_starting(settings):
    settings.AICOST_ERROR_RATE_THRESHOLDS = "10%:warning"
    with pytest.raises(ImproperlyConfigured, match="AICOST_ERROR_RATE_THRESHOLDS"):
        alert_settings_validate()


def test_alerts_evaluate_command_reports_new_alerts():
    spend("gpt-4o", "8")
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal(10))
    out = StringIO()
    call_command("alerts_evaluate", stdout=out)
    assert "[warning] GPT-4o has used 80.00% of its monthly budget" in out.getvalue()
    assert "2 new alert(s)." in out.getvalue()
    out = StringIO()
    call_command("alerts_evaluate", stdout=out)
    assert "0 new alert(s)." in out.getvalue()
