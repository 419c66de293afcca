"""Slow clients against a live gunicorn: does bench.load keep its throughput and latency?

    python -m bench.slow_clients [--slow 200] [--seconds 15] [--workers 4] [--threads N] [--clients 32]

On demand, bounded in time, loopback only. Starts its own throwaway PostgreSQL 15 (durable) unless
DATABASE_URL is set, migrates, starts gunicorn with gunicorn.conf.py (gthread workers; its defaults,
GUNICORN_THREADS and the workers' connection pool, unless --threads is given) and runs
bench.load's workload (`--clients` threads posting batches of 100 keyed records, one in five sent
twice) for `--seconds` twice: alone, then while `--slow` slow connections are held open, half of them
trickling their headers (one header line every 2 s, a new connection when the server closes one) and
half sending a usage batch's body at 1 KB/s. Prints throughput and latency of both runs and their
ratio (goal: >= 80% of the throughput, p95 under 2x), the most PostgreSQL connections the server held
at once during each run (pg_stat_activity, sampled every 0.2 s), then checks that every accepted record
of both runs is stored exactly once (bench.load's check) and exits 1 on a discrepancy.
"""

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.load import Client, _percentile, _verify
from tests.throwaway_pg import rerun_without_database

DEFAULT_THREADS, DEFAULT_POOL = 100, "8"  # gunicorn.conf.py's defaults, for the printout.
BODY_BYTES = 300_000  # A 1000-record batch is ~300 KB of JSON: at 1 KB/s it never finishes here.


class SlowConnections(threading.Thread):
    """`count` slow connections, kept open (reopened when the server closes one) until stopped."""

    def __init__(self, *, host: str, port: int, key: str, count: int):
        super().__init__(daemon=True)
        self.host, self.port, self.key, self.count = host, port, key, count
        self.stop = threading.Event()
        self.sockets: list[socket.socket | None] = [None] * count
        self.opened = 0
        self.closed_by_server = 0
        self.answers: Counter = Counter()

    def _open(self, index: int) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        if index % 2 == 0:
            sock.sendall(b"GET /api/v1/ai-platforms/stats?time_range=all HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        else:
            head = (
                "POST /api/v1/usage/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Api-Key {self.key}\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"records": [')
        sock.setblocking(False)
        self.opened += 1
        return sock

    def _answered(self, sock: socket.socket) -> bool:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if data[:9].startswith(b"HTTP/1."):
            self.answers[data[9:12].decode()] += 1
        return True

    def open_all(self) -> None:
        for index in range(self.count):
            self.sockets[index] = self._open(index)

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(1.0):
            tick += 1
            for index, sock in enumerate(self.sockets):
                if sock is None or self._answered(sock):
                    if sock is not None:
                        self.closed_by_server += 1
                        sock.close()
                    self.sockets[index] = self._open(index)
                    continue
                chunk = (b"X-Slow: 1\r\n" if tick % 2 == 0 else b"") if index % 2 == 0 else b" " * 1024
                with contextlib.suppress(BlockingIOError, OSError):
                    if chunk:
                        sock.send(chunk)

    def close(self) -> None:
        self.stop.set()
        self.join(10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


class ConnectionCount(threading.Thread):
    """The most connections to this database at once (other than this sampler's own), every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.most = 0

    def run(self) -> None:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                while not self.stop.wait(0.2):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()"
                    )
                    self.most = max(self.most, cursor.fetchone()[0])
        finally:
            connection.close()


def _load(url: str, key: str, args, offset: int) -> tuple[list[Client], float, int]:
    until = time.monotonic() + args.seconds
    clients = [Client(url=url, key=key, number=offset + n, batch=100, until=until) for n in range(args.clients)]
    counting = ConnectionCount()
    counting.start()
    started = time.perf_counter()
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=args.seconds + 120)
    elapsed = time.perf_counter() - started
    counting.stop.set()
    counting.join(5)
    return clients, elapsed, counting.most


def _figures(clients: list[Client], elapsed: float, connections: int) -> dict:
    latencies = [latency for client in clients for latency in client.latencies]
    accepted = set().union(*(client.accepted for client in clients))
    never = float("inf")  # No request finished: the service was starved.
    return {
        "records_s": len(accepted) / elapsed,
        "p50": _percentile(latencies, 0.5) if latencies else never,
        "p95": _percentile(latencies, 0.95) if latencies else never,
        "p99": _percentile(latencies, 0.99) if latencies else never,
        "statuses": dict(sum((client.statuses for client in clients), Counter())),
        "accepted": accepted,
        "stored_reported": sum(client.stored_reported for client in clients),
        "connections": connections,
    }


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    from tests.gunicorn_server import gunicorn_serving
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    call_command("migrate", verbosity=0)
    _key, raw_key = api_key_create(name="slow-clients", scope=ApiKeyScope.READ_WRITE)
    env = {} if args.threads is None else {"GUNICORN_THREADS": str(args.threads)}
    threads = args.threads or int(os.environ.get("GUNICORN_THREADS", DEFAULT_THREADS))
    pool = os.environ.get("AICOST_DB_POOL_MAX_SIZE", DEFAULT_POOL)
    with gunicorn_serving(database_url=os.environ["DATABASE_URL"], workers=args.workers, env=env) as url:
        alone = _figures(*_load(url, raw_key, args, offset=0))
        parts = urlsplit(url)
        slow = SlowConnections(host=parts.hostname, port=parts.port, key=raw_key, count=args.slow)
        slow.open_all()
        slow.start()
        time.sleep(3)  # Every slow connection has sent its first bytes: each holds a thread.
        try:
            crowded = _figures(*_load(url, raw_key, args, offset=10_000))
        finally:
            slow.close()
    print(
        f"{args.workers} gthread workers x {threads} threads{'' if args.threads else ' (the default)'}, "
        f"a pool of {pool} database connections per worker, {args.clients} clients (batches of 100), "
        f"{args.seconds:.0f} s per run"
    )
    for name, figures in (("alone", alone), (f"with {args.slow} slow", crowded)):
        print(
            f"{name:>14}: {figures['records_s']:,.0f} records/s  p50 {figures['p50']:.0f} ms  "
            f"p95 {figures['p95']:.0f} ms  p99 {figures['p99']:.0f} ms  statuses {figures['statuses']}  "
            f"database connections at most {figures['connections']}"
        )
    print(
        f"slow connections: {slow.opened} opened, {slow.closed_by_server} closed by the server "
        f"(answers {dict(slow.answers)})"
    )
    throughput = crowded["records_s"] / max(alone["records_s"], 1e-9)
    latency = crowded["p95"] / max(alone["p95"], 1e-9)
    met = throughput >= 0.8 and latency < 2
    print(
        f"throughput {throughput:.0%} of alone (goal >= 80%), p95 {latency:.2f}x (goal < 2x): "
        f"{'met' if met else 'MISSED'}"
    )
    accepted = alone["accepted"] | crowded["accepted"]
    problems = _verify(accepted, alone["stored_reported"] + crowded["stored_reported"])
    for figures in (alone, crowded):
        if set(figures["statuses"]) - {201}:
            problems.append(f"non-201 answers: {figures['statuses']}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if not problems:
        print("every accepted record stored exactly once; counters and rollups equal the log")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    status = rerun_without_database("bench.slow_clients", durable=True)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
