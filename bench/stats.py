"""Stats and daily-trend API latency on PostgreSQL, next to a direct GROUP BY on the raw log.

    .venv/bin/python -m bench.stats --rows 1000000 [--iterations 50] [--raw-budget 6]
        [--users 500 --top-share 0 --purposes 5 --keys 0]
    # Issue 17's population: --users 100000 --top-share 0.5 --purposes 50 --keys 20

Starts its own throwaway PostgreSQL 15 unless DATABASE_URL is set, migrates, then:
  - seeds --rows usage rows server-side (one INSERT ... SELECT FROM generate_series): the 9 seeded
    models plus an unknown, unpriced one, 13 months of timestamps ending an hour from now (so the
    unaligned newest edge of every window has rows, as under live ingestion), 3% failures, user ids,
    purposes and sending API keys (Population: how many of each, and how skewed the users are), costs
    computed from the price in force;
  - rebuilds the rollups with usage.rollups.rollups_rebuild and ANALYZEs; each step is timed;
  - records --delta-batches more batches of 1000 calls spread over the last day through the
    ingestion service without compacting them, so the reads also sum rollup delta rows beside the
    compacted ones (20 such batches: what a second of backfill at full speed leaves between
    compactions with AICOST_ROLLUP_COMPACT_SECONDS=1);
  - times GET /api/v1/ai-platforms/stats (every time_range) and /cost-trend-daily (days 7..366)
    through Django's test client (URL routing, middleware, API key auth, DRF, JSON), without and
    with tz and a model filter, --iterations times after a warm-up: p50/p95 in ms;
  - times the same answer as one GROUP BY over ai_model_usage_log for the same window (raw SQL, no
    HTTP), for at most --raw-budget seconds per case;
  - checks that every API answer equals that GROUP BY, and prints the goal: stats and trend p95
    <= 25 ms for every range, zone and model/provider filter. user_id and purpose filters read the
    raw log by design; they are listed apart.

With DATABASE_URL set, the database must hold no usage yet, or pass --skip-seed to measure the
usage it holds. The throwaway server runs with fsync off: it speeds the seed and does not touch reads.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from zoneinfo import ZoneInfo

from tests.throwaway_pg import rerun_without_database

STATS_URL = "/api/v1/ai-platforms/stats"
TREND_URL = "/api/v1/ai-platforms/cost-trend-daily"
TIME_RANGES = ["today", "24h", "7d", "30d", "90d", "month", "all"]
TREND_DAYS = [7, 30, 90, 366]
ZONE = "Asia/Shanghai"
WORST_ZONE = "Pacific/Chatham"  # UTC+12:45/+13:45: the farthest local midnight from a UTC one.
MODEL = "gpt-4o-mini"
PROVIDER = "OpenAI"
SPAN = timedelta(days=395)
AHEAD = timedelta(hours=1)
UNPRICED_MODEL = "bench-unpriced-model"
# Share of calls per model, in percent; the seeded price list's 9 models plus one it does not know.
MODEL_WEIGHTS = {
    "gpt-4o-mini": 25,
    "deepseek-chat": 18,
    "gpt-4o": 12,
    "qwen-plus": 10,
    "claude-haiku-4-5": 8,
    "gemini-2.5-flash": 8,
    "gpt-4.1": 6,
    "claude-sonnet-4-5": 6,
    "deepseek-reasoner": 5,
    UNPRICED_MODEL: 2,
}
PURPOSES = ["chat", "summarise", "classify", "extract", "translate"]


@dataclass(frozen=True)
class Population:
    """Who sends the seeded calls: user ids 1..users (a tenth of the calls have none), top_share of the
    others going to the top 1% of the users (0: every user alike; 0.5: the top 1% make about half the
    calls, as in real traffic); purposes (PURPOSES, then purpose-06, ...); keys API keys, each call
    sent by one of them at random (0: none, as calls recorded from Python)."""

    users: int = 500
    top_share: float = 0.0
    purposes: int = len(PURPOSES)
    keys: int = 0

    def purpose_names(self) -> list[str]:
        return (PURPOSES + [f"purpose-{n:02d}" for n in range(len(PURPOSES) + 1, self.purposes + 1)])[: self.purposes]


SETTINGS_SHOWN = [
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "max_parallel_workers_per_gather",
    "jit",
    "random_page_cost",
    "fsync",
    "synchronous_commit",
]

# Randoms in a subquery (volatile: evaluated per row), tokens from them, then the row.
SEED_SQL = """
INSERT INTO ai_model_usage_log (
    model_name, decision_id, user_id, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
    cost, reporting_cost, cost_source, price_version_id, response_time, success, error_message, purpose, timestamp,
    api_key_id
)
SELECT
    m.model_name, 'bench-' || lpad(t.i::text, 10, '0'), t.user_id, t.prompt, t.completion, t.cached,
    CASE WHEN m.model_name = 'deepseek-reasoner' THEN t.completion * 6 / 10 ELSE 0 END,
    CASE WHEN m.version_id IS NULL THEN NULL
         ELSE round(((t.prompt - t.cached) * m.p_in + t.cached * m.p_cached + t.completion * m.p_out) / 1000000, 8)
    END,
    -- The seed's models are priced in USD, the reporting currency: reporting_cost = cost (as ingestion stores it).
    CASE WHEN m.version_id IS NULL THEN NULL
         ELSE round(((t.prompt - t.cached) * m.p_in + t.cached * m.p_cached + t.completion * m.p_out) / 1000000, 8)
    END,
    CASE WHEN m.version_id IS NULL THEN 'unpriced' ELSE 'computed' END,
    m.version_id, t.response_time, t.success, CASE WHEN t.success THEN '' ELSE 'upstream timeout' END,
    t.purpose, t.ts, t.api_key_id
FROM (
    SELECT
        r.i, r.model_idx, r.success, r.user_id, r.purpose, r.api_key_id, r.response_time, r.ts,
        200 + floor(r.r_prompt ^ 2 * 6000)::int AS prompt,
        CASE WHEN r.success THEN 20 + floor(r.r_completion * 1200)::int ELSE 0 END AS completion,
        CASE WHEN r.r_cache < 0.3 THEN (200 + floor(r.r_prompt ^ 2 * 6000)::int) / 2 ELSE 0 END AS cached
    FROM (
        SELECT
            g.i,
            (%(weights)s::int[])[1 + floor(random() * 100)::int] AS model_idx,
            random() >= 0.03 AS success,
            CASE WHEN random() < 0.1 THEN NULL
                 WHEN random() < %(top_share)s THEN 1 + floor(random() * %(top_users)s)::int
                 ELSE 1 + floor(random() * %(users)s)::int END AS user_id,
            (%(purposes)s::text[])[1 + floor(random() * %(n_purposes)s)::int] AS purpose,
            (%(keys)s::bigint[])[1 + floor(random() * %(n_keys)s)::int] AS api_key_id,
            CASE WHEN random() < 0.05 THEN NULL ELSE round((0.2 + random() * 8)::numeric, 3)::float8 END
                AS response_time,
            %(start)s::timestamptz + (g.i - 1 + random()) * %(step)s::interval AS ts,
            random() AS r_prompt, random() AS r_completion, random() AS r_cache
        FROM generate_series(1, %(rows)s) AS g(i)
    ) AS r
) AS t
JOIN unnest(%(idx)s::int[], %(names)s::text[], %(versions)s::bigint[], %(p_in)s::numeric[],
            %(p_out)s::numeric[], %(p_cached)s::numeric[])
    AS m(idx, model_name, version_id, p_in, p_out, p_cached) ON m.idx = t.model_idx
"""

RAW_SUMS = """
    count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE cost_source = 'unpriced'),
    sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(reasoning_tokens),
    coalesce(sum(cost), 0), coalesce(sum(response_time), 0), count(response_time)
"""


@dataclass
class Case:
    group: str  # "stats", "trend" or "raw-log filter"
    url: str
    params: dict
    api_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    mismatch: str = ""

    @property
    def label(self) -> str:
        endpoint = "stats" if self.url == STATS_URL else "trend"
        return f"{endpoint} " + " ".join(f"{k}={v}" for k, v in self.params.items())


def _cases() -> list[Case]:
    cases = []
    for variant in ({}, {"tz": ZONE}, {"model": MODEL}):
        cases += [Case("stats", STATS_URL, {"time_range": r, **variant}) for r in TIME_RANGES]
    cases.append(Case("stats", STATS_URL, {"time_range": "30d", "provider": PROVIDER}))
    for variant in ({}, {"tz": ZONE}, {"model": MODEL}):
        cases += [Case("trend", TREND_URL, {"days": d, **variant}) for d in TREND_DAYS]
    cases.append(Case("trend", TREND_URL, {"days": 366, "provider": PROVIDER}))
    cases.append(Case("trend", TREND_URL, {"days": 366, "tz": WORST_ZONE}))
    cases += [
        Case("raw-log filter", STATS_URL, {"time_range": "24h", "user_id": 42}),
        Case("raw-log filter", STATS_URL, {"time_range": "30d", "user_id": 42}),
        Case("raw-log filter", STATS_URL, {"time_range": "30d", "purpose": "extract"}),
        Case("raw-log filter", TREND_URL, {"days": 30, "user_id": 42}),
    ]
    return cases


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# --- Seed -----------------------------------------------------------------------------------------


def _seed(rows: int, now: datetime, population: Population) -> None:
    from django.db import connection

    from pricing.models import ModelPriceVersion
    from usage.keys import api_key_create
    from usage.partitions import month_of, months_from
    from usage.services import usage_partitions_ensure

    versions = {
        v.pricing.model_name: v
        for v in ModelPriceVersion.objects.select_related("pricing").filter(
            pricing__model_name__in=MODEL_WEIGHTS, effective_to__isnull=True
        )
    }
    names = list(MODEL_WEIGHTS)
    weights = [idx for idx, name in enumerate(names, start=1) for _ in range(MODEL_WEIGHTS[name])]
    if len(weights) != 100:
        raise SystemExit("MODEL_WEIGHTS must add up to 100")

    def price(name: str, attribute: str) -> Decimal | None:
        version = versions.get(name)
        if version is None:
            return None
        value = getattr(version, attribute)
        return version.input_price_per_million if value is None else value

    end = now + AHEAD
    params = {
        "rows": rows,
        "start": end - SPAN,
        "step": SPAN / rows,
        "weights": weights,
        "users": population.users,
        "top_users": max(1, population.users // 100),
        "top_share": population.top_share,
        "purposes": population.purpose_names(),
        "n_purposes": population.purposes,
        "keys": [api_key_create(name=f"bench-sender-{n}")[0].pk for n in range(1, population.keys + 1)] or [None],
        "n_keys": max(1, population.keys),
        "idx": list(range(1, len(names) + 1)),
        "names": names,
        "versions": [versions[n].pk if n in versions else None for n in names],
        "p_in": [price(n, "input_price_per_million") for n in names],
        "p_out": [price(n, "output_price_per_million") for n in names],
        "p_cached": [price(n, "cached_input_price_per_million") for n in names],
    }
    first, last = month_of(end - SPAN), month_of(end)
    usage_partitions_ensure(months=set(months_from(first, last)))  # The log is partitioned by month.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(SEED_SQL, params)


def _seed_all(rows: int, population: Population) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from usage.rollups import rollups_rebuild

    steps = []
    began = time.perf_counter()
    with transaction.atomic():
        _seed(rows, timezone.now(), population)
    steps.append(("insert", time.perf_counter() - began))
    began = time.perf_counter()
    rollups_rebuild()
    steps.append(("rollups_rebuild", time.perf_counter() - began))
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    steps.append(("VACUUM ANALYZE", time.perf_counter() - began))
    total = sum(seconds for _name, seconds in steps)
    detail = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps)
    print(f"seeded {rows:,} rows in {total:.1f} s ({detail})", flush=True)


# --- Environment ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> str:
    return "load average " + " ".join(f"{load:.2f}" for load in os.getloadavg())


def _print_environment() -> None:
    from django.conf import settings
    from django.db import connection

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {usable} usable cores of {os.cpu_count()}, {_cpu_model()}, Python {platform.python_version()}, "
        f"{_load()} (the database server shares these cores)"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        shown = []
        for name in SETTINGS_SHOWN:
            cursor.execute(f"SHOW {name}")
            shown.append(f"{name}={cursor.fetchone()[0]}")
    print(f"PostgreSQL {version}: " + ", ".join(shown))
    print(
        f"Django TIME_ZONE={settings.TIME_ZONE}, DEBUG={settings.DEBUG}, CONN_MAX_AGE="
        f"{settings.DATABASES['default']['CONN_MAX_AGE']}"
    )


def _print_sizes() -> None:
    from django.db import connection

    from usage.rollups import GRAINS

    with connection.cursor() as cursor:
        for table in ["ai_model_usage_log", *(grain.model._meta.db_table for grain in GRAINS)]:
            # A partitioned table has no storage of its own: add up its partitions (and itself).
            cursor.execute(
                f"SELECT (SELECT count(*) FROM {table}), pg_size_pretty(coalesce("
                f"(SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('{table}')), "
                f"pg_total_relation_size('{table}')))"
            )
            count, size = cursor.fetchone()
            print(f"  {table:<28} {count:>11,} rows  {size:>8} with indexes")


# --- The direct GROUP BY on the raw log ------------------------------------------------------------


def _raw_filter_sql(params: dict) -> tuple[str, list]:
    from usage.reports import usage_filters_resolve

    filters = usage_filters_resolve(
        model=params.get("model"),
        provider=params.get("provider"),
        user_id=params.get("user_id"),
        purpose=params.get("purpose"),
    )
    sql, args = "", []
    if filters.model_names is not None:
        sql, args = sql + " AND model_name = ANY(%s)", [*args, sorted(filters.model_names)]
    if filters.user_id is not None:
        sql, args = sql + " AND user_id = %s", [*args, filters.user_id]
    if filters.purpose is not None:
        sql, args = sql + " AND purpose = %s", [*args, filters.purpose]
    return sql, args


def _zone(params: dict):
    from django.utils import timezone

    return ZoneInfo(params["tz"]) if "tz" in params else timezone.get_current_timezone()


def _raw_stats(params: dict, start: datetime | None, end: datetime) -> dict[str, tuple]:
    from django.db import connection

    extra, args = _raw_filter_sql(params)
    if start is not None:
        extra, args = " AND timestamp >= %s" + extra, [start, *args]
    sql = f"SELECT model_name, {RAW_SUMS} FROM ai_model_usage_log WHERE timestamp < %s{extra} GROUP BY model_name"
    with connection.cursor() as cursor:
        cursor.execute(sql, [end, *args])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def _raw_trend(params: dict, first_day: date, days: int) -> dict[date, tuple]:
    from django.db import connection

    zone = _zone(params)
    start = datetime.combine(first_day, clock.min, tzinfo=zone)
    end = datetime.combine(first_day + timedelta(days=days), clock.min, tzinfo=zone)
    extra, args = _raw_filter_sql(params)
    sql = (
        f"SELECT (timestamp AT TIME ZONE %s)::date AS day, {RAW_SUMS} FROM ai_model_usage_log "
        f"WHERE timestamp >= %s AND timestamp < %s{extra} GROUP BY day"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [str(zone), start, end, *args])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def _raw_once(case: Case) -> None:
    """The window the API would read now, summed straight from the log."""
    from django.utils import timezone

    from usage.reports import time_range_window

    now = timezone.now()
    if case.url == STATS_URL:
        start, end = time_range_window(time_range=case.params["time_range"], now=now, zone=_zone(case.params))
        _raw_stats(case.params, start, end)
    else:
        days = case.params["days"]
        _raw_trend(case.params, now.astimezone(_zone(case.params)).date() - timedelta(days=days - 1), days)


# --- Measuring ------------------------------------------------------------------------------------


def _get(client, case: Case) -> dict:
    response = client.get(case.url, case.params, secure=True)
    if response.status_code != 200:
        raise SystemExit(f"{case.label}: HTTP {response.status_code} {response.content[:300]!r}")
    # Money as the JSON's decimal text (parse_float): a float would not equal the raw Decimal sum.
    return json.loads(response.content, parse_float=Decimal)["data"]


def _check(case: Case, data: dict) -> str:
    """'' when the API's answer equals the GROUP BY over the same window, else what differs."""
    if case.url == STATS_URL:
        start = data["start"] and datetime.fromisoformat(data["start"])
        raw = _raw_stats(case.params, start, datetime.fromisoformat(data["end"]))
        got = {p["model_name"]: (p["calls"], Decimal(p["cost"]), p["prompt_tokens"]) for p in data["platforms"]}
        want = {name: (row[0], row[7], row[3]) for name, row in raw.items()}
    else:
        first_day = date.fromisoformat(data["daily_trend"][0]["date"])
        raw = _raw_trend(case.params, first_day, len(data["daily_trend"]))
        got = {
            date.fromisoformat(d["date"]): (d["calls"], Decimal(d["cost"]), d["prompt_tokens"])
            for d in data["daily_trend"]
            if d["calls"]
        }
        want = {day: (row[0], row[7], row[3]) for day, row in raw.items()}
    if got == want:
        return ""
    wrong = sorted(key for key in got.keys() | want.keys() if got.get(key) != want.get(key))
    return f"{len(wrong)} keys differ, e.g. {wrong[0]}: api {got.get(wrong[0])} raw {want.get(wrong[0])}"


def _measure(case: Case, client, iterations: int, warmup: int, raw_budget: float) -> None:
    for _ in range(warmup):
        _get(client, case)
    for _ in range(iterations):
        began = time.perf_counter()
        _get(client, case)
        case.api_ms.append((time.perf_counter() - began) * 1000)
    _raw_once(case)  # Warm-up.
    deadline = time.perf_counter() + raw_budget
    while len(case.raw_ms) < iterations and (len(case.raw_ms) < 3 or time.perf_counter() < deadline):
        began = time.perf_counter()
        _raw_once(case)
        case.raw_ms.append((time.perf_counter() - began) * 1000)
    case.mismatch = _check(case, _get(client, case))


def _print_table(cases: list[Case], rows: int, iterations: int) -> None:
    print()
    print(f"{rows:,} usage rows; API: {iterations} requests per case through the test client; raw: GROUP BY on")
    print("ai_model_usage_log over the same window (n runs, time-budgeted); milliseconds")
    header = f"{'case':<44} {'API p50':>8} {'p95':>7}   {'raw p50':>8} {'p95':>8} {'n':>4}  exact"
    for group in ("stats", "trend", "raw-log filter"):
        print(f"\n[{group}]")
        print(header)
        for case in (c for c in cases if c.group == group):
            print(
                f"{case.label:<44} {_percentile(case.api_ms, 0.5):>8.1f} {_percentile(case.api_ms, 0.95):>7.1f}   "
                f"{_percentile(case.raw_ms, 0.5):>8.1f} {_percentile(case.raw_ms, 0.95):>8.1f} {len(case.raw_ms):>4}  "
                f"{'yes' if not case.mismatch else 'NO: ' + case.mismatch}"
            )


GOAL_MS = 25  # stats and trend p95, at 1M and 10M rows (issue 14, point 8)


def _print_goals(cases: list[Case]) -> bool:
    goals = [("stats", GOAL_MS), ("trend", GOAL_MS)]
    met = True
    print()
    for group, limit in goals:
        worst = max((c for c in cases if c.group == group), key=lambda c: _percentile(c.api_ms, 0.95))
        p95 = _percentile(worst.api_ms, 0.95)
        ok = p95 <= limit
        met = met and ok
        print(f"goal {group} p95 <= {limit} ms: worst {p95:.1f} ms ({worst.label}) -> {'met' if ok else 'MISSED'}")
    exact = all(not c.mismatch for c in cases)
    print(f"every answer equals the raw GROUP BY: {'yes' if exact else 'NO'}")
    return met and exact


def _delta_seed(batches: int) -> None:
    """Ingest batches spread over the last day and leave their rollup delta rows uncompacted."""
    import math
    import random

    from django.conf import settings
    from django.utils import timezone

    from bench.ingest import _records
    from ingest.apis import UsageRecordSerializer
    from usage import services
    from usage.rollups import GRAINS

    settings.AICOST_ROLLUP_COMPACT_SECONDS = math.inf  # No compactor thread in this process.
    rng = random.Random(7)
    start = timezone.now() - timedelta(days=1)
    began = time.perf_counter()
    for _ in range(batches):
        serializer = UsageRecordSerializer(data=_records(rng, start, 86_400 - 300), many=True)
        serializer.is_valid(raise_exception=True)
        services.usage_ingest(records=[services.UsageRecordInput(**r) for r in serializer.validated_data])
    deltas = sum(grain.model.objects.filter(compacted=False).count() for grain in GRAINS)
    print(f"recorded {batches} batches in {time.perf_counter() - began:.1f} s, leaving {deltas:,} rollup delta rows")


def _bench(
    rows: int, iterations: int, warmup: int, raw_budget: float, skip_seed: bool, deltas: int, population: Population
) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command
    from django.test import Client

    from usage.keys import api_key_create
    from usage.models import ApiKeyScope, UsageLog

    call_command("migrate", verbosity=0)
    _print_environment()
    if not skip_seed:
        if UsageLog.objects.exists():
            raise SystemExit("The database already holds usage; use an empty one or pass --skip-seed.")
        _seed_all(rows, population)
        _delta_seed(deltas)
    rows = UsageLog.objects.count()
    _print_sizes()
    _key, raw_key = api_key_create(name="bench-stats", scope=ApiKeyScope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    cases = _cases()
    began = time.perf_counter()
    for case in cases:
        _measure(case, client, iterations, warmup, raw_budget)
        print(f"  measured {case.label}", flush=True)
    print(f"measured in {time.perf_counter() - began:.0f} s; {_load()}")
    _print_table(cases, rows, iterations)
    return 0 if _print_goals(cases) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--raw-budget", type=float, default=6.0, help="seconds of raw GROUP BY runs per case")
    parser.add_argument("--skip-seed", action="store_true", help="measure the usage already in DATABASE_URL")
    parser.add_argument("--delta-batches", type=int, default=20, help="batches left uncompacted (delta rows)")
    parser.add_argument("--users", type=int, default=500, help="distinct user ids in the seed")
    parser.add_argument(
        "--top-share", type=float, default=0.0, help="share of the calls with a user sent by the top 1%% (0.5: skewed)"
    )
    parser.add_argument("--purposes", type=int, default=len(PURPOSES), help="distinct purposes in the seed")
    parser.add_argument("--keys", type=int, default=0, help="API keys the seeded calls were sent with (0: none)")
    args = parser.parse_args()
    status = rerun_without_database("bench.stats", durable=False)
    if status is not None:
        return status
    population = Population(users=args.users, top_share=args.top_share, purposes=args.purposes, keys=args.keys)
    return _bench(
        args.rows, args.iterations, args.warmup, args.raw_budget, args.skip_seed, args.delta_batches, population
    )


if __name__ == "__main__":
    sys.exit(main())
