"""What the patterns match, read off the event loop: listing, heads, guards, tail offsets.

Every function here does blocking file-system calls and runs on a worker thread. A file is always
checked by its (device, inode) after opening, so a rename between listing and reading is noticed.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import compressed as _compressed
from .identity import (
    EMPTY_GUARD,
    Key,
    birth_time,
    compression,
    file_root,
    guard_at,
    guard_of,
    key_of,
    open_readonly,
    read_head,
)

if TYPE_CHECKING:
    from ..settings import Source


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
    compression: str | None = None  # "gzip", …: a compressed file, never shipped as text (see inspect)
    root: str = ""  # identity.file_root (see inspect)
    group: int = 0  # the index of the first source that matches it
    # A compressed file that is read (compressed.readable) is its content: ``head``, ``size`` and
    # ``guards`` are the decompressed bytes' (``size`` only as far as the head when inspected without
    # ``whole``), ``stored`` is its size on disk; ``ended``: its stream ends cleanly (nothing more is
    # being written); ``damaged``: why the rest cannot be decoded.
    stored: int = 0
    ended: bool = False
    damaged: str = ""


# Why a path a pattern matched is not followed: a run skips it, ``logferry sources`` shows the reason.
# A new reason is one more constant here and one more check where the path is looked at.
EXCLUDED = "excluded"  # an ``exclude`` pattern matches it (detail: the pattern)
SINK_OUTPUT = "sink output"  # written by one of logferry's own sinks: following it would ship its lines again and again
NOT_REGULAR = "not a regular file"  # a directory, FIFO, socket or device (detail: which)
UNREADABLE = "unreadable"  # cannot be looked at, opened or read (detail: the system's reason); see inspect
COMPRESSED = "compressed"  # its first bytes say zstd, lz4, zip: not read (detail: which); see inspect
HELD = "held back"  # compressed, it starts like a file being followed: its compressed form, decided on once that one is done


@dataclass(slots=True)
class LeftOut:
    """A path a pattern matched that is not followed, and why (one of the reasons above)."""

    path: str
    pattern: str | None  # the pattern that matched it (None: not known, for files found unreadable on opening)
    reason: str
    detail: str = ""


@dataclass(slots=True)
class Listing:
    """What the patterns match: the files to follow, the paths left out, and per pattern how many
    of the files to follow it matched (0: nothing to follow there)."""

    found: dict[Key, Found]
    left_out: list[LeftOut]
    followed: dict[str, int]


def survey(sources: Sequence[Source], excludes: Iterable[str], outputs: frozenset[str] = frozenset()) -> Listing:
    """Expand the sources' patterns into the regular files they match, by identity (runs on a worker
    thread); a file belongs to the first source that matches it.

    ``outputs`` are the paths of files logferry's own sinks write: following one would ship every
    line again and again. They are recognised by identity, whatever name or link leads to them.
    """
    excludes = list(excludes)
    found: dict[Key, Found] = {}
    left_out: list[LeftOut] = []
    followed: dict[str, int] = {}
    own = set()
    for output in outputs:
        try:
            own.add(key_of(os.stat(output)))
        except OSError:
            pass
    for group, pattern, leave_out in [(n, pattern, [*excludes, *source.exclude])
                                      for n, source in enumerate(sources) for pattern in source.paths]:
        followed.setdefault(pattern, 0)
        for path in sorted(glob.iglob(os.path.expanduser(pattern), recursive=True)):
            excluded_by = _excluded(path, leave_out)
            if excluded_by is not None:
                left_out.append(LeftOut(path, pattern, EXCLUDED, excluded_by))
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                if os.path.islink(path):
                    left_out.append(LeftOut(path, pattern, UNREADABLE, "broken symbolic link"))
                continue  # removed since it was listed
            except OSError as exc:
                left_out.append(LeftOut(path, pattern, UNREADABLE, exc.strerror or str(exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                left_out.append(LeftOut(path, pattern, NOT_REGULAR, _file_type(st.st_mode)))
                continue
            key = key_of(st)
            if key in own:
                left_out.append(LeftOut(path, pattern, SINK_OUTPUT))
                continue
            followed[pattern] += 1
            seen = found.get(key)
            if seen is None:
                found[key] = Found(path, key, st.st_size, st.st_mtime, (path,), group=group)
            elif path not in seen.paths:
                seen.paths += (path,)
    return Listing(found, left_out, followed)


def unmatched(pattern: str, listing: Listing, follow: bool) -> str | None:
    """What to tell a person about ``pattern`` when it leads to no file to follow (None when it
    does): a run warns with it, ``logferry sources`` shows it. ``follow``: in follow mode, files
    that appear later are picked up."""
    if listing.followed.get(pattern):
        return None
    mine = [lo for lo in listing.left_out if lo.pattern == pattern]
    if any(lo.reason == NOT_REGULAR and lo.detail == "directory" and lo.path == os.path.expanduser(pattern)
           for lo in mine):  # the pattern names a directory (a pattern without wildcards lists itself)
        # Not followed as a directory: a pattern means the same in every run (DIR/* may hold
        # rotated, compressed or binary files the user did not mean); the fix is one edit away.
        return (f"{pattern} is a directory: logferry follows files; to follow the files in it, give the "
                f"pattern '{os.path.join(pattern, '*')}' (quoted, so that files created later are followed too)")
    if mine:
        reasons = Counter(lo.reason for lo in mine)
        return (f"{pattern} matches no file to follow ({', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))}); "
                f"see 'logferry sources'")
    return f"no file matches {pattern}" + (" yet: files that appear later are followed" if follow else "")


def _excluded(path: str, excludes: list[str]) -> str | None:
    """The first exclude pattern matching ``path`` (or its name), if any."""
    name = os.path.basename(path)
    return next((ex for ex in excludes if fnmatch.fnmatchcase(path, ex) or fnmatch.fnmatchcase(name, ex)), None)


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def inspect(files: list[Found], offsets: dict[Key, list[int]] | None = None, whole: bool = True
            ) -> tuple[list[Found], list[tuple[str, str]]]:
    """Read the head and root (see ``identity.file_root``) of each new file, and its guards at
    ``offsets[key]`` (saved records' offsets: one open per file confirms where to resume), and tell
    compressed files by their first bytes. Files renamed or replaced since the scan listed them are
    left out (the next scan sees them where they are now); unreadable ones are returned as
    (path, reason).

    A compressed file that is read is decoded to its end (``compressed.survey``: its content's size,
    the guards, whether its stream ends), or only as far as its content's head unless ``whole``."""
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
                f.compression = compression(head)
                f.root = file_root(f.key, birth_time(fd))
                if f.compression is not None and _compressed.readable(f.compression):
                    seen = _compressed.survey(fd, f.compression, offsets.get(f.key, ()), whole)
                    f.head, f.size, f.stored, f.guards = seen.head, seen.size, st.st_size, seen.guards
                    f.ended, f.damaged = seen.ended, seen.damaged
                else:
                    # Small offsets lie within the head just read: no second read for their guard.
                    f.guards = {offset: guard_of(head, offset) if offset <= len(head) else guard_at(fd, offset)
                                for offset in offsets.get(f.key, ())}
                out.append(f)
        except OSError as exc:
            unreadable.append((f.path, exc.strerror or str(exc)))
        finally:
            os.close(fd)
    return out, unreadable


def guards(checks: list[tuple[str, Key, int]], compressed: Mapping[Key, str] | None = None) -> list[bytes | None]:
    """The guard at each (path, key, offset), or None when unreadable, replaced or too short.
    ``compressed``: the files read as their content (key → compression), whose guards are the content's."""
    return [end[1] if end is not None and end[0] == offset else None
            for end, (_, _, offset) in zip(copy_guards(checks, compressed), checks)]


def copy_guards(checks: list[tuple[str, Key, int]], compressed: Mapping[Key, str] | None = None
                ) -> list[tuple[int, bytes] | None]:
    """For each (path, key, offset): the guard at ``offset``, or at the file's end when the file is
    shorter, with that position; None when unreadable or replaced. A copytruncate copy is shorter
    than what was read of its original when lines written after the copy were read from the
    original before its truncation (logrotate's race window). ``compressed`` as for ``guards``."""
    out: list[tuple[int, bytes] | None] = []
    for path, key, offset in checks:
        if compressed and key in compressed:
            seen = _compressed.guards_at(path, compressed[key], key, [offset])
            at = offset if seen is None or seen.guards[offset] is not None else seen.size
            guard = None if seen is None else seen.guards[at]
            out.append(None if guard is None else (at, guard))
            continue
        try:
            fd = open_readonly(path)
        except OSError:
            out.append(None)
            continue
        try:
            st = os.fstat(fd)
            at = min(offset, st.st_size)
            guard = guard_at(fd, at) if key_of(st) == key else None
            out.append(None if guard is None else (at, guard))
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
