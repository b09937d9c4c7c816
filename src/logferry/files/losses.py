"""Loss accounting: bytes provably not shipped, per file and reason. Never lose silently.

Reasons: ``truncated_unread`` (a file was truncated before its tail was read and no copy held it),
``vanished_unread`` (a saved file was truncated, replaced or removed, typically while logferry was
not running, before its tail was read; logferry counts the bytes it had seen), ``line_too_long``
(dropped by the ``truncate`` or ``skip`` long-line policy), ``truncated_compressed`` (a compressed
file whose stream stops early was removed: its cut last line), ``damaged_compressed`` (the bytes of a
compressed file after the point its stream cannot be decoded).
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("logferry.losses")


class Losses:
    def __init__(self) -> None:
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.cut_lines: Counter[str] = Counter()

    def add(self, path: str, reason: str, nbytes: int) -> None:
        if nbytes <= 0:
            return
        first = (path, reason) not in self.bytes
        self.bytes[(path, reason)] += nbytes
        if first or reason != "line_too_long":
            log.warning("lost %d bytes of %s (%s)", nbytes, path, reason.replace("_", " "))

    def note_cut(self, path: str) -> None:
        """A line over max_line_bytes was split or truncated (counted, logged once per file)."""
        if not self.cut_lines[path]:
            log.warning("%s has lines over the maximum line size: they are cut (long_lines policy)", path)
        self.cut_lines[path] += 1

    def total(self) -> int:
        return sum(self.bytes.values())

    def by_reason(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, reason), n in self.bytes.items():
            out[reason] += n
        return dict(out)
