"""The unit that travels from a tailer to every sink: complete lines of one file, with their offsets."""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Batch:
    """Complete lines read from one file, in file order.

    ``data`` holds the lines back to back, each ending in ``b"\\n"``. Sinks that only move bytes
    (the raw file sink) write ``data`` as it is, without touching each line; sinks that need records
    iterate :meth:`records`.

    ``offset``/``end`` are byte offsets in the file: the first line starts at ``offset`` and the file's
    checkpoint moves to ``end`` once every sink has acknowledged the batch. A line longer than the
    configured maximum arrives alone in its batch, cut and newline-terminated, so ``end - offset`` may
    differ from ``len(data)`` by that newline (or by skipped bytes).
    """

    path: str
    """The file's path when the lines were read (a rotated file keeps its identity, not its name)."""
    file_id: str
    """The base of the lines' ids, derived from the file (see ``identity.line_id_base``): the same
    across renames, restarts and state directories, new after a truncation."""
    offset: int
    end: int
    data: bytes | memoryview
    read_at: float = field(default_factory=time.time)
    nlines: int = -1
    """How many lines ``data`` holds, when its creator counted them (-1: not counted)."""

    def line_count(self) -> int:
        """How many lines ``data`` holds (counted now unless the reader counted them)."""
        return self.nlines if self.nlines >= 0 else bytes(self.data).count(b"\n")

    def __len__(self) -> int:
        return len(self.data)

    def lines(self) -> list[bytes]:
        """Each line as bytes, newline included."""
        return bytes(self.data).splitlines(keepends=True)

    def records(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` for each line, the line without its newline.

        The offset is the line's byte position in the file; with :attr:`file_id` it names the line
        uniquely and identically on every re-delivery (see :meth:`line_id`).
        """
        offset = self.offset
        lines = bytes(self.data).split(b"\n")
        lines.pop()  # data ends with a newline: the last piece is empty
        for line in lines:
            yield offset, line
            offset += len(line) + 1

    def split(self) -> tuple[list[int], list[bytes]]:
        """``(offsets, lines)``: :meth:`records` as two lists, built without Python code per line.

        For encoders that format a whole batch at C speed (``map(template.__mod__, zip(...))``):
        at 100-byte lines this is several times faster than iterating :meth:`records`.
        """
        lines = bytes(self.data).split(b"\n")
        lines.pop()  # data ends with a newline: the last piece is empty
        # offset of line i = offset + (lengths of the lines before it) + i newlines
        starts = itertools.accumulate(map(len, lines), initial=self.offset)
        offsets = list(map(operator.add, starts, itertools.count()))
        offsets.pop()  # accumulate's last value is the end, not a line
        return offsets, lines

    def line_id(self, offset: int) -> str:
        """The identifier of the line starting at ``offset``: the same on every re-delivery, from any
        state directory."""
        return f"{self.file_id}:{offset}"
