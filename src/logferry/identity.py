"""What makes a file the same file: (device, inode), a fingerprint of its head, and a guard.

* The **fingerprint** hashes the first ``FP_MAX`` bytes, or the whole file while it is shorter (its
  length is stored with it and grows with the file), so files under 1 KiB have one too.
* The **guard** hashes the (up to) ``GUARD`` bytes just before an offset. Resuming at a saved offset
  requires the guard to match, which catches a file truncated and written again past that offset,
  or an inode reused by a file with the same first lines.
* (device, inode) tells apart two files whose heads are identical.

Everything here does blocking I/O and runs off the event loop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

FP_MAX = 1024
GUARD = 64

Key = tuple[int, int]
"""(st_dev, st_ino) of a file."""
T = TypeVar("T")


def digest(data: bytes | memoryview) -> bytes:
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


def guard_of(data: bytes | memoryview, end: int) -> bytes:
    """The guard for the position just after ``data[:end]`` (data starting at a file offset ≥ 0)."""
    return digest(data[max(0, end - GUARD):end])


def open_readonly(path: str) -> int:
    """Open for reading without touching atime where allowed (O_NOATIME needs ownership)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


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
