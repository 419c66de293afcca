"""A batch's own rollup rows equal the Python sums of its calls, for every declared sum.

A batch sums its calls in Python (usage.rollups); PostgreSQL appends the sums as delta rows, SQLite
upserts them. Either way the rows a batch writes must equal quarter_sums -> hour_rows -> grain_rows of
the calls it stored, in every column (each sum and each hour's 15/30/45-minute prefixes), with every
declared sum non-zero somewhere, costs with 12 places, failed calls and calls on quarter-hour edges;
and a second batch over the same buckets writes the sums of its own calls only. Any other way of
summing a batch (in SQL: bench/README.md measured two) must pass the same test."""

import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums
from tests.sqlite_process import ROOT, sqlite_environment
from usage.models import UsageLog
from usage.rollup_sums import ROLLUP_SUMS
from usage.rollups import DAY_TOTAL_GRAIN, GRAINS, grain_rows, hour_rows, quarter_sums, rollup_columns, rollups_compact
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db
EDGE = datetime(2026, 3, 7, 23, 45, tzinfo=UTC)  # A quarter-hour edge 15 minutes before a UTC midnight.
MODELS = ["gpt-4o", "deepseek-chat", "not-in-pricing"]


def _records(offset: int) -> list[UsageRecordInput]:
    """Calls on and around quarter-hour edges (one microsecond either side), across an hour and a
    UTC day, every token kind, provider costs with 12 places or none, failed calls."""
    moments = [EDGE + timedelta(minutes=15 * k, microseconds=d) for k in range(-5, 3) for d in (-1, 0, 1)]
    return [
        UsageRecordInput(
            model_name=MODELS[(n + offset) % 3],
            timestamp=moment,
            prompt_tokens=2000 + n,
            completion_tokens=500 + n,
            cached_tokens=(n % 4) * 100,
            reasoning_tokens=(n % 3) * 50 + offset,
            cache_write_5m_tokens=n * 3,
            cache_write_1h_tokens=n * 5 + 1,
            input_audio_tokens=n % 7,
            output_audio_tokens=n % 5 + offset,
            output_image_tokens=n % 2,
            success=(n + offset) % 4 != 0,
            response_time=None if n % 6 == 0 else n / 8 + 0.1,
            cost=Decimal("0.000000123457") * (n + 1) + Decimal("1e-12") if n % 3 == 0 else None,
        )
        for n, moment in enumerate(moments)
    ]


def _epoch(bucket) -> int:
    moment = bucket if isinstance(bucket, datetime) else datetime.combine(bucket, time(), tzinfo=UTC)
    return int(moment.timestamp())


def _approx_floats(values) -> list:
    return [pytest.approx(value, rel=1e-12, abs=1e-12) if isinstance(value, float) else value for value in values]


def _rows_of(grain, *, deltas_only: bool) -> dict:
    """The grain's rows (delta rows only, or all) by (bucket as epoch seconds, model or None)."""
    keys = [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]
    rows = grain.model.objects.all()
    if deltas_only:
        rows = rows.filter(compacted=False)
    found = {}
    for row in rows.values_list(*keys, *rollup_columns(grain)):
        key = (_epoch(row[0]), row[1] if grain.per_model else None)
        assert key not in found, (grain.model.__name__, key)  # One row per key and batch.
        found[key] = list(row[len(keys) :])
    return found


def _python_rows(logs) -> dict:
    hours = hour_rows(quarter_sums(logs))
    return {grain: grain_rows(grain, hours) for grain in GRAINS}


def _assert_batch_rows_equal_python_sums(logs, *, deltas_only: bool) -> None:
    expected = _python_rows(logs)
    for grain in GRAINS:
        stored = _rows_of(grain, deltas_only=deltas_only)
        wanted = expected[grain]
        assert set(stored) == set(wanted), grain.model.__name__
        for key, values in wanted.items():
            assert stored[key] == _approx_floats(values), (grain.model.__name__, key)


def _stored(batch) -> list[UsageLog]:
    """The batch's calls as the log holds them."""
    return list(UsageLog.objects.filter(id__in=[log.id for log in batch]).order_by("id"))


def test_a_batchs_rows_hold_the_python_sums_of_its_calls_in_every_declared_sum():
    logs = _stored(usage_record_batch(records=_records(0)))
    assert len(logs) == 24
    totals = expected_sums(logs)
    # Every sum is exercised but unconverted_calls (no rate missing here: tests/test_usage_reprice.py).
    zero = [s.name for s in ROLLUP_SUMS if not getattr(totals[s.name], "expected", totals[s.name])]  # approx: .expected
    assert zero == ["unconverted_calls"], totals
    assert any(log.cost is not None and log.cost.as_tuple().exponent <= -12 for log in logs)
    _assert_batch_rows_equal_python_sums(logs, deltas_only=connection.vendor == "postgresql")
    # And the Python sums themselves against the oracle (tests/rollup_oracle.py): the all-models day
    # rows added up hold every declared sum of the batch.
    day_rows = list(_rows_of(DAY_TOTAL_GRAIN, deltas_only=False).values())
    added = {s.name: sum((row[n] for row in day_rows), s.type.zero) for n, s in enumerate(ROLLUP_SUMS)}
    assert added == totals


def test_a_second_batch_over_the_same_buckets_adds_the_sums_of_its_own_calls():
    first = _stored(usage_record_batch(records=_records(0)))
    if connection.vendor == "postgresql":
        rollups_compact()  # What is left as delta rows is the second batch's.
    second = _stored(usage_record_batch(records=_records(1)))
    if connection.vendor == "postgresql":
        _assert_batch_rows_equal_python_sums(second, deltas_only=True)
        rollups_compact()
    _assert_batch_rows_equal_python_sums(first + second, deltas_only=False)


SQLITE_SCRIPT = """
import django
django.setup()
from ingest.services import usage_record_batch
from tests.test_rollup_batch_sums import _assert_batch_rows_equal_python_sums, _records, _stored
first = _stored(usage_record_batch(records=_records(0)))
_assert_batch_rows_equal_python_sums(first, deltas_only=False)
second = _stored(usage_record_batch(records=_records(1)))
_assert_batch_rows_equal_python_sums(first + second, deltas_only=False)
print("rows equal the Python sums", len(first) + len(second))
"""


@pytest.mark.slow
def test_on_sqlite_the_rows_batches_upsert_hold_the_python_sums_of_their_calls(tmp_path):
    """SQLite (bin/dev) sums batches in Python and upserts compacted rows: a real SQLite file, in a
    subprocess (the suite runs on PostgreSQL)."""
    database = tmp_path / "aicost.sqlite3"
    env = {**sqlite_environment(database), "AICOST_ENV_FILE": "/dev/null"}
    for args in (["manage.py", "migrate", "-v0"], ["-c", SQLITE_SCRIPT]):
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "rows equal the Python sums 48"
