"""Parallel writers on PostgreSQL: no lost counter updates, no deadlocks, retries stored once."""

import random
import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from ingest.services import usage_record_batch
from tests.counters import counters_set
from usage.models import UsageCounter, UsageLog, UsageRollupHour
from usage.rollups import rollups_compact
from usage.services import UsageRecordInput, usage_counters_reconcile

MODELS = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-haiku-4-5", "unknown-model"]


def _run_in_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            target(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _batch(rng: random.Random, size: int, key_prefix: str = "") -> list[UsageRecordInput]:
    return [
        UsageRecordInput(
            model_name=rng.choice(MODELS),
            prompt_tokens=rng.randint(0, 5000),
            completion_tokens=rng.randint(0, 2000),
            decision_id=f"{key_prefix}{i}" if key_prefix else "",
            idempotency_key="k" if key_prefix else "",
        )
        for i in range(size)
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_writers_lose_no_counter_update():
    writers, batches, size = 8, 6, 50
    compactions: list[int | None] = []

    def write(index: int) -> None:
        rng = random.Random(index)
        for _ in range(batches):
            usage_record_batch(records=_batch(rng, size))
            if index == 0:  # One thread also compacts between its batches: compactions and appends interleave.
                compactions.append(rollups_compact())

    assert _run_in_threads(write, writers) == []
    assert any(compactions)
    assert UsageLog.objects.count() == writers * batches * size
    for counter in UsageCounter.objects.filter(model_name__in=MODELS):
        logs = UsageLog.objects.filter(model_name=counter.model_name)
        assert counter.total_calls == logs.count()
        assert counter.total_cost == (logs.aggregate(total=Sum("cost"))["total"] or Decimal(0))
        assert counter.current_month_cost == counter.total_cost
    assert UsageRollupHour.objects.aggregate(total=Sum("calls"))["total"] == writers * batches * size
    assert UsageRollupHour.objects.filter(compacted=True).exists()
    rollups_compact()
    assert UsageRollupHour.objects.aggregate(total=Sum("calls"))["total"] == writers * batches * size
    assert not UsageRollupHour.objects.filter(compacted=False).exists()
    assert usage_counters_reconcile(fix=False) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_retries_of_the_same_batch_are_stored_once():
    batch = _batch(random.Random(1), 200, key_prefix="retry-")

    assert _run_in_threads(lambda _index: usage_record_batch(records=batch), 6) == []
    assert UsageLog.objects.count() == 200
    # Every model has counters, priced or not (usage's own table since issue 14).
    assert sum(UsageCounter.objects.values_list("total_calls", flat=True)) == UsageLog.objects.count()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_reconcile_reports_and_fixes_drifted_counters():
    usage_record_batch(records=_batch(random.Random(2), 100))
    counters_set(model_name="gpt-4o", total_calls=0, total_cost=Decimal("123"))
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("usage_reconcile", stdout=out, stderr=err)
    assert exit_info.value.code == 1
    assert "gpt-4o.total_calls: counter 0, log" in out.getvalue()
    assert "gpt-4o.total_cost: counter 123" in out.getvalue()
    call_command("usage_reconcile", "--fix", stdout=StringIO())
    assert usage_counters_reconcile(fix=False) == []
    assert (
        UsageCounter.objects.get(model_name="gpt-4o").total_calls
        == UsageLog.objects.filter(model_name="gpt-4o").count()
    )
