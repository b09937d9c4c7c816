"""What the patterns match, read off the event loop: listing, heads, guards, tail offsets.

Every function here does blocking file-system calls and runs on a worker thread. A file is always
checked by its (device, inode) after opening, so a rename between listing and reading is noticed.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from .identity import EMPTY_GUARD, Key, birth_time, file_root, guard_at, guard_of, key_of, open_readonly, read_head


@dataclass(slots=True)
class Found:
    """A regular file the patterns match (the first of its names, for symlinks and hard links)."""

    path: str
    key: Key
    size: int
    mtime: float
    paths: tuple[str, ...] = ()
    head: bytes = b""
    guards: dict[int, bytes | None] = field(default_factory=dict)  # offset → guard there (see inspect)
    root: str = ""  # identity.file_root (see inspect)


def expand(patterns: Iterable[str], excludes: Iterable[str], outputs: frozenset[str] = frozenset()
           ) -> dict[Key, Found]:
    """Expand the patterns into the regular files they match, by identity (runs on a worker thread).

    ``outputs`` are the paths of files logferry's own sinks write: following one would ship every
    line again and again. They are recognised by identity, whatever name or link leads to them.
    """
    excludes = list(excludes)
    found: dict[Key, Found] = {}
    own = set()
    for output in outputs:
        try:
            own.add(key_of(os.stat(output)))
        except OSError:
            pass
    for pattern in patterns:
        for path in sorted(glob.iglob(os.path.expanduser(pattern), recursive=True)):
            if _excluded(path, excludes):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = key_of(st)
            if key in own:
                continue
            seen = found.get(key)
            if seen is None:
                found[key] = Found(path, key, st.st_size, st.st_mtime, (path,))
            elif path not in seen.paths:
                seen.paths += (path,)
    return found


def _excluded(path: str, excludes: list[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(path, ex) or fnmatch.fnmatchcase(name, ex) for ex in excludes)


def inspect(files: list[Found], offsets: dict[Key, list[int]] | None = None
            ) -> tuple[list[Found], list[tuple[str, str]]]:
    """Read the head and root (see ``identity.file_root``) of each new file, and its guards at
    ``offsets[key]`` (saved records' offsets: one open per file confirms where to resume). Files
    renamed or replaced since the scan listed them are left out (the next scan sees them where they
    are now); unreadable ones are returned as (path, reason)."""
    offsets = offsets or {}
    out, unreadable = [], []
    for f in files:
        try:
            fd = open_readonly(f.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            unreadable.append((f.path, exc.strerror or str(exc)))
            continue
        try:
            st = os.fstat(fd)
            if key_of(st) == f.key:
                head = read_head(fd)
                f.head, f.size, f.mtime = head, st.st_size, st.st_mtime
                f.root = file_root(f.key, birth_time(fd))
                # Small offsets lie within the head just read: no second read for their guard.
                f.guards = {offset: guard_of(head, offset) if offset <= len(head) else guard_at(fd, offset)
                            for offset in offsets.get(f.key, ())}
                out.append(f)
        except OSError as exc:
            unreadable.append((f.path, exc.strerror or str(exc)))
        finally:
            os.close(fd)
    return out, unreadable


def guards(checks: list[tuple[str, Key, int]]) -> list[bytes | None]:
    """The guard at each (path, key, offset), or None when unreadable, replaced or too short."""
    out: list[bytes | None] = []
    for path, key, offset in checks:
        try:
            fd = open_readonly(path)
        except OSError:
            out.append(None)
            continue
        try:
            out.append(guard_at(fd, offset) if key_of(os.fstat(fd)) == key else None)
        except OSError:
            out.append(None)
        finally:
            os.close(fd)
    return out


def tail_offset(path: str, key: Key, window: int) -> tuple[int, bytes] | None:
    """Where a file followed from its tail starts: just after its last complete line."""
    try:
        fd = open_readonly(path)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if key_of(st) != key:
            return None
        start = max(0, st.st_size - window)
        data = os.pread(fd, st.st_size - start, start)
        nl = data.rfind(b"\n")
        offset = start + nl + 1 if nl >= 0 else st.st_size
        return offset, guard_at(fd, offset) or EMPTY_GUARD
    finally:
        os.close(fd)


def tails(files: list[tuple[str, Key]], window: int) -> list[tuple[int, bytes] | None]:
    return [tail_offset(path, key, window) for path, key in files]
