"""One followed file: reads, complete lines → batches, rotation, truncation, drain and close.

One coroutine per file (the seed's design, kept): a file's reads, its position and its rotation
state live in one place, and its batches leave in file order by construction. Idle files cost
nothing here: they sleep until the shared :class:`~logferry.files.poller.Poller` (or a watcher hint) sees
them change, so thousands of coroutines wake only when there is something to read.

Reads happen on worker threads (``reader.read_step``); this coroutine only decides and queues.
It sees the rest of the run only through the narrow protocols below (:class:`Wiring`): the budget
and the outlet of delivery, the checkpoints, the poller, discovery (:class:`Finder`) and the set
of followed files (:class:`Crew`); tests build it with fakes of each.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..records.batch import Batch
from ..settings import Settings
from .compressed import CompressedStep, Decompressed, readable
from .descriptors import Descriptors
from .identity import (
    EMPTY_GUARD,
    GUARD,
    ID_HEAD,
    Fingerprint,
    Key,
    line_id_base,
    next_origin,
    open_checked,
)
from .losses import Losses
from .poller import Pollable
from .reader import LinePolicy, Read, Step, read_step
from .record import DONE, Checkpoints, FileOffset, FileRecord, new_file_id
from .text import text_of

log = logging.getLogger("logferry.tailer")
SMALL_READ = 64 << 10  # the least a read reserves of the in-flight budget
HEAD_KEPT = ID_HEAD  # first bytes kept per file (of up to FP_MAX read): enough for line ids, 640 KB for 10,000 files
T = TypeVar("T")


# -- what a tailer sees of the run ------------------------------------------------------------

class Budget(Protocol):
    """Delivery's in-flight budget, as a reader sees it (``logferry.delivery.budget.Budget``)."""

    limit: int

    def park(self, size: int, resume: Callable[[int], None]) -> bool: ...

    async def reserve(self, size: int) -> None: ...

    def unreserve(self, size: int, wake: bool = True) -> None: ...


class Outlet(Protocol):
    """Where batches go: the processing stage (``logferry.processors.stage.Processing``) when
    processors or a sink's ``match`` are configured, else delivery (``logferry.delivery.pipeline.Pipeline``);
    ``position`` is acknowledged once every sink has the batch (or what processors made of it)."""

    async def submit(self, batch: Batch, position: FileOffset, reserved: int = 0) -> int: ...


class Watchlist(Protocol):
    """The poller, as a sleeping file sees it (``logferry.files.poller.Poller``)."""

    def schedule(self, item: Pollable) -> None: ...

    def cancel(self, item: Pollable) -> None: ...

    def checking(self, item: Pollable) -> bool: ...


class Crew(Protocol):
    """The set of followed files and their tasks (``logferry.files.followed.Followed``)."""

    stopping: bool

    def start(self, tailer: Tailer) -> None:
        """Follow a new tailer (discovery made it)."""

    def run(self, tailer: Tailer) -> None:
        """Give ``tailer`` a task that runs :meth:`Tailer.run`."""

    def parked(self, tailer: Tailer) -> None: ...

    def ended(self, tailer: Tailer) -> None: ...

    def renamed(self, tailer: Tailer) -> None: ...

    def active(self, tailer: Tailer) -> None: ...


class Finder(Protocol):
    """Discovery, as a tailer sees it (``logferry.files.discovery.Discovery``)."""

    async def fresh_scan(self) -> None:
        """Return once a scan that lists the files after this call has finished."""

    async def adopt_copy(self, original: Tailer) -> Tailer | None:
        """``original`` was truncated: the tailer now following the copy of its old content, if any."""

    def leave_out_compressed(self, path: str, key: Key, kind: str) -> None:
        """The file turned out to be compressed: it is not text (a readable kind is looked at again as
        its content)."""

    def tailer_done(self, tailer: Tailer) -> None: ...

    def rescan_soon(self) -> None:
        """Scan again soon: a file is to be looked at anew."""


class Blocking(Protocol):
    """Runs a blocking file-system call on a worker thread."""

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T: ...


@dataclass(frozen=True, slots=True)
class Wiring:
    """What every tailer (and discovery) of a run shares: one reference per tailer, whatever the count."""

    settings: Settings
    policy: LinePolicy
    blocking: Blocking
    budget: Budget
    outlet: Outlet
    checkpoints: Checkpoints
    poller: Watchlist
    descriptors: Descriptors
    crew: Crew
    losses: Losses


class Phase(enum.Enum):
    """Where a tailer is in its life. Only ``READING`` and ``SLEEPING`` have a task."""

    NEW = "new"  # made by discovery, not started
    READING = "reading"  # has a task: waits for older files of its log, opens, reads and ships
    SLEEPING = "sleeping"  # its task sleeps at the end of the file until the poller or an event wakes it
    DORMANT = "dormant"  # asleep at the end of its file without a task (started unopened); a wake gives it one
    PARKED = "parked"  # waits without a task for room in the in-flight budget; the budget resumes it
    DONE = "done"  # drained and closed, or stopped: everything given back


_NEXT = {
    Phase.NEW: {Phase.READING, Phase.DORMANT, Phase.PARKED},
    Phase.READING: {Phase.SLEEPING, Phase.PARKED, Phase.DONE},
    Phase.SLEEPING: {Phase.READING},
    Phase.DORMANT: {Phase.READING},
    Phase.PARKED: {Phase.READING},
    Phase.DONE: set(),
}


class Tailer:
    """Follows one file (one identity) until it is drained and gone, or the run stops."""

    _reads = staticmethod(read_step)  # what reads the file on a worker thread (see CompressedTailer)

    __slots__ = (  # thousands of them: no __dict__ each
        "__weakref__", "_at_end", "_drained", "_is_drained", "_polled", "_saved_fp_length", "_waiter", "_woken",
        "after", "deleted", "discarding", "encoding", "fd", "finder", "fp", "group", "guard", "head", "key",
        "last_growth", "looked", "mtime", "orphaned", "path", "phase", "pos", "read_bytes", "record", "reserved",
        "shipped", "size", "superseded", "text", "wiring",
    )

    def __init__(self, wiring: Wiring, finder: Finder, record: FileRecord, path: str, head: bytes = b"",
                 mtime: float = 0.0, group: int = 0, encoding: str = "utf-8") -> None:
        self.wiring = wiring
        self.finder = finder
        self.group = group  # which of the run's sources it belongs to
        self.encoding = encoding
        self.phase = Phase.NEW
        self.key: Key = record.key
        self.path = path
        self.mtime = mtime  # as of the last scan: orders the files of one log
        self.fd: int | None = None
        self._begin(record, head)
        self.after: list[asyncio.Event] = []  # drained events of older files of the same log
        self.superseded = False  # a newer file of the same log exists
        self.orphaned = False  # no longer at any followed path: renamed away or deleted
        self.deleted = False
        self._drained: asyncio.Event | None = None  # made when a successor waits (most files have none)
        self._is_drained = False  # superseded and read to its end: its successor may start
        self.last_growth = time.monotonic()
        self.looked = 0.0  # when the last read that found no truncation started (see Discovery._keep_pending)
        self._waiter: asyncio.Future[None] | None = None
        self._polled: Step | None = None  # read for us by the poller while we slept
        self._woken = False  # woken while awake: the next sleep returns at once
        self.reserved = 0  # bytes of the in-flight budget held for what we read and have not queued
        self.read_bytes = 0  # queued for the sinks since the run started, all generations
        self._at_end = False  # starts asleep at its end, its file not opened until it grows (start_unopened)

    def start_unopened(self) -> None:
        """The scan saw nothing to read after our offset: sleep until the file grows, without opening it
        (the poller checks it by path). For files quiet longer than ``close_inactive`` (they would
        be closed anyway) and for files beyond the open-file budget: with 100,000 known files, start-up
        opens and reads only the files that have something to read."""
        self._at_end = True
        self.size = self.record.size = self.pos
        self.last_growth = time.monotonic() - max(0.0, time.time() - self.mtime)  # quiet since it was written

    def _begin(self, record: FileRecord, head: bytes) -> None:
        """Read the generation ``record`` describes, from its offset."""
        self.record = record  # the checkpoint of the generation being read
        self.pos = record.offset  # where the next read starts: the end of the last line queued
        self.guard = record.guard
        self.fp = record.fp
        self.size = record.size
        self.head = head[:HEAD_KEPT]  # a copy still being written starts with them (see Discovery._partial_copy)
        self.shipped = record.offset > 0  # has this generation shipped anything?
        self.discarding = False  # inside a long line whose rest is dropped by policy
        self._saved_fp_length = record.fp.length  # the fingerprint the store holds for this record
        self.text = text_of(self.encoding, self.head)  # None: the reader tells once the head is there

    def __repr__(self) -> str:
        facts = "".join(f" {name}" for name in ("superseded", "orphaned", "deleted") if getattr(self, name))
        return f"<Tailer {self.path} {self.record.file_id} @{self.pos} {self.phase.value}{facts}>"

    def _enter(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"{self!r} cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase

    @property
    def idle(self) -> bool:
        """Asleep at the end of its file (its descriptor may be closed meanwhile)."""
        return self.phase is Phase.SLEEPING or self.phase is Phase.DORMANT

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    # -- signals from discovery, the poller and the engine ---------------------

    @property
    def drained(self) -> asyncio.Event:
        """Set once this generation is superseded and read to its end (or done): a newer file of the
        same log waits for it."""
        if self._drained is None:
            self._drained = asyncio.Event()
            if self._is_drained:
                self._drained.set()
        return self._drained

    def _set_drained(self) -> None:
        self._is_drained = True
        if self._drained is not None:
            self._drained.set()

    @property
    def settled(self) -> bool:
        """At its path and expected to stay: may rest where growth events cover it."""
        return not (self.orphaned or self.deleted or self.superseded)

    def go_dormant(self) -> bool:
        """Sleep without a task until woken, if started unopened (see :meth:`start_unopened`) with
        nothing to wait for. With 100,000 idle files, most never need a coroutine."""
        if not self._at_end or self.after or self.superseded or self.wiring.settings.once:
            return False
        self._enter(Phase.DORMANT)
        self.wiring.poller.schedule(self)
        return True

    def begin(self) -> None:
        """Start reading, in a task of its own."""
        self._enter(Phase.READING)
        self.wiring.crew.run(self)

    def wake(self) -> None:
        if self.phase is Phase.DORMANT:
            if not self.wiring.crew.stopping:  # stopping: nothing was read, nothing to do
                self._woken = True  # its first sleep returns at once: it reads as any woken tailer does
                self.wiring.poller.cancel(self)
                self.begin()
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        else:  # busy: an event (say) arrived after our last read; look again before sleeping
            self._woken = True

    def read_args(self) -> Read | None:
        """What the poller needs to read for us: only while we sleep with the file open."""
        if self.fd is None or not self.idle:
            return None
        return Read(self.fd, self.pos, self.guard, self.discarding, self.wiring.policy, self.fp.length, False,
                    self.text, self.encoding)

    def polled(self, step: Step | None) -> None:
        """The poller saw the file change (and read what followed, when it could)."""
        self._polled = step
        self.wake()

    def supersede(self) -> None:
        """A newer file of the same log appeared: drain, then let it start."""
        self.superseded = True
        self.wake()

    def orphan(self, orphaned: bool = True) -> None:
        if orphaned != self.orphaned:
            self.orphaned = orphaned
            self.superseded = self.superseded or orphaned
            self.wake()

    def moved_to(self, path: str) -> None:
        if path != self.path:
            log.info("%s is now %s (same file)", self.path, path)
            self.path = self.record.path = path
            self.wiring.crew.renamed(self)
        self.orphan(False)

    def close_idle(self) -> None:
        """Give the descriptor back while asleep; the file is reopened (and re-checked) when it grows.
        Not while the poller is reading it: the number could be reused for another file meanwhile."""
        if self.idle and self.fd is not None and not self.wiring.poller.checking(self):
            self._close()

    # -- the coroutine ------------------------------------------------------------

    async def run(self) -> None:
        wiring = self.wiring
        try:
            if not await self._wait_for_older():
                return
            at_end, self._at_end = self._at_end, False  # run() starts again after parking
            if not at_end and self.fd is None and not await self._reopen():
                return  # its record is remembered: resumed wherever a scan finds the file again
            while not wiring.crew.stopping:
                if at_end:
                    at_end = False
                elif not await self._read_to_end():
                    return
                # At the end of the file.
                if self.superseded:
                    self._set_drained()
                if wiring.settings.once:
                    return
                if not await self._idle():
                    await self._finish()
                    return
        except OSError as exc:  # an I/O error on this file must not stop the others
            log.error("stopped following %s: %s", self.path, exc.strerror or exc)
        finally:
            if self.phase is not Phase.PARKED:  # parked: the budget gives it a task again (see _resume)
                self._end()

    def park_before_start(self) -> bool:
        """Wait for room in the in-flight budget without a task, and before opening the file, when
        the budget is full at start (thousands of files and a stalled sink)."""
        if self.after or self.superseded or not self.wiring.budget.park(self._need(), self._resume):
            return False
        self._enter(Phase.PARKED)
        return True

    def _need(self) -> int:
        """What the next read reserves: what the file held at the last look (at least a little more).
        Small files reserve little, so thousands of them do not queue behind a megabyte each."""
        return GUARD + min(self.wiring.policy.chunk, self.wiring.budget.limit, max(self.size - self.pos, SMALL_READ))

    def _resume(self, reserved: int) -> None:
        """The budget reserved ``reserved`` bytes for us: read on, in a new task."""
        if self.wiring.crew.stopping:  # given back quietly: waking the next parked reader would do the same
            self.wiring.budget.unreserve(reserved, wake=False)
            return
        self.reserved += reserved
        self.begin()

    def _end(self) -> None:
        """Give everything back; discovery and the crew forget this tailer."""
        self._drop_polled()
        self._release()
        self._close()
        self._enter(Phase.DONE)
        self._set_drained()
        self.wiring.poller.cancel(self)
        self.finder.tailer_done(self)
        self.wiring.crew.ended(self)

    def close(self) -> None:
        """At shutdown, for a tailer without a task (dormant or parked): close its file."""
        self._close()

    async def _read_to_end(self) -> bool:
        """Read and ship until the end of the file as of the last read. False when stopping, or when the
        file turned out to be compressed (it is left out), or when it parked."""
        while not self.wiring.crew.stopping:
            if self.after:  # an older file joined the log
                self._drop_polled()
                if not await self._wait_for_older():
                    return False
            step = await self._read()
            if step is None:  # parked: the task ends, the budget starts another when it has room
                return False
            if step.compressed:  # it was empty when found; a compressor wrote it since
                self._release()
                self.record.state = DONE
                if readable(step.compressed) and step.head is not None:
                    # It is read as its content from now on (discovery looks at it again). This record,
                    # of the empty file it was, must never be taken for that content: at offset 0 it
                    # would read again all of a compressed copy of a file already shipped.
                    self.record.fp = Fingerprint.of(step.head)
                    await self.wiring.checkpoints.persist([self.record])
                else:
                    self.wiring.checkpoints.changed(self.record)
                self.finder.leave_out_compressed(self.path, self.key, step.compressed)
                return False
            if step.truncated:
                self._release()
                if not await self._restart_after_truncation():
                    return False
                continue
            if step.pieces:
                await self._ship(step)
                self._release()
                if step.size > self.pos + step.partial:
                    continue  # more to read; else at the end as of this read: no read to find out
            self._release()
            return True  # nothing kept through the sleep: thousands of idle files would each hold a read
        return False

    async def _wait_for_older(self) -> bool:
        """Lines of a rotated-away file go out before its successor's. False when stopping."""
        while self.after and not self.wiring.crew.stopping:
            older = self.after[0]
            if older.is_set():
                self.after.pop(0)
                continue
            await self._until(older.wait())
        return not self.wiring.crew.stopping

    async def _until(self, awaitable: Awaitable[object]) -> None:
        """Wait for ``awaitable`` or a :meth:`wake` (a stop, a rotation), whichever comes first."""
        done: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([done, self._waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            self._waiter = None

    async def _open(self) -> bool:
        """Open the file if it is still the file we think it is (same inode)."""
        descriptors = self.wiring.descriptors
        if self.reserved and descriptors.crowded(1):
            # Never wait for a descriptor while holding in-flight budget (a parked reader was woken
            # with bytes reserved): the readers holding descriptors may be waiting for that budget.
            self._release()
        await descriptors.slot()  # beyond the open-file budget, wait for a descriptor
        try:
            opened = await self.wiring.blocking(open_checked, self.path, self.key)
        finally:
            descriptors.opening_done()
        if opened is None:
            return False
        self.fd = opened
        descriptors.opened(self)
        return True

    async def _reopen(self) -> bool:
        """Open our file. If another file is at our path now, wait for a scan to tell where ours went
        (renamed: try there) or that it is gone (False). Meanwhile newer files of the same log keep
        waiting for this one: lines of a rotated file still go out before its successor's."""
        settings, crew = self.wiring.settings, self.wiring.crew
        if await self._open():
            return True
        while not (settings.once or self.orphaned or crew.stopping):
            path = self.path
            log.info("%s changed before it could be opened; looking for it", path)
            await self._until(self.finder.fresh_scan())
            if self.orphaned or crew.stopping:
                break
            if await self._open():
                return True
            if self.path == path:
                break  # found where it was and still not ours to open (unreadable, replaced again)
        return False

    async def _read(self, final: bool = False) -> Step | None:
        """Read what follows our position (or take what the poller read for us). Memory for it comes
        out of the in-flight budget: with a stalled sink, readers wait here, before reading, or
        park (None: this task ends, the budget resumes the tailer in another)."""
        polled, self._polled = self._polled, None
        started = None  # when our own read started (the poller's reads happen while we are idle)
        if polled is not None:
            self.reserved += polled.read  # the poller reserved it for us
        if polled is not None and not final:
            step = polled
        else:
            if self.fd is None and not await self._reopen():  # before reserving: a descriptor may take a while
                return Step(size=self.record.size, nlink=0 if self.deleted else 1)
            assert self.fd is not None
            budget = self.wiring.budget
            need = self._need()
            if not self.reserved and not final and budget.park(need, self._resume):
                self._enter(Phase.PARKED)
                self.wiring.crew.parked(self)
                return None
            if self.reserved < need:
                await budget.reserve(need - self.reserved)
                self.reserved = need
            started = time.monotonic()
            step = await self.wiring.blocking(
                self._reads, Read(self.fd, self.pos, self.guard, self.discarding, self.wiring.policy, self.fp.length,
                                  final, self.text, self.encoding))
            if self.reserved > step.read:
                budget.unreserve(self.reserved - step.read)
                self.reserved = step.read
        if step.head is not None and not step.truncated:
            if self.fp.matches(step.head):
                self.fp = self.record.fp = Fingerprint.of(step.head)
                self.head = step.head[:HEAD_KEPT]
            else:
                step.truncated = True  # its first bytes changed: rewritten in place
        if step.text is not None:
            self.text = step.text
        if not step.truncated:  # keep the size seen before a truncation: it measures what was lost
            self.size = self.record.size = step.size
            self.discarding = step.discarding
            if started is not None:
                self.looked = started
        self.deleted = step.nlink == 0
        return step

    async def _ship(self, step: Step) -> None:
        pieces = step.pieces
        wiring = self.wiring
        record = self.record
        if not record.id_base or record.fp.length != self._saved_fp_length:
            if not record.id_base:
                # Fixed as the first line leaves: ``head`` holds the file's first bytes up to the end
                # of what was read (its first line whole, or ID_HEAD bytes of it), or the whole file
                # when its only line ships unterminated.
                record.id_base = line_id_base(record.origin, self.head, wiring.policy.max_line, whole=True)
            # A file's identity is durable before its lines leave: a record saved with a shorter
            # fingerprint (a file that was empty or small) could be mistaken for another file
            # after a crash, e.g. for what a copytruncate left at the same inode; and re-delivered
            # lines keep their ids.
            await wiring.checkpoints.persist([record])
            self._saved_fp_length = record.fp.length
        self.shipped = True
        for piece in pieces:
            size = len(piece.data)
            batch = Batch(self.path, record.id_base, piece.start, piece.end, piece.data, nlines=piece.lines if size else 0)
            self.read_bytes += size
            self.pos, self.guard = piece.end, piece.guard
            position = FileOffset(record, piece.end, piece.guard, size, piece.lease, wiring.checkpoints, piece.prefix,
                                  more=step.size > piece.end + step.partial, group=self.group, text=self.text)
            self.reserved -= await wiring.outlet.submit(batch, position, self.reserved)
            if piece.dropped:
                wiring.losses.add(self.path, "line_too_long", piece.dropped)
            elif piece.cut:
                wiring.losses.note_cut(self.path)
        self.last_growth = time.monotonic()
        wiring.crew.active(self)

    async def _idle(self) -> bool:
        """Sleep until the file changes. False when it is time to finish (gone and quiet)."""
        wiring = self.wiring
        settings = wiring.settings
        gone = self.orphaned or self.deleted
        quiet_for = time.monotonic() - self.last_growth
        if gone and quiet_for >= settings.rotate_wait:
            return False
        if not gone and self.fd is not None and quiet_for >= settings.close_inactive:
            self._close()  # reopened when it grows (the poller stats its path meanwhile)
        limit = settings.rotate_wait if gone else settings.close_inactive if self.fd is not None else None
        wiring.poller.schedule(self)
        self._enter(Phase.SLEEPING)
        wiring.descriptors.idle(self, True)
        wiring.descriptors.enforce()
        try:
            await self._sleep(None if limit is None else limit - quiet_for)
        finally:
            self._enter(Phase.READING)
            wiring.descriptors.idle(self, False)
        return True

    async def _sleep(self, timeout: float | None) -> None:
        if self._woken:
            self._woken = False
            self.wiring.poller.cancel(self)
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        # A bare timer rather than asyncio.timeout: thousands of files sleep at once.
        timer = None if timeout is None else loop.call_later(max(timeout, 0.0), _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
            self.wiring.poller.cancel(self)  # a check still under way is discarded

    async def _finish(self) -> None:
        """Drained and quiet after a rotation or deletion: ship an unterminated last line, close."""
        step = await self._read(final=True)
        assert step is not None  # a final read never parks
        if step.pieces and not step.truncated:
            await self._ship(step)
        elif self.fd is None and self.record.size > self.pos:
            log.warning("%s: %d bytes after offset %d were not read: the file could not be opened again",
                        self.path, self.record.size - self.pos, self.pos)
            self.wiring.losses.add(self.path, "vanished_unread", self.record.size - self.pos)
        self._release()
        self.record.state = DONE
        self.wiring.checkpoints.changed(self.record)
        log.info("closed %s: %s and drained", self.path, "deleted" if self.deleted else "rotated away")

    async def _restart_after_truncation(self) -> bool:
        """copytruncate or a rewrite: finish this generation (in a copy if one holds it), restart at 0
        (True: read on)."""
        old, wiring = self.record, self.wiring
        log.warning("%s was truncated or rewritten at offset %d; reading it again from its start", self.path, self.pos)
        if not old.id_base:  # nothing shipped yet: fix its ids from its head (still the old one) while it is known
            old.id_base = line_id_base(old.origin, self.head, wiring.policy.max_line)
            if old.id_base:  # saved before a copy may ship its lines with it
                await wiring.checkpoints.persist([old])
        copy = await self.finder.adopt_copy(self)
        # This generation is over: whoever waits for it may go on; the next one has a drained of its own.
        self._set_drained()
        self._drained, self._is_drained = None, False
        self.superseded = self.orphaned
        if copy is not None:
            self.after.append(copy.drained)
        elif self.record.size > self.pos:  # bytes seen but not read before the truncation
            wiring.losses.add(self.path, "truncated_unread", self.record.size - self.pos)
        if copy is None or copy.record is not old:  # no copy took this generation's record over
            old.state = DONE
            wiring.checkpoints.changed(old)
        # Its line ids derive from the old generation's: the same offsets get new ids.
        record = FileRecord(new_file_id(), self.key, Fingerprint.of(b""), 0, EMPTY_GUARD, 0, self.path, old.lineage,
                            root=old.root, origin=next_origin(old.id_base, old.origin))
        await wiring.checkpoints.persist([record])  # its file_id is durable before any line leaves
        self._begin(record, b"")
        return True

    def _release(self) -> None:
        """Give back the part of the reservation the read's batches did not use."""
        if self.reserved:
            self.wiring.budget.unreserve(self.reserved)
            self.reserved = 0

    def _drop_polled(self) -> None:
        """Forget what the poller read for us (it is read again later)."""
        if self._polled is not None:
            self.wiring.budget.unreserve(self._polled.read)
            self._polled = None

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.wiring.descriptors.closed(self)


class CompressedTailer(Tailer):
    """A compressed file followed as its decompressed content (``compressed.Decompressed``): its
    position, record, fingerprint and guard are the content's. Its ``size`` is the file's size on
    disk, which the poller compares; the poller never reads for it (a change wakes it, and it reads
    itself), and its record's size is the content's. A stream that stops early is read as far as
    it goes, complete lines only, and said once it is quiet; one that cannot be decoded is said and
    counted (``damaged_compressed``)."""

    __slots__ = ("_early", "_said", "_timer", "content")  # _said: "", "early", then "damaged"

    def __init__(self, wiring: Wiring, finder: Finder, record: FileRecord, path: str, head: bytes = b"",
                 mtime: float = 0.0, group: int = 0, encoding: str = "utf-8", kind: str = "gzip",
                 stored: int = 0) -> None:
        super().__init__(wiring, finder, record, path, head, mtime, group, encoding)
        self.content = Decompressed(kind)
        self.size = stored
        self._early = False  # at the end of what its stream holds, which stops without its end marker
        self._said = ""  # what was said of its stream: "early" (it stops early), "damaged"
        self._timer: asyncio.TimerHandle | None = None

    def _reads(self, read: Read) -> Step:
        return self.content.read_step(read)

    def read_args(self) -> None:
        return None

    def start_unopened(self) -> None:
        stored = self.size
        super().start_unopened()
        self.size = stored

    def _need(self) -> int:
        return GUARD + min(self.wiring.policy.chunk, self.wiring.budget.limit)

    async def _read(self, final: bool = False) -> Step | None:
        step = await super()._read(final)
        if isinstance(step, CompressedStep):
            self.size = step.stored
            last = step.pieces[-1].end if step.pieces else self.pos
            self._early = not step.ended and not step.damaged and step.size <= last + step.partial
            if step.damaged and self._said != "damaged":
                self._said = "damaged"
                log.warning("%s: its compressed stream is damaged (%s): the %d bytes after it cannot be read",
                            self.path, step.damaged, step.undecodable)
                self.wiring.losses.add(self.path, "damaged_compressed", step.undecodable)
            elif self._early and self.wiring.settings.once and not self._said:
                self._say_early(last)
        return step

    async def _idle(self) -> bool:
        if self._early and not self._said and self._timer is None:
            wait = self.wiring.settings.rotate_wait - (time.monotonic() - self.last_growth)
            if wait > 0:
                self._timer = asyncio.get_running_loop().call_later(wait, self._quiet)
            else:
                self._say_early(self.pos)
        return await super()._idle()

    def _quiet(self) -> None:
        self._timer = None
        self.wake()  # it reads again (nothing new, or the rest), then says it if still quiet

    def _say_early(self, at: int) -> None:
        """Its stream stops early, after the complete lines up to ``at``."""
        self._said = "early"
        log.warning("%s: its compressed stream stops early (still being written, or truncated): %d bytes after "
                    "offset %d wait for the rest", self.path, max(0, self.record.size - at), at)

    async def _restart_after_truncation(self) -> bool:
        """A compressed file is never rewritten in place: another one took its inode (the first was
        removed, as logrotate and kubelet remove old rotations, and the number was reused). What was
        read of the first is all there is of it: this tailer ends, and a scan looks at the file as a
        new one (often the compressed rotation of a file already shipped: then nothing is read)."""
        log.info("%s is another compressed file than the one read at its inode before: looked at anew", self.path)
        self.record.state = DONE
        self.wiring.checkpoints.changed(self.record)
        self.finder.rescan_soon()
        return False

    async def _finish(self) -> None:
        await super()._finish()
        if self._early and self.record.size > self.pos:  # never ships a last line its truncation may have cut
            self.wiring.losses.add(self.path, "truncated_compressed", self.record.size - self.pos)

    def _end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super()._end()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
