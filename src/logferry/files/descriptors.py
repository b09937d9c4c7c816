"""The open-file budget: how many descriptors followed files hold, and which give theirs back.

A followed file is read through a descriptor its tailer holds, so a rotated-away or deleted file
can still be drained. Beyond ``max_open_files`` (by default the process's limit, raised to its hard
limit, minus room for everything else), idle files close theirs, least recently active first, and
are checked by path until they grow; a tailer that needs a descriptor waits for one.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict, deque
from typing import Protocol

RESERVED_FOR_THE_REST = 128  # descriptors left for sinks, the store, the watcher, sockets


class Holder(Protocol):
    """A tailer, as far as the budget is concerned."""

    fd: int | None
    orphaned: bool
    deleted: bool

    def close_idle(self) -> None:
        """Close the descriptor if asleep and not being read; calls :meth:`Descriptors.closed`."""


class Descriptors:
    """Counts open descriptors, least recently active first, and hands out slots."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # 0: from the process's limit, at start()
        self._open: OrderedDict[Holder, None] = OrderedDict()
        self._idle: OrderedDict[Holder, None] = OrderedDict()  # asleep with a descriptor, oldest first
        self._opening = 0  # descriptors being opened
        self._waiters: deque[asyncio.Future[None]] = deque()

    def start(self) -> None:
        self.limit = self.limit or _open_file_budget()

    @property
    def count(self) -> int:
        """Descriptors held now."""
        return len(self._open)

    def crowded(self, more: int) -> bool:
        """Would ``more`` files more than fit in the budget?"""
        return len(self._open) + self._opening + more > self.limit

    async def slot(self) -> None:
        """Wait until one more descriptor fits in the budget; idle files give theirs back first.
        Call :meth:`opening_done` once the open finished (or failed)."""
        while len(self._open) + self._opening >= self.limit:
            self.enforce(room=1)
            if len(self._open) + self._opening < self.limit:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._opening += 1

    def opening_done(self) -> None:
        self._opening -= 1
        self._wake_waiter()

    def opened(self, holder: Holder) -> None:
        self._open[holder] = None
        self.enforce()

    def enforce(self, room: int = 0) -> None:
        """Over the budget, idle files close (least recently active first) until it holds."""
        over = len(self._open) + self._opening + max(room, len(self._waiters)) - self.limit
        if over <= 0:
            return
        # Only idle files are looked at (not every open one): with many more files than descriptors
        # this runs for every file that waits for one.
        for other in list(self._idle):
            if other.orphaned or other.deleted:  # gone files cannot be reopened
                continue
            other.close_idle()
            if other.fd is None:
                over -= 1
                if over == 0:
                    return

    def idle(self, holder: Holder, idle: bool) -> None:
        """``holder`` fell asleep at the end of its open file (a candidate to close), or woke."""
        if idle and holder.fd is not None:
            self._idle[holder] = None
        else:
            self._idle.pop(holder, None)

    def active(self, holder: Holder) -> None:
        """``holder`` read something: the last to give its descriptor back."""
        if holder in self._open:
            self._open.move_to_end(holder)

    def closed(self, holder: Holder) -> None:
        self._open.pop(holder, None)
        self._idle.pop(holder, None)
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _open_file_budget() -> int:
    """Files we may hold open: the process's limit (raised to its hard limit) minus room for the rest."""
    _raise_open_file_limit()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(16, soft - RESERVED_FOR_THE_REST)


def _raise_open_file_limit() -> None:
    """Many followed files need many descriptors: use the hard limit the process is allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
