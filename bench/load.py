"""Load test: many clients ingest concurrently through gunicorn; every accepted record must be
stored exactly once, and the counters and rollups must equal the log afterwards.

    python -m bench.load [--clients 32] [--seconds 20] [--workers 4] [--batch 100]

On demand, bounded in time, loopback only. Starts its own throwaway PostgreSQL 15 (durable) unless
DATABASE_URL is set, migrates, starts gunicorn with gunicorn.conf.py, and runs `--clients` threads
that each POST batches of records with idempotency keys for `--seconds`. One batch in five is sent
twice (a client retrying after a lost answer): the retry must store nothing new. Prints throughput,
latency percentiles and statuses, then checks the database and exits 1 on any discrepancy.

The soak (issue 19): the same load for longer, with faults in the middle and the workers' memory watched.

    python -m bench.load --seconds 600 --workers 4 --replica --read-clients 2 \
        --restart-postgres-at 200 --replica-outage-at 400 --replica-outage-seconds 30 --rss-every 10

--replica clones a streaming standby of the throwaway server (tests/throwaway_pg.start_standby) and
serves with DATABASE_REPLICA_URL on it; --read-clients threads read the stats and the trend (served
by the replica) all along. --restart-postgres-at restarts the primary (pg_ctl stop -m fast, start),
--replica-outage-at stops the standby for --replica-outage-seconds. Faults need the throwaway server
(no DATABASE_URL). Clients then answer failures as a real client does: a batch without a 201 is sent
again with the same keys until it gets one. --rss-every samples each gunicorn worker's RSS (workers
are not recycled then: GUNICORN_MAX_REQUESTS=0) and fails when one grew more than 10% from its first
sample after --rss-warmup seconds to its last. Printed: records accepted, lost (accepted, not
stored: must be 0), duplicated (stored twice: must be 0), p50/p95/p99, the answers by status, the
longest time reads failed, and the RSS table.
"""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
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
    """Posts batches until `until`. With `retry_seconds`, a batch without a 201 (a 503 while the
    database restarts, a lost connection) is sent again with the same keys for up to that long."""

    def __init__(self, *, url: str, key: str, number: int, batch: int, until: float, retry_seconds: float = 0):
        super().__init__(daemon=True)
        self.url, self.key, self.number, self.batch, self.until = url, key, number, batch, until
        self.retry_seconds = retry_seconds
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.accepted: set[str] = set()
        self.stored_reported = 0
        self.retries = 0

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
        except (OSError, http.client.HTTPException):  # No answer (refused, reset) or a cut one: status 0.
            status, body = 0, {}
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
                give_up = time.monotonic() + self.retry_seconds
                while status != 201 and time.monotonic() < give_up:
                    time.sleep(0.2)
                    self.retries += 1
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


class Reader(threading.Thread):
    """Reads the stats and the daily trend (replica reads) until `until`; keeps (moment, status, latency)."""

    PATHS = ("/api/v1/ai-platforms/stats?time_range=30d", "/api/v1/ai-platforms/cost-trend-daily?days=7")

    def __init__(self, *, url: str, key: str, until: float):
        super().__init__(daemon=True)
        self.url, self.key, self.until = url, key, until
        self.answers: list[tuple[float, int, float]] = []

    def run(self) -> None:
        turn = 0
        while time.monotonic() < self.until:
            request = urllib.request.Request(  # noqa: S310 -- loopback
                self.url + self.PATHS[turn % len(self.PATHS)], headers={"Authorization": f"Api-Key {self.key}"}
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 -- loopback
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (OSError, http.client.HTTPException):
                status = 0
            self.answers.append((time.monotonic(), status, time.perf_counter() - started))
            turn += 1
            time.sleep(0.2)


def _longest_failure(answers: list[tuple[float, int, float]]) -> float:
    """Seconds from the first to the last of the longest run of consecutive non-200 reads (0 if none)."""
    longest, run_start, last_bad = 0.0, None, None
    for moment, status, _latency in sorted(answers):
        if status == 200:
            run_start = None
            continue
        run_start = moment if run_start is None else run_start
        last_bad = moment
        longest = max(longest, last_bad - run_start)
    return longest


class Faults(threading.Thread):
    """Restarts the primary and stops the standby for a while at the given moments after `started`."""

    def __init__(self, *, args, started: float, primary, standby):
        super().__init__(daemon=True)
        self.args, self.started, self.primary, self.standby = args, started, primary, standby
        self.log: list[str] = []

    def _at(self, offset: float) -> None:
        time.sleep(max(0.0, self.started + offset - time.monotonic()))

    def _note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:6.1f} s  {what}")

    def run(self) -> None:
        events = []
        if self.args.restart_postgres_at is not None:
            events.append((self.args.restart_postgres_at, self._restart_primary))
        if self.args.replica_outage_at is not None:
            events.append((self.args.replica_outage_at, self._replica_outage))
        for offset, event in sorted(events, key=lambda item: item[0]):
            self._at(offset)
            event()

    def _restart_primary(self) -> None:
        self._note("PostgreSQL primary: stop (fast)")
        self.primary.stop(mode="fast")
        self.primary.start()
        self._note("PostgreSQL primary: started again")

    def _replica_outage(self) -> None:
        self._note("replica: stop (fast)")
        self.standby.stop(mode="fast")
        time.sleep(self.args.replica_outage_seconds)
        self.standby.start()
        self._note("replica: started again")


def _gunicorn_workers() -> list[int]:
    """The pids of the workers of the gunicorn master this process started."""
    processes = _process_cpu()
    masters = [pid for pid, (parent, _cpu) in processes.items() if parent == os.getpid() and _is_gunicorn(pid)]
    return sorted(pid for pid, (parent, _cpu) in processes.items() if parent in masters)


def _is_gunicorn(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"gunicorn" in cmdline.read()
    except OSError:
        return False


def rss_kb(pid: int) -> int | None:
    """A process's resident set size in KB (Linux's /proc), None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler(threading.Thread):
    """Every `every` seconds: each gunicorn worker's RSS (KB), as (seconds since `started`, {pid: KB})."""

    def __init__(self, *, every: float, started: float, until: float):
        super().__init__(daemon=True)
        self.every, self.started, self.until = every, started, until
        self.samples: list[tuple[float, dict[int, int]]] = []

    def run(self) -> None:
        while True:
            moment = time.monotonic()
            rss = {pid: kb for pid in _gunicorn_workers() if (kb := rss_kb(pid)) is not None}
            self.samples.append((moment - self.started, rss))
            if moment >= self.until:
                return
            time.sleep(max(0.0, min(self.every, self.until - moment)))


def _rss_report(sampler: RssSampler, warmup: float) -> tuple[list[str], list[str]]:
    """The RSS table (MB per worker over time) and the workers that grew more than 10% after warm-up."""
    pids = sorted({pid for _moment, rss in sampler.samples for pid in rss})
    lines = ["RSS of each gunicorn worker (MB):", "    t (s)  " + "  ".join(f"{pid:>8}" for pid in pids)]
    for moment, rss in sampler.samples:
        cells = "  ".join(f"{rss[pid] / 1024:8.1f}" if pid in rss else f"{'-':>8}" for pid in pids)
        lines.append(f"  {moment:7.0f}  {cells}")
    problems = []
    for pid in pids:
        series = [(moment, rss[pid]) for moment, rss in sampler.samples if pid in rss]
        settled = [kb for moment, kb in series if moment >= warmup]
        if len(settled) < 2:
            lines.append(f"worker {pid}: too few samples after the {warmup:.0f} s warm-up")
            continue
        growth = settled[-1] / settled[0] - 1
        lines.append(
            f"worker {pid}: {settled[0] / 1024:.1f} MB at {warmup:.0f} s -> {settled[-1] / 1024:.1f} MB at the end "
            f"({growth:+.1%}; max {max(kb for _m, kb in series) / 1024:.1f} MB)"
        )
        if growth > 0.10:
            problems.append(f"worker {pid}'s RSS grew {growth:.1%} after the warm-up (limit 10%)")
    if not pids:
        problems.append("no gunicorn worker was sampled")
    return lines, problems


def _lost_and_duplicated(accepted: set[str]) -> tuple[int, int, int]:
    """(rows stored, accepted records not stored, records stored more than once), from the log."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT decision_id, count(*) FROM ai_model_usage_log GROUP BY decision_id")
        stored = dict(cursor.fetchall())
    return sum(stored.values()), len(accepted - stored.keys()), sum(1 for n in stored.values() if n > 1)


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.db import connections

    from tests.gunicorn_server import gunicorn_serving
    from tests.throwaway_pg import ThrowawayPostgres, remove_throwaway, start_standby
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    faults = args.restart_postgres_at is not None or args.replica_outage_at is not None
    primary = ThrowawayPostgres.from_environment()
    if (faults or args.replica) and primary is None:
        print("--replica and the faults need the throwaway server: run without DATABASE_URL", file=sys.stderr)
        return 2
    if args.replica_outage_at is not None and not args.replica:
        print("--replica-outage-at needs --replica", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    _key, raw_key = api_key_create(name="load", scope=ApiKeyScope.WRITE_USAGE)
    _key, read_key = api_key_create(name="load-read", scope=ApiKeyScope.READ)
    env = {}
    standby = None
    if args.replica:
        standby = start_standby(primary)
        parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
        env["DATABASE_REPLICA_URL"] = urllib.parse.urlunsplit(
            parts._replace(netloc=f"{parts.username}@127.0.0.1:{standby.port}")
        )
    if args.rss_every:
        env["GUNICORN_MAX_REQUESTS"] = "0"  # A recycled worker would hide a leak.
    retry_seconds = 120 if faults else 0
    server_log = open(args.server_log, "wb") if args.server_log else None  # noqa: SIM115 -- closed below
    try:
        with gunicorn_serving(
            database_url=os.environ["DATABASE_URL"], workers=args.workers, env=env, log=server_log
        ) as url:
            started_at = time.monotonic()
            until = started_at + args.seconds
            clients = [
                Client(url=url, key=raw_key, number=n, batch=args.batch, until=until, retry_seconds=retry_seconds)
                for n in range(args.clients)
            ]
            readers = [Reader(url=url, key=read_key, until=until) for _ in range(args.read_clients)]
            fault_thread = Faults(args=args, started=started_at, primary=primary, standby=standby)
            sampler = RssSampler(every=args.rss_every, started=started_at, until=until) if args.rss_every else None
            postmaster = _postmaster_pid()
            cpu_before = (_tree_cpu(os.getpid(), with_root=False), _tree_cpu(postmaster), time.process_time())
            started = time.perf_counter()
            for thread in [*clients, *readers, fault_thread, *([sampler] if sampler else [])]:
                thread.start()
            for client in clients:
                client.join(timeout=args.seconds + retry_seconds + 120)
            elapsed = time.perf_counter() - started
            for thread in [*readers, fault_thread, *([sampler] if sampler else [])]:
                thread.join(timeout=args.seconds + 120)
            connections.close_all()  # The restart broke this process's connection too.
            cpu_after = (
                _tree_cpu(os.getpid(), with_root=False),
                None if args.restart_postgres_at is not None else _tree_cpu(postmaster),
                time.process_time(),
            )
    finally:
        if standby is not None:
            remove_throwaway(standby)
        if server_log is not None:
            server_log.close()

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
    per_thousand = [
        None if after is None else 10**6 * (after - before) / records
        for before, after in zip(cpu_before, cpu_after, strict=True)
    ]
    print(  # Less sensitive to other work on the machine than records/s.
        "CPU per 1000 records: "
        + ", ".join(
            f"{name} {'n/a (restarted)' if value is None else f'{value:.0f} ms'}"
            for name, value in zip(("gunicorn", "PostgreSQL", "clients"), per_thousand, strict=True)
        )
    )
    problems = []
    if faults or args.replica or args.rss_every:
        rows, lost, duplicated = _lost_and_duplicated(accepted)
        retries = sum(client.retries for client in clients)
        print(f"records accepted {len(accepted):,}  stored {rows:,}  lost {lost}  duplicated {duplicated}")
        print(f"batches sent again after a failed attempt: {retries:,}")
        problems += [f"{lost} accepted record(s) lost"] if lost else []
        problems += [f"{duplicated} record(s) stored more than once"] if duplicated else []
        for line in fault_thread.log:
            print(f"fault at {line}")
    if readers:
        answers = [answer for reader in readers for answer in reader.answers]
        read_statuses = Counter(status for _moment, status, _latency in answers)
        read_latencies = [latency for _moment, status, latency in answers if status == 200]
        print(
            f"reads (stats, trend) {len(answers):,}  statuses {dict(read_statuses)}  "
            f"p50 {_percentile(read_latencies, 0.5):.0f} ms  p95 {_percentile(read_latencies, 0.95):.0f} ms  "
            f"longest run of failed reads {_longest_failure(answers):.1f} s"
            if read_latencies
            else f"reads {len(answers)}: none answered 200 ({dict(read_statuses)})"
        )
        if set(read_statuses) - {200, 503}:
            problems.append(f"reads answered other than 200 or 503: {dict(read_statuses)}")
    if sampler is not None:
        lines, rss_problems = _rss_report(sampler, args.rss_warmup)
        for line in lines:
            print(line)
        problems += rss_problems
    problems += _verify(accepted, stored_reported)
    allowed = {201, 503, 0} if faults else {201}  # A restart answers 503 (or drops a connection) meanwhile.
    if set(statuses) - allowed:
        problems.append(f"answers other than {sorted(allowed)}: {dict(statuses)}")
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
    soak = parser.add_argument_group("soak (issue 19)")
    soak.add_argument("--replica", action="store_true", help="serve with a streaming standby as the read replica")
    soak.add_argument("--read-clients", type=int, default=0, help="threads reading the stats and trend meanwhile")
    soak.add_argument("--restart-postgres-at", type=float, help="seconds into the run: restart the primary")
    soak.add_argument("--replica-outage-at", type=float, help="seconds into the run: stop the standby")
    soak.add_argument("--replica-outage-seconds", type=float, default=30)
    soak.add_argument("--rss-every", type=float, default=0, help="seconds between RSS samples of each worker")
    soak.add_argument("--rss-warmup", type=float, default=30, help="RSS growth is measured from this moment")
    soak.add_argument("--server-log", help="write gunicorn's output (access log, tracebacks) to this file")
    args = parser.parse_args()
    status = rerun_without_database("bench.load", durable=True)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
