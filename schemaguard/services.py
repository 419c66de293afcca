"""Writes of the aicost app: repairing a database schema that drifted from the models.

Only additive, non-destructive changes: create missing tables, add missing columns, create missing
indexes, unique and CHECK constraints (a CHECK only where no row breaks it), rebuild invalid
indexes. Anything that could lose data (a wrong type, nullability, an extra column) is reported
for a person and never changed here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from django.apps import apps as global_apps
from django.db import connections
from django.db.migrations.state import ProjectState

from schemaguard.guard import (
    INVALID_INDEX,
    MISSING_CHECK,
    MISSING_COLUMN,
    MISSING_INDEX,
    MISSING_TABLE,
    MISSING_UNIQUE,
    TABLE_LAYOUTS,
    ExpectedIndex,
    SchemaReport,
    check_sql,
    existing_tables,
    invalid_indexes,
    managed_models,
    missing_checks,
    missing_indexes,
    schema_report,
    table_columns,
)

REPAIRABLE = {MISSING_TABLE, MISSING_COLUMN, MISSING_INDEX, MISSING_UNIQUE, MISSING_CHECK, INVALID_INDEX}


@dataclass
class RepairPlan:
    steps: list[tuple[str, Callable]] = field(default_factory=list)  # (description, step(schema_editor))
    refused: list[str] = field(default_factory=list)  # Errors a person must decide on.
    warnings: list[str] = field(default_factory=list)  # Warnings schema_repair does not fix (not fatal).


def _table_has_rows(connection, table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(table)})")  # noqa: S608
        return cursor.fetchone()[0]


def _create_table_alone(editor, model) -> None:
    """create_model without the auto-created many-to-many tables: each missing table is a step of
    its own, so a parent table can be recreated while its many-to-many tables still exist."""
    sql, params = editor.table_sql(model)
    editor.execute(sql, params or None)
    editor.deferred_sql.extend(editor._model_indexes_sql(model))


def _needs_a_person(connection, model, model_field) -> bool:
    needs_value = not model_field.null and not model_field.has_default() and not model_field.has_db_default()
    return needs_value and _table_has_rows(connection, model._meta.db_table)


def _references(item, names: set[str]) -> bool:
    """Does an index or constraint of a model state name any of the fields `names`?"""
    fields = {name.lstrip("-") for name in getattr(item, "fields", ()) or ()}
    condition = getattr(item, "condition", None)
    if condition is not None:
        fields |= set(condition.referenced_base_fields)
    return bool(fields & names)


def _columns_adder(model, names: list[str]) -> Callable:
    """Add the model's fields `names` one after another, as migrate's AddField does: to a model state
    that lacks them. (SQLite rebuilds the table for most new columns and copies every column of the
    model it is given; the real model names columns that are not there yet.) Indexes and constraints
    on any missing column are left out of the state: the plan creates them afterwards."""

    def add(editor) -> None:
        state = ProjectState.from_apps(global_apps)
        key = (model._meta.app_label, model._meta.model_name)
        model_state = state.models[key]
        fields = {name: model_state.fields.pop(name) for name in names}
        for option in ("indexes", "constraints"):
            kept = [item for item in model_state.options.get(option, []) if not _references(item, set(names))]
            model_state.options[option] = kept
        for name in names:
            before = state.apps.get_model(*key)
            state.add_field(*key, name, fields[name], preserve_default=True)
            editor.add_field(before, state.apps.get_model(*key)._meta.get_field(name))

    return add


def _involved(index: ExpectedIndex) -> set[str]:
    return {*index.columns, *index.condition_columns}


def _plan_present_table(plan: RepairPlan, connection, cursor, model, columns: dict) -> None:
    """Indexes on existing columns first, then the missing columns (each brings its own unique or
    db_index), then the indexes and constraints that involve a new column. SQLite's rebuild of a
    table for a new column recreates the indexes made before it, so nothing is made twice."""
    table = model._meta.db_table
    absent = [f for f in model._meta.local_concrete_fields if f.column not in columns]
    refused = [f for f in absent if _needs_a_person(connection, model, f)]
    plan.refused += [
        f"{table}.{f.column}: NOT NULL without a default on a table with rows; "
        "add it with a migration that says what existing rows get."
        for f in refused
    ]
    added = [f for f in absent if f not in refused]
    absent_columns = {f.column for f in absent}
    added_columns = {f.column for f in added}
    added_names = {f.name for f in added}
    constraints = connection.introspection.get_constraints(cursor, table)
    on_present, on_added = [], []
    for index in missing_indexes(model, constraints):
        absent_involved = absent_columns & _involved(index)
        if not absent_involved:
            on_present.append(index)
        elif absent_involved <= added_columns and index.of_field not in added_names:
            on_added.append(index)
    plan.steps += [(f"create {index.what} on {table}", index.create) for index in on_present]
    if added:
        names = ", ".join(f"{table}.{f.column}" for f in added)
        plan.steps.append((f"add column {names}", _columns_adder(model, [f.name for f in added])))
    plan.steps += [(f"create {index.what} on {table}", index.create) for index in on_added]
    if not refused:  # A table still short of a column takes no CHECK (SQLite's rebuild needs every column).
        _plan_checks(plan, connection, model, constraints, set(columns) | added_columns)


def _check_adder(model, constraint) -> Callable:
    """PostgreSQL: added NOT VALID, then validated (a CHECK on a partitioned parent holds for, and is
    validated on, every partition); a row that breaks it fails the repair, which rolls back. SQLite
    cannot add a constraint to a table: Django rebuilds it with the constraint, rows copied."""

    def add(editor) -> None:
        if editor.connection.vendor != "postgresql":
            editor.add_constraint(model, constraint)
            return
        table, name = editor.quote_name(model._meta.db_table), editor.quote_name(constraint.name)
        condition = constraint._get_check_sql(model, editor)
        editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition}) NOT VALID")
        editor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")

    return add


def _rows_breaking(connection, model, constraint) -> tuple[int, object, object]:
    """(count, lowest pk, highest pk) of the rows the constraint would refuse."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    condition = check_sql(model, constraint, connection)
    with connection.cursor() as cursor:
        # A row breaks a CHECK when its condition is false; NULL passes, and NOT NULL selects nothing.
        cursor.execute(f"SELECT count(*), min({pk}), max({pk}) FROM {table} WHERE NOT ({condition})")  # noqa: S608
        return cursor.fetchone()


def _plan_checks(plan: RepairPlan, connection, model, constraints: dict, columns: set[str]) -> None:
    """Missing CHECK constraints after the columns they name exist; refused while rows break one."""
    table = model._meta.db_table
    for constraint in missing_checks(model, constraints):
        named = {model._meta.get_field(name).column for name in constraint.condition.referenced_base_fields}
        if named <= columns:
            count, first, last = _rows_breaking(connection, model, constraint)
            if count:
                plan.refused.append(
                    f"{table}: {count} row(s) (ids {first} to {last}) break CHECK {constraint.name} "
                    f"({check_sql(model, constraint, connection)}); correct or delete them, then repair again."
                )
                continue
        plan.steps.append((f"add CHECK constraint {constraint.name} on {table}", _check_adder(model, constraint)))


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
                layout = TABLE_LAYOUTS.get(table)
                create = layout.create if layout else partial(_create_table_alone, model=model)
                plan.steps.append((f"create table {table}", create))
                continue
            steps_before = len(plan.steps)
            _plan_present_table(plan, connection, cursor, model, columns.get(table, {}))
            if table in TABLE_LAYOUTS:  # After the table's own steps: SQLite's table rebuilds drop its triggers.
                plan.steps += TABLE_LAYOUTS[table].repairs(connection, altered=len(plan.steps) > steps_before)
    for _table, index in invalid_indexes(connection, present):
        plan.steps.append((f"rebuild invalid index {index}", _index_rebuild_step(connection, index)))
    report = schema_report(using=using)
    repairable = REPAIRABLE.union(*(layout.repairable for layout in TABLE_LAYOUTS.values()))
    plan.refused += [f"{f.id}: {f.msg}" for f in report.errors if f.id not in repairable]
    plan.warnings += [f"{f.id}: {f.msg} {f.hint or ''}".strip() for f in report.warnings if f.id not in repairable]
    return plan


def schema_repair_sql(*, plan: RepairPlan, using: str = "default") -> list[str]:
    """The SQL the plan would run, without running it."""
    with connections[using].schema_editor(collect_sql=True, atomic=False) as editor:
        for _description, step in plan.steps:
            step(editor)
    return list(editor.collected_sql)


def schema_repair_apply(*, plan: RepairPlan, using: str = "default") -> SchemaReport:
    """Run the plan in one transaction, then check the schema again.

    The schema editor opens the transaction itself (atomic=True), as migrate does: SQLite can only
    switch off foreign key checks outside a transaction, so the editor must do that first; it checks
    every foreign key before committing. On PostgreSQL it is one transaction like any other, so a
    failing step leaves nothing half-made."""
    with connections[using].schema_editor(atomic=True) as editor:
        for _description, step in plan.steps:
            step(editor)
    return schema_report(using=using)
