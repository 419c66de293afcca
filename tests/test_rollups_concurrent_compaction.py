"""Reads stay exact while another connection ingests and compacts (issue 14, point 6b), and the
compactor thread keeps the rollups compacted by itself on PostgreSQL.

One connection reads the stats and the daily trend again and again while another records batches
and compacts after each. Every answer must be the oracle's (tests/rollup_oracle.py) for the data
committed at some moment: the first k batches, for a k that never goes back. A compaction seen
half, or a reader that missed delta rows or counted them twice, gives figures no k has."""

import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums, sums_of
from usage.models import UsageLog
from usage.rollups import GRAINS, rollups_compact, rollups_compactor_running
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters, usage_sums_by_local_day, usage_sums_by_model

BASE = datetime(2026, 3, 7, 22, 50, tzinfo=UTC)  # Batches cross quarter hours, hours and UTC midnight.
MODELS = ["gpt-4o", "deepseek-chat", "not-in-pricing"]
BATCHES, BATCH_SIZE = 12, 30
ZONE = ZoneInfo("Asia/Kathmandu")  # UTC+5:45: local days start off the hour.
FIRST_DAY, DAYS = BASE.astimezone(ZONE).date() - timedelta(days=1), 3
# Windows: one off the quarter hours at both ends (raw log edges + rollups), one from the beginning.
WINDOWS = [
    (BASE + timedelta(minutes=7, seconds=13), BASE + timedelta(hours=5, minutes=2)),
    (None, BASE + timedelta(days=1)),
]


def _batch(number: int) -> list[UsageRecordInput]:
    return [
        UsageRecordInput(
            model_name=MODELS[(n + number) % len(MODELS)],
            decision_id=f"batch-{number}",
            timestamp=BASE + timedelta(minutes=11 * n + 3 * number, seconds=n),
            prompt_tokens=1000 + n,
            cached_tokens=(n * 37) % 500,
            completion_tokens=200 + number,
            reasoning_tokens=(n * 11) % 150,
            success=(n + number) % 4 != 0,
            response_time=None if n % 6 == 0 else n / 8,
            cost=Decimal("0.125") if n % 9 == 0 else None,
        )
        for n in range(BATCH_SIZE)
    ]


TREND_FILTERS = {"trend": UsageFilters(), "trend of two models": UsageFilters(model_names=frozenset(MODELS[:2]))}


def _reads() -> list[tuple[str, dict]]:
    """One round of the reader: each stats window and each trend, read as the APIs read them (each
    its own snapshot), in this order."""
    reads = []
    for start, end in WINDOWS:
        sums = usage_sums_by_model(start=start, end=end, filters=UsageFilters())
        reads.append((f"stats {start}..{end}", {m: sums_of(s) for m, s in sums.items() if s.calls}))
    for name, filters in TREND_FILTERS.items():
        sums = usage_sums_by_local_day(first_day=FIRST_DAY, days=DAYS, zone=ZONE, filters=filters)
        reads.append((name, {day: sums_of(s) for day, s in sums.items() if s.calls}))
    return reads


def _oracle(logs: list[UsageLog]) -> dict[str, dict]:
    """What each read must answer for these log rows, worked out in plain Python."""
    oracle = {}
    for start, end in WINDOWS:
        by_model = defaultdict(list)
        for log in logs:
            if (start is None or log.timestamp >= start) and log.timestamp < end:
                by_model[log.model_name].append(log)
        oracle[f"stats {start}..{end}"] = {m: expected_sums(rows) for m, rows in by_model.items()}
    for name, filters in TREND_FILTERS.items():
        by_day = defaultdict(list)
        for log in logs:
            day = log.timestamp.astimezone(ZONE).date()
            in_days = FIRST_DAY <= day < FIRST_DAY + timedelta(days=DAYS)
            if in_days and (filters.model_names is None or log.model_name in filters.model_names):
                by_day[day].append(log)
        oracle[name] = {day: expected_sums(rows) for day, rows in by_day.items()}
    return oracle


def _committed_state(name: str, answer: dict, oracles: list[dict[str, dict]]) -> int | None:
    """The k (batches committed) whose oracle the answer equals, or None."""
    return next((k for k, oracle in enumerate(oracles) if answer == oracle[name]), None)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_stats_and_trend_stay_exact_while_another_connection_ingests_and_compacts():
    compactions: list[int | None] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def ingest_and_compact() -> None:
        try:
            for number in range(BATCHES):
                usage_record_batch(records=_batch(number))
                time.sleep(0.005)  # Let the reader see this state with its deltas before they are compacted.
                compactions.append(rollups_compact())
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()
            connection.close()

    writer = threading.Thread(target=ingest_and_compact)
    writer.start()
    reads = []
    while not done.is_set():
        reads += _reads()
    writer.join(60)
    reads += _reads()
    assert errors == []
    assert all(count for count in compactions), compactions  # Every compaction found deltas and ran.

    logs = list(UsageLog.objects.order_by("id"))
    oracles = [_oracle([log for log in logs if int(log.decision_id.split("-")[1]) < k]) for k in range(BATCHES + 1)]
    states = [_committed_state(name, answer, oracles) for name, answer in reads]
    wrong = [name for (name, _answer), state in zip(reads, states, strict=True) if state is None]
    assert wrong == [], f"{len(wrong)} of {len(reads)} reads match no committed state"
    assert states == sorted(states), "a read went back to an earlier state"
    assert states[-1] == BATCHES
    assert len(set(states)) > 2, states  # The reads really ran during the ingestion.
    assert not any(grain.model.objects.filter(compacted=False).exists() for grain in GRAINS)


def _forked_child_sees_no_compactor() -> bool:
    """A forked process (a gunicorn worker) has no compactor thread: its first batch starts its own.
    The child only looks and exits (it shares the parent's database socket)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if not rollups_compactor_running() else 1)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _delta_rows() -> int:
    return sum(grain.model.objects.filter(compacted=False).count() for grain in GRAINS)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_compactor_thread_leaves_no_delta_rows_behind(settings):
    settings.AICOST_ROLLUP_COMPACT_SECONDS = 0.05  # Finite: ingestion starts this process's compactor.
    assert not rollups_compactor_running()
    usage_record_batch(records=_batch(0))
    assert rollups_compactor_running()
    assert _forked_child_sees_no_compactor()
    usage_record_batch(records=_batch(1))
    deadline = time.monotonic() + 15
    while _delta_rows() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _delta_rows() == 0
    logs = list(UsageLog.objects.all())
    assert sum(row.calls for row in GRAINS[0].model.objects.all()) == len(logs) == 2 * BATCH_SIZE
    sums = usage_sums_by_model(start=None, end=BASE + timedelta(days=2), filters=UsageFilters())
    assert {m: sums_of(s) for m, s in sums.items()} == {
        m: expected_sums(log for log in logs if log.model_name == m) for m in MODELS
    }
