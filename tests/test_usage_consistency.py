"""The usage log and what is derived from it agree, or the guard says so (aicost.W012); reconcile
never destroys the surviving record (issue 13, points 2 and 3). Real PostgreSQL, no mocks."""

import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.timeutils import month_bounds
from ingest.services import usage_record_batch
from schemaguard.checks import check_schema_matches_models
from schemaguard.guard import schema_health_forget, schema_report
from tests.counters import counters_set
from tests.metrics_helpers import samples, value
from tests.sqlite_process import sqlite_python
from usage import rollups
from usage.consistency import usage_consistency_read
from usage.models import UsageCounter, UsageLog, UsageLogGap, UsageRollupDaily
from usage.partitions import LOG_TABLE, add_months, month_of, partition_months
from usage.services import UsageRecordInput, usage_counters_reconcile

pytestmark = pytest.mark.django_db
W012 = "aicost.W012"
STATS = "/api/v1/ai-platforms/stats"
COUNTER_FIELDS = ("model_name", "total_calls", "total_cost", "current_month_cost", "current_month")


def _sql(statement: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _months_ago(months: int) -> date:
    return add_months(month_of(timezone.now()), -months)


def _at(month: date, day: int, hour: int = 12) -> datetime:
    """That hour, but never after now: ingestion refuses calls more than a day ahead."""
    return min(datetime(month.year, month.month, day, hour, tzinfo=UTC), timezone.now())


def _record(month: date, model_name: str, count: int, *, day: int = 3) -> None:
    usage_record_batch(
        records=[
            UsageRecordInput(
                model_name=model_name,
                prompt_tokens=1000 + i,
                completion_tokens=200,
                timestamp=_at(month, day, i % 20),
            )
            for i in range(count)
        ]
    )


def _now_in_month() -> datetime:
    """A moment of the current UTC month that is not in the future (the current TIME_ZONE month too)."""
    return timezone.now() - timedelta(minutes=5)


def _seed() -> dict[tuple[date, str], int]:
    """Three months of two priced models and an unknown one; the current month's calls are recent."""
    seeded = {(_months_ago(2), "gpt-4o"): 4, (_months_ago(1), "gpt-4o"): 3, (_months_ago(1), "gpt-4o-mini"): 5}
    for (month, name), count in seeded.items():
        _record(month, name, count)
    usage_record_batch(
        records=[
            UsageRecordInput(model_name=name, prompt_tokens=500, completion_tokens=50, timestamp=_now_in_month())
            for name in ("gpt-4o", "gpt-4o", "unknown-model")
        ]
    )
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # Deferred FK checks of the rows, before DROP or DELETE.
    return seeded


def _counters() -> list[tuple]:
    return list(UsageCounter.objects.order_by("model_name").values_list(*COUNTER_FIELDS))


def _w012() -> list:
    return [f for f in schema_report().findings if f.id == W012]


def _log_cost(month: date, name: str) -> Decimal:
    start, end = add_months(month, 0), add_months(month, 1)
    rows = _sql(
        f'SELECT coalesce(sum(cost), 0) FROM {LOG_TABLE} WHERE model_name = %s AND "timestamp" >= %s '  # noqa: S608
        'AND "timestamp" < %s',
        [name, start, end],
    )
    return rows[0][0]


def _run(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_info:
        return exit_info.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


# --- The quick check (schema guard) ---------------------------------------------------------------


def test_a_healthy_database_has_no_finding_and_readyz_lists_no_warning(client):
    _seed()
    assert _w012() == []
    assert client.get("/readyz").json() == {"status": "ready"}
    assert _run("usage_verify")[0] == 0
    assert usage_counters_reconcile(fix=False) == []


def test_the_incident_replay_is_a_w012_finding_with_months_models_and_amounts(client, staff_client):
    _seed()
    cost_2 = _log_cost(_months_ago(2), "gpt-4o")
    assert cost_2 > 0
    _sql(f"DROP TABLE {LOG_TABLE}")  # The incident: the table is gone, its migration still recorded.
    call_command("schema_repair", "--apply", stdout=StringIO())
    assert UsageLog.objects.count() == 0

    report = schema_report()
    assert report.healthy  # A warning: serving continues.
    (finding,) = [f for f in report.findings if f.id == W012]
    assert not finding.is_serious()
    assert "over 3 month(s)" in finding.msg
    assert "the log lacks 15 calls" in finding.msg
    assert f"{_months_ago(2):%Y-%m} gpt-4o 4 calls ({cost_2} USD)" in finding.msg
    assert f"{_months_ago(1):%Y-%m} gpt-4o-mini 5 calls (" in finding.msg
    assert f"{_months_ago(0):%Y-%m} unknown-model 1 call (0.000000000000000000000000 USD)" in finding.msg
    assert "usage_verify" in finding.hint
    assert "usage_reconcile --from-rollups --fix" in finding.hint
    assert W012 in {f.id for f in check_schema_matches_models(databases=["default"])}
    with pytest.raises(SystemCheckError, match=W012):
        call_command("check", "--deploy", "--database", "default", "--fail-level", "WARNING", stdout=StringIO())

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "warnings": [W012]}
    health = staff_client.get("/api/v1/admin/health/database").json()["data"]
    assert {"id": W012, "level": "warning"}.items() <= health["findings"][0].items()
    assert "the log lacks" in health["findings"][0]["message"]
    page = staff_client.get("/admin/ai-cost").content.decode()
    assert f'data-finding="{W012}"' in page  # The cost page's warnings banner, with the hint.
    assert "usage_reconcile --from-rollups --fix" in page
    schema_health_forget()
    scraped = samples(staff_client.get("/metrics").content.decode())
    assert value(scraped, "aicost_usage_log_consistent") == 0
    assert value(scraped, "aicost_schema_findings", id=W012, level="warning") == 1
    assert value(scraped, "aicost_schema_healthy") == 1


def test_the_quick_check_stays_quiet_while_rollup_rows_are_not_compacted():
    _seed()  # No compactor thread runs (tests/conftest.py): batches leave delta rows.
    _record(_months_ago(1), "gpt-4o", 7, day=9)
    assert UsageRollupDaily.objects.filter(compacted=False).exists()
    assert _w012() == []
    rollups.rollups_compact()
    _record(_months_ago(0), "gpt-4o-mini", 2, day=1)
    assert UsageRollupDaily.objects.filter(compacted=True).exists()
    assert UsageRollupDaily.objects.filter(compacted=False).exists()
    assert _w012() == []
    assert _run("usage_verify")[0] == 0


def test_the_month_counter_is_compared_over_the_local_month_in_any_zone():
    with override_settings(TIME_ZONE="Asia/Kathmandu"):  # UTC+5:45: the month starts at hh:15 UTC.
        month_from, _month_to = month_bounds(timezone.now())
        usage_record_batch(
            records=[
                UsageRecordInput(model_name="gpt-4o", prompt_tokens=1000, timestamp=month_from + timedelta(minutes=m))
                for m in (-20, -7, -1, 0, 1, 7, 20)
            ]
        )
        counter = UsageCounter.objects.get(model_name="gpt-4o")
        assert 0 < counter.current_month_cost < counter.total_cost  # Calls on both sides of the local month start.
        assert _w012() == []
        assert _run("usage_reconcile")[0] == 0
        counters_set(model_name="gpt-4o", current_month_cost=counter.total_cost)
        (finding,) = _w012()
        assert "gpt-4o.current_month_cost" in finding.msg


def test_a_drifted_counter_is_a_finding():
    _seed()
    counters_set(model_name="gpt-4o", total_calls=1)
    (finding,) = _w012()
    assert "gpt-4o.total_calls is 1, the rollups hold 9" in finding.msg
    assert "usage_reconcile --fix" in finding.hint  # Only counters drifted: no choice of truth to make.
    assert "--from-rollups" not in finding.hint
    code, out, _err = _run("usage_reconcile", "--fix")
    assert code == 0
    assert "gpt-4o.total_calls: counter 1, log 9, rollups 9 -> set 9" in out
    assert _w012() == []


def test_rows_added_behind_the_service_are_reported(staff_client):
    _seed()
    month = _months_ago(1)
    insert = (
        f"INSERT INTO {LOG_TABLE} (model_name, decision_id, prompt_tokens, completion_tokens, cached_tokens, "  # noqa: S608
        "reasoning_tokens, cost, reporting_cost, cost_source, success, error_message, purpose, timestamp) "
        "VALUES (%s, '', 1, 1, 0, 0, %s, %s, 'provider', true, '', '', %s)"
    )
    _sql(insert, ["gpt-4o", Decimal("0.5"), Decimal("0.5"), _at(month, 20)])  # A month and model the rollups hold.
    code, out, err = _run("usage_verify")
    assert code == 1
    assert f"{month:%Y-%m}  gpt-4o" in out
    assert "+1" in out
    assert "+0.50000000" in out
    assert "month/model pair(s)" in err
    assert _w012() == []  # Not seen without counting the log: usage_verify is the full check.

    _sql(insert, ["rogue-model", Decimal("2"), Decimal("2"), _at(month, 21)])  # A model the rollups never saw.
    (finding,) = _w012()
    assert "the log holds 1 call (2.000000000000000000000000 USD) more than the rollups" in finding.msg
    assert f"({month:%Y-%m} rogue-model 1 call (2.000000000000000000000000 USD))" in finding.msg
    code, out, _err = _run("usage_reconcile")
    assert code == 1
    assert "Rows the rollups do not hold" in out
    two = "2.000000000000000000000000"
    assert f"{month:%Y-%m} rogue-model: the log holds 1 call ({two} USD) more than the rollups" in out
    with pytest.raises(CommandError, match="Refusing --fix"):
        call_command("usage_reconcile", "--fix", stdout=StringIO(), stderr=StringIO())
    code, out, _err = _run("usage_reconcile", "--from-log", "--fix")
    assert code == 0
    assert _w012() == []
    assert UsageCounter.objects.get(model_name="gpt-4o").total_calls == 10  # The added call is counted.
    assert _run("usage_verify")[0] == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_ingestion_never_makes_a_false_finding():
    _seed()
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            day = 1
            while not stop.is_set():
                _record(_months_ago(day % 3), "gpt-4o-mini" if day % 2 else "gpt-4o", 25, day=1 + day % 27)
                day += 1
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    writers = [threading.Thread(target=ingest) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 4
        checks = 0
        while time.monotonic() < deadline:
            assert _w012() == [], "a consistency finding during normal ingestion"
            checks += 1
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    assert errors == []
    assert checks > 3
    assert _run("usage_verify")[0] == 0


# --- usage_reconcile after rows were lost --------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_from_rollups_fix_during_ingestion_records_exactly_the_lost_rows():
    _seed()
    _lose_month(_months_ago(2))  # gpt-4o's 4 calls of that month.
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest(index: int) -> None:
        try:
            while not stop.is_set():
                _record(_months_ago(index), "gpt-4o" if index else "gpt-4o-mini", 20, day=2)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    writers = [threading.Thread(target=ingest, args=(index,)) for index in (0, 1)]
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.5)
        code, _out, err = _run("usage_reconcile", "--from-rollups", "--fix")
        time.sleep(0.5)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    assert errors == []
    assert code == 0, err
    gap = UsageLogGap.objects.get()  # Batches committing meanwhile were never taken for lost rows.
    assert (gap.month, gap.model_name, gap.calls) == (_months_ago(2), "gpt-4o", 4)
    assert _run("usage_verify")[0] == 0
    assert _w012() == []


def _lose_month(month: date) -> None:
    start, end = add_months(month, 0), add_months(month, 1)
    _sql(f'DELETE FROM {LOG_TABLE} WHERE "timestamp" >= %s AND "timestamp" < %s', [start, end])  # noqa: S608


def test_reconcile_names_the_lost_periods_and_refuses_fix_alone():
    _seed()
    _lose_month(_months_ago(1))
    before = _counters()
    code, out, err = _run("usage_reconcile")
    assert code == 1
    assert "Rows lost: the log holds fewer calls than the rollups" in out
    assert f"{_months_ago(1):%Y-%m} gpt-4o: the log lacks 3 calls" in out
    assert f"{_months_ago(1):%Y-%m} gpt-4o-mini: the log lacks 5 calls" in out
    assert "gpt-4o.total_calls: counter 9, log 6, rollups 9" in out
    assert "choose --from-rollups --fix or --from-log --fix" in err
    with pytest.raises(CommandError, match=r"Refusing --fix.*Nothing was changed"):
        call_command("usage_reconcile", "--fix", stdout=StringIO(), stderr=StringIO())
    assert _counters() == before
    assert not UsageLogGap.objects.exists()


def test_from_rollups_fix_keeps_counters_and_stats_records_the_gap_and_clears_the_finding(staff_client):
    _seed()
    stats_before = staff_client.get(STATS, {"time_range": "all"}).json()["data"]["summary"]
    counters_before = _counters()
    lost_cost = _log_cost(_months_ago(1), "gpt-4o-mini")
    _lose_month(_months_ago(1))
    assert _w012()

    code, out, _err = _run("usage_reconcile", "--from-rollups")  # A dry run first.
    assert code == 1
    assert f"would record lost rows: {_months_ago(1):%Y-%m} gpt-4o-mini 5 calls, {lost_cost} USD" in out
    assert "-> would set" not in out  # The counters already hold the rollups' figures.
    assert not UsageLogGap.objects.exists()
    code, out, _err = _run("usage_reconcile", "--from-rollups", "--fix")
    assert code == 0
    assert f"recorded lost rows: {_months_ago(1):%Y-%m} gpt-4o-mini 5 calls, {lost_cost} USD" in out
    assert "LOWERED" not in out
    gap = UsageLogGap.objects.get(month=_months_ago(1), model_name="gpt-4o-mini")
    assert (gap.calls, gap.cost) == (5, lost_cost)

    assert _counters() == counters_before
    assert staff_client.get(STATS, {"time_range": "all"}).json()["data"]["summary"] == stats_before
    assert _w012() == []
    assert _run("usage_verify")[0] == 0
    assert _run("usage_reconcile") == (0, "Counters equal the log, and the log agrees with its rollups.\n", "")
    assert usage_consistency_read(full=False).consistent

    # Retention counts the recorded gap when it compares a month with its rollups.
    code, out, err = _run("usage_retention", "--keep-months", "1", "--apply")
    assert code == 0, err
    assert f"dropped {_months_ago(1):%Y-%m} (0 rows)" in out
    assert _months_ago(1) not in partition_months(connection)
    assert _run("usage_verify")[0] == 0
    assert _counters() == counters_before


def test_from_log_fix_rebuilds_lowers_the_counters_and_prints_each_lowered_figure(staff_client):
    _seed()
    _lose_month(_months_ago(0))
    current = UsageCounter.objects.get(model_name="gpt-4o")
    assert current.current_month_cost > 0
    code, out, _err = _run("usage_reconcile", "--from-log")  # Dry run: says what would fall.
    assert code == 1
    assert f"LOWERED (would be): gpt-4o.current_month_cost {current.current_month_cost} -> 0" in out
    assert UsageCounter.objects.get(model_name="gpt-4o").current_month_cost == current.current_month_cost

    code, out, _err = _run("usage_reconcile", "--from-log", "--fix")
    assert code == 0
    assert f"LOWERED: gpt-4o.current_month_cost {current.current_month_cost} -> 0" in out
    assert "budget use (the model's and the global budget's) falls" in out
    assert f"LOWERED: gpt-4o.total_calls {current.total_calls} -> {current.total_calls - 2}" in out
    assert "rebuilt the rollups from" in out
    after = UsageCounter.objects.get(model_name="gpt-4o")
    assert (after.total_calls, after.current_month_cost) == (7, 0)
    assert staff_client.get(STATS, {"time_range": "all"}).json()["data"]["summary"]["total_calls"] == 12
    assert _w012() == []
    assert _run("usage_verify")[0] == 0


def test_from_log_removes_the_gaps_of_rebuilt_months():
    _seed()
    _lose_month(_months_ago(2))
    call_command("usage_reconcile", "--from-rollups", "--fix", stdout=StringIO())
    assert UsageLogGap.objects.count() == 1
    code, out, _err = _run("usage_reconcile", "--from-log", "--fix")
    assert code == 0
    assert "removed 1 recorded gap(s)" in out
    assert not UsageLogGap.objects.exists()
    assert UsageCounter.objects.get(model_name="gpt-4o").total_calls == 5
    assert _w012() == []


def test_from_log_keeps_the_rollups_and_totals_of_retired_months(staff_client):
    _seed()
    call_command("usage_retention", "--keep-months", "2", "--apply", stdout=StringIO())  # Drops month -2.
    assert _months_ago(2) not in partition_months(connection)
    _lose_month(_months_ago(1))
    code, out, _err = _run("usage_reconcile", "--from-log", "--fix")
    assert code == 0
    assert "LOWERED: gpt-4o.total_calls 9 -> 6" in out  # 4 retired + 2 this month; month -1's 3 are gone.
    summary = staff_client.get(STATS, {"time_range": "all"}).json()["data"]["summary"]
    assert summary["total_calls"] == 4 + 3  # The retired month's rollups stay; this month's 3 calls.
    assert _w012() == []
    assert _run("usage_verify")[0] == 0


def test_the_quick_check_never_counts_the_log():
    _seed()
    counters_set(model_name="gpt-4o", total_calls=0)  # A finding, to run every path.
    _sql(
        f"INSERT INTO {LOG_TABLE} (model_name, decision_id, prompt_tokens, completion_tokens, cached_tokens, "  # noqa: S608
        "reasoning_tokens, cost, cost_source, success, error_message, purpose, timestamp) "
        "VALUES ('rogue-model', '', 1, 1, 0, 0, NULL, 'unpriced', true, '', '', %s)",
        [_at(_months_ago(1), 5)],
    )
    with CaptureQueriesContext(connection) as queries:
        (finding,) = _w012()
    assert "rogue-model" in finding.msg
    assert "gpt-4o.total_calls is 0" in finding.msg
    log_reads = [q["sql"] for q in queries.captured_queries if f"FROM {LOG_TABLE}" in q["sql"]]
    assert log_reads
    for sql in log_reads:  # Index probes (a skip scan of model_name), or at most the first rows of a month.
        assert "min(model_name)" in sql or "LIMIT" in sql, sql


def test_bad_input_is_a_clear_error():
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("usage_reconcile", "--from-log", "--from-rollups", "--fix", stdout=StringIO())
    for month in ("2026-13", "2026/11", "november"):
        with pytest.raises(CommandError, match="--month must be YYYY-MM"):
            call_command("usage_verify", "--month", month, stdout=StringIO())


def test_verify_one_month():
    _seed()
    _lose_month(_months_ago(2))
    code, out, _err = _run("usage_verify", "--month", f"{_months_ago(1):%Y-%m}")
    assert code == 0
    assert "agree over" in out
    code, out, _err = _run("usage_verify", "--month", f"{_months_ago(2):%Y-%m}")
    assert code == 1
    assert f"{_months_ago(2):%Y-%m}  gpt-4o" in out
    assert "-4" in out
    assert "Counters not checked" in out


# --- SQLite, the local default ---------------------------------------------------------------------

SQLITE_REPLAY = """
import django
django.setup()
from io import StringIO
from datetime import timedelta
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from schemaguard.guard import schema_report
from pricing.models import ModelPricing
from usage.models import UsageCounter, UsageLog, UsageLogGap
from ingest.services import usage_record_batch
from usage.services import UsageRecordInput

call_command("migrate", verbosity=0)
now = timezone.now()
usage_record_batch(records=[
    UsageRecordInput(model_name=name, prompt_tokens=1000, completion_tokens=100,
                     timestamp=now - timedelta(days=d, hours=1))
    for d in (0, 1, 40, 70) for name in ("gpt-4o", "gpt-4o-mini", "unknown-model")
])
assert not [f for f in schema_report().findings if f.id == "aicost.W012"]
counters = list(UsageCounter.objects.order_by("model_name").values_list("model_name", "total_calls", "total_cost",
                                                                          "current_month_cost"))
client = Client()
stats = lambda: client.get("/api/v1/ai-platforms/stats?time_range=all", HTTP_X_API_KEY=raw).json()["data"]["summary"]
from usage.keys import api_key_create
from usage.models import ApiKeyScope
_key, raw = api_key_create(name="t", scope=ApiKeyScope.READ)
before = stats()  # Calls an hour old or more: the stats read them from the rollups, not the log's last minutes.

with connection.cursor() as cursor:
    cursor.execute("DROP TABLE ai_model_usage_log")  # The incident, its migration still recorded.
connection.disable_constraint_checking()
with connection.schema_editor() as editor:
    editor.create_model(UsageLog)
connection.enable_constraint_checking()

report = schema_report()
assert report.healthy
(finding,) = [f for f in report.findings if f.id == "aicost.W012"]
assert "the log lacks" in finding.msg and "gpt-4o-mini" in finding.msg, finding.msg
assert client.get("/readyz").json() == {"status": "ready", "warnings": ["aicost.W012"]}

out = StringIO()
try:
    call_command("usage_reconcile", "--fix", stdout=out, stderr=StringIO())
    raise AssertionError("--fix alone must refuse")
except Exception as error:
    assert "Refusing --fix" in str(error), error
call_command("usage_reconcile", "--from-rollups", "--fix", stdout=out)
assert "recorded lost rows" in out.getvalue(), out.getvalue()
assert "LOWERED" not in out.getvalue()
assert UsageLogGap.objects.count() >= 3
assert list(UsageCounter.objects.order_by("model_name").values_list("model_name", "total_calls", "total_cost",
                                                                      "current_month_cost")) == counters
assert stats() == before
report = schema_report()
assert report.healthy, [f.msg for f in report.findings]
assert not report.findings, [f.msg for f in report.findings]
call_command("usage_verify", stdout=StringIO())
print("sqlite replay ok")
"""


@pytest.mark.slow
def test_the_incident_replay_on_sqlite_finding_then_from_rollups_fix_then_healthy(tmp_path):
    result = sqlite_python(tmp_path / "local.sqlite3", "-c", SQLITE_REPLAY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite replay ok" in result.stdout
