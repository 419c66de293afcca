"""The stats and daily-trend APIs of two checkouts, request by request, alternating: a before/after
that the machine's drift cannot bias (its speed varies 1.4-2x between hours here).

    python -m bench.stats --rows 1000000                     # in each checkout, on its own database
    python -m bench.stats_paired --before /tmp/old=postgres://.../old --after .=postgres://.../new [--requests 60]

Each side is a checkout and a database that bench.stats seeded (its migrations, the same seed). One
process per side (this file, run with the side's checkout on its path) serves requests through
Django's test client with a read API key (as bench.stats times them); for each case both sides get a
warm-up, then the same request in turn (the order flipped every round). Prints p50/p95 per side and
the median of the paired differences (after minus before).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STATS_URL = "/api/v1/ai-platforms/stats"
TREND_URL = "/api/v1/ai-platforms/cost-trend-daily"
CASES = {
    "trend 366 days UTC": (TREND_URL, {"days": 366, "tz": "UTC"}),
    "trend 366 days Asia/Shanghai": (TREND_URL, {"days": 366, "tz": "Asia/Shanghai"}),
    "trend 366 days Pacific/Chatham": (TREND_URL, {"days": 366, "tz": "Pacific/Chatham"}),
    "trend 366 days model=gpt-4o-mini": (TREND_URL, {"days": 366, "model": "gpt-4o-mini"}),
    "trend 30 days Asia/Shanghai": (TREND_URL, {"days": 30, "tz": "Asia/Shanghai"}),
    "stats today": (STATS_URL, {"time_range": "today"}),
    "stats 24h": (STATS_URL, {"time_range": "24h"}),
    "stats 30d": (STATS_URL, {"time_range": "30d"}),
    "stats all": (STATS_URL, {"time_range": "all"}),
    "stats 24h model=gpt-4o-mini": (STATS_URL, {"time_range": "24h", "model": "gpt-4o-mini"}),
    "stats 24h tz=Asia/Shanghai": (STATS_URL, {"time_range": "24h", "tz": "Asia/Shanghai"}),
}


def _serve() -> int:
    """One side: read (url, params) lines, answer each with the request's milliseconds."""
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.test import Client

    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    _key, raw_key = api_key_create(name="bench-stats-paired", scope=ApiKeyScope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    print("ready", flush=True)
    for line in sys.stdin:
        url, params = json.loads(line)
        began = time.perf_counter()
        response = client.get(url, params, secure=True)
        elapsed = 1000 * (time.perf_counter() - began)
        if response.status_code != 200:
            raise SystemExit(f"{url} {params}: HTTP {response.status_code} {response.content[:300]!r}")
        print(elapsed, flush=True)
    return 0


class _Side:
    def __init__(self, label: str, spec: str):
        checkout, _, database_url = spec.partition("=")
        if not database_url:
            raise SystemExit(f"--{label} wants CHECKOUT=DATABASE_URL, not {spec!r}")
        self.label, self.checkout = label, str(Path(checkout).resolve())
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": self.checkout}
        env.setdefault("SECRET_KEY", "bench-stats-paired")
        env.setdefault("AICOST_ENV_FILE", "/dev/null")
        env.setdefault("DEBUG", "false")
        self.process = subprocess.Popen(  # This file run in the side's checkout (an older one may not have it).
            [sys.executable, "-P", __file__, "--serve"],  # -P: not bench/ first on the path (its ingest.py)
            cwd=self.checkout,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"{label}: the serving process did not start")

    def ask(self, case: tuple) -> float:
        self.process.stdin.write(json.dumps(case) + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _compare(before: _Side, after: _Side, requests: int, warmup: int) -> None:
    print(f"{'case':<36}{'before p50 / p95':>20}{'after p50 / p95':>20}{'paired after-before p50':>26}  ms")
    for label, case in CASES.items():
        for side in (before, after):
            for _ in range(warmup):
                side.ask(case)
        times: dict[str, list[float]] = {"before": [], "after": []}
        for round_number in range(requests):
            for side in (before, after) if round_number % 2 == 0 else (after, before):
                times[side.label].append(side.ask(case))
        difference = statistics.median(a - b for a, b in zip(times["after"], times["before"], strict=True))
        cells = [f"{_percentile(times[s], 0.5):9.1f} / {_percentile(times[s], 0.95):6.1f}" for s in ("before", "after")]
        print(f"{label:<36}{cells[0]:>20}{cells[1]:>20}{difference:+26.1f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="CHECKOUT=DATABASE_URL")
    parser.add_argument("--after", help="CHECKOUT=DATABASE_URL")
    parser.add_argument("--requests", type=int, default=60, help="requests per case and side")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve()
    if not (args.before and args.after):
        parser.error("--before and --after are both needed")
    before, after = _Side("before", args.before), _Side("after", args.after)
    try:
        print(f"before: {before.checkout}; after: {after.checkout}; {args.requests} requests per case and side")
        _compare(before, after, args.requests, args.warmup)
    finally:
        before.close()
        after.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
