"""AicostClient against a real HTTP server we control (fake_aicost): batching, the bounded queue,
backoff and Retry-After with the same idempotency keys, 400s, close/exit flushing, threads."""

import itertools
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aicost_client import AicostClient
from aicost_client._core import backoff, retry_after
from fake_aicost import FakeAicost, free_port, invalid, unavailable

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def fake():
    with FakeAicost() as server:
        yield server


def _client(url, **options):
    options = {"flush_interval": 0.05, "backoff_base": 0.05, "backoff_max": 0.5, "close_timeout": 5, **options}
    return AicostClient(url, "aic_test_key", **options)


def test_records_arrive_in_batches_with_their_fields_a_key_and_a_moment(fake):
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with _client(fake.url, batch_size=100) as client:
        client.record(
            model_name="gpt-4o-mini",
            decision_id="order-1",
            user_id=42,
            prompt_tokens=1200,
            completion_tokens=300,
            cached_tokens=1024,
            response_time=1.8,
            purpose="summarise",
            timestamp=moment,
            cost=Decimal("0.000123456789"),
        )
        client.record_many({"model_name": "gpt-4o", "prompt_tokens": n} for n in range(249))
    assert len(fake.stored) == 250
    sizes = [len(request["records"]) for request in fake.requests]
    assert max(sizes) <= 100
    assert sum(sizes) == 250
    assert all(request["headers"]["Authorization"] == "Api-Key aic_test_key" for request in fake.requests)
    first = next(record for record in fake.sent_records() if record.get("decision_id") == "order-1")
    assert first["timestamp"] == "2026-12-01T10:00:00+00:00"
    assert first["cost"] == "0.000123456789"
    assert first["cached_tokens"] == 1024
    assert first["user_id"] == 42
    assert first["purpose"] == "summarise"
    keys = {record["idempotency_key"] for record in fake.sent_records()}
    assert len(keys) == 250  # Each record got its own key.
    for record in fake.sent_records():
        sent_at = datetime.fromisoformat(record["timestamp"])
        assert sent_at.utcoffset() is not None
        if record.get("decision_id") != "order-1":
            assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    stats = client.stats
    assert (stats.queued, stats.delivered, stats.duplicates, stats.dropped, stats.pending) == (250, 250, 0, 0, 0)


def test_a_given_idempotency_key_is_kept():
    with FakeAicost() as fake, _client(fake.url) as client:
        client.record(model_name="gpt-4o", decision_id="d", idempotency_key="mine-1", prompt_tokens=1)
    assert fake.stored_keys() == [("d", "mine-1")]


def test_unknown_fields_and_naive_timestamps_are_refused_at_the_call():
    client = _client(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(TypeError, match="prompt_tokenz"):
            client.record(model_name="gpt-4o", prompt_tokenz=1)
        with pytest.raises(TypeError, match="model_name"):
            client.record(prompt_tokens=1)
        with pytest.raises(ValueError, match="aware"):
            client.record(model_name="gpt-4o", timestamp=datetime(2026, 1, 1))  # noqa: DTZ001 -- the point
        assert client.stats.queued == 0
    finally:
        client.close(timeout=0)


def test_a_503_is_retried_after_its_retry_after_with_the_same_keys(fake, caplog):
    fake.script = [unavailable("1")]
    caplog.set_level(logging.WARNING, logger="aicost_client")
    with _client(fake.url) as client:
        client.record_many({"model_name": "gpt-4o", "prompt_tokens": n} for n in range(10))
        assert client.flush(timeout=10)
    first, second = fake.requests[0], fake.requests[1]
    assert (first["status"], second["status"]) == (503, 201)
    assert second["time"] - first["time"] >= 0.95  # Waited the Retry-After (1 s), not the 0.05 s backoff.
    assert [r["idempotency_key"] for r in first["records"]] == [r["idempotency_key"] for r in second["records"]]
    assert len(fake.stored) == 10
    assert client.stats.retries == 1
    assert client.stats.delivered == 10
    assert "503" in caplog.text
    assert "retrying" in caplog.text


def test_a_retry_of_a_batch_the_server_stored_stores_nothing_twice(fake):
    """The answer was lost (a 502 after storing, as a proxy may give): the retry is a duplicate."""

    def store_then_fail(records):
        fake._store(records)
        return 502, {}, {"success": False, "error": {"code": "bad_gateway", "message": "upstream"}}

    fake.script = [store_then_fail]
    with _client(fake.url) as client:
        client.record_many({"model_name": "gpt-4o", "decision_id": f"d{n}"} for n in range(5))
    assert [request["status"] for request in fake.requests] == [502, 201]
    assert len(fake.stored) == 5
    assert client.stats.delivered == 0
    assert client.stats.duplicates == 5


def test_server_errors_back_off_exponentially(fake):
    fake.script = [(500, {}, {})] * 4
    with _client(fake.url, backoff_base=0.1, backoff_max=10) as client:
        client.record(model_name="gpt-4o")
        assert client.flush(timeout=10)
    times = [request["time"] for request in fake.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(fake.requests) == 5
    assert len(fake.stored) == 1
    # Jittered between half and all of 0.1, 0.2, 0.4, 0.8 s.
    for gap, full in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert full / 2 - 0.01 <= gap <= full + 0.15, gaps


def test_an_unreachable_server_is_retried_until_it_answers():
    port = free_port()
    client = _client(f"http://127.0.0.1:{port}", backoff_max=0.2)
    client.record_many({"model_name": "gpt-4o", "prompt_tokens": n} for n in range(20))
    time.sleep(0.6)
    assert client.stats.retries >= 2
    assert client.stats.delivered == 0
    with FakeAicost(port) as fake:
        assert client.flush(timeout=10)
        client.close()
    assert len(fake.stored) == 20
    assert client.stats.delivered == 20


def test_a_record_a_400_names_is_logged_and_not_retried_the_rest_are_stored(fake, caplog):
    message = "Cannot exceed prompt_tokens."

    def judge(records):
        for index, record in enumerate(records):
            if record.get("cached_tokens", 0) > record.get("prompt_tokens", 0):
                return invalid(index, "cached_tokens", message)
        return None

    fake.judge = judge
    caplog.set_level(logging.ERROR, logger="aicost_client")
    with _client(fake.url) as client:
        client.record_many(
            {
                "model_name": "gpt-4o",
                "decision_id": f"d{n}",
                "prompt_tokens": 10,
                "cached_tokens": 20 if n in (3, 7) else 5,
            }
            for n in range(10)
        )
    assert sorted(pair[0] for pair in fake.stored) == sorted(f"d{n}" for n in range(10) if n not in (3, 7))
    sent = [record["decision_id"] for record in fake.sent_records()]
    # d3 went twice (in the first and the second request), d7 once after it: refused, never again.
    assert sent.count("d3") == 1
    assert sent.count("d7") == 2
    assert client.stats.rejected == 2
    assert client.stats.delivered == 8
    assert f"records[3].cached_tokens: {message}" in caplog.text
    assert "decision_id='d3'" in caplog.text
    assert "not retried" in caplog.text


def test_a_400_that_names_no_record_is_narrowed_down_to_the_record(fake, caplog):
    def judge(records):
        if any(record.get("purpose") == "bad" for record in records):
            return 400, {}, {"success": False, "error": {"code": "invalid", "message": "Something is wrong."}}
        return None

    fake.judge = judge
    caplog.set_level(logging.ERROR, logger="aicost_client")
    with _client(fake.url) as client:
        client.record_many(
            {"model_name": "m", "decision_id": f"d{n}", "purpose": "bad" if n == 5 else ""} for n in range(8)
        )
    assert sorted(pair[0] for pair in fake.stored) == [f"d{n}" for n in range(8) if n != 5]
    assert client.stats.rejected == 1
    assert "Something is wrong." in caplog.text
    assert "decision_id='d5'" in caplog.text


def test_an_authentication_failure_is_logged_and_not_retried(fake, caplog):
    body = {"success": False, "error": {"code": "authentication_failed", "message": "Invalid API key."}}
    fake.script = [(401, {}, body)]
    caplog.set_level(logging.ERROR, logger="aicost_client")
    with _client(fake.url) as client:
        client.record_many({"model_name": "m"} for _ in range(3))
    assert len(fake.requests) == 1
    assert client.stats.failed == 3
    assert "Invalid API key." in caplog.text


def test_a_full_queue_drops_the_oldest_counts_and_logs_it(fake, caplog):
    fake.gate.clear()  # The server stalls: the one sender waits on its first batch.
    caplog.set_level(logging.ERROR, logger="aicost_client")
    client = _client(fake.url, batch_size=10, max_queue_size=50, senders=1)
    client.record(model_name="m", decision_id="first")
    deadline = time.monotonic() + 5
    while client.stats.pending and len(client._buffer) and time.monotonic() < deadline:
        time.sleep(0.01)  # The first record is in flight (taken from the queue).
    client.record_many({"model_name": "m", "decision_id": f"d{n}"} for n in range(80))
    stats = client.stats
    assert stats.dropped == 30
    assert stats.pending == 51
    fake.gate.set()
    client.close()
    stored = sorted(pair[0] for pair in fake.stored)
    assert stored == sorted(["first"] + [f"d{n}" for n in range(30, 80)])  # d0..d29, the oldest, dropped.
    assert client.stats.delivered == 51
    assert client.stats.dropped == 30
    assert "queue full (50 records): dropped 30 oldest record(s)" in caplog.text


def test_close_is_bounded_by_its_timeout_when_the_server_is_down(caplog):
    caplog.set_level(logging.ERROR, logger="aicost_client")
    client = _client(f"http://127.0.0.1:{free_port()}", backoff_base=0.5, backoff_max=5)
    client.record_many({"model_name": "m"} for _ in range(30))
    started = time.monotonic()
    client.close(timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert client.stats.abandoned == 30
    assert client.stats.delivered == 0
    assert "not sent" in caplog.text


def test_the_interpreter_exit_flushes_what_is_queued(fake):
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(SRC)!r})
        from aicost_client import AicostClient
        client = AicostClient({fake.url!r}, "aic_test_key", flush_interval=60, batch_size=1000)
        client.record_many({{"model_name": "gpt-4o", "decision_id": f"exit-{{n}}"}} for n in range(25))
        """
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert time.monotonic() - started < 20
    assert sorted(pair[0] for pair in fake.stored) == sorted(f"exit-{n}" for n in range(25))


def test_many_threads_record_at_once_and_each_record_is_stored_once(fake):
    with _client(fake.url, batch_size=200, senders=3) as client:

        def work(thread: int) -> None:
            for n in range(2000):
                client.record(model_name="m", decision_id=f"t{thread}-{n}")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(fake.stored) == 16_000
    assert len(fake.sent_records()) == 16_000  # Nothing sent twice.
    assert client.stats.delivered == 16_000
    assert client.stats.queued == 16_000


def test_retry_after_and_backoff_rules():
    assert retry_after("3", cap=10) == 3
    assert retry_after("30", cap=10) == 10
    assert retry_after(None, cap=10) is None
    assert retry_after("soon", cap=10) is None
    later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 3 <= retry_after(later, cap=10) <= 5
    for attempt, full in enumerate((0.2, 0.4, 0.8, 1.6, 2.0, 2.0)):
        assert full / 2 <= backoff(attempt, 0.2, 2.0) <= full


def test_the_body_is_the_apis_batch_shape(fake):
    with _client(fake.url) as client:
        client.record(model_name="claude-sonnet-4-5", usage={"input_tokens": 5, "output_tokens": 7}, success=False)
    (request,) = fake.requests
    assert json.loads(json.dumps(request["records"]))[0]["usage"] == {"input_tokens": 5, "output_tokens": 7}
    assert request["records"][0]["success"] is False
