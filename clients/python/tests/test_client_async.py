"""AsyncAicostClient against a real local HTTP server: batches, Retry-After with the same keys, 400s,
the bounded queue, records from other threads, aclose() bounds, and what exit sends."""

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from aicost_client import AsyncAicostClient
from fake_aicost import FakeAicost, free_port, invalid, unavailable

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def fake():
    with FakeAicost() as server:
        yield server


def _client(url, **options):
    options = {"flush_interval": 0.05, "backoff_base": 0.05, "backoff_max": 0.5, "close_timeout": 5, **options}
    return AsyncAicostClient(url, "aic_test_key", **options)


def test_records_are_batched_and_sent_by_the_loop(fake):
    async def main():
        async with _client(fake.url, batch_size=100) as client:
            for n in range(250):
                client.record(model_name="gpt-4o", decision_id=f"d{n}", prompt_tokens=n)
            assert client.stats.pending > 0  # Queued, not sent inline.
        return client

    client = asyncio.run(main())
    assert sorted(pair[0] for pair in fake.stored) == sorted(f"d{n}" for n in range(250))
    assert max(len(request["records"]) for request in fake.requests) <= 100
    assert client.stats.delivered == 250
    assert client.stats.pending == 0


def test_a_503_is_retried_after_retry_after_with_the_same_keys_and_a_400_is_not(fake, caplog):
    fake.script = [unavailable("1"), invalid(2, "prompt_tokens", "Ensure this value is greater than or equal to 0.")]
    caplog.set_level(logging.WARNING, logger="aicost_client")

    async def main():
        client = _client(fake.url)
        client.record_many({"model_name": "m", "decision_id": f"d{n}"} for n in range(5))  # Starts in the loop.
        assert await client.flush(timeout=10)
        await client.aclose()
        return client

    client = asyncio.run(main())
    statuses = [request["status"] for request in fake.requests]
    assert statuses == [503, 400, 201]
    assert fake.requests[1]["time"] - fake.requests[0]["time"] >= 0.95
    keys = [[record["idempotency_key"] for record in request["records"]] for request in fake.requests]
    assert keys[0] == keys[1]
    assert keys[2] == keys[0][:2] + keys[0][3:]
    assert sorted(pair[0] for pair in fake.stored) == ["d0", "d1", "d3", "d4"]
    assert client.stats.rejected == 1
    assert "records[2].prompt_tokens: Ensure this value is greater than or equal to 0." in caplog.text


def test_records_from_other_threads_wake_the_loop(fake):
    async def main():
        async with _client(fake.url, batch_size=50, flush_interval=30) as client:

            def work(thread):
                for n in range(500):
                    client.record(model_name="m", decision_id=f"t{thread}-{n}")

            threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            started = time.monotonic()
            while len(fake.stored) < 2000 and time.monotonic() - started < 10:
                await asyncio.sleep(0.01)
            # Whole batches went without waiting for the 30 s flush interval.
            assert len(fake.stored) == 2000

    asyncio.run(main())
    assert len(fake.sent_records()) == 2000


def test_a_full_queue_drops_the_oldest(fake):
    fake.gate.clear()

    async def main():
        client = _client(fake.url, batch_size=10, max_queue_size=20, senders=1)
        await client.start()
        client.record(model_name="m", decision_id="first")
        while len(client._buffer):
            await asyncio.sleep(0.01)
        client.record_many({"model_name": "m", "decision_id": f"d{n}"} for n in range(50))
        assert client.stats.dropped == 30
        fake.gate.set()
        await client.aclose()
        return client

    client = asyncio.run(main())
    assert sorted(pair[0] for pair in fake.stored) == sorted(["first"] + [f"d{n}" for n in range(30, 50)])
    assert client.stats.dropped == 30


def test_aclose_is_bounded_when_the_server_is_down():
    async def main():
        client = _client(f"http://127.0.0.1:{free_port()}", backoff_base=0.5, backoff_max=5)
        client.record_many({"model_name": "m"} for _ in range(12))
        started = time.monotonic()
        await client.aclose(timeout=1.0)
        return client, time.monotonic() - started

    client, took = asyncio.run(main())
    assert took < 2.5
    assert client.stats.abandoned == 12


def test_what_a_stopped_loop_left_queued_is_sent_at_exit(fake):
    script = textwrap.dedent(
        f"""
        import asyncio, sys; sys.path.insert(0, {str(SRC)!r})
        from aicost_client import AsyncAicostClient
        client = AsyncAicostClient({fake.url!r}, "aic_test_key", flush_interval=60, batch_size=1000)
        async def main():
            client.record_many({{"model_name": "gpt-4o", "decision_id": f"exit-{{n}}"}} for n in range(7))
        asyncio.run(main())  # Ends without aclose(): the loop, its tasks and client are gone.
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert sorted(pair[0] for pair in fake.stored) == sorted(f"exit-{n}" for n in range(7))
