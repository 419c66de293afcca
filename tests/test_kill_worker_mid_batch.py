"""Fault test: the gunicorn worker handling a batch is killed (SIGKILL) at a random point, 200 times.

One worker serves, so the worker alive when a batch is sent is the one handling it. The client sends
a batch of BATCH keyed records, kills the worker after a random delay within the batch's usual
latency (before the body is read, inside the transaction, after the commit but before the answer),
then retries the same records with the same idempotency keys until it gets a 201. Meanwhile a reader
on its own connection polls the log's row count, which must always be a whole number of batches
(never a partial batch). At the end every record is stored exactly once and the rollups and counters
equal the log."""

import json
import os
import random
import signal
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.consistency import usage_consistency_read
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

BATCH = 20
KILLS = 200
RETRY_SECONDS = 30


def _records(batch_no: int) -> list[dict]:
    return [
        {
            "model_name": "gpt-4o" if i % 2 else "gpt-4o-mini",
            "prompt_tokens": 100 + i,
            "completion_tokens": 10,
            "decision_id": f"k{batch_no}-{i}",
            "idempotency_key": f"k{batch_no}-{i}",
        }
        for i in range(BATCH)
    ]


def _post(url: str, key: str, batch_no: int) -> int:
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{url}/api/v1/usage/",
        data=json.dumps(_records(batch_no)).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 -- loopback
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # The worker died: connection reset or closed without an answer.
        return 0


def _worker_pids(pidfile: Path) -> list[int]:
    master = int(pidfile.read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _live_worker(pidfile: Path, seconds: float = RETRY_SECONDS) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with_pidfile = pidfile.exists() and pidfile.read_text().strip()
        if with_pidfile and (pids := _worker_pids(pidfile)):
            return pids[0]
        time.sleep(0.01)
    raise AssertionError("gunicorn started no worker")


class CountPoller(threading.Thread):
    """Reads the log's row count on its own connection until stopped; keeps every count it saw."""

    def __init__(self, database_url: str):
        super().__init__(daemon=True)
        self.database_url = database_url
        self.counts: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            while not self.stopping.is_set():
                self.counts.append(connection.execute("SELECT count(*) FROM ai_model_usage_log").fetchone()[0])
                time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_batch_200_times_loses_and_duplicates_nothing():
    rng = random.Random(os.environ.get("AICOST_KILL_SEED", "19"))
    _api_key, key = api_key_create(name="kill", scope=ApiKeyScope.WRITE_USAGE)
    database_url = shared_test_database_url()
    pidfile = Path(tempfile.mkdtemp(prefix="aicost-kill-")) / "gunicorn.pid"
    env = {"GUNICORN_CMD_ARGS": f"--pid {pidfile}", "GUNICORN_MAX_REQUESTS": "0"}
    poller = CountPoller(database_url)
    first_attempts = []
    with gunicorn_serving(database_url=database_url, workers=1, env=env) as url:
        latencies = []
        for batch_no in range(10):  # Warm-up batches, not killed: the usual latency of a batch.
            started = time.monotonic()
            assert _post(url, key, batch_no) == 201
            latencies.append(time.monotonic() - started)
        window = 1.5 * statistics.median(latencies)
        poller.start()
        try:
            for batch_no in range(10, 10 + KILLS):
                worker = _live_worker(pidfile)
                answer: list[int] = []
                sender = threading.Thread(target=lambda b=batch_no, out=answer: out.append(_post(url, key, b)))
                sender.start()
                time.sleep(rng.uniform(0, window))
                os.kill(worker, signal.SIGKILL)
                sender.join(timeout=30)
                first_attempts.append(answer[0])
                deadline = time.monotonic() + RETRY_SECONDS
                while _post(url, key, batch_no) != 201:  # The retry: same records, same keys.
                    assert time.monotonic() < deadline, f"batch {batch_no} never stored"
                    time.sleep(0.02)
        finally:
            poller.stopping.set()
            poller.join(timeout=10)

    # The kills hit requests in flight (not only idle workers between batches).
    assert first_attempts.count(0) >= KILLS // 4, Counter(first_attempts)
    assert set(first_attempts) <= {0, 201}, Counter(first_attempts)  # Never a 500.
    assert poller.counts
    partial = [count for count in poller.counts if count % BATCH]
    assert not partial, partial[:5]
    stored = Counter(UsageLog.objects.values_list("decision_id", flat=True))
    expected = {f"k{b}-{i}" for b in range(10 + KILLS) for i in range(BATCH)}
    assert set(stored) == expected
    assert max(stored.values()) == 1, [d for d, n in stored.items() if n > 1][:5]
    reading = usage_consistency_read(full=True)
    assert reading.consistent, (reading.disagreements, reading.counter_drift)
