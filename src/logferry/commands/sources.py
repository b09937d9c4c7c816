"""``logferry sources``: what a run with these settings would follow right now, and why.

The command a user reaches for when nothing arrives. It decides as a run's first scan does, with
the same functions (``listing.survey`` and ``inspect``, ``discovery.saved_record``, ``match_heads``,
``starts_at_tail``, ``lineage_of``), so the two cannot disagree, and it is read-only: the checkpoint
database is read with :func:`~logferry.state.checkpoints.read_records` (no lock, nothing written or
created), so it is safe beside a running logferry on the same state directory.

What a run does after its first scan is not shown: files that appear later start at their head;
a running logferry may have shipped more than its last commit (every ``commit_interval``) says.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from ..engine import own_outputs, sources_of
from ..files.compressed import readable
from ..files.discovery import lineage_of, match_heads, saved_record, starts_at_tail
from ..files.identity import Fingerprint, FingerprintIndex, Key
from ..files.listing import COMPRESSED, HELD, UNREADABLE, Found, LeftOut, guards, inspect, survey, tails, unmatched
from ..files.record import LIVE, FileRecord
from ..plugins import PluginHost
from ..settings import PLAIN, Settings, Source
from ..state.checkpoints import DB_NAME, read_records
from .config import effective_sinks

# Where a followed file starts (FileView.start).
CHECKPOINT = "checkpoint"  # at its saved offset
COPY = "copy"  # at the saved offset of a file that is gone, whose content it holds (copytruncate, mv)
HEAD, TAIL = "head", "tail"  # a file with no checkpoint: its first byte, or just after its last line


@dataclass
class FileView:
    """A file a run would follow."""

    path: str
    paths: list[str]  # every matched name of it (hard links, symbolic links)
    log: str  # its lineage: the log it belongs to (app.log.1 belongs to app.log)
    dev: int
    inode: int
    fingerprint_length: int  # bytes of its head that identify it (up to 1024)
    size: int
    offset: int  # where a run starts reading it
    unshipped: int  # bytes after the offset
    start: str  # CHECKPOINT, COPY, HEAD or TAIL
    file_id: str | None  # of its saved record (None: a new one is made)
    checkpoint_path: str | None  # where the saved record was taken (for a copy: the original)
    note: str | None = None  # e.g. why a saved record is not used; a compressed file's kind (its content's figures)
    source: str = ""  # the name of the source it belongs to (the first that matches it)
    encoding: str = "utf-8"


@dataclass
class PatternView:
    pattern: str
    files: int  # files to follow it matches
    warning: str | None  # what a run warns about it (None: nothing)


@dataclass
class NotFound:
    """A saved record of a file being followed that no pattern leads to now: a run counts the bytes
    it had seen beyond the offset as lost (``vanished_unread``) unless the file comes back."""

    path: str
    log: str
    offset: int
    size: int


@dataclass
class SourcesView:
    state_dir: str
    checkpoint_db: str | None  # None: no database yet, no checkpoints
    checkpoints: int
    patterns: list[PatternView]
    files: list[FileView]
    left_out: list[LeftOut]
    not_found: list[NotFound]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (its fields are documented in docs/running.md)."""
        return asdict(self)


def survey_sources(settings: Settings, host: PluginHost) -> SourcesView:
    """What a run of ``settings`` would follow now, from where, and what it leaves out (blocking I/O:
    call it off any event loop)."""
    settings = host.configure(settings)
    sources = sources_of(host, settings)
    patterns = list(dict.fromkeys(pattern for source in sources for pattern in source.paths))
    sinks = [host.make_sink(spec.url, spec.options, settings) for spec in effective_sinks(settings)]  # never started
    listing = survey(sources, settings.exclude, own_outputs(sinks))
    saved = read_records(settings.state_dir)
    records = saved or []
    known: dict[Key, list[FileRecord]] = {}
    for record in records:
        known.setdefault(record.key, []).append(record)
    offsets = {key: [r.offset for r in known[key]] for key in listing.found if key in known}
    files, unreadable = inspect(list(listing.found.values()), offsets)
    left_out = listing.left_out + [LeftOut(path, None, UNREADABLE, why) for path, why in unreadable]
    left_out += [LeftOut(f.path, None, COMPRESSED, f.compression) for f in files if f.compression and not readable(f.compression)]
    files = [f for f in files if not f.compression or readable(f.compression)]  # gzip, bzip2, xz: as their content

    views: list[FileView] = []
    claimed: set[int] = set()
    new: list[tuple[Found, str | None]] = []
    for f in files:  # as Discovery._match_inodes and _confirm
        match = saved_record(f, known.get(f.key, []))
        if match is not None and f.guards.get(match.offset) == match.guard:
            views.append(_view(f, sources, match.offset, CHECKPOINT, match.lineage, match))
            claimed.add(id(match))
        elif match is not None or any(r.state == LIVE for r in known.get(f.key, ())):
            new.append((f, "truncated or rewritten since its checkpoint: read from its start"))
        else:
            new.append((f, None))
    orphans = FingerprintIndex((r.fp, r) for r in records if r.state == LIVE and r.fp.length and id(r) not in claimed)
    candidates = match_heads([f for f, _ in new if not f.compression], orphans) if orphans else []
    checked = guards([(f.path, f.key, r.offset) for f, r in candidates])
    copies = {id(f): r for (f, r), guard in zip(candidates, checked) if guard == r.guard}
    for f, _ in new:
        if id(f) in copies:
            record = copies[id(f)]
            views.append(_view(f, sources, record.offset, COPY, record.lineage, record))
            claimed.add(id(record))
    new = [(f, note) for f, note in new if id(f) not in copies]
    new, held = _compressed_rotations(new, [f for f in files if not f.compression], views, records, claimed,
                                       sources)
    left_out = _unique(left_out + held)
    roots = {r.lineage for r in records} | {f.path for f, _ in new}
    at_tail = [f for f, _ in new if starts_at_tail(settings, f, True)]
    tail_of = {f.key: t for f, t in zip(at_tail, tails([(f.path, f.key) for f in at_tail],
                                                        settings.max_line_bytes + 1))}
    for f, note in new:
        offset = (tail_of.get(f.key) or (0, b""))[0]
        views.append(_view(f, sources, offset, TAIL if f.key in tail_of else HEAD, lineage_of(f.path, roots), None,
                           note))
    views.sort(key=lambda v: (v.log, v.path != v.log, v.path))
    return SourcesView(
        str(settings.state_dir), str(Path(settings.state_dir) / DB_NAME) if saved is not None else None, len(records),
        [PatternView(p, listing.followed[p], unmatched(p, listing, follow=True)) for p in patterns],
        views, left_out,
        [NotFound(r.path, r.lineage, r.offset, r.size) for r in records if r.state == LIVE and id(r) not in claimed],
    )


def _compressed_rotations(new: list[tuple[Found, str | None]], plain: list[Found], views: list[FileView],
                          records: list[FileRecord], claimed: set[int], sources: Sequence[Source]
                          ) -> tuple[list[tuple[Found, str | None]], list[LeftOut]]:
    """As ``Discovery._compressed_copies`` decides at a run's first scan: a compressed file that starts
    like a file followed now is held back (its compressed form: decided once that file is done); one
    that holds a saved record's bytes before its offset resumes there (a view added to ``views``);
    one named after such a record's file whose stream ended shorter holds nothing unread (the records
    taken over join ``claimed``). Returns the others, still new, and the files held back (``plain``:
    the files followed as text)."""
    followed = FingerprintIndex((Fingerprint.of(f.head), f.path) for f in plain if f.head)
    saved = FingerprintIndex((r.fp, r) for r in sorted(records, key=lambda r: r.seen, reverse=True)
                             if r.fp.length and id(r) not in claimed)
    rest, held = [], []
    pairs = []
    for f, note in new:
        if not f.compression:
            rest.append((f, note))
            continue
        being_read = followed.lookup(f.head)
        if being_read:
            held.append(LeftOut(f.path, None, HELD, f"compressed form of {being_read[0]}, which is followed"))
            continue
        rest.append((f, note))
        pairs += [(f, r) for r in (saved.lookup(f.head) if saved else ()) if r.key != f.key]
    fits = [(f, r) for f, r in pairs if f.size >= r.offset]
    checked = guards([(f.path, f.key, r.offset) for f, r in fits], {f.key: f.compression for f, _ in fits if f.compression})
    taken: dict[int, tuple[FileRecord, int]] = {}  # file → (record, where it resumes)
    for (f, r), guard in zip(fits, checked):
        if guard == r.guard and id(f) not in taken:
            taken[id(f)] = (r, r.offset)
    for f, r in pairs:
        if id(f) not in taken and f.size < r.offset and f.ended and f.path.startswith(r.path + "."):
            taken[id(f)] = (r, f.size)
    for f, _ in rest:
        if id(f) in taken:
            record, offset = taken[id(f)]
            claimed.add(id(record))
            what = "nothing in it is unread" if offset == f.size else f"{f.size - offset} bytes of it are not shipped yet"
            views.append(_view(f, sources, offset, COPY, record.lineage, record, f"{f.compression}-compressed: {what}"))
    return [(f, note) for f, note in rest if id(f) not in taken], held


def _view(f: Found, sources: Sequence[Source], offset: int, start: str, log: str, record: FileRecord | None,
          note: str | None = None) -> FileView:
    source = sources[f.group]
    if note is None and f.compression:
        note = f"{f.compression}-compressed: the size and offset are its content's"
    return FileView(f.path, list(f.paths), log, f.key[0], f.key[1], len(f.head), f.size, offset,
                    max(0, f.size - offset), start, record.file_id if record else None,
                    record.path if record else None, note, source.name, source.encoding)


def _unique(left_out: list[LeftOut]) -> list[LeftOut]:
    """One entry a path (two patterns may match it), in path order."""
    by_path: dict[str, LeftOut] = {}
    for entry in left_out:
        by_path.setdefault(entry.path, entry)
    return sorted(by_path.values(), key=lambda e: e.path)


def print_json(view: SourcesView, out: TextIO = sys.stdout) -> None:
    json.dump(view.as_dict(), out, indent=2)
    out.write("\n")


def print_human(view: SourcesView, out: TextIO = sys.stdout) -> None:
    """A readable report: the state directory, each pattern, the files followed, those left out."""
    if view.checkpoint_db is None:
        out.write(f"state directory {view.state_dir}: no checkpoints yet\n")
    else:
        out.write(f"state directory {view.state_dir}: {_count(view.checkpoints, 'checkpoint')} in {view.checkpoint_db}\n")
    out.writelines(f"pattern {p.pattern}: " + (f"warning: {p.warning}" if p.warning else _count(p.files, "file")) + "\n" for p in view.patterns)
    out.write(f"\nfollowed: {_count(len(view.files), 'file')}\n")
    if view.files:
        # Which source a file belongs to, once there is more than the plain patterns to tell apart.
        sources = {(v.source, v.encoding) for v in view.files} != {(PLAIN, "utf-8")}
        rows = [("PATH", "LOG", "DEV:INODE", "FP", "SIZE", "OFFSET", "UNSHIPPED", "START", *["SOURCE"] * sources)]
        for v in view.files:
            start = f"copy of {v.checkpoint_path}" if v.start == COPY else v.start
            source = v.source + (f" ({v.encoding})" if v.encoding != "utf-8" else "")
            rows.append((v.path, v.log, f"{v.dev}:{v.inode}", str(v.fingerprint_length), str(v.size), str(v.offset),
                         str(v.unshipped), start + (f" ({v.note})" if v.note else ""), *[source] * sources))
        _table(rows, out, right=frozenset({3, 4, 5, 6}))
    out.write(f"\nleft out: {_count(len(view.left_out), 'path')}\n")
    if view.left_out:
        _table([("PATH", "REASON")] + [(e.path, e.reason + (f" ({e.detail})" if e.detail else ""))
                                       for e in view.left_out], out)
    if view.not_found:
        out.write(f"\nsaved but not found: {_count(len(view.not_found), 'file')} (a run counts the bytes it had "
                  "seen after their offset as lost, unless they come back)\n")
        _table([("PATH", "LOG", "OFFSET", "SIZE")] + [(n.path, n.log, str(n.offset), str(n.size))
                                                      for n in view.not_found], out, right=frozenset({2, 3}))


def _table(rows: Sequence[tuple[str, ...]], out: TextIO, right: frozenset[int] = frozenset()) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.write("  " + "  ".join(cells).rstrip() + "\n")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
