"""Where one ingestion batch's time goes: Python CPU and wall time per phase, through the API in process.

    python -m bench.cpu [--batches 60] [--size 1000] [--spread 86400] [--profile] [--names gateway]

Starts its own throwaway PostgreSQL 15 (fsync off: this measures the Python side) unless DATABASE_URL
is set, migrates, and POSTs `--batches` batches of `--size` records (bench.ingest's) through
Django's test client with an API key. Each phase is timed by wrapping the function that does it
(the functions a tree lacks are skipped, so an older tree can be measured with this file too).
Per batch: CPU milliseconds of this thread (time.thread_time: Python and C work here, not the
database's) and wall milliseconds (the database's share included), inclusive of the indented
phases below each one. `--profile` prints cProfile's top functions over the same batches instead.
`--names gateway` gives every seeded model a prefix, a snapshot expression and an alias (and 90
more expressions that match nothing sent), and sends each call under a gateway or snapshot name.
"""

import argparse
import cProfile
import io
import json
import pstats
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime

from tests.throwaway_pg import rerun_without_database

# (depth, label, module, attribute path): a phase is the time spent inside that function.
PHASES = [
    (0, "request (test client POST)", "django.test.client", "Client.post"),
    (1, "authentication (API key)", "usage.authentication", "ApiKeyAuthentication.authenticate"),
    (1, "JSON parse", "core.api.parsers", "JSONParser.parse"),
    (1, "input serializer (is_valid)", "ingest.apis", "UsageBatchSerializer.is_valid"),
    (1, "usage_batch_record", "ingest.apis", "usage_batch_record"),
    (2, "prepare (rules, partitions)", "ingest.services", "usage_batch_prepare"),
    (3, "record rules", "usage.services", "usage_records_validated"),
    (3, "partition check", "usage.services", "usage_partitions_ensure"),
    (2, "store (usage_batch_store)", "ingest.services", "usage_batch_store"),
    (3, "claim keys + ids", "usage.services", "_claim_and_allocate"),
    (3, "idempotency claim", "usage.services", "_claim_idempotency_keys"),
    (3, "price book", "usage.services", "price_book_for_models"),
    (3, "ids", "usage.services", "_log_ids_allocate"),
    (3, "rows priced", "usage.services", "_rows_priced"),
    (3, "COPY", "usage.services", "_rows_insert"),
    (3, "counters", "usage.services", "_counters_add"),
    (3, "rollups", "usage.services", "rollups_apply_logs"),
    (4, "15-minute sums", "usage.rollups", "quarter_sums"),
    (4, "hour rows", "usage.rollups", "hour_rows"),
    (4, "delta rows per table", "usage.rollups", "_delta_rows"),
    (4, "COPY of delta rows", "usage.rollups", "postgresql_deltas_append"),
    (4, "pending rows COPY (before)", "usage.rollups", "_pending_append"),
    (2, "budget alerts", "ingest.services", "budget_alerts_evaluate"),
    (2, "commit", "django.db.backends.base.base", "BaseDatabaseWrapper.commit"),
    (1, "output serializer", "ingest.apis", "UsageIngestApi.OutputSerializer.data"),
    (1, "output serializer (compiled)", "ingest.apis", "output_data"),
    (1, "JSON render", "rest_framework.renderers", "JSONRenderer.render"),
]


class PhaseTimes:
    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.active: set[str] = set()

    def wrap(self, label: str, function):
        def timed(*args, **kwargs):
            if label in self.active:  # Recursion or a nested call of the same phase: count it once.
                return function(*args, **kwargs)
            self.active.add(label)
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[label] += time.thread_time() - cpu
                self.wall[label] += time.perf_counter() - wall
                self.active.discard(label)

        return timed


def _install(times: PhaseTimes) -> list[tuple[int, str]]:
    """Wrap every phase the tree has; returns the (depth, label) of those wrapped."""
    import importlib
    import inspect

    installed = []
    for depth, label, module_name, path in PHASES:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        original = inspect.getattr_static(owner, name, None) if owner is not None else None
        if original is None:
            continue
        if isinstance(original, property):
            setattr(owner, name, property(times.wrap(label, original.fget)))
        elif isinstance(original, staticmethod | classmethod):
            continue
        else:
            setattr(owner, name, times.wrap(label, original))
        installed.append((depth, label))
    return installed


def _bench(args) -> None:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.test import Client

    from bench.ingest import _records
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    call_command("migrate", verbosity=0)
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    _key, raw_key = api_key_create(name="cpu", scope=ApiKeyScope.WRITE_USAGE)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    batches = [_records(rng, start, args.spread)[: args.size] for _ in range(args.batches + 5)]
    if args.names == "gateway":
        _gateway_names(rng, batches)
    bodies = [json.dumps(batch) for batch in batches]

    def post(body: str) -> None:
        response = client.post("/api/v1/usage/", body, content_type="application/json", secure=True)
        if response.status_code != 201:
            raise SystemExit(f"ingest failed: {response.status_code} {response.content[:300]!r}")

    for body in bodies[:5]:  # Warm-up: imports, compiled serializers, catalog caches.
        post(body)
    bodies = bodies[5:]
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for body in bodies:
            post(body)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"cProfile over {len(bodies)} batches of {args.size} records (sorted by own time)")
        print(out.getvalue())
        return
    times = PhaseTimes()
    installed = _install(times)
    for body in bodies:
        post(body)
    batches = len(bodies)
    print(f"per batch of {args.size} records, mean of {batches} batches, spread {args.spread:g} s: CPU ms / wall ms")
    for depth, label in installed:
        cpu, wall = 1000 * times.cpu[label] / batches, 1000 * times.wall[label] / batches
        print(f"  {'  ' * depth}{label:<{34 - 2 * depth}} {cpu:7.2f} {wall:7.2f}")
    total_cpu = 1000 * times.cpu[installed[0][1]] / batches
    print(f"Python CPU per batch: {total_cpu:.1f} ms ({args.size * 1000 / total_cpu:,.0f} records per CPU second)")


def _gateway_names(rng: random.Random, batches: list[list[dict]]) -> None:
    """Patterns on every seeded model, and records sent under the names they price."""
    from pricing.models import ModelPricing
    from pricing.services import model_name_patterns_set

    for n, pricing in enumerate(ModelPricing.objects.order_by("model_name")):
        name = pricing.model_name
        model_name_patterns_set(
            pricing=pricing,
            patterns=[
                ("prefix", f"gateway/{name}"),
                ("regex", rf"{name}-\d{{4}}-\d{{2}}-\d{{2}}"),
                ("exact", f"models/{name}"),
                *(("regex", rf"never-{n}-{k}-.*") for k in range(10)),
            ],
        )
    forms = ("gateway/{}", "{}-2026-11-01", "models/{}", "{}")
    for batch in batches:
        for record in batch:
            record["model_name"] = rng.choice(forms).format(record["model_name"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=1000, help="records per batch (at most 1000); bench.load sends 100")
    parser.add_argument("--spread", type=float, default=86_400)
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions instead of phases")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--names", choices=["plain", "gateway"], default="plain", help="model names as sent")
    args = parser.parse_args()
    status = rerun_without_database("bench.cpu", durable=False)
    if status is not None:
        return status
    _bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
