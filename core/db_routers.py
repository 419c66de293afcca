"""Read replica routing: the stats, trend and export reads go to the `replica` alias, nothing else.

Django routes per model, but the same models are also read by ingestion (prices, counters), admin
and the schema guard, which must see the primary. So the router sends a read to the replica only
while a reporting selector has entered `reading_from_replica()`, and only for the models those
reports read. Installed (with the alias) only when DATABASE_REPLICA_URL is set; see settings.

Reads that must see the caller's own fresh writes never go to the replica (they run outside
`reading_from_replica()`, so they read default): ingestion's price lookups, counters and idempotency
keys, the budget check right after an ingest (budget/check, alert evaluation), admin, the schema
guard, retention/maintenance commands. Only the stats, cost trend, CSV export and the decision lookup
(usage/selectors.py), which a client reads some time after writing, may lag by the replica's delay.

Replica outage: the router probes the replica (`SELECT 1`, connect_timeout set in settings) at most
every REPLICA_PROBE_SECONDS per process and, while the probe fails, sends the reporting reads to
default. So a stopped replica costs at most one probe interval plus the probe's wait for a connection
(the connect timeout, or with the connection pool its AICOST_DB_POOL_TIMEOUT) of failed reads
(503 database_unavailable, never 500); once the probe succeeds again reads return to it.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DatabaseError, connections, router
from django.db.models import Model

logger = logging.getLogger(__name__)

REPLICA = "replica"
REPLICA_READ_MODELS = frozenset(
    {
        "usage.usagelog",
        "usage.usagerolluphour",
        "usage.usagerolluphourtotal",
        "usage.usagerollupdaily",
        "usage.usagerollupdailytotal",
        "pricing.modelpricing",
    }
)

REPLICA_PROBE_SECONDS = 2.0

_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


@contextmanager
def reading_from_replica() -> Iterator[None]:
    """Within this block (or a function it decorates) reporting reads may be served by the replica."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


def replica_read_alias(model: type[Model]) -> str:
    """The alias a reporting read of `model` uses now, for querysets evaluated later (streaming)."""
    with reading_from_replica():
        return router.db_for_read(model)


class _ReplicaProbe:
    """Whether the replica answered its last probe; probed again once the last answer is stale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = True
        self.checked_at = -float("inf")

    def available(self) -> bool:
        if time.monotonic() - self.checked_at < REPLICA_PROBE_SECONDS:
            return self.up
        with self._lock:  # One thread probes; the others use the last answer meanwhile.
            if time.monotonic() - self.checked_at >= REPLICA_PROBE_SECONDS:
                self.up = _probe()
                self.checked_at = time.monotonic()
        return self.up

    def reset(self) -> None:
        self.up, self.checked_at = True, -float("inf")


def _probe() -> bool:
    connection = connections[REPLICA]
    try:
        if not connection.in_atomic_block:  # Drop a connection the outage broke (never inside a transaction).
            connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError as error:
        logger.warning("replica unreachable, reporting reads use default: %s", error)
        connection.close()
        return False


replica_probe = _ReplicaProbe()


def replica_lag() -> dict | None:
    """The replica's state for the health API and /metrics: None without a replica alias, else
    {"up", "in_recovery", "lag_seconds", "lag_bytes"} (lag fields None when not measurable).
    lag_seconds: 0 when it has replayed everything it received, else the age of the last replayed
    transaction; lag_bytes: WAL written on default that the replica has not replayed yet."""
    if REPLICA not in settings.DATABASES or f"{__name__}.ReplicaRouter" not in settings.DATABASE_ROUTERS:
        return None  # No replica in use (an alias alone, as in tests, routes nothing there).
    state = {"up": False, "in_recovery": None, "lag_seconds": None, "lag_bytes": None}
    replica = connections[REPLICA]
    if replica.vendor != "postgresql":
        return state
    try:
        with replica.cursor() as cursor:
            cursor.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, CASE"
                " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
                " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
            )
            in_recovery, replay_lsn, lag_seconds = cursor.fetchone()
    except DatabaseError as error:
        logger.warning("replica lag unreadable: %s", error)
        replica.close()
        return state
    state.update(up=True, in_recovery=in_recovery)
    if not in_recovery:  # A mirror in tests, or a promoted standby: nothing to lag behind.
        state.update(lag_seconds=0.0, lag_bytes=0)
        return state
    state["lag_seconds"] = None if lag_seconds is None else float(lag_seconds)
    if replay_lsn is not None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [replay_lsn])
                state["lag_bytes"] = max(int(cursor.fetchone()[0]), 0)
        except DatabaseError as error:
            logger.warning("primary WAL position unreadable: %s", error)
    return state


class ReplicaRouter:
    def db_for_read(self, model: type[Model], **hints) -> str | None:
        if _reading_from_replica.get() and model._meta.label_lower in REPLICA_READ_MODELS:
            # Without the alias (a settings module that installs the router alone) reads stay on default.
            if REPLICA not in settings.DATABASES:
                return None
            return REPLICA if replica_probe.available() else None
        return None

    def db_for_write(self, model: type[Model], **hints) -> str | None:
        return None

    def allow_relation(self, obj1: Model, obj2: Model, **hints) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool | None:
        # The replica follows the primary's schema through replication; nothing is migrated there.
        return False if db == REPLICA else None
