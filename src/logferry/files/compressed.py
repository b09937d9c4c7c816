"""Compressed files read as their decompressed content: ``app.log.2.gz`` is the log it was compressed from.

A gzip file (also bzip2 and xz, whose stdlib decoders share zlib's streaming interface) is followed
as its *content*: its offsets, size, head fingerprint and guards are those of the decompressed bytes.
So the machinery that tells a copy of a known file (the head fingerprint, the guard before a saved
offset) recognises a compressed rotation as the file it was compressed from, and resumes it at that
file's saved offset: at its end when everything was shipped, else where the original stopped.

Everything here runs on worker threads and decompresses incrementally: a bounded slice of compressed
input and of content at a time (``IN_CHUNK``, the reader's chunk), never a whole file in memory. A
stream is decoded forward only: resuming at offset N decodes (and drops) the N bytes before it.

A stream that stops without its end marker is incomplete (still being written, or truncated): what
it holds is read like a growing file, complete lines only. A stream that cannot be decoded (bad
data, a failed CRC at a member's end, garbage after it) is *damaged*: what came before is read, the
rest is reported (``damaged``) and counted by the tailer.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol

from .identity import FP_MAX, GUARD, Key, digest, open_checked
from .reader import Read, Step, cut_lines
from .text import UTF8, text_of

IN_CHUNK = 256 << 10  # compressed bytes read from the file at a time
SKIP_CHUNK = 1 << 20  # content decoded (and dropped, or surveyed) at a time


class _Decoder(Protocol):
    """The interface of ``bz2.BZ2Decompressor`` and ``lzma.LZMADecompressor``."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Gzip:
    """One gzip member through zlib, with bz2's interface: zlib keeps the input it could not use
    within ``max_length`` in ``unconsumed_tail``, bz2 and lzma keep it inside."""

    __slots__ = ("_z", "needs_input")

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=31)  # 16 + 15: a gzip header and trailer, a 32 KiB window
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._z.eof

    @property
    def unused_data(self) -> bytes:
        return self._z.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        z = self._z
        out = z.decompress(z.unconsumed_tail + data if z.unconsumed_tail else data, max_length)
        self.needs_input = not z.unconsumed_tail and len(out) < max_length
        return out


# The formats read as their content, by the names identity.compression gives them: a member's first
# bytes, a decoder for one member (a file may hold several in a row: ``cat a.gz b.gz``), and what it
# raises on bad data.
FORMATS: dict[str, tuple[bytes, Callable[[], _Decoder], tuple[type[Exception], ...]]] = {
    "gzip": (b"\x1f\x8b", _Gzip, (zlib.error, EOFError)),
    "bzip2": (b"BZh", bz2.BZ2Decompressor, (OSError, EOFError)),
    "xz": (b"\xfd7zXZ\x00", lzma.LZMADecompressor, (lzma.LZMAError, EOFError)),
}


def readable(kind: str | None) -> bool:
    """Whether files compressed in ``kind`` (``identity.compression``) are read as their content."""
    return kind in FORMATS


class Content:
    """The decompressed bytes of one file, produced forward from its first byte (``pull``)."""

    __slots__ = ("_decoder", "_errors", "_input", "_magic", "_new", "damaged", "damaged_at", "head", "members",
                 "produced", "read_to")

    def __init__(self, kind: str) -> None:
        self._magic, self._new, self._errors = FORMATS[kind]
        self.restart()

    @property
    def magic(self) -> bytes:
        return self._magic

    def starts(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` is in this compression format (an empty one may be
        a compressor's output not written yet)."""
        return head.startswith(self._magic) or self._magic.startswith(head)

    def restart(self) -> None:
        """From the file's first byte again."""
        self._decoder: _Decoder | None = None
        self._input = b""  # read from the file, not given to a decoder yet
        self.read_to = 0  # compressed bytes read from the file
        self.produced = 0  # content bytes produced
        self.members = 0  # members decoded to their end
        self.damaged = ""  # why nothing more can be decoded ("" while it can)
        self.damaged_at = 0  # from where (a compressed offset, to within the slice that failed)
        self.head = b""  # the content's first FP_MAX bytes

    def ended(self, stored: int) -> bool:
        """The stream ends cleanly here: a member ended, and nothing follows in a file of ``stored`` bytes."""
        return self._decoder is None and self.members > 0 and not self._input and self.read_to >= stored

    def pull(self, fd: int, limit: int) -> bytes:
        """Up to ``limit`` more content bytes: fewer when the file holds no more yet (b"": none)."""
        parts: list[bytes] = []
        got = 0
        while got < limit and not self.damaged:
            decoder = self._decoder
            if decoder is None or decoder.needs_input:
                if not self._input or (decoder is None and len(self._input) < len(self._magic)):
                    more = os.pread(fd, IN_CHUNK, self.read_to)
                    if not more:
                        break  # all there is, for now
                    self.read_to += len(more)
                    self._input += more
                if decoder is None:
                    decoder = self._start()
                    if decoder is None:
                        continue
                data, self._input = self._input, b""
            else:
                data = b""  # the decoder holds more output: take it before giving it more input
            try:
                out = decoder.decompress(data, limit - got)
            except self._errors as exc:
                self.damaged = str(exc) or type(exc).__name__
                self.damaged_at = self.read_to - len(data)
                break
            parts.append(out)
            got += len(out)
            if decoder.eof:  # what follows the member: another member, padding, or garbage
                self._decoder, self._input = None, decoder.unused_data
                self.members += 1
        out = b"".join(parts)
        if len(self.head) < FP_MAX:
            self.head += out[:FP_MAX - len(self.head)]
        self.produced += len(out)
        return out

    def _start(self) -> _Decoder | None:
        """A decoder for the member ``_input`` starts with. None while that cannot be told yet (the
        caller reads more, or stops), after dropping zero padding (some tools pad a stream to a
        block size), or when what follows is not a member (``damaged``)."""
        data = self._input
        if data.startswith(self._magic):
            self._decoder = self._new()
            return self._decoder
        if self._magic.startswith(data):
            return None  # the start of a member, not all written yet
        if not data.strip(b"\0"):
            self._input = b""
            return None
        self.damaged = "not a compressed stream" if not self.members else "garbage after the end of the stream"
        self.damaged_at = self.read_to - len(data)
        return None


class Seen:
    """What ``survey`` found in a compressed file: its content's head, size (all of it, or only as
    far as the head when not ``whole``), guards at the offsets asked for and at its end, and whether
    its stream ends cleanly (nothing more being written) or is damaged. (Plain classes here, not
    dataclasses: every start imports this module.)"""

    __slots__ = ("damaged", "ended", "guards", "head", "size")

    def __init__(self, head: bytes, size: int, guards: dict[int, bytes | None], ended: bool, damaged: str) -> None:
        self.head, self.size, self.guards, self.ended, self.damaged = head, size, guards, ended, damaged


def survey(fd: int, kind: str, offsets: Iterable[int] = (), whole: bool = True) -> Seen:
    """Decode the open file once (or only its head, unless ``whole``), keeping the guard before each
    of ``offsets`` (None for those beyond its content) and at its end."""
    content = Content(kind)
    wanted = sorted(set(offsets))
    guards: dict[int, bytes | None] = {}
    tail = b""  # the last GUARD content bytes before ``content.produced``
    i = 0
    while True:
        at = content.produced
        data = content.pull(fd, SKIP_CHUNK if whole else FP_MAX - at)
        while i < len(wanted) and wanted[i] <= at + len(data):
            guards[wanted[i]] = _guard(tail, data, at, wanted[i])
            i += 1
        if not data:
            break
        tail = (tail + data[-GUARD:])[-GUARD:]
        if not whole and content.produced >= FP_MAX:
            break
    for offset in wanted[i:]:
        guards[offset] = None  # beyond the content: the file is shorter than that offset
    if whole:
        guards[content.produced] = digest(tail)
    return Seen(content.head, content.produced, guards, content.ended(os.fstat(fd).st_size), content.damaged)


def _guard(tail: bytes, data: bytes, at: int, offset: int) -> bytes:
    """The guard before ``offset``, from ``data`` (content from ``at``) and the ``tail`` before it."""
    k = offset - at
    return digest(data[k - GUARD:k] if k >= GUARD else (tail + data[:k])[-GUARD:])


def guards_at(path: str, kind: str, key: Key, offsets: list[int]) -> Seen | None:
    """``survey`` of the file at ``path`` if it is still the file ``key``; None when it cannot be read."""
    fd = open_checked(path, key)
    if fd is None:
        return None
    try:
        return survey(fd, kind, offsets)
    except OSError:
        return None
    finally:
        os.close(fd)


class CompressedStep(Step):
    """A read of a compressed file: ``size`` and offsets are its content's; ``stored`` is its size on
    disk (what the poller compares); ``ended``: its stream ends cleanly at the end of the file;
    ``damaged``: why the rest cannot be decoded, and ``undecodable`` compressed bytes after it."""

    __slots__ = ("damaged", "ended", "stored", "undecodable")

    def __init__(self, nlink: int, discarding: bool, stored: int) -> None:
        super().__init__(nlink=nlink, discarding=discarding)
        self.stored, self.ended, self.damaged, self.undecodable = stored, False, "", 0


class Decompressed:
    """A compressed file as one tailer reads it: its content from the position asked for, a chunk at
    a time. The content decoded beyond the last complete line is kept for the next read (at most a
    chunk); the decoder's state too, so reading on never decodes a byte twice."""

    __slots__ = ("_at", "_window", "content")

    def __init__(self, kind: str) -> None:
        self.content = Content(kind)
        self._window = bytearray()  # content bytes from offset ``_at``, decoded and not yet passed
        self._at = 0

    def read_step(self, read: Read) -> CompressedStep:
        """``reader.read_step`` for a compressed file (on a worker thread): complete lines of its
        content after ``read.pos`` as pieces, or what changed (truncated)."""
        fd, pos, policy = read.fd, read.pos, read.policy
        st = os.fstat(fd)
        content = self.content
        step = CompressedStep(st.st_nlink, read.discarding, st.st_size)
        if not content.starts(os.pread(fd, len(content.magic), 0)):
            # Its inode holds another file now (the first was removed and the number reused, by a
            # plain log even): nothing of it is this file's content.
            step.truncated = True
            return step
        before = min(pos, GUARD)
        start = pos - before
        if start < self._at or st.st_size < content.read_to:  # back to an earlier offset, or rewritten
            content.restart()
            self._window.clear()
            self._at = 0
        self._advance(fd, start)
        missing = pos + policy.chunk + 1 - (self._at + len(self._window))  # one byte more tells if more follows
        if missing > 0:
            self._window += content.pull(fd, missing)
        end = self._at + len(self._window)
        step.size = end
        step.ended = content.ended(st.st_size)
        if content.damaged:
            step.damaged = content.damaged
            step.undecodable = max(0, st.st_size - content.damaged_at)
        if (read.fp_length < FP_MAX and end > read.fp_length) or (pos == 0 and read.fp_length):
            step.head = content.head
        if end < pos:  # the content ends before our position: still being written, or another file now
            step.truncated = step.ended
            return step
        with memoryview(self._window) as view:
            buf = bytes(view[:before + min(end - pos, policy.chunk)])
        step.read = n = len(buf)
        if digest(buf[:before]) != read.guard:
            step.truncated = True
            return step
        # A stream that ended cleanly holds all there will be: its unterminated last line ships now.
        # One that stops early (truncated, or still being written) never ships a last line it may cut.
        text = read.text or text_of(read.encoding, buf[:4] if pos == 0 else content.head) or UTF8
        step.text = text
        cut_lines(step, buf, n, before, pos, policy, step.ended and start + n == end, text)
        for piece in step.pieces:
            at = piece.start - start
            piece.prefix = buf[max(0, at - GUARD):at]
        drop = (step.pieces[-1].end if step.pieces else pos) - GUARD - self._at  # keep what the next read needs
        if drop > 0:
            del self._window[:drop]
            self._at += drop
        return step

    def _advance(self, fd: int, start: int) -> None:
        """Drop the content before ``start`` (decoding it, a slice at a time, when not decoded yet)."""
        if start <= self._at + len(self._window):
            del self._window[:start - self._at]
            self._at = start
            return
        self._at += len(self._window)
        self._window.clear()
        while self._at < start:
            data = self.content.pull(fd, min(SKIP_CHUNK, start - self._at))
            if not data:
                return  # the content ends before ``start`` (for now)
            self._at += len(data)
