"""The incident, reproduced on PostgreSQL: ai_model_usage_log dropped while django_migrations still
records usage.0001 as applied. Every part of the guard must say so, and repair must fix it.

PostgreSQL DDL is transactional: each test's DROP is rolled back with the test's transaction."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import DatabaseError, connection
from django.db.migrations.recorder import MigrationRecorder

from ingest.services import usage_record
from schemaguard.checks import check_schema_matches_models
from schemaguard.guard import schema_health_forget, schema_report

pytestmark = pytest.mark.django_db
HEALTH = "/api/v1/admin/health/database"


def _sql(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def _checksum(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} t")  # noqa: S608
        return cursor.fetchone()[0] or ""


INVALIDATE_TIMESTAMP_INDEX = (
    "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ai_model_usage_log_model_name_idx'::regclass"
)


def _drop_usage_log() -> None:
    assert MigrationRecorder(connection).migration_qs.filter(app="usage", name="0001_initial").exists()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # Deferred FK checks of rows written in this test first.
    _sql("DROP TABLE ai_model_usage_log")


def test_healthy_database_has_no_findings():
    assert check_schema_matches_models(databases=["default"]) == []
    report = schema_report()
    assert report.healthy
    assert report.pending_migrations == []
    assert {t.table for t in report.tables} >= {"ai_model_pricing", "ai_model_usage_log", "ai_budget_alerts"}


def test_check_names_the_missing_table_and_the_disagreeing_history():
    _drop_usage_log()
    findings = check_schema_matches_models(databases=["default"])
    assert [f.id for f in findings] == ["aicost.E001"]
    message = findings[0].msg
    assert "ai_model_usage_log" in message
    assert "django_migrations records usage.0001_initial as applied" in message
    assert "schema_repair --apply" in findings[0].hint
    with pytest.raises(SystemCheckError, match="ai_model_usage_log"):
        call_command("check", "--deploy", "--database", "default", stdout=StringIO(), stderr=StringIO())


def test_migrate_style_checks_without_databases_do_not_run_the_guard():
    _drop_usage_log()
    assert check_schema_matches_models(databases=None) == []


@pytest.mark.parametrize(
    ("statement", "finding", "needle"),
    [
        ("ALTER TABLE ai_model_usage_log DROP COLUMN purpose", "aicost.E002", "ai_model_usage_log.purpose"),
        ("ALTER TABLE ai_model_usage_log ALTER COLUMN purpose TYPE varchar(50)", "aicost.E003", "varchar(100)"),
        ("ALTER TABLE ai_model_usage_log ALTER COLUMN user_id SET NOT NULL", "aicost.E004", "user_id"),
        ("DROP INDEX ai_model_usage_log_model_name_idx", "aicost.E005", "model_name"),
        ("ALTER TABLE ai_model_pricing DROP CONSTRAINT ai_model_pricing_model_name_key", "aicost.E006", "model_name"),
        # A partial unique index (one compacted rollup row per key) is known by its name...
        ("DROP INDEX ai_usage_rollup_1h_compacted_key", "aicost.E006", "ai_usage_rollup_1h_compacted_key"),
        # ...and does not stand in for the plain index on the same columns that readers scan.
        ("DROP INDEX ai_rollup_1h_range", "aicost.E005", "ai_rollup_1h_range"),
        ("DROP INDEX ai_rollup_daily_deltas", "aicost.E005", "ai_rollup_daily_deltas"),
        (
            "ALTER TABLE ai_model_usage_log DROP CONSTRAINT ai_model_usage_log_cost_check",
            "aicost.E013",
            '("cost" IS NULL OR "cost" >= 0)',
        ),
        (INVALIDATE_TIMESTAMP_INDEX, "aicost.E007", "invalid"),
        (
            # A migration below applied ones: the plan from the leaf nodes would not show it.
            "DELETE FROM django_migrations WHERE app = 'usage' AND name = '0003_rollups_quarter_hour_and_daily'",
            "aicost.E008",
            "usage.0003",
        ),
    ],
)
def test_each_kind_of_drift_is_found(statement, finding, needle):
    _sql(statement)
    findings = check_schema_matches_models(databases=["default"])
    matching = [f for f in findings if f.id == finding]
    assert matching, [f"{f.id} {f.msg}" for f in findings]
    assert needle in matching[0].msg + matching[0].hint


def test_health_endpoint_reports_the_missing_table(staff_client, reader):
    assert staff_client.get(HEALTH).status_code == 200
    _drop_usage_log()
    response = reader.get(HEALTH)
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "schema_unhealthy"
    assert body["data"]["missing_tables"] == ["ai_model_usage_log"]
    usage_table = next(t for t in body["data"]["tables"] if t["table"] == "ai_model_usage_log")
    assert usage_table["exists"] is False
    assert body["data"]["latency_ms"] >= 0


def test_health_details_need_staff_or_a_read_key(client, writer):
    assert client.get(HEALTH).status_code == 401
    assert writer.get(HEALTH).status_code == 403


def test_liveness_and_readiness_are_public_and_not_redirected_to_https():
    from django.test import Client

    plain_http = Client()
    assert plain_http.get("/healthz").status_code == 200
    assert plain_http.get("/readyz").status_code == 200
    assert plain_http.get("/admin/").status_code == 301  # Everything else goes to HTTPS.
    _drop_usage_log()
    schema_health_forget()  # Expire the short cache.
    response = plain_http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["missing_tables"] == ["ai_model_usage_log"]
    assert plain_http.get("/healthz").status_code == 200


def test_an_api_hitting_the_missing_table_answers_503_not_500(writer):
    _drop_usage_log()
    response = writer.post("/api/v1/usage/", {"model_name": "gpt-4o", "prompt_tokens": 1}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "schema_unhealthy"
    assert error["missing"] == ["ai_model_usage_log"]
    assert "Traceback" not in response.content.decode()


def test_an_admin_page_hitting_the_missing_table_answers_503(staff_client):
    _drop_usage_log()
    response = staff_client.get("/admin/usage/usagelog/")
    assert response.status_code == 503
    assert b"ai_model_usage_log" in response.content
    assert b"schema_repair --apply" in response.content


def test_repair_dry_run_prints_sql_and_changes_nothing():
    _drop_usage_log()
    out = StringIO()
    call_command("schema_repair", stdout=out)
    assert "CREATE TABLE ai_model_usage_log (" in out.getvalue()
    assert 'PARTITION BY RANGE ("timestamp")' in out.getvalue()
    assert "Dry run" in out.getvalue()
    assert not schema_report().healthy


def test_repair_restores_the_table_and_leaves_other_data_alone():
    usage_record(model_name="gpt-4o", prompt_tokens=1000, completion_tokens=10)
    others = ["ai_model_pricing", "ai_model_price_version", "ai_usage_rollup_1h", "ai_budget_alerts"]
    before = {table: _checksum(table) for table in others}
    _drop_usage_log()
    out = StringIO()
    call_command("schema_repair", "--apply", stdout=out)
    assert "the schema matches the models" in out.getvalue()
    # The schema is whole again; the call the drop lost is still in the rollups: a warning of its own.
    assert [f.id for f in check_schema_matches_models(databases=["default"])] == ["aicost.W012"]
    assert {table: _checksum(table) for table in others} == before
    assert usage_record(model_name="gpt-4o", prompt_tokens=1, completion_tokens=1).pk is not None


def test_repair_adds_a_missing_column_and_index_and_rebuilds_an_invalid_index():
    _sql("ALTER TABLE ai_model_usage_log DROP COLUMN purpose")
    _sql("DROP INDEX ai_model_usage_log_decision_id_idx")
    _sql(INVALIDATE_TIMESTAMP_INDEX)
    call_command("schema_repair", "--apply", stdout=StringIO())
    assert check_schema_matches_models(databases=["default"]) == []


def test_repair_refuses_what_could_lose_data():
    _sql("ALTER TABLE ai_model_usage_log ALTER COLUMN purpose TYPE varchar(50)")
    err = StringIO()
    with pytest.raises(CommandError, match="need a person"):
        call_command("schema_repair", "--apply", stdout=StringIO(), stderr=err)
    assert "needs a person: aicost.E003" in err.getvalue()


def test_plain_check_reports_the_guard_findings_with_the_repair_command():
    out = StringIO()
    call_command("check", stdout=out, stderr=StringIO())
    assert "no issues" in out.getvalue()
    _drop_usage_log()
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "(aicost.E001) Table ai_model_usage_log" in str(raised.value)
    assert "HINT: Run `python manage.py schema_repair --apply`" in str(raised.value)


def test_migrate_applies_on_a_broken_schema_and_warns_that_it_is_still_broken():
    call_command("migrate", "alerts", "0001", verbosity=0, stdout=StringIO(), stderr=StringIO())
    _drop_usage_log()
    with pytest.raises(SystemCheckError, match=r"aicost\.E008"):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    err = StringIO()
    call_command("migrate", verbosity=0, stdout=StringIO(), stderr=err)
    recorder = MigrationRecorder(connection)
    assert recorder.migration_qs.filter(app="alerts", name="0002_alert_lifecycle_anomalies_notifications").exists()
    report = schema_report()
    assert [(f.id, f.obj) for f in report.findings] == [("aicost.E001", "ai_model_usage_log")]
    assert "still differs from the models after migrate" in err.getvalue()
    assert "aicost.E001: Table ai_model_usage_log" in err.getvalue()
    assert "schema_repair --apply" in err.getvalue()


def test_migrate_says_nothing_more_on_a_healthy_schema():
    err = StringIO()
    call_command("migrate", verbosity=0, stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


def _table_digests() -> dict[str, tuple[int, str]]:
    """Every table of the schema: row count and a digest of its rows (a partitioned table's with its
    partitions', which introspection does not list)."""
    digests = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            rows = f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"  # noqa: S608
            cursor.execute(rows)
            digests[table] = cursor.fetchone()
    return digests


LOG_COLUMNS_KEPT = "id, model_name, prompt_tokens, completion_tokens, cost, cost_source, timestamp"


def _log_digest() -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), md5(string_agg(row({LOG_COLUMNS_KEPT})::text, ',' ORDER BY id)) FROM ai_model_usage_log"  # noqa: S608
        )
        return cursor.fetchone()


def test_repair_of_every_kind_at_once_keeps_every_other_row(staff_user):
    from django.contrib.auth.models import Group

    staff_user.groups.add(Group.objects.create(name="ops"))
    for tokens in (1000, 2000, 3000):
        usage_record(model_name="gpt-4o", prompt_tokens=tokens, completion_tokens=10)
    future = _future_partition()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    log_before = _log_digest()
    for statement in (
        "DROP TABLE auth_user_groups",  # An auto-created many-to-many table.
        "ALTER TABLE ai_model_usage_log DROP COLUMN purpose",
        "ALTER TABLE ai_model_usage_log DROP COLUMN decision_id",  # Its index goes with it.
        "ALTER TABLE ai_alert_delivery DROP COLUMN channel",  # And its unique (alert_id, channel).
        "ALTER TABLE ai_alert_delivery DROP COLUMN status",  # And the partial index on status = 'pending'.
        "DROP INDEX ai_budget_alerts_open_idx",
        "ALTER TABLE ai_model_pricing DROP CONSTRAINT ai_model_pricing_model_name_key",
        "DROP INDEX ai_usage_rollup_1h_compacted_key",  # Partial: unique among compacted rows only.
        "DROP INDEX ai_rollup_1h_range",
        INVALIDATE_TIMESTAMP_INDEX,
        f"DROP TABLE {future}",
    ):
        _sql(statement)
    broken = {f.id for f in schema_report().findings}
    assert broken == {"aicost.E001", "aicost.E002", "aicost.E005", "aicost.E006", "aicost.E007", "aicost.W011"}
    digests = _table_digests()

    out = StringIO()
    call_command("schema_repair", stdout=out)
    assert "Dry run: " in out.getvalue()
    assert {f.id for f in schema_report().findings} == broken
    assert _table_digests() == digests

    out = StringIO()
    call_command("schema_repair", "--apply", stdout=out)
    assert "the schema matches the models" in out.getvalue()
    assert schema_report().findings == []
    after = _table_digests()
    others = [table for table in digests if not table.startswith("ai_model_usage_log")]  # The log gained columns.
    assert {table: after[table] for table in others} == {table: digests[table] for table in others}
    assert after["auth_user_groups"][0] == 0  # Recreated, empty.
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [future])
        assert cursor.fetchone()[0]
    assert _log_digest() == log_before


def _future_partition() -> str:
    from django.utils import timezone

    from usage.partitions import add_months, month_of, partition_name

    return partition_name(add_months(month_of(timezone.now()), 2))


def test_repair_of_an_unknown_database_is_a_clear_error():
    with pytest.raises(CommandError, match="No database 'nosuch' in DATABASES"):
        call_command("schema_repair", "--database", "nosuch", stdout=StringIO())


def _duplicate_a_pricing_row() -> None:
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(cursor, "ai_model_pricing")]
    copied = ", ".join(column for column in columns if column != "id")
    _sql(f"INSERT INTO ai_model_pricing ({copied}) SELECT {copied} FROM ai_model_pricing LIMIT 1")  # noqa: S608


def test_a_repair_that_fails_rolls_back_every_step_of_it():
    """Partition and index steps run in the one transaction: a later step that fails (a unique
    constraint that duplicate rows forbid) undoes them too."""
    future = _future_partition()
    for statement in (
        f"DROP TABLE {future}",
        INVALIDATE_TIMESTAMP_INDEX,
        "DROP INDEX ai_budget_alerts_open_idx",
        "ALTER TABLE ai_model_pricing DROP CONSTRAINT ai_model_pricing_model_name_key",
    ):
        _sql(statement)
    _duplicate_a_pricing_row()
    broken = sorted(f.id for f in schema_report().findings)
    digests = _table_digests()
    with pytest.raises(CommandError, match="Repair failed and was rolled back; nothing changed") as raised:
        call_command("schema_repair", "--apply", stdout=StringIO())
    assert "ai_model_pricing" in str(raised.value)
    assert sorted(f.id for f in schema_report().findings) == broken
    assert _table_digests() == digests


# --- CHECK constraints (aicost.E013) ---------------------------------------------------------------

DROP_CHECKS = [
    "ALTER TABLE ai_model_usage_log DROP CONSTRAINT ai_model_usage_log_cost_check",
    "ALTER TABLE ai_model_usage_log DROP CONSTRAINT ai_model_usage_log_cached_within_prompt",
    "ALTER TABLE ai_model_usage_log DROP CONSTRAINT ai_model_usage_log_prompt_tokens_check",
]


def _checks_of_every_partition() -> set[tuple[str, str, bool]]:
    """(table, constraint, validated) of the log's CHECK constraints, its partitions' included."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, c.conname, c.convalidated FROM pg_constraint c
            WHERE c.contype = 'c' AND c.conrelid IN (
                SELECT 'ai_model_usage_log'::regclass UNION ALL
                SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ai_model_usage_log'::regclass)
            """
        )
        return set(cursor.fetchall())


def test_a_missing_check_constraint_is_named_and_repaired_on_every_partition():
    usage_record(model_name="gpt-4o", prompt_tokens=1000, completion_tokens=10)
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    whole = _checks_of_every_partition()
    assert len({table for table, _name, _valid in whole}) >= 2  # The parent and its partitions.
    for statement in DROP_CHECKS:
        _sql(statement)
    findings = [f for f in check_schema_matches_models(databases=["default"]) if f.id == "aicost.E013"]
    assert sorted(f.msg.split()[6] for f in findings) == sorted(s.rsplit(" ", 1)[1] for s in DROP_CHECKS)
    assert all("schema_repair --apply" in f.hint for f in findings)
    dry_run = StringIO()
    call_command("schema_repair", stdout=dry_run)
    assert 'ADD CONSTRAINT "ai_model_usage_log_cost_check" CHECK (("cost" IS NULL OR' in dry_run.getvalue()
    assert ") NOT VALID" in dry_run.getvalue()
    assert 'VALIDATE CONSTRAINT "ai_model_usage_log_cost_check"' in dry_run.getvalue()
    call_command("schema_repair", "--apply", stdout=StringIO())
    assert check_schema_matches_models(databases=["default"]) == []
    assert _checks_of_every_partition() == whole  # Validated, on the parent and on every partition.


def _insert_negative_cost() -> None:
    _sql(
        'INSERT INTO ai_model_usage_log ("timestamp", model_name, decision_id, prompt_tokens, completion_tokens, '
        "cached_tokens, reasoning_tokens, cost, unconverted, cost_source, success, error_message, purpose) "
        "VALUES (now(), 'gpt-4o', '', 1, 1, 0, 0, -5, true, 'provider', true, '', '')"
    )
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # Its deferred checks now: the log cannot be altered meanwhile.


def test_repair_refuses_a_check_that_rows_break_and_names_them():
    usage_record(model_name="gpt-4o", prompt_tokens=1000, completion_tokens=10)
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql(DROP_CHECKS[0])
    _insert_negative_cost()
    err = StringIO()
    with pytest.raises(CommandError, match="need a person"):
        call_command("schema_repair", "--apply", stdout=StringIO(), stderr=err)
    assert "needs a person: ai_model_usage_log: 1 row(s)" in err.getvalue()
    assert "break CHECK ai_model_usage_log_cost_check" in err.getvalue()
    assert "aicost.E013" in {f.id for f in schema_report().findings}


def test_a_check_that_fails_to_validate_rolls_the_repair_back():
    """Rows that arrive between the plan and its run: VALIDATE fails, and every step is undone."""
    from schemaguard.services import schema_repair_apply, schema_repair_plan

    _sql(DROP_CHECKS[0])
    _sql("DROP INDEX ai_budget_alerts_open_idx")
    plan = schema_repair_plan()
    assert any("CHECK constraint ai_model_usage_log_cost_check" in description for description, _ in plan.steps)
    usage_record(model_name="gpt-4o", prompt_tokens=1)  # This month's partition.
    _insert_negative_cost()
    broken = sorted(f.id for f in schema_report().findings)
    with pytest.raises(DatabaseError, match=r'check constraint "ai_model_usage_log_cost_check" .* is violated'):
        schema_repair_apply(plan=plan)
    assert sorted(f.id for f in schema_report().findings) == broken


# --- Exchange rates (issue 16): ai_exchange_rate is guarded like every other table -------------------


def _exchange_rates_stored() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from pricing.services import ExchangeRateQuote, exchange_rates_import

    quotes = [
        ExchangeRateQuote(
            base_currency="USD",
            quote_currency="CNY",
            rate=Decimal(rate),
            effective_from=datetime(2026, 1, day, tzinfo=UTC),
        )
        for day, rate in ((1, "7.10"), (2, "7.11"), (3, "7.12"))
    ]
    done = exchange_rates_import(quotes=quotes, apply=True, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert len(done.new) == 3


def test_a_missing_exchange_rate_table_is_reported_and_repair_recreates_it():
    _exchange_rates_stored()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql("DROP TABLE ai_exchange_rate CASCADE")  # CASCADE: with the usage log's foreign key to it.
    findings = check_schema_matches_models(databases=["default"])
    assert [(f.id, f.obj) for f in findings] == [("aicost.E001", "ai_exchange_rate")]
    assert "django_migrations records pricing.0008_exchange_rates as applied" in findings[0].msg
    assert schema_report().missing_tables == ["ai_exchange_rate"]
    dry_run = StringIO()
    call_command("schema_repair", stdout=dry_run)
    assert 'CREATE TABLE "ai_exchange_rate"' in dry_run.getvalue()
    assert "Dry run" in dry_run.getvalue()
    out = StringIO()
    call_command("schema_repair", "--apply", stdout=out)
    assert "the schema matches the models" in out.getvalue()
    assert check_schema_matches_models(databases=["default"]) == []
    # Recreated whole, constraints included: a second open row of a pair is refused by the database.
    _exchange_rates_stored()
    with pytest.raises(DatabaseError, match="ai_exchange_rate_one_open"):
        _sql(
            "INSERT INTO ai_exchange_rate (base_currency, quote_currency, rate, effective_from, source, created_at) "
            "VALUES ('USD', 'CNY', 7.5, '2026-02-01', '', now())"
        )


@pytest.mark.parametrize(
    ("statement", "finding", "needle"),
    [
        ("DROP INDEX ai_exchange_rate_one_open", "aicost.E006", "ai_exchange_rate_one_open"),
        ("ALTER TABLE ai_exchange_rate DROP CONSTRAINT ai_exchange_rate_unique_start", "aicost.E006", "effective_from"),
        ("ALTER TABLE ai_exchange_rate DROP CONSTRAINT ai_exchange_rate_positive", "aicost.E013", '"rate" > '),
    ],
)
def test_a_damaged_exchange_rate_table_is_reported_and_repaired_keeping_its_rows(statement, finding, needle):
    _exchange_rates_stored()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    before = _checksum("ai_exchange_rate")
    _sql(statement)
    findings = [f for f in check_schema_matches_models(databases=["default"]) if f.id == finding]
    assert findings, [f"{f.id} {f.msg}" for f in check_schema_matches_models(databases=["default"])]
    assert needle in findings[0].msg + findings[0].hint
    call_command("schema_repair", "--apply", stdout=StringIO())
    assert check_schema_matches_models(databases=["default"]) == []
    assert _checksum("ai_exchange_rate") == before


def test_a_dropped_exchange_rate_column_is_reported_and_left_to_a_person_when_rows_need_a_value():
    _exchange_rates_stored()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql("ALTER TABLE ai_exchange_rate DROP COLUMN source")
    findings = check_schema_matches_models(databases=["default"])
    assert [(f.id, f.obj) for f in findings] == [("aicost.E002", "ai_exchange_rate.source")]
    err = StringIO()
    with pytest.raises(CommandError, match="need a person"):
        call_command("schema_repair", "--apply", stdout=StringIO(), stderr=err)
    assert "needs a person: ai_exchange_rate.source: NOT NULL without a default" in err.getvalue()
