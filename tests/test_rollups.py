"""The four rollups: kept in step by ingestion (delta rows, compacted later), and rebuilt from the
log to the same sums."""

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums, sums_of
from usage import rollups
from usage.models import PREFIX_MINUTES, UsageLog, UsageRollupDaily, UsageRollupHour, prefix_column
from usage.rollup_sums import ROLLUP_SUMS
from usage.rollups import GRAINS, rollup_columns, rollups_compact, rollups_compact_cycle, rollups_rebuild
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters, usage_sums_by_model, usage_totals_by_window

pytestmark = pytest.mark.django_db
BASE = datetime(2026, 3, 7, 23, 40, tzinfo=UTC)  # Batches cross quarter hours, hours and a UTC midnight.


def _delta_rows() -> int:
    return sum(grain.model.objects.filter(compacted=False).count() for grain in GRAINS)


def _record_batches() -> None:
    _record_uncompacted()
    rollups_compact()


def _record_uncompacted() -> None:
    """Three batches over the same hours and models (no compactor thread runs: tests/conftest.py)."""
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
    rollups_compact()
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
    minutes; as ingestion's deltas are compacted and as a rebuild recomputes them."""
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
    by_quarter = Counter(  # Only the timestamps: the log of 0005 lacks columns the model has now.
        moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)
        for moment in UsageLog.objects.values_list("timestamp", flat=True)
    )
    assert quarters == sorted(by_quarter.items())
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert _snapshot() == kept


# The sums the pending table had (usage.0007 to 0010): the rollups' sums before usage.0012 added more.
PENDING_SUMS = (
    "calls",
    "successful_calls",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
    "response_time_sum",
    "response_time_count",
)


def test_the_delta_rows_migration_folds_pending_sums_and_goes_back_to_one_row_per_key():
    _record_uncompacted()  # Delta rows only: several per key.
    calls_per_hour = dict(UsageRollupHour.objects.values_list("bucket").annotate(n=Sum("calls")).order_by())
    executor = MigrationExecutor(connection)
    executor.migrate([("usage", "0010_usage_counter")])  # Back: deltas compacted, the pending table again.
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, model_name, count(*) FROM ai_usage_rollup_1h GROUP BY 1, 2 HAVING count(*) > 1")
        assert cursor.fetchall() == []
        cursor.execute("SELECT bucket, sum(calls) FROM ai_usage_rollup_1h GROUP BY bucket")
        assert dict(cursor.fetchall()) == calls_per_hour
        hour = min(calls_per_hour)
        # What a batch of the old code left pending: 2 calls in the 2nd quarter, 1 in the 4th.
        pending = {f"{name}_q{quarter}": 0 for quarter in range(4) for name in PENDING_SUMS}
        pending |= {"calls_q1": 2, "calls_q3": 1, "cost_q1": Decimal("0.25")}
        cursor.execute(
            f"INSERT INTO ai_usage_rollup_pending (bucket, model_name, {', '.join(pending)}) "  # noqa: S608
            f"VALUES (%s, 'gpt-4o', {', '.join(['%s'] * len(pending))})",
            [hour, *pending.values()],
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('ai_usage_rollup_pending') IS NULL")
        assert cursor.fetchone()[0]
    row = UsageRollupHour.objects.get(bucket=hour, model_name="gpt-4o")
    logs = UsageLog.objects.filter(timestamp__gte=hour, timestamp__lt=hour + timedelta(hours=1), model_name="gpt-4o")
    first = [log for log in logs if log.timestamp < hour + timedelta(minutes=30)]
    assert row.compacted
    assert (row.calls, row.calls_15m, row.calls_30m, row.calls_45m) == (
        len(logs) + 3,
        len([log for log in first if log.timestamp < hour + timedelta(minutes=15)]),
        len(first) + 2,
        len([log for log in logs if log.timestamp < hour + timedelta(minutes=45)]) + 2,
    )
    assert UsageRollupDaily.objects.aggregate(n=Sum("calls"))["n"] == 90 + 3


def test_batches_append_delta_rows_until_a_compaction_moves_them():
    _record_uncompacted()
    assert not any(grain.model.objects.filter(compacted=True).exists() for grain in GRAINS)
    deltas = _delta_rows()
    assert UsageRollupHour.objects.count() > UsageRollupHour.objects.values("bucket", "model_name").distinct().count()
    assert UsageRollupHour.objects.aggregate(n=Sum("calls"))["n"] == 90
    assert rollups_compact() == deltas
    assert _delta_rows() == 0
    assert UsageRollupHour.objects.count() == UsageRollupHour.objects.values("bucket", "model_name").distinct().count()
    kept = _snapshot()
    assert rollups_rebuild() == 90
    assert _snapshot() == kept


def test_a_compaction_adds_deltas_to_the_rows_compacted_before():
    _record_batches()
    _record_uncompacted()  # The same keys again: deltas beside compacted rows.
    assert _delta_rows() > 0
    _assert_sums_per_key_equal_the_log()
    rollups_compact()
    assert _delta_rows() == 0
    _assert_every_row_holds_every_declared_sum()


def _assert_sums_per_key_equal_the_log() -> None:
    for grain in GRAINS:
        keys = [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]
        summed = grain.model.objects.values(*keys).annotate(**{f"s_{c}": Sum(c) for c in rollup_columns(grain)})
        for row in summed:
            _start, _end, logs = _bucket_logs(grain, grain.model(**{key: row[key] for key in keys}))
            assert {name: row[f"s_{name}"] for name in expected_sums(logs)} == expected_sums(logs), (grain, row)


def test_rebuild_drops_delta_rows_it_recounts():
    _record_uncompacted()
    assert rollups_rebuild() == 90
    assert _delta_rows() == 0
    assert sum(row.calls for row in UsageRollupHour.objects.all()) == 90


def test_a_compaction_while_another_runs_leaves_the_deltas_to_it():
    _record_uncompacted()
    holding, release = threading.Event(), threading.Event()

    def other_compaction() -> None:  # Another process compacting: it holds the lock meanwhile.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [rollups.COMPACT_LOCK])
            holding.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [rollups.COMPACT_LOCK])
        connections["default"].close()

    thread = threading.Thread(target=other_compaction)
    thread.start()
    assert holding.wait(10)
    try:
        deltas = _delta_rows()
        assert rollups_compact() is None
        assert rollups_compact(lock_timeout_ms=50) is None  # Waited 50 ms, then left it to the other.
        assert _delta_rows() == deltas
    finally:
        release.set()
        thread.join(10)
    assert rollups_compact(lock_timeout_ms=1000) == deltas
    assert sum(row.calls for row in UsageRollupHour.objects.all()) == 90


def test_a_failing_compaction_fails_no_batch_and_the_next_one_catches_up(monkeypatch, caplog):
    _record_batches()
    monkeypatch.setattr(rollups, "_compact_sql", lambda: "SELECT no_such_function()")  # Every compaction fails.
    with caplog.at_level(logging.ERROR, logger="aicost.rollups"):
        assert rollups_compact_cycle() is None  # What the compactor thread runs: logged, not raised.
    failure = next(record for record in caplog.records if record.name == "aicost.rollups")
    assert failure.exc_info is not None
    assert "no_such_function" in str(failure.exc_info[1])
    _record_uncompacted()  # Batches succeed meanwhile...
    sums = usage_sums_by_model(start=None, end=BASE + timedelta(days=1), filters=UsageFilters())
    logs = list(UsageLog.objects.all())
    assert {name: sums_of(s) for name, s in sums.items()} == {  # ...and are read exactly.
        name: expected_sums(log for log in logs if log.model_name == name) for name in {log.model_name for log in logs}
    }
    monkeypatch.undo()
    assert rollups_compact_cycle() > 0  # The next cycle compacts what the failed ones left.
    assert _delta_rows() == 0
    _assert_every_row_holds_every_declared_sum()


def test_the_compact_command_compacts_and_says_how_many_rows():
    _record_uncompacted()
    deltas = _delta_rows()
    out = StringIO()
    call_command("usage_rollups_compact", "--lock-timeout-ms", "500", stdout=out)
    assert out.getvalue() == f"Compacted {deltas} delta rollup rows.\n"
    assert _delta_rows() == 0


def test_a_read_of_some_sums_gives_them_exactly_and_leaves_the_others_unusable():
    """The trend reads only the sums its days show: those equal every-sum reads, the rest are None
    (adding one fails loudly), and a read that would not know which windows have calls is refused."""
    _record_uncompacted()
    boundaries = [BASE - timedelta(hours=1), BASE + timedelta(minutes=95), BASE + timedelta(hours=5)]
    some = tuple(s for s in ROLLUP_SUMS if s.name in {"calls", "reporting_cost", "cached_tokens"})
    every = usage_totals_by_window(boundaries=boundaries, filters=UsageFilters())
    read = usage_totals_by_window(boundaries=boundaries, filters=UsageFilters(), sums=some)
    assert [w.calls for w in every] == [w.calls for w in read]
    assert all(w.calls for w in read)
    assert [w.reporting_cost for w in every] == [w.reporting_cost for w in read]
    assert [w.cached_tokens for w in every] == [w.cached_tokens for w in read]
    assert {w.prompt_tokens for w in read} == {w.cost for w in read} == {None}
    with pytest.raises(TypeError):
        read[0] + read[1]
    with pytest.raises(ValueError, match="calls"):
        usage_totals_by_window(boundaries=boundaries, filters=UsageFilters(), sums=some[1:])
