"""What makes a file the same file: (device, inode), a fingerprint of its head, and a guard.

* The **fingerprint** hashes the first ``FP_MAX`` bytes, or the whole file while it is shorter (its
  length is stored with it and grows with the file), so files under 1 KiB have one too.
* The **guard** hashes the (up to) ``GUARD`` bytes just before an offset. Resuming at a saved offset
  requires the guard to match, which catches a file truncated and written again past that offset,
  or an inode reused by a file with the same first lines.
* (device, inode) tells apart two files whose heads are identical.
* A line's **id** is ``BASE:OFFSET``. ``BASE`` depends only on what identifies the file on its host,
  never on the state directory, so the same line gets the same id from any state directory:
  the **root** hashes the host (machine id and host name), (device, inode) and the file's birth
  time; the **id base** hashes the root and the file's first line (at most ``ID_HEAD`` bytes: what
  is fixed once any line can ship). A truncation starts a generation whose **origin** is derived from
  the previous generation's base, so its lines differ from those once at the same offsets.

What reads files here runs off the event loop, and so does the first ``file_root`` (it reads the
host's id); hashing heads and ids does no I/O.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

FP_MAX = 1024
GUARD = 64
ID_HEAD = 64  # at most this much of the first line goes into line ids (the tailer keeps as much)

Key = tuple[int, int]
"""(st_dev, st_ino) of a file."""
T = TypeVar("T")


def digest(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


EMPTY_GUARD = digest(b"")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A hash of a file's first ``length`` bytes."""

    length: int
    value: bytes

    @classmethod
    def of(cls, head: bytes | memoryview) -> Fingerprint:
        head = head[:FP_MAX]
        return cls(len(head), digest(head))

    def matches(self, head: bytes | memoryview) -> bool:
        """Whether a file starting with ``head`` (read up to FP_MAX bytes) is this file."""
        return len(head) >= self.length and digest(head[: self.length]) == self.value


_MAGIC = (  # the first bytes of compressed files, as logrotate's compress and kubelet leave them
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"PK\x03\x04", "zip"),
)
MAGIC_MAX = 10  # bytes of head that decide (bzip2: "BZh", a level digit, then the block magic)


def compression(head: bytes | memoryview) -> str | None:
    """The compression format a file starting with ``head`` is in, or None for text."""
    head = bytes(head[:MAGIC_MAX])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"
    return None


def key_of(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino)


def read_head(fd: int) -> bytes:
    return os.pread(fd, FP_MAX, 0)


def guard_at(fd: int, offset: int) -> bytes | None:
    """The guard for ``offset`` in the open file, or None if the file is shorter than ``offset``."""
    start = max(0, offset - GUARD)
    data = os.pread(fd, offset - start, start)
    return digest(data) if len(data) == offset - start else None


def guard_of(data: bytes | bytearray | memoryview, end: int) -> bytes:
    """The guard for the position just after ``data[:end]`` (data starting at a file offset ≥ 0)."""
    return digest(data[max(0, end - GUARD):end])


# -- line ids ---------------------------------------------------------------------

_AT_EMPTY_PATH, _STATX_BTIME = 0x1000, 0x800
_STX_MASK, _STX_BTIME = 0, 80  # offsets in struct statx (linux/stat.h)
_local = threading.local()


@functools.cache
def _statx() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None).statx  # glibc >= 2.28; Python 3.11 has no os.statx
    except (AttributeError, OSError):
        return None
    fn.restype = ctypes.c_int  # its arguments (ints, bytes, a buffer) convert as they are: argtypes cost 2 µs a call
    return fn


def birth_time(fd: int) -> int | None:
    """The open file's birth time in nanoseconds, or None where the kernel, C library or file
    system does not record one (some network file systems, ext4 with 128-byte inodes)."""
    statx = _statx()
    if statx is None:
        return None
    buf = getattr(_local, "statx_buf", None)
    if buf is None:  # one per thread: worker threads call this concurrently
        buf = _local.statx_buf = ctypes.create_string_buffer(256)
    if statx(fd, b"", _AT_EMPTY_PATH, _STATX_BTIME, buf) != 0:
        return None
    (mask,) = struct.unpack_from("I", buf, _STX_MASK)
    if not mask & _STATX_BTIME:
        return None
    sec, nsec = struct.unpack_from("qI", buf, _STX_BTIME)
    return sec * 1_000_000_000 + nsec or None  # 0: some file systems fill it in without knowing it


@functools.cache
def host_id() -> str:
    """This host: its machine id (stable across reboots) and its name (VMs cloned from one image
    may share a machine id). Cached: read once per process."""
    machine = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                machine = f.read().strip()
        except OSError:
            continue
        if machine:
            break
    return f"{machine}/{socket.gethostname()}"


def _hash(data: bytes, size: int = 16) -> str:
    return hashlib.blake2b(data, digest_size=size, person=b"logferry-id").hexdigest()


def file_root(key: Key, birth: int | None) -> str:
    """What identifies a file on this host, whoever looks: host, (device, inode), birth time. Without
    a birth time an inode reused by a new file has the old file's root (its first line still counts)."""
    return _hash(f"root\0{host_id()}\0{key[0]}\0{key[1]}\0{'' if birth is None else birth}".encode())


def next_origin(id_base: str, origin: str) -> str:
    """The origin of the generation that follows a truncation, from the previous generation's id
    base (or its origin, when it shipped nothing: a copy of it may still ship from that origin)."""
    return _hash(f"next\0{id_base or origin}".encode())


def line_id_base(origin: str, head: bytes, max_line: int, whole: bool = False) -> str:
    """The base of the ids of a generation's lines: its origin and its first line (newline included,
    at most ``ID_HEAD`` bytes, or ``max_line`` when lines are cut shorter). "" while ``head``, the
    generation's first bytes, holds neither a newline nor that many bytes, unless ``whole`` says it
    is all the file holds (its only line ships unterminated): any other head may still change.

    16 hex digits, as the random ids of earlier versions; the line's id is ``BASE:OFFSET``."""
    limit = min(ID_HEAD, max_line)
    nl = head.find(b"\n", 0, limit)
    if nl >= 0:
        head = head[:nl + 1]
    elif len(head) >= limit:
        head = head[:limit]
    elif not whole:
        return ""
    return _hash(origin.encode() + b"\0" + head, size=8)  # origins are hex: no NUL in them


def open_readonly(path: str) -> int:
    """Open for reading without touching atime where allowed (O_NOATIME needs ownership)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def open_checked(path: str, key: Key) -> int | None:
    """Open ``path`` if it is still the file ``key`` (a descriptor, or None); on a worker thread.
    Whether its bytes are still those read before (not truncated, rewritten, or a reused inode) is
    for the next read to find: it checks the guard before its offset and the head."""
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


class FingerprintIndex(Generic[T]):
    """Things indexed by fingerprint: a new file's head is matched by a few lookups (one per
    fingerprint length in use) instead of against every file."""

    def __init__(self, pairs: Iterable[tuple[Fingerprint, T]]) -> None:
        self._by_length: dict[int, dict[bytes, list[T]]] = {}
        for fp, value in pairs:
            self._by_length.setdefault(fp.length, {}).setdefault(fp.value, []).append(value)

    def __bool__(self) -> bool:
        return bool(self._by_length)

    def lookup(self, head: bytes) -> list[T]:
        """Everything whose fingerprint matches a file starting with ``head``."""
        out: list[T] = []
        for length, by_value in self._by_length.items():
            if length <= len(head):
                out += by_value.get(digest(head[:length]), ())
        return out
