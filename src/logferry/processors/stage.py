"""The processing stage: each file's records through its processors, then to delivery.

It sits where the tailers hand their batches on (their ``Outlet``) when processors or a sink's
``match`` are configured; without them the tailers hand batches straight to delivery, untouched.
The processors of a file run on one processing thread, never on the event loop, one batch at a
time and in file order. What a processor holds back (an event being assembled) keeps the file's
checkpoint before its first line: the stage acknowledges a batch's position only up to there
(``Divisible.before``), and the rest once the held lines have gone on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import operator
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol

from ..records.batch import Batch
from ..records.record import Record
from .base import Processor
from .routing import Route

log = logging.getLogger("logferry.processors")


class Position(Protocol):
    """A batch's position in its file, as this stage sees it (``logferry.files.record.FileOffset``)."""

    end: int

    @property
    def source(self) -> Hashable: ...

    def acknowledge(self) -> None: ...


class Text(Protocol):
    """How a file's bytes are text (``logferry.files.text.Text``)."""

    @property
    def codec(self) -> str: ...

    @property
    def newline(self) -> bytes: ...


class Divisible(Position, Protocol):
    """A position as read from a file: it can stop short, and lets go of its read buffer early."""

    group: int
    """The index of the file's source among the run's: whose own steps apply to it."""
    more: bool
    """The file had complete lines after this batch when it was read: it is not quiet yet."""

    @property
    def text(self) -> Text:
        """How the batch's bytes are text: its lines are decoded with it."""

    def before(self, offset: int, data: bytes | memoryview, start: int) -> Position:
        """The position just before the line at ``offset`` of this batch (``data`` from ``start``)."""

    def release_buffer(self) -> None:
        """Its batch's bytes were copied: the buffer they viewed may be reused."""


class Downstream(Protocol):
    """Delivery (``logferry.delivery.pipeline.Pipeline``)."""

    async def submit(self, batch: Batch, position: Any, reserved: int = 0,
                     routes: Sequence[Batch | None] | None = None) -> int: ...


@dataclass(frozen=True)
class Step:
    """One ``[[processors]]`` table: its processor, and the paths it is limited to (none: every file)."""

    processor: Processor
    paths: tuple[str, ...] = ()

    def applies(self, path: str) -> bool:
        return not self.paths or any(fnmatchcase(path, glob) for glob in self.paths)


class Positions:
    """Several positions of one file acknowledged together, in order (what a released event spans)."""

    __slots__ = ("end", "parts")

    def __init__(self, parts: list[Position]) -> None:
        self.parts, self.end = parts, parts[-1].end

    @property
    def source(self) -> Hashable:
        return self.parts[0].source

    def acknowledge(self) -> None:
        for part in self.parts:
            part.acknowledge()


@dataclass(eq=False)
class _File:
    """One file's processors and the positions it holds back."""

    processors: list[Processor]
    routes: list[Route | None] | None
    text: Text
    last: Batch
    """Its last batch's path, id and time, without its lines (a released event is made a batch of its own)."""
    pending: list[Position] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    timer: asyncio.TimerHandle | None = None


class Processing:
    """The tailers' outlet when records are shaped or routed: see the module docstring."""

    def __init__(self, steps: Sequence[Step], routes: Sequence[Route | None], downstream: Downstream,
                 groups: Sequence[Sequence[Step]] = ()) -> None:
        """``steps``: the ``[[processors]]``; ``groups``: each source's own steps, which run first on
        its files; ``routes``: each sink's ``match`` (None: it takes every record)."""
        self.steps = list(steps)
        self.groups = [list(group) for group in groups]
        self.routes = list(routes)
        self.downstream = downstream
        self.unrouted = 0
        self.lines_in = 0
        """Lines read from the files and handed to the processors."""
        self.bytes_in = 0
        """Their bytes, as in the files."""
        self._files: dict[Hashable, _File] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="logferry-process")
        self._flushing: set[asyncio.Task[None]] = set()

    # -- what the tailers call ------------------------------------------------------

    async def submit(self, batch: Batch, position: Divisible, reserved: int = 0) -> int:
        """Shape ``batch`` (off the loop) and hand what comes out to delivery, with the positions it may
        acknowledge; returns what was used of ``reserved`` (see ``Pipeline.submit``)."""
        key = position.source
        self.lines_in += batch.line_count()
        self.bytes_in += len(batch.data)
        file = self._files.get(key) or self._open(key, batch, position)
        if not file.processors and file.routes is None and file.text.codec == "utf-8":
            # nothing applies to this file: as without processors
            self._close_if_idle(key, file)
            return await self.downstream.submit(batch, position, reserved)
        file.users += 1
        try:
            async with file.lock:
                loop = asyncio.get_running_loop()
                out, routes, held, partial = await loop.run_in_executor(self._thread, self._shape, file, batch,
                                                                        position)
                position.release_buffer()  # its lines were copied into records
                file.last = _empty(batch)
                if held is None:
                    acks, file.pending = [*file.pending, position], []
                elif partial is not None:
                    acks, file.pending = [*file.pending, partial], [position]
                else:  # what is held began in an earlier batch: nothing more is safe to acknowledge
                    # (a pending batch's end may lie inside a record just released, its first lines
                    # before that end: resuming there would ship its last lines as a record of their own)
                    acks, file.pending = [], [*file.pending, position]
                self._arm(file, key, None if position.more else held)
                return await self._hand_on(key, out, routes, acks=acks, reserved=reserved)
        finally:
            file.users -= 1
            self._close_if_idle(key, file)

    async def flush_all(self) -> None:
        """Release every held record now (a ``--once`` run read every file to its end)."""
        for key, file in list(self._files.items()):
            await self._flush(key, file)
        await self.settle()

    async def settle(self) -> None:
        """Cancel the flush timers; wait for the flushes under way."""
        for file in self._files.values():
            if file.timer is not None:
                file.timer.cancel()
                file.timer = None
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def close(self) -> None:
        self._thread.shutdown(wait=False)

    def stats(self) -> dict[str, Any]:
        """``processors``: each table's tally; ``dropped``/``unparsed``: their sums; ``unrouted``:
        records no sink's ``match`` took; ``held_files``: files with records held back."""
        tallies = [{"type": s.processor.type, "name": s.processor.describe(), **vars(s.processor.tally)}
                   for s in [*itertools.chain(*self.groups), *self.steps]]
        return {
            "processors": tallies,
            "dropped": sum(t["dropped"] for t in tallies),
            "unparsed": sum(t["unparsed"] for t in tallies),
            "unrouted": self.unrouted,
            "held_files": sum(1 for f in self._files.values() if f.pending),
        }

    # -- inside -----------------------------------------------------------------------

    def _open(self, key: Hashable, batch: Batch, position: Divisible) -> _File:
        path = batch.path
        own = self.groups[position.group] if position.group < len(self.groups) else []
        processors = [s.processor.for_source(path) for s in [*own, *self.steps] if s.applies(path)]
        routes = None
        if any(route is not None for route in self.routes):
            routes = [route if route is None or route.wants(path) else _NOWHERE for route in self.routes]
        file = self._files[key] = _File(processors, routes, position.text, _empty(batch))
        return file

    def _close_if_idle(self, key: Hashable, file: _File) -> None:
        """Forget a file holding nothing (rotated files would pile up); it is opened again if it grows."""
        if not file.pending and not file.users and self._files.get(key) is file:
            if file.timer is not None:
                file.timer.cancel()
            del self._files[key]

    def _shape(self, file: _File, batch: Batch, position: Divisible
               ) -> tuple[Batch, list[Batch | None] | None, int | None, Position | None]:
        """On the processing thread: the batch's records through the file's processors."""
        records: Sequence[Record] = list(map(Record, *_lines_of(batch, file.text)))
        for processor in file.processors:
            if not records:
                break
            processor.tally.records_in += len(records)
            records = _guarded(processor, records)
            processor.tally.records_out += len(records)
        held = min((h for p in file.processors if (h := p.held()) is not None), default=None)
        partial = None
        if held is not None and batch.offset <= held < batch.end:
            partial = position.before(held, batch.data, batch.offset)
        out = batch.with_records(records)
        return out, self._route(file, out), held, partial

    def _route(self, file: _File, out: Batch) -> list[Batch | None] | None:
        if file.routes is None or not out.events:
            return None
        chosen = [None if route is None else route.select(out.events) for route in file.routes]
        if all(c is not None for c in chosen):
            taken = set().union(*({r.offset for r in c} for c in chosen if c))
            self.unrouted += len(out.events) - len(taken)
        return [None if c is None else out.with_records(c) for c in chosen]

    def _arm(self, file: _File, key: Hashable, held: int | None) -> None:
        """(Re)start the timer that releases what the file holds once it has been quiet long enough:
        from its last batch, read at the file's end (a reader still catching up is not quiet, however
        long its next batch takes: waiting for the budget, or for the processing thread)."""
        if file.timer is not None:
            file.timer.cancel()
            file.timer = None
        if held is None:
            return
        timeouts = [p.timeout for p in file.processors if p.held() is not None and p.timeout is not None]
        if timeouts:
            file.timer = asyncio.get_running_loop().call_later(min(timeouts), self._flush_soon, key, file)

    def _flush_soon(self, key: Hashable, file: _File) -> None:
        file.timer = None
        task = asyncio.create_task(self._flush(key, file), name=f"flush {file.last.path}")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, key: Hashable, file: _File) -> None:
        file.users += 1
        try:
            async with file.lock:
                if not file.pending:
                    return
                loop = asyncio.get_running_loop()
                released = await loop.run_in_executor(self._thread, self._release, file, file.pending[-1].end)
                if released is None:  # a processor failed to release what it held: read again next run
                    return
                acks, file.pending = file.pending, []
                await self._hand_on(key, *released, acks=acks)
        finally:
            file.users -= 1
            self._close_if_idle(key, file)

    def _release(self, file: _File, end: int) -> tuple[Batch, list[Batch | None] | None] | None:
        """On the processing thread: what each processor holds, through the processors after it;
        None if one of them raised in its flush (what it held is lost to it, so its file's held
        positions stay unacknowledged)."""
        carry: list[Record] = []
        failures = sum(p.tally.failures for p in file.processors)
        for processor in file.processors:
            got = list(_guarded(processor, carry)) if carry else []
            got.extend(_guarded(processor, (), flush=True))
            carry = got
        if sum(p.tally.failures for p in file.processors) > failures:
            return None
        last = file.last
        out = Batch(last.path, last.file_id, end, end, b"", last.read_at, 0).with_records(carry)
        return out, self._route(file, out)

    async def _hand_on(self, key: Hashable, out: Batch, routes: list[Batch | None] | None, *,
                       acks: list[Position], reserved: int = 0) -> int:
        if not acks:
            if not out.events:
                return 0
            acks = [_Nothing(key, out.end)]  # records of an event cut short in an earlier batch
        position = acks[0] if len(acks) == 1 else Positions(acks)
        return await self.downstream.submit(out, position, reserved, routes)


def _guarded(processor: Processor, records: Sequence[Record], flush: bool = False) -> Sequence[Record]:
    """``processor.process(records)`` (or its ``flush()``); if it raises (a bug in it), the records go
    on as they are, the failure is counted and logged: a broken processor must not stop the run,
    nor lose lines (after a flush that raised, see ``Processing._release``)."""
    try:
        return processor.flush() if flush else processor.process(list(records))
    except Exception as exc:
        tally = processor.tally
        tally.failures += 1
        tally.last_failure = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - _LOGGED.get(id(tally), -math.inf) > 10:  # one line per processor every 10 s
            _LOGGED[id(tally)] = now
            log.error("processor %s failed (%s); its records went on unchanged", processor.describe(),
                      tally.last_failure, exc_info=log.isEnabledFor(logging.DEBUG))
        return records


_LOGGED: dict[int, float] = {}


def _empty(batch: Batch) -> Batch:
    """``batch`` without its lines (whose buffer goes back to the read pool)."""
    return Batch(batch.path, batch.file_id, batch.end, batch.end, b"", batch.read_at, 0)


def _lines_of(batch: Batch, text: Text) -> tuple[list[int], list[str]]:
    """Each line's offset and text (without its newline), decoded at once."""
    data = bytes(batch.data)
    if text.codec != "utf-8":
        return _decoded(data, batch.offset, text)
    if batch.events is None and data.isascii():  # a character a byte: offsets from the texts' lengths
        lines = data.decode("ascii").split("\n")
        lines.pop()
        return _starts(lines, batch.offset), lines
    offsets, raw = batch.split()
    return offsets, b"\n".join(raw).decode("utf-8", "surrogateescape").split("\n") if raw else []


def _starts(lines: Sequence[str | bytes], start: int) -> list[int]:
    """Where each of ``lines`` (a character or byte each, split at one-byte newlines) starts in the
    file, the first at ``start``."""
    offsets = list(map(operator.add, itertools.accumulate(map(len, lines), initial=start), itertools.count()))
    offsets.pop()  # accumulate's last value is the end, not a line
    return offsets


def _decoded(data: bytes, start: int, text: Text) -> tuple[list[int], list[str]]:
    """The lines of a file in another encoding, each decoded on its own (a byte the codec cannot
    read becomes U+FFFD in that line only), at their byte offsets in the file."""
    nl, width, codec = text.newline, len(text.newline), text.codec
    if width == 1:  # latin-1, Shift_JIS, GBK…: a newline byte is always a newline
        raw = data.split(nl)
        raw.pop()  # data ends with a newline
        return _starts(raw, start), [line.decode(codec, "replace") for line in raw]
    offsets, lines, at = [], [], 0
    while at < len(data):
        end = data.find(nl, at)
        while end >= 0 and (end - at) % width:  # a newline's bytes across two characters
            end = data.find(nl, end + 1)
        end = len(data) - width if end < 0 else end  # (the reader ends every piece with a newline)
        offsets.append(start + at)
        lines.append(data[at:end].decode(codec, "replace"))
        at = end + width
    return offsets, lines


class _Nowhere(Route):
    """The route of a sink that wants none of a file's records (its ``match`` path is another)."""

    def select(self, records: Sequence[Record]) -> list[Record]:
        return []


_NOWHERE = _Nowhere((), {})


class _Nothing:
    """A position that acknowledges nothing."""

    __slots__ = ("end", "source")

    def __init__(self, source: Hashable, end: int) -> None:
        self.source, self.end = source, end

    def acknowledge(self) -> None:
        pass
