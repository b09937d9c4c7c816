"""The writer-thread file sink: appends lines to a file (or stdout) from a thread of its own.

The engine's loop never touches the file: as a :class:`~logferry.sinks.base.ThreadedSink` it writes on a
thread and event loop of its own, so a slow disk only slows this sink, and its errors surface in
``send``. Everything queued for it goes out in one ``writev``.
A batch is acknowledged once ``write(2)`` has taken it all (it survives a crash of logferry);
``fsync = true`` also makes it survive a crash of the machine, at a cost per batch. Each ``write``
takes whole lines, some 256 KiB of them (``WRITE_MAX``), however large the batches.

A write that fails partway (full disk, quota, I/O error, file size limit) is cut back to the length
the output had before it, the last line boundary, before the error reaches the pipeline, which
retries the same batches: the output never holds a torn line, nor lines doubled by the retry.
This assumes the sink is the only writer of its output file: the length before a write is taken
with ``fstat`` just before it, so a process appending whole lines between our writes is safe, but
one appending during a write that fails would have its bytes cut with ours.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from typing import Any

from ..errors import SinkError
from ..records.batch import Batch, first_line_end, last_line_end
from ..records.formats import encode
from .base import Sink, ThreadedSink

STDOUT = "-"
_IOV_MAX = 1024
WRITE_MAX = 256 << 10  # bytes one write(2) takes (more only for a line longer than this); see _write_all
_REOPEN_CHECK = 1.0  # seconds between checks that the output was not rotated away
TORN_SCAN = 4 << 20  # how far back to look for the end of the last complete line
log = logging.getLogger("logferry.sinks.file")


class FileSink(ThreadedSink):
    """Append to ``path`` (created with its parents), or to stdout when ``path`` is ``"-"``.

    ``mode``: the permission bits of an output file the sink creates (also after a rotation), exactly,
    whatever the umask; None: 0666 minus the umask. An existing file keeps its mode.
    """

    def __init__(self, url: str, path: str, fmt: str = "raw", fsync: bool = False, mode: int | None = None) -> None:
        super().__init__(url)
        self.path = path
        self.output_path = None if path == STDOUT else path
        self.format = fmt
        self.fsync = fsync
        self.mode = mode
        self._fd: int | None = None
        self._checked_at = 0.0
        self._torn_at: int | None = None  # where a failed write could not be cut back (the output's length before it)

    # -- on the sink's own thread ----------------------------------------------

    async def open(self) -> None:
        if self.path == STDOUT:
            self._fd = 1
            return
        try:
            self._fd = self._open_output()
            self._cut_torn_tail()
        except OSError as exc:
            raise SinkError(f"cannot open {self.path}: {exc.strerror}", retryable=False) from None

    def _open_output(self) -> int:
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        if self.mode is None:
            fd = os.open(self.path, flags | os.O_CREAT, 0o666)
        else:
            fd = self._create_with_mode(flags, self.mode)
        self._checked_at = time.monotonic()
        return fd

    def _create_with_mode(self, flags: int, mode: int) -> int:
        try:
            # Created with mode minus the umask (never wider than asked), then set to mode exactly.
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            return os.open(self.path, flags)  # not ours to change
        os.fchmod(fd, mode)
        return fd

    def _cut_torn_tail(self) -> None:
        """A crash in the middle of a write can leave a partial last line. That batch was never
        acknowledged, so it is shipped again: cut the fragment rather than glue it to the next line."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == 0 or not os.path.isfile(self.path):
            return
        start = max(0, size - TORN_SCAN)
        with open(self.path, "rb") as f:
            f.seek(start)
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        nl = tail.rfind(b"\n")
        if nl < 0 and start > 0:
            return  # no line end in reach: not a torn line of ours; leave the file alone
        keep = start + nl + 1
        os.truncate(self.path, keep)
        log.warning("%s ended with a partial line (%d bytes, left by a crash); removed it: its line is "
                    "shipped again", self.path, size - keep)

    async def write(self, batches: list[Batch]) -> None:
        chunks = [memoryview(encode(batch, self.format)) for batch in batches]
        try:
            self._repair_torn_tail()
            self._reopen_if_rotated()
            self._append(chunks)
        except BrokenPipeError:
            raise SinkError(f"{self.describe()}: the reader closed the pipe", retryable=False) from None
        except OSError as exc:
            raise SinkError(f"cannot write to {self.path}: {exc.strerror}") from None

    def _append(self, chunks: list[memoryview]) -> None:
        """Write (and sync) all of ``chunks``, or leave the output as long as it was before."""
        assert self._fd is not None
        boundary = self._boundary()
        try:
            _write_all(self._fd, chunks)
            if self.fsync:
                os.fsync(self._fd)  # a failed fsync too: the retry writes and syncs the lines again
        except OSError:
            if boundary is not None:
                self._cut_back(boundary)
            raise

    def _boundary(self) -> int | None:
        """The output's length now, a line boundary (every earlier write completed or was cut back);
        None where there is nothing to cut back: stdout (written at its position, maybe a pipe) or
        a device such as ``/dev/null``."""
        assert self._fd is not None
        if self._fd == 1:
            return None
        st = os.fstat(self._fd)
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _cut_back(self, boundary: int) -> None:
        """Remove what a failed write left after ``boundary`` (the fd appends, so the next write lands
        at the new end: no hole); if that fails too, remember it: the next attempt cuts first (a
        restart would too: the torn tail is cut at open)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, boundary)
        except OSError as exc:
            self._torn_at = boundary
            log.error("%s: could not cut a failed write back to the last complete line (%s); nothing is "
                      "appended until the next attempt has cut it", self.path, exc.strerror)

    def _repair_torn_tail(self) -> None:
        """Before any new write, cut the torn tail a failed write left and :meth:`_cut_back` could not
        remove; if it still cannot, this attempt fails too, without appending after it."""
        if self._torn_at is None:
            return
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._torn_at)
        except OSError as exc:
            raise SinkError(f"cannot cut {self.path} back to its last complete line: {exc.strerror}") from None
        log.warning("%s: cut the torn tail of a failed write (%d bytes kept); writing again",
                    self.path, self._torn_at)
        self._torn_at = None

    def _reopen_if_rotated(self) -> None:
        """Follow the output path when someone rotated the merged file (logrotate on our output).
        After a failed reopen (its directory gone, say) every write tries again: a retryable error."""
        if self._fd is None:
            self._fd = self._open_output()
            return
        now = time.monotonic()
        if self._fd == 1 or now - self._checked_at < _REOPEN_CHECK:
            return
        self._checked_at = now
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            at_path = None
        held = os.fstat(self._fd)
        if at_path is None or (at_path.st_dev, at_path.st_ino) != (held.st_dev, held.st_ino):
            os.close(self._fd)
            self._fd = None
            self._fd = self._open_output()

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None or fd == 1:
            return
        # Writes are unbuffered (each batch is acknowledged after write(2)), so nothing is left to
        # flush; with fsync = true every batch was already synced.
        os.close(fd)

    def describe(self) -> str:
        return "stdout" if self.path == STDOUT else f"file:{self.path}"

    def options(self) -> dict[str, Any]:
        """One entry an option (a test checks they match the options the plugin accepts)."""
        shown: dict[str, Any] = {"format": self.format, "fsync": self.fsync}
        if self.output_path is not None:  # stdout takes no mode
            shown["mode"] = f"{_created_mode(self.mode):04o}"
        return shown


def _created_mode(mode: int | None) -> int:
    """The permission bits a new output gets: ``mode``, or 0666 minus the umask (read from /proc:
    ``os.umask`` can only be read by setting it, which races with threads creating files)."""
    if mode is not None:
        return mode
    try:
        with open("/proc/self/status") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = 0o022
    return 0o666 & ~umask


def _write_all(fd: int, chunks: list[memoryview]) -> None:
    """Write ``chunks`` in order: small ones gathered into one ``writev``, large ones cut at line ends,
    so that every call writes whole lines, about ``WRITE_MAX`` bytes of them.

    Not one call for everything: measured on Linux 6.18 (ext4, in a VM), the kernel spends two to
    three times as long putting 800 MB into the page cache in 4-8 MiB writes as in 256 KiB ones
    (0.8-1.3 s against 0.4-0.5 s, and the large writes vary run to run); cat writes 128 KiB. Whole
    lines, so that another process appending whole lines between two calls never splits one of ours.
    """
    group: list[memoryview] = []
    size = 0
    for chunk in chunks:
        while size + len(chunk) > WRITE_MAX:
            cut = last_line_end(chunk, WRITE_MAX - size)
            if not cut:
                if group:  # its first line does not fit: write what is gathered, then look again
                    _writev_all(fd, group)
                    group, size = [], 0
                    continue
                cut = first_line_end(chunk, WRITE_MAX)  # a line longer than WRITE_MAX goes whole
            group.append(chunk[:cut])
            _writev_all(fd, group)
            group, size = [], 0
            chunk = chunk[cut:]
        if chunk:
            group.append(chunk)
            size += len(chunk)
    if group:
        _writev_all(fd, group)


def _writev_all(fd: int, chunks: list[memoryview]) -> None:
    """One ``writev`` for all chunks (the usual case), continuing after a short write."""
    while chunks:
        written = os.writev(fd, chunks[:_IOV_MAX])
        while chunks and written >= len(chunks[0]):
            written -= len(chunks.pop(0))
        if written:
            chunks[0] = chunks[0][written:]


class NullSink(Sink):
    """Discards every batch at once (for benchmarks and dry runs)."""

    async def send(self, batch: Batch) -> None:
        return None
