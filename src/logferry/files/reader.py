"""Reading one step of a file: complete lines out of large chunks, without touching each line.

``read_step`` runs on a worker thread (never on the event loop). It reads from the file position
where the last complete line ended, so an unterminated last line is simply read again next time
instead of being held in memory; memory stays bounded by the read size however long a line is.
A run of complete lines is returned as one memoryview of the chunk (no copy, no per-line work);
only lines longer than ``max_line`` get per-line treatment (split, truncate or skip).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .identity import FP_MAX, GUARD, MAGIC_MAX, compression, digest, guard_of
from .text import UTF8, Text, text_of

READ_SIZE = 4 << 20  # the most a catch-up read takes (see read_size_for)
MIN_READ_SIZE = 1 << 20
POOLED_MIN = 256 << 10  # reads at least this big go into a reused buffer
POOL_BYTES = 16 << 20  # what the free buffers of one size may hold
COUNT_SLICE = 1 << 20  # lines are counted this many bytes at a time


def read_size_for(max_inflight: int, max_per_send: int = READ_SIZE) -> int:
    """How much a catch-up read takes with ``max_inflight`` bytes in flight, for sinks that take at
    most ``max_per_send`` bytes a call: 1 to 4 MiB, within a quarter of the budget and one call.

    Every batch costs some 0.1 ms of the GIL on its way (the read's hops, the tailer, the pipeline,
    the sink's thread), so 4 MiB batches leave more of it for the bytes than 1 MiB ones; a quarter
    of the budget leaves room to read while earlier batches are written; and a batch that fits one
    call is never cut (cutting copies it and counts its lines again).
    """
    return max(MIN_READ_SIZE, min(READ_SIZE, max_inflight // 4, max_per_send))


class Buffers:
    """Reused buffers for large reads, in a few sizes.

    A fresh megabyte for every read costs the kernel an mmap, page faults and zeroing: about as much
    as the copy itself (measured: half the system time of a catch-up). Batches cut from a buffer
    hold views of it, so it goes back to the pool only once the last of them is acknowledged. A read
    takes the smallest size that holds it, so a buffer holds at most 4 times the bytes read into it
    (reads below ``POOLED_MIN`` are not pooled): memory stays within 4 times the bytes in flight.
    ``list.append``/``pop`` are atomic, so worker threads take and the loop gives without a lock.
    """

    def __init__(self, *sizes: int) -> None:
        self.sizes = sorted(set(sizes))
        self._free: dict[int, list[bytearray]] = {size: [] for size in self.sizes}

    def take(self, need: int) -> bytearray:
        """A buffer of at least ``need`` bytes (at most the largest size)."""
        size = next((s for s in self.sizes if s >= need), self.sizes[-1])
        try:
            return self._free[size].pop()
        except IndexError:
            return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        free = self._free[len(buffer)]
        if len(free) * len(buffer) < POOL_BYTES:
            free.append(buffer)


class Lease:
    """A pooled buffer lent to the pieces cut from it; returned when each has been released."""

    __slots__ = ("_buffer", "_buffers", "_users")

    def __init__(self, buffers: Buffers, buffer: bytearray, users: int) -> None:
        self._buffers, self._buffer, self._users = buffers, buffer, users

    def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._buffers.give(self._buffer)


@dataclass(slots=True)
class Piece:
    """Bytes ``[start, end)`` of the file, turned into ``data`` to ship (empty when dropped)."""

    data: bytes | memoryview
    start: int
    end: int
    guard: bytes
    dropped: int = 0
    cut: bool = False  # a piece of a line over max_line (split or truncated)
    lease: Lease | None = None  # when ``data`` is a view of a pooled buffer
    lines: int = 1  # complete lines in ``data`` (counted on the read thread; 0 when dropped)
    prefix: bytes = b""  # the file's bytes just before ``start`` (at most GUARD): a guard inside it needs them


@dataclass(slots=True)
class Step:
    """What one read found."""

    pieces: list[Piece] = field(default_factory=list)
    size: int = 0
    nlink: int = 1
    truncated: bool = False  # shorter than our position, or the bytes before it changed
    partial: int = 0  # bytes of an unterminated line held back
    discarding: bool = False  # inside a long line whose rest is being dropped
    head: bytes | None = None  # the file's head, when its fingerprint is still growing
    compressed: str | None = None  # the file turned out to be compressed ("gzip", …): nothing is cut
    read: int = 0  # bytes read into memory for it
    text: Text | None = None  # how its bytes are text, once its head told (see Read.text)


@dataclass(slots=True)
class LinePolicy:
    max_line: int
    long_lines: str  # "split", "truncate" or "skip"
    read_size: int = READ_SIZE
    buffers: Buffers = field(init=False)

    def __post_init__(self) -> None:
        self.buffers = Buffers(GUARD + min(MIN_READ_SIZE, self.chunk), GUARD + self.chunk)

    @property
    def chunk(self) -> int:
        """The most one read takes: a line of ``max_line`` plus its newline always fits."""
        return max(self.read_size, self.max_line + 1)


@dataclass(frozen=True, slots=True)
class Read:
    """One read to do: what follows ``pos`` in ``fd``, whose bytes just before ``pos`` hash to ``guard``.

    ``discarding``: inside a long line whose rest is dropped by policy; ``fp_length``: how much of the
    file's head its fingerprint covers so far; ``final``: the file is rotated away or deleted, drained
    and quiet, so an unterminated last line is shipped with a newline added; ``text``: how its
    bytes are text, None while the head must tell (a UTF-16 file's byte order): then the reader
    looks at the head in ``encoding`` and says in ``Step.text``.
    """

    fd: int
    pos: int
    guard: bytes
    discarding: bool
    policy: LinePolicy
    fp_length: int
    final: bool = False
    text: Text | None = UTF8
    encoding: str = "utf-8"


def read_step(read: Read) -> Step:
    """Do ``read`` (on a worker thread): complete lines as pieces, or what changed (truncated, compressed)."""
    fd, pos, guard, policy, fp_length = read.fd, read.pos, read.guard, read.policy, read.fp_length
    st = os.fstat(fd)
    step = Step(size=st.st_size, nlink=st.st_nlink, discarding=read.discarding)
    if st.st_size < pos:
        step.truncated = True
        return step
    # The head is read while the fingerprint still grows, and at offset 0 whatever its length: there
    # the guard covers no byte, so only the head tells a file copied, truncated and written again
    # since the scan saw it (before its tailer read anything) from the file the scan saw.
    if (fp_length < FP_MAX and st.st_size > fp_length) or (pos == 0 and fp_length):
        step.head = os.pread(fd, FP_MAX, 0)
        if pos == 0 and fp_length < MAGIC_MAX:  # it was empty: a compressor may be writing it
            step.compressed = compression(step.head)
            if step.compressed:
                return step
    available = st.st_size - pos
    if available == 0:
        return step
    text = read.text
    if text is None:
        text = step.text = text_of(read.encoding, os.pread(fd, 4, 0))
        if text is None:  # shorter than a byte-order mark: wait for more
            return step
    before = min(pos, GUARD)
    want = min(available, policy.chunk)
    step.read = before + want
    if want < POOLED_MIN:  # live files: small reads, exactly sized
        buf: bytes | bytearray = os.pread(fd, before + want, pos - before)
        n = len(buf)
    else:
        buf = policy.buffers.take(before + want)
        n = os.preadv(fd, [memoryview(buf)[:before + want]], pos - before)
    if n < before or digest(buf[:before]) != guard:
        step.truncated = True
    else:
        cut_lines(step, buf, n, before, pos, policy, read.final, text)
        for piece in step.pieces:
            at = piece.start - pos + before
            piece.prefix = bytes(buf[max(0, at - GUARD):at])
    if isinstance(buf, bytearray):
        if step.pieces:
            lease = Lease(policy.buffers, buf, len(step.pieces))
            for piece in step.pieces:
                piece.lease = lease
        else:
            policy.buffers.give(buf)
    return step


def cut_lines(step: Step, buf: bytes | bytearray, n: int, before: int, pos: int, policy: LinePolicy, final: bool,
              text: Text = UTF8) -> None:
    """Split ``buf[before:n]`` (file bytes from ``pos``) into pieces of complete lines in ``text``'s
    encoding; set ``partial``/``discarding``. ``final``: an unterminated last line ships too."""
    if text.newline == b"\n":
        _cut(step, buf, n, before, pos, policy, final, text.bom)
    else:
        _cut_framed(step, buf, n, before, pos, policy, final, text)


def _skip_bom(buf: bytes | bytearray, n: int, pos: int, bom: bytes, final: bool) -> int | None:
    """How many bytes of a byte-order mark ``buf[:n]`` starts with at the file's head (they are
    never shipped); None: too few bytes yet to tell."""
    if pos or not bom:
        return 0
    if buf.startswith(bom, 0, n):
        return len(bom)
    if n < len(bom) and bom.startswith(bytes(buf[:n])) and not final:
        return None
    return 0


def _cut(step: Step, buf: bytes | bytearray, n: int, before: int, pos: int, policy: LinePolicy, final: bool,
         bom: bytes = b"") -> None:
    """Split ``buf[before:n]`` (file bytes from ``pos``) into pieces; set ``partial``/``discarding``."""
    view = memoryview(buf)
    skip = _skip_bom(buf, n, pos, bom, final)
    if skip is None:
        step.partial = n
        return
    p = before + skip  # index in buf of the first byte not yet accounted for
    if step.discarding:
        nl = buf.find(b"\n", p, n)
        stop = n if nl < 0 else nl + 1
        step.pieces.append(Piece(b"", pos + p - before, pos + stop - before, guard_of(buf, stop), dropped=stop - p))
        step.discarding = nl < 0
        p = stop
    last_nl = buf.rfind(b"\n", p, n)
    if last_nl >= 0:
        _complete_lines(step, buf, view, before, pos, p, last_nl + 1, policy)
        p = last_nl + 1
    m = policy.max_line
    while n - p > m:  # an unterminated line already longer than max_line
        at = pos + p - before
        if policy.long_lines == "skip":
            step.pieces.append(Piece(b"", at, at + n - p, guard_of(buf, n), dropped=n - p))
            step.discarding, p = True, n
        elif policy.long_lines == "truncate":
            step.pieces.append(Piece(bytes(view[p:p + m]) + b"\n", at, at + m, guard_of(buf, p + m), cut=True))
            step.pieces.append(Piece(b"", at + m, at + n - p, guard_of(buf, n), dropped=n - p - m))
            step.discarding, p = True, n
        else:
            step.pieces.append(Piece(bytes(view[p:p + m]) + b"\n", at, at + m, guard_of(buf, p + m), cut=True))
            p += m
    if final and n > p and not step.discarding:
        at = pos + p - before
        step.pieces.append(Piece(bytes(view[p:n]) + b"\n", at, at + n - p, guard_of(buf, n)))
        p = n
    step.partial = n - p


def _complete_lines(
    step: Step, buf: bytes | bytearray, view: memoryview, before: int, pos: int, start: int, end: int,
    policy: LinePolicy
) -> None:
    """Pieces for ``buf[start:end]``, which ends with a newline: one piece unless a line is too long."""
    m = policy.max_line
    if end - start <= m + 1:
        step.pieces.append(Piece(view[start:end], pos + start - before, pos + end - before, guard_of(buf, end),
                                 lines=_lines_in(buf, start, end)))
        return
    # Jump from line start to the last newline within max_line + 1 bytes: about one find per
    # max_line bytes, so long chunks of short lines stay cheap.
    run = q = start
    while q < end:
        nl = buf.rfind(b"\n", q, min(q + m + 1, end))
        if nl >= 0:
            q = nl + 1
            continue
        nl = buf.find(b"\n", q + m, end)  # the long line is buf[q:nl]
        if run < q:
            step.pieces.append(Piece(view[run:q], pos + run - before, pos + q - before, guard_of(buf, q),
                                     lines=_lines_in(buf, run, q)))
        run = _long_line(step, buf, view, before, pos, q, nl, policy)
        q = nl + 1
    if run < end:
        step.pieces.append(Piece(view[run:end], pos + run - before, pos + end - before, guard_of(buf, end),
                                 lines=_lines_in(buf, run, end)))


def _lines_in(buf: bytes | bytearray, start: int, end: int) -> int:
    """The newlines in ``buf[start:end]``, counted a slice at a time: a count holds the GIL (about
    0.3 ms a MiB), and between slices the loop and the other threads can take it."""
    if end - start <= COUNT_SLICE:
        return buf.count(b"\n", start, end)
    return sum(buf.count(b"\n", i, min(i + COUNT_SLICE, end)) for i in range(start, end, COUNT_SLICE))


def _long_line(
    step: Step, buf: bytes | bytearray, view: memoryview, before: int, pos: int, q: int, nl: int, policy: LinePolicy
) -> int:
    """Apply the long-line policy to ``buf[q:nl]`` (its newline at ``nl``); return where normal lines resume."""
    m = policy.max_line
    at = pos + q - before
    if policy.long_lines == "skip":
        step.pieces.append(Piece(b"", at, at + nl + 1 - q, guard_of(buf, nl + 1), dropped=nl + 1 - q))
        return nl + 1
    step.pieces.append(Piece(bytes(view[q:q + m]) + b"\n", at, at + m, guard_of(buf, q + m), cut=True))
    if policy.long_lines == "truncate":
        step.pieces.append(Piece(b"", at + m, at + nl + 1 - q, guard_of(buf, nl + 1), dropped=nl + 1 - q - m))
        return nl + 1
    q += m
    while nl - q > m:
        at = pos + q - before
        step.pieces.append(Piece(bytes(view[q:q + m]) + b"\n", at, at + m, guard_of(buf, q + m), cut=True))
        q += m
    return q  # the last piece, with the line's own newline, joins the following lines


def _cut_framed(step: Step, buf: bytes | bytearray, n: int, before: int, pos: int, policy: LinePolicy, final: bool,
                text: Text) -> None:
    """:func:`_cut` for a newline other than ``b"\\n"`` (UTF-16, UTF-32, EBCDIC): the same pieces, found
    line by line (files in these encodings are rare; the UTF-8 path stays free of this loop)."""
    nl, w = text.newline, len(text.newline)
    view = memoryview(buf)
    skip = _skip_bom(buf, n, pos, text.bom, final)
    if skip is None:
        step.partial = n
        return
    base = pos - before  # the file offset of buf[0]
    m = max(w, policy.max_line - policy.max_line % w)  # cuts stay on character boundaries

    def find(start: int) -> int:
        """The next newline at or after ``start`` that begins a character, or -1."""
        i = buf.find(nl, start, n)
        while i >= 0 and (base + i) % w:
            i = buf.find(nl, i + 1, n)
        return i

    def cut(start: int, stop: int) -> Piece:  # a piece of a long line, with a newline added
        return Piece(bytes(view[start:stop]) + nl, base + start, base + stop, guard_of(buf, stop), cut=True)

    def dropped(start: int, stop: int) -> Piece:
        return Piece(b"", base + start, base + stop, guard_of(buf, stop), dropped=stop - start)

    p = before + skip
    if step.discarding:
        i = find(p)
        stop = n if i < 0 else i + w
        step.pieces.append(dropped(p, stop))
        step.discarding, p = i < 0, stop
    run, lines = p, 0
    while (i := find(p)) >= 0:
        if i - p <= m:
            lines, p = lines + 1, i + w
            continue
        if run < p:
            step.pieces.append(Piece(view[run:p], base + run, base + p, guard_of(buf, p), lines=lines))
        if policy.long_lines == "skip":
            step.pieces.append(dropped(p, i + w))
        else:
            step.pieces.append(cut(p, p + m))
            if policy.long_lines == "truncate":
                step.pieces.append(dropped(p + m, i + w))
            else:
                q = p + m
                while i - q > m:
                    step.pieces.append(cut(q, q + m))
                    q += m
                step.pieces.append(Piece(view[q:i + w], base + q, base + i + w, guard_of(buf, i + w)))
        run, lines, p = i + w, 0, i + w
    if run < p:
        step.pieces.append(Piece(view[run:p], base + run, base + p, guard_of(buf, p), lines=lines))
    while n - p > m and not step.discarding:  # an unterminated line already longer than max_line
        if policy.long_lines == "split":
            step.pieces.append(cut(p, p + m))
            p += m
            continue
        if policy.long_lines == "truncate":
            step.pieces.append(cut(p, p + m))
            p += m
        step.pieces.append(dropped(p, n))
        step.discarding, p = True, n
    end = n - (n - p) % w  # a final line ends on a character boundary
    if final and end > p and not step.discarding:
        step.pieces.append(Piece(bytes(view[p:end]) + nl, base + p, base + end, guard_of(buf, end)))
        p = end
    step.partial = n - p
