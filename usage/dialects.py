"""Vendor differences of the rollup engine (PostgreSQL in production, SQLite for local use), in one
module, so the engine's modules stay vendor-neutral."""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from django.db.backends.base.base import BaseDatabaseWrapper

# --- read side (usage.window_sums) ----------------------------------------------------------------

# The column types of a table of parameters (values_table_sql): integers, UTC days and hours since
# the epoch (as a date and a timestamp: short numbers, a short statement), and datetimes.
INT, EPOCH_DAYS, EPOCH_HOURS, TIMESTAMP = "int", "epoch days", "epoch hours", "timestamp"
_PG_ARRAY_TYPES = {INT: "bigint[]", EPOCH_DAYS: "int[]", EPOCH_HOURS: "int[]", TIMESTAMP: "timestamptz[]"}
_PG_COLUMN_SQL = {
    INT: "{}",
    EPOCH_DAYS: "DATE '1970-01-01' + {}",
    EPOCH_HOURS: "to_timestamp({} * 3600)",
    TIMESTAMP: "{}",
}
EPOCH_DAY = date(1970, 1, 1)


def _pg_array_literal(values: Iterable) -> str:
    """One text parameter per column: far cheaper for the driver than a list adapted element by element."""
    return "{" + ",".join(f'"{value}"' for value in values) + "}"


def _pg_column_literal(values: Iterable, column_type: str) -> str:
    if column_type == TIMESTAMP:
        return _pg_array_literal(value.astimezone(UTC).isoformat() for value in values)
    return "{" + ",".join(map(str, values)) + "}"  # integers: nothing to quote


def _sqlite_value(connection: BaseDatabaseWrapper, value, column_type: str):
    if column_type == EPOCH_DAYS:
        return connection.ops.adapt_datefield_value(EPOCH_DAY + timedelta(days=value))
    if column_type == EPOCH_HOURS:
        return connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(value * 3600, UTC))
    if column_type == TIMESTAMP:
        return connection.ops.adapt_datetimefield_value(value)
    return value


def values_table_sql(
    connection: BaseDatabaseWrapper, columns: Sequence[tuple[str, str]], rows: Sequence[tuple]
) -> tuple[str, list]:
    """A derived table of `rows` (not empty) with `columns` (name, type), as SQL and its parameters:
    on PostgreSQL one array per column (unnest), elsewhere a VALUES list."""
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{_PG_ARRAY_TYPES[column_type]}" for _name, column_type in columns)
        names = ", ".join(name for name, _type in columns)
        selected = ", ".join(_PG_COLUMN_SQL[column_type].format(name) + f" AS {name}" for name, column_type in columns)
        params = [
            _pg_column_literal(values, column_type)
            for values, (_name, column_type) in zip(zip(*rows, strict=True), columns, strict=True)
        ]
        return f"(SELECT {selected} FROM unnest({arrays}) AS u({names}))", params  # noqa: S608
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    aliases = ", ".join(f"column{n + 1} AS {name}" for n, (name, _type) in enumerate(columns))
    params = [_sqlite_value(connection, value, columns[n][1]) for row in rows for n, value in enumerate(row)]
    return f"(SELECT {aliases} FROM (VALUES {', '.join([row_sql] * len(rows))}))", params  # noqa: S608


def range_terms_sql(
    connection: BaseDatabaseWrapper,
    *,
    terms_sql: str,
    table: str,
    condition: str,
    by_model: bool,
    sums_sql: str,
    sum_names: Sequence[str],
) -> str:
    """A SELECT of (r.i, [model_name,] sums named sum_names) for each term r of `terms_sql` over the
    rows t of `table` matching `condition` (a range of r's; sums_sql may read r's columns too).

    PostgreSQL: a LATERAL subquery per term, so each term is an index range scan (it cannot size a
    join on ranges, and picks a sequential scan of the per-model hour rollup filtered by every
    range). SQLite has no LATERAL: a join grouped by term."""
    if connection.vendor == "postgresql":
        model, group = ("t.model_name, ", " GROUP BY t.model_name") if by_model else ("", "")
        outer_model = "x.model_name AS model_name, " if by_model else ""
        columns = ", ".join(f"x.{name}" for name in sum_names)
        return (
            f"SELECT r.i AS i, {outer_model}{columns} FROM {terms_sql} AS r CROSS JOIN LATERAL "  # noqa: S608
            f"(SELECT {model}{sums_sql} FROM {table} AS t WHERE {condition}{group}) AS x"
        )
    key = "r.i, t.model_name" if by_model else "r.i"
    named_key = "r.i AS i, t.model_name AS model_name" if by_model else "r.i AS i"
    return f"SELECT {named_key}, {sums_sql} FROM {terms_sql} AS r JOIN {table} AS t ON {condition} GROUP BY {key}"  # noqa: S608


def in_list_sql(connection: BaseDatabaseWrapper, column: str, values: Iterable[str]) -> tuple[str, list]:
    """`column` is one of `values` (not empty)."""
    ordered = sorted(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::text[])", [
            _pg_array_literal(v.replace("\\", "\\\\").replace('"', '\\"') for v in ordered)
        ]
    return f"{column} IN ({', '.join(['%s'] * len(ordered))})", ordered


def window_number_sql(connection: BaseDatabaseWrapper, column: str, boundaries: Sequence) -> tuple[str, list]:
    """The number k of the window [boundaries[k], boundaries[k + 1]) that `column` falls in, for
    values within [boundaries[0], boundaries[-1])."""
    if connection.vendor == "postgresql":
        literal = _pg_column_literal(boundaries, TIMESTAMP)
        return f"width_bucket({column}, %s::timestamptz[]) - 1", [literal]
    cases = " ".join(f"WHEN {column} < %s THEN {n}" for n in range(len(boundaries) - 1))
    return f"CASE {cases} END", [connection.ops.adapt_datetimefield_value(b) for b in boundaries[1:]]


def snapshot_begin(connection: BaseDatabaseWrapper) -> None:
    """Make the transaction just begun read one snapshot (PostgreSQL: REPEATABLE READ), and keep the
    planner from JIT-compiling: it cannot size a join on ranges (it guesses 0.5% of a table per
    range) and would spend 100-250 ms compiling a few-millisecond query. One round trip."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET LOCAL jit = off")
