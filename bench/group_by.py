"""Breakdowns by group_by (issue 17 points 1, 7) on a database bench.stats seeded: each group_by of the
stats, the trend and the export through Django's test client, next to the one raw GROUP BY the answer
reads (no HTTP), p50/p95 in ms.

    DATABASE_URL=... python -m bench.stats --rows 1000000 --iterations 5   # seeds
    DATABASE_URL=... python -m bench.group_by [--iterations 20]

Breakdowns read the raw log for the window by design (rollups with users, purposes and keys are
issue 17 point 3): these figures grow with the window's rows.
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
    }
    print(f"{'case':<44}{'API p50 / p95':>18}{'raw GROUP BY p50':>18}  ms")
    for group_by, column in columns.items():
        for label, url, params, days in (
            ("stats 24h", "/api/v1/ai-platforms/stats", {"time_range": "24h"}, 1),
            ("stats 30d", "/api/v1/ai-platforms/stats", {"time_range": "30d"}, 30),
            ("trend 30 days", "/api/v1/ai-platforms/cost-trend-daily", {"days": 30}, 30),
            ("export 24h", "/api/v1/usage/export.csv", {"time_range": "24h"}, 1),
        ):
            query = {**params, "group_by": group_by}

            def api(url=url, query=query):
                response = client.get(url, query, secure=True)
                if response.status_code != 200:
                    raise SystemExit(f"{url} {query}: HTTP {response.status_code}")
                if response.streaming:
                    b"".join(response.streaming_content)

            start = timezone.now() - timedelta(days=days)

            def raw(column=column, start=start):
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT {column}, count(*), sum(reporting_cost) FROM ai_model_usage_log "
                        "WHERE timestamp >= %s GROUP BY 1",
                        [start],
                    )
                    cursor.fetchall()

            api_times = _timed(api, args.iterations)
            raw_times = _timed(raw, max(3, args.iterations // 4))
            cells = f"{_percentile(api_times, 0.5):8.1f} / {_percentile(api_times, 0.95):6.1f}"
            print(f"{label + ' group_by=' + group_by:<44}{cells:>18}{statistics.median(raw_times):18.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
