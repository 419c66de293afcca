"""Cost of the usage log's consistency checks (aicost.W012) on PostgreSQL.

    .venv/bin/python -m bench.verify --rows 10000000 [--iterations 30] [--delta-batches 20]

Starts its own throwaway PostgreSQL 15 unless DATABASE_URL is set, migrates, seeds --rows usage rows
with bench.stats' seed (13 months, 10 models, server-side INSERT ... SELECT, rollups rebuilt,
VACUUM ANALYZE), records --delta-batches batches through the ingestion service without compacting
them (so the checks also sum rollup delta rows), then times:
  - the quick check the schema guard runs (usage.checks.usage_consistency_findings: skip-scan probes
    of the log per month, rollups, counters; never a count of the log), --iterations times: p50/p95;
  - schema_report() with and without the check registered: what the check adds to startup;
  - the full verification (`usage_verify`: the log summed per month and model) and its --month form;
  - the same after the incident's damage on a copy of the numbers: one month's partition emptied
    (TRUNCATE), so the quick check finds and describes the lost month.
Goal: the quick check adds at most 100 ms to startup at 10M rows.
"""

import argparse
import math
import sys
import time
from io import StringIO

from tests.throwaway_pg import rerun_without_database

QUICK_GOAL_MS = 100


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _timed(function, iterations: int) -> list[float]:
    function()  # Warm-up: plans, caches.
    times = []
    for _ in range(iterations):
        began = time.perf_counter()
        function()
        times.append((time.perf_counter() - began) * 1000)
    return times


def _line(label: str, times: list[float]) -> str:
    return (
        f"  {label:<58} p50 {_percentile(times, 0.5):>9.1f} ms  p95 {_percentile(times, 0.95):>9.1f} ms  n={len(times)}"
    )


def _schema_report_times(iterations: int) -> tuple[list[float], list[float]]:
    from schemaguard import guard as schema_guard

    with_check = _timed(schema_guard.schema_report, iterations)
    registered = dict(schema_guard.CONSISTENCY_CHECKS)
    schema_guard.CONSISTENCY_CHECKS.clear()
    try:
        without = _timed(schema_guard.schema_report, iterations)
    finally:
        schema_guard.CONSISTENCY_CHECKS.update(registered)
    return with_check, without


def _verify(*args: str) -> int:
    from django.core.management import call_command

    try:
        call_command("usage_verify", *args, stdout=StringIO(), stderr=StringIO())
    except SystemExit as exit_info:
        return exit_info.code
    return 0


def _measure(iterations: int, full_runs: int) -> bool:
    from django.db import connection
    from django.utils import timezone

    from usage.checks import usage_consistency_findings
    from usage.consistency import usage_consistency_read
    from usage.partitions import month_of, partition_months, partition_name

    quick = _timed(lambda: usage_consistency_findings(connection), iterations)
    findings = usage_consistency_findings(connection)
    with_check, without = _schema_report_times(iterations)
    added = _percentile(with_check, 0.5) - _percentile(without, 0.5)
    months = [m for m in partition_months(connection) if m < month_of(timezone.now())]
    month = months[len(months) // 2]  # A full month in the middle of the seeded year.
    full = _timed(_verify, full_runs)
    one_month = _timed(lambda: _verify("--month", f"{month:%Y-%m}"), full_runs)
    verify_code = _verify()
    print()
    print("healthy database:")
    print(_line("quick check (guard, aicost.W012)", quick) + f"  findings: {len(findings)}")
    print(_line("schema_report() with the check", with_check))
    print(_line("schema_report() without it", without))
    print(f"  the check adds {added:.1f} ms (p50) to schema_report()")
    print(_line("usage_verify (full: the log summed per month and model)", full) + f"  exit {verify_code}")
    print(_line(f"usage_verify --month {month:%Y-%m}", one_month))

    reading = usage_consistency_read(full=False)
    print(f"  quick reading: {len(reading.months)} month/model pairs, {len(reading.counters)} counters")

    # The incident's damage, on one month: the partition emptied (rows lost, rollups and counters kept).
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {partition_name(month)}")
    damaged = _timed(lambda: usage_consistency_findings(connection), iterations)
    (finding,) = usage_consistency_findings(connection)
    full_damaged = _timed(_verify, max(1, full_runs // 2))
    print(f"\nafter TRUNCATE of {month:%Y-%m}:")
    print(_line("quick check", damaged))
    print(f"  finding {finding.id}: {finding.msg[:300]}…")
    print(_line("usage_verify", full_damaged) + f"  exit {_verify()}")
    met = _percentile(quick, 0.95) <= QUICK_GOAL_MS and _percentile(damaged, 0.95) <= QUICK_GOAL_MS
    print(f"\ngoal quick check p95 <= {QUICK_GOAL_MS} ms: {'met' if met else 'MISSED'}")
    return met and not findings and verify_code == 0


def _bench(rows: int, iterations: int, full_runs: int, skip_seed: bool, deltas: int) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    from bench.stats import _delta_seed, _print_environment, _print_sizes, _seed_all
    from usage.models import UsageLog

    call_command("migrate", verbosity=0)
    _print_environment()
    if not skip_seed:
        if UsageLog.objects.exists():
            raise SystemExit("The database already holds usage; use an empty one or pass --skip-seed.")
        _seed_all(rows)
        _counters_from_rollups()
        _delta_seed(deltas)
    _print_sizes()
    return 0 if _measure(iterations, full_runs) else 1


def _counters_from_rollups() -> None:
    """The seed writes the log and rebuilds the rollups; the counters follow (as ingestion keeps them)."""
    from usage.services import usage_counters_reconcile

    began = time.perf_counter()
    fixed = usage_counters_reconcile(fix=True)
    print(f"counters set from the record: {len(fixed)} in {time.perf_counter() - began:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--full-runs", type=int, default=3, help="runs of the full verification")
    parser.add_argument("--skip-seed", action="store_true", help="measure the usage already in DATABASE_URL")
    parser.add_argument("--delta-batches", type=int, default=20, help="batches left uncompacted (delta rows)")
    args = parser.parse_args()
    status = rerun_without_database("bench.verify", durable=False)
    if status is not None:
        return status
    return _bench(args.rows, args.iterations, args.full_runs, args.skip_seed, args.delta_batches)


if __name__ == "__main__":
    sys.exit(main())
