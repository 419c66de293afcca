"""Vendor differences of the rollup engine, in one module, so the engine's other modules stay
vendor-neutral: PostgreSQL (production) and SQLite (bin/dev).

Write side (usage.rollups): PostgreSQL batches append delta rows (a binary COPY per table) and a
background compaction folds them later (rollups_compact); SQLite (one local writer) upserts the
compacted rows in the batch. Rebuilds on both regroup the log in SQL with the bucket expressions here.
Read side (usage.window_sums): tables of parameters and the statement's vendor-specific parts.
Every SQL text here takes its table and column names from the caller (model metadata); values are
bound parameters.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.backends.base.base import BaseDatabaseWrapper

# --- Write side (usage.rollups) -------------------------------------------------------------------


@dataclass(frozen=True)
class RollupDialect:
    """What differs between the vendors when rollups are written."""

    vendor: str
    # Batches append deltas (compacted later) instead of upserting compacted rows.
    appends_deltas: bool
    # An hour's start, from a 15-minute bucket column `bucket` (the rebuild's hour relation).
    hour_of_quarter: str
    # The UTC day of an hour bucket column `bucket`.
    day_of_hour: str
    # The 15-minute bucket of the log's `timestamp`, and the quarter (0-3) of a bucket in its hour.
    quarter_of_log: str
    quarter_of_hour: str
    # INSERT may sit inside WITH (all grains in one statement).
    insert_in_with: bool


POSTGRESQL = RollupDialect(
    vendor="postgresql",
    appends_deltas=True,
    hour_of_quarter="date_bin('1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    day_of_hour="(bucket AT TIME ZONE 'UTC')::date",
    quarter_of_log="date_bin('15 minutes', timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
    quarter_of_hour="extract(minute FROM bucket AT TIME ZONE 'UTC')::int / 15",
    insert_in_with=True,
)
# SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'. %% because the SQL runs with parameters.
SQLITE = RollupDialect(
    vendor="sqlite",
    appends_deltas=False,
    hour_of_quarter="strftime('%%Y-%%m-%%d %%H:00:00', bucket)",
    day_of_hour="date(bucket)",
    quarter_of_log=(
        "strftime('%%Y-%%m-%%d %%H:', timestamp) "
        "|| printf('%%02d', (CAST(strftime('%%M', timestamp) AS INTEGER) / 15) * 15) || ':00'"
    ),
    quarter_of_hour="CAST(strftime('%%M', bucket) AS INTEGER) / 15",
    insert_in_with=False,
)
_DIALECTS = {dialect.vendor: dialect for dialect in (POSTGRESQL, SQLITE)}


def rollup_dialect(connection) -> RollupDialect:
    try:
        return _DIALECTS[connection.vendor]
    except KeyError:
        raise NotImplementedError(f"The rollups support PostgreSQL and SQLite, not {connection.vendor}") from None


def compacted_upsert_sql(*, table: str, keys: Sequence[str], sums: Sequence[str], select: str) -> str:
    """INSERT the compacted rows `select` yields (keys, then sums; already one row per key, in key
    order: the order rows are locked in), adding to the compacted rows already there."""
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    return (
        f"INSERT INTO {table} ({', '.join([*keys, 'compacted', *sums])}) {select} "
        f"ON CONFLICT ({', '.join(keys)}) WHERE compacted DO UPDATE SET {updates}"
    )


def upserts_run(cursor, dialect: RollupDialect, hours_sql: str, params: list, upserts: Iterable[str]) -> None:
    """Run upserts that each read the hour-shaped relation h (hours_sql): on PostgreSQL in one
    statement (h computed once), on SQLite (no INSERT inside WITH) one statement per upsert."""
    upserts = list(upserts)
    if dialect.insert_in_with:
        chained = ", ".join(f"g{n} AS ({upsert})" for n, upsert in enumerate(upserts))
        cursor.execute(f"WITH h AS ({hours_sql}), {chained} SELECT 1", params)
        return
    for upsert in upserts:
        cursor.execute(f"WITH h AS ({hours_sql}) {upsert}", params)


# PostgreSQL: a batch's delta rows --------------------------------------------------------------


@dataclass(frozen=True)
class DeltaRows:
    """Rows for one rollup table: its columns (compacted excluded: every row is a delta), their
    PostgreSQL types (binary COPY) and the rows' values in that order."""

    table: str
    columns: Sequence[str]
    types: Sequence[str]
    rows: Sequence[Sequence]


def postgresql_deltas_append(cursor, *, tables: Sequence[DeltaRows]) -> None:
    """Append a batch's delta rows, by binary COPY per table (no SQL to plan, no text to format or
    parse; measured faster than one multi-table INSERT of the small tables). No row is looked up or
    locked: rows are only added."""
    for part in tables:
        if not part.rows:
            continue
        columns = ", ".join(["compacted", *part.columns])
        with cursor.copy(f"COPY {part.table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bool", *part.types])
            for row in part.rows:
                copy.write_row((False, *row))


# SQLite: a batch upserts compacted rows ----------------------------------------------------------


def sqlite_compacted_upsert(cursor, *, table: str, keys: Sequence[str], sums: Sequence[str], rows: Iterable) -> None:
    """Add each row (keys, then sums) to its key's compacted row, in key order (executemany: one
    small statement, any number of rows)."""
    placeholders = ", ".join(["%s"] * (len(keys) + 1 + len(sums)))
    key_count = len(keys)
    sql = compacted_upsert_sql(table=table, keys=keys, sums=sums, select=f"VALUES ({placeholders})")
    ordered = sorted(rows, key=_row_key(key_count))
    cursor.executemany(sql, [(*row[:key_count], True, *row[key_count:]) for row in ordered])


def _row_key(key_count: int):
    return lambda row: tuple(row[:key_count])


def sqlite_utc_text(epoch: int) -> str:
    """An hour bucket as SQLite stores a UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def bucket_value(dialect: RollupDialect, epoch: int, *, is_date: bool) -> datetime | date | str:
    """A bucket (UTC epoch seconds) as the batch writes it: a datetime or date on PostgreSQL, the
    stored text on SQLite."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if is_date:
        return moment.date().isoformat() if dialect.vendor == "sqlite" else moment.date()
    return sqlite_utc_text(epoch) if dialect.vendor == "sqlite" else moment


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


def _pg_array_literal(values: Iterable[str]) -> str:
    """One text parameter per column, every element quoted: far cheaper for the driver than a list
    adapted element by element."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in escaped) + "}"


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
        return f"{column} = ANY(%s::text[])", [_pg_array_literal(ordered)]
    return f"{column} IN ({', '.join(['%s'] * len(ordered))})", ordered


def window_number_sql(connection: BaseDatabaseWrapper, column: str, boundaries: Sequence) -> tuple[str, list]:
    """The number k of the window [boundaries[k], boundaries[k + 1]) that `column` falls in, for
    values within [boundaries[0], boundaries[-1])."""
    if connection.vendor == "postgresql":
        literal = _pg_column_literal(boundaries, TIMESTAMP)
        return f"width_bucket({column}, %s::timestamptz[]) - 1", [literal]
    cases = " ".join(f"WHEN {column} < %s THEN {n}" for n in range(len(boundaries) - 1))
    return f"CASE {cases} END", [connection.ops.adapt_datetimefield_value(b) for b in boundaries[1:]]


def one_snapshot_begin(connection: BaseDatabaseWrapper) -> None:
    """At the start of a transaction: its statements read one snapshot (several reads that must
    agree). PostgreSQL's default gives each statement its own; SQLite's read transaction already
    holds one from its first read."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def sums_money_exactly(connection: BaseDatabaseWrapper) -> bool:
    """PostgreSQL sums numeric exactly, so it can rank groups by their summed cost; SQLite sums as
    floating point (core.money.cost_from_float), so its groups are ranked in Python on the exact reading."""
    return connection.vendor == "postgresql"
