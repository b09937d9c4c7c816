"""Batches → every sink → acknowledgements → each batch's position told, with bounded bytes in flight.

Each sink has a lane: what is queued for it, per file, in file order. The lane's consumer task
hands the sink everything queued from any file at once (up to the sink's ``max_bytes_per_send``
and ``max_lines_per_send``; a batch larger than that is cut at line boundaries), so a busy sink
gets few large calls and an idle one gets a batch at once. With ``max_sends_in_flight`` above one,
another call starts while earlier ones run, once a full call's worth is queued; but a file's lines
are never in two calls at once, so each file's batches reach the sink in order even when a call is
retried, and a sink acknowledges each file's batches in order. A batch is acknowledged when every
sink has: then its :class:`Position` is told, so a source's saved position only ever moves forward
over acknowledged bytes. What a position is (a file's offset, say) is the source's business: this
module imports nothing from the files or the checkpoints.

The bytes in flight come out of the :class:`~logferry.delivery.budget.Budget` readers reserve from.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import LogferryError, SinkError
from ..records.batch import Batch
from ..sinks.base import Sink
from .budget import Budget

log = logging.getLogger("logferry.pipeline")

RETRY_FIRST, RETRY_MAX = 0.1, 30.0


class Position(Protocol):
    """Where a batch ends in its source, as delivery sees it: opaque, and able to acknowledge itself."""

    @property
    def source(self) -> Hashable:
        """What orders delivery: batches of one source reach each sink, and are acknowledged, in order."""

    def acknowledge(self) -> None:
        """Every sink has the batch: its source may save this position (and free what the batch held)."""


@dataclass(eq=False, slots=True)
class _Entry:
    position: Position
    batch: Batch
    pending: int


@dataclass(eq=False, slots=True)
class _Piece:
    """What one sink sends of an entry: all of its batch, or one cut of it (``last``: the final cut)."""

    entry: _Entry
    batch: Batch
    lines: int
    last: bool


@dataclass(eq=False)
class _Lane:
    """What is queued for one sink, per file, and which files have lines in a call in flight."""

    sink: Sink
    max_bytes: int
    max_lines: int
    max_calls: int
    single: bool
    queued: OrderedDict[Hashable, deque[_Piece]] = field(default_factory=OrderedDict)  # file → its pieces; oldest first
    busy: set[Hashable] = field(default_factory=set)
    ready: list[int] = field(default_factory=lambda: [0, 0, 0])  # pieces, bytes, lines the next call could take
    interval: float = 0.0
    calls: int = 0
    last_start: float = -math.inf
    closing: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, key: Hashable, piece: _Piece) -> None:
        self.queued.setdefault(key, deque()).append(piece)
        if key not in self.busy:
            self._count((piece,), 1)
        self.wake.set()

    def may_call(self) -> bool:
        """Whether a call may start: something is ready, and either nothing is in flight (low
        load: send at once) or a full call's worth waits and another call may run."""
        pieces, size, lines = self.ready
        if not pieces:
            return False
        if self.calls == 0:
            return True
        return self.calls < self.max_calls and self._full(size, lines)

    def wait_before_call(self, now: float) -> float:
        """Seconds to hold a call that is not full: under sustained load calls start at most every
        ``interval``, so that more joins each one; a call after a quiet spell starts at once."""
        if not self.interval or self.closing or self._full(self.ready[1], self.ready[2]):
            return 0.0
        return max(0.0, self.last_start + self.interval - now)

    def take(self) -> tuple[list[Hashable], list[_Piece]]:
        """The next call's pieces, oldest file first, up to the limits; their files become busy."""
        files: list[Hashable] = []
        pieces: list[_Piece] = []
        size = lines = 0
        for key in list(self.queued):
            if key in self.busy:
                continue
            queue = self.queued[key]
            first = len(pieces)
            while queue:
                n, more = len(queue[0].batch.data), queue[0].lines
                if pieces and (self.single or size + n > self.max_bytes
                               or (self.max_lines and lines + more > self.max_lines)):
                    break
                pieces.append(queue.popleft())
                size += n
                lines += more
            if len(pieces) > first:
                files.append(key)
                self.busy.add(key)
                self._count(pieces[first:], -1)
                self._count(queue, -1)  # what stays queued for a busy file waits for the call
                if not queue:
                    del self.queued[key]
            if self.single or self._full(size, lines):
                break
        return files, pieces

    def done(self, files: list[Hashable]) -> None:
        """A call returned: its files are ready again, with what is queued for them."""
        for key in files:
            self.busy.discard(key)
            self._count(self.queued.get(key, ()), 1)
        self.calls -= 1
        self.wake.set()

    @property
    def idle(self) -> bool:
        return not self.queued and self.calls == 0

    def _full(self, size: int, lines: int) -> bool:
        return size >= self.max_bytes or bool(self.max_lines and lines >= self.max_lines)

    def _count(self, pieces: Iterable[_Piece], sign: int) -> None:
        ready = self.ready
        for piece in pieces:
            ready[0] += sign
            ready[1] += sign * len(piece.batch.data)
            ready[2] += sign * piece.lines


@dataclass
class SinkStats:
    """One sink's totals since the start (``backlog_*``: queued for it and not yet acknowledged)."""

    batches: int = 0
    bytes: int = 0
    calls: int = 0
    """``send``/``send_many`` calls that passed: batches / calls is how much delivery coalesced."""
    retries: int = 0
    failures: int = 0
    last_error: str = ""
    lines: int = 0
    backlog_batches: int = 0
    backlog_bytes: int = 0


@dataclass
class Totals:
    """What went through delivery since the start."""

    read_bytes: int = 0
    """Submitted for the sinks (as read from the sources)."""
    read_lines: int = 0
    read_batches: int = 0
    acked_bytes: int = 0
    """Acknowledged by every sink."""


class Pipeline:
    """Owns the sinks from start to stop."""

    def __init__(self, sinks: list[Sink], budget: Budget, retry_limit: int | None = None) -> None:
        self.sinks = sinks
        self.budget = budget
        self.retry_limit = retry_limit
        self.stats = [SinkStats() for _ in sinks]
        self.totals = Totals()
        self._lanes = [_Lane(sink, max(1, sink.max_bytes_per_send), max(0, sink.max_lines_per_send),
                             max(1, sink.max_sends_in_flight),
                             interval=max(0.0, sink.send_interval),
                             # a sink without send_many takes one batch a call
                             single=type(sink).send_many is Sink.send_many) for sink in sinks]
        self._outstanding = 0
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
        return self.budget.inflight

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
        """The consumer task of sink ``index``: start calls as the lane allows, until told to stop.

        The calls run as tasks of their own, so that up to ``max_sends_in_flight`` overlap; a call
        that fails for good stops this task with its error (the other calls are cancelled).
        """
        lane, stats = self._lanes[index], self.stats[index]
        calls: set[asyncio.Task[None]] = set()
        failed: list[BaseException] = []
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            while True:
                lane.wake.clear()
                if failed:
                    raise failed[0]
                if lane.may_call():
                    now = loop.time()
                    if (wait := lane.wait_before_call(now)) > 0:
                        if timer is None or timer.when() < now:
                            timer = loop.call_later(wait, lane.wake.set)
                        await lane.wake.wait()
                        continue
                    files, pieces = lane.take()
                    lane.calls += 1
                    lane.last_start = now
                    if lane.max_calls == 1:  # one call at a time: no task of its own (a task per call costs)
                        await self._send(lane, stats, files, pieces, failed)
                        continue
                    call = asyncio.create_task(self._send(lane, stats, files, pieces, failed),
                                               name=f"send to {lane.sink.describe()}")
                    calls.add(call)
                    call.add_done_callback(calls.discard)
                    continue
                if lane.closing and lane.idle:
                    return
                await lane.wake.wait()
        finally:
            if timer is not None:
                timer.cancel()
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    async def _send(self, lane: _Lane, stats: SinkStats, files: list[Hashable], pieces: list[_Piece],
                    failed: list[BaseException]) -> None:
        """One ``send``/``send_many`` (retried until it passes), then its acknowledgements.

        A failure is handed to the consumer through ``failed`` rather than raised: this task is
        never awaited while the consumer runs."""
        batches = [piece.batch for piece in pieces if piece.batch.data]  # empty ones only move offsets
        try:
            if batches:
                await self._deliver(lane.sink, batches, stats)
        except Exception as exc:  # noqa: BLE001 - _deliver retried what may pass: this one stops the run
            failed.append(exc)
            lane.wake.set()
            return
        for piece in pieces:
            stats.backlog_bytes -= len(piece.batch.data)
            if piece.last:
                stats.backlog_batches -= 1
                self._ack(piece.entry)
        lane.done(files)

    async def submit(self, batch: Batch, position: Position, reserved: int = 0,
                     routes: Sequence[Batch | None] | None = None) -> int:
        """Queue ``batch`` for every sink; ``position`` is acknowledged once every sink has it. Its
        bytes come out of the caller's reservation in the budget (up to ``reserved``; returns what
        was used of it); beyond it, waits while the budget is used up.

        ``routes`` (one per sink, from the sinks' ``match``): what of ``batch`` goes to that sink
        (None: all of it). A sink given an empty batch has nothing to send for it, and has it at once."""
        size = len(batch.data)
        used = await self.budget.take(size, reserved)
        totals = self.totals
        totals.read_bytes += size
        totals.read_lines += max(batch.nlines, 0)
        totals.read_batches += 1
        self._outstanding += 1
        self._idle.clear()
        entry = _Entry(position, batch, len(self._lanes))
        self._inflight[entry] = None
        source = position.source
        cuts: dict[tuple[int, int], list[Batch]] = {}
        for n, (lane, stats) in enumerate(zip(self._lanes, self.stats)):
            limits = (lane.max_bytes, lane.max_lines)
            routed = routes[n] if routes is not None else None
            if routed is not None:
                pieces = routed.cut(*limits)
            elif limits in cuts:
                pieces = cuts[limits]
            else:
                pieces = cuts[limits] = batch.cut(*limits)
            for i, piece in enumerate(pieces, 1):
                lane.put(source, _Piece(entry, piece, max(piece.nlines, 0), i == len(pieces)))
            stats.backlog_batches += 1
            stats.backlog_bytes += size if routed is None else len(routed.data)
        return used

    def unacknowledged(self) -> tuple[int, int, list[str]]:
        """What is in flight: (bytes, files, the sinks that have not taken all of it)."""
        files = len({entry.position.source for entry in self._inflight})
        sinks = [sink.describe() for sink, stats in zip(self.sinks, self.stats) if stats.backlog_batches]
        return self.budget.inflight, files, sinks

    async def drain(self) -> None:
        """Return once every submitted batch has been acknowledged by every sink."""
        await self._idle.wait()

    async def close_queues(self) -> None:
        """Tell the consumers to finish after what is queued."""
        for lane in self._lanes:
            lane.closing = True
            lane.wake.set()

    async def stop_sinks(self) -> None:
        """Stop the started sinks (flush and close), each in its own error handling."""
        started, self._started = self._started, []
        for sink in reversed(started):
            await _stop_quietly(sink)

    def _ack(self, entry: _Entry) -> None:
        entry.pending -= 1
        if entry.pending > 0:
            return
        self._inflight.pop(entry, None)
        size = len(entry.batch.data)
        self.totals.acked_bytes += size
        self._outstanding -= 1
        entry.position.acknowledge()
        self.budget.release(size)
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
            stats.calls += 1
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
