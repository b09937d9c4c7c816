"""Batches → every sink → acknowledgements → checkpoint offsets, with bounded bytes in flight.

Each sink has a FIFO queue and one consumer task, so it receives every file's batches in file
order and never two sends at once. A batch is acknowledged when every sink has returned from
``send``; because each sink acknowledges in queue order, a file's batches complete in order and the
record's offset only ever moves forward over acknowledged bytes. The budget counts the bytes in
flight and the bytes readers have reserved for a read: a reader reserves before it reads and waits
while the budget is used up, so a slow or stalled sink stops the readers (the files are the buffer)
and memory stays bounded however many files there are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from .batch import Batch
from .checkpoints import FileRecord
from .errors import LogferryError, SinkError
from .reader import Lease
from .sink import Sink

log = logging.getLogger("logferry.pipeline")

RETRY_FIRST, RETRY_MAX = 0.1, 30.0
GROUP_MAX = 256  # batches handed to one send_many call


@dataclass(eq=False, slots=True)
class _Entry:
    record: FileRecord
    batch: Batch
    guard: bytes
    pending: int
    lease: Lease | None


@dataclass
class SinkStats:
    """One sink's totals since the start (``backlog_*``: queued for it and not yet sent)."""

    batches: int = 0
    bytes: int = 0
    retries: int = 0
    failures: int = 0
    last_error: str = ""
    lines: int = 0
    backlog_batches: int = 0
    backlog_bytes: int = 0


class Pipeline:
    """Owns the sinks from start to stop."""

    def __init__(
        self,
        sinks: list[Sink],
        max_inflight: int,
        on_acked: Callable[[FileRecord, int], None],
        retry_limit: int | None = None,
    ) -> None:
        self.sinks = sinks
        self.max_inflight = max_inflight
        self.retry_limit = retry_limit
        self.stats = [SinkStats() for _ in sinks]
        self._on_acked = on_acked
        self._queues: list[asyncio.Queue[_Entry | None]] = [asyncio.Queue() for _ in sinks]
        self._inflight_bytes = 0
        self._reserved = 0  # by readers, for the reads they are doing
        self._outstanding = 0
        # Tasks waiting for room, and parked readers (size, resume): see park().
        self._space_waiters: deque[asyncio.Future[None] | tuple[int, Callable[[int], None]]] = deque()
        self._idle: asyncio.Event = asyncio.Event()
        self._idle.set()
        self._started: list[Sink] = []
        self._inflight: OrderedDict[_Entry, None] = OrderedDict()  # submit order: the first is the oldest

    @property
    def oldest_read_at(self) -> float | None:
        """When the oldest batch not yet acknowledged by every sink was read (``time.time()``), or None."""
        return next(iter(self._inflight)).batch.read_at if self._inflight else None

    @property
    def inflight_bytes(self) -> int:
        return self._inflight_bytes

    async def start(self) -> None:
        """Start every sink; if one fails, stop those already started and raise."""
        for sink in self.sinks:
            try:
                await sink.start()
            except Exception as exc:
                await self.stop_sinks()
                await _stop_quietly(sink)
                raise LogferryError(f"sink {sink.describe()} failed to start: {_reason(exc)}") from exc
            self._started.append(sink)

    async def consume(self, index: int) -> None:
        """The consumer task of sink ``index``: send in order, acknowledge, until told to stop.

        A sink that implements ``send_many`` gets everything queued at once (one write, one request).
        """
        sink, queue, stats = self.sinks[index], self._queues[index], self.stats[index]
        group_max = GROUP_MAX if type(sink).send_many is not Sink.send_many else 1
        closing = False
        while not closing and (entry := await queue.get()) is not None:
            group = [entry]
            while len(group) < group_max and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    closing = True
                    break
                group.append(more)
            batches = [e.batch for e in group if e.batch.data]
            if batches:
                await self._deliver(sink, batches, stats)
            for e in group:
                stats.backlog_batches -= 1
                stats.backlog_bytes -= len(e.batch.data)
                self._ack(e)

    def room(self) -> int:
        """Bytes that may be reserved now without waiting."""
        return max(0, self.max_inflight - self._inflight_bytes - self._reserved)

    async def reserve(self, size: int) -> None:
        """Reserve ``size`` bytes of the budget for a read; waits while it is used up."""
        await self._wait_for(size)
        self._reserved += size
        if self.room():
            self._wake_space_waiter()  # room for the next one too

    def park(self, size: int, resume: Callable[[int], None]) -> bool:
        """If ``size`` bytes cannot be reserved now, queue ``resume`` among the waiters and return True:
        once there is room, the bytes are reserved for it and ``resume(size)`` is called (on the
        loop). With thousands of files and a stalled sink, the files that wait hold no task."""
        if not self._must_wait(size):
            return False
        self._space_waiters.append((size, resume))
        return True

    def reserve_now(self, size: int) -> None:
        self._reserved += size

    def unreserve(self, size: int, wake: bool = True) -> None:
        """Give back what a read did not use (``wake``: let a waiter have it)."""
        if size:
            self._reserved -= size
            if wake:
                self._wake_space_waiter()

    async def submit(self, record: FileRecord, batch: Batch, guard: bytes, lease: Lease | None = None,
                     reserved: int = 0) -> int:
        """Queue ``batch`` for every sink. Its bytes come out of the caller's reservation (up to
        ``reserved``, returned: what was used of it); beyond it, waits while the budget is used up.

        ``lease``: the read buffer ``batch.data`` views, released once every sink has acknowledged.
        """
        size = len(batch.data)
        used = min(size, reserved)
        self._reserved -= used
        if size > used:
            await self._wait_for(size - used)
        self._inflight_bytes += size
        if size > used and self.room():
            self._wake_space_waiter()
        self._outstanding += 1
        self._idle.clear()
        entry = _Entry(record, batch, guard, len(self._queues), lease)
        self._inflight[entry] = None
        for queue, stats in zip(self._queues, self.stats):
            queue.put_nowait(entry)
            stats.backlog_batches += 1
            stats.backlog_bytes += size
        return used

    def _must_wait(self, size: int) -> bool:
        return bool(self._inflight_bytes or self._reserved) and (
            self._inflight_bytes + self._reserved + size > self.max_inflight)

    async def _wait_for(self, size: int) -> None:
        while self._must_wait(size):
            waiter = asyncio.get_running_loop().create_future()
            self._space_waiters.append(waiter)
            await waiter

    def _wake_space_waiter(self) -> None:
        """Wake the first waiting task (it looks again, and waits again if the room is too small);
        parked readers in front of it get their bytes reserved and resume, as many as fit."""
        while self._space_waiters:
            waiter = self._space_waiters[0]
            if isinstance(waiter, asyncio.Future):
                self._space_waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
                continue
            size, resume = waiter
            if self._must_wait(size):
                return
            self._space_waiters.popleft()
            self._reserved += size
            resume(size)

    def unacknowledged(self) -> tuple[int, int, list[str]]:
        """What is in flight: (bytes, files, the sinks that have not taken all of it)."""
        files = len({id(entry.record) for entry in self._inflight})
        sinks = [sink.describe() for sink, stats in zip(self.sinks, self.stats) if stats.backlog_batches]
        return self._inflight_bytes, files, sinks

    async def drain(self) -> None:
        """Return once every submitted batch has been acknowledged by every sink."""
        await self._idle.wait()

    async def close_queues(self) -> None:
        """Tell the consumers to finish after what is queued."""
        for queue in self._queues:
            queue.put_nowait(None)

    async def stop_sinks(self) -> None:
        """Stop the started sinks (flush and close), each in its own error handling."""
        started, self._started = self._started, []
        for sink in reversed(started):
            await _stop_quietly(sink)

    def _ack(self, entry: _Entry) -> None:
        entry.pending -= 1
        if entry.pending > 0:
            return
        if entry.lease is not None:
            entry.lease.release()
        self._inflight.pop(entry, None)
        record = entry.record
        record.offset = entry.batch.end
        record.guard = entry.guard
        self._inflight_bytes -= len(entry.batch.data)
        self._outstanding -= 1
        self._on_acked(record, len(entry.batch.data))
        self._wake_space_waiter()
        if self._outstanding == 0:
            self._idle.set()

    async def _deliver(self, sink: Sink, batches: list[Batch], stats: SinkStats) -> None:
        delay = RETRY_FIRST
        attempts = 0
        logged = 0.0
        while True:
            try:
                if len(batches) == 1:
                    await sink.send(batches[0])
                else:
                    await sink.send_many(batches)
            except Exception as exc:
                attempts += 1
                stats.failures += 1
                stats.last_error = _reason(exc)
                fatal = isinstance(exc, SinkError) and not exc.retryable
                if fatal:
                    raise LogferryError(f"sink {sink.describe()} failed: {_reason(exc)}") from exc
                if self.retry_limit is not None and attempts >= self.retry_limit:
                    raise LogferryError(f"sink {sink.describe()} gave up after {attempts} attempts "
                                        f"({_reason(exc)})") from exc
                now = time.monotonic()
                if now - logged > 10:  # one line per sink every 10 s while it keeps failing
                    log.warning("sink %s failed (%s); retrying the batch", sink.describe(), _reason(exc))
                    logged = now
                stats.retries += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_MAX)
                continue
            stats.batches += len(batches)
            stats.bytes += sum(len(b.data) for b in batches)
            stats.lines += sum(b.line_count() for b in batches)
            if attempts:
                log.info("sink %s recovered after %d failed attempts", sink.describe(), attempts)
            return


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, LogferryError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _stop_quietly(sink: Sink) -> None:
    try:
        await sink.stop()
    except Exception as exc:
        log.error("sink %s failed to stop cleanly: %s", sink.describe(), _reason(exc))
