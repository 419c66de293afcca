"""CSV export throughput and memory on PostgreSQL: memory must stay flat as the row count grows.

    .venv/bin/python -m bench.export [--rows 1000000]

Starts its own throwaway PostgreSQL 15 unless DATABASE_URL is set, migrates, seeds --rows usage
rows server-side (generate_series, spread evenly over the last 100 days, so the time ranges 24h,
7d, 30d, 90d and all select about 1%, 7%, 30%, 90% and 100% of them), then streams
GET /api/v1/usage/export.csv?time_range=... through Django's WSGI handler in-process (test client,
read API key) and prints, per range:
  - rows, seconds, rows/s, MB/s and the time to the first chunk;
  - peak RSS growth over the process's RSS before the request (sampled while streaming);
  - peak Python allocations during the request (tracemalloc, a second pass; slower).
Last, for contrast, the RSS growth of loading the same rows into a list (what not streaming costs).
"""

import argparse
import gc
import os
import resource
import sys
import time
import tracemalloc
from datetime import timedelta

from bench.load import rss_kb
from tests.throwaway_pg import rerun_without_database

RANGES = ["24h", "7d", "30d", "90d", "all"]
SEED_SQL = """
INSERT INTO ai_model_usage_log (
    model_name, decision_id, user_id, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
    cost, reporting_cost, cost_source, price_version_id, response_time, success, error_message, purpose, timestamp
)
SELECT
    (ARRAY['gpt-4o', 'gpt-4o-mini', 'deepseek-chat', 'claude-haiku-4-5', 'qwen-plus'])[1 + mod(g, 5)],
    'decision-' || g,
    1 + mod(g, 50),
    100 + mod(g, 8000),
    10 + mod(g, 2000),
    mod(g, 100),
    0,
    ((mod(g, 1000000)) / 100000000.0)::numeric(20, 8),
    ((mod(g, 1000000)) / 100000000.0)::numeric(20, 8),  -- converted: USD prices, USD reporting currency
    'computed',
    NULL,
    (mod(g, 9000)) / 1000.0,
    mod(g, 50) <> 0,
    CASE WHEN mod(g, 50) = 0 THEN 'upstream timeout, "retry"' ELSE '' END,
    (ARRAY['chat', 'summarise', '=classify'])[1 + mod(g, 3)],
    now() - interval '100 days' * ((g - 0.5) / %(rows)s)::float8
FROM generate_series(1, %(rows)s) AS g
"""


def _rss_mb() -> float:
    kb = rss_kb(os.getpid())
    if kb is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return kb / 1024


def _stream(client, time_range: str, *, sample_rss: bool) -> dict:
    gc.collect()
    rss_before = _rss_mb()
    peak_rss = rss_before
    began = time.perf_counter()
    response = client.get("/api/v1/usage/export.csv", {"time_range": time_range}, secure=True)
    if response.status_code != 200:
        raise SystemExit(f"export failed: {response.status_code} {response.content[:300]!r}")
    first_chunk = None
    size = lines = 0
    for number, chunk in enumerate(response.streaming_content):
        if first_chunk is None:
            first_chunk = time.perf_counter() - began
        size += len(chunk)
        lines += chunk.count(b"\r\n")
        if sample_rss and number % 50 == 0:
            peak_rss = max(peak_rss, _rss_mb())
    seconds = time.perf_counter() - began
    response.close()
    return {
        "rows": lines - 1,  # The header; the seeded free text holds no line breaks.
        "seconds": seconds,
        "first_chunk": first_chunk,
        "megabytes": size / 1e6,
        "rss_growth": max(peak_rss, _rss_mb()) - rss_before,
    }


def _traced_peak(client, time_range: str) -> float:
    tracemalloc.start()
    try:
        _stream(client, time_range, sample_rss=False)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _bench(rows: int) -> None:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from usage.keys import api_key_create
    from usage.models import ApiKeyScope, UsageLog
    from usage.partitions import month_of
    from usage.selectors import usage_log_rows
    from usage.services import usage_partitions_ensure

    call_command("migrate", verbosity=0)
    now = timezone.now()
    usage_partitions_ensure(months={month_of(now - timedelta(days=day)) for day in range(101)})
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ai_model_usage_log")
        cursor.execute(SEED_SQL, {"rows": rows})
        cursor.execute("ANALYZE ai_model_usage_log")
    print(f"seeded {rows:,} rows in {time.perf_counter() - began:.1f} s")
    _key, raw_key = api_key_create(name="bench-export", scope=ApiKeyScope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    _stream(client, "24h", sample_rss=False)  # Warm-up: imports, connection, first-request caches.

    print(f"\nGET /api/v1/usage/export.csv, PostgreSQL, {os.cpu_count()} cores shared with the server")
    print(
        f"{'range':>6} {'rows':>10} {'s':>7} {'rows/s':>9} {'MB/s':>6} {'1st chunk':>9} {'RSS +MB':>8} {'traced MB':>9}"
    )
    for time_range in RANGES:
        run = _stream(client, time_range, sample_rss=True)
        traced = _traced_peak(client, time_range)
        print(
            f"{time_range:>6} {run['rows']:>10,} {run['seconds']:>7.2f} {run['rows'] / run['seconds']:>9,.0f} "
            f"{run['megabytes'] / run['seconds']:>6.1f} {run['first_chunk'] * 1000:>7.0f}ms "
            f"{run['rss_growth']:>8.1f} {traced:>9.2f}"
        )

    gc.collect()
    before = _rss_mb()
    loaded = list(usage_log_rows(UsageLog.objects.all()))
    print(f"\ncontrast: the same {len(loaded):,} rows loaded into a list: RSS +{_rss_mb() - before:.0f} MB")
    del loaded
    print(f"process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    status = rerun_without_database("bench.export", durable=True)
    if status is not None:
        return status
    _bench(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
