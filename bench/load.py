"""Load test: many clients ingest concurrently through gunicorn; every accepted record must be
stored exactly once, and the counters and rollups must equal the log afterwards.

    python -m bench.load [--clients 32] [--seconds 20] [--workers 4] [--batch 100]

On demand, bounded in time, loopback only. Starts its own throwaway PostgreSQL 15 (durable) unless
DATABASE_URL is set, migrates, starts gunicorn with gunicorn.conf.py, and runs `--clients` threads
that each POST batches of records with idempotency keys for `--seconds`. One batch in five is sent
twice (a client retrying after a lost answer): the retry must store nothing new. Prints throughput,
latency percentiles and statuses, then checks the database and exits 1 on any discrepancy.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal

from tests.throwaway_pg import rerun_without_database

MODELS = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-haiku-4-5", "qwen-plus", "no-such-model"]


def _records(rng: random.Random, client: int, batch_no: int, size: int) -> list[dict]:
    return [
        {
            "model_name": rng.choice(MODELS),
            "decision_id": f"c{client}-b{batch_no}-{i}",
            "idempotency_key": "load",
            "user_id": rng.randint(1, 100),
            "prompt_tokens": rng.randint(10, 8000),
            "completion_tokens": rng.randint(1, 2000),
            "response_time": round(rng.uniform(0.1, 5), 3),
            "success": rng.random() > 0.03,
        }
        for i in range(size)
    ]


class Client(threading.Thread):
    def __init__(self, *, url: str, key: str, number: int, batch: int, until: float):
        super().__init__(daemon=True)
        self.url, self.key, self.number, self.batch, self.until = url, key, number, batch, until
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.accepted: set[str] = set()
        self.stored_reported = 0

    def _post(self, records: list[dict]) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 -- loopback
            f"{self.url}/api/v1/usage/",
            data=json.dumps(records).encode(),
            headers={"Authorization": f"Api-Key {self.key}", "Content-Type": "application/json"},
            method="POST",
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 -- loopback
                status, body = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, body = error.code, {}
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] += 1
        return status, body

    def run(self) -> None:
        rng = random.Random(self.number)
        batch_no = 0
        while time.monotonic() < self.until:
            records = _records(rng, self.number, batch_no, self.batch)
            sends = 2 if batch_no % 5 == 0 else 1
            for _ in range(sends):
                status, body = self._post(records)
                if status == 201:
                    self.accepted.update(r["decision_id"] for r in records)
                    self.stored_reported += body["data"]["stored"]
            batch_no += 1


def _process_cpu() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and of its reaped children), from Linux's /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # Gone meanwhile.
        processes[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / ticks)
    return processes


def _tree_cpu(root: int, *, with_root: bool = True) -> float:
    """CPU seconds of `root` and every process below it so far (utime, stime, and reaped children's)."""
    processes = _process_cpu()
    below: dict[int, list[int]] = {}
    for pid, (parent, _cpu) in processes.items():
        below.setdefault(parent, []).append(pid)
    total, pending = (processes.get(root, (0, 0.0))[1] if with_root else 0.0), list(below.get(root, []))
    while pending:
        pid = pending.pop()
        total += processes.get(pid, (0, 0.0))[1]
        pending += below.get(pid, [])
    return total


def _postmaster_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return _process_cpu()[backend][0]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def _verify(accepted: set[str], stored_reported: int) -> list[str]:
    from django.db import connection
    from django.db.models import Sum

    from usage.models import UsageLog, UsageRollupDaily, UsageRollupHour
    from usage.rollups import rollups_compact
    from usage.services import usage_counters_reconcile

    problems = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT decision_id) FROM ai_model_usage_log")
        rows, distinct = cursor.fetchone()
    if rows != distinct:
        problems.append(f"{rows - distinct} record(s) stored more than once")
    if rows != len(accepted):
        problems.append(f"{len(accepted)} records accepted but {rows} stored")
    if stored_reported != rows:
        problems.append(f"the API reported {stored_reported} stored, the log has {rows}")
    differences = usage_counters_reconcile(fix=False)
    if differences:
        problems.append(f"{len(differences)} counter(s) differ from the log: {differences[:3]}")
    log = UsageLog.objects.aggregate(cost=Sum("cost"))["cost"] or Decimal(0)
    rollups_compact()  # Reads sum delta rows too; this checks that compaction keeps the sums.
    for rollup in (UsageRollupHour, UsageRollupDaily):
        sums = rollup.objects.aggregate(calls=Sum("calls"), cost=Sum("cost"))
        if sums["calls"] != rows or (sums["cost"] or Decimal(0)) != log:
            problems.append(f"{rollup.__name__}: {sums} but the log has {rows} calls costing {log}")
    return problems


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    from tests.gunicorn_server import gunicorn_serving
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    call_command("migrate", verbosity=0)
    _key, raw_key = api_key_create(name="load", scope=ApiKeyScope.WRITE_USAGE)
    with gunicorn_serving(database_url=os.environ["DATABASE_URL"], workers=args.workers) as url:
        until = time.monotonic() + args.seconds
        clients = [Client(url=url, key=raw_key, number=n, batch=args.batch, until=until) for n in range(args.clients)]
        postmaster = _postmaster_pid()
        cpu_before = (_tree_cpu(os.getpid(), with_root=False), _tree_cpu(postmaster), time.process_time())
        started = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=args.seconds + 120)
        elapsed = time.perf_counter() - started
        cpu_after = (_tree_cpu(os.getpid(), with_root=False), _tree_cpu(postmaster), time.process_time())

    latencies = [latency for client in clients for latency in client.latencies]
    statuses = sum((client.statuses for client in clients), Counter())
    accepted = set().union(*(client.accepted for client in clients))
    stored_reported = sum(client.stored_reported for client in clients)
    print(f"{args.clients} clients, {args.workers} gunicorn workers, batches of {args.batch}, {elapsed:.1f} s")
    print(f"requests {len(latencies):,}  statuses {dict(statuses)}")
    print(f"accepted {len(accepted):,} records = {len(accepted) / elapsed:,.0f} records/s")
    print(
        f"latency p50 {_percentile(latencies, 0.5):.0f} ms  p95 {_percentile(latencies, 0.95):.0f} ms  "
        f"p99 {_percentile(latencies, 0.99):.0f} ms"
    )
    records = max(1, len(accepted))
    per_thousand = [10**6 * (after - before) / records for before, after in zip(cpu_before, cpu_after, strict=True)]
    print(  # Less sensitive to other work on the machine than records/s.
        f"CPU per 1000 records: gunicorn {per_thousand[0]:.0f} ms, PostgreSQL {per_thousand[1]:.0f} ms, "
        f"clients {per_thousand[2]:.0f} ms"
    )
    problems = _verify(accepted, stored_reported)
    if set(statuses) - {201}:
        problems.append(f"non-201 answers: {dict(statuses)}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if not problems:
        print("every accepted record stored exactly once; counters and rollups equal the log")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    status = rerun_without_database("bench.load", durable=True)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
