"""The schema guard: compares every model Django manages with the live database.

The incident behind aicost: the migration history said the tables existed; they did not, and the
API answered 500. The guard looks at the database itself, not at the history: missing tables
(saying whether their migration is recorded as applied), missing columns, type, length and
nullability mismatches, missing indexes, unique and CHECK constraints, indexes PostgreSQL left
invalid, and migrations not yet applied. The same findings feed the deploy check, the startup refusal of
runserver and gunicorn, the health endpoints and `manage.py schema_repair`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.core.checks import CheckMessage, Error
from django.db import DatabaseError, connections, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel
from django.utils.translation import gettext as _

from core.db_errors import REPAIR_COMMAND

logger = logging.getLogger("aicost.schema_guard")


MISSING_TABLE = "aicost.E001"
MISSING_COLUMN = "aicost.E002"
WRONG_TYPE = "aicost.E003"
WRONG_NULLABILITY = "aicost.E004"
MISSING_INDEX = "aicost.E005"
MISSING_UNIQUE = "aicost.E006"
INVALID_INDEX = "aicost.E007"
UNAPPLIED_MIGRATIONS = "aicost.E008"
DATABASE_UNREACHABLE = "aicost.E009"
# E010, W011 and W012 are the usage app's (usage/checks.py).
MISSING_CHECK = "aicost.E013"


@dataclass(frozen=True)
class TableLayout:
    """A table whose physical layout Django's schema editor does not make (e.g. a partitioned table).
    The app that owns it registers how to check it and how to create it."""

    table: str
    findings: Callable  # findings(connection) -> list[CheckMessage], when the table exists
    create: Callable  # create(schema_editor): the table as it must be, in place of create_model
    # repairs(connection, altered=whether the plan alters the table first) -> [(description, step(schema_editor))]
    repairs: Callable
    repairable: frozenset[str] = frozenset()  # ids of its findings that `repairs` fixes


TABLE_LAYOUTS: dict[str, TableLayout] = {}


def table_layout_register(layout: TableLayout) -> None:
    TABLE_LAYOUTS[layout.table] = layout


@dataclass(frozen=True)
class ConsistencyCheck:
    """A check of the data, not the schema, that an app registers (e.g. the usage log against what
    is derived from it). schema_report runs it when every table it reads exists and has no error;
    it must stay cheap (it runs at startup and for every probe) and read one snapshot."""

    name: str
    tables: frozenset[str]
    findings: Callable  # findings(connection) -> list[CheckMessage]


CONSISTENCY_CHECKS: dict[str, ConsistencyCheck] = {}


def consistency_check_register(check: ConsistencyCheck) -> None:
    CONSISTENCY_CHECKS[check.name] = check


def _consistency_findings(connection, existing: set[str], findings: list[CheckMessage]) -> list[CheckMessage]:
    """Findings of the registered consistency checks whose tables are all there and sound. A check
    that fails on the database is logged and skipped: the schema findings already say what is wrong."""
    broken = {str(f.obj).split(".", 1)[0] for f in findings if f.is_serious() and f.obj is not None}
    found: list[CheckMessage] = []
    for check in CONSISTENCY_CHECKS.values():
        if not check.tables <= existing or check.tables & broken:
            continue
        try:
            found += check.findings(connection)
        except DatabaseError as error:
            logger.warning("consistency check %s could not run: %s", check.name, error)
    return found


@dataclass
class TableStatus:
    table: str
    model: str
    exists: bool
    missing_columns: list[str] = field(default_factory=list)


@dataclass
class SchemaReport:
    findings: list[CheckMessage]
    tables: list[TableStatus]
    pending_migrations: list[str]
    latency_ms: float | None
    repair_command: str = REPAIR_COMMAND

    @property
    def healthy(self) -> bool:
        """No errors. Warnings (e.g. a future partition not made yet) are reported, not fatal."""
        return not self.errors

    @property
    def errors(self) -> list[CheckMessage]:
        return [finding for finding in self.findings if finding.is_serious()]

    @property
    def warnings(self) -> list[CheckMessage]:
        return [finding for finding in self.findings if not finding.is_serious()]

    @property
    def missing_tables(self) -> list[str]:
        return [t.table for t in self.tables if not t.exists]


def managed_models() -> list[type[models.Model]]:
    """Every concrete, managed model whose table Django creates (auto-created M2M tables included)."""
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and not model._meta.swapped
    ]


def _normalise_type(db_type: str) -> str:
    db_type = db_type.lower().replace(" ", "")
    return re.sub(r"^varchar", "charactervarying", db_type)


def postgresql_columns(connection, tables: list[str]) -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (type as format_type prints it, nullable), one query for all tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relname = ANY(%s)
              AND a.attnum > 0 AND NOT a.attisdropped
            """,
            [tables],
        )
        columns: dict[str, dict[str, tuple[str, bool]]] = {}
        for table, column, column_type, nullable in cursor.fetchall():
            columns.setdefault(table, {})[column] = (column_type, nullable)
        return columns


def generic_columns(connection, tables: list[str]) -> dict[str, dict[str, tuple[str | None, bool]]]:
    with connection.cursor() as cursor:
        return {
            table: {
                info.name: (None, bool(info.null_ok))
                for info in connection.introspection.get_table_description(cursor, table)
            }
            for table in tables
        }


def table_columns(connection, tables: list[str]) -> dict[str, dict[str, tuple[str | None, bool]]]:
    return (postgresql_columns if connection.vendor == "postgresql" else generic_columns)(connection, tables)


def existing_tables(connection) -> set[str]:
    with connection.cursor() as cursor:
        # Partitioned parents (relkind 'p') count as tables; their partitions are not models.
        return {info.name for info in connection.introspection.get_table_list(cursor) if info.type in ("t", "p")}


def _creating_migrations() -> dict[tuple[str, str], tuple[str, str]]:
    """(app_label, model name lowercased) -> the migration that creates it."""
    creators: dict[tuple[str, str], tuple[str, str]] = {}
    for key, migration in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.items():
        for operation in migration.operations:
            if isinstance(operation, CreateModel):
                creators.setdefault((key[0], operation.name.lower()), key)
    return creators


def _missing_table_finding(model, connection, creators, applied) -> Error:
    table = model._meta.db_table
    owner = model._meta.auto_created or model  # An auto-created many-to-many table comes with its model.
    creator = creators.get((owner._meta.app_label, owner._meta.model_name))
    if creator and creator in applied:
        history = _(
            "django_migrations records %(migration)s as applied, "
            "but the table is not there: the history and the database disagree"
        ) % {"migration": f"{creator[0]}.{creator[1]}"}
    elif creator:
        history = _("its migration %(migration)s is not applied yet") % {"migration": f"{creator[0]}.{creator[1]}"}
    else:
        history = _("no migration creates it")
    values = {"table": table, "model": model._meta.label, "database": connection.alias, "history": history}
    if creator in applied:
        hint = _("Run `%(repair)s` to recreate it without touching other data.")
    else:
        hint = _("Run `%(repair)s` to recreate it without touching other data, or `python manage.py migrate`.")
    return Error(
        _("Table %(table)s (%(model)s) is missing from database '%(database)s'; %(history)s.") % values,
        hint=hint % {"repair": REPAIR_COMMAND},
        obj=table,
        id=MISSING_TABLE,
    )


PROJECT_APP_LABELS = frozenset({"core", "schemaguard", "pricing", "usage", "alerts", "ingest", "dashboard"})


def _is_project_model(model) -> bool:
    return model._meta.app_label in PROJECT_APP_LABELS


def _column_findings(model, connection, columns: dict[str, tuple[str | None, bool]]) -> list[Error]:
    """Missing columns of any model; types and nullability of the project's own models (Django's
    contrib tables carry known, harmless differences, e.g. bigint ids of auto-created M2M tables)."""
    table = model._meta.db_table
    compare_types = _is_project_model(model)
    findings = []
    for model_field in model._meta.local_concrete_fields:
        column = model_field.column
        if column not in columns:
            findings.append(
                Error(
                    _("Column %(column)s (%(field)s) is missing.")
                    % {"column": f"{table}.{column}", "field": f"{model._meta.label}.{model_field.name}"},
                    hint=_("Run `%(repair)s` to add it.") % {"repair": REPAIR_COMMAND},
                    obj=f"{table}.{column}",
                    id=MISSING_COLUMN,
                )
            )
            continue
        if not compare_types:
            continue
        actual_type, actual_null = columns[column]
        expected_type = model_field.db_type(connection)
        if actual_type is not None and expected_type and _normalise_type(expected_type) != _normalise_type(actual_type):
            findings.append(
                Error(
                    _("Column %(column)s is %(actual)s; the model expects %(expected)s.")
                    % {"column": f"{table}.{column}", "actual": actual_type, "expected": expected_type},
                    hint=_("A type change can lose data, so schema_repair leaves it to a person: write a migration."),
                    obj=f"{table}.{column}",
                    id=WRONG_TYPE,
                )
            )
        if actual_null != model_field.null:
            actual, expected = ("NULL", "NOT NULL") if actual_null else ("NOT NULL", "NULL")
            findings.append(
                Error(
                    _("Column %(column)s is %(actual)s; the model expects %(expected)s.")
                    % {"column": f"{table}.{column}", "actual": actual, "expected": expected},
                    hint=_(
                        "Write a migration (AlterField) after checking the data; schema_repair never alters columns."
                    ),
                    obj=f"{table}.{column}",
                    id=WRONG_NULLABILITY,
                )
            )
    return findings


@dataclass(frozen=True)
class ExpectedIndex:
    columns: tuple[str, ...]
    unique: bool
    what: str
    create: Callable  # create(schema_editor): adds the index or constraint.
    of_field: str | None = None  # The field whose own unique/db_index it is (made with its column).
    condition_columns: tuple[str, ...] = ()  # Columns a partial index's condition names.
    name: str | None = None  # The index's or constraint's own name (Meta.indexes, Meta.constraints).

    @property
    def partial(self) -> bool:
        return bool(self.condition_columns)


def _field_index_creator(model, model_field, *, unique: bool) -> Callable:
    def create(editor) -> None:
        if unique:
            editor.execute(editor._create_unique_sql(model, [model_field]))
        else:
            editor.execute(editor._create_index_sql(model, fields=[model_field]))

    return create


def expected_indexes(model) -> list[ExpectedIndex]:
    """Each index or unique constraint the model asks for, with how to create it."""
    meta = model._meta
    expected = []
    for model_field in meta.local_concrete_fields:
        if model_field.primary_key:
            continue
        if model_field.unique:
            creator = _field_index_creator(model, model_field, unique=True)
            what = f"unique {model_field.name}"
            expected.append(ExpectedIndex((model_field.column,), True, what, creator, model_field.name))
        elif model_field.db_index:
            creator = _field_index_creator(model, model_field, unique=False)
            what = f"index on {model_field.name}"
            expected.append(ExpectedIndex((model_field.column,), False, what, creator, model_field.name))
    for index in meta.indexes:
        columns = tuple(meta.get_field(name.lstrip("-")).column for name in index.fields)
        expected.append(
            ExpectedIndex(
                columns,
                False,
                f"index {index.name}",
                lambda e, i=index: e.add_index(model, i),
                condition_columns=_condition_columns(model, index.condition),
                name=index.name,
            )
        )
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.fields:
            columns = tuple(meta.get_field(name).column for name in constraint.fields)
            expected.append(
                ExpectedIndex(
                    columns,
                    True,
                    f"unique constraint {constraint.name}",
                    # Not add_constraint: on SQLite that rebuilds the table; a unique index serves the same.
                    lambda e, c=constraint: e.execute(c.create_sql(model, e)),
                    condition_columns=_condition_columns(model, constraint.condition),
                    name=constraint.name,
                )
            )
    return expected


def _condition_columns(model, condition) -> tuple[str, ...]:
    if condition is None:
        return ()
    return tuple(sorted(model._meta.get_field(name).column for name in condition.referenced_base_fields))


def _serves(columns: tuple[str, ...], is_unique: bool, expected: ExpectedIndex) -> bool:
    """A unique expectation needs a unique index on exactly its columns; a plain index is served by
    any index that leads with its columns (e.g. a primary key on (timestamp, id) for timestamp)."""
    if expected.unique:
        return is_unique and columns == expected.columns
    return columns[: len(expected.columns)] == expected.columns


def missing_indexes(model, constraints: dict) -> list[ExpectedIndex]:
    """The expected indexes the table lacks. Introspection does not say whether an index is partial,
    so a partial one is known by its name: only it serves its expectation, and it serves no other
    (a partial index cannot serve a scan of the whole table, e.g. rollup rows of both kinds)."""
    expected = expected_indexes(model)
    partial_names = {index.name for index in expected if index.partial}
    present = [
        (tuple(c["columns"]), bool(c["unique"] or c["primary_key"]))
        for name, c in constraints.items()
        if name not in partial_names
    ]
    return [index for index in expected if not _present(index, present, constraints)]


def _present(expected: ExpectedIndex, present: list[tuple[tuple[str, ...], bool]], constraints: dict) -> bool:
    if expected.partial:
        found = constraints.get(expected.name)
        return found is not None and _serves(tuple(found["columns"]), bool(found["unique"]), expected)
    return any(_serves(columns, is_unique, expected) for columns, is_unique in present)


def _index_findings(model, constraints: dict) -> list[Error]:
    table = model._meta.db_table
    return [
        Error(
            _("Table %(table)s lacks its %(what)s on (%(columns)s).")
            % {"table": table, "what": missing.what, "columns": ", ".join(missing.columns)},
            hint=_("Run `%(repair)s` to create it.") % {"repair": REPAIR_COMMAND},
            obj=table,
            id=MISSING_UNIQUE if missing.unique else MISSING_INDEX,
        )
        for missing in missing_indexes(model, constraints)
    ]


def missing_checks(model, constraints: dict) -> list[models.CheckConstraint]:
    """The model's CHECK constraints the table lacks, by name (every one the project declares has
    its own name; a check under another name is not the same rule to a reader of the schema)."""
    present = {name for name, constraint in constraints.items() if constraint["check"]}
    return [
        constraint
        for constraint in model._meta.constraints
        if isinstance(constraint, models.CheckConstraint) and constraint.name not in present
    ]


def check_sql(model, constraint: models.CheckConstraint, connection) -> str:
    """The constraint's condition as the database states it, e.g. ("cost" IS NULL OR "cost" >= 0)."""
    # Not entered: only its quoting is needed (entering one on SQLite inside a transaction fails).
    editor = connection.schema_editor(collect_sql=True, atomic=False)
    return str(constraint._get_check_sql(model, editor))


def _check_findings(model, connection, constraints: dict) -> list[Error]:
    table = model._meta.db_table
    return [
        Error(
            _(
                "Table %(table)s lacks its CHECK constraint %(name)s (%(sql)s): "
                "the database would store rows the service refuses."
            )
            % {"table": table, "name": constraint.name, "sql": check_sql(model, constraint, connection)},
            hint=_("Run `%(repair)s` to add it (it says which rows break it, if any).") % {"repair": REPAIR_COMMAND},
            obj=table,
            id=MISSING_CHECK,
        )
        for constraint in missing_checks(model, constraints)
    ]


def invalid_indexes(connection, tables: list[str]) -> list[tuple[str, str]]:
    """(table, index) of indexes PostgreSQL marked invalid."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = current_schema() AND t.relname = ANY(%s) AND NOT x.indisvalid
            """,
            [tables],
        )
        return cursor.fetchall()


def _invalid_index_findings(connection, tables: list[str]) -> list[Error]:
    return [
        Error(
            _(
                "Index %(index)s on %(table)s is invalid (left by a failed CREATE INDEX CONCURRENTLY?): "
                "PostgreSQL keeps it up to date but never uses it."
            )
            % {"index": index, "table": table},
            hint=_("Run `%(repair)s` (it rebuilds %(index)s).") % {"repair": REPAIR_COMMAND, "index": index},
            obj=index,
            id=INVALID_INDEX,
        )
        for table, index in invalid_indexes(connection, tables)
    ]


def pending_migrations(connection) -> list[str]:
    """Every migration on disk that the history does not record, also one whose successors are
    recorded (a history edited by hand: the plan from the leaf nodes would not show it)."""
    loader = MigrationLoader(connection)
    return sorted(f"{app}.{name}" for app, name in loader.graph.nodes if (app, name) not in loader.applied_migrations)


def _pending_finding(pending: list[str]) -> list[Error]:
    if not pending:
        return []
    return [
        Error(
            _("%(count)s migration(s) not applied: %(names)s.")
            % {"count": len(pending), "names": ", ".join(pending[:5]) + ("…" if len(pending) > 5 else "")},
            hint=_("Run `python manage.py migrate` before serving."),
            id=UNAPPLIED_MIGRATIONS,
        )
    ]


def schema_report(*, using: str = "default") -> SchemaReport:
    """Compare the models with database `using`; never raises for a broken or unreachable database."""
    connection = connections[using]
    began = time.perf_counter()
    try:
        existing = existing_tables(connection)
    except DatabaseError as error:
        finding = Error(
            (_("Database '%(database)s' cannot be reached: %(error)s") % {"database": using, "error": error}).strip(),
            hint=_("Check DATABASE_URL and that the server is up."),
            id=DATABASE_UNREACHABLE,
        )
        return SchemaReport(findings=[finding], tables=[], pending_migrations=[], latency_ms=None)
    latency_ms = (time.perf_counter() - began) * 1000
    return _full_report(connection, existing, latency_ms)


def _full_report(connection, existing: set[str], latency_ms: float) -> SchemaReport:
    from django.db.migrations.recorder import MigrationRecorder

    all_models = managed_models()
    present_tables = [m._meta.db_table for m in all_models if m._meta.db_table in existing]
    columns = (postgresql_columns if connection.vendor == "postgresql" else generic_columns)(connection, present_tables)
    applied = set(MigrationRecorder(connection).applied_migrations()) if "django_migrations" in existing else set()
    creators = _creating_migrations()
    findings: list[CheckMessage] = []
    tables: list[TableStatus] = []
    with connection.cursor() as cursor:
        for model in all_models:
            table = model._meta.db_table
            if table not in existing:
                findings.append(_missing_table_finding(model, connection, creators, applied))
                tables.append(TableStatus(table=table, model=model._meta.label, exists=False))
                continue
            column_findings = _column_findings(model, connection, columns.get(table, {}))
            findings += column_findings
            constraints = connection.introspection.get_constraints(cursor, table)
            findings += _index_findings(model, constraints)
            findings += _check_findings(model, connection, constraints)
            if table in TABLE_LAYOUTS:
                findings += TABLE_LAYOUTS[table].findings(connection)
            missing = [f.obj.split(".", 1)[1] for f in column_findings if f.id == MISSING_COLUMN]
            tables.append(TableStatus(table=table, model=model._meta.label, exists=True, missing_columns=missing))
    findings += _invalid_index_findings(connection, present_tables)
    pending = pending_migrations(connection) if "django_migrations" in existing else ["(no migration history)"]
    findings += _pending_finding(pending)
    findings += _consistency_findings(connection, existing, findings)
    return SchemaReport(findings=findings, tables=tables, pending_migrations=pending, latency_ms=latency_ms)


# --- A short-lived cache for probes and scrapes --------------------------------------------------

HEALTH_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class SchemaHealth:
    """The gist of a schema report, as readiness probes and metrics scrapes need it."""

    healthy: bool
    database_up: bool
    missing_tables: list[str]
    findings: list[str]
    warnings: list[str] = field(default_factory=list)  # ids of the findings that are warnings


_health_lock = threading.Lock()
_health_cache: dict = {"checked_at": None, "health": None}


def _health_from(report: SchemaReport) -> SchemaHealth:
    finding_ids = [finding.id for finding in report.findings]
    return SchemaHealth(
        healthy=report.healthy,
        database_up=DATABASE_UNREACHABLE not in finding_ids,
        missing_tables=report.missing_tables,
        findings=finding_ids,
        warnings=[finding.id for finding in report.warnings],
    )


def schema_health(*, max_age: float = HEALTH_CACHE_SECONDS) -> SchemaHealth:
    """The schema report of the default database, at most `max_age` seconds old (per process): probes
    and scrapes every few seconds then cost one introspection per interval, not one each."""
    with _health_lock:
        checked_at = _health_cache["checked_at"]
        if checked_at is None or time.monotonic() - checked_at > max_age:
            _health_cache.update(health=_health_from(schema_report()), checked_at=time.monotonic())
        return _health_cache["health"]


def schema_health_forget() -> None:
    """Drop the cached health, so the next call looks at the database again."""
    with _health_lock:
        _health_cache.update(checked_at=None, health=None)
