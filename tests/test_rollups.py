"""The four rollups: kept in step by ingestion, and rebuilt from the log to the same sums."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from usage.models import UsageLog
from usage.rollups import GRAINS, SUM_COLUMNS, rollups_rebuild
from usage.services import UsageRecordInput, usage_record_batch

pytestmark = pytest.mark.django_db
BASE = datetime(2026, 3, 7, 23, 40, tzinfo=UTC)  # Batches cross quarter hours, hours and a UTC midnight.


def _record_batches() -> None:
    for batch in range(3):
        usage_record_batch(
            records=[
                UsageRecordInput(
                    model_name=["gpt-4o", "deepseek-chat", "not-in-pricing"][n % 3],
                    timestamp=BASE + timedelta(minutes=7 * n + batch),
                    prompt_tokens=1000 + n,
                    completion_tokens=n,
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
        rows = grain.model.objects.values_list(*keys, *SUM_COLUMNS)
        position = len(keys) + SUM_COLUMNS.index("response_time_sum")
        snapshot[grain.model._meta.db_table] = sorted(
            (*row[:position], round(row[position], 6), *row[position + 1 :]) for row in rows
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
        ("ai_usage_rollup_15m", "ai_usage_rollup_15m_total", 15),  # 23:30 to 03:00 UTC
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
    for grain in GRAINS:
        row = grain.model.objects.get()
        assert (getattr(row, "model_name", name), row.calls, row.prompt_tokens) == (name, 1, 7)
