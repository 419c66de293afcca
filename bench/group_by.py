"""Breakdowns by group_by (issue 17 points 1, 7) on a database bench.stats seeded: each group_by of the
stats, the trend and the export through Django's test client, next to the one raw GROUP BY the answer
reads (no HTTP), p50/p95 in ms.

    DATABASE_URL=... python -m bench.stats --rows 1000000 --iterations 5   # seeds
    DATABASE_URL=... python -m bench.group_by [--iterations 20]

By model and provider (without a user or purpose filter) the answer is the rollups' (the stats' own
read); by user, purpose and key it reads the raw log for the window (rollups with users, purposes and
keys are issue 17 point 3): those figures grow with the window's rows. Cases: every group_by over
24h, 30d and all (stats), 30 days (trend), 24h (export); then per group_by the 30-day stats in
Pacific/Chatham, and with a model filter and a purpose filter. Goal (issue 17 point 3): p95 <= 50 ms.
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _timed(function, iterations: int) -> list[float]:
    function()  # Warm-up.
    times = []
    for _ in range(iterations):
        began = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - began))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    _key, raw_key = api_key_create(name="bench-group-by", scope=ApiKeyScope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ai_model_usage_log")
        print(f"log rows: {cursor.fetchone()[0]:,}; {args.iterations} requests per case")
    columns = {
        "model": "model_name",
        "provider": "model_name",
        "user_id": "user_id",
        "purpose": "purpose",
        "api_key": "api_key_id",
    }
    stats, trend = "/api/v1/ai-platforms/stats", "/api/v1/ai-platforms/cost-trend-daily"
    print(f"{'case':<64}{'API p50 / p95':>18}{'raw GROUP BY p50':>18}  ms")
    worst = 0.0
    for group_by, column in columns.items():
        for label, url, params, days in (
            ("stats 24h", stats, {"time_range": "24h"}, 1),
            ("stats 30d", stats, {"time_range": "30d"}, 30),
            ("stats all", stats, {"time_range": "all"}, 400),
            ("trend 30 days", trend, {"days": 30}, 30),
            ("export 24h", "/api/v1/usage/export.csv", {"time_range": "24h"}, 1),
            ("stats 30d Pacific/Chatham", stats, {"time_range": "30d", "tz": "Pacific/Chatham"}, 30),
            ("stats 30d model=gpt-4o-mini", stats, {"time_range": "30d", "model": "gpt-4o-mini"}, 30),
            ("stats 30d purpose=extract", stats, {"time_range": "30d", "purpose": "extract"}, 30),
        ):
            query = {**params, "group_by": group_by}

            def api(url=url, query=query):
                response = client.get(url, query, secure=True)
                if response.status_code != 200:
                    raise SystemExit(f"{url} {query}: HTTP {response.status_code}")
                if response.streaming:
                    b"".join(response.streaming_content)

            start = timezone.now() - timedelta(days=days)

            filters = {name: params[name] for name in ("model", "purpose") if name in params}
            where = "".join(f" AND {'model_name' if name == 'model' else name} = %s" for name in filters)
            values = tuple(filters.values())

            def raw(column=column, start=start, where=where, values=values):
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT {column}, count(*), sum(reporting_cost) FROM ai_model_usage_log "
                        f"WHERE timestamp >= %s{where} GROUP BY 1",
                        [start, *values],
                    )
                    cursor.fetchall()

            api_times = _timed(api, args.iterations)
            raw_times = _timed(raw, max(3, args.iterations // 4))
            worst = max(worst, _percentile(api_times, 0.95))
            cells = f"{_percentile(api_times, 0.5):8.1f} / {_percentile(api_times, 0.95):6.1f}"
            print(f"{label + ' group_by=' + group_by:<64}{cells:>18}{statistics.median(raw_times):18.1f}", flush=True)
    print(f"worst p95 {worst:.1f} ms; goal <= 50 ms: {'met' if worst <= 50 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
