"""Storage per usage row and the time to drop a month, on PostgreSQL.

    python -m bench.storage [--rows 1000000]

Starts its own throwaway PostgreSQL 15 unless DATABASE_URL is set, migrates, seeds `--rows` calls
into one month of the partitioned usage log server-side (INSERT ... SELECT from generate_series,
shaped like real traffic: decision ids, mostly empty error messages, short purposes, 2% unpriced
and 2% failed calls) with their
rollups, VACUUM ANALYZEs, and prints:
  - bytes per row: heap + TOAST + all indexes, and the same without the free-text columns
    (decision_id, error_message, purpose: their data and the decision_id index);
  - the time `usage_retention` takes to retire that month: the check against the rollups and the
    per-model totals it records, then the DETACH + DROP itself.

    python -m bench.storage --idempotency-month [--keys-per-day 100000] [--days 31]

simulates a month of keyed traffic instead: each day's idempotency keys, then the daily removal of
the keys past AICOST_IDEMPOTENCY_RETENTION_DAYS (usage_partitions: batches, then VACUUM), printing the
table's rows and size per day (flat after the window), the removal's time and its longest batch.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime

from tests.throwaway_pg import rerun_without_database

FREE_TEXT = ("decision_id", "error_message", "purpose")
MODELS = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-haiku-4-5", "qwen-plus", "gemini-2.5-flash"]


def _seed_sql(table: str) -> str:
    models = ", ".join(f"'{name}'" for name in MODELS)
    return f"""
        INSERT INTO {table} ("timestamp", model_name, decision_id, user_id, prompt_tokens, completion_tokens,
            cached_tokens, reasoning_tokens, cost, cost_source, response_time, success, error_message, purpose,
            price_version_id, reporting_cost, unconverted)
        SELECT %(start)s::timestamptz + (i * %(step)s) * interval '1 second',
            (ARRAY[{models}])[1 + i %% {len(MODELS)}],
            'd-' || lpad(to_hex(i * 7919), 10, '0'),
            1 + i %% 50,
            100 + (i * 37) %% 8000, 10 + (i * 13) %% 2000, 0, 0,
            CASE WHEN i %% 50 = 1 THEN NULL
                ELSE round(((100 + (i * 37) %% 8000) * 2.5 + (10 + (i * 13) %% 2000) * 10) / 1000000.0, 8) END,
            CASE WHEN i %% 50 = 1 THEN 'unpriced' ELSE 'computed' END,
            0.2 + (i %% 900) / 100.0,
            i %% 50 <> 0,
            CASE WHEN i %% 50 = 0 THEN 'upstream timeout' ELSE '' END,
            (ARRAY['chat', 'summarise', 'classify'])[1 + i %% 3],
            CASE WHEN i %% 50 = 1 THEN NULL ELSE %(price_version)s END,
            -- In the reporting currency (the seeded prices' USD): the reporting cost is the cost.
            CASE WHEN i %% 50 = 1 THEN NULL
                ELSE round(((100 + (i * 37) %% 8000) * 2.5 + (10 + (i * 13) %% 2000) * 10) / 1000000.0, 8) END,
            false
        FROM generate_series(1::bigint, %(rows)s::bigint) AS i
    """


def _size(cursor, sql: str, params=None) -> int:
    cursor.execute(sql, params)
    return int(cursor.fetchone()[0] or 0)


def _bench(rows: int) -> None:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from usage.partitions import LOG_TABLE, partition_name
    from usage.rollups import rollups_rebuild
    from usage.selectors import partition_model_sums, rollup_month_calls
    from usage.services import usage_partition_retire, usage_partitions_ensure

    call_command("migrate", verbosity=0)
    month = datetime(2025, 1, 1, tzinfo=UTC).date()
    usage_partitions_ensure(months={month})
    partition = partition_name(month)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        step = 31 * 86_400 / (rows + 1)
        cursor.execute("SELECT min(id) FROM ai_model_price_version")
        price_version = cursor.fetchone()[0]
        seed = {"start": "2025-01-01T00:00:00Z", "step": step, "rows": rows, "price_version": price_version}
        cursor.execute(_seed_sql(LOG_TABLE), seed)
    seeded = time.perf_counter() - started
    rollups_rebuild()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {partition}")
        total = _size(cursor, "SELECT pg_total_relation_size(%s)", [partition])
        heap = _size(cursor, "SELECT pg_relation_size(%s)", [partition])
        indexes = _size(cursor, "SELECT pg_indexes_size(%s)", [partition])
        text_bytes = _size(
            cursor,
            f"SELECT sum({' + '.join(f'pg_column_size({c})' for c in FREE_TEXT)}) FROM {partition}",
        )
        decision_index = _size(
            cursor,
            "SELECT sum(pg_relation_size(indexrelid)) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = %s::regclass AND a.attname = 'decision_id'",
            [partition],
        )
        cursor.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass ORDER BY 2 DESC",
            [partition],
        )
        index_sizes = cursor.fetchall()
        cursor.execute("SELECT version(), current_setting('shared_buffers')")
        version, shared_buffers = cursor.fetchone()

    print(f"{version.split(',')[0]}, shared_buffers {shared_buffers}, {os.cpu_count()} cores")
    print(f"seeded {rows:,} rows into {partition} in {seeded:.1f} s")
    print(f"heap {heap / rows:.1f} B/row, indexes {indexes / rows:.1f} B/row, total {total / rows:.1f} B/row")
    for name, size in index_sizes:
        print(f"  index {name}: {size / rows:.1f} B/row")
    without_text = (total - text_bytes - decision_index) / rows
    print(
        f"free text (decision_id, error_message, purpose) {text_bytes / rows:.1f} B/row "
        f"+ decision_id index {decision_index / rows:.1f} B/row"
    )
    print(f"per row excluding free text: {without_text:.1f} B   (goal <= 150)")

    started = time.perf_counter()
    sums = partition_model_sums(month=month)
    if rollup_month_calls(month=month) != sum(calls for calls, _ in sums.values()):
        raise SystemExit("the rollups do not hold the seeded month")
    checked = time.perf_counter() - started
    started = time.perf_counter()
    outcome = usage_partition_retire(month=month, now=timezone.now())
    retired = time.perf_counter() - started
    if not outcome.dropped:
        raise SystemExit(outcome.reason)
    print(f"retire a month of {rows:,} rows: {retired * 1000:.0f} ms in all, of which the check against the rollups")
    print(f"  took {checked * 1000:.0f} ms and DETACH + DROP about {(retired - checked) * 1000:.0f} ms   (goal < 1 s)")


IDEMPOTENCY_SEED = """
    INSERT INTO ai_usage_idempotency (decision_id, idempotency_key, created_at)
    SELECT 'd-' || %(day)s || '-' || i, 'k-' || (i %% 7), %(start)s::timestamptz + (i * %(step)s) * interval '1 second'
    FROM generate_series(1::bigint, %(keys)s::bigint) AS i
"""


def _idempotency_month(*, keys_per_day: int, days: int) -> None:
    """A simulated month of keyed traffic: each day's keys inserted (one statement), then the daily
    `usage_partitions` run (removal in batches + VACUUM), with the table's size and the removal's time."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection

    from usage.services import usage_idempotency_keys_expire, usage_idempotency_keys_vacuum

    window = settings.AICOST_IDEMPOTENCY_RETENTION_DAYS
    print(f"idempotency keys: {keys_per_day:,} a day for {days} days, retention {window} days, removal daily")
    print("  day      rows   table+indexes   removed   batches   removal ms (longest batch ms)")
    first_day = datetime(2025, 3, 1, tzinfo=UTC)
    sizes = []
    for day in range(days):
        start = first_day + timedelta(days=day)
        with connection.cursor() as cursor:
            seed = {"day": day, "start": start.isoformat(), "step": 86_400 / keys_per_day, "keys": keys_per_day}
            cursor.execute(IDEMPOTENCY_SEED, seed)
        now = start + timedelta(days=1)
        started = time.perf_counter()
        longest, removed, batches = 0.0, 0, 0
        while True:  # One batch per call, to time the longest (the longest a claim can wait on a row lock).
            batch_started = time.perf_counter()
            expiry = usage_idempotency_keys_expire(now=now, max_batches=1)
            longest = max(longest, time.perf_counter() - batch_started)
            removed += expiry.removed
            batches += expiry.batches
            if expiry.finished:
                break
        usage_idempotency_keys_vacuum()
        elapsed = time.perf_counter() - started
        with connection.cursor() as cursor:
            rows = _size(cursor, "SELECT count(*) FROM ai_usage_idempotency")
            total = _size(cursor, "SELECT pg_total_relation_size('ai_usage_idempotency')")
        sizes.append(total)
        print(
            f"  {day + 1:>3} {rows:>9,} {total / 2**20:>12.1f} MB {removed:>9,} {batches:>9} "
            f"{elapsed * 1000:>10.0f} ({longest * 1000:.0f})"
        )
    settled = sizes[window + 1 :]
    if settled:
        growth = max(settled) / min(settled) - 1
        low, high = min(settled) / 2**20, max(settled) / 2**20
        print(f"after day {window + 1}: {low:.1f} to {high:.1f} MB ({growth:.0%} apart)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--idempotency-month", action="store_true", help="Only the idempotency keys' simulated month (see below)."
    )
    parser.add_argument("--keys-per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=31)
    args = parser.parse_args()
    status = rerun_without_database("bench.storage", durable=True)
    if status is not None:
        return status
    if args.idempotency_month:
        from bench.django_setup import django_setup_for_bench

        django_setup_for_bench()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        _idempotency_month(keys_per_day=args.keys_per_day, days=args.days)
    else:
        _bench(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
