"""core.prepared: a repeating statement run by name answers what its text answers, at every moment.

Outside a transaction (the API's reads run in none), so these tests commit for real."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core import prepared
from ingest.services import usage_record_batch
from tests.api_helpers import exact_json
from usage.services import UsageRecordInput

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="statements are prepared on PostgreSQL only"),
]
TREND = "/api/v1/ai-platforms/cost-trend-daily"


def _server_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE starts_with(name, %s)", [prepared.NAME_PREFIX])
        return {name for (name,) in cursor.fetchall()}


def _count_sql(marker: int) -> str:
    return f"SELECT count(*), {marker} FROM ai_model_usage_log"  # noqa: S608 -- a constant


def _record(calls: int, *, when=None) -> None:
    when = when or timezone.now() - timedelta(minutes=1)
    usage_record_batch(
        records=[UsageRecordInput(model_name="gpt-4o", prompt_tokens=1000, timestamp=when) for _ in range(calls)]
    )


def test_a_prepared_statement_answers_with_the_data_committed_since():
    assert prepared.fetch_all(connection, _count_sql(1)) == [(0, 1)]
    name = prepared.statement_name(_count_sql(1))
    assert name in _server_names()
    assert name in prepared.prepared_names(connection)
    _record(3)
    assert prepared.fetch_all(connection, _count_sql(1)) == [(3, 1)]  # EXECUTE of the same plan: today's rows.


def test_each_connection_keeps_at_most_its_bound_and_drops_the_least_recently_used():
    for marker in range(prepared.PREPARED_PER_CONNECTION + 3):
        assert prepared.fetch_all(connection, _count_sql(marker)) == [(0, marker)]
        prepared.fetch_all(connection, _count_sql(0))  # Used every time: never the least recent.
    on_server = _server_names()
    assert len(on_server) == prepared.PREPARED_PER_CONNECTION
    assert on_server == set(prepared.prepared_names(connection))
    assert prepared.statement_name(_count_sql(0)) in on_server
    assert prepared.statement_name(_count_sql(1)) not in on_server


@pytest.mark.parametrize("meddling", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_statements_dropped_behind_its_back_are_prepared_again(meddling):
    prepared.fetch_all(connection, _count_sql(7))
    with connection.cursor() as cursor:
        cursor.execute(meddling)
    try:
        _record(2)
        assert prepared.fetch_all(connection, _count_sql(7)) == [(2, 7)]
        assert prepared.statement_name(_count_sql(7)) in _server_names()
    finally:
        connection.close()  # DISCARD ALL also reset the session's settings (its time zone).


def test_a_statement_prepared_behind_its_back_is_run_as_it_is():
    sql = _count_sql(8)
    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE {prepared.statement_name(sql)} AS {sql}")
    assert prepared.fetch_all(connection, sql) == [(0, 8)]


def test_a_new_connection_starts_with_nothing_prepared():
    prepared.fetch_all(connection, _count_sql(9))
    connection.close()
    assert prepared.fetch_all(connection, _count_sql(9)) == [(0, 9)]
    assert _server_names() == {prepared.statement_name(_count_sql(9))}


def test_inside_a_transaction_the_text_runs_as_it_is():
    from django.db import transaction

    with transaction.atomic():
        assert prepared.fetch_all(connection, _count_sql(10)) == [(0, 10)]
    assert prepared.statement_name(_count_sql(10)) not in _server_names()


def test_the_daily_trend_run_by_name_follows_every_new_record(reader):
    params = {"days": 366, "tz": "Asia/Shanghai"}
    totals = []
    for calls in (1, 2, 3):
        _record(calls)
        _record(1, when=timezone.now() - timedelta(days=200))
        data = exact_json(reader.get(TREND, params))["data"]
        totals.append((data["summary"]["total_calls"], sum(day["calls"] for day in data["daily_trend"])))
    assert totals == [(2, 2), (5, 5), (9, 9)]
    assert prepared.prepared_names(connection)  # From the second request on, the statement ran by name.


def test_windows_ending_now_are_not_kept_so_the_trends_statement_stays(reader):
    from usage.window_sums import _window_statement

    _window_statement.cache_clear()
    reader.get(TREND, {"days": 30, "tz": "Asia/Kathmandu"})
    assert _window_statement.cache_info().currsize == 1
    for time_range in ("today", "24h", "7d", "all"):
        reader.get("/api/v1/ai-platforms/stats", {"time_range": time_range})
    assert _window_statement.cache_info().currsize == 1
    reader.get(TREND, {"days": 30, "tz": "Asia/Kathmandu"})
    assert _window_statement.cache_info().hits == 1


def test_a_statement_whose_result_type_a_schema_change_altered_is_prepared_again():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE aicost_prepared_probe (a integer)")
        cursor.execute("INSERT INTO aicost_prepared_probe VALUES (41)")
    try:
        sql = "SELECT a FROM aicost_prepared_probe"
        assert prepared.fetch_all(connection, sql) == [(41,)]
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE aicost_prepared_probe ALTER COLUMN a TYPE text")
        assert prepared.fetch_all(connection, sql) == [("41",)]
        assert prepared.fetch_all(connection, sql) == [("41",)]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE aicost_prepared_probe")
