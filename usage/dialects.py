"""Vendor differences of the rollup engine, in one place: PostgreSQL (production) and SQLite (bin/dev).

# --- Write side (rollup storage: appends, upserts, bucket arithmetic) ---------------------------

PostgreSQL batches append delta rows (a binary COPY per table) and a background
compaction folds them later (usage.rollups.rollups_compact); SQLite (one local writer) upserts the
compacted rows in the batch. Rebuilds on both regroup the log in SQL with the bucket expressions here.
Every SQL text here takes its table and column names from the caller (model metadata); values are
bound parameters.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime


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
