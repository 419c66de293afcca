"""The stats and trend APIs' fixed cost: a request through Django next to its selector alone.

    python -m bench.api_overhead [--rows 200000] [--iterations 200] [--profile]

Starts its own throwaway PostgreSQL 15 (fsync off) unless DATABASE_URL is set, migrates, seeds
`--rows` usage rows and a few uncompacted batches (delta rows) as bench.stats does (the fixed cost
does not grow with rows), then for each case times, alternately, `--iterations` GET requests through Django's test
client with a read API key (URL routing, middleware, authentication, DRF, the view's serializers,
JSON) and the selector the view calls, with the same arguments (usage_stats or usage_daily_trend
with usage_filters_resolve, as usage.apis calls them). Prints p50/p95 of both in ms and their
difference: the fixed cost of the API. `--profile` prints cProfile's top functions over the API's
requests of each case, the selector's own functions included (compare with the cases' selector time).
"""

import argparse
import cProfile
import io
import math
import pstats
import sys
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tests.throwaway_pg import rerun_without_database

STATS_URL = "/api/v1/ai-platforms/stats"
TREND_URL = "/api/v1/ai-platforms/cost-trend-daily"


@dataclass
class Case:
    label: str
    url: str
    params: dict
    api_ms: list[float] = field(default_factory=list)
    selector_ms: list[float] = field(default_factory=list)


def _cases() -> list[Case]:
    return [
        Case("stats today", STATS_URL, {"time_range": "today"}),
        Case("stats 24h", STATS_URL, {"time_range": "24h"}),
        Case("stats 7d", STATS_URL, {"time_range": "7d"}),
        Case("stats all", STATS_URL, {"time_range": "all"}),
        Case("stats today model=gpt-4o-mini", STATS_URL, {"time_range": "today", "model": "gpt-4o-mini"}),
        Case("trend days=7", TREND_URL, {"days": 7}),
        Case("trend days=30 tz=Asia/Shanghai", TREND_URL, {"days": 30, "tz": "Asia/Shanghai"}),
    ]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _selector_with_filters(case: Case):
    """The selector as the view runs it: filters resolved per request (a query with a provider)."""
    from django.utils import timezone

    from usage import apis

    params = case.params

    def call():
        filters = apis.usage_filters_resolve(
            model=params.get("model"), provider=params.get("provider"), user_id=None, purpose=None
        )
        zone = ZoneInfo(params["tz"]) if "tz" in params else timezone.get_current_timezone()
        if case.url == STATS_URL:
            return apis.usage_stats(time_range=params["time_range"], now=timezone.now(), zone=zone, filters=filters)
        return apis.usage_daily_trend(days=params["days"], now=timezone.now(), zone=zone, filters=filters)

    return call


def _get(client, case: Case) -> None:
    response = client.get(case.url, case.params, secure=True)
    if response.status_code != 200:
        raise SystemExit(f"{case.label}: HTTP {response.status_code} {response.content[:300]!r}")


def _measure(case: Case, client, iterations: int, warmup: int) -> None:
    select = _selector_with_filters(case)
    for _ in range(warmup):
        _get(client, case)
        select()
    for _ in range(iterations):
        began = time.perf_counter()
        _get(client, case)
        case.api_ms.append(1000 * (time.perf_counter() - began))
        began = time.perf_counter()
        select()
        case.selector_ms.append(1000 * (time.perf_counter() - began))


def _profile(case: Case, client, iterations: int, top: int) -> None:
    for _ in range(5):
        _get(client, case)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        _get(client, case)
    profiler.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        print(f"--- {case.label}: cProfile over {iterations} requests, by {order}")
        print(out.getvalue())


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.test import Client

    from bench.stats import _delta_seed, _seed_all
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope, UsageLog

    call_command("migrate", verbosity=0)
    if not UsageLog.objects.exists():
        _seed_all(args.rows)
        _delta_seed(args.delta_batches)
    _key, raw_key = api_key_create(name="bench-api-overhead", scope=ApiKeyScope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    cases = _cases()
    if args.profile:
        for case in cases[:: max(1, len(cases) - 1)] if not args.all else cases:
            _profile(case, client, args.iterations, args.top)
        return 0
    for case in cases:
        _measure(case, client, args.iterations, args.warmup)
    print(f"{args.iterations} requests per case through the test client with a read API key, ms (p50 / p95)")
    print(f"{'case':<34} {'API':>15} {'selector':>15} {'fixed cost':>15}")
    for case in cases:
        api = (_percentile(case.api_ms, 0.5), _percentile(case.api_ms, 0.95))
        selector = (_percentile(case.selector_ms, 0.5), _percentile(case.selector_ms, 0.95))
        fixed = (api[0] - selector[0], api[1] - selector[1])
        print(
            f"{case.label:<34} {api[0]:6.2f} / {api[1]:6.2f} {selector[0]:6.2f} / {selector[1]:6.2f} "
            f"{fixed[0]:6.2f} / {fixed[1]:6.2f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--delta-batches", type=int, default=5, help="batches left uncompacted (delta rows)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions instead of timings")
    parser.add_argument("--all", action="store_true", help="with --profile: every case, not the first and last")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    status = rerun_without_database("bench.api_overhead", durable=False)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
