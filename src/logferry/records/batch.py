"""The unit that travels from a tailer to every sink: complete lines of one file, with their offsets."""

from __future__ import annotations

import bisect
import itertools
import operator
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .record import Record


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

    Each line keeps its source position, which with :attr:`file_id` is its id: as read, a line's
    offset follows from the lengths of the lines before it; once a stage changes lines (their bytes,
    their number), :attr:`events` holds each record with its position (see :meth:`with_records`).
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
    events: Sequence[Record] | None = None
    """The records a stage made of the lines (see :meth:`with_records`): each with its position,
    its text (which may hold newlines: a multiline event) and its fields; ``data`` is their text.
    None: ``data`` is the file's bytes from ``offset``, each line a record where the previous ends."""
    sizes: Sequence[int] = ()
    """With :attr:`events`: each record's length in ``data`` (where cuts may fall)."""

    def with_lines(self, lines: Sequence[bytes], offsets: Sequence[int]) -> Batch:
        """This batch with other lines (each without its newline) at these source ``offsets``: what a
        stage that changes lines' bytes hands on. The lines keep their ids; ``end`` is unchanged."""
        if len(lines) != len(offsets):
            raise ValueError(f"{len(lines)} lines for {len(offsets)} offsets")
        return self.with_records([Record(o, line.decode("utf-8", "surrogateescape")) for o, line in zip(offsets, lines)])

    def with_records(self, records: Sequence[Record]) -> Batch:
        """This batch as ``records`` (what the processors made of its lines): ``data`` becomes their
        raw bytes, each record's position travels with it, ``end`` is unchanged."""
        raws = [record.raw for record in records]
        return Batch(self.path, self.file_id, records[0].offset if records else self.end, self.end, b"".join(raws),
                     self.read_at, len(raws), tuple(records), tuple(map(len, raws)))

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
        return zip(*self.split())

    def split(self) -> tuple[list[int], list[bytes]]:
        """``(offsets, lines)``: :meth:`records` as two lists, built without Python code per line.

        For encoders that format a whole batch at C speed (``map(template.__mod__, zip(...))``):
        at 100-byte lines this is several times faster than iterating :meth:`records`.
        """
        if self.events is not None:  # a record's text may hold newlines: each is cut out by its size
            view, lines, at = memoryview(self.data), [], 0
            for size in self.sizes:
                lines.append(bytes(view[at:at + size - 1]))
                at += size
            return [record.offset for record in self.events], lines
        lines = bytes(self.data).split(b"\n")
        lines.pop()  # data ends with a newline: the last piece is empty
        # offset of line i = offset + (lengths of the lines before it) + i newlines
        starts = itertools.accumulate(map(len, lines), initial=self.offset)
        offsets = list(map(operator.add, starts, itertools.count()))
        offsets.pop()  # accumulate's last value is the end, not a line
        return offsets, lines

    def cut(self, max_bytes: int, max_lines: int = 0) -> list[Batch]:
        """This batch as consecutive batches of at most ``max_bytes`` bytes and ``max_lines`` lines
        (0: any number), cut at line boundaries; a line longer than ``max_bytes`` goes alone.

        The pieces view this batch's data (no copy); the last one ends where this batch ends.
        Only a line limit makes it search the whole batch; a byte limit looks near each cut.
        """
        size = len(self.data)
        if size <= max_bytes and (not max_lines or self.line_count() <= max_lines):
            return [self]
        if self.events is not None:
            return self._cut_records(max_bytes, max_lines)
        view = memoryview(self.data)
        data = bytes(view) if max_lines else None  # the line limit is found by a regex: it needs bytes
        pieces: list[Batch] = []
        start = 0
        while start < size:
            stop = min(size, start + max_bytes)
            if stop < size:
                stop = last_line_end(view, stop, start) or first_line_end(view, stop)
            if data is not None and (match := _lines(max_lines).match(data, start, stop)) is not None:
                stop = match.end()
            pieces.append(self._slice(view, start, stop))
            start = stop
        return pieces

    def slice(self, start: int, stop: int) -> Batch:
        """The lines of ``data[start:stop]`` (both at line boundaries) as a batch of their own, with
        their positions; a view of this batch's data, not a copy. With :attr:`events`, the records
        that start in ``data[start:stop]``."""
        if self.events is not None:
            ends = list(itertools.accumulate(self.sizes, initial=0))
            first, last = bisect.bisect_left(ends, start), bisect.bisect_left(ends, stop)
            return self._records_piece(first, last, ends[first], ends[last])
        return self._slice(memoryview(self.data), start, stop)

    def _slice(self, view: memoryview, start: int, stop: int) -> Batch:
        """``view[start:stop]`` (the file's bytes from ``offset + start``) as a batch."""
        piece = view[start:stop]
        last = stop >= len(view)
        return Batch(self.path, self.file_id, self.offset + start, self.end if last else self.offset + stop,
                     piece, self.read_at, bytes(piece).count(b"\n"))

    def _cut_records(self, max_bytes: int, max_lines: int) -> list[Batch]:
        """:meth:`cut` by records: a record is never cut, one over ``max_bytes`` goes alone."""
        pieces: list[Batch] = []
        first = size = start = 0
        for i, n in enumerate(self.sizes):
            if i > first and (size + n > max_bytes or (max_lines and i - first >= max_lines)):
                pieces.append(self._records_piece(first, i, start, start + size))
                first, start, size = i, start + size, 0
            size += n
        pieces.append(self._records_piece(first, len(self.events or ()), start, len(self.data)))
        return pieces

    def _records_piece(self, first: int, last: int, start: int, stop: int) -> Batch:
        """Records ``first`` to ``last`` (excluded), which are ``data[start:stop]``, as a batch; the
        last piece ends where this batch ends."""
        assert self.events is not None
        end = self.end if last >= len(self.events) else self.events[last].offset
        return Batch(self.path, self.file_id, self.events[first].offset if last > first else end, end,
                     memoryview(self.data)[start:stop], self.read_at, last - first, self.events[first:last],
                     self.sizes[first:last])

    def line_id(self, offset: int) -> str:
        """The identifier of the line starting at ``offset``: the same on every re-delivery, from any
        state directory."""
        return f"{self.file_id}:{offset}"


@lru_cache(maxsize=8)
def _lines(count: int) -> re.Pattern[bytes]:
    """Matches up to ``count`` complete lines (at C speed, unlike a loop of ``find``)."""
    return re.compile(rb"(?:[^\n]*\n){1,%d}" % count)


def last_line_end(view: memoryview, stop: int, start: int = 0) -> int:
    """Where the last line ending within ``view[start:stop]`` ends (after its newline); 0 if none.

    A memoryview cannot be searched: its bytes are copied a small window at a time, from the end
    (with short lines the first window finds one)."""
    window, hi = 4096, stop
    while hi > start:
        lo = max(start, hi - window)
        nl = bytes(view[lo:hi]).rfind(b"\n")
        if nl >= 0:
            return lo + nl + 1
        hi, window = lo, window * 2
    return 0


def first_line_end(view: memoryview, start: int) -> int:
    """Where the first line ending at or after ``start`` ends (after its newline); the view's end if none."""
    window, lo = 4096, start
    while lo < len(view):
        hi = min(len(view), lo + window)
        nl = bytes(view[lo:hi]).find(b"\n")
        if nl >= 0:
            return lo + nl + 1
        lo, window = hi, window * 2
    return len(view)
