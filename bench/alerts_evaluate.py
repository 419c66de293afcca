"""How much budget_alerts_evaluate adds to each ingestion batch, on PostgreSQL.

    python -m tests.throwaway_pg run -- python bench/alerts_evaluate.py [--models 50] [--runs 2000]

Fills 8 days of hourly rollups for --models models, gives every model a budget, then times the
evaluation of a batch touching 5 models: (a) nothing crossed, (b) steady state after every
threshold was crossed (the INSERT finds only conflicts); each with error-rate/spike checks on every
batch and with the default per-process interval. Prints per-call milliseconds (median, p95),
including the transaction around each call.
"""

import argparse
import logging
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.django_setup import django_setup_for_bench

django_setup_for_bench()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from alerts.models import BudgetAlert  # noqa: E402
from alerts.services import budget_alerts_evaluate, global_budget_set  # noqa: E402
from core.timeutils import month_start  # noqa: E402
from pricing.models import ModelPricing  # noqa: E402
from usage.models import UsageCounter, UsageRollupHour  # noqa: E402


def setup(models: int) -> list[str]:
    call_command("migrate", verbosity=0)
    now = timezone.now()
    names = [f"bench-model-{i:03d}" for i in range(models)]
    ModelPricing.objects.bulk_create(
        [
            ModelPricing(
                model_name=name,
                provider="bench",
                display_name=name,
                input_price_per_million=1,
                output_price_per_million=1,
                monthly_budget=Decimal(1000),
            )
            for name in names
        ],
        ignore_conflicts=True,
    )
    # A rerun on the same database starts from the same state.
    ModelPricing.objects.filter(model_name__in=names).update(monthly_budget=Decimal(1000))
    UsageCounter.objects.filter(model_name__in=names).delete()
    UsageCounter.objects.bulk_create(
        UsageCounter(model_name=name, current_month_cost=Decimal(1), current_month=month_start(now), updated_at=now)
        for name in names
    )
    BudgetAlert.objects.all().delete()
    hour = now.replace(minute=0, second=0, microsecond=0)
    UsageRollupHour.objects.all().delete()
    UsageRollupHour.objects.bulk_create(
        [
            UsageRollupHour(
                bucket=hour - timedelta(hours=h), model_name=name, calls=100, successful_calls=99, cost=Decimal("0.5")
            )
            for h in range(8 * 24)
            for name in names
        ]
    )
    global_budget_set(monthly_budget=Decimal(10**6))
    return names


def timed(batch: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        with transaction.atomic():
            budget_alerts_evaluate(model_names=batch, now=timezone.now())
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(label: str, samples: list[float]) -> None:
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{label:<40} median {statistics.median(samples):6.3f} ms   p95 {p95:6.3f} ms   ({len(samples)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    names = setup(args.models)
    batch = names[:5]
    print(f"{args.models} models, {UsageRollupHour.objects.count()} rollup rows, batch touching 5 models")
    for interval in (0, settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS):
        with override_settings(AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS=interval):
            report(f"nothing crossed, anomaly interval {interval:g}s", timed(batch, args.runs))
    UsageCounter.objects.filter(model_name__in=names).update(current_month_cost=Decimal(2000))
    timed(batch, 1)
    print(f"alerts now: {BudgetAlert.objects.count()}")
    for interval in (0, settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS):
        with override_settings(AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS=interval):
            report(f"all crossed (INSERT conflicts), interval {interval:g}s", timed(batch, args.runs))


if __name__ == "__main__":
    logging.getLogger("aicost.alerts").setLevel(logging.ERROR)
    main()
