"""The price generation: a one-row table (ai_price_generation) the database changes in the same
transaction as every write to a table the price book reads (triggers), so a process may keep a
price book while the generation it was read under is still the one in force (pricing.selectors.
price_book_cached). A missing trigger would let a cache go silently stale: the schema guard reports it
(aicost.E014, on the table that lacks it) and `schema_repair` recreates it; a watched
table the repair creates gets its triggers with it.

PostgreSQL: one statement trigger per table (INSERT, UPDATE, DELETE, TRUNCATE) sets the row to the
next value of a sequence (never a value seen before, even if the row is deleted). SQLite: a row
trigger per table and event replaces the row with a random 64-bit value.
"""

from django.core.checks import CheckMessage, Error
from django.utils.translation import gettext as _

from core.db_errors import REPAIR_COMMAND

GENERATION_TABLE = "ai_price_generation"
GENERATION_SEQUENCE = "ai_price_generation_seq"
GENERATION_FUNCTION = "ai_price_generation_bump"
TRIGGER_MISSING = "aicost.E014"
# Every table pricing.selectors.price_book_for_models and rate_book_for_prices read.
WATCHED_TABLES = (
    "ai_model_pricing",
    "ai_model_price_version",
    "ai_model_price_version_tier",
    "ai_model_name_pattern",
    "ai_exchange_rate",
)
SQLITE_EVENTS = ("insert", "update", "delete")

POSTGRESQL_FUNCTION = (
    f"CREATE OR REPLACE FUNCTION {GENERATION_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "  # noqa: S608
    f"INSERT INTO {GENERATION_TABLE} (id, generation) VALUES (1, nextval('{GENERATION_SEQUENCE}')) "
    "ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation; RETURN NULL; END $$"
)


def trigger_name(table: str, event: str | None = None) -> str:
    """PostgreSQL names triggers per table; SQLite's names are global (one per table and event)."""
    return f"{table}_price_generation" if event is None else f"{table}_price_generation_{event}"


def postgresql_trigger_sql(table: str) -> list[str]:
    name = trigger_name(table)
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {GENERATION_FUNCTION}()",
    ]


def sqlite_trigger_sql(table: str, event: str) -> list[str]:
    name = trigger_name(table, event)
    return [
        f"DROP TRIGGER IF EXISTS {name}",
        f"CREATE TRIGGER {name} AFTER {event.upper()} ON {table} BEGIN "  # noqa: S608 -- constants
        f"INSERT OR REPLACE INTO {GENERATION_TABLE} (id, generation) VALUES (1, random()); END",
    ]


def expected_triggers(vendor: str, table: str) -> dict[str, list[str]]:
    """trigger name -> the statements that (re)create it, for a watched table on this vendor (empty:
    no cache there)."""
    if vendor == "postgresql":
        return {trigger_name(table): [POSTGRESQL_FUNCTION, *postgresql_trigger_sql(table)]}
    if vendor == "sqlite":
        return {trigger_name(table, event): sqlite_trigger_sql(table, event) for event in SQLITE_EVENTS}
    return {}


def present_triggers(connection, table: str) -> set[str]:
    """The names of the generation triggers on a table (enabled ones, on PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND p.proname = %s AND t.tgrelid = %s::regclass",
                [GENERATION_FUNCTION, table],
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [table])
        return {name for (name,) in cursor.fetchall()}


def missing_triggers(connection, tables: tuple[str, ...] = WATCHED_TABLES) -> list[str]:
    """The generation triggers missing on these (existing) tables."""
    missing = []
    for table in tables:
        expected = expected_triggers(connection.vendor, table)
        if expected:
            present = present_triggers(connection, table)
            missing += [name for name in expected if name not in present]
    return sorted(missing)


def _trigger_findings(connection, table: str) -> list[CheckMessage]:
    missing = missing_triggers(connection, (table,))
    if not missing:
        return []
    return [
        Error(
            _(
                "Triggers %(triggers)s that keep %(table)s current are missing: a process's cached price book "
                "would not see price edits and would misprice calls."
            )
            % {"triggers": ", ".join(missing), "table": GENERATION_TABLE},
            hint=_("Run `%(command)s` to recreate them.") % {"command": REPAIR_COMMAND},
            obj=table,
            id=TRIGGER_MISSING,
        )
    ]


def _generation_objects_create(editor) -> None:
    """The sequence and the function the PostgreSQL triggers call (both kept if present)."""
    if editor.connection.vendor == "postgresql":
        editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {GENERATION_SEQUENCE}")
        editor.execute(POSTGRESQL_FUNCTION)


def _triggers_create(editor, table: str, names: list[str] | None = None) -> None:
    _generation_objects_create(editor)
    for name, statements in expected_triggers(editor.connection.vendor, table).items():
        if names is None or name in names:
            for statement in statements:
                editor.execute(statement)


def _watched_layout(table: str):
    """A watched table: created with its triggers; a missing trigger is a finding its repair fixes."""
    from django.apps import apps

    from schemaguard.guard import TableLayout

    def create(editor) -> None:
        model = next(m for m in apps.get_models() if m._meta.db_table == table)
        editor.create_model(model)
        _triggers_create(editor, table)

    def repairs(connection, *, altered: bool) -> list:
        missing = missing_triggers(connection, (table,))
        if altered and connection.vendor == "sqlite":
            # SQLite makes most changes by rebuilding the table, which drops its triggers: recreate them all.
            missing = sorted(expected_triggers("sqlite", table))
        if not missing:
            return []
        # Every trigger of the table, at apply time: a rebuild planned before this step (SQLite) drops them all.
        return [(f"create triggers {', '.join(missing)} on {table}", lambda e: _triggers_create(e, table))]

    return TableLayout(
        table=table,
        findings=lambda connection: _trigger_findings(connection, table),
        create=create,
        repairs=repairs,
        repairable=frozenset({TRIGGER_MISSING}),
    )


def _generation_layout():
    from schemaguard.guard import TableLayout

    def create(editor) -> None:
        from pricing.models import PriceGeneration

        editor.create_model(PriceGeneration)
        _generation_objects_create(editor)

    return TableLayout(
        table=GENERATION_TABLE, findings=lambda connection: [], create=create, repairs=lambda c, altered: []
    )


def price_generation_layouts() -> list:
    return [_generation_layout(), *(_watched_layout(table) for table in WATCHED_TABLES)]


def generation_select_sql() -> str:
    return f"SELECT generation FROM {GENERATION_TABLE} WHERE id = 1"  # noqa: S608 -- a constant
