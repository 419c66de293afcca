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
from aicost.schema_guard import schema_report

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
print("sqlite ok")
"""


@pytest.mark.slow
def test_the_local_service_runs_on_sqlite_with_demo_data(tmp_path):
    result = sqlite_python(tmp_path / "local.sqlite3", "-c", SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite ok" in result.stdout
