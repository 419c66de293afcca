"""Read replica routing: the stats, trend and export reads run on `replica`; ingestion, admin and the
schema guard stay on default.

The `replica` alias (tests/conftest.py) is a second connection to default's test database, so the
queries each connection runs show where a read was routed.
"""

import json
import os
import re
import subprocess
import sys
from datetime import UTC, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.db_routers import REPLICA, ReplicaRouter, reading_from_replica, replica_probe
from ingest.services import usage_record_batch
from pricing.models import ModelPricing
from schemaguard.guard import schema_report
from usage.models import ApiKey, UsageIdempotencyKey, UsageLog, UsageRollupDaily, UsageRollupHour
from usage.services import UsageRecordInput

STATS = "/api/v1/ai-platforms/stats"
TREND = "/api/v1/ai-platforms/cost-trend-daily"
EXPORT = "/api/v1/usage/export.csv"
REPORT_TABLES = ("ai_model_usage_log", "ai_usage_rollup_1h", "ai_usage_rollup_daily", "ai_model_pricing")
ROLLUP_TABLES = (
    "ai_usage_rollup_1h",
    "ai_usage_rollup_1h_total",
    "ai_usage_rollup_daily",
    "ai_usage_rollup_daily_total",
)
both_databases = pytest.mark.django_db(transaction=True, serialized_rollback=True, databases=["default", REPLICA])


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = ["core.db_routers.ReplicaRouter"]
    yield
    connections[REPLICA].close()  # Else the test database cannot be dropped at the end of the run.


@pytest.fixture
def seeded():
    now = timezone.now()
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=1000, timestamp=now - timedelta(minutes=5)),
            UsageRecordInput(
                model_name="gpt-4o-mini", prompt_tokens=1000, user_id=3, timestamp=now - timedelta(days=2)
            ),
            UsageRecordInput(model_name="deepseek-chat", prompt_tokens=1000, timestamp=now - timedelta(days=3)),
        ]
    )


def _sql(captured: CaptureQueriesContext) -> str:
    return "\n".join(query["sql"] for query in captured.captured_queries)


def _tables_in(sql: str, tables=REPORT_TABLES) -> set[str]:
    """The tables named in `sql`, quoted (the ORM) or not (raw SQL)."""
    return {table for table in tables if re.search(rf'(?<![\w"])"?{table}"?(?![\w"])', sql)}


def _get_on_both(client, url: str, params: dict):
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        response = client.get(url, params)
        body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200, body
    return body, _sql(on_replica), _sql(on_default)


def _hour_rows_in_today_so_far() -> bool:
    """Whether the UTC day so far holds a whole quarter-hour (read from the hour rollup's rows); in
    its first 15 minutes, the part of today "all" reads comes from the raw log alone."""
    now = timezone.now().astimezone(UTC)
    return now.hour > 0 or now.minute >= 15


@both_databases
@pytest.mark.parametrize(
    ("params", "tables"),
    [
        # All time: daily and 15-minute rollups plus the raw log's unaligned edge; pricing for the names.
        ({"time_range": "all"}, set(REPORT_TABLES)),
        # A provider filter resolves model names from the prices; user_id forces the raw log (the
        # budget columns' month spend, whole UTC days of a UTC month, still comes from the day rollup).
        (
            {"time_range": "7d", "provider": "OpenAI", "user_id": 3},
            {"ai_model_usage_log", "ai_model_pricing", "ai_usage_rollup_daily"},
        ),
    ],
)
def test_stats_read_from_the_replica(routed, seeded, reader, params, tables):
    if params["time_range"] == "all" and not _hour_rows_in_today_so_far():
        tables = tables - {"ai_usage_rollup_1h"}
    body, on_replica, on_default = _get_on_both(reader, STATS, params)
    assert json.loads(body)["data"]["summary"]["total_calls"] == (3 if "user_id" not in params else 1)
    assert _tables_in(on_replica) == tables
    assert _tables_in(on_default) == set()
    assert '"ai_api_key"' in on_default  # Authentication is not a report: it stays on default.
    assert '"ai_api_key"' not in on_replica


@both_databases
def test_trend_reads_from_the_replica(routed, seeded, reader):
    body, on_replica, on_default = _get_on_both(reader, TREND, {"days": 7, "tz": "Asia/Kathmandu"})
    assert sum(day["calls"] for day in json.loads(body)["data"]["daily_trend"]) == 3
    assert _tables_in(on_replica, ROLLUP_TABLES)
    assert _tables_in(on_default, ROLLUP_TABLES + REPORT_TABLES) == set()


@both_databases
def test_export_streams_from_the_replica(routed, seeded, reader):
    body, on_replica, on_default = _get_on_both(reader, EXPORT, {"time_range": "30d", "provider": "OpenAI"})
    assert body.decode().count("\r\n") == 1 + 2
    assert "DECLARE" in on_replica  # The server-side cursor, on the replica's connection.
    assert _tables_in(on_replica) == {"ai_model_usage_log", "ai_model_pricing"}
    assert _tables_in(on_default) == set()


@both_databases
def test_ingestion_admin_and_schema_guard_stay_on_default(routed, writer, staff_client):
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        posted = writer.post("/api/v1/usage/", {"model_name": "gpt-4o", "prompt_tokens": 10}, format="json")
        changelist = staff_client.get(reverse("admin:usage_usagelog_changelist"))
        exported = staff_client.post(
            reverse("admin:usage_usagelog_changelist"),
            {"action": "export_csv", "index": 0, "_selected_action": [UsageLog.objects.get().pk]},
        )
        exported_rows = b"".join(exported.streaming_content).decode().count("\r\n") - 1
        report = schema_report()
    assert (posted.status_code, changelist.status_code, exported.status_code) == (201, 200, 200)
    assert exported_rows == 1
    assert report.healthy
    assert on_replica.captured_queries == []
    assert {"ai_model_usage_log", "ai_model_pricing"} <= _tables_in(_sql(on_default))


# --- The router alone, and the settings that install it -------------------------------------------


@pytest.fixture
def replica_alias(django_db_modify_db_settings, monkeypatch):
    """The router's own choices, without a database: the replica answers its probe (the probe and the
    fallback are tested against a real standby in tests/test_replica_streaming.py)."""
    assert REPLICA in django_settings.DATABASES
    monkeypatch.setattr(replica_probe, "available", lambda: True)


def test_router_sends_only_report_reads_of_report_models_to_the_replica(replica_alias):
    router = ReplicaRouter()
    assert router.db_for_read(UsageLog) is None
    with reading_from_replica():
        for model in (UsageLog, UsageRollupHour, UsageRollupDaily, ModelPricing):
            assert router.db_for_read(model) == REPLICA
        for model in (ApiKey, UsageIdempotencyKey):
            assert router.db_for_read(model) is None
        assert router.db_for_write(UsageLog) is None
    assert router.db_for_read(UsageLog) is None


def test_the_replica_context_is_left_on_errors_and_nests(replica_alias):
    router = ReplicaRouter()
    with pytest.raises(RuntimeError), reading_from_replica():
        raise RuntimeError
    assert router.db_for_read(UsageLog) is None
    with reading_from_replica():
        with reading_from_replica():
            pass
        assert router.db_for_read(UsageLog) == REPLICA


def test_nothing_is_migrated_on_the_replica():
    router = ReplicaRouter()
    assert router.allow_migrate(REPLICA, "usage", model_name="usagelog") is False
    assert router.allow_migrate("default", "usage", model_name="usagelog") is None


def test_router_without_a_replica_alias_keeps_reads_on_default(replica_alias, monkeypatch):
    monkeypatch.delitem(django_settings.DATABASES, REPLICA)
    with reading_from_replica():
        assert ReplicaRouter().db_for_read(UsageLog) is None


SETTINGS_PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.db import router
from core.db_routers import reading_from_replica
from usage.models import ApiKey, UsageLog
with reading_from_replica():
    routed = {"usage_log": router.db_for_read(UsageLog), "api_key": router.db_for_read(ApiKey)}
print(json.dumps({
    "aliases": sorted(settings.DATABASES),
    "routers": settings.DATABASE_ROUTERS,
    "replica": settings.DATABASES.get("replica"),
    "report_read": routed,
    "write": router.db_for_write(UsageLog),
}))
"""


def _settings_with(**environment) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_REPLICA_URL"}
    env.update(DJANGO_SETTINGS_MODULE="aicost.settings", **environment)
    completed = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_without_database_replica_url_everything_reads_default():
    probed = _settings_with()
    assert probed["aliases"] == ["default"]
    assert probed["routers"] == []
    assert probed["report_read"] == {"usage_log": "default", "api_key": "default"}


def test_database_replica_url_adds_the_alias_and_the_router():
    probed = _settings_with(DATABASE_REPLICA_URL="postgres://reader:secret@replica.internal:5433/aicost")
    assert probed["aliases"] == ["default", "replica"]
    assert probed["routers"] == ["core.db_routers.ReplicaRouter"]
    replica = probed["replica"]
    assert (replica["HOST"], replica["PORT"], replica["NAME"], replica["USER"]) == (
        "replica.internal",
        5433,
        "aicost",
        "reader",
    )
    assert replica["TEST"]["MIRROR"] == "default"
    assert replica["OPTIONS"]["connect_timeout"] == 2  # An unreachable replica is given up on quickly.
    # replica.internal does not answer the router's probe, so even the report read falls back to default
    # (with a replica that answers it goes there: the tests above, and tests/test_replica_streaming.py).
    assert probed["report_read"] == {"usage_log": "default", "api_key": "default"}
    assert probed["write"] == "default"
