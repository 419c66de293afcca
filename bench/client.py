"""The Python client (clients/python, aicost_client.AicostClient) against a live gunicorn:

    python -m bench.client [--records 200000] [--workers 4] [--batch 1000] [--senders 3]
                           [--rate 4000] [--outage-seconds 10] [--queue 100000] [--small-queue 10000]

1. Throughput: one process records `--records` calls as fast as it can; records/s delivered (from
   the first record() to the last record stored, close() included), checked against the log.
2. The caller's cost: µs per record() call in the caller's thread, alone (the senders idle) and while
   the senders deliver to gunicorn (the GIL shared with them), as the mean and percentiles of
   1000-call slices.
3. An outage: `--rate` records/s for 30 s, gunicorn stopped for `--outage-seconds` from 10 s on, then
   started again on the same port; run with a queue that holds the outage (`--queue`) and one that
   does not (`--small-queue`). Records lost (offered minus stored) against the queue's bound and the
   drops the client counted.

Starts its own throwaway PostgreSQL 15 (durable) unless DATABASE_URL is set, migrates, starts
gunicorn with gunicorn.conf.py. Exits 1 if a record is stored twice or lost without being counted.
"""

import argparse
import logging
import os
import statistics
import sys
import threading
import time

from tests.throwaway_pg import rerun_without_database


def _stored(purpose: str) -> tuple[int, int, int]:
    """(rows, distinct decision ids, unpriced rows) of the bench's `purpose`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT decision_id), count(*) FILTER (WHERE cost IS NULL) "
            "FROM ai_model_usage_log WHERE purpose = %s",
            [purpose],
        )
        return cursor.fetchone()


def _record(n: int, purpose: str) -> dict:
    return {
        "model_name": "gpt-4o-mini",
        "decision_id": f"{purpose}-{n}",
        "user_id": 1 + n % 50,
        "prompt_tokens": 1000 + n % 3000,
        "completion_tokens": 200 + n % 500,
        "cached_tokens": n % 800,
        "response_time": 0.8,
        "purpose": purpose,
    }


def _throughput(url: str, key: str, args, problems: list[str]) -> None:
    from aicost_client import AicostClient

    purpose = "bench-throughput"
    client = AicostClient(url, key, batch_size=args.batch, senders=args.senders, max_queue_size=args.records + 1)
    record = client.record
    started = time.perf_counter()
    for n in range(args.records):
        record(**_record(n, purpose))
    offered = time.perf_counter() - started
    client.close(timeout=300)
    elapsed = time.perf_counter() - started
    rows, distinct, unpriced = _stored(purpose)
    stats = client.stats
    print(
        f"throughput: {args.records:,} records in {elapsed:.2f} s = {stats.delivered / elapsed:,.0f} records/s "
        f"delivered (recording took {offered:.2f} s; {stats.requests} requests of up to {args.batch}, "
        f"{args.senders} senders, {args.workers} gunicorn workers); stored {rows:,}, unpriced {unpriced}"
    )
    if rows != args.records or distinct != rows:
        problems.append(f"throughput: {args.records} recorded, {rows} stored ({distinct} distinct)")


def _per_call(client, count: int, purpose: str) -> list[float]:
    """µs per record() call, one figure per 1000-call slice."""
    record = client.record
    fields = [_record(n, purpose) for n in range(count)]
    slices = []
    clock = time.perf_counter_ns
    for start in range(0, count, 1000):
        chunk = fields[start : start + 1000]
        began = clock()
        for item in chunk:
            record(**item)
        slices.append((clock() - began) / len(chunk) / 1000)
    return slices


def _describe(slices: list[float]) -> str:
    ordered = sorted(slices)
    pick = lambda fraction: ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]  # noqa: E731
    return (
        f"mean {statistics.fmean(slices):.2f} µs, p50 {pick(0.5):.2f}, p99 {pick(0.99):.2f}, max {ordered[-1]:.2f} "
        f"(1000-call slices)"
    )


def _caller_cost(url: str, key: str, args, problems: list[str]) -> None:
    from aicost_client import AicostClient

    count = 100_000
    idle = AicostClient(url, key, batch_size=count + 1, flush_interval=3600, max_queue_size=count + 1)
    alone = _per_call(idle, count, "bench-cost-alone")
    idle.close(timeout=120)
    busy = AicostClient(url, key, batch_size=args.batch, senders=args.senders, max_queue_size=count + 1)
    sending = _per_call(busy, count, "bench-cost-busy")
    busy.close(timeout=120)
    print(f"caller's cost per record(): alone {_describe(alone)}")
    print(f"caller's cost per record(): while the senders deliver {_describe(sending)}")
    for name, slices in (("alone", alone), ("sending", sending)):
        if statistics.fmean(slices) > 20:
            problems.append(f"record() costs {statistics.fmean(slices):.1f} µs ({name}), more than 20")


def _outage(database_url: str, port: int, key: str, args, queue: int, problems: list[str]) -> None:
    from aicost_client import AicostClient

    from tests.gunicorn_server import gunicorn_serving

    purpose = f"bench-outage-{queue}"
    url = f"http://127.0.0.1:{port}"
    total_seconds, down_at = 30.0, 10.0
    client = AicostClient(
        url, key, batch_size=args.batch, senders=args.senders, max_queue_size=queue, close_timeout=120
    )  # Backoff as shipped: 0.2 s doubling up to 5 s, so the client sees the server back up to 5 s late.
    offered = 0
    servers = [gunicorn_serving(database_url=database_url, workers=args.workers, port=port)]
    servers[0].__enter__()
    moments: dict[str, float] = {}
    marks: dict[str, int] = {}

    def stop() -> None:  # SIGTERM: gunicorn stops accepting, ends its in-flight requests, exits.
        servers[0].__exit__(None, None, None)

    def restart() -> None:
        servers[0] = gunicorn_serving(database_url=database_url, workers=args.workers, port=port)
        servers[0].__enter__()  # Returns once /healthz answers.
        moments["up"], marks["up"] = time.monotonic(), offered

    # The server is stopped and started in threads, so the producer keeps its pace throughout.
    stopping, restarting = threading.Thread(target=stop), threading.Thread(target=restart)
    started = time.monotonic()
    try:
        while (now := time.monotonic() - started) < total_seconds:
            if not stopping.is_alive() and "down" not in moments and now >= down_at:
                moments["down"], marks["down"] = time.monotonic(), offered
                stopping.start()
            elif "down" in moments and not restarting.ident and now >= down_at + args.outage_seconds:
                stopping.join()
                restarting.start()
            due = int(now * args.rate)
            while offered < due:
                client.record(**_record(offered, purpose))
                offered += 1
            time.sleep(0.002)
        restarting.join()
        client.close()
        stats = client.stats
    finally:
        servers[0].__exit__(None, None, None)
    down_for = moments["up"] - moments["down"]
    offered_down = marks["up"] - marks["down"]
    bound = queue + args.senders * args.batch  # Queued, plus a batch in flight per sender.
    # Records offered while the client cannot deliver: the outage, plus up to one backoff (5 s) after it.
    undeliverable = offered_down + int(args.rate * client.backoff_max)
    rows, distinct, unpriced = _stored(purpose)
    lost = offered - rows
    print(
        f"outage: gunicorn down {down_for:.1f} s (stop to /healthz answering again), {args.rate:,}/s offered, "
        f"{offered_down:,} of them while down; bound {bound:,} (queue {queue:,} + {args.senders} x {args.batch} in "
        f"flight): offered {offered:,}, stored {rows:,} (distinct {distinct:,}, unpriced {unpriced}), lost {lost:,} "
        f"(at most {max(0, undeliverable - bound):,} expected: those offered while down or within one backoff after, "
        f"less the bound); client "
        f"counted dropped {stats.dropped:,}, abandoned {stats.abandoned}, rejected {stats.rejected}, "
        f"failed {stats.failed}; retries {stats.retries}, duplicates {stats.duplicates}"
    )
    if distinct != rows:
        problems.append(f"outage: {rows - distinct} record(s) stored twice")
    if lost != stats.dropped + stats.abandoned + stats.rejected + stats.failed:
        problems.append(f"outage: {lost} lost but the client counted {stats.dropped} dropped + others")
    if lost > max(0, undeliverable - bound):
        problems.append(f"outage: {lost} lost, more than the {max(0, undeliverable - bound)} beyond the bound")


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    from tests.gunicorn_server import free_port, gunicorn_serving
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    logging.basicConfig(level=logging.ERROR, format="  %(name)s %(levelname)s %(message)s")
    logging.getLogger("aicost_client").setLevel(logging.CRITICAL)  # The outage's retries would flood.
    logging.getLogger("httpx").setLevel(logging.WARNING)  # One INFO line per request otherwise.
    call_command("migrate", verbosity=0)
    _key, raw_key = api_key_create(name="bench-client", scope=ApiKeyScope.WRITE_USAGE)
    database_url = os.environ["DATABASE_URL"]
    problems: list[str] = []
    if "throughput" in args.only or "cost" in args.only:
        with gunicorn_serving(database_url=database_url, workers=args.workers) as url:
            if "throughput" in args.only:
                _throughput(url, raw_key, args, problems)
            if "cost" in args.only:
                _caller_cost(url, raw_key, args, problems)
    if "outage" in args.only:
        for queue in (args.queue, args.small_queue):
            _outage(database_url, free_port(), raw_key, args, queue, problems)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--outage-seconds", type=float, default=10)
    parser.add_argument("--queue", type=int, default=100_000)
    parser.add_argument("--small-queue", type=int, default=10_000)
    parser.add_argument("--only", nargs="+", default=["throughput", "cost", "outage"])
    args = parser.parse_args()
    status = rerun_without_database("bench.client", durable=True)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
