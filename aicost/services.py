"""Writes of the aicost app: repairing a database schema that drifted from the models.

Only additive, non-destructive changes: create missing tables, add missing columns, create missing
indexes and unique constraints, rebuild invalid indexes. Anything that could lose data (a wrong
type, nullability, an extra column) is reported for a person and never changed here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connections, transaction

from aicost.schema_guard import (
    INVALID_INDEX,
    MISSING_COLUMN,
    MISSING_INDEX,
    MISSING_TABLE,
    MISSING_UNIQUE,
    TABLE_LAYOUTS,
    SchemaReport,
    existing_tables,
    invalid_indexes,
    managed_models,
    missing_indexes,
    schema_report,
    table_columns,
)

REPAIRABLE = {MISSING_TABLE, MISSING_COLUMN, MISSING_INDEX, MISSING_UNIQUE, INVALID_INDEX}


@dataclass
class RepairPlan:
    steps: list[tuple[str, Callable]] = field(default_factory=list)  # (description, step(schema_editor))
    refused: list[str] = field(default_factory=list)  # What a person must decide.


def _table_has_rows(connection, table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(table)})")  # noqa: S608
        return cursor.fetchone()[0]


def _creates_with_parent(model, missing: set[str]) -> bool:
    """An auto-created many-to-many table is created with its model's table."""
    if not model._meta.auto_created:
        return False
    parent = model._meta.auto_created
    return parent._meta.db_table in missing


def _plan_columns(plan: RepairPlan, connection, model, columns: dict) -> None:
    table = model._meta.db_table
    for model_field in model._meta.local_concrete_fields:
        if model_field.column in columns:
            continue
        needs_value = not model_field.null and not model_field.has_default() and not model_field.has_db_default()
        if needs_value and _table_has_rows(connection, table):
            plan.refused.append(
                f"{table}.{model_field.column}: NOT NULL without a default on a table with rows; "
                "add it with a migration that says what existing rows get."
            )
            continue
        plan.steps.append(
            (f"add column {table}.{model_field.column}", lambda e, m=model, f=model_field: e.add_field(m, f))
        )


def _index_rebuild_step(connection, index: str) -> Callable:
    """REINDEX, or for an index of a partitioned table (which REINDEX cannot rebuild inside a
    transaction) the same index dropped and created again from its own definition."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'I', pg_get_indexdef(oid) FROM pg_class WHERE oid = %s::regclass", [index])
        partitioned, definition = cursor.fetchone()
    quoted = connection.ops.quote_name(index)
    if not partitioned:
        return lambda editor: editor.execute(f"REINDEX INDEX {quoted}")

    def recreate(editor) -> None:
        editor.execute(f"DROP INDEX {quoted}")
        editor.execute(definition.replace(" ON ONLY ", " ON ", 1))  # ONLY would leave it invalid again.

    return recreate


def schema_repair_plan(*, using: str = "default") -> RepairPlan:
    connection = connections[using]
    existing = existing_tables(connection)
    models = managed_models()
    missing = {m._meta.db_table for m in models if m._meta.db_table not in existing}
    present = [m._meta.db_table for m in models if m._meta.db_table in existing]
    columns = table_columns(connection, present)
    plan = RepairPlan()
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            if table in missing:
                if table in TABLE_LAYOUTS:
                    plan.steps.append((f"create table {table}", TABLE_LAYOUTS[table].create))
                elif not _creates_with_parent(model, missing):
                    plan.steps.append((f"create table {table}", lambda e, m=model: e.create_model(m)))
                continue
            if table in TABLE_LAYOUTS:
                plan.steps += TABLE_LAYOUTS[table].repairs(connection)
            _plan_columns(plan, connection, model, columns.get(table, {}))
            for index in missing_indexes(model, connection.introspection.get_constraints(cursor, table)):
                plan.steps.append((f"create {index.what} on {table}", index.create))
    for _table, index in invalid_indexes(connection, present):
        plan.steps.append((f"rebuild invalid index {index}", _index_rebuild_step(connection, index)))
    report = schema_report(using=using)
    repairable = REPAIRABLE.union(*(layout.repairable for layout in TABLE_LAYOUTS.values()))
    plan.refused += [f"{f.id}: {f.msg}" for f in report.findings if f.id not in repairable]
    return plan


def schema_repair_sql(*, plan: RepairPlan, using: str = "default") -> list[str]:
    """The SQL the plan would run, without running it."""
    with connections[using].schema_editor(collect_sql=True, atomic=False) as editor:
        for _description, step in plan.steps:
            step(editor)
    return list(editor.collected_sql)


def schema_repair_apply(*, plan: RepairPlan, using: str = "default") -> SchemaReport:
    """Run the plan in one transaction, then check the schema again."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.schema_editor(atomic=False) as editor:
        for _description, step in plan.steps:
            step(editor)
    return schema_report(using=using)
