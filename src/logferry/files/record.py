"""What is remembered of a followed file, and the position each of its batches acknowledges.

A :class:`FileRecord` is one generation of one file (a truncation starts a new record). The files
stage creates and updates records; the state stage (``logferry.state``) saves them, through the
narrow :class:`Checkpoints` protocol: this stage never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from .identity import GUARD, Fingerprint, Key, digest
from .reader import Lease
from .text import UTF8, Text

LIVE, DONE, GONE = "live", "done", "gone"
"""Record states: being followed; drained and closed (rotated away or deleted); vanished unread."""


def new_file_id() -> str:
    return os.urandom(8).hex()  # not uuid4: importing uuid costs every start 2 ms


@dataclass(eq=False, slots=True)
class FileRecord:
    """The saved state of one file (one generation of it: a truncation starts a new record)."""

    file_id: str
    key: Key
    fp: Fingerprint
    offset: int  # acknowledged by every sink
    guard: bytes  # hash of the bytes just before ``offset``
    size: int  # size last seen, to estimate what a truncation while stopped lost
    path: str
    lineage: str  # the path it was first followed at: rotations of one log share it
    state: str = LIVE
    seen: float = 0.0
    root: str = ""  # identity.file_root of the file it was created for ("" if saved by schema 1)
    origin: str = ""  # what this generation's line ids derive from (see identity.next_origin)
    id_base: str = ""  # its lines' ids are ID_BASE:OFFSET; "" until its first line is known


class Checkpoints(Protocol):
    """Where records go to be saved (the state stage's committer), as the files stage sees it."""

    def changed(self, record: FileRecord) -> None:
        """A record's state changed: save it at the next commit."""

    def acknowledged(self, record: FileRecord, nbytes: int) -> None:
        """Its offset moved over ``nbytes`` acknowledged bytes: save it at the next commit (sooner
        when much is unsaved: it bounds what a crash ships again)."""

    async def persist(self, records: list[FileRecord]) -> None:
        """Save these records now, and return once they are durable."""


class FileOffset:
    """Where a batch of a file ends: the position delivery acknowledges once every sink has the
    batch (see ``logferry.delivery.pipeline.Position``). Acknowledged, it moves the record's offset
    and guard there, frees the read buffer the batch viewed, and tells the checkpoints."""

    __slots__ = ("_checkpoints", "_lease", "end", "group", "guard", "more", "nbytes", "prefix", "record", "text")

    def __init__(self, record: FileRecord, end: int, guard: bytes, nbytes: int, lease: Lease | None,
                 checkpoints: Checkpoints, prefix: bytes = b"", more: bool = False, group: int = 0,
                 text: Text | None = UTF8) -> None:
        self.record, self.end, self.guard, self.nbytes = record, end, guard, nbytes
        self._lease, self._checkpoints = lease, checkpoints
        self.prefix = prefix  # the file's bytes just before the batch (at most GUARD): see before()
        self.more = more
        """The file held complete lines after this batch when it was read: more batches follow at
        once (a reader catching up, or waiting for the budget), so the file is not quiet."""
        self.group = group  # the index of the file's source among the run's: its own processors
        self.text = text or UTF8  # how the batch's bytes are text: the processing stage decodes them

    @property
    def source(self) -> Hashable:
        return self.record  # one generation of one file: its batches leave and are acknowledged in order

    def acknowledge(self) -> None:
        if self._lease is not None:
            self._lease.release()
        self.record.offset, self.record.guard = self.end, self.guard
        self._checkpoints.acknowledged(self.record, self.nbytes)

    def before(self, offset: int, data: bytes | memoryview, start: int) -> FileOffset:
        """The position just before the line at ``offset`` of this batch, whose ``data`` (the file's
        bytes from ``start``, each line where the previous ends) were read with it: what acknowledging
        the batch's lines before that one saves (a processor holds the rest back). Its bytes are then
        no longer this position's to count."""
        k = offset - start
        guard = digest((self.prefix + bytes(data[max(0, k - GUARD):k]))[-GUARD:])
        part = min(self.nbytes, k)
        self.nbytes -= part
        return FileOffset(self.record, offset, guard, part, None, self._checkpoints, group=self.group, text=self.text)

    def release_buffer(self) -> None:
        """The batch's bytes were copied: the read buffer they viewed may be reused now."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __repr__(self) -> str:
        return f"<FileOffset {self.record.path}@{self.end}>"
