"""Container logs written exactly as the runtimes write them, for fixtures and the writer scripts.

* CRI (containerd's ``redirectLogs``; CRI-O's conmon writes the same): each line the container
  writes becomes ``<time> <stream> <tag> <line>\\n``, the time in Go's RFC3339Nano (trailing zeros
  of the fraction dropped, the node's zone: ``Z`` or ``+02:00``), a ``\\r`` before the newline
  dropped; a line longer than ``max_container_log_line_size`` (16 KiB) is cut into chunks tagged
  ``P`` and a last one tagged ``F``; text without a newline at the end of the stream is tagged ``P``.
* dockerd's json-file driver: ``{"log":"<chunk>","stream":"stdout","time":"<RFC3339Nano, UTC>"}\\n``
  (``attrs`` before ``time`` when log-opts add some); a line is cut into 16 KiB chunks, only the
  last keeps its newline (one is added at the end of the stream); the text is escaped by Docker's
  own encoder: ``<``, ``>``, ``&``, control bytes, U+2028/U+2029 as ``\\u`` escapes, bytes that are
  not UTF-8 as U+FFFD.

This module is also run as a script by the writer subprocesses (see ``kubelet.py``): it imports
nothing from the tests.
"""

from __future__ import annotations

import json
import time

CRI_MAX_LINE = 16 * 1024  # containerd's default max_container_log_line_size
DOCKER_CHUNK = 16 * 1024  # dockerd's copier buffer


def rfc3339nano(ns: int, offset_minutes: int = 0) -> str:
    """Go's ``time.RFC3339Nano`` of ``ns`` nanoseconds since the epoch, in a zone ``offset_minutes`` east."""
    local = ns + offset_minutes * 60 * 1_000_000_000
    seconds, frac = divmod(local, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


class Clock:
    """The runtime's clock in tests: each call a little later (nanoseconds, distinct)."""

    def __init__(self, start_ns: int = 1_714_557_600_123_456_789, step_ns: int = 1_000_003) -> None:
        self.ns, self.step = start_ns, step_ns

    def __call__(self) -> int:
        self.ns += self.step
        return self.ns


def cri(data: bytes, stream: str = "stdout", clock: Clock | None = None, max_line: int = CRI_MAX_LINE,
        offset_minutes: int = 0, eof: bool = False) -> bytes:
    """What containerd writes to the log file for ``data`` written by the container on ``stream``.
    ``eof``: the stream ends after ``data`` (text after its last newline is written, tagged P);
    otherwise that text must not be there (the runtime still buffers it)."""
    clock = clock or Clock()
    out = []
    lines = data.split(b"\n")
    tail = lines.pop()
    if tail and not eof:
        raise ValueError("containerd holds text without a newline until the stream ends")
    items = [(line[:-1] if line.endswith(b"\r") else line, True) for line in lines]
    if tail:
        items.append((tail, False))
    for line, terminated in items:
        chunks = [line[i:i + max_line] for i in range(0, len(line), max_line)] or [b""]
        for n, chunk in enumerate(chunks):
            tag = b"F" if terminated and n == len(chunks) - 1 else b"P"
            stamp = rfc3339nano(clock(), offset_minutes).encode()
            out.append(b" ".join([stamp, stream.encode(), tag, chunk]) + b"\n")
    return b"".join(out)


def docker_escape(data: bytes) -> str:
    """Docker's ``ffjsonWriteJSONBytesAsString``: the JSON string (with quotes) of ``data``."""
    out = ['"']
    text = data.decode("utf-8", "surrogateescape")  # one surrogate per invalid byte, as Go's DecodeRune
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append("\\ufffd")  # the escape, as Docker writes it
        elif ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or ch in "<>&":
            out.append(f"\\u00{code:02x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def docker(data: bytes, stream: str = "stdout", clock: Clock | None = None, attrs: dict[str, str] | None = None,
           chunk: int = DOCKER_CHUNK) -> bytes:
    """What dockerd's json-file driver writes for ``data`` written by the container on ``stream``
    (text after the last newline: the stream ended there, and dockerd adds the newline)."""
    clock = clock or Clock()
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    out = []
    for line in lines:
        pieces = [line[i:i + chunk] for i in range(0, len(line), chunk)] or [b""]
        for n, piece in enumerate(pieces):
            text = piece + b"\n" if n == len(pieces) - 1 else piece
            entry = "{"
            if text:
                entry += '"log":' + docker_escape(text) + ","
            entry += '"stream":' + json.dumps(stream) + ","
            if attrs:
                entry += '"attrs":' + json.dumps(attrs, separators=(",", ":")) + ","
            entry += '"time":"' + rfc3339nano(clock()) + '"}\n'
            out.append(entry.encode())
    return b"".join(out)
