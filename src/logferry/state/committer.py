"""When records are saved: every ``commit_interval``, sooner once much acknowledged is unsaved.

The files stage tells the committer what changed (an offset acknowledged, a file drained, a new file
whose identity must be durable before its first line leaves); the committer writes every changed
record in one durable transaction of the :class:`~logferry.state.checkpoints.CheckpointStore`.
A commit that fails (a full state disk) keeps its records for the next one: nothing is lost, but
until it works a crash ships again what was acknowledged since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import LogferryError
from ..files.record import FileRecord
from .checkpoints import CheckpointStore

log = logging.getLogger("logferry.engine")

FORGET_EVERY = 3600.0


class Committer:
    """Implements the files stage's ``Checkpoints`` protocol over a store."""

    def __init__(self, store: CheckpointStore, interval: float, max_unsaved_bytes: int, forget_after: float) -> None:
        self.store = store
        self.interval = interval
        self.max_unsaved_bytes = max_unsaved_bytes
        self.forget_after = forget_after
        self._dirty: dict[int, FileRecord] = {}
        self.unsaved_bytes = 0  # acknowledged since the last commit: what a crash would re-deliver
        self._soon = asyncio.Event()
        self._failed = 0  # commits in a row: logged when it starts and when it ends

    @property
    def unsaved(self) -> int:
        """Records changed and not saved yet."""
        return len(self._dirty)

    def changed(self, record: FileRecord) -> None:
        self._dirty[id(record)] = record

    def acknowledged(self, record: FileRecord, nbytes: int) -> None:
        self._dirty[id(record)] = record
        self.unsaved_bytes += nbytes
        if self.unsaved_bytes >= self.max_unsaved_bytes:
            self._soon.set()  # bound re-deliveries after a crash by bytes, not only by time

    async def persist(self, records: list[FileRecord]) -> None:
        for record in records:
            self._dirty.pop(id(record), None)
        while not await self._save(records):  # its lines wait: a full state disk holds the reader back
            await asyncio.sleep(self.interval)

    async def run(self, keep: Callable[[], set[str]], may_forget: Callable[[], bool]) -> None:
        """Commit until cancelled; every ``FORGET_EVERY`` seconds (once ``may_forget()``), delete the
        records of files gone for ``forget_after``, except those whose file ids ``keep()`` gives."""
        last_forget = 0.0
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._soon.wait()
            except TimeoutError:
                pass
            self._soon.clear()
            await self.commit()
            if time.monotonic() - last_forget > FORGET_EVERY and may_forget():
                last_forget = time.monotonic()
                await self._forget(keep())

    async def commit(self) -> None:
        """Save every changed record in one durable transaction."""
        if not self._dirty:
            return
        records, self._dirty, self.unsaved_bytes = list(self._dirty.values()), {}, 0
        now = time.time()
        for record in records:
            record.seen = now
        await self._save(records)

    async def _forget(self, keep: set[str]) -> None:
        try:
            forgotten = await self.store.forget(time.time() - self.forget_after, keep)
        except Exception as exc:  # a full state disk, say: old records wait for the next round
            log.warning("could not forget old checkpoints (%s: %s); trying again in %ds",
                        type(exc).__name__, exc, int(FORGET_EVERY))
            return
        if forgotten:
            log.info("forgot %d checkpoints of files gone for over %ss", forgotten, int(self.forget_after))

    def _keep(self, records: list[FileRecord]) -> None:
        for record in records:
            self._dirty.setdefault(id(record), record)

    async def _save(self, records: list[FileRecord]) -> bool:
        """Save ``records``; on failure keep them for the next commit, say so once, return False."""
        try:
            await self.store.save(records)
        except asyncio.CancelledError:  # the run stops while a commit waits: the final commit saves them
            self._keep(records)
            raise
        except Exception as exc:
            self._keep(records)
            if not self._failed:  # once, not every interval while it lasts
                log.error("could not save checkpoints in %s (%s); retrying every %gs, nothing is lost: until it "
                          "works, a crash ships again what was acknowledged since", self.store.path,
                          exc if isinstance(exc, LogferryError) else f"{type(exc).__name__}: {exc}", self.interval)
            self._failed += 1
            return False
        if self._failed:
            log.warning("checkpoints saved again in %s after %d failed commits", self.store.path, self._failed)
            self._failed = 0
        return True
