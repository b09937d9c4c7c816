"""Which files to follow: expands the patterns, tells known files from new ones, starts tailers.

Every scan (periodic, or sooner on a hint) lists the files the patterns match and compares them
with the files being followed, by (device, inode):

* a followed file found under another matched name was renamed (``app.log`` → ``app.log.1``): the
  same tailer goes on, nothing is read twice;
* a followed file no longer matched was rotated away or deleted: its tailer drains it, waits for it
  to stay quiet, then closes it;
* a new file is matched against the saved records (inode, head fingerprint, guard before the
  offset) to resume it, or is followed from its head (or tail, only at the first scan with
  ``start = "tail"``).

Files of one log (``app.log``, ``app.log.1``, … — a *lineage*) are read oldest first: a newer file
waits until the older ones are drained, so a restart across rotations keeps their lines in order.

copytruncate: a new file whose head matches a followed file is held back as a possible copy. When
the original is then found truncated, the copy takes over the original's checkpoint (its unread
tail is read from the copy, nothing is lost or doubled); otherwise, once quiet, it is followed as
a file of its own.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import logging
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checkpoints import DONE, GONE, LIVE, FileRecord, new_file_id
from .identity import EMPTY_GUARD, Fingerprint, Key, digest, guard_at, key_of, open_readonly, read_head
from .tailer import Tailer

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("logferry.discovery")

_SEPARATORS = ".-_"


@dataclass(slots=True)
class Found:
    """A regular file the patterns match (the first of its names, for symlinks and hard links)."""

    path: str
    key: Key
    size: int
    mtime: float
    paths: tuple[str, ...] = ()
    head: bytes = b""


@dataclass(slots=True)
class Held:
    """A new file that may be a copy of a followed file (copytruncate): not read until resolved."""

    found: Found
    original: Tailer
    quiet_since: float


def expand(patterns: Iterable[str], excludes: Iterable[str], outputs: frozenset[str] = frozenset()
           ) -> dict[Key, Found]:
    """Expand the patterns into the regular files they match, by identity (runs on a worker thread).

    ``outputs`` are the real paths of files logferry's own sinks write: following one would ship
    every line again and again.
    """
    excludes = list(excludes)
    found: dict[Key, Found] = {}
    for pattern in patterns:
        for path in sorted(glob.iglob(os.path.expanduser(pattern), recursive=True)):
            if _excluded(path, excludes) or (outputs and os.path.realpath(path) in outputs):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = key_of(st)
            seen = found.get(key)
            if seen is None:
                found[key] = Found(path, key, st.st_size, st.st_mtime, (path,))
            elif path not in seen.paths:
                seen.paths += (path,)
    return found


def _excluded(path: str, excludes: list[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(path, ex) or fnmatch.fnmatchcase(name, ex) for ex in excludes)


def inspect(files: list[Found]) -> tuple[list[Found], list[tuple[str, str]]]:
    """Read the head of each new file. Files replaced meanwhile are dropped (the next scan sees them);
    files that cannot be read are returned as (path, reason)."""
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
                f.head, f.size, f.mtime = read_head(fd), st.st_size, st.st_mtime
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


class Discovery:
    """Owns the set of followed files and the scans that keep it up to date."""

    def __init__(self, engine: Engine, patterns: list[str], records: list[FileRecord]) -> None:
        self.engine = engine
        self.patterns = patterns
        self.tracked: dict[Key, Tailer] = {}
        self.families: dict[str, list[Tailer]] = {}
        self.held: dict[Key, Held] = {}
        self.known: dict[Key, list[FileRecord]] = {}  # saved records not being followed now
        for record in records:
            self.known.setdefault(record.key, []).append(record)
        self.first_scan = True
        self.scans = 0
        self._unreadable: set[str] = set()
        self._lock = asyncio.Lock()
        self._soon = asyncio.Event()

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        engine = self.engine
        while not engine.stopping:
            await self.scan()
            if engine.settings.once:
                return
            self._soon.clear()
            try:
                async with asyncio.timeout(engine.settings.scan_interval):
                    await self._soon.wait()
            except TimeoutError:
                pass

    def rescan_soon(self) -> None:
        """Scan again now (a watcher saw a file appear, or a tailer lost its file)."""
        self._soon.set()

    async def scan(self) -> None:
        async with self._lock:
            settings = self.engine.settings
            found = await self.engine.blocking(expand, self.patterns, settings.exclude, self.engine.outputs)
            self.scans += 1
            self._update_followed(found)
            await self._resolve_held(found)
            if found:
                await self._add_new(list(found.values()))
            if self.first_scan:
                self.first_scan = False
                await self._settle_unmatched_records()
                self.engine.ready.set()

    # -- files already known ------------------------------------------------------

    def _update_followed(self, found: dict[Key, Found]) -> None:
        """Renamed, rotated away, deleted: update followed files; leave only new ones in ``found``."""
        for key, tailer in self.tracked.items():
            f = found.pop(key, None)
            if f is None:
                tailer.orphan()
            elif tailer.path in f.paths:
                tailer.orphan(False)
            else:
                tailer.moved_to(f.path)

    async def _resolve_held(self, found: dict[Key, Found]) -> None:
        """Possible copies that stayed quiet (or whose original is gone) become files of their own."""
        now = time.monotonic()
        ready = []
        for key, held in list(self.held.items()):
            f = found.pop(key, None)
            if f is None:
                del self.held[key]
                continue
            if f.size != held.found.size:
                held.found.size, held.quiet_since = f.size, now
            if held.original.done or now - held.quiet_since >= self.engine.settings.rotate_wait:
                del self.held[key]
                ready.append(held.found)
        if ready:
            await self._start_new(ready, [])

    # -- new files -------------------------------------------------------------------

    async def _add_new(self, files: list[Found]) -> None:
        """Resume what the saved records say (same inode, or a copy), hold possible copies, start the rest."""
        engine = self.engine
        files, unreadable = await engine.blocking(inspect, files)
        for path, reason in unreadable:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning("cannot read %s: %s (skipped until it becomes readable)", path, reason)
        resumed = await self._confirm(self._match_inodes(files))
        claimed = {id(r) for _, r in resumed}
        files = _without(files, resumed)
        orphans = _fp_index(r for rs in self.known.values() for r in rs if r.state == LIVE and id(r) not in claimed)
        if orphans and files:  # records whose file is gone: a copy may hold their content (copytruncate, mv)
            copies = await self._confirm(self._match_heads(files, orphans))
            for f, record in copies:
                log.info("%s is a copy of %s: resuming at offset %d", f.path, record.path, record.offset)
            resumed += copies
            files = _without(files, copies)
        if engine.settings.once:  # nothing will resolve a hold in a single pass
            await self._start_new(files, resumed)
            return
        live = _fp_index((t.fp, t) for t in self.tracked.values() if t.fp.length and not t.done)
        new = []
        for f in files:
            original = _fp_lookup(live, f.head)
            if original:
                self.held[f.key] = Held(f, original[0], time.monotonic())
                log.info("%s starts like %s: holding it back as a possible copy", f.path, original[0].path)
            else:
                new.append(f)
        await self._start_new(new, resumed)

    def _match_inodes(self, files: list[Found]) -> list[tuple[Found, FileRecord]]:
        """Saved records with the same inode and head (to be confirmed by their guard)."""
        matches = []
        for f in files:
            for record in sorted(self.known.get(f.key, ()), key=lambda r: r.seen, reverse=True):
                if record.state != GONE and record.fp.matches(f.head) and f.size >= record.offset:
                    matches.append((f, record))
                    break
        return matches

    def _match_heads(self, files: list[Found], index: dict[int, dict[bytes, list[Any]]]
                     ) -> list[tuple[Found, FileRecord]]:
        matches = []
        for f in files:
            for record in _fp_lookup(index, f.head):
                if f.size >= record.offset and not any(r is record for _, r in matches):
                    matches.append((f, record))
                    break
        return matches

    async def _confirm(self, candidates: list[tuple[Found, FileRecord]]) -> list[tuple[Found, FileRecord]]:
        """Keep the matches whose bytes before the offset are unchanged."""
        if not candidates:
            return []
        results = await self.engine.blocking(guards, [(f.path, f.key, r.offset) for f, r in candidates])
        confirmed = []
        for (f, record), guard in zip(candidates, results):
            if guard == record.guard:
                confirmed.append((f, record))
            elif record.key == f.key:
                log.warning("%s changed while logferry was stopped (truncated or rewritten); reading it from its "
                            "start", f.path)
        return confirmed

    async def _start_new(self, new: list[Found], resumed: list[tuple[Found, FileRecord]]) -> None:
        """Create records for new files (saved before anything is read) and start every tailer."""
        engine = self.engine
        settings = engine.settings
        now = time.time()
        starts: list[tuple[float, Tailer]] = []
        for f, record in resumed:
            self._unknow(record)
            record.path, record.state, record.seen = f.path, LIVE, now
            starts.append((f.mtime, Tailer(engine, record, f.path)))
        from_tail = [f for f in new if self._starts_at_tail(f)]
        tails = await engine.blocking(_tails, [(f.path, f.key) for f in from_tail], settings.max_line_bytes + 1)
        tail_of = {f.key: t for f, t in zip(from_tail, tails)}
        fresh = []
        roots = set(self.families) | {f.path for f in new}
        for f in new:
            offset, guard = tail_of.get(f.key) or (0, EMPTY_GUARD)
            record = FileRecord(new_file_id(), f.key, Fingerprint.of(f.head), offset, guard, f.size, f.path,
                                _lineage(f.path, roots), LIVE, now)
            fresh.append(record)
            starts.append((f.mtime, Tailer(engine, record, f.path)))
        await engine.persist(fresh)
        for _, tailer in sorted(starts, key=lambda s: s[0]):
            self._follow(tailer)

    def _starts_at_tail(self, f: Found) -> bool:
        settings = self.engine.settings
        if self.first_scan and settings.start == "tail":
            return True
        return settings.ignore_older is not None and time.time() - f.mtime > settings.ignore_older

    def _follow(self, tailer: Tailer) -> None:
        """Track and start ``tailer`` after the undrained files of its lineage."""
        members = self.families.setdefault(tailer.record.lineage, [])
        older = [m for m in members if not m.done]
        tailer.after = older + tailer.after
        for member in older:
            member.supersede()
        members[:] = older + [tailer]
        self.tracked[tailer.key] = tailer
        self.engine.start_tailer(tailer)

    # -- copies and losses -----------------------------------------------------------

    async def adopt_copy(self, original: Tailer) -> Tailer | None:
        """``original`` was truncated: find the copy of its old content and resume its record there."""
        await self.scan()
        async with self._lock:
            candidates = [h for h in self.held.values() if h.original is original]
            if not candidates:
                return None
            candidates.sort(key=lambda h: h.found.mtime, reverse=True)
            checks = [(h.found.path, h.found.key, original.pos) for h in candidates]
            results = await self.engine.blocking(guards, checks)
            for held, guard in zip(candidates, results):
                if guard == original.guard:
                    del self.held[held.found.key]
                    record = original.record
                    record.key, record.path = held.found.key, held.found.path
                    copy = Tailer(self.engine, record, held.found.path)
                    copy.pos, copy.guard = original.pos, original.guard
                    copy.superseded = True  # it is a rotated file: drained at its end
                    log.info("%s holds the rest of %s before its truncation: reading it from offset %d",
                             held.found.path, original.path, original.pos)
                    self.tracked[copy.key] = copy
                    self.families.setdefault(record.lineage, []).append(copy)
                    self.engine.start_tailer(copy)
                    return copy
        return None

    async def _settle_unmatched_records(self) -> None:
        """After the first scan: saved files not found again, by inode or as a copy, are gone."""
        gone = [r for records in self.known.values() for r in records if r.state == LIVE]
        for record in gone:
            if record.size > record.offset:
                log.warning("%s: %d bytes after offset %d were not read before the file was truncated, replaced "
                            "or removed while logferry was stopped", record.path, record.size - record.offset,
                            record.offset)
                self.engine.losses.add(record.path, "unread_while_stopped", record.size - record.offset)
            record.state = GONE
        await self.engine.persist(gone)

    def _unknow(self, record: FileRecord) -> None:
        records = self.known.get(record.key, [])
        if record in records:
            records.remove(record)
            if not records:
                del self.known[record.key]

    def tailer_done(self, tailer: Tailer) -> None:
        """A tailer ended: forget it, but remember its record in case the file shows up again."""
        if self.tracked.get(tailer.key) is tailer:
            del self.tracked[tailer.key]
        members = self.families.get(tailer.record.lineage)
        if members and tailer in members:
            members.remove(tailer)
            if not members:
                del self.families[tailer.record.lineage]
        if tailer.record.state == DONE:
            self.known.setdefault(tailer.key, []).append(tailer.record)
        elif not self.engine.stopping:
            self.rescan_soon()


def _lineage(path: str, roots: set[str]) -> str:
    """The log a path belongs to: ``app.log.1`` and ``app.log-2026`` belong to ``app.log``."""
    for i in range(len(path) - 1, len(os.path.dirname(path)), -1):
        if path[i] in _SEPARATORS and path[:i] in roots:
            return path[:i]
    return path


def _tails(files: list[tuple[str, Key]], window: int) -> list[tuple[int, bytes] | None]:
    return [tail_offset(path, key, window) for path, key in files]


def _fp_index(items: Iterable[Any]) -> dict[int, dict[bytes, list[Any]]]:
    """Index by fingerprint, so new files are matched by lookups instead of against every file."""
    index: dict[int, dict[bytes, list[Any]]] = {}
    for item in items:
        fp, value = (item.fp, item) if isinstance(item, FileRecord) else item
        index.setdefault(fp.length, {}).setdefault(fp.value, []).append(value)
    return index


def _fp_lookup(index: dict[int, dict[bytes, list[Any]]], head: bytes) -> list[Any]:
    """Everything indexed whose fingerprint matches a file starting with ``head``."""
    out: list[Any] = []
    for length, by_value in index.items():
        if length <= len(head):
            out += by_value.get(digest(head[:length]), ())
    return out


def _without(files: list[Found], matched: list[tuple[Found, FileRecord]]) -> list[Found]:
    taken = {id(f) for f, _ in matched}
    return [f for f in files if id(f) not in taken]
