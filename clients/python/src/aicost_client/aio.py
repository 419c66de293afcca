"""AsyncAicostClient: the asyncio variant. record() queues without awaiting; a task sends the batches."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
import weakref

import httpx

from aicost_client._core import (
    Batch,
    RecordQueue,
    Stats,
    logger,
)
from aicost_client.client import send_until_done


class AsyncAicostClient(RecordQueue):
    """AicostClient's rules (bounded queue dropping the oldest, batches, backoff with the same
    idempotency keys, Retry-After, 400s logged and not retried) on an asyncio loop: `senders` tasks
    on httpx.AsyncClient. The tasks start with `async with`, `await start()`, or the first record()
    made inside a running loop. `await aclose()` sends what is queued, bounded by `close_timeout`;
    at interpreter exit, what a closed-down loop left queued is sent synchronously, with the same bound.
    record() may be called from the loop's thread or any other."""

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
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            api_key,
            batch_size=batch_size,
            max_queue_size=max_queue_size,
            flush_interval=flush_interval,
            close_timeout=close_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            wake=self._wake_soon,
        )
        self.timeout = timeout
        self._senders = max(senders, 1)
        self._http_given = http_client
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        atexit.register(_send_left_at_exit, weakref.ref(self))

    def _queued(self) -> None:
        if self._loop is None:
            self._start_if_in_loop()

    @property
    def stats(self) -> Stats:
        return self._stats(len(self._buffer) + self._in_flight)

    async def start(self) -> None:
        """Start the sending tasks on the running loop (done by `async with` and the first record())."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._http = self._http_given or httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        self._tasks = [self._loop.create_task(self._run(), name=f"aicost-sender-{n}") for n in range(self._senders)]

    def _start_if_in_loop(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # No loop yet: the first record() or start() inside one starts the tasks.
        with contextlib.suppress(StopIteration):
            self.start().send(None)  # start() never awaits: run it to completion here.

    def _wake_soon(self) -> None:
        if self._wake is None or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # A closed loop: what is queued is sent at exit.
                self._loop.call_soon_threadsafe(self._wake.set)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent (or refused), at most `timeout` s."""
        await self.start()
        limit = None if timeout is None else time.monotonic() + timeout
        while len(self._buffer) or self._in_flight:
            if limit is not None and time.monotonic() >= limit:
                return False
            self._wake.set()
            await asyncio.sleep(0.01)
        return True

    async def aclose(self, timeout: float | None = None) -> None:
        """Send what is queued (at most `timeout` s, default close_timeout), then stop."""
        if self._closed:
            return
        self._closed = True
        timeout = self.close_timeout if timeout is None else timeout
        if self._loop is None and not len(self._buffer):
            return
        await self.start()
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        _done, running = await asyncio.wait(self._tasks, timeout=timeout + 0.5)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        unsent = len(self._buffer) + self._in_flight
        self._buffer.take(len(self._buffer) + 1)
        self._deliveries.abandon(unsent, f"aclose() ran out of time ({timeout} s)")
        self._log_drops()
        if self._http_given is None:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncAicostClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def _sleep(self, seconds: float) -> None:
        if self._deadline is not None:
            seconds = min(seconds, self._deadline - time.monotonic())
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _send(self, batch: Batch) -> int:
        pending = [batch]
        while pending:
            current = pending.pop()
            while True:
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return sum(len(b.records) for b in (current, *pending))
                try:
                    response = await self._http.post(self.url, content=current.encoded(), headers=self._headers)
                except httpx.HTTPError as error:
                    wait = self._deliveries.unreachable(current, error)
                else:
                    following, wait = self._deliveries.answered(
                        current, response.status_code, response.headers, response.content
                    )
                    if following != [current]:
                        pending.extend(following)
                        break
                await self._sleep(wait)
        return 0

    async def _run(self) -> None:
        while True:
            self._log_drops()
            records = self._buffer.take(self.batch_size)
            if not records:
                if self._closing:
                    return
                self._wake.clear()
                if len(self._buffer) < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                continue
            self._in_flight += len(records)
            try:
                unsent = await self._send(Batch(records))
                self._deliveries.abandon(unsent, "aclose() ran out of time")
            except asyncio.CancelledError:
                if self._closing:
                    self._deliveries.abandon(len(records), "aclose() ran out of time")
                else:  # The loop is going away without aclose(): exit sends them (same keys).
                    self._buffer.requeue(records)
                raise
            except Exception:
                logger.exception("aicost sender failed on %d record(s)", len(records))
                self._deliveries.count(failed=len(records))
            finally:
                self._in_flight -= len(records)

    def _send_left_synchronously(self) -> None:
        """At exit with records still queued (the loop stopped without aclose()): send them with a
        synchronous httpx client, bounded by close_timeout."""
        if self._closed or not len(self._buffer):
            return
        self._closed = True
        deadline = time.monotonic() + self.close_timeout
        with httpx.Client(timeout=self.timeout) as http:
            while records := self._buffer.take(self.batch_size):
                unsent = send_until_done(
                    http=http,
                    url=self.url,
                    headers=self._headers,
                    deliveries=self._deliveries,
                    batch=Batch(records),
                    deadline=lambda: deadline,
                    sleep=time.sleep,
                )
                if unsent:
                    left = unsent + len(self._buffer)
                    self._buffer.take(len(self._buffer) + 1)
                    self._deliveries.abandon(left, f"interpreter exit ran out of time ({self.close_timeout} s)")
                    return
        self._log_drops()


def _send_left_at_exit(ref) -> None:
    client = ref()
    if client is not None:
        client._send_left_synchronously()
