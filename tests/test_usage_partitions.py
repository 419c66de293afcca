"""The usage log on PostgreSQL: partitioned by UTC month, partitions made ahead and on demand,
old months dropped whole by retention while the stats and the counters stay exact."""

import threading
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from ingest.services import usage_record, usage_record_batch
from schemaguard.checks import check_schema_matches_models
from usage.models import UsageLog, UsageRetiredMonth, UsageRollupDaily
from usage.partitions import LOG_TABLE, add_months, is_partitioned, month_of, partition_months, partition_name
from usage.rollups import rollups_compact
from usage.services import UsageRecordInput, usage_counters_reconcile

pytestmark = pytest.mark.django_db
STATS = "/api/v1/ai-platforms/stats"


def _sql(statement: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _month_ago(months: int) -> date:
    return add_months(month_of(timezone.now()), -months)


def _at(month: date, day: int = 10) -> datetime:
    """Noon of that day, but never after now: ingestion refuses calls more than a day ahead."""
    return min(datetime(month.year, month.month, day, 12, tzinfo=UTC), timezone.now())


def _ids() -> set[str]:
    return {f.id for f in check_schema_matches_models(databases=["default"])}


def test_the_log_is_range_partitioned_by_month_with_the_partition_key_in_its_primary_key():
    assert is_partitioned(connection)
    (strategy, key), *_ = _sql(
        "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = %s::regclass",
        [LOG_TABLE],
    )
    assert (strategy, key) == ("r", "timestamp")
    (primary_key,) = _sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
        [LOG_TABLE],
    )[0]
    assert primary_key == 'PRIMARY KEY ("timestamp", id)'
    current = month_of(timezone.now())
    assert set(partition_months(connection)) >= {current, add_months(current, 1), add_months(current, 3)}


def test_a_call_in_a_month_without_partition_gets_one_and_the_orm_still_works():
    old_month = date(2019, 3, 1)
    assert old_month not in partition_months(connection)
    log = usage_record(model_name="gpt-4o", prompt_tokens=100, completion_tokens=10, timestamp=_at(old_month))
    assert old_month in partition_months(connection)
    assert _sql(f"SELECT count(*) FROM {partition_name(old_month)}") == [(1,)]  # noqa: S608
    fetched = UsageLog.objects.get(pk=log.pk)  # Lookups by id alone still work.
    assert fetched.timestamp == _at(old_month)
    fetched.purpose = "edited"
    fetched.save(update_fields=["purpose"])
    assert UsageLog.objects.get(pk=log.pk).purpose == "edited"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_writers_into_a_new_month_create_its_partition_once():
    month = date(2018, 7, 1)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            usage_record_batch(
                records=[
                    UsageRecordInput(model_name="gpt-4o", prompt_tokens=index, timestamp=_at(month, 1 + i))
                    for i in range(20)
                ]
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert partition_months(connection).count(month) == 1
    assert _sql(f"SELECT count(*) FROM {partition_name(month)}") == [(120,)]  # noqa: S608


def test_the_guard_warns_about_a_missing_future_partition_and_cron_or_repair_makes_it():
    future = add_months(month_of(timezone.now()), 2)
    _sql(f"DROP TABLE {partition_name(future)}")
    findings = check_schema_matches_models(databases=["default"])
    assert [f.id for f in findings] == ["aicost.W011"]
    assert f"{future:%Y-%m}" in findings[0].msg
    assert "usage_partitions" in findings[0].hint
    out = StringIO()
    call_command("usage_partitions", stdout=out)
    assert f"created partition for {future:%Y-%m}" in out.getvalue()
    assert _ids() == set()

    _sql(f"DROP TABLE {partition_name(future)}")
    call_command("schema_repair", "--apply", stdout=StringIO())
    assert _ids() == set()


def test_a_plain_table_in_place_of_the_partitioned_log_is_an_error():
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql(f"DROP TABLE {LOG_TABLE}")
    with connection.schema_editor() as editor:
        editor.create_model(UsageLog)
    assert "aicost.E010" in _ids()


def _seed_three_months() -> dict[date, int]:
    months = {_month_ago(5): 3, _month_ago(4): 2, _month_ago(0): 4}
    for month, count in months.items():
        usage_record_batch(
            records=[
                UsageRecordInput(
                    model_name=name, prompt_tokens=1000, completion_tokens=100, timestamp=_at(month, 1 + i)
                )
                for i in range(count)
                for name in ("gpt-4o", "unknown-model")
            ]
        )
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # Deferred FK checks of this test's rows, before any DROP.
    return months


def test_retention_dry_run_changes_nothing(staff_client):
    _seed_three_months()
    out = StringIO()
    call_command("usage_retention", "--keep-months", "3", stdout=out)
    assert f"would drop {_month_ago(5):%Y-%m}" in out.getvalue()
    assert f"would drop {_month_ago(4):%Y-%m}" in out.getvalue()
    assert "Dry run" in out.getvalue()
    assert UsageLog.objects.count() == 18


def test_retention_drops_old_months_and_keeps_rollups_stats_and_counters_exact(staff_client):
    months = _seed_three_months()
    before = staff_client.get(STATS, {"time_range": "all"}).json()["data"]
    rollup_rows = UsageRollupDaily.objects.count()
    out = StringIO()
    call_command("usage_retention", "--keep-months", "3", "--apply", stdout=out)
    assert f"dropped {_month_ago(5):%Y-%m} (6 rows)" in out.getvalue()
    assert f"dropped {_month_ago(4):%Y-%m} (4 rows)" in out.getvalue()
    assert _month_ago(5) not in partition_months(connection)
    assert UsageLog.objects.count() == 2 * months[_month_ago(0)]
    assert UsageRollupDaily.objects.count() == rollup_rows  # Rollups are never dropped.
    assert staff_client.get(STATS, {"time_range": "all"}).json()["data"]["summary"] == before["summary"]
    assert UsageRetiredMonth.objects.filter(month=_month_ago(5), model_name="gpt-4o").get().calls == 3
    assert usage_counters_reconcile(fix=False) == []  # Counters = what the log holds + what was retired.
    assert _ids() == set()


def test_retention_keeps_a_month_whose_rollups_do_not_match():
    _seed_three_months()
    rollups_compact()
    start = _month_ago(5)
    UsageRollupDaily.objects.filter(day__gte=start, day__lt=add_months(start, 1)).delete()
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("usage_retention", "--keep-months", "3", "--apply", stdout=StringIO(), stderr=err)
    assert f"kept {start:%Y-%m}" in err.getvalue()
    assert "usage_rollups_rebuild" in err.getvalue()
    assert start in partition_months(connection)
    assert _month_ago(4) not in partition_months(connection)


def test_retention_refuses_to_drop_the_current_month():
    with pytest.raises(Exception, match="at least 1"):
        call_command("usage_retention", "--keep-months", "0", stdout=StringIO())


def test_the_migration_keeps_rows_both_ways():
    log = usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=1, timestamp=timezone.now())
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate([("usage", "0003_rollups_quarter_hour_and_daily")])
    assert not is_partitioned(connection)
    assert _sql(f"SELECT model_name FROM {LOG_TABLE} WHERE id = %s", [log.pk]) == [("gpt-4o",)]  # noqa: S608
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert is_partitioned(connection)
    assert UsageLog.objects.get(pk=log.pk).prompt_tokens == 10
    assert usage_record(model_name="gpt-4o", prompt_tokens=1, timestamp=timezone.now() - timedelta(days=1)).pk > log.pk
