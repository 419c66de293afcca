"""Upkeep of the usage rollups: batches add their sums; compaction keeps the tables small.

Two grains: UTC hours, whose rows also hold the sums of the hour's first 15, 30 and 45 minutes
(exact calendar days in any time zone), and UTC days (long ranges); each per model and for all
models together (the unfiltered daily trend reads a few rows per bucket).

A rollup row is compacted (at most one per key) or a delta (any number per key). Readers sum every
row of their range, of either kind, so answers are exact at every moment with nothing to add.
Each batch sums its calls per 15-minute bucket and model in Python, then:
  - PostgreSQL: appends them as delta rows in its transaction (a binary COPY per rollup table): no
    row to find, lock or rewrite. A background
    thread per process compacts every AICOST_ROLLUP_COMPACT_SECONDS (rollups_compact), in its own
    transaction, under an advisory lock: one statement deletes the committed deltas and adds them,
    per key and in key order, to the compacted rows. A failing compaction is logged and retried;
    no client request waits for it or fails with it.
  - SQLite (local use, one writer): upserts the compacted rows directly (usage.dialects).

What a row sums is declared once, in usage.rollup_sums.ROLLUP_SUMS: every column list, SQL
aggregate and batch sum here is derived from it, in its order (SUM_NAMES).
"""

import logging
import math
import operator
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Protocol

from django.conf import settings
from django.db import OperationalError, connection, models, transaction
from django.db.models import Max

from usage.dialects import (
    DeltaRows,
    RollupDialect,
    bucket_value,
    compacted_upsert_sql,
    postgresql_deltas_append,
    rollup_dialect,
    sqlite_compacted_upsert,
    upserts_run,
)
from usage.models import (
    PREFIX_MINUTES,
    UsageLog,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
    prefix_column,
)
from usage.partitions import month_bounds_utc, next_month
from usage.rollup_sums import ROLLUP_SUMS, SUM_NAMES

logger = logging.getLogger("aicost.rollups")
QUARTER_HOUR = timedelta(minutes=15)


class LoggedCall(Protocol):
    """What the rollups read of a stored call (usage.services.UsageRow, or a UsageLog): its bucket
    and model, and the columns the declared sums read (usage.rollup_sums)."""

    model_name: str
    timestamp: datetime
    success: bool
    cost_source: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    input_audio_tokens: int
    output_audio_tokens: int
    output_image_tokens: int
    cost: Decimal | None
    response_time: float | None


def quarter_hour_floor(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


@dataclass(frozen=True)
class Grain:
    """One rollup table: its bucket column, whether rows are per model, and whether they hold the
    hour's prefix sums."""

    model: type[models.Model]
    key_column: str
    key_type: str
    per_model: bool
    prefixes: bool

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def bucket_of_hour_sql(self, dialect: RollupDialect) -> str:
        """This grain's bucket, in SQL, of an hour-shaped relation's `bucket` (an hour's start)."""
        return dialect.day_of_hour if self.key_type == "date" else "bucket"

    def bucket_of_hour(self, hour: int) -> int:
        """This grain's bucket (epoch seconds) of an hour's start (epoch seconds)."""
        return hour - hour % SECONDS_PER_DAY if self.key_type == "date" else hour


HOUR_GRAIN = Grain(UsageRollupHour, "bucket", "timestamptz", True, True)
HOUR_TOTAL_GRAIN = Grain(UsageRollupHourTotal, "bucket", "timestamptz", False, True)
DAY_GRAIN = Grain(UsageRollupDaily, "day", "date", True, False)
DAY_TOTAL_GRAIN = Grain(UsageRollupDailyTotal, "day", "date", False, False)
# The order rollup tables are written in (compaction, rebuild, SQLite batches).
GRAINS = (HOUR_GRAIN, HOUR_TOTAL_GRAIN, DAY_GRAIN, DAY_TOTAL_GRAIN)


QUARTER_SECONDS, SECONDS_PER_HOUR, SECONDS_PER_DAY = 15 * 60, 3600, 86_400

_TIMESTAMP, _MODEL_NAME = attrgetter("timestamp"), attrgetter("model_name")
_ZEROS = [rollup_sum.type.zero for rollup_sum in ROLLUP_SUMS]


def quarter_sums(logs: Iterable[LoggedCall]) -> dict[tuple[int, str], list]:
    """Sums of the logs per (15-minute bucket as UTC epoch seconds, model_name), in SUM_NAMES
    order. Each declared sum takes its calls' shares in one pass over the batch (C loops, no
    per-call Python per sum); integer buckets: a batch of a thousand calls is summed in about a
    millisecond."""
    logs = logs if isinstance(logs, Sequence) else list(logs)
    epochs = map(int, map(datetime.timestamp, map(_TIMESTAMP, logs)))
    keys = [(epoch - epoch % QUARTER_SECONDS, name) for epoch, name in zip(epochs, map(_MODEL_NAME, logs), strict=True)]
    shares_per_call = zip(*(rollup_sum.source.shares(logs) for rollup_sum in ROLLUP_SUMS), strict=True)
    groups: dict[tuple[int, str], list[tuple]] = defaultdict(list)
    for key, shares in zip(keys, shares_per_call, strict=True):
        groups[key].append(shares)
    return {key: _added_up(calls) for key, calls in groups.items()}


def _added_up(calls: list[tuple]) -> list:
    """The calls' shares added up per sum, from the sums' typed zeros (True + 0 is 1; a lone call,
    common when a batch spreads over a day, skips the column sums)."""
    if len(calls) == 1:
        return list(map(operator.add, _ZEROS, calls[0]))
    return list(map(sum, zip(*calls, strict=True), _ZEROS))


def _key_columns(grain: Grain) -> list[str]:
    return [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]


def rollup_columns(grain: Grain) -> list[str]:
    """The sums a grain's rows hold: SUM_NAMES, then for hour grains each prefix of them."""
    if not grain.prefixes:
        return list(SUM_NAMES)
    return [*SUM_NAMES, *(prefix_column(c, minutes) for minutes in PREFIX_MINUTES for c in SUM_NAMES)]


def _column_types(grain: Grain) -> list[str]:
    """PostgreSQL types of rollup_columns(grain) (binary COPY)."""
    types = [rollup_sum.type.sql_type for rollup_sum in ROLLUP_SUMS]
    return types * (1 + len(PREFIX_MINUTES)) if grain.prefixes else types


# --- A batch's sums, per grain, in Python -------------------------------------------------------

RowKey = tuple[int, str | None]  # (bucket in epoch seconds, model_name; None in the all-models grains)


def _added(left: list, right: list) -> list:
    return list(map(operator.add, left, right))


def hour_rows(sums: dict[tuple[int, str], list]) -> dict[RowKey, list]:
    """The batch's 15-minute sums as per-model hour rows: the hour's sums, then its first 15, 30 and
    45 minutes' (rollup_columns(HOUR_GRAIN) order)."""
    quarters: dict[RowKey, list] = {}
    for (epoch, model_name), values in sums.items():
        parts = quarters.setdefault((epoch - epoch % SECONDS_PER_HOUR, model_name), [None] * 4)
        parts[epoch % SECONDS_PER_HOUR // QUARTER_SECONDS] = values
    rows = {}
    for key, parts in quarters.items():
        prefixes, running = [], _ZEROS
        for part in parts:
            if part is not None:
                running = _added(running, part)
            prefixes.append(running)
        whole_hour, first_minutes = prefixes[3], prefixes[:3]
        rows[key] = [value for values in (whole_hour, *first_minutes) for value in values]
    return rows


def grain_rows(grain: Grain, hours: dict[RowKey, list]) -> dict[RowKey, list]:
    """Per-model hour rows regrouped to the grain's keys (rollup_columns(grain) values)."""
    if grain is HOUR_GRAIN:
        return hours
    width = len(rollup_columns(grain))
    rows: dict[RowKey, list] = {}
    for (hour, model_name), values in hours.items():
        key = (grain.bucket_of_hour(hour), model_name if grain.per_model else None)
        row = rows.get(key)
        rows[key] = values[:width] if row is None else _added(row, values[:width])
    return rows


def _row_values(grain: Grain, dialect: RollupDialect, key: RowKey, values: list) -> list:
    bucket, model_name = key
    keys = [bucket_value(dialect, bucket, is_date=grain.key_type == "date")]
    return [*keys, model_name, *values] if grain.per_model else [*keys, *values]


def _grain_batch_rows(grain: Grain, dialect: RollupDialect, hours: dict[RowKey, list]) -> list[list]:
    return [_row_values(grain, dialect, key, values) for key, values in grain_rows(grain, hours).items()]


def _delta_rows(grain: Grain, hours: dict[RowKey, list]) -> DeltaRows:
    key_types = ["date" if grain.key_type == "date" else "timestamptz"] + (["text"] if grain.per_model else [])
    return DeltaRows(
        table=grain.table,
        columns=[*_key_columns(grain), *rollup_columns(grain)],
        types=[*key_types, *_column_types(grain)],
        rows=_grain_batch_rows(grain, rollup_dialect(connection), hours),
    )


def _deltas_append(hours: dict[RowKey, list]) -> None:
    """PostgreSQL: the batch's sums as delta rows of every grain (usage.dialects)."""
    with connection.cursor() as cursor:
        postgresql_deltas_append(cursor.cursor, tables=[_delta_rows(grain, hours) for grain in GRAINS])


def _compacted_upsert(hours: dict[RowKey, list]) -> None:
    """SQLite: add the batch's sums to the compacted rows of every grain, grain by grain."""
    dialect = rollup_dialect(connection)
    with connection.cursor() as cursor:
        for grain in GRAINS:
            rows = _grain_batch_rows(grain, dialect, hours)
            sqlite_compacted_upsert(
                cursor, table=grain.table, keys=_key_columns(grain), sums=rollup_columns(grain), rows=rows
            )


def rollups_apply_logs(*, logs: Sequence[LoggedCall]) -> None:
    """Add the logs to every rollup. Must run in the transaction that stores the logs."""
    if not logs:
        return
    hours = hour_rows(quarter_sums(logs))
    if rollup_dialect(connection).appends_deltas:
        _deltas_append(hours)
        rollups_compactor_ensure()
    else:
        _compacted_upsert(hours)


def _negated(values: list) -> list:
    return [-value for value in values]


def rollups_apply_changes(*, removed: Sequence[LoggedCall], added: Sequence[LoggedCall]) -> None:
    """Take calls as they were out of every rollup and add them as they are now (repricing: the same
    calls with a new cost, source or model), as the difference only, the way batches add: delta rows
    (PostgreSQL) or upserts (SQLite). Keys whose difference is zero in every sum are left alone.
    Must run in the transaction that changes the logs."""
    new_hours = hour_rows(quarter_sums(added)) if added else {}
    hours = {key: _negated(values) for key, values in (hour_rows(quarter_sums(removed)) if removed else {}).items()}
    for key, values in new_hours.items():
        hours[key] = _added(hours[key], values) if key in hours else values
    hours = {key: values for key, values in hours.items() if any(values)}
    if not hours:
        return
    if rollup_dialect(connection).appends_deltas:
        _deltas_append(hours)
        rollups_compactor_ensure()
    else:
        _compacted_upsert(hours)


# --- Compaction (PostgreSQL) --------------------------------------------------------------------

COMPACT_LOCK = 0x61695F666F6C64  # pg_(try_)advisory_xact_lock key: one compaction (or rebuild) at a time.


def _compact_sql() -> str:
    """One statement: for each grain, delete the deltas committed before it began and add them,
    summed per key and in key order (the order rows are locked in), to the compacted rows. Returns
    the number of delta rows compacted."""
    ctes = []
    for n, grain in enumerate(GRAINS):
        keys, sums = _key_columns(grain), rollup_columns(grain)
        order = ", ".join(str(position) for position in range(1, len(keys) + 1))
        ctes.append(
            f"d{n} AS (DELETE FROM {grain.table} WHERE NOT compacted RETURNING {', '.join([*keys, *sums])})"  # noqa: S608
        )
        select = (
            f"SELECT {', '.join(keys)}, true, {', '.join(f'sum({c})' for c in sums)} "  # noqa: S608
            f"FROM d{n} GROUP BY {order} ORDER BY {order}"
        )
        ctes.append(f"u{n} AS ({compacted_upsert_sql(table=grain.table, keys=keys, sums=sums, select=select)})")
    counted = " + ".join(f"(SELECT count(*) FROM d{n})" for n in range(len(GRAINS)))  # noqa: S608
    return f"WITH {', '.join(ctes)} SELECT {counted}"


def rollups_compact(*, lock_timeout_ms: int | None = None) -> int | None:
    """Move every committed delta row into the compacted rows, in its own transaction (never a
    client batch's); returns the number of delta rows compacted, or None when another compaction
    holds the lock (it compacts them instead) and, with lock_timeout_ms, still does after waiting
    that long. Readers see the rollups before or after it, never half: its work is one statement.
    SQLite: nothing to do (batches write compacted rows)."""
    if not rollup_dialect(connection).appends_deltas:
        return 0
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if not _compact_lock_take(cursor, lock_timeout_ms):
                return None
            cursor.execute(_compact_sql())
            return cursor.fetchone()[0]
    except OperationalError as error:
        if _is_lock_timeout(error):
            return None
        raise


def _compact_lock_take(cursor, lock_timeout_ms: int | None) -> bool:
    if lock_timeout_ms is None:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [COMPACT_LOCK])
        return cursor.fetchone()[0]
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{max(lock_timeout_ms, 1)}ms"])
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COMPACT_LOCK])
    cursor.execute("SET LOCAL lock_timeout = DEFAULT")
    return True


def _is_lock_timeout(error: OperationalError) -> bool:
    return getattr(getattr(error.__cause__, "diag", None), "sqlstate", None) == "55P03"  # lock_not_available


# --- The compactor: a background thread per process ----------------------------------------------


@dataclass
class _Compactor:
    pid: int | None = None
    thread: threading.Thread | None = None
    stop: threading.Event | None = None


_compactor = _Compactor()
_compactor_lock = threading.Lock()


def _compactor_forget_after_fork() -> None:
    """A forked child has no compactor thread (only the forking thread survives a fork)."""
    global _compactor_lock
    _compactor.pid = _compactor.thread = _compactor.stop = None
    _compactor_lock = threading.Lock()


os.register_at_fork(after_in_child=_compactor_forget_after_fork)
IDLE_POLL_SECONDS = 1.0  # With an infinite interval the thread only checks, this often, whether it must stop.


def rollups_compactor_ensure() -> None:
    """Start this process's compactor thread unless it runs (ingestion calls this; cheap). Only on
    PostgreSQL and with a finite AICOST_ROLLUP_COMPACT_SECONDS; a forked child starts its own."""
    if math.isinf(settings.AICOST_ROLLUP_COMPACT_SECONDS) or not rollup_dialect(connection).appends_deltas:
        return
    pid = os.getpid()
    if _compactor.pid == pid and _compactor.thread is not None and _compactor.thread.is_alive():
        return
    with _compactor_lock:
        if _compactor.pid == pid and _compactor.thread is not None and _compactor.thread.is_alive():
            return
        stop = threading.Event()
        thread = threading.Thread(target=_compact_forever, args=(stop,), name="aicost-rollups-compactor", daemon=True)
        _compactor.pid, _compactor.thread, _compactor.stop = pid, thread, stop
        thread.start()


def rollups_compactor_stop(*, timeout: float = 10.0) -> None:
    """Stop this process's compactor thread, if it runs, and wait for it (tests, shutdown)."""
    with _compactor_lock:
        thread, stop = _compactor.thread, _compactor.stop
        if _compactor.pid != os.getpid() or thread is None or stop is None:
            return
        stop.set()
        _compactor.pid = _compactor.thread = _compactor.stop = None
    thread.join(timeout)


def rollups_compactor_running() -> bool:
    thread = _compactor.thread
    return _compactor.pid == os.getpid() and thread is not None and thread.is_alive()


def _compact_forever(stop: threading.Event) -> None:
    """Compact every AICOST_ROLLUP_COMPACT_SECONDS (read each cycle) until stopped, on this thread's
    own connection (reused between cycles, closed when broken and on exit)."""
    try:
        while True:
            interval = settings.AICOST_ROLLUP_COMPACT_SECONDS
            if stop.wait(IDLE_POLL_SECONDS if interval == math.inf else interval):
                return
            if interval != math.inf:
                rollups_compact_cycle()
    finally:
        connection.close()


def rollups_compact_cycle() -> int | None:
    """One cycle of the compactor: compact, and on failure log it (with the exception) and drop the
    connection; the next cycle retries. Never raises: no client request depends on it."""
    try:
        compacted = rollups_compact()
    except Exception:
        logger.exception("Rollup compaction failed; retrying in the next cycle")
        _connection_tidy(failed=True)
        return None
    _connection_tidy(failed=False)
    return compacted


def _connection_tidy(*, failed: bool) -> None:
    """The thread's connection: dropped after a failure (it may be broken), else kept while usable
    (CONN_MAX_AGE). Inside a caller's transaction (a test running a cycle) it is not ours to close."""
    if connection.in_atomic_block:
        return
    if failed:
        connection.close()
    else:
        connection.close_if_unusable_or_obsolete()


# --- Rebuild from the log -----------------------------------------------------------------------

_Q_COLUMNS = ["bucket", "quarter", "model_name", *SUM_NAMES]


def _hours_from_quarters_sql(quarters_sql: str, dialect: RollupDialect) -> str:
    """The hour-shaped sums of a relation of 15-minute sums (columns _Q_COLUMNS): a prefix of n
    quarters sums the quarters before the n-th."""
    sums = [f"sum({c}) AS {c}" for c in SUM_NAMES]
    for minutes in PREFIX_MINUTES:
        sums += [
            f"sum(CASE WHEN quarter < {minutes // 15} THEN {c} ELSE 0 END) AS {prefix_column(c, minutes)}"
            for c in SUM_NAMES
        ]
    return (
        f"SELECT {dialect.hour_of_quarter} AS bucket, model_name, {', '.join(sums)} "  # noqa: S608
        f"FROM ({quarters_sql}) AS q GROUP BY 1, 2"
    )


def _grain_from_hours_upsert_sql(grain: Grain, dialect: RollupDialect) -> str:
    """Compacted rows of the hour-shaped relation h regrouped by the grain's keys, in key order."""
    keys = _key_columns(grain)
    stored = rollup_columns(grain)
    key_values = ", ".join([grain.bucket_of_hour_sql(dialect), *keys[1:]])
    order = ", ".join(str(n) for n in range(1, len(keys) + 1))
    # WHERE true: SQLite's parser needs it between SELECT and ON CONFLICT. Names come from metadata.
    select = (
        f"SELECT {key_values}, true, {', '.join(f'sum({c})' for c in stored)} FROM h WHERE true "  # noqa: S608
        f"GROUP BY {order} ORDER BY {order}"
    )
    return compacted_upsert_sql(table=grain.table, keys=keys, sums=stored, select=select)


def _log_quarters_sql(dialect: RollupDialect, where: str) -> str:
    """The log's 15-minute sums as relation q (columns _Q_COLUMNS)."""
    sums = ", ".join(f"{rollup_sum.source.sql()} AS {rollup_sum.name}" for rollup_sum in ROLLUP_SUMS)
    grouped = (
        f"SELECT {dialect.quarter_of_log} AS bucket, model_name, {sums} "  # noqa: S608 (model metadata)
        f"FROM {UsageLog._meta.db_table} {where} GROUP BY 1, 2"
    )
    return f"SELECT bucket, {dialect.quarter_of_hour} AS quarter, {', '.join(_Q_COLUMNS[2:])} FROM ({grouped}) AS s"  # noqa: S608


@transaction.atomic
def rollups_rebuild() -> int:
    """Recompute every rollup from the whole log, in the database (after a restore or a manual fix):
    both kinds of row are deleted and compacted rows written. Holds an exclusive lock on the log
    and the compaction lock meanwhile, so no batch is stored half-counted. Returns the number of
    log rows summed.

    Months that retention dropped from the log keep their rollups: they are all that is left of
    them. Retention drops whole UTC months, so every grain's buckets split cleanly at that edge."""
    since = _rebuild_since()
    dialect = rollup_dialect(connection)
    with connection.cursor() as cursor:
        if dialect.appends_deltas:
            cursor.execute(f"LOCK TABLE {UsageLog._meta.db_table} IN EXCLUSIVE MODE")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COMPACT_LOCK])  # No compaction meanwhile.
        for grain in GRAINS:
            where, params = _from_edge(grain.key_column, grain.key_type, since)
            cursor.execute(f"DELETE FROM {grain.table} {where}", params)  # noqa: S608 (model metadata)
        where, params = _from_edge('"timestamp"', "timestamptz", since)
        hours = _hours_from_quarters_sql(_log_quarters_sql(dialect, where), dialect)
        upserts_run(cursor, dialect, hours, params, (_grain_from_hours_upsert_sql(grain, dialect) for grain in GRAINS))
        where, params = _from_edge("day", "date", since)
        cursor.execute(f"SELECT coalesce(sum(calls), 0) FROM {DAY_TOTAL_GRAIN.table} {where}", params)  # noqa: S608
        return cursor.fetchone()[0]


def rollups_rebuild_first_month(*, using: str = "default") -> date | None:
    """First UTC month a rebuild recomputes: the one after the last month retention dropped (None:
    none dropped, a rebuild recomputes everything)."""
    retired = UsageRetiredMonth.objects.using(using).aggregate(last=Max("month"))["last"]
    return None if retired is None else next_month(retired)


def _rebuild_since() -> datetime | None:
    first_month = rollups_rebuild_first_month()
    return None if first_month is None else month_bounds_utc(first_month)[0]


def _from_edge(column: str, column_type: str, since: datetime | None) -> tuple[str, list]:
    """WHERE clause keeping `column` >= since, with the value adapted for the database."""
    if since is None:
        return "", []
    ops = connection.ops
    value = ops.adapt_datefield_value(since.date()) if column_type == "date" else ops.adapt_datetimefield_value(since)
    return f"WHERE {column} >= %s", [value]
