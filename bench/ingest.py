"""Ingest throughput on PostgreSQL, batches of 1000 records.

    .venv/bin/python -m bench.ingest [--batches 100] [--spread 60] [--pricing rich] [--currencies mixed]

Starts its own throwaway PostgreSQL 15 (durable: fsync on, as in production) unless DATABASE_URL
is set, migrates, and prints records/s for:
  - service:   usage_ingest (pricing, COPY, counters, rollups, alerts) — the whole transaction;
  - api:       POST /api/v1/usage/ through Django's WSGI handler in-process (JSON, auth, validation, service);
  - baseline:  Django bulk_create of the same rows alone (no counters, rollups or alerts), and the
               binary COPY the service uses, alone (rows already built, ids already taken);
and the rollup upkeep: each batch's append of its delta rows (inside the batch), and the
compactions. The compactor thread is off here (AICOST_ROLLUP_COMPACT_SECONDS=inf); the bench
compacts between batches instead, whenever AICOST_ROLLUP_COMPACT_SECONDS (1 s by default) of
service time has passed since the last compaction, as the thread would, and once at the end.
Compactions are timed and counted as service time, so the records/s and the upkeep share
(appends + compactions over service time + compactions) leave no upkeep out.

Pricing (the price book: its cache check, pricing.selectors.price_book_cached, and its query when
the cache misses; and each call's price, inside the batch; not the building of the rows) is timed
too. The price generation the cache check needs is read in the round trip of the log lock the batch
takes anyway; that round trip is timed apart ("lock + generation read") and shown both ways. With
`--pricing rich` every model has every token price, a long-context tier, an alias, a gateway prefix
and a regular expression for dated snapshots; calls arrive under all four kinds of name, carry
every token kind, and one in ten has a prompt above the tier's threshold.

Conversion into the reporting currency (USD; the rate book's query and each call's conversion,
inside the batch) is timed as well. With `--currencies mixed` half the models are priced in CNY,
with a CNY→USD rate for every day the calls span, so half the calls are converted.
"""

import argparse
import json
import math
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from tests.throwaway_pg import rerun_without_database

BATCH = 1000
MODELS = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-haiku-4-5", "qwen-plus", "gemini-2.5-flash"]


TIER_ABOVE = 200_000


def _rich_prices(start: datetime) -> None:
    """Every model: every token price, a tier above TIER_ABOVE prompt tokens, and other names; in
    force a day before the bench's first call (the database holds no calls yet), so they price them."""
    from decimal import Decimal

    from pricing.models import ModelPricing
    from pricing.services import PriceTierInput, model_name_patterns_set, model_pricing_set_prices

    for pricing in ModelPricing.objects.filter(model_name__in=MODELS):
        base_in = pricing.input_price_per_million.quantize(Decimal("0.000001"))
        base_out = pricing.output_price_per_million.quantize(Decimal("0.000001"))
        model_pricing_set_prices(
            pricing=pricing,
            input_price_per_million=base_in,
            output_price_per_million=base_out,
            cached_input_price_per_million=base_in / 10,
            cache_write_5m_price_per_million=base_in * Decimal("1.25"),
            cache_write_1h_price_per_million=base_in * 2,
            input_audio_price_per_million=base_in * 8,
            reasoning_price_per_million=base_out * Decimal("1.5"),
            output_audio_price_per_million=base_out * 8,
            output_image_price_per_million=base_out * 3,
            price_per_call=Decimal("0.0001"),
            tiers=[PriceTierInput(TIER_ABOVE, base_in * 2, base_out * Decimal("1.5"), base_in / 5)],
            source="bench.ingest --pricing rich",
            effective_from=start - timedelta(days=1),
            allow_past=True,
        )
        name = pricing.model_name
        model_name_patterns_set(
            pricing=pricing,
            patterns=[
                ("exact", f"{name}-latest"),
                ("prefix", f"gw/{name}/"),
                ("regex", rf"{name}-\d{{4}}-\d{{2}}-\d{{2}}"),
            ],
        )


CNY_MODELS = MODELS[::2]


def _cny_prices(start: datetime, spread: float) -> None:
    """Half the models priced in CNY, and a CNY→USD rate for each day from 40 days before `start`."""
    from decimal import Decimal

    from pricing.models import ExchangeRate, ModelPriceVersion, ModelPricing

    ModelPricing.objects.filter(model_name__in=CNY_MODELS).update(currency="CNY")
    ModelPriceVersion.objects.filter(pricing__model_name__in=CNY_MODELS).update(currency="CNY")
    first = start - timedelta(days=40)
    days = 41 + math.ceil(spread / 86_400)
    ExchangeRate.objects.bulk_create(
        ExchangeRate(
            base_currency="CNY",
            quote_currency="USD",
            rate=Decimal("0.1380") + Decimal(day % 7) / 10_000,
            effective_from=first + timedelta(days=day),
            effective_to=None if day == days - 1 else first + timedelta(days=day + 1),
            source="bench.ingest --currencies mixed",
        )
        for day in range(days)
    )


def _rich_name(rng: random.Random, name: str) -> str:
    return rng.choice(
        [name, f"{name}-latest", f"gw/{name}/eu", f"{name}-2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"]
    )


def _rich_tokens(rng: random.Random, record: dict) -> None:
    prompt = rng.randint(TIER_ABOVE + 1, 400_000) if rng.random() < 0.1 else record["prompt_tokens"]
    completion = record["completion_tokens"]
    record.update(
        prompt_tokens=prompt,
        cached_tokens=prompt // 4,
        cache_write_5m_tokens=prompt // 8,
        cache_write_1h_tokens=prompt // 16,
        input_audio_tokens=prompt // 32,
        reasoning_tokens=completion // 2,
        output_audio_tokens=completion // 8,
        output_image_tokens=completion // 16,
    )


def _records(rng: random.Random, start: datetime, spread: float, rich: bool = False) -> list[dict]:
    records = [
        {
            "model_name": rng.choice(MODELS),
            "decision_id": f"d-{rng.getrandbits(40):010x}",
            "idempotency_key": "1",
            "user_id": rng.randint(1, 50),
            "prompt_tokens": rng.randint(100, 8000),
            "completion_tokens": rng.randint(10, 2000),
            "cached_tokens": 0,
            "response_time": round(rng.uniform(0.2, 9), 3),
            "success": rng.random() > 0.02,
            "purpose": rng.choice(["chat", "summarise", "classify"]),
            "timestamp": (start + timedelta(seconds=rng.uniform(0, spread))).isoformat(),
        }
        for _ in range(BATCH)
    ]
    if rich:
        for record in records:
            record["model_name"] = _rich_name(rng, record["model_name"])
            _rich_tokens(rng, record)
    return records


def _rate(seconds: list[float], extra: float = 0.0) -> str:
    """Records per second over the batches' time plus `extra` (work the batches left to do)."""
    median_ms = sorted(seconds)[len(seconds) // 2] * 1000
    return f"{BATCH * len(seconds) / (sum(seconds) + extra):>9,.0f} records/s  (median batch {median_ms:.1f} ms)"


def _bench(batches: int, spread: float, rich: bool, mixed: bool) -> None:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client

    from ingest.apis import UsageRecordSerializer
    from pricing.selectors import price_book_for_models
    from usage import rollups, services
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope, UsageLog
    from usage.records import usage_records_validated

    call_command("migrate", verbosity=0)
    rng = random.Random(42)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    if rich:
        _rich_prices(start)
    if mixed:
        _cny_prices(start, spread)
    compact_every = settings.AICOST_ROLLUP_COMPACT_SECONDS
    settings.AICOST_ROLLUP_COMPACT_SECONDS = math.inf  # No thread: compactions are timed below.

    def as_inputs(raw: list[dict]) -> list:
        serializer = UsageRecordSerializer(data=raw, many=True)
        serializer.is_valid(raise_exception=True)
        return [services.UsageRecordInput(**r) for r in serializer.validated_data]

    def as_checked(raw: list[dict]) -> list:
        """The records as ingestion stores them, for the baselines (rules applied outside the timing)."""
        return usage_records_validated(as_inputs(raw), now=datetime.now(UTC))

    append_seconds = 0.0
    original_apply = rollups.rollups_apply_logs

    def timed_apply(*, logs):
        nonlocal append_seconds
        began = time.perf_counter()
        original_apply(logs=logs)
        append_seconds += time.perf_counter() - began

    compact_times: list[float] = []
    compacted_rows = 0

    def timed_compaction() -> None:
        nonlocal compacted_rows
        began = time.perf_counter()
        compacted_rows += rollups.rollups_compact() or 0
        compact_times.append(time.perf_counter() - began)

    pricing_seconds = conversion_seconds = lock_seconds = 0.0
    original_book, original_pricer = services.price_book_cached, services.BatchPricer
    original_lock = services._log_lock_for_pricing

    def timed_lock():
        nonlocal lock_seconds
        began = time.perf_counter()
        generation = original_lock()
        lock_seconds += time.perf_counter() - began
        return generation

    original_rate_book = services.rate_book_for_prices

    def timed_rate_book(*args, **kwargs):
        nonlocal conversion_seconds
        began = time.perf_counter()
        book = original_rate_book(*args, **kwargs)
        conversion_seconds += time.perf_counter() - began
        return book

    def timed_book(**kwargs):
        nonlocal pricing_seconds
        began = time.perf_counter()
        book = original_book(**kwargs)
        pricing_seconds += time.perf_counter() - began
        return book

    class TimedPricer(original_pricer):
        """Times each call's price (_price_at) and, apart, the rest of price_converted: its conversion."""

        def price_converted(self, record, timestamp):
            nonlocal conversion_seconds
            began = time.perf_counter()
            self.price_seconds = 0.0
            converted = super().price_converted(record, timestamp)
            conversion_seconds += time.perf_counter() - began - self.price_seconds
            return converted

        def _price_at(self, record, timestamp):
            nonlocal pricing_seconds
            began = time.perf_counter()
            priced = super()._price_at(record, timestamp)
            self.price_seconds = time.perf_counter() - began
            pricing_seconds += self.price_seconds
            return priced

    services.rollups_apply_logs = timed_apply
    services.price_book_cached = timed_book
    services.BatchPricer, services._log_lock_for_pricing = TimedPricer, timed_lock
    services.rate_book_for_prices = timed_rate_book
    service_times = []
    since_compaction = 0.0
    for _ in range(batches):
        inputs = as_inputs(_records(rng, start, spread, rich))
        began = time.perf_counter()
        services.usage_ingest(records=inputs)
        service_times.append(time.perf_counter() - began)
        since_compaction += service_times[-1]
        if since_compaction >= compact_every:
            timed_compaction()
            since_compaction = 0.0
    services.rollups_apply_logs = original_apply
    services.price_book_cached = original_book
    services.BatchPricer, services._log_lock_for_pricing = original_pricer, original_lock
    services.rate_book_for_prices = original_rate_book
    timed_compaction()  # What the last batches left.
    compact_seconds = sum(compact_times)

    _key, raw_key = api_key_create(name="bench", scope=ApiKeyScope.WRITE_USAGE)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    api_times = []
    for _ in range(batches):
        body = json.dumps(_records(rng, start, spread, rich))
        began = time.perf_counter()
        response = client.post("/api/v1/usage/", body, content_type="application/json", secure=True)
        api_times.append(time.perf_counter() - began)
        if response.status_code != 201:
            raise SystemExit(f"ingest failed: {response.status_code} {response.content[:300]!r}")

    baseline_times = []
    for _ in range(batches):
        inputs = as_checked(_records(rng, start, spread))
        logs = [
            UsageLog(
                **{k: v for k, v in r._asdict().items() if k not in ("idempotency_key", "cost")},
                cost_source="computed",
            )
            for r in inputs
        ]
        began = time.perf_counter()
        UsageLog.objects.bulk_create(logs)
        baseline_times.append(time.perf_counter() - began)

    copy_times = []
    for _ in range(batches):
        inputs = as_checked(_records(rng, start, spread))
        with transaction.atomic():
            ids = services._log_ids_allocate(len(inputs))
            book = price_book_for_models(model_names=MODELS)
            rows = services._rows_priced(inputs, ids, book, start)
            began = time.perf_counter()
            services._rows_insert(rows)
            copy_times.append(time.perf_counter() - began)

    pricing = "rich (every token kind and price, tiers, aliases, prefixes, expressions)" if rich else "plain"
    print(
        f"PostgreSQL ingest, {batches} batches of {BATCH} records each spread over {spread:g} s, "
        f"{os.cpu_count()} cores, pricing {pricing}, "
        + (f"{len(CNY_MODELS)} of {len(MODELS)} models in CNY (converted to USD)" if mixed else "every model in USD")
    )
    print(f"  service  usage_ingest      {_rate(service_times, extra=compact_seconds)}  (compactions included)")
    print(f"  api      POST /api/v1/usage/ {_rate(api_times)}")
    print(f"  baseline bulk_create only  {_rate(baseline_times)}")
    print(f"  baseline binary COPY only  {_rate(copy_times)}")
    records = batches * BATCH
    total = sum(service_times) + compact_seconds
    print(
        f"  rollup append (in the batch): {1000 * append_seconds / batches:.2f} ms per batch, "
        f"{1e6 * append_seconds / records:.2f} us per record, {100 * append_seconds / total:.1f}% of service time"
    )
    print(
        f"  compaction: {len(compact_times)} runs (every {compact_every:g} s of service time, and one at the end), "
        f"{compacted_rows:,} delta rows, {1000 * compact_seconds / len(compact_times):.1f} ms per run, "
        f"{1000 * compact_seconds / batches:.2f} ms per batch, {1e6 * compact_seconds / records:.2f} us per record, "
        f"{100 * compact_seconds / total:.1f}% of service time"
    )
    print(
        f"  rollup upkeep: {100 * (append_seconds + compact_seconds) / total:.1f}% of service time, compaction included"
    )
    print(
        f"  pricing (price book and each call's price, in the batch): {1000 * pricing_seconds / batches:.2f} ms per "
        f"batch, {1e6 * pricing_seconds / records:.2f} us per record, "
        f"{100 * pricing_seconds / total:.1f}% of service time"
    )
    print(
        f"  lock + generation read (one round trip, in the batch): {1000 * lock_seconds / batches:.2f} ms per batch, "
        f"{100 * lock_seconds / total:.1f}% of service time; pricing with it: "
        f"{100 * (pricing_seconds + lock_seconds) / total:.1f}%"
    )
    print(
        f"  conversion (rate book and each call's conversion, in the batch): {1000 * conversion_seconds / batches:.2f} "
        f"ms per batch, {1e6 * conversion_seconds / records:.2f} us per record, "
        f"{100 * conversion_seconds / total:.1f}% of service time"
    )
    _pricing_isolated(as_checked(_records(rng, start, spread, rich)), service_times)
    if mixed:
        _conversion_isolated(as_checked(_records(rng, start, spread, rich)), service_times)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _pricing_isolated(checked: list, service_times: list[float], repeats: int = 31) -> None:
    """Pricing's cost without the per-call timing wrappers' own (two clock reads and a super() call per
    call, about as much as the price itself): one batch's calls priced as a batch prices them, the
    price book taken as a batch takes it (the per-process cache at the current generation: a warm
    process's batch), median of `repeats`, next to the median batch. The first repeat, cold, is
    shown too: each sent name resolved and each model's history prepared, as a new process's first
    batch pays once."""
    from django.db import transaction

    from pricing.selectors import price_book_cache_forget, rate_book_for_prices
    from usage import services

    names = {record.model_name for record in checked}
    moments = [record.timestamp for record in checked]
    times = []
    for repeat in range(repeats + 1):
        with transaction.atomic():
            generation = services._log_lock_for_pricing()  # Its round trip is the batch's log lock: not timed.
            if repeat == 0:
                price_book_cache_forget()
            began = time.perf_counter()
            book = services.price_book_cached(model_names=names, generation=generation)
            elapsed = time.perf_counter() - began
            rates = rate_book_for_prices(book, start=min(moments), end=max(moments) + timedelta(microseconds=1))
            began = time.perf_counter()  # The rate book is conversion's (timed apart): not pricing's.
            price = services.BatchPricer(book, rates).price
            for record in checked:
                price(record, record.timestamp)
            times.append(elapsed + time.perf_counter() - began)
    cold, warm, batch = times[0], _median(times[1:]), _median(service_times)
    print(
        f"  pricing in isolation (price book from the cache, then each call's price, median of {repeats}): "
        f"{1000 * warm:.2f} ms per batch, {1e6 * warm / len(checked):.2f} us per call, "
        f"{100 * warm / batch:.1f}% of the median service batch ({1000 * batch:.1f} ms); "
        f"cold (a new process's first batch) {1000 * cold:.2f} ms"
    )


def _conversion_isolated(checked: list, service_times: list[float], repeats: int = 31) -> None:
    """Conversion's cost without the timing wrappers' own: one batch's calls priced with and without
    conversion (median of `repeats` each, alternated), and the rate book's query, next to the median batch."""
    from pricing.selectors import price_book_for_models, rate_book_for_prices
    from usage.services import BatchPricer

    moments = [record.timestamp for record in checked]
    book = price_book_for_models(model_names=MODELS)
    book_times, price_times, converted_times = [], [], []
    for _ in range(repeats):
        began = time.perf_counter()
        rates = rate_book_for_prices(book, start=min(moments), end=max(moments) + timedelta(microseconds=1))
        book_times.append(time.perf_counter() - began)
        pricer = BatchPricer(book, rates)
        for record in checked:  # Each model's history prepared before either loop is timed.
            pricer.price(record, record.timestamp)
        for method, times in ((pricer.price, price_times), (pricer.price_converted, converted_times)):
            began = time.perf_counter()
            for record in checked:
                method(record, record.timestamp)
            times.append(time.perf_counter() - began)
    query, calls = _median(book_times), _median(converted_times) - _median(price_times)
    converted = sum(1 for record in checked if record.model_name in CNY_MODELS)
    batch = _median(service_times)
    print(
        f"  conversion in isolation (median of {repeats}): rate book {1000 * query:.2f} ms, "
        f"{converted} of {len(checked)} calls converted {1000 * calls:.2f} ms "
        f"({1e6 * calls / max(converted, 1):.2f} us per converted call); "
        f"{100 * (query + calls) / batch:.1f}% of the median service batch ({1000 * batch:.1f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument(
        "--spread",
        type=float,
        default=86_400,
        help="seconds a batch's timestamps spread over: 86400 (a day, a backfill; the default) or e.g. 60 "
        "(a live client sending what it just did)",
    )
    parser.add_argument(
        "--pricing", choices=["plain", "rich"], default="plain", help="rich: every token kind, tiers, other names"
    )
    parser.add_argument(
        "--currencies", choices=["usd", "mixed"], default="usd", help="mixed: half the models priced in CNY"
    )
    args = parser.parse_args()
    status = rerun_without_database("bench.ingest", durable=True)
    if status is not None:
        return status
    _bench(args.batches, args.spread, args.pricing == "rich", args.currencies == "mixed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
