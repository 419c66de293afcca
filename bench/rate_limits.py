"""What a per-key rate limit costs under the limit (usage.throttles, README "Rate limits").

    python -m bench.rate_limits [--iterations 400] [--threads 8] [--takes 2000]

Starts its own throwaway PostgreSQL 15 (fsync off) unless DATABASE_URL is set, and migrates. Then:
1. Through Django's test client, alternately, the same request with a key without limits and a key
   whose limit is never reached (10^9 per minute): GET stats (today), POST of 1 record, POST of 100
   records. Prints p50/p95 in ms of both and the difference: the limit's cost per request.
2. The counter alone: `--takes` calls of usage.keys.api_key_rate_take from one thread (µs p50/p95),
   next to a bare SELECT 1 round trip; then `--threads` threads taking from one key's shared row at
   once, next to as many keys (one row each): takes per second, so contention on a busy key's row shows.
"""

import argparse
import math
import statistics
import sys
import threading
import time

from tests.throwaway_pg import rerun_without_database

STATS_URL, INGEST_URL = "/api/v1/ai-platforms/stats", "/api/v1/usage/"
NEVER_REACHED = 10**9


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _requests(args) -> None:
    import json

    from django.test import Client

    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    scope = ApiKeyScope.READ_WRITE
    free = Client(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(name='bench-free', scope=scope)[1]}")
    # A second key without limits: its difference to the first is the noise floor (an A/A comparison).
    other = Client(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(name='bench-free-2', scope=scope)[1]}")
    never = {"ingest_records_per_minute": NEVER_REACHED, "read_requests_per_minute": NEVER_REACHED}
    limited_key = api_key_create(name="bench-limited", scope=scope, **never)[1]
    limited = Client(HTTP_AUTHORIZATION=f"Api-Key {limited_key}")

    def batch(size: int) -> str:
        return json.dumps(
            [{"model_name": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 20} for _ in range(size)]
        )

    cases = [
        ("GET stats today", lambda c: c.get(STATS_URL, {"time_range": "today"}, secure=True), 200),
        (
            "POST 1 record",
            lambda c: c.post(INGEST_URL, batch(1), content_type="application/json", secure=True),
            201,
        ),
        (
            "POST 100 records",
            lambda c: c.post(INGEST_URL, batch(100), content_type="application/json", secure=True),
            201,
        ),
    ]
    print(f"{args.iterations} requests per case and key, in turn, through the test client, ms (p50 / p95)")
    print(
        f"{'case':<18} {'no limit':>15} {'under a limit':>15} {'difference':>15} "
        f"{'paired: mean ± s.e., median':>30} {'no limit vs no limit (noise)':>30}"
    )
    for label, send, expected in cases:
        timings: dict[str, list[float]] = {"free": [], "other": [], "limited": []}
        keys = [("free", free), ("other", other), ("limited", limited)]
        for n in range(args.iterations + args.warmup):
            for name, client in keys[n % 3 :] + keys[: n % 3]:  # Each key first in turn.
                began = time.perf_counter()
                response = send(client)
                elapsed = 1000 * (time.perf_counter() - began)
                if response.status_code != expected:
                    raise SystemExit(f"{label}: HTTP {response.status_code} {response.content[:300]!r}")
                if n >= args.warmup:
                    timings[name].append(elapsed)
        f50, f95 = _percentile(timings["free"], 0.5), _percentile(timings["free"], 0.95)
        l50, l95 = _percentile(timings["limited"], 0.5), _percentile(timings["limited"], 0.95)
        print(
            f"{label:<18} {f50:6.2f} / {f95:6.2f} {l50:6.2f} / {l95:6.2f} {l50 - f50:+6.2f} / {l95 - f95:+6.2f} "
            f"{_paired(timings['free'], timings['limited']):>30} {_paired(timings['free'], timings['other']):>30}"
        )


def _paired(base: list[float], other: list[float]) -> str:
    """Request n of both keys ran back to back, so the machine's drift cancels out of their difference."""
    pairs = [after - before for before, after in zip(base, other, strict=True)]
    error = statistics.stdev(pairs) / math.sqrt(len(pairs))
    return f"{statistics.fmean(pairs):+.3f} ± {error:.3f}, {statistics.median(pairs):+.3f}"


def _takes(args) -> None:
    from django.db import connections
    from django.utils import timezone

    from usage.keys import api_key_create, api_key_rate_admit, api_key_rate_take
    from usage.models import ApiKeyRateKind

    key = api_key_create(name="bench-take")[0]

    def microseconds_each(take) -> list[float]:
        timings = []
        for _ in range(args.takes):
            began = time.perf_counter()
            take(api_key_id=key.pk, kind=ApiKeyRateKind.READ, amount=1, limit=NEVER_REACHED, now=timezone.now())
            timings.append(1e6 * (time.perf_counter() - began))
        return timings

    admitted = microseconds_each(api_key_rate_admit)
    admit = f"p50 {_percentile(admitted, 0.5):.1f} µs, p95 {_percentile(admitted, 0.95):.1f} µs"
    print(f"\napi_key_rate_admit (from the lease), one thread, {args.takes} calls: {admit}")
    timings = microseconds_each(api_key_rate_take)
    round_trips = []
    with connections["default"].cursor() as cursor:
        for _ in range(args.takes):
            began = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            round_trips.append(1e6 * (time.perf_counter() - began))
    take = f"p50 {_percentile(timings, 0.5):.0f} µs, p95 {_percentile(timings, 0.95):.0f} µs"
    trip = f"p50 {_percentile(round_trips, 0.5):.0f} µs, p95 {_percentile(round_trips, 0.95):.0f} µs"
    print(f"\napi_key_rate_take alone, one thread, {args.takes} calls: {take} (a SELECT 1 round trip: {trip})")

    def run(key_ids: list[int], take=api_key_rate_take) -> float:
        per_thread = args.takes // args.threads
        start = threading.Barrier(len(key_ids) + 1)

        def worker(key_id: int) -> None:
            start.wait()
            try:
                for _ in range(per_thread):
                    take(
                        api_key_id=key_id, kind=ApiKeyRateKind.INGEST, amount=1, limit=NEVER_REACHED, now=timezone.now()
                    )
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker, args=(key_id,)) for key_id in key_ids]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        return per_thread * len(key_ids) / (time.perf_counter() - began)

    shared = run([key.pk] * args.threads)
    separate = run([api_key_create(name=f"bench-take-{n}")[0].pk for n in range(args.threads)])
    leased = run([key.pk] * args.threads, take=api_key_rate_admit)
    print(
        f"{args.threads} threads at once (own connections): one key's row {shared:,.0f} takes/s, "
        f"{args.threads} keys' rows {separate:,.0f} takes/s; admitted from one key's lease {leased:,.0f}/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--takes", type=int, default=2000)
    args = parser.parse_args()
    status = rerun_without_database("bench.rate_limits", durable=False)
    if status is not None:
        return status
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _requests(args)
    _takes(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
