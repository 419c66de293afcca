"""Fault test: the gunicorn worker handling a batch is killed (SIGKILL) at a random point, 200 times.

One worker serves, so the worker alive when a batch is sent is the one handling it. The client sends
a batch of BATCH keyed records, kills the worker after a random delay within the batch's usual
latency (before the body is read, inside the transaction, after the commit but before the answer),
then retries the same records with the same idempotency keys until it gets a 201. Meanwhile a reader
on its own connection polls the log's row count, which must always be a whole number of batches
(never a partial batch); the count is also read right after each kill, before the retry. At the end
every record is stored exactly once and the rollups and counters equal the log.

gunicorn runs with --preload here (the app imported once in the master, each worker a fork of it):
the master replaces a killed worker in milliseconds instead of the second a worker takes to import
Django, which keeps 200 kills within a minute or two. What a kill interrupts is the same."""

import http.client
import json
import os
import random
import signal
import statistics
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
WARM_UP = 10
KILLS = int(os.environ.get("AICOST_KILLS", 200))
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
    except (OSError, http.client.HTTPException):  # The worker died: no answer, or a cut one (IncompleteRead).
        return 0


def _worker_pids(pidfile: Path) -> list[int]:
    """The gunicorn master's live children (a killed worker not yet reaped is a zombie: left out)."""
    master = int(pidfile.read_text())
    pids = []
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.append(int(pid))
    return pids


def _live_worker(pidfile: Path, *, not_pid: int | None = None, seconds: float = RETRY_SECONDS) -> int:
    """The one worker's pid, once it is not `not_pid` (the one just killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            pids = [pid for pid in _worker_pids(pidfile) if pid != not_pid]
            if pids:
                return pids[0]
        time.sleep(0.005)
    raise AssertionError("gunicorn started no worker")


def _log_count(connection: psycopg.Connection) -> int:
    return connection.execute("SELECT count(*) FROM ai_model_usage_log").fetchone()[0]


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
                self.counts.append(_log_count(connection))
                time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_batch_200_times_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(os.environ.get("AICOST_KILL_SEED", "19"))
    _api_key, key = api_key_create(name="kill", scope=ApiKeyScope.WRITE_USAGE)
    database_url = shared_test_database_url()
    pidfile = tmp_path / "gunicorn.pid"
    env = {
        "GUNICORN_CMD_ARGS": f"--pid {pidfile} --preload",
        "GUNICORN_MAX_REQUESTS": "0",
        # --preload imports the app before gunicorn.conf.py's on_starting names the metrics directory.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    poller = CountPoller(database_url)
    first_attempts: list[int] = []
    outcomes: Counter = Counter()  # What each kill interrupted, judged by the log right after it.
    after_kill_counts: list[int] = []
    with (
        gunicorn_serving(database_url=database_url, workers=1, env=env) as url,
        psycopg.connect(database_url, autocommit=True) as checker,
    ):
        latencies = []
        for batch_no in range(WARM_UP):  # Not killed: the usual latency of a batch.
            started = time.monotonic()
            assert _post(url, key, batch_no) == 201
            latencies.append(time.monotonic() - started)
        window = 1.5 * statistics.median(latencies)
        poller.start()
        worker = _live_worker(pidfile)
        try:
            for batch_no in range(WARM_UP, WARM_UP + KILLS):
                before = _log_count(checker)
                answer: list[int] = []
                sender = threading.Thread(target=lambda b=batch_no, out=answer: out.append(_post(url, key, b)))
                sender.start()
                time.sleep(rng.uniform(0, window))
                os.kill(worker, signal.SIGKILL)
                sender.join(timeout=30)
                first_attempts.append(answer[0])
                worker = _live_worker(pidfile, not_pid=worker)
                after = _log_count(checker)
                after_kill_counts.append(after)
                if answer[0] == 201:
                    outcomes["answered (killed before accepting it, or after answering)"] += 1
                elif after == before:
                    outcomes["killed before the commit"] += 1
                else:
                    outcomes["killed after the commit, before the answer"] += 1
                deadline = time.monotonic() + RETRY_SECONDS
                while _post(url, key, batch_no) != 201:  # The retry: same records, same keys.
                    assert time.monotonic() < deadline, f"batch {batch_no} never stored"
                    time.sleep(0.02)
        finally:
            poller.stopping.set()
            poller.join(timeout=10)

    print(f"{KILLS} kills: {dict(outcomes)}; first attempts {dict(Counter(first_attempts))}")
    # The kills hit requests in flight (not only idle workers between batches), before their commit.
    assert first_attempts.count(0) >= KILLS // 4, outcomes
    assert outcomes["killed before the commit"] >= KILLS // 10, outcomes
    assert set(first_attempts) <= {0, 201}, Counter(first_attempts)  # Never a 500.
    # No partial batch was ever visible: not to the poller, not right after a kill.
    assert len(poller.counts) > KILLS
    partial = [count for count in poller.counts + after_kill_counts if count % BATCH]
    assert not partial, partial[:5]
    # Every record stored exactly once.
    stored = Counter(UsageLog.objects.values_list("decision_id", flat=True))
    expected = {f"k{b}-{i}" for b in range(WARM_UP + KILLS) for i in range(BATCH)}
    assert set(stored) == expected, (len(set(stored)), len(expected))
    assert max(stored.values()) == 1, [d for d, n in stored.items() if n > 1][:5]
    # Counters and rollups equal the log.
    reading = usage_consistency_read(full=True)
    assert reading.counters, "the counters were compared"
    assert reading.consistent, (reading.disagreements, reading.counter_drift)
