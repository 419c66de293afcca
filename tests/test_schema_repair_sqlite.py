"""schema_repair on the embedded default, SQLite: the incident and each other repairable kind of
drift, made on a real SQLite file with demo data, then the commands a person runs, in subprocesses.

For each: the dry run prints SQL and changes nothing; --apply exits 0; every row of every table
is still there (per-table counts and a digest of the columns the broken table had); the guard is
healthy afterwards and plain `check` passes."""

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

REPORT = """
import django, json
django.setup()
from schemaguard.guard import schema_report
report = schema_report()
print(json.dumps({"errors": [f"{f.id} {f.msg}" for f in report.errors],
                  "warnings": [f"{f.id} {f.msg}" for f in report.warnings]}))
"""


def _env(db: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "AICOST_PG_"))}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{db}", DJANGO_SETTINGS_MODULE="aicost.settings")
    return env


def _run(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=180, check=False
    )


def _manage(db: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(db, "manage.py", *args)


def _report(db: Path) -> dict:
    result = _run(db, "-c", REPORT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("sqlite") / "demo.sqlite3"
    for args in (("migrate", "-v0"), ("demo_setup", "--days", "2", "--calls-per-day", "30")):
        result = _manage(db, *args)
        assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(db) as conn:  # A row in the many-to-many table too.
        conn.execute("INSERT INTO auth_group (name) VALUES ('ops')")
        conn.execute("INSERT INTO auth_user_groups (user_id, group_id) SELECT id, 1 FROM auth_user")
    assert _report(db) == {"errors": [], "warnings": []}
    return db


# --- Breaking the schema behind Django's back -------------------------------------------------


def _execute(conn: sqlite3.Connection, *statements: str) -> None:
    for statement in statements:
        conn.execute(statement)


def _index_named(conn: sqlite3.Connection, table: str, column: str) -> str:
    (name,) = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE ?",
        [table, f"{table}_{column}_%"],
    ).fetchone()
    return name


def _rebuild(conn: sqlite3.Connection, table: str, *, remove: str) -> None:
    """The table without `remove` (a regex over its CREATE TABLE), rows copied: SQLite's own recipe
    for a change ALTER TABLE cannot make. Indexes on columns that are gone are not recreated."""
    (create,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
    indexes = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table]
        )
    ]
    changed = re.sub(remove, "", create, count=1)
    assert changed != create, remove
    conn.execute(changed.replace(f'"{table}"', '"rebuilt"', 1))
    columns = ", ".join(f'"{row[1]}"' for row in conn.execute('PRAGMA table_info("rebuilt")'))
    _execute(
        conn,
        f'INSERT INTO "rebuilt" ({columns}) SELECT {columns} FROM "{table}"',  # noqa: S608
        f'DROP TABLE "{table}"',
        f'ALTER TABLE "rebuilt" RENAME TO "{table}"',
    )
    for index in indexes:
        if all(f'"{column}"' in columns for column in re.findall(r'"(\w+)"', index.split(" ON ", 1)[1])[1:]):
            conn.execute(index)


def drop_usage_log(conn):
    """The incident: the table is gone, django_migrations still records usage.0001."""
    conn.execute("DROP TABLE ai_model_usage_log")


def drop_many_to_many_table(conn):
    conn.execute("DROP TABLE auth_user_groups")


def drop_columns(conn):
    """A plain column, one with an index of its own, one in a Meta UniqueConstraint and one in the
    condition of a partial Meta index."""
    _rebuild(conn, "ai_model_usage_log", remove=r', "purpose" varchar\(100\) NOT NULL')
    _rebuild(conn, "ai_model_usage_log", remove=r', "decision_id" varchar\(100\) NOT NULL')
    _rebuild(conn, "ai_alert_delivery", remove=r', CONSTRAINT "ai_alert_delivery_once_per_channel" UNIQUE \([^)]*\)')
    _rebuild(conn, "ai_alert_delivery", remove=r', "channel" varchar\(10\) NOT NULL')
    _rebuild(conn, "ai_alert_delivery", remove=r', "status" varchar\(10\) NOT NULL')


def drop_indexes(conn):
    """A field's db_index, a Meta index, and a Meta index whose columns a partial unique index
    (compacted rollup rows) also covers."""
    _execute(
        conn,
        f'DROP INDEX "{_index_named(conn, "ai_model_usage_log", "model_name")}"',
        "DROP INDEX ai_budget_alerts_open_idx",
        "DROP INDEX ai_rollup_1h_range",
    )


def drop_unique_constraints(conn):
    """A field's unique=True and a Meta UniqueConstraint, both inline in the table's definition, and
    a partial UniqueConstraint (a unique index of its own)."""
    _rebuild(conn, "ai_model_pricing", remove=r"(?<=NOT NULL) UNIQUE")
    _rebuild(conn, "ai_budget_alerts", remove=r', CONSTRAINT "ai_budget_alerts_once_per_period" UNIQUE \([^)]*\)')
    _execute(conn, "DROP INDEX ai_usage_rollup_daily_compacted_key")


COST_CHECK = r', CONSTRAINT "ai_model_usage_log_cost_check" CHECK \(\("cost" IS NULL OR "cost" >= \'0\'\)\)'
CACHED_CHECK = (
    r', CONSTRAINT "ai_model_usage_log_cached_within_prompt" CHECK \("cached_tokens" <= \("prompt_tokens"\)\)'
)


def drop_check_constraints(conn):
    """Two of the log's CHECK constraints, as a table made before usage.0009 or by hand lacks them."""
    _rebuild(conn, "ai_model_usage_log", remove=COST_CHECK)
    _rebuild(conn, "ai_model_usage_log", remove=CACHED_CHECK)


def drop_exchange_rates(conn):
    """Issue 16's table: the usage log's foreign key to it stays declared in the log's own table.
    Lost rates are data (restore them from a backup): the repair recreates the table, and SQLite's
    foreign-key check refuses calls still pointing at rates that are gone, so here none do."""
    conn.execute("UPDATE ai_model_usage_log SET exchange_rate_id = NULL")
    conn.execute("DROP TABLE ai_exchange_rate")


RATE_CHECK = r', CONSTRAINT "ai_exchange_rate_positive" CHECK \("rate" > \'0\'\)'


def damage_exchange_rates(conn):
    """Its partial unique index (one open rate per pair) and a CHECK constraint."""
    conn.execute(
        "INSERT INTO ai_exchange_rate (base_currency, quote_currency, rate, effective_from, effective_to, source, "
        "created_at) VALUES ('EUR', 'JPY', '160.1', '2026-01-01 00:00:00', NULL, 'test', '2026-01-01 00:00:00')"
    )
    _execute(conn, "DROP INDEX ai_exchange_rate_one_open")
    _rebuild(conn, "ai_exchange_rate", remove=RATE_CHECK)


PRICES_CHECK = r', CONSTRAINT "ai_model_pricing_prices_not_negative" CHECK \(\(.*?\)\)(?=, CONSTRAINT|\)$)'


def drop_a_watched_tables_check_keeping_its_triggers(conn):
    """A watched table (pricing.generation) rebuilt by hand with care: its triggers recreated, a
    CHECK constraint lost. The repair's own rebuild drops the triggers again, and must remake them."""
    triggers = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", ["ai_model_pricing"]
        )
    ]
    assert len(triggers) == 3
    _rebuild(conn, "ai_model_pricing", remove=PRICES_CHECK)
    _execute(conn, *triggers)


def all_of_them(conn):
    for other in (drop_many_to_many_table, drop_columns, drop_indexes, drop_unique_constraints, drop_check_constraints):
        other(conn)


BREAKS = {  # name: (how, the findings it must cause)
    "usage log": (drop_usage_log, {"aicost.E001"}),
    "many-to-many table": (drop_many_to_many_table, {"aicost.E001"}),
    "columns": (drop_columns, {"aicost.E002", "aicost.E005", "aicost.E006"}),
    "indexes": (drop_indexes, {"aicost.E005"}),
    # Rebuilding a table by hand drops its price generation triggers too (aicost.E014).
    "unique constraints": (drop_unique_constraints, {"aicost.E006", "aicost.E014"}),
    "check constraints": (drop_check_constraints, {"aicost.E013"}),
    "exchange rates": (drop_exchange_rates, {"aicost.E001"}),
    "a watched table's check, triggers kept": (drop_a_watched_tables_check_keeping_its_triggers, {"aicost.E013"}),
    "exchange rate constraints": (damage_exchange_rates, {"aicost.E006", "aicost.E013", "aicost.E014"}),
    "all but the log at once": (
        all_of_them,
        {"aicost.E001", "aicost.E002", "aicost.E005", "aicost.E006", "aicost.E013", "aicost.E014"},
    ),
}


# --- What must not change ---------------------------------------------------------------------


def _layout(db: Path) -> list:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


def _columns(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')] for table in tables}


def _rows(db: Path, columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Per table: the row count and a digest of every row (these columns, in any order: a rebuilt
    table moves its row in sqlite_sequence)."""
    digests = {}
    with sqlite3.connect(db) as conn:
        for table, names in columns.items():
            selected = ", ".join(f'"{name}"' for name in names)
            rows = sorted(map(repr, conn.execute(f'SELECT {selected} FROM "{table}"')))  # noqa: S608
            digests[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return digests


@pytest.mark.parametrize("drift", list(BREAKS))
def test_repair_fixes_each_kind_of_drift_on_sqlite_and_keeps_every_row(demo_database, tmp_path, drift):
    db = tmp_path / "broken.sqlite3"
    shutil.copy(demo_database, db)
    how, expected = BREAKS[drift]
    with sqlite3.connect(db) as conn:
        how(conn)
    broken = _report(db)
    assert {error.split()[0] for error in broken["errors"]} == expected, broken
    if drift in ("usage log", "many-to-many table", "exchange rates"):
        assert "django_migrations records" in broken["errors"][0]
    columns = _columns(db)
    rows, layout = _rows(db, columns), _layout(db)

    dry_run = _manage(db, "schema_repair")
    assert dry_run.returncode == 0, dry_run.stderr[-2000:]
    assert "Dry run" in dry_run.stdout
    assert "CREATE " in dry_run.stdout
    assert (_layout(db), _rows(db, columns)) == (layout, rows)

    check = _manage(db, "check")
    assert check.returncode == 1
    assert "schema_repair --apply" in check.stderr

    applied = _manage(db, "schema_repair", "--apply")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    assert "the schema matches the models" in applied.stdout
    assert _rows(db, columns) == rows
    assert _report(db)["errors"] == []
    check = _manage(db, "check")
    assert check.returncode == 0, check.stderr
    again = _manage(db, "schema_repair")
    assert (again.returncode, again.stdout.strip()) == (0, "Nothing to repair.")


def test_repair_refuses_a_column_it_cannot_fill_and_exits_1(demo_database, tmp_path):
    db = tmp_path / "broken.sqlite3"
    shutil.copy(demo_database, db)
    with sqlite3.connect(db) as conn:
        _rebuild(conn, "ai_model_usage_log", remove=r', "cost_source" varchar\(10\) NOT NULL')
    layout = _layout(db)
    for args in (("schema_repair",), ("schema_repair", "--apply")):
        result = _manage(db, *args)
        assert result.returncode == 1
        assert "needs a person: ai_model_usage_log.cost_source" in result.stderr
        assert "Traceback" not in result.stderr
    assert _layout(db) == layout


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("schema_repair", "--database", "nosuch"), 1, "No database 'nosuch' in DATABASES"),
        (("schema_repair", "--aply"), 2, "unrecognized arguments: --aply"),
        (("check", "--database", "nosuch"), 2, "invalid choice: 'nosuch'"),
    ],
)
def test_bad_input_is_a_clear_error(demo_database, args, status, message):
    result = _manage(demo_database, *args)
    assert result.returncode == status
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_repair_that_fails_rolls_back_every_step_and_says_so(demo_database, tmp_path):
    """A unique constraint that duplicate rows forbid: the whole repair is undone, the other steps too."""
    db = tmp_path / "broken.sqlite3"
    shutil.copy(demo_database, db)
    with sqlite3.connect(db) as conn:
        drop_many_to_many_table(conn)
        drop_indexes(conn)
        _rebuild(conn, "ai_model_pricing", remove=r"(?<=NOT NULL) UNIQUE")
        columns = [row[1] for row in conn.execute('PRAGMA table_info("ai_model_pricing")') if row[1] != "id"]
        copied = ", ".join(f'"{column}"' for column in columns)
        conn.execute(f"INSERT INTO ai_model_pricing ({copied}) SELECT {copied} FROM ai_model_pricing LIMIT 1")  # noqa: S608
    layout, rows = _layout(db), _rows(db, _columns(db))
    result = _manage(db, "schema_repair", "--apply")
    assert result.returncode == 1
    assert "Repair failed and was rolled back; nothing changed" in result.stderr
    assert "UNIQUE constraint failed: ai_model_pricing.model_name" in result.stderr
    assert "Traceback" not in result.stderr
    assert (_layout(db), _rows(db, _columns(db))) == (layout, rows)


LOG_ROW = (
    "INSERT INTO ai_model_usage_log (model_name, decision_id, prompt_tokens, completion_tokens, cached_tokens, "
    "reasoning_tokens, cost, unconverted, cost_source, success, error_message, purpose, timestamp) "
    "VALUES ('gpt-4o', '', :tokens, 1, 0, 0, :cost, :cost IS NOT NULL, 'provider', 1, '', '', '2026-11-01 10:00:00')"
)


def test_the_sqlite_log_refuses_negative_tokens_and_costs(demo_database, tmp_path):
    db = tmp_path / "checked.sqlite3"
    shutil.copy(demo_database, db)
    with sqlite3.connect(db) as conn:
        for tokens, cost, constraint in [(-1, "0.1", "prompt_tokens_check"), (5, "-0.5", "cost_check")]:
            refused = f"CHECK constraint failed: ai_model_usage_log_{constraint}"
            with pytest.raises(sqlite3.IntegrityError, match=refused):
                conn.execute(LOG_ROW, {"tokens": tokens, "cost": cost})
        conn.execute(LOG_ROW, {"tokens": 5, "cost": None})  # An unpriced call: no cost is fine.


def test_repair_refuses_a_check_constraint_that_rows_break(demo_database, tmp_path):
    db = tmp_path / "broken.sqlite3"
    shutil.copy(demo_database, db)
    with sqlite3.connect(db) as conn:
        _rebuild(conn, "ai_model_usage_log", remove=COST_CHECK)
        conn.execute(LOG_ROW, {"tokens": 5, "cost": "-0.5"})
    layout, rows = _layout(db), _rows(db, _columns(db))
    for args in (("schema_repair",), ("schema_repair", "--apply")):
        result = _manage(db, *args)
        assert result.returncode == 1, result.stdout
        assert "needs a person: ai_model_usage_log: 1 row(s)" in result.stderr
        assert "break CHECK ai_model_usage_log_cost_check" in result.stderr
        assert "Traceback" not in result.stderr
    assert (_layout(db), _rows(db, _columns(db))) == (layout, rows)
