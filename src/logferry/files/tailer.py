"""One followed file: reads, complete lines → batches, rotation, truncation, drain and close.

One coroutine per file (the seed's design, kept): a file's reads, its position and its rotation
state live in one place, and its batches leave in file order by construction. Idle files cost
nothing here: they sleep until the shared :class:`~logferry.files.poller.Poller` (or a watcher hint) sees
them change, so thousands of coroutines wake only when there is something to read.

Reads happen on worker threads (``reader.read_step``); this coroutine only decides and queues.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ..records.batch import Batch
from ..state.checkpoints import DONE, FileRecord, new_file_id
from .identity import EMPTY_GUARD, GUARD, ID_HEAD, Fingerprint, Key, key_of, line_id_base, next_origin, open_readonly
from .reader import Piece, Step, read_step

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("logferry.tailer")
SMALL_READ = 64 << 10  # the least a read reserves of the in-flight budget
HEAD_KEPT = ID_HEAD  # first bytes kept per file (of up to FP_MAX read): enough for line ids, 640 KB for 10,000 files


class Tailer:
    """Follows one file (one identity) until it is drained and gone, or the run stops."""

    __slots__ = (  # thousands of them: no __dict__ each
        "__weakref__", "_dormant", "_drained", "_is_drained", "_parked", "_polled", "_saved_fp_length", "_unopened",
        "_waiter", "_woken", "after", "deleted", "discarding", "done", "engine", "fd", "fp", "guard", "head", "idle", "key",
        "last_growth", "looked", "mtime", "orphaned", "path", "pos", "read_bytes", "record", "reserved", "shipped", "size",
        "superseded",
    )

    def __init__(self, engine: Engine, record: FileRecord, path: str, head: bytes = b"", mtime: float = 0.0
                 ) -> None:
        self.engine = engine
        self.key: Key = record.key
        self.path = path
        self.mtime = mtime  # as of the last scan: orders the files of one log
        self.fd: int | None = None
        self._begin(record, head)
        self.after: list[asyncio.Event] = []  # drained events of older files of the same log
        self.superseded = False  # a newer file of the same log exists
        self.orphaned = False  # no longer at any followed path: renamed away or deleted
        self.deleted = False
        self.idle = False  # asleep at the end of its file (its descriptor may be closed meanwhile)
        self._drained: asyncio.Event | None = None  # made when a successor waits (most files have none)
        self._is_drained = False  # superseded and read to its end: its successor may start
        self.done = False
        self.last_growth = time.monotonic()
        self.looked = 0.0  # when the last read that found no truncation started (see Discovery._keep_pending)
        self._waiter: asyncio.Future[None] | None = None
        self._polled: Step | None = None  # read for us by the poller while we slept
        self._woken = False  # woken while awake: the next sleep returns at once
        self.reserved = 0  # bytes of the in-flight budget held for what we read and have not queued
        self.read_bytes = 0  # queued for the sinks since the run started, all generations
        self._unopened = False  # starts asleep at its end, its file not opened until it grows
        self._dormant = False  # asleep without a task of its own until woken
        self._parked = False  # waiting for room in the in-flight budget without a task (see _read)

    def start_unopened(self) -> None:
        """The scan saw nothing to read after our offset: sleep until the file grows, without opening it
        (the poller checks it by path). For files quiet longer than ``close_inactive`` (they would
        be closed anyway) and for files beyond the open-file budget: with 100,000 known files, start-up
        opens and reads only the files that have something to read."""
        self._unopened = True
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

    def __repr__(self) -> str:
        return f"<Tailer {self.path} {self.record.file_id} @{self.pos}>"

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
        if not self._unopened or self.after or self.superseded or self.engine.settings.once:
            return False
        self._dormant = self.idle = True
        self.engine.poller.schedule(self)
        return True

    def wake(self) -> None:
        if self._dormant:
            if not self.engine.stopping:  # stopping: nothing was read, nothing to do
                self._dormant = self.idle = False
                self._woken = True  # its first sleep returns at once: it reads as any woken tailer does
                self.engine.poller.cancel(self)
                self.engine.run_tailer(self)
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        else:  # busy: an event (say) arrived after our last read; look again before sleeping
            self._woken = True

    def read_args(self) -> tuple[object, ...] | None:
        """What the poller needs to read for us: only while we sleep with the file open."""
        if self.fd is None or not self.idle:
            return None
        return self.fd, self.pos, self.guard, self.discarding, self.engine.policy, self.fp.length, False

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
            self.engine.path_changed()
        self.orphan(False)

    def close_idle(self) -> None:
        """Give the descriptor back while asleep; the file is reopened (and re-checked) when it grows.
        Not while the poller is reading it: the number could be reused for another file meanwhile."""
        if self.idle and self.fd is not None and not self.engine.poller.checking(self):
            self._close()

    # -- the coroutine ------------------------------------------------------------

    async def run(self) -> None:
        engine = self.engine
        try:
            if not await self._wait_for_older():
                return
            at_end, self._unopened = self._unopened, False  # run() starts again after parking
            if not at_end and self.fd is None and not await self._reopen():
                return  # its record is remembered: resumed wherever a scan finds the file again
            while not engine.stopping:
                if at_end:
                    at_end = False
                elif not await self._read_to_end():
                    return
                # At the end of the file.
                if self.superseded:
                    self._set_drained()
                if engine.settings.once:
                    return
                if not await self._idle():
                    await self._finish()
                    return
        except _Parked:
            return  # the task ends; the budget starts another when it has room (see _resume)
        except OSError as exc:  # an I/O error on this file must not stop the others
            log.error("stopped following %s: %s", self.path, exc.strerror or exc)
        finally:
            if not self._parked:
                self._end()

    def park_before_start(self) -> bool:
        """Wait for room in the in-flight budget without a task, and before opening the file, when
        the budget is full at start (thousands of files and a stalled sink)."""
        if self.after or self.superseded or not self.engine.pipeline.park(self._need(), self._resume):
            return False
        self._parked = True
        return True

    def _need(self) -> int:
        """What the next read reserves: what the file held at the last look (at least a little more).
        Small files reserve little, so thousands of them do not queue behind a megabyte each."""
        policy, pipeline = self.engine.policy, self.engine.pipeline
        return GUARD + min(policy.chunk, pipeline.max_inflight, max(self.size - self.pos, SMALL_READ))

    def _resume(self, reserved: int) -> None:
        """The budget reserved ``reserved`` bytes for us: read on, in a new task."""
        if self.engine.stopping:  # given back quietly: waking the next parked reader would do the same
            self.engine.pipeline.unreserve(reserved, wake=False)
            return
        self.reserved += reserved
        self._parked = False
        self.engine.run_tailer(self)

    def _end(self) -> None:
        """Give everything back; the engine and discovery forget this tailer."""
        self._drop_polled()
        self._release()
        self._close()
        self.done = True
        self._set_drained()
        self.engine.poller.cancel(self)
        self.engine.tailer_done(self)

    def release_taskless(self) -> None:
        """At shutdown, for a tailer without a task (dormant or parked): close its file."""
        self._close()

    async def _read_to_end(self) -> bool:
        """Read and ship until the end of the file as of the last read. False when stopping, or when the
        file turned out to be compressed (it is left out)."""
        while not self.engine.stopping:
            if self.after:  # an older file joined the log
                self._drop_polled()
                if not await self._wait_for_older():
                    return False
            step = await self._read()
            if step.compressed:  # it was empty when found; a compressor wrote it since
                self._release()
                self.record.state = DONE
                self.engine.record_changed(self.record)
                self.engine.discovery.leave_out_compressed(self.path, self.key, step.compressed)
                return False
            if step.truncated:
                self._release()
                await self._restart_after_truncation()
                continue
            if step.pieces:
                await self._ship(step.pieces)
                self._release()
                if step.size > self.pos + step.partial:
                    continue  # more to read; else at the end as of this read: no read to find out
            self._release()
            return True  # nothing kept through the sleep: thousands of idle files would each hold a read
        return False

    async def _wait_for_older(self) -> bool:
        """Lines of a rotated-away file go out before its successor's. False when stopping."""
        while self.after and not self.engine.stopping:
            older = self.after[0]
            if older.is_set():
                self.after.pop(0)
                continue
            await self._until(older.wait())
        return not self.engine.stopping

    async def _until(self, awaitable: Awaitable[object]) -> None:
        """Wait for ``awaitable`` or a :meth:`wake` (a stop, a rotation), whichever comes first."""
        done = asyncio.ensure_future(awaitable)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([done, self._waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            self._waiter = None

    async def _open(self) -> bool:
        """Open the file if it is still the file we think it is (same inode)."""
        descriptors = self.engine.descriptors
        if self.reserved and descriptors.crowded(1):
            # Never wait for a descriptor while holding in-flight budget (a parked reader was woken
            # with bytes reserved): the readers holding descriptors may be waiting for that budget.
            self._release()
        await descriptors.slot()  # beyond the open-file budget, wait for a descriptor
        try:
            opened = await self.engine.blocking(_open_checked, self.path, self.key)
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
        engine = self.engine
        if await self._open():
            return True
        while not (engine.settings.once or self.orphaned or engine.stopping):
            path = self.path
            log.info("%s changed before it could be opened; looking for it", path)
            await self._until(engine.discovery.fresh_scan())
            if self.orphaned or engine.stopping:
                break
            if await self._open():
                return True
            if self.path == path:
                break  # found where it was and still not ours to open (unreadable, replaced again)
        return False

    async def _read(self, final: bool = False) -> Step:
        """Read what follows our position (or take what the poller read for us). Memory for it comes
        out of the in-flight budget: with a stalled sink, readers wait here, before reading."""
        step, self._polled = self._polled, None
        started = None  # when our own read started (the poller's reads happen while we are idle)
        if step is not None:
            self.reserved += step.read  # the poller reserved it for us
        if step is None or final:
            if self.fd is None and not await self._reopen():  # before reserving: a descriptor may take a while
                return Step(size=self.size, nlink=0 if self.deleted else 1)
            pipeline, policy = self.engine.pipeline, self.engine.policy
            need = self._need()
            if not self.reserved and not final and pipeline.park(need, self._resume):
                self._parked = True
                self.engine.tailer_parked(self)
                raise _Parked
            if self.reserved < need:
                await pipeline.reserve(need - self.reserved)
                self.reserved = need
            started = time.monotonic()
            step = await self.engine.blocking(
                read_step, self.fd, self.pos, self.guard, self.discarding, policy, self.fp.length, final
            )
            if self.reserved > step.read:
                pipeline.unreserve(self.reserved - step.read)
                self.reserved = step.read
        if step.head is not None and not step.truncated:
            if self.fp.matches(step.head):
                self.fp = self.record.fp = Fingerprint.of(step.head)
                self.head = step.head[:HEAD_KEPT]
            else:
                step.truncated = True  # its first bytes changed: rewritten in place
        if not step.truncated:  # keep the size seen before a truncation: it measures what was lost
            self.size = self.record.size = step.size
            self.discarding = step.discarding
            if started is not None:
                self.looked = started
        self.deleted = step.nlink == 0
        return step

    async def _ship(self, pieces: list[Piece]) -> None:
        engine = self.engine
        record = self.record
        if not record.id_base or record.fp.length != self._saved_fp_length:
            if not record.id_base:
                # Fixed as the first line leaves: ``head`` holds the file's first bytes up to the end
                # of what was read (its first line whole, or ID_HEAD bytes of it), or the whole file
                # when its only line ships unterminated.
                record.id_base = line_id_base(record.origin, self.head, engine.policy.max_line, whole=True)
            # A file's identity is durable before its lines leave: a record saved with a shorter
            # fingerprint (a file that was empty or small) could be mistaken for another file
            # after a crash, e.g. for what a copytruncate left at the same inode; and re-delivered
            # lines keep their ids.
            await engine.persist([record])
            self._saved_fp_length = record.fp.length
        self.shipped = True
        metrics = engine.metrics
        for piece in pieces:
            nlines = piece.lines if piece.data else 0
            batch = Batch(self.path, record.id_base, piece.start, piece.end, piece.data, nlines=nlines)
            metrics.read(len(piece.data), nlines)
            self.read_bytes += len(piece.data)
            self.pos, self.guard = piece.end, piece.guard
            self.reserved -= await engine.pipeline.submit(self.record, batch, piece.guard, piece.lease, self.reserved)
            if piece.dropped:
                engine.losses.add(self.path, "line_too_long", piece.dropped)
            elif piece.cut:
                engine.losses.note_cut(self.path)
        self.last_growth = time.monotonic()
        engine.file_active(self)

    async def _idle(self) -> bool:
        """Sleep until the file changes. False when it is time to finish (gone and quiet)."""
        settings = self.engine.settings
        gone = self.orphaned or self.deleted
        quiet_for = time.monotonic() - self.last_growth
        if gone and quiet_for >= settings.rotate_wait:
            return False
        if not gone and self.fd is not None and quiet_for >= settings.close_inactive:
            self._close()  # reopened when it grows (the poller stats its path meanwhile)
        limit = settings.rotate_wait if gone else settings.close_inactive if self.fd is not None else None
        self.engine.poller.schedule(self)
        self.idle = True
        self.engine.descriptors.idle(self, True)
        self.engine.descriptors.enforce()
        try:
            await self._sleep(None if limit is None else limit - quiet_for)
        finally:
            self.idle = False
            self.engine.descriptors.idle(self, False)
        return True

    async def _sleep(self, timeout: float | None) -> None:
        if self._woken:
            self._woken = False
            self.engine.poller.cancel(self)
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
            self.engine.poller.cancel(self)  # a check still under way is discarded

    async def _finish(self) -> None:
        """Drained and quiet after a rotation or deletion: ship an unterminated last line, close."""
        step = await self._read(final=True)
        if step.pieces and not step.truncated:
            await self._ship(step.pieces)
        elif self.fd is None and self.size > self.pos:
            log.warning("%s: %d bytes after offset %d were not read: the file could not be opened again",
                        self.path, self.size - self.pos, self.pos)
            self.engine.losses.add(self.path, "vanished_unread", self.size - self.pos)
        self._release()
        self.record.state = DONE
        self.engine.record_changed(self.record)
        log.info("closed %s: %s and drained", self.path, "deleted" if self.deleted else "rotated away")

    async def _restart_after_truncation(self) -> None:
        """copytruncate or a rewrite: finish this generation (in a copy if one holds it), restart at 0."""
        old = self.record
        log.warning("%s was truncated or rewritten at offset %d; reading it again from its start", self.path, self.pos)
        if not old.id_base:  # nothing shipped yet: fix its ids from its head (still the old one) while it is known
            old.id_base = line_id_base(old.origin, self.head, self.engine.policy.max_line)
            if old.id_base:  # saved before a copy may ship its lines with it
                await self.engine.persist([old])
        copy = await self.engine.discovery.adopt_copy(self)
        # This generation is over: whoever waits for it may go on; the next one has a drained of its own.
        self._set_drained()
        self._drained, self._is_drained = None, False
        self.superseded = self.orphaned
        if copy is not None:
            self.after.append(copy.drained)
        elif self.size > self.pos:  # bytes seen but not read before the truncation
            self.engine.losses.add(self.path, "truncated_unread", self.size - self.pos)
        if copy is None or copy.record is not old:  # no copy took this generation's record over
            old.state = DONE
            self.engine.record_changed(old)
        # Its line ids derive from the old generation's: the same offsets get new ids.
        record = FileRecord(new_file_id(), self.key, Fingerprint.of(b""), 0, EMPTY_GUARD, 0, self.path, old.lineage,
                            root=old.root, origin=next_origin(old.id_base, old.origin))
        await self.engine.persist([record])  # its file_id is durable before any line leaves
        self._begin(record, b"")

    def _release(self) -> None:
        """Give back the part of the reservation the read's batches did not use."""
        if self.reserved:
            self.engine.pipeline.unreserve(self.reserved)
            self.reserved = 0

    def _drop_polled(self) -> None:
        """Forget what the poller read for us (it is read again later)."""
        if self._polled is not None:
            self.engine.pipeline.unreserve(self._polled.read)
            self._polled = None

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.engine.descriptors.closed(self)


class _Parked(Exception):  # not an error: unwinds run() to park the tailer
    """Raised in :meth:`Tailer._read` to end the task while the budget is full."""


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _open_checked(path: str, key: Key) -> int | None:
    """Open ``path`` if it is still the file ``key``; runs on a worker thread. Whether its bytes are
    still those we read (not truncated, rewritten, or a reused inode) is for the next read to find:
    it checks the guard before our offset and the head, and restarts the file if they changed."""
    try:
        fd = open_readonly(path)
    except OSError:
        return None
    try:
        if key_of(os.fstat(fd)) == key:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None
