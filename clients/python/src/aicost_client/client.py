"""AicostClient: records calls without blocking the caller; background threads send them in batches."""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable

import httpx

from aicost_client._core import (
    Batch,
    Deliveries,
    RecordQueue,
    Stats,
    logger,
)


def send_until_done(
    *,
    http: httpx.Client,
    url: str,
    headers: dict,
    deliveries: Deliveries,
    batch: Batch,
    deadline: Callable[[], float | None],
    sleep: Callable[[float], None],
) -> int:
    """Send `batch` (and what a 400 leaves of it) until every record is stored, refused or failed;
    retried with backoff and the same idempotency keys. Stops at `deadline()` (a monotonic time, None:
    none yet); returns how many records were left unsent then."""
    pending = [batch]
    while pending:
        current = pending.pop()
        while True:
            limit = deadline()
            if limit is not None and time.monotonic() >= limit:
                return sum(len(b.records) for b in (current, *pending))
            try:
                response = http.post(url, content=current.encoded(), headers=headers)
            except httpx.HTTPError as error:
                wait = deliveries.unreachable(current, error)
            else:
                following, wait = deliveries.answered(current, response.status_code, response.headers, response.content)
                if following != [current]:
                    pending.extend(following)
                    break
            limit = deadline()
            if limit is not None:
                wait = min(wait, max(0.0, limit - time.monotonic()))
            sleep(wait)
    return 0


class AicostClient(RecordQueue):
    """Send usage records to aicost (`POST /api/v1/usage/`) in the background.

    record() and record_many() only queue: a bounded queue of `max_queue_size` records that drops
    the oldest when full (counted in `stats.dropped`, logged). `senders` threads send batches of up
    to `batch_size`, at least every `flush_interval` s; a 503/429 is retried after its Retry-After,
    other 5xx and connection errors with exponential backoff (`backoff_base` doubling up to
    `backoff_max`), always with the same idempotency keys, so a retried record is stored once. A
    record a 400 names is logged with the server's message and left out; the rest are sent again.
    close() (also on leaving a `with` block, and at interpreter exit) sends what is queued, for at
    most `close_timeout` s. Thread-safe."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        max_queue_size: int = 100_000,
        flush_interval: float = 1.0,
        senders: int = 2,
        timeout: float = 10.0,
        close_timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._wake = threading.Event()
        super().__init__(
            url,
            api_key,
            batch_size=batch_size,
            max_queue_size=max_queue_size,
            flush_interval=flush_interval,
            close_timeout=close_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            wake=self._wake.set,
        )
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout, transport=transport, limits=httpx.Limits(max_connections=max(senders, 1) + 1)
        )
        self._idle = threading.Condition()
        self._closing = threading.Event()
        self._close_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"aicost-sender-{n}", daemon=True) for n in range(max(senders, 1))
        ]
        for thread in self._threads:
            thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # The caller's side (record() and record_many(), a few microseconds and never I/O: RecordQueue).

    @property
    def stats(self) -> Stats:
        """A snapshot of what became of the records so far."""
        with self._idle:
            pending = len(self._buffer) + self._in_flight
        return self._stats(pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent (or refused), at most `timeout` s. True if it was."""
        limit = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while len(self._buffer) or self._in_flight:
                self._wake.set()
                left = None if limit is None else limit - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.05 if left is None else min(0.05, left))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (at most `timeout` s, default close_timeout), then stop. Records still
        unsent then are counted in stats.abandoned and logged."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        timeout = self.close_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(max(0.0, self._deadline - time.monotonic()) + 0.5)
        left = self._buffer.take(len(self._buffer) + 1)
        self._deliveries.abandon(len(left), f"close() ran out of time ({timeout} s)")
        self._log_drops()
        if self._own_http and not any(thread.is_alive() for thread in self._threads):
            self._http.close()

    def __enter__(self) -> AicostClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # The senders' side.

    def _take(self) -> list[dict]:
        with self._idle:
            records = self._buffer.take(self.batch_size)
            self._in_flight += len(records)
            return records

    def _finished(self, count: int) -> None:
        with self._idle:
            self._in_flight -= count
            self._idle.notify_all()

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if not self._closing.is_set():
            started = time.monotonic()
            if not self._closing.wait(seconds):
                return
            seconds -= time.monotonic() - started
        if self._deadline is not None:
            seconds = min(seconds, self._deadline - time.monotonic())
        if seconds > 0:
            time.sleep(seconds)

    def _run(self) -> None:
        while True:
            self._log_drops()
            records = self._take()
            if not records:
                if self._closing.is_set():
                    return
                self._wake.clear()
                if len(self._buffer) < self.batch_size:
                    self._wake.wait(self.flush_interval)
                continue
            try:
                unsent = send_until_done(
                    http=self._http,
                    url=self.url,
                    headers=self._headers,
                    deliveries=self._deliveries,
                    batch=Batch(records),
                    deadline=lambda: self._deadline,
                    sleep=self._sleep,
                )
                self._deliveries.abandon(unsent, "close() ran out of time")
            except Exception:  # A sender must survive anything, or nothing would be sent again.
                logger.exception("aicost sender failed on %d record(s)", len(records))
                self._deliveries.count(failed=len(records))
            finally:
                self._finished(len(records))


def _close_at_exit(ref) -> None:
    client = ref()
    if client is not None:
        client.close()
