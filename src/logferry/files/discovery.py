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

copytruncate: a new file that starts like a followed file of its lineage may be a copy of it, and
a copy still being written may be empty or hold only part of the head. Such a file is *pending*:
not read (it has nothing of its own yet), re-inspected quickly. When the original is found
truncated, its copy takes over the original's checkpoint, so the original's unread tail is read
from the copy, before the original's new lines — nothing lost or doubled. A pending file that
turns out different, or stays quiet for ``rotate_wait`` while its original looked at its file (see
``_keep_pending``), is followed as a file of its own.

Compressed rotations: a gzip (bzip2, xz) file is its decompressed content (``compressed.py``), so a
compressed rotation starts like the file it was compressed from and holds its bytes before that
file's saved offset. It waits while that file is still being drained, then takes over its record
(``_compressed_copies``): it resumes where the original stopped, at its end when it was all shipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .compressed import readable
from .identity import EMPTY_GUARD, FP_MAX, Fingerprint, FingerprintIndex, Key, line_id_base, next_origin
from .listing import Found, Listing, copy_guards, guards, inspect, survey, tails, unmatched
from .record import DONE, GONE, LIVE, FileRecord, new_file_id
from .tailer import HEAD_KEPT, CompressedTailer, Tailer, Wiring

if TYPE_CHECKING:
    from ..settings import Settings, Source

log = logging.getLogger("logferry.discovery")

_SEPARATORS = ".-_"
MAX_UNSURE_SCANS = 5  # scans in a row that met moving files before new files start anyway
SLICE = 100  # files handled per loop iteration in a scan
WATCHED_SCAN_INTERVAL = 10.0  # periodic scans while file-system events announce new files
MISSED_FILES = 3  # new files found by periodic scans, not events, before events are not trusted
UNMATCHED_REPEAT = 3600.0  # seconds between warnings about a pattern that still matches no file to follow
T = TypeVar("T")


@dataclass(eq=False)
class Pending:
    """A new file not read yet because it may be a copy of ``original`` (or, with no original, of
    some file of its lineage: it is empty or holds only the start of one). The poller watches it
    like a closed file and ``wake`` asks discovery to look at it again."""

    found: Found
    original: Tailer | None
    quiet_since: float
    recheck: Callable[[], None]
    fd: None = None
    deleted: bool = False

    @property
    def path(self) -> str:
        return self.found.path

    @property
    def key(self) -> Key:
        return self.found.key

    @property
    def size(self) -> int:  # what the poller compares with the file's size on disk
        return self.found.stored if self.found.compression else self.found.size

    short = False  # compressed, being written, and shorter than the saved file it may be the rest of

    @property
    def last_growth(self) -> float:
        return self.quiet_since

    settled = False  # checked at the regular pace: it has to be decided on soon

    def read_args(self) -> None:
        return None  # not read until it is known not to be a copy

    def polled(self, step: object) -> None:
        self.recheck()


class Discovery:
    """Owns the set of followed files and the scans that keep it up to date."""

    def __init__(self, wiring: Wiring, sources: Sequence[Source], outputs: frozenset[str] = frozenset()) -> None:
        self.wiring = wiring
        self.sources = sources  # a file belongs to the first that matches it (Found.group)
        self.patterns = list(dict.fromkeys(pattern for source in sources for pattern in source.paths))
        self.outputs = outputs  # files the sinks write: never followed
        self.ready = asyncio.Event()  # the first scan is done and its files are being followed
        self.tracked: dict[Key, Tailer] = {}
        self.families: dict[str, list[Tailer]] = {}  # lineage → its files being followed
        self.pending: dict[Key, Pending] = {}
        self.known: dict[Key, list[FileRecord]] = {}  # saved records not being followed now
        self._lineages: set[str] = set()  # of every record seen: the logs rotated files belong to
        self.first_scan = True
        self.present_at_start: set[Key] = set()  # what ``start = "tail"`` applies to
        self.scans = 0
        self._unclaimed: dict[int, tuple[FileRecord, int]] = {}  # LIVE records no file holds: (record, since scan)
        self._unsure = False  # this scan met files that moved while it looked at them
        self._unsure_streak = 0
        self._unreadable: set[str] = set()
        self._truncated: set[int] = set()  # records whose inode this look found truncated (see _at_their_end)
        self.compressed: dict[Key, str] = {}  # compressed files the patterns match: left out, by identity
        self._said_compressed = False
        self._unmatched: dict[str, float] = {}  # patterns with nothing to follow since the start → last warned
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._want_scan = False
        self._want_recheck = False
        self.watched = False  # file-system events announce new files: periodic scans can be rare
        self._missed = 0
        self._started = self._finished = 0  # scans
        self._scan_end: asyncio.Future[None] | None = None

    def load(self, records: list[FileRecord]) -> None:
        """The saved records, before the first scan."""
        for record in records:
            self._remember(record)

    def _remember(self, record: FileRecord) -> None:
        self.known.setdefault(record.key, []).append(record)
        self._lineages.add(record.lineage)
        if record.state == LIVE:  # its file is not followed now: find it (or a copy of it), or declare it gone
            self._unclaimed[id(record)] = (record, self.scans)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        wiring = self.wiring
        while not wiring.crew.stopping:
            await self.scan()
            if wiring.settings.once:
                if not self._unsure or self._unsure_streak > MAX_UNSURE_SCANS:
                    return
                await asyncio.sleep(0.01)  # a rotation is under way: let it finish, look again
                continue
            interval = wiring.settings.scan_interval
            if self.watched and not self.pending:  # pending files are decided on at the usual pace
                interval = max(interval, WATCHED_SCAN_INTERVAL)
            deadline = time.monotonic() + interval
            while not wiring.crew.stopping and not self._want_scan and time.monotonic() < deadline:
                self._wake.clear()
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await self._wake.wait()
                except TimeoutError:
                    break
                if self._want_recheck and not self._want_scan:
                    await self.recheck_pending()

    def rescan_soon(self) -> None:
        """Scan again now (a watcher saw a file appear, or a tailer lost its file)."""
        self._want_scan = True
        self._wake.set()

    async def fresh_scan(self) -> None:
        """Return once a scan that lists the files after this call has finished (in follow mode)."""
        self.rescan_soon()
        target = self._started + 1
        while self._finished < target:
            if self._scan_end is None:
                self._scan_end = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._scan_end)

    def recheck_soon(self) -> None:
        """A pending file changed: look at it again (the poller watches pending files)."""
        self._want_recheck = True
        self._wake.set()

    async def scan(self) -> None:
        async with self._lock:
            self._started += 1
            try:
                await self._scan()
            finally:
                self._finished += 1
                if self._scan_end is not None:
                    self._scan_end.set_result(None)
                    self._scan_end = None

    async def _scan(self) -> None:
        announced = self._want_scan
        self._want_scan = self._want_recheck = False
        settings = self.wiring.settings
        listing = await self.wiring.blocking(survey, self.sources, settings.exclude, self.outputs)
        found = listing.found
        self._warn_unmatched(listing)
        self.scans += 1
        if not self._unsure:
            self._unsure_streak = 0
        self._unsure = False
        if self.first_scan:
            self.present_at_start = set(found)
        await self._update_followed(found)
        if self.compressed:  # forget those gone (their inode may be reused by a log), leave out the rest
            self.compressed = {key: path for key, path in self.compressed.items() if found.pop(key, None) is not None}
        waiting = [found.pop(key) for key in list(self.pending) if key in found]
        for key in set(self.pending) - {f.key for f in waiting}:
            self._drop_pending(key)  # gone, or renamed: a later scan sees it anew
        if found and self.watched and not announced and not self.first_scan:
            self._unannounced(len(found))
        if waiting:
            await self._recheck(waiting)
        if found:
            await self._add_new(list(found.values()))
        if self._unsure:
            self._unsure_streak += 1
            self.rescan_soon()  # files moved while we looked (a rotation under way): look again
        else:
            self.present_at_start.clear()  # every file present at start has been classified
            await self._settle_unclaimed()
        if self.first_scan:
            self.first_scan = False
            log.info("first scan: %d files followed, %d pending, %d saved files not found", len(self.tracked),
                     len(self.pending), len(self._unclaimed))
            self.ready.set()

    def _warn_unmatched(self, listing: Listing) -> None:
        """Warn about each pattern with nothing to follow at the first scan, and again every
        ``UNMATCHED_REPEAT`` seconds while it stays so. A pattern that had files and lost them (a
        rotation under way), or that later matches, is normal: quiet."""
        now, follow = time.monotonic(), not self.wiring.settings.once
        for pattern in self.patterns:
            message = unmatched(pattern, listing, follow)
            if message is None:
                if self._unmatched.pop(pattern, None) is not None:
                    log.info("%s now matches %d files to follow", pattern, listing.followed[pattern])
            elif self.first_scan:
                self._unmatched[pattern] = now
                log.warning("%s", message)
            elif pattern in self._unmatched and now - self._unmatched[pattern] >= UNMATCHED_REPEAT:
                self._unmatched[pattern] = now
                log.warning("%s (still, since the start)", message)

    @property
    def unreadable(self) -> int:
        """How many files were found unreadable this run (each one warned about once)."""
        return len(self._unreadable)

    def _unannounced(self, count: int) -> None:
        """A periodic scan found new files no event announced (a network file system, say)."""
        self._missed += count
        if self._missed >= MISSED_FILES:
            self.watched = False
            log.info("new files appear without file-system events: scanning every %ss",
                     self.wiring.settings.scan_interval)

    async def recheck_pending(self) -> None:
        async with self._lock:
            self._want_recheck = False
            await self._recheck([p.found for p in self.pending.values()])

    # -- files already known ------------------------------------------------------

    async def _update_followed(self, found: dict[Key, Found]) -> None:
        """Renamed, rotated away, deleted: update followed files; leave only the others in ``found``."""
        async for key, tailer in _sliced(list(self.tracked.items())):
            f = found.pop(key, None)
            if f is None:
                tailer.orphan()
            else:
                tailer.mtime = f.mtime
                if tailer.path in f.paths:
                    tailer.orphan(False)
                else:
                    tailer.moved_to(f.path)

    # -- new files -------------------------------------------------------------------

    async def _add_new(self, files: list[Found], may_hold: bool = True) -> None:
        """Resume what the saved records say (same inode, or a copy), hold possible copies (unless
        ``may_hold`` is false: files released from holding), start the rest."""
        wiring = self.wiring
        listed = len(files)
        known = self.known
        offsets = {f.key: [r.offset for r in known[f.key]] async for f in _sliced(files) if f.key in known}
        files, unreadable = await wiring.blocking(inspect, files, offsets)
        self._unsure |= len(files) + len(unreadable) < listed
        files = self._text_only(files)
        for path, reason in unreadable:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning("cannot read %s: %s (skipped until it becomes readable)", path, reason)
        self._truncated.clear()
        resumed, unsure = await self._confirm(await self._match_inodes(files))
        claimed = {id(r) for _, r in resumed}
        files = _without(files, resumed + unsure)
        plain = [f for f in files if not f.compression]
        if plain:  # records whose file is gone: a copy may hold their content (copytruncate, mv)
            orphans = FingerprintIndex(
                (r.fp, r) for r, _ in self._unclaimed.values() if r.fp.length and id(r) not in claimed)
            heads = match_heads(plain, orphans, self._truncated) if orphans else []
            short = [(f, r) for f, r in heads if f.size < r.offset]
            copies, unsure = await self._confirm([(f, r) for f, r in heads if f.size >= r.offset])
            for f, record in copies:
                log.info("%s is a copy of %s: resuming at offset %d", f.path, record.path, record.offset)
            at_end, moving = await self._at_their_end(short)
            resumed += copies + at_end
            claimed.update(id(r) for _, r in copies + at_end)
            files = _without(files, copies + unsure + at_end + moving)
        if len(plain) < len(files):
            rotations, taken = await self._compressed_copies(files, resumed, claimed, may_hold)
            resumed += rotations
            files = [f for f in files if id(f) not in taken]
        if self._unsure and self._unsure_streak < MAX_UNSURE_SCANS:
            return  # the order of a log's files is decided once all of them are known: next scan
        if may_hold and not wiring.settings.once and files:
            live, roots = self._live_index(), self._roots()
            files = [f async for f in _sliced(files) if not self._keep_pending(f, live, roots)]
        await self._start_new(files, resumed)

    async def _compressed_copies(self, files: list[Found], resumed: list[tuple[Found, FileRecord]], claimed: set[int],
                                 may_hold: bool) -> tuple[list[tuple[Found, FileRecord]], set[int]]:
        """Compressed files that hold what logferry read of another file: the compressed rotation of
        a file it follows or followed (``app.log.1`` → ``app.log.2.gz``, kubelet's ``0.log.<time>.gz``).

        * One that starts like a file being read (rotated away, deleted or superseded: draining), or
          like a file this scan starts following, waits (``_keep_compressed``): once that file is done,
          its record says where this one resumes. In a ``--once`` run it is left for the next run.
        * One whose content starts like a saved record's file and holds the same bytes before its
          offset (the guard) takes that record over, whatever its state (drained and closed; or gone
          while logferry was stopped, halfway): it resumes at the offset, so it ships only what that
          file had not shipped, and nothing at all when it ends there.
        * One shorter than such a record, named after its file (``app.log.1`` → ``app.log.1.gz``), whose
          stream has ended (or stopped for ``rotate_wait``: truncated), holds nothing unread: lines
          written to the original after it was compressed were read from the original. It resumes at
          its end (``_at_their_end``). Still being written, it waits.

        Returns the files resumed with the records they take over, and the ids of every file taken
        out of ``files`` (resumed, waiting, left for the next run, moved while looked at)."""
        once = self.wiring.settings.once
        gz = [f for f in files if f.compression]
        taken: set[int] = set()
        roots = self._roots()
        live = self._live_index()
        if may_hold:
            draining = FingerprintIndex((t.fp, t) for t in self.tracked.values()
                                        if t.fp.length and not t.done and not t.settled)
            starting = FingerprintIndex((Fingerprint.of(f.head), f.path) for f in [*files, *(f for f, _ in resumed)]
                                        if f.head and not f.compression)
            for f in gz:
                being_read = [t.path for t in draining.lookup(f.head)] or starting.lookup(f.head)
                if being_read:
                    taken.add(id(f))
                    if once:
                        log.info("%s starts like %s, which this run reads: left for the next run (if it is its "
                                 "compressed form, its lines come from it)", f.path, being_read[0])
                    else:
                        self._keep_compressed(f, live, roots, force=True)
        rest = [f for f in gz if id(f) not in taken]
        saved = [(r.fp, r) async for records in _sliced(list(self.known.values())) for r in records
                 if r.fp.length and id(r) not in claimed]
        index = FingerprintIndex(saved)
        pairs: list[tuple[Found, FileRecord]] = []
        shorter: dict[int, list[FileRecord]] = {}
        for f in rest:
            for record in sorted(index.lookup(f.head), key=lambda r: r.seen, reverse=True) if index else ():
                if record.key != f.key:
                    if f.size >= record.offset:
                        pairs.append((f, record))
                    else:
                        shorter.setdefault(id(f), []).append(record)
        confirmed, unsure = await self._confirm(pairs)
        out: list[tuple[Found, FileRecord]] = []
        used: set[int] = set()
        for f, record in confirmed:  # the most recently seen record first, for each file
            if id(f) not in taken and id(record) not in used:
                taken.add(id(f))
                used.add(id(record))
                out.append((f, record))
                log.info("%s holds %s compressed: resuming at offset %d (%d bytes not shipped yet)", f.path,
                         record.path, record.offset, f.size - record.offset)
        taken.update(id(f) for f, _ in unsure)
        ends = []
        quiet = time.time() - self.wiring.settings.rotate_wait
        for f in rest:
            # Only the head vouches for it here: its name must say it is that file compressed, too.
            source = next((r for r in shorter.get(id(f), ()) if id(r) not in used and f.path.startswith(r.path + ".")),
                          None)
            if id(f) in taken or source is None:
                continue
            taken.add(id(f))
            if f.ended or f.mtime <= quiet:
                used.add(id(source))
                ends.append((f, source))
            elif once:
                log.info("%s is being compressed (it holds less than was read of %s): left for the next run",
                         f.path, source.path)
            else:
                self._unclaimed.pop(id(source), None)  # not gone: its rest is being compressed
                self._keep_compressed(f, live, roots, short=True)
        at_end, moving = await self._at_their_end(ends)
        return out + at_end, taken | {id(f) for f, _ in moving}

    async def _recheck(self, files: list[Found]) -> None:
        """Pending files: still possibly a copy, or now clearly a file of their own? (A compressed one is
        decoded only as far as its head here: all of it only once it is classified.)"""
        inspected, _ = await self.wiring.blocking(inspect, files, None, False)
        inspected = self._text_only(inspected)
        for key in {f.key for f in files} - {f.key for f in inspected}:
            self._drop_pending(key)
        live, roots = self._live_index(), self._roots()
        ready = [f for f in inspected if not self._keep_pending(f, live, roots)]
        if ready:  # classified like any new file: it may still be a copy of a saved record
            await self._add_new(ready, may_hold=False)

    def _text_only(self, files: list[Found]) -> list[Found]:
        """Leave out compressed files that are not read as their content (zstd, lz4, zip): their
        bytes are not lines."""
        out = []
        for f in files:
            if f.compression is None or readable(f.compression):
                out.append(f)
            else:
                self.leave_out_compressed(f.path, f.key, f.compression)
        return out

    def leave_out_compressed(self, path: str, key: Key, kind: str) -> None:
        """Never follow this file as text: it is compressed. Said once as a warning, then at info level;
        a kind that is read as its content is looked at again, as such, by the next scan."""
        if readable(kind):
            self.rescan_soon()
            return
        if key in self.compressed:
            return
        level = logging.INFO if self._said_compressed else logging.WARNING
        self._said_compressed = True
        log.log(level, "%s is %s-compressed: not followed (only gzip, bzip2 and xz files are read; exclude the "
                "others, e.g. exclude = [\"*.zst\"], to silence this)", path, kind)
        self.compressed[key] = path

    def _live_index(self) -> FingerprintIndex[Tailer]:
        return FingerprintIndex((t.fp, t) for t in self.tracked.values() if t.fp.length and not t.done)

    def _keep_pending(self, f: Found, live: FingerprintIndex[Tailer], roots: set[str]) -> bool:
        """Whether ``f`` must wait: it may be a copy of a followed file (whole, or still being written).

        ``live`` indexes the followed files by fingerprint, ``roots`` are the known lineages.
        """
        if f.compression:
            return self._keep_compressed(f, live, roots)
        now = time.monotonic()
        entry = self.pending.get(f.key)
        if entry is not None and f.size != entry.found.size:
            entry.quiet_since = now
        sources = live.lookup(f.head)
        original = sources[0] if sources else None
        lineage = lineage_of(f.path, roots)
        ambiguous = original is None and self._partial_copy(f, lineage)
        # Quiet for rotate_wait, and its original looked at since without finding itself truncated
        # (or asleep at its end, where the poller sees a truncation): a file of its own. An original
        # held meanwhile (waiting for the budget or an older file) has not looked: still maybe a copy.
        quiet = (entry is not None and now - entry.quiet_since >= self.wiring.settings.rotate_wait
                 and (original is None or original.done or original.idle or original.looked > entry.quiet_since))
        if (original is None and not ambiguous) or quiet:
            self._drop_pending(f.key)
            return False
        if entry is None:
            entry = self.pending[f.key] = Pending(f, original, now, self.recheck_soon)
            log.info("%s starts like %s: holding it back as a possible copy", f.path,
                     original.path if original else f"a file of {lineage}")
        entry.found, entry.original = f, original
        self.wiring.poller.schedule(entry)
        return True

    def _keep_compressed(self, f: Found, live: FingerprintIndex[Tailer], roots: set[str], force: bool = False,
                         short: bool = False) -> bool:
        """Whether a compressed file must wait before it is classified (see ``_compressed_copies``):

        * it starts like a followed file that is rotated away, deleted or superseded: its compressed
          form, most likely, whose lines come from that file: decided on once that file is done;
        * it starts like another followed file: a possible copy, as any (see ``_keep_pending``);
        * it is being written (its size changed within ``rotate_wait``) and holds only the start of a
          file of its log, or (``short``) less than a saved file it may hold the rest of;
        * ``force``: it starts like a file this very scan starts following: decided on at the next look.
        """
        now = time.monotonic()
        entry = self.pending.get(f.key)
        if entry is not None and f.stored != entry.found.stored:
            entry.quiet_since = now
        sources = live.lookup(f.head)
        draining = next((t for t in sources if not t.settled), None)
        original = draining or (sources[0] if sources else None)
        short = short or (entry is not None and entry.short)
        quiet = entry is not None and now - entry.quiet_since >= self.wiring.settings.rotate_wait
        if draining is not None:
            keep = True
        elif original is not None:
            keep = not (quiet and entry is not None and (original.done or original.idle
                                                         or original.looked > entry.quiet_since))
        else:
            partial = not f.ended and self._partial_copy(f, lineage_of(f.path, roots))
            keep = force or (not quiet and (short or partial))
        if not keep:
            self._drop_pending(f.key)
            return False
        if entry is None:
            entry = self.pending[f.key] = Pending(f, original, now, self.recheck_soon)
            log.info("%s starts like %s: holding it back (its compressed form, or a copy)", f.path,
                     original.path if original else "a file being read")
        entry.found, entry.original, entry.short = f, original, short
        self.wiring.poller.schedule(entry)
        return True

    def _partial_copy(self, f: Found, lineage: str) -> bool:
        """``f`` is empty or holds only the start of a file of its lineage: a copy may be under way."""
        if len(f.head) >= FP_MAX:
            return False
        members = self.families.get(lineage, ())
        # Followed files keep only their first HEAD_KEPT bytes: a longer partial copy is compared on
        # those (at worst a file is held back for rotate_wait that need not have been).
        start = f.head[:HEAD_KEPT]
        return any(m.fp.length > len(f.head) and m.head.startswith(start) for m in members if not m.done)

    def _drop_pending(self, key: Key) -> None:
        entry = self.pending.pop(key, None)
        if entry is not None:
            self.wiring.poller.cancel(entry)

    async def _match_inodes(self, files: list[Found]) -> list[tuple[Found, FileRecord]]:
        """Saved records with the same inode and head (to be confirmed by their guard)."""
        matches = []
        async for f in _sliced(files):
            records = self.known.get(f.key, [])
            record = saved_record(f, records)
            if record is not None:
                matches.append((f, record))
            else:
                live = [r for r in records if r.state == LIVE]
                if live:
                    log.warning("%s was truncated or replaced while logferry was stopped; reading it from its "
                                "start", f.path)
                    self._truncated.update(id(r) for r in live)
        return matches

    async def _confirm(self, candidates: list[tuple[Found, FileRecord]]
                       ) -> tuple[list[tuple[Found, FileRecord]], list[tuple[Found, FileRecord]]]:
        """Split matches into confirmed (the bytes before the offset are unchanged) and unsure (the
        file moved before it could be checked: left for the next scan). The rest are new files."""
        if not candidates:
            return [], []
        unread = [(f.path, f.key, r.offset) for f, r in candidates if r.offset not in f.guards]
        kinds = {f.key: f.compression for f, _ in candidates if f.compression}  # their guards are their content's
        read = iter(await self.wiring.blocking(guards, unread, kinds) if unread else ())
        confirmed, unsure = [], []
        for f, record in candidates:
            guard = f.guards[record.offset] if record.offset in f.guards else next(read)
            if guard == record.guard:
                confirmed.append((f, record))
            elif guard is None:
                unsure.append((f, record))
                self._unsure = True
            elif record.key == f.key:
                log.warning("%s was truncated or rewritten while logferry was stopped; reading it from its "
                            "start", f.path)
                self._truncated.add(id(record))
        return confirmed, unsure

    async def _at_their_end(self, copies: list[tuple[Found, FileRecord]]
                            ) -> tuple[list[tuple[Found, FileRecord]], list[tuple[Found, FileRecord]]]:
        """Copies shorter than their record's offset, whose original was found truncated: logferry had
        read lines the original got after the copy was made (logrotate's race window), then stopped
        before it saw the truncation. Everything in such a copy was shipped: resume it at its end.
        Returns (resumed, moved while we looked: for the next scan)."""
        if not copies:
            return [], []
        plain = [(f.path, f.key, r.offset) for f, r in copies if not f.compression]
        read = iter(await self.wiring.blocking(copy_guards, plain) if plain else ())
        resumed, moving = [], []
        for f, record in copies:
            # A compressed file was decoded to its end when inspected: its guard there is known.
            guard = f.guards.get(f.size) if f.compression else None
            end = (f.size, guard) if guard is not None else next(read, None)
            if end is None:
                self._unsure = True
                moving.append((f, record))
                continue
            log.info("%s is a copy of %s made before its last %d bytes were written: nothing in it is unread",
                     f.path, record.path, record.offset - end[0])
            record.offset = record.size = end[0]
            record.guard = end[1]
            resumed.append((f, record))
        return resumed, moving

    async def _start_new(self, new: list[Found], resumed: list[tuple[Found, FileRecord]]) -> None:
        """Create records for new files (saved before anything is read) and start every tailer."""
        wiring = self.wiring
        settings = wiring.settings
        now = time.time()
        starts: list[tuple[Found, Tailer]] = []
        async for f, record in _sliced(resumed):
            self._unknow(record)
            record.key, record.path, record.state, record.seen = f.key, f.path, LIVE, now
            starts.append((f, self._tailer(record, f)))
        from_tail = [f for f in new if self._starts_at_tail(f) and not f.compression]
        offsets = await wiring.blocking(tails, [(f.path, f.key) for f in from_tail], settings.max_line_bytes + 1)
        tail_of = {f.key: t for f, t in zip(from_tail, offsets)}
        tail_of.update((f.key, (f.size, f.guards[f.size] or EMPTY_GUARD)) for f in new
                       if f.compression and self._starts_at_tail(f))  # at its content's end
        fresh = []
        roots = self._roots() | {f.path for f in new}
        async for f in _sliced(new):
            offset, guard = tail_of.get(f.key) or (0, EMPTY_GUARD)
            origin = self._origin(f)
            # Most files already hold their first line: their id base is saved with the record.
            record = FileRecord(new_file_id(), f.key, Fingerprint.of(f.head), offset, guard, f.size, f.path,
                                lineage_of(f.path, roots), LIVE, now, root=f.root, origin=origin,
                                id_base=line_id_base(origin, f.head, wiring.policy.max_line))
            fresh.append(record)
            starts.append((f, self._tailer(record, f)))
        await wiring.checkpoints.persist(fresh)
        crowded = wiring.descriptors.crowded(len(starts))
        inactive = time.time() - settings.close_inactive
        for f, tailer in starts:
            # A compressed file that ends where it resumes has nothing to read until it changes.
            if f.size == tailer.pos and (crowded or f.mtime <= inactive or f.ended):
                tailer.start_unopened()
        # Oldest first; coarse file-system clocks give equal mtimes, then the name tells the rotation order.
        starts.sort(key=lambda s: _age(s[1]))
        async for f, tailer in _sliced(starts):
            self._follow(tailer, ordered=not (f.ended and f.size == tailer.pos))

    def _tailer(self, record: FileRecord, f: Found) -> Tailer:
        encoding = self.sources[f.group].encoding
        if f.compression:  # read as its content
            return CompressedTailer(self.wiring, self, record, f.path, f.head, f.mtime, f.group, encoding,
                                    f.compression, f.stored)
        return Tailer(self.wiring, self, record, f.path, f.head, f.mtime, f.group, encoding)

    def _origin(self, f: Found) -> str:
        """Where a new record's line ids derive from: the file's root, unless saved records of the same
        file (same root) say it was truncated while logferry was stopped: then it follows the last of
        them, as if the truncation had been seen live (its lines must not get the old lines' ids)."""
        same = [r for r in self.known.get(f.key, ()) if r.root == f.root]
        followed = {r.origin for r in same}
        last = [r for r in same if next_origin(r.id_base, r.origin) not in followed]
        if not last:
            return f.root
        latest = max(last, key=lambda r: r.seen)
        return next_origin(latest.id_base, latest.origin)

    def _roots(self) -> set[str]:
        """Every lineage known: of files followed now and of saved records."""
        return self._lineages | set(self.families)

    def _starts_at_tail(self, f: Found) -> bool:
        return starts_at_tail(self.wiring.settings, f, f.key in self.present_at_start)

    def _follow(self, tailer: Tailer, ordered: bool = True) -> None:
        """Track and start ``tailer``, ordered within its lineage: after the files already shipping,
        but before newer ones that have not shipped anything yet (a copytruncate copy found while
        the original's next generation still waits holds older lines than that generation). Not
        ``ordered``: a compressed rotation resumed at its end, with nothing to ship, waits for no file
        and holds none back."""
        if not ordered:
            self.tracked[tailer.key] = tailer
            self.wiring.crew.start(tailer)
            return
        members = self.families.setdefault(tailer.record.lineage, [])
        live = [m for m in members if not m.done]
        for member in live:
            if not member.shipped and _age(member) > _age(tailer):
                member.after.append(tailer.drained)
                tailer.supersede()
            else:
                tailer.after.append(member.drained)
                member.supersede()
        members[:] = [*live, tailer]
        self.tracked[tailer.key] = tailer
        self.wiring.crew.start(tailer)

    # -- copies and losses -----------------------------------------------------------

    async def adopt_copy(self, original: Tailer) -> Tailer | None:
        """``original`` was truncated: find the copy of its old content and resume its record there."""
        await self.scan()
        async with self._lock:
            candidates = [p for p in self.pending.values() if p.original is original]
            if not candidates:
                return None
            candidates.sort(key=lambda p: p.found.mtime, reverse=True)
            checks = [(p.found.path, p.found.key, original.pos) for p in candidates]
            kinds = {p.found.key: p.found.compression for p in candidates if p.found.compression}
            results = await self.wiring.blocking(copy_guards, checks, kinds)
            for entry, end in zip(candidates, results):
                if end is None:
                    continue
                at, guard = end
                f = entry.found
                if at == original.pos:
                    if guard != original.guard:
                        continue
                    record = original.record  # the copy holds the rest of the original's lines
                    record.key, record.path = f.key, f.path
                    log.info("%s holds the rest of %s before its truncation: reading it from offset %d",
                             f.path, original.path, original.pos)
                else:
                    # Shorter than what was read of the original: lines written after the copy were
                    # read from the original before it was truncated (logrotate's race window). The
                    # copy holds nothing unread: it is followed from its end, under a record of its
                    # own (the original's may still move forward as its last batches are acknowledged).
                    old = original.record  # its lines are the original's: so are their ids
                    record = FileRecord(new_file_id(), f.key, Fingerprint.of(f.head), at, guard, at, f.path,
                                        old.lineage, LIVE, time.time(), root=old.root, origin=old.origin,
                                        id_base=old.id_base)
                    await self.wiring.checkpoints.persist([record])
                    log.info("%s is a copy of %s made before its last %d bytes were written: nothing in it is "
                             "unread", f.path, original.path, original.pos - at)
                self._drop_pending(f.key)
                copy = self._tailer(record, f)
                copy.pos, copy.guard = at, guard  # past what is in flight, which the record reaches once acknowledged
                copy.superseded = True  # a rotated file: drained at its end
                self._follow(copy)
                return copy
        return None

    async def _settle_unclaimed(self) -> None:
        """Saved files that a whole scan did not find, by inode or as a copy, are gone: count what
        logferry knew they held beyond their offset as lost."""
        gone = [record for record, since in self._unclaimed.values() if since < self.scans]
        for record in gone:
            del self._unclaimed[id(record)]
            if record.size > record.offset:
                log.warning("%s: %d bytes after offset %d were not read before the file was truncated, replaced "
                            "or removed", record.path, record.size - record.offset, record.offset)
                self.wiring.losses.add(record.path, "vanished_unread", record.size - record.offset)
            record.state = GONE
        if gone:
            await self.wiring.checkpoints.persist(gone)

    def _unknow(self, record: FileRecord) -> None:
        self._unclaimed.pop(id(record), None)
        records = self.known.get(record.key, [])
        if record in records:
            records.remove(record)
            if not records:
                del self.known[record.key]

    def tailer_done(self, tailer: Tailer) -> None:
        """A tailer ended: forget it, but remember its record in case the file shows up again (a file
        renamed just before its tailer could open it is found by the next scan and resumed)."""
        if self.tracked.get(tailer.key) is tailer:
            del self.tracked[tailer.key]
        members = self.families.get(tailer.record.lineage)
        if members and tailer in members:
            members.remove(tailer)
            if not members:
                del self.families[tailer.record.lineage]
        self._remember(tailer.record)
        if tailer.record.state != DONE and not self.wiring.crew.stopping:
            self.rescan_soon()
        elif any(p.original is tailer for p in self.pending.values()):
            self.recheck_soon()  # a compressed form of it waits for it to be done


# -- how a run decides, as pure functions (``logferry sources`` shows the same decisions) -------

def saved_record(f: Found, records: list[FileRecord]) -> FileRecord | None:
    """The saved record of ``f``'s inode (``records``) it resumes, if its head still matches and the
    file is not shorter than the offset (the guard before the offset then confirms it: ``_confirm``).
    The most recently seen first: a record declared gone may be found again."""
    if len(records) > 1:
        records = sorted(records, key=lambda r: r.seen, reverse=True)
    for record in records:
        if record.fp.matches(f.head) and f.size >= record.offset:
            return record
    return None


def match_heads(files: list[Found], index: FingerprintIndex[FileRecord], truncated: frozenset[int] | set[int] = frozenset()
                ) -> list[tuple[Found, FileRecord]]:
    """New files that may be copies of saved records whose file is gone (``index``, by fingerprint):
    another inode with the same head, at least as long as the offset (each record matched once), or
    shorter when the record's own file was found truncated (``truncated``: record ids; see
    ``Discovery._at_their_end``)."""
    matches, taken = [], set()
    for f in files:
        for record in index.lookup(f.head):
            fits = f.size >= record.offset or id(record) in truncated
            if record.key != f.key and fits and id(record) not in taken:
                matches.append((f, record))
                taken.add(id(record))
                break
    return matches


def starts_at_tail(settings: Settings, f: Found, present_at_start: bool) -> bool:
    """Whether a new file (no saved record) starts at its end rather than its head."""
    if settings.start == "tail" and present_at_start:
        return True
    return settings.ignore_older is not None and time.time() - f.mtime > settings.ignore_older


def _age(tailer: Tailer) -> tuple[float, int, int]:
    """Sorts files of one lineage oldest first: by mtime, then (coarse file-system clocks give
    equal mtimes) by name: ``app.log.2`` before ``app.log.1`` before ``app.log``."""
    return (tailer.mtime, *_rotation_rank(tailer.path, tailer.record.lineage))


def _rotation_rank(path: str, lineage: str) -> tuple[int, int]:
    """Numbered rotations count down to the live file: ``.2`` < ``.1`` < the lineage path itself."""
    if path == lineage:
        return (1, 0)
    suffix = path[len(lineage) + 1:].split(".")[0] if path.startswith(lineage) else ""
    return (0, -int(suffix)) if suffix.isdigit() else (0, 0)

def lineage_of(path: str, roots: set[str]) -> str:
    """The log a path belongs to: ``app.log.1`` and ``app.log-2026`` belong to ``app.log``."""
    for i in range(len(path) - 1, len(os.path.dirname(path)), -1):
        if path[i] in _SEPARATORS and path[:i] in roots:
            return path[:i]
    return path


async def _sliced(items: list[T]) -> AsyncIterator[T]:
    """Iterate, letting the loop run other callbacks every few hundred items (huge first scans)."""
    for n, item in enumerate(items):
        if n and n % SLICE == 0:
            await asyncio.sleep(0)
        yield item


def _without(files: list[Found], matched: list[tuple[Found, FileRecord]]) -> list[Found]:
    taken = {id(f) for f, _ in matched}
    return [f for f in files if id(f) not in taken]
