"""What the sync and asyncio clients share: the record fields, the bounded buffer, and how one batch's
answer from `POST /api/v1/usage/` is read (delivered, retried, or records refused).

No I/O here: the clients do the sending and the sleeping, so both follow the same rules."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime

logger = logging.getLogger("aicost_client")

# The fields of one record, as the usage API takes them (ingest/apis.py, UsageRecordSerializer).
TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)
FIELDS = frozenset(
    {
        "model_name",
        "decision_id",
        "idempotency_key",
        "user_id",
        *TOKEN_FIELDS,
        "usage",
        "response_time",
        "success",
        "error_message",
        "purpose",
        "timestamp",
        "cost",
    }
)
USAGE_PATH = "/api/v1/usage/"
MAX_KEY = 100  # idempotency_key, decision_id: at most 100 characters on the server.


def unknown_fields(fields) -> None:
    unknown = fields.keys() - FIELDS
    if unknown:
        raise TypeError(f"Not a field of an aicost record: {', '.join(sorted(unknown))}")


class KeyMaker:
    """Idempotency keys for records that have none: a random prefix per client, then a counter. Unique
    across processes and restarts (the prefix), cheap in the caller's thread (no uuid per record)."""

    def __init__(self) -> None:
        self.prefix = f"ac-{os.urandom(9).hex()}-"
        self._count = itertools.count(1)  # next() on a count is atomic under the GIL.

    def __call__(self) -> str:
        return self.prefix + str(next(self._count))


def prepared(fields: dict, keys: KeyMaker) -> dict:
    """The record as queued: an idempotency key and a moment (a float, formatted when sent) if it has
    none. The server stores a (decision_id, idempotency_key) pair once, so every retry of it is safe."""
    if not fields.get("idempotency_key"):
        fields["idempotency_key"] = keys()
    moment = fields.get("timestamp")
    if moment is None:
        fields["timestamp"] = time.time()
    elif isinstance(moment, datetime) and moment.utcoffset() is None:
        raise ValueError("timestamp must be an aware datetime (with a time zone), e.g. datetime.now(UTC)")
    return fields


def _wire_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # The API reads a cost given as a string exactly.
    return value


def wire(record: dict) -> dict:
    """One record as JSON takes it: the queued float moment as ISO 8601 in UTC, Decimals as strings."""
    out = dict(record)
    moment = out.get("timestamp")
    if isinstance(moment, float):
        out["timestamp"] = datetime.fromtimestamp(moment, UTC).isoformat()
    for name in ("timestamp", "cost"):
        if name in out:
            out[name] = _wire_value(out[name])
    return out


def body_of(records: list[dict]) -> bytes:
    return json.dumps({"records": records}, separators=(",", ":"), default=_wire_value).encode()


class Buffer:
    """The bounded in-memory queue: when full, a new record pushes out the oldest, which is counted.
    put() is what the caller's thread pays: one uncontended lock and a deque append."""

    def __init__(self, maxsize: int, batch_size: int, ready) -> None:
        if maxsize < 1 or batch_size < 1:
            raise ValueError("max_queue_size and batch_size must be at least 1")
        self.maxsize = maxsize
        self.batch_size = batch_size
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._ready = ready  # Called (outside the lock) when a whole batch is waiting.
        self.dropped = 0
        self.queued = 0

    def put(self, item: dict) -> None:
        with self._lock:
            items = self._items
            if len(items) >= self.maxsize:
                items.popleft()
                self.dropped += 1
            items.append(item)
            self.queued += 1
            whole = len(items) % self.batch_size == 0
        if whole:
            self._ready()

    def put_many(self, items: list[dict]) -> None:
        with self._lock:
            for item in items:
                if len(self._items) >= self.maxsize:
                    self._items.popleft()
                    self.dropped += 1
                self._items.append(item)
            self.queued += len(items)
            whole = len(self._items) >= self.batch_size
        if whole:
            self._ready()

    def requeue(self, items: list[dict]) -> None:
        """Put records taken but not sent back at the front (they are the oldest), within the bound."""
        with self._lock:
            room = self.maxsize - len(self._items)
            if room < len(items):
                self.dropped += len(items) - max(room, 0)
                items = items[len(items) - max(room, 0) :]
            self._items.extendleft(reversed(items))

    def take(self, limit: int) -> list[dict]:
        with self._lock:
            items = self._items
            count = min(limit, len(items))
            return [items.popleft() for _ in range(count)]

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Stats:
    """What became of the records: `queued` = delivered + duplicates + rejected + failed + dropped +
    abandoned + still pending."""

    queued: int = 0
    delivered: int = 0  # Stored by the server (its "stored").
    duplicates: int = 0  # Already stored (a retry of a stored record): the server skipped them.
    rejected: int = 0  # Refused by a 400 naming them: logged with the server's message, never retried.
    failed: int = 0  # Refused as a whole (401, 403, 404, 413, ...): logged, not retried.
    dropped: int = 0  # Pushed out of the full queue (the oldest first).
    abandoned: int = 0  # Still unsent when close() or exit ran out of time.
    retries: int = 0  # Requests sent again after a 503, 429, 5xx or a connection error.
    pending: int = 0  # In the queue or in flight now.
    requests: int = 0


@dataclass
class Batch:
    """Records in flight. `attempt` counts failed sends, for the backoff."""

    records: list[dict]
    attempt: int = 0
    body: bytes = b""
    extra: dict = field(default_factory=dict)

    def encoded(self) -> bytes:
        if not self.body:
            self.body = body_of([wire(record) for record in self.records])
        return self.body


RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class Answer:
    """What to do after one answer: `done`; `retry` after `wait` s (same records, same keys); `resend`
    at once without `refused` (indices, with the server's message); or `split` the batch (a 400 that
    names no record). `failed`: refused as a whole, not retried."""

    kind: str
    wait: float = 0.0
    refused: dict = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    message: str = ""


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential with jitter: base * 2**attempt, at most cap, times 0.5 to 1."""
    return min(cap, base * (2 ** min(attempt, 30))) * (0.5 + random.random() / 2)  # noqa: S311 -- jitter


def retry_after(value: str | None, cap: float) -> float | None:
    """Retry-After in seconds (a number, or an HTTP date), at most cap; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, min(cap, seconds))


_RECORD_PATH = re.compile(r"^records\[(\d+)\]")


def _first_message(detail, path: str) -> tuple[str, str] | None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            key_path = f"{path}[{key}]" if str(key).isdigit() else f"{path}.{key}"
            found = _first_message(value, key_path)
            if found:
                return found
        return None
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            found = _first_message(item, f"{path}[{index}]" if isinstance(item, dict | list) and item else path)
            if found:
                return found
        return None
    return (path, str(detail))


def refused_records(error: dict, count: int) -> dict[int, str]:
    """The records a 400 names, index -> "records[i].field: message" as the server words it. The API
    refuses the whole request for them (nothing is stored), naming them in error.fields.records (DRF's
    nested detail: a dict by index, or a list with an entry per record) or at least in error.field."""
    refused: dict[int, str] = {}
    records = (error.get("fields") or {}).get("records")
    entries = []
    if isinstance(records, dict):
        entries = [(key, value) for key, value in records.items() if str(key).isdigit()]
    elif isinstance(records, list) and all(isinstance(item, dict) for item in records):
        entries = [(index, value) for index, value in enumerate(records) if value]
    for key, value in entries:
        index = int(key)
        if 0 <= index < count:
            found = _first_message(value, f"records[{index}]")
            refused[index] = f"{found[0]}: {found[1]}" if found else error.get("message", "")
    if not refused:
        match = _RECORD_PATH.match(str(error.get("field") or ""))
        if match and int(match[1]) < count:
            refused[int(match[1])] = str(error.get("message", ""))
    return refused


def answer_of(
    status: int, headers, content: bytes, batch: Batch, *, base: float, cap: float, retry_after_max: float = 120.0
) -> Answer:
    """How to go on after the server answered `status` for `batch` (headers: a mapping, case-insensitive)."""
    try:
        body = json.loads(content) if content else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    if 200 <= status < 300:
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        stored = data.get("stored", len(batch.records))
        return Answer("done", stored=stored, duplicates=data.get("duplicates", len(batch.records) - stored))
    if status in RETRY_STATUSES:
        wait = retry_after(headers.get("retry-after"), retry_after_max) if status in (429, 503) else None
        if wait is None:
            wait = backoff(batch.attempt, base, cap)
        return Answer("retry", wait=wait, message=f"{status} {error.get('message', '')}".strip())
    if status == 400:
        refused = refused_records(error, len(batch.records))
        if refused:
            return Answer("resend", refused=refused)
        return Answer("split", message=str(error.get("message", "")))
    return Answer("failed", message=f"{status} {error.get('message') or content[:200]!r}")


def record_label(record: dict) -> str:
    parts = [f"model_name={record.get('model_name')!r}"]
    if record.get("decision_id"):
        parts.append(f"decision_id={record['decision_id']!r}")
    parts.append(f"idempotency_key={record.get('idempotency_key')!r}")
    return " ".join(parts)


class Deliveries:
    """The bookkeeping of one client's batches, whichever loop sends them: answers turned into the next
    step, the stats kept, refusals and failures logged."""

    def __init__(self, *, backoff_base: float, backoff_max: float, retry_after_max: float = 120.0) -> None:
        self.base, self.cap, self.retry_after_max = backoff_base, backoff_max, retry_after_max
        self.stats = Stats()
        self._lock = threading.Lock()

    def count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self.stats, name, getattr(self.stats, name) + amount)

    def answered(self, batch: Batch, status: int, headers, content: bytes) -> tuple[list[Batch], float | None]:
        """The batches still to send after this answer, and how long to wait before the first (None:
        at once). A refused record is logged and left out; the others keep their keys."""
        self.count(requests=1)
        answer = answer_of(
            status, headers, content, batch, base=self.base, cap=self.cap, retry_after_max=self.retry_after_max
        )
        if answer.kind == "done":
            self.count(delivered=answer.stored, duplicates=answer.duplicates)
            return [], None
        if answer.kind == "retry":
            batch.attempt += 1
            self.count(retries=1)
            logger.warning(
                "aicost answered %s for %d record(s); retrying in %.2f s",
                answer.message,
                len(batch.records),
                answer.wait,
            )
            return [batch], answer.wait
        if answer.kind == "resend":
            for index, message in sorted(answer.refused.items()):
                logger.error(
                    "aicost refused a record (%s): %s; not retried", record_label(batch.records[index]), message
                )
            self.count(rejected=len(answer.refused))
            kept = [record for index, record in enumerate(batch.records) if index not in answer.refused]
            return ([Batch(kept, attempt=batch.attempt)] if kept else []), None
        if answer.kind == "split":
            if len(batch.records) == 1:
                logger.error(
                    "aicost refused a record (%s): %s; not retried", record_label(batch.records[0]), answer.message
                )
                self.count(rejected=1)
                return [], None
            half = len(batch.records) // 2
            return [Batch(batch.records[:half], batch.attempt), Batch(batch.records[half:], batch.attempt)], None
        logger.error("aicost refused %d record(s): %s; not retried", len(batch.records), answer.message)
        self.count(failed=len(batch.records))
        return [], None

    def unreachable(self, batch: Batch, error: Exception) -> float:
        """A send that got no answer: the wait before the same records are sent again."""
        batch.attempt += 1
        wait = backoff(batch.attempt - 1, self.base, self.cap)
        self.count(requests=1, retries=1)
        logger.warning("aicost unreachable (%s) for %d record(s); retrying in %.2f s", error, len(batch.records), wait)
        return wait

    def abandon(self, records: int, why: str) -> None:
        if records:
            self.count(abandoned=records)
            logger.error("aicost: %d record(s) not sent: %s", records, why)


class RecordQueue:
    """What both clients share: their settings, the caller's side (record and record_many check the
    fields, give each record its idempotency key and queue it: no I/O) and the log of dropped records.
    `wake` is called when a batch is ready; a client starts sending from `_queued()` if it must."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int,
        max_queue_size: int,
        flush_interval: float,
        close_timeout: float,
        backoff_base: float,
        backoff_max: float,
        wake,
    ) -> None:
        self.url = url.rstrip("/") + USAGE_PATH
        self.batch_size = batch_size
        self.max_queue_size = max_queue_size
        self.flush_interval = flush_interval
        self.close_timeout = close_timeout
        self.backoff_max = backoff_max
        self._headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"}
        self._buffer = Buffer(max_queue_size, batch_size, wake)
        self._keys = KeyMaker()
        self._deliveries = Deliveries(backoff_base=backoff_base, backoff_max=backoff_max)
        self._in_flight = 0
        self._dropped_logged = 0
        self._deadline: float | None = None
        self._closed = False

    def record(self, model_name: str | None = None, **fields) -> None:
        """Queue one call: the fields of `POST /api/v1/usage/` (model_name, decision_id, user_id,
        prompt_tokens, completion_tokens, the other token kinds or a provider's `usage` object,
        response_time, success, error_message, purpose, timestamp, cost, idempotency_key)."""
        if model_name is not None:
            fields["model_name"] = model_name
        if fields.keys() - FIELDS or "model_name" not in fields:
            unknown_fields(fields)
            raise TypeError("model_name is required")
        if self._closed:
            self._deliveries.abandon(1, "the client is closed")
            return
        self._buffer.put(prepared(fields, self._keys))
        self._queued()

    def record_many(self, records: Iterable[Mapping]) -> None:
        """Queue several calls (each a mapping of record fields)."""
        batch = []
        for record in records:
            fields = dict(record)
            unknown_fields(fields)
            if "model_name" not in fields:
                raise TypeError("model_name is required")
            batch.append(prepared(fields, self._keys))
        if self._closed:
            self._deliveries.abandon(len(batch), "the client is closed")
            return
        self._buffer.put_many(batch)
        self._queued()

    def _queued(self) -> None:
        """Called after records were queued."""

    def _stats(self, pending: int) -> Stats:
        snapshot = Stats(**vars(self._deliveries.stats))
        snapshot.queued, snapshot.dropped, snapshot.pending = self._buffer.queued, self._buffer.dropped, pending
        return snapshot

    def _log_drops(self) -> None:
        dropped = self._buffer.dropped
        if dropped != self._dropped_logged:
            logger.error(
                "aicost queue full (%d records): dropped %d oldest record(s), %d in all",
                self.max_queue_size,
                dropped - self._dropped_logged,
                dropped,
            )
            self._dropped_logged = dropped
