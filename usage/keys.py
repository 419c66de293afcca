"""Writes of API keys: the plain key exists only in the return value of api_key_create."""

import functools
import math
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections, router, transaction
from django.utils import timezone

from usage.models import ApiKey, ApiKeyRateWindow, ApiKeyScope
from usage.selectors import api_key_hash

KEY_PREFIX_LENGTH = 8


RATE_WINDOW_SECONDS = 60


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scope: str = ApiKeyScope.WRITE_USAGE,
    created_by: AbstractBaseUser | None = None,
    ingest_records_per_minute: int | None = None,
    read_requests_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(KEY_PREFIX_LENGTH // 2)
    raw_key = f"aic_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        name=name,
        scope=scope,
        created_by=created_by,
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        ingest_records_per_minute=ingest_records_per_minute,
        read_requests_per_minute=read_requests_per_minute,
    )
    return api_key, raw_key


@transaction.atomic
def api_key_update(
    *, api_key: ApiKey, name: str, ingest_records_per_minute: int | None, read_requests_per_minute: int | None
) -> ApiKey:
    """What may change on an issued key: its name and its rate limits (None: unlimited). A new limit
    applies from the key's next request, to what it already used in the current window."""
    api_key.name = name
    api_key.ingest_records_per_minute = ingest_records_per_minute
    api_key.read_requests_per_minute = read_requests_per_minute
    api_key.save(update_fields=["name", "ingest_records_per_minute", "read_requests_per_minute"])
    return api_key


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int  # Seconds until the window the refusal counted in ends (0 when allowed).
    used: int = 0  # What the shared row holds after an allowed take (0: unknown, or refused).


def _rate_window_start(now: datetime) -> int:
    """The epoch second the fixed one-minute window holding `now` begins."""
    return int(now.timestamp()) // RATE_WINDOW_SECONDS * RATE_WINDOW_SECONDS


def api_key_rate_take(*, api_key_id: int, kind: str, amount: int, limit: int, now: datetime) -> RateDecision:
    """Take `amount` of a key's per-minute `limit` of `kind` in the fixed one-minute window holding
    `now`, all or nothing: one UPSERT ... RETURNING on the primary, so every worker and process shares
    the count and two requests never both take the last of it (the row lock orders them). The row moves
    on to a new window in the same statement. One statement: atomic by itself, in autocommit it holds
    the row lock only for its own duration (never for a request's transaction)."""
    start = _rate_window_start(now)
    retry_after = max(1, math.ceil(start + RATE_WINDOW_SECONDS - now.timestamp()))
    if amount > limit:
        return RateDecision(allowed=False, retry_after=retry_after)
    with connections[router.db_for_write(ApiKeyRateWindow)].cursor() as cursor:
        cursor.execute(_rate_take_sql(), [api_key_id, kind, start, amount, limit])
        taken = cursor.fetchone()
    if taken:
        return RateDecision(allowed=True, retry_after=0, used=taken[0])
    return RateDecision(allowed=False, retry_after=retry_after)


@dataclass(slots=True)
class _Lease:
    window_start: int
    limit: int
    tokens: int = 0  # Taken from the shared row for this window and not yet spent by this process.
    remaining: int = 0  # What the shared row had left when this process last took from it.
    leasing: threading.Lock = field(default_factory=threading.Lock)  # One take at a time per key and kind.


class _RateLeases:
    """This process's allowances, one per key and kind, each leased from the key's shared row
    (api_key_rate_take) and valid until the window it was taken in ends. The shared row alone decides
    (every lease is taken from it atomically), so the processes together never admit more than the limit
    in a window. Every thread of the process spends from the same lease, under a lock held only for the
    arithmetic; a thread that finds it short takes from the row while holding the lease's own lock, so
    threads wanting more wait for that one take instead of leasing at once: a process holds at most one
    lease's remainder, and refuses only when its lease cannot pay and the row had too little left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, str], _Lease] = {}

    def clear(self) -> None:
        """A forked child starts without its parent's leases (the parent may still spend them)."""
        self._lock = threading.Lock()
        self._leases = {}

    def _spend(self, slot: tuple[int, str], start: int, limit: int, amount: int) -> tuple[_Lease, bool]:
        """Under self._lock: the slot's current lease (a new one when its window ended or the key's limit
        changed: what was leased under the old limit is dropped, so a lowered limit applies at once), and
        whether it paid `amount`."""
        lease = self._leases.get(slot)
        if lease is None or lease.window_start != start or lease.limit != limit:
            lease = self._leases[slot] = _Lease(window_start=start, limit=limit, remaining=limit)
        if lease.tokens >= amount:
            lease.tokens -= amount
            return lease, True
        return lease, False

    def admit(self, *, api_key_id: int, kind: str, amount: int, limit: int, now: datetime) -> RateDecision:
        start = _rate_window_start(now)
        slot = (api_key_id, kind)
        with self._lock:
            lease, paid = self._spend(slot, start, limit, amount)
        while not paid:
            with lease.leasing:
                with self._lock:
                    current, paid = self._spend(slot, start, limit, amount)
                    if paid or current is not lease:
                        # Paid by another thread's take while this one waited, or a new window or limit
                        # came meanwhile: that lease has a lock of its own.
                        lease = current
                        continue
                    # This request spends what the lease holds and takes the rest from the shared row; the
                    # tokens are reserved now (other threads cannot spend them meanwhile), given back on a
                    # refusal.
                    held, lease.tokens = lease.tokens, 0
                    need = amount - held
                    ask = max(need, _lease_size(remaining=lease.remaining))
                try:
                    decision = api_key_rate_take(api_key_id=api_key_id, kind=kind, amount=ask, limit=limit, now=now)
                    if not decision.allowed and ask > need:
                        # The row has less left than a lease: take just what this request lacks.
                        ask = need
                        decision = api_key_rate_take(
                            api_key_id=api_key_id, kind=kind, amount=need, limit=limit, now=now
                        )
                except BaseException:  # The database failed: the reserved tokens are still this process's.
                    with self._lock:
                        lease.tokens += held
                    raise
                with self._lock:
                    if not decision.allowed:
                        lease.tokens += held
                        lease.remaining = 0
                    else:
                        lease.remaining = limit - decision.used
                        lease.tokens += ask - need  # What the take brought beyond this request joins the lease.
                return decision
        return RateDecision(allowed=True, retry_after=0)


def _lease_size(*, remaining: int) -> int:
    """A share of what the shared row had left when last seen: processes lease ever smaller chunks as a
    window fills, so little is left stranded in one process while another is refused; one token (a
    take per request, as without leases) once fewer than 2 x processes are left."""
    share = remaining // (2 * max(1, settings.AICOST_RATE_LEASE_PROCESSES))
    return max(1, min(share, settings.AICOST_RATE_LEASE_MAX))


_rate_leases = _RateLeases()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rate_leases.clear)


def api_key_rate_admit(*, api_key_id: int, kind: str, amount: int, limit: int, now: datetime) -> RateDecision:
    """Admit `amount` of a key's per-minute `limit` of `kind` (all or nothing), from this process's
    lease when it holds enough: no statement at all. Otherwise one take from the shared row
    (api_key_rate_take) of what the request lacks plus a new lease (_lease_size), or of just what it
    lacks when the row has less left. The trade-off (README, Rate limits): near the limit one process may
    refuse while another still holds leased tokens, and a killed process's lease is lost, until the
    window ends."""
    if amount > limit:
        return api_key_rate_take(api_key_id=api_key_id, kind=kind, amount=amount, limit=limit, now=now)
    return _rate_leases.admit(api_key_id=api_key_id, kind=kind, amount=amount, limit=limit, now=now)


@functools.cache
def _rate_take_sql() -> str:
    """PostgreSQL and SQLite (3.35+) alike. A row of an older window restarts at `amount`; a request of
    an older window arriving late counts in the row's newer one (a window never goes back)."""
    table = ApiKeyRateWindow._meta.db_table
    return f"""
        INSERT INTO {table} (api_key_id, kind, window_start, used) VALUES (%s, %s, %s, %s)
        ON CONFLICT (api_key_id, kind) DO UPDATE SET
            used = CASE WHEN {table}.window_start < excluded.window_start THEN excluded.used
                        ELSE {table}.used + excluded.used END,
            window_start = CASE WHEN {table}.window_start < excluded.window_start THEN excluded.window_start
                                ELSE {table}.window_start END
        WHERE {table}.window_start < excluded.window_start OR {table}.used + excluded.used <= %s
        RETURNING used"""  # noqa: S608 -- the table name is the model's, the values are parameters.


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
