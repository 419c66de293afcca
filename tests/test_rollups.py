"""The four rollups: kept in step by ingestion, and rebuilt from the log to the same sums."""

import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums, sums_of
from usage import rollups
from usage.models import PREFIX_MINUTES, UsageLog, UsageRollupHour, UsageRollupPending, prefix_column
from usage.rollups import GRAINS, pending_quarters_sum, rollup_columns, rollups_fold, rollups_rebuild
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db
BASE = datetime(2026, 3, 7, 23, 40, tzinfo=UTC)  # Batches cross quarter hours, hours and a UTC midnight.


def _pending_calls() -> int:
    return UsageRollupPending.objects.aggregate(n=Sum(pending_quarters_sum("calls")))["n"] or 0


def _record_batches() -> None:
    _record_unfolded()
    rollups_fold()


def _record_unfolded() -> None:
    for batch in range(3):
        usage_record_batch(
            records=[
                UsageRecordInput(
                    model_name=["gpt-4o", "deepseek-chat", "not-in-pricing"][n % 3],
                    timestamp=BASE + timedelta(minutes=7 * n + batch),
                    prompt_tokens=1000 + n,
                    cached_tokens=(n % 3) * 100,
                    completion_tokens=n,
                    reasoning_tokens=n // 2,
                    success=n % 4 != 0,
                    response_time=None if n % 5 == 0 else n / 4,
                    cost=Decimal("0.5") if n % 7 == 0 else None,
                )
                for n in range(30)
            ]
        )


def _snapshot() -> dict:
    """Every rollup row, keys and sums (response time sums rounded: float sums depend on order)."""
    snapshot = {}
    for grain in GRAINS:
        keys = [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]
        columns = [*keys, *rollup_columns(grain)]
        floats = [n for n, column in enumerate(columns) if column.startswith("response_time_sum")]
        rows = grain.model.objects.values_list(*columns)
        snapshot[grain.model._meta.db_table] = sorted(
            tuple(round(value, 6) if n in floats else value for n, value in enumerate(row)) for row in rows
        )
    return snapshot


def test_every_rollup_holds_every_call():
    _record_batches()
    calls = UsageLog.objects.count()
    for grain in GRAINS:
        rows = grain.model.objects.all()
        assert sum(row.calls for row in rows) == calls, grain.model.__name__
        assert sum(row.cost for row in rows) == sum(log.cost or 0 for log in UsageLog.objects.all())


@pytest.mark.parametrize(
    ("per_model", "total", "buckets"),
    [
        ("ai_usage_rollup_1h", "ai_usage_rollup_1h_total", 5),  # 23:00 to 03:00
        ("ai_usage_rollup_daily", "ai_usage_rollup_daily_total", 2),
    ],
)
def test_each_total_is_the_sum_of_its_models(per_model, total, buckets):
    _record_batches()
    snapshot = _snapshot()
    by_bucket: dict = {}
    for bucket, _model, *sums in snapshot[per_model]:
        by_bucket[bucket] = [a + b for a, b in zip(by_bucket.get(bucket, [0] * len(sums)), sums, strict=True)]
    assert {bucket: [round(v, 6) for v in sums] for bucket, *sums in snapshot[total]} == {
        bucket: [round(v, 6) for v in sums] for bucket, sums in by_bucket.items()
    }
    assert len(by_bucket) == buckets


def test_rebuild_reproduces_what_ingestion_kept():
    _record_batches()
    kept = _snapshot()
    assert rollups_rebuild() == 90
    assert _snapshot() == kept


def test_rebuild_repairs_rollups_that_drifted():
    _record_batches()
    kept = _snapshot()
    for grain in GRAINS:
        grain.model.objects.filter(pk=grain.model.objects.order_by("pk").first().pk).delete()
        grain.model.objects.update(calls=0)
    rollups_rebuild()
    assert _snapshot() == kept


def test_any_model_name_reaches_the_rollups_intact():
    name = 'odd "model", {v2}\\ü ' + "x" * 80
    usage_record_batch(records=[UsageRecordInput(model_name=name, timestamp=BASE, prompt_tokens=7)])
    rollups_fold()
    for grain in GRAINS:
        row = grain.model.objects.get()
        assert (getattr(row, "model_name", name), row.calls, row.prompt_tokens) == (name, 1, 7)


def _bucket_logs(grain, row) -> tuple[datetime, datetime, list[UsageLog]]:
    """The log rows a rollup row sums: its hour or UTC day, its model (per-model grains)."""
    if grain.key_column == "day":
        start = datetime.combine(row.day, datetime.min.time(), tzinfo=UTC)
        end = start + timedelta(days=1)
    else:
        start, end = row.bucket, row.bucket + timedelta(hours=1)
    logs = UsageLog.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if grain.per_model:
        logs = logs.filter(model_name=row.model_name)
    return start, end, list(logs)


def _assert_every_row_holds_every_declared_sum() -> None:
    rows = 0
    for grain in GRAINS:
        for row in grain.model.objects.all():
            rows += 1
            start, _end, logs = _bucket_logs(grain, row)
            assert sums_of(row) == expected_sums(logs), (grain.model.__name__, row)
            for minutes in PREFIX_MINUTES if grain.prefixes else ():
                first = [log for log in logs if log.timestamp < start + timedelta(minutes=minutes)]
                in_prefix = sums_of(row, lambda name, minutes=minutes: prefix_column(name, minutes))
                assert in_prefix == expected_sums(first), (grain.model.__name__, row, minutes)
    assert rows > 0


def test_every_rollup_row_holds_every_declared_sum_of_its_calls_and_of_its_first_minutes():
    """Each declared sum (usage.rollup_sums), compared with the log worked out independently: over
    each hour and day, per model and for all models, and over each hour's first 15, 30 and 45
    minutes; as ingestion folds them and as a rebuild recomputes them."""
    _record_batches()
    assert {log.cached_tokens != log.reasoning_tokens for log in UsageLog.objects.all()} == {True, False}
    _assert_every_row_holds_every_declared_sum()
    rollups_rebuild()
    _assert_every_row_holds_every_declared_sum()


def test_the_prefix_migration_keeps_the_rollups_both_ways():
    _record_batches()
    kept = _snapshot()
    executor = MigrationExecutor(connection)
    executor.migrate([("usage", "0005_rollups_hour_and_totals")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, sum(calls) FROM ai_usage_rollup_15m GROUP BY bucket ORDER BY bucket")
        quarters = cursor.fetchall()
        cursor.execute("SELECT bucket, calls FROM ai_usage_rollup_15m_total ORDER BY bucket")
        assert cursor.fetchall() == quarters
    by_quarter = Counter(
        log.timestamp.replace(minute=log.timestamp.minute // 15 * 15, second=0, microsecond=0)
        for log in UsageLog.objects.all()
    )
    assert quarters == sorted(by_quarter.items())
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert _snapshot() == kept


@pytest.fixture
def no_fold_in_batches(settings):
    settings.AICOST_ROLLUP_FOLD_SECONDS = math.inf  # Batches never fold: their sums stay pending.


@pytest.mark.usefixtures("no_fold_in_batches")
def test_batches_append_pending_sums_until_a_fold_moves_them():
    _record_unfolded()
    assert not UsageRollupHour.objects.exists()
    pending = UsageRollupPending.objects.count()
    assert _pending_calls() == 90
    assert rollups_fold() == pending
    assert not UsageRollupPending.objects.exists()
    kept = _snapshot()
    assert rollups_rebuild() == 90
    assert _snapshot() == kept


def test_ingestion_folds_at_most_once_per_interval(settings):
    settings.AICOST_ROLLUP_FOLD_SECONDS = 0  # Due in every batch.
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", timestamp=BASE, prompt_tokens=7)])
    assert not UsageRollupPending.objects.exists()
    settings.AICOST_ROLLUP_FOLD_SECONDS = 60  # This process folded a moment ago: not due again yet.
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", timestamp=BASE, prompt_tokens=7)])
    assert _pending_calls() == 1
    assert UsageRollupHour.objects.get().calls == 1


def test_batches_never_fold_with_an_infinite_interval(settings):
    settings.AICOST_ROLLUP_FOLD_SECONDS = 0
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", timestamp=BASE, prompt_tokens=7)])
    settings.AICOST_ROLLUP_FOLD_SECONDS = math.inf  # Even long after this process's last fold.
    usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", timestamp=BASE + timedelta(hours=2))])
    assert _pending_calls() == 1


@pytest.mark.usefixtures("no_fold_in_batches")
def test_rebuild_drops_pending_sums_it_recounts():
    _record_unfolded()
    assert rollups_rebuild() == 90
    assert not UsageRollupPending.objects.exists()
    assert sum(row.calls for row in UsageRollupHour.objects.all()) == 90


@pytest.mark.usefixtures("no_fold_in_batches")
def test_a_fold_while_another_runs_leaves_the_pending_sums_to_it():
    _record_unfolded()
    holding, release = threading.Event(), threading.Event()

    def other_fold() -> None:  # Another process folding: it holds the fold lock meanwhile.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [rollups.FOLD_LOCK])
            holding.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [rollups.FOLD_LOCK])
        connections["default"].close()

    thread = threading.Thread(target=other_fold)
    thread.start()
    assert holding.wait(10)
    try:
        assert rollups_fold() is None
        assert _pending_calls() == 90
    finally:
        release.set()
        thread.join(10)
    assert rollups_fold() > 0
    assert sum(row.calls for row in UsageRollupHour.objects.all()) == 90


def test_a_reader_naming_an_undeclared_sum_is_told_so():
    with pytest.raises(ValueError, match="'cals' is not a declared rollup sum"):
        pending_quarters_sum("cals")
