"""The README's first command runs on SQLite (no DATABASE_URL). The suite itself runs on
PostgreSQL, so this drives a SQLite setup in a separate process: migrate, the demo data, the
schema guard, and the pages and APIs a local user opens first."""

from pathlib import Path

import pytest

from tests.sqlite_process import sqlite_python

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.contrib.auth import get_user_model
from schemaguard.guard import schema_report

call_command("migrate", verbosity=0)
call_command("demo_setup", days=3, calls_per_day=40)
report = schema_report()
assert report.healthy, [f.msg for f in report.findings]
client = Client()
client.force_login(get_user_model().objects.get(username="admin"))
for path in ("/admin/ai-cost", "/api/v1/ai-platforms/stats?time_range=all",
             "/api/v1/ai-platforms/cost-trend-daily?days=7", "/api/v1/usage/export.csv?time_range=7d",
             "/readyz"):
    status = client.get(path).status_code
    assert status == 200, (path, status)
stats = client.get("/api/v1/ai-platforms/stats?time_range=all").json()["data"]["summary"]
from usage.models import UsageLog
assert stats["total_calls"] == UsageLog.objects.count() > 0, stats
trend = client.get("/api/v1/ai-platforms/cost-trend-daily?days=7&tz=Asia/Kathmandu").json()["data"]
call_command("usage_rollups_rebuild", verbosity=0)
assert client.get("/api/v1/ai-platforms/cost-trend-daily?days=7&tz=Asia/Kathmandu").json()["data"] == trend

# Every declared rollup sum, per model and per local day, against the log worked out independently.
from datetime import timedelta
from zoneinfo import ZoneInfo
from decimal import Decimal
import pytest
from tests import rollup_oracle
from tests.rollup_oracle import sums_of

# SQLite sums decimals as floating point: money is exact to about 15 significant digits there
# (README, Money), and converted costs carry 24 places.
def expected_sums(logs):
    return {
        name: pytest.approx(value, rel=Decimal("1e-13"), abs=Decimal("1e-20")) if isinstance(value, Decimal) else value
        for name, value in rollup_oracle.expected_sums(logs).items()
    }
from usage.rollups import quarter_hour_floor
from ingest.services import usage_record_batch
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters, usage_sums_by_local_day, usage_sums_by_model, usage_sums_by_window

newest = UsageLog.objects.latest("timestamp").timestamp
usage_record_batch(records=[
    UsageRecordInput(model_name=name, timestamp=newest - timedelta(minutes=7 * n), prompt_tokens=900 + n,
                     cached_tokens=300 + n, completion_tokens=500 + n, reasoning_tokens=n, response_time=n / 8)
    for n, name in enumerate(["gpt-4o", "deepseek-reasoner", "not-in-pricing"] * 5)
])


def check_every_sum():
    logs = list(UsageLog.objects.all())
    end = quarter_hour_floor(max(log.timestamp for log in logs)) + timedelta(minutes=15)
    by_model = usage_sums_by_model(start=None, end=end, filters=UsageFilters())
    models = {log.model_name for log in logs}
    assert {m: sums_of(s) for m, s in by_model.items()} == {
        m: expected_sums(log for log in logs if log.model_name == m) for m in models
    }
    zone = ZoneInfo("Asia/Kathmandu")
    local_days = {log.timestamp.astimezone(zone).date() for log in logs}
    first = min(local_days)
    by_day = usage_sums_by_local_day(first_day=first, days=(max(local_days) - first).days + 1, zone=zone,
                                     filters=UsageFilters())
    assert {d: sums_of(s) for d, s in by_day.items() if s.calls} == {
        d: expected_sums(log for log in logs if log.timestamp.astimezone(zone).date() == d) for d in local_days
    }
    # Boundaries off the quarter hour (the raw log's edges), with a model filter.
    oldest = min(log.timestamp for log in logs)
    boundaries = [oldest + timedelta(hours=h, seconds=7, microseconds=123) for h in (0, 5, 29, 30)] + [end]
    user_id = max((log.user_id for log in logs if log.user_id), default=None)
    two = {"gpt-4o", "not-in-pricing"}
    for chosen, passes in [
        (UsageFilters(model_names=frozenset(two)), lambda log: log.model_name in two),
        (UsageFilters(user_id=user_id), lambda log: log.user_id == user_id),  # from the log alone
    ]:
        windows = usage_sums_by_window(boundaries=boundaries, filters=chosen)
        for start, stop, window in zip(boundaries, boundaries[1:], windows):
            inside = [log for log in logs if start <= log.timestamp < stop and passes(log)]
            names = {log.model_name for log in inside}
            assert {m: sums_of(s) for m, s in window.items()} == {
                m: expected_sums(log for log in inside if log.model_name == m) for m in names
            }


check_every_sum()  # As batches upserted them (SQLite writes the rollups directly).
call_command("usage_rollups_rebuild", verbosity=0)
check_every_sum()
print("sqlite ok")
"""


@pytest.mark.slow
def test_the_local_service_runs_on_sqlite_with_demo_data(tmp_path):
    result = sqlite_python(tmp_path / "local.sqlite3", "-c", SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite ok" in result.stdout


UPSERT_SCRIPT = """
import django
django.setup()
from datetime import UTC, datetime, timedelta
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count
from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums, sums_of
from usage.models import UsageLog
from usage.rollups import GRAINS, rollups_compact, rollups_compactor_running
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters, usage_sums_by_model

call_command("migrate", verbosity=0)
assert settings.AICOST_ROLLUP_COMPACT_SECONDS == 1  # Finite: PostgreSQL would start a compactor here.
base = datetime(2026, 3, 7, 23, 40, tzinfo=UTC)
for batch in range(3):  # The same hours and models each time: upserts into the same rows.
    usage_record_batch(records=[
        UsageRecordInput(model_name=["gpt-4o", "not-in-pricing"][n % 2],
                         timestamp=base + timedelta(minutes=9 * n + batch), prompt_tokens=800 + n,
                         cached_tokens=n, completion_tokens=70 + n, reasoning_tokens=n % 3,
                         response_time=n / 4, success=n % 5 != 0)
        for n in range(20)
    ])
for grain in GRAINS:
    keys = [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]
    assert not grain.model.objects.filter(compacted=False).exists(), grain
    assert not grain.model.objects.values(*keys).annotate(n=Count("pk")).filter(n__gt=1).exists(), grain
assert not rollups_compactor_running()  # No background work on SQLite.
assert rollups_compact() == 0
logs = list(UsageLog.objects.all())
sums = usage_sums_by_model(start=None, end=base + timedelta(days=1), filters=UsageFilters())
assert {m: sums_of(s) for m, s in sums.items()} == {
    m: expected_sums(log for log in logs if log.model_name == m) for m in {log.model_name for log in logs}
}
print("upserts ok")
"""


def test_sqlite_batches_upsert_compacted_rows_and_the_sums_are_exact(tmp_path):
    result = sqlite_python(tmp_path / "upserts.sqlite3", "-c", UPSERT_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "upserts ok" in result.stdout
