"""Parallel ingestion on PostgreSQL: each alert exists once and is notified once.

Writers are threads with their own database connections, each calling usage_record_batch in its
own transaction, started together on a barrier so their evaluations overlap."""

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from alerts.models import AlertDelivery, AlertType, BudgetAlert
from alerts.services import global_budget_set
from ingest.services import usage_record_batch
from tests.alert_helpers import WebhookReceiver, set_budget
from usage.models import UsageCounter
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

THREADS = 8
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5", "deepseek-chat"]


def run_writers(batches_for_thread) -> list[BaseException]:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            for batch in batches_for_thread(index):
                usage_record_batch(records=batch)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def alert_keys() -> Counter:
    return Counter(BudgetAlert.objects.values_list("alert_type", "model_name", "period_start", "threshold_percent"))


@pytest.fixture
def receiver(settings):
    with WebhookReceiver() as server:
        settings.AICOST_ALERT_WEBHOOK_URL = server.url
        yield server


def test_writers_crossing_every_threshold_at_once_raise_each_alert_once(receiver):
    set_budget("gpt-4o", "20")
    global_budget_set(monthly_budget=Decimal("20"))
    # Every writer's single batch alone is over both budgets: all eight race for the same six rows.
    errors = run_writers(lambda i: [[UsageRecordInput(model_name="gpt-4o", cost=Decimal("25"))]])
    assert errors == []
    keys = alert_keys()
    assert sorted((kind, threshold) for kind, _model, _period, threshold in keys) == [
        ("global_budget", 50),
        ("global_budget", 80),
        ("global_budget", 100),
        ("model_budget", 50),
        ("model_budget", 80),
        ("model_budget", 100),
    ]
    assert set(keys.values()) == {1}
    assert UsageCounter.objects.get(model_name="gpt-4o").current_month_cost == Decimal(25 * THREADS)
    # One message per budget: the highest threshold crossed (the lower ones are stored, not sent).
    assert AlertDelivery.objects.filter(status="sent").count() == 2
    assert len(receiver.payloads) == 2
    assert all("[aicost] CRITICAL" in p["text"] for p in receiver.payloads)


def test_many_writers_on_several_models_raise_each_global_threshold_once(receiver):
    for model_name in MODELS:
        set_budget(model_name, "4")
    global_budget_set(monthly_budget=Decimal("16"))

    def batches(index: int):
        model_name = MODELS[index % len(MODELS)]
        return [[UsageRecordInput(model_name=model_name, cost=Decimal("0.05"))] * 5 for _ in range(20)]

    errors = run_writers(batches)
    assert errors == []
    # 8 writers x 20 batches x 5 calls x 0.05 = 40 in total, 10 per model: every threshold crossed.
    keys = alert_keys()
    assert set(keys.values()) == {1}
    assert sum(1 for key in keys if key[0] == AlertType.GLOBAL_BUDGET) == 3
    assert sum(1 for key in keys if key[0] == AlertType.MODEL_BUDGET) == 3 * len(MODELS)
    # Every delivery row was sent exactly once, and every budget's 100% alert was among them.
    sent_for = sorted(p["blocks"][-1]["elements"][0]["text"] for p in receiver.payloads)
    assert sent_for == sorted(f"aicost alert #{d.alert_id}" for d in AlertDelivery.objects.filter(status="sent"))
    assert len(set(sent_for)) == len(sent_for) == AlertDelivery.objects.count()
    critical = BudgetAlert.objects.filter(threshold_percent=100).values_list("pk", flat=True)
    assert {f"aicost alert #{pk}" for pk in critical} <= set(sent_for)
