"""Writes of API keys: the plain key exists only in the return value of api_key_create."""

import functools
import math
import secrets
from dataclasses import dataclass
from datetime import datetime

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


def api_key_rate_take(*, api_key_id: int, kind: str, amount: int, limit: int, now: datetime) -> RateDecision:
    """Take `amount` of a key's per-minute `limit` of `kind` in the fixed one-minute window holding
    `now`, all or nothing: one UPSERT ... RETURNING on the primary, so every worker and process shares
    the count and two requests never both take the last of it (the row lock orders them). The row moves
    on to a new window in the same statement. One statement: atomic by itself, in autocommit it holds
    the row lock only for its own duration (never for a request's transaction)."""
    start = int(now.timestamp()) // RATE_WINDOW_SECONDS * RATE_WINDOW_SECONDS
    retry_after = max(1, math.ceil(start + RATE_WINDOW_SECONDS - now.timestamp()))
    if amount > limit:
        return RateDecision(allowed=False, retry_after=retry_after)
    with connections[router.db_for_write(ApiKeyRateWindow)].cursor() as cursor:
        cursor.execute(_rate_take_sql(), [api_key_id, kind, start, amount, limit])
        taken = cursor.fetchone()
    return RateDecision(allowed=True, retry_after=0) if taken else RateDecision(allowed=False, retry_after=retry_after)


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
