"""Which directories get growth events, and whether those events can be trusted.

watchdog turns every write into a Python event, which under load costs more CPU than shipping the
lines (FACTS.md: 81% of a core at 20,000 writes/s). So growth events are asked for only in *calm*
directories; a directory whose files grow often is polled fast instead (see poller.py) and gets
events again once it has calmed down. Where events cover a file, the file rests: it is checked
only every ``REST`` seconds in case an event is lost, which is what makes thousands of idle files
cheap. A rest check that finds growth no event announced (a network file system, exhausted inotify
limits) counts against its directory; after ``MISSES`` of them the directory is polled at the poll
interval for the rest of the run. Latency suffers, never lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .watch import Watcher

log = logging.getLogger("logferry.hints")

REST = 10.0  # how often an idle file is checked where growth events cover it
BUSY_RATE = 20  # growths a second that make a directory busy: it is polled instead
CALM = 5.0  # seconds below that rate before a busy directory gets growth events again
GRACE = 0.2  # how long an event may lag behind a check that already saw the growth
MISSES = 3  # growths no event announced before a directory's events are not trusted


@dataclass
class _Directory:
    covered: bool = False  # growth events are being delivered for it
    changing: bool = False  # a watch is being added or removed
    window: float = 0.0  # start of the current one-second window
    growths: int = 0  # in that window
    busy_at: float = 0.0  # when it last grew faster than BUSY_RATE
    misses: int = 0
    trusted: bool = True


class GrowthHints:
    """Decides which directories get growth events, delivers them, and checks that they arrive.

    Lives on the loop; the blocking watch changes run through ``blocking``.
    """

    def __init__(self, watcher: Watcher, blocking: Callable[..., Awaitable[Any]],
                 wake: Callable[[str], bool], uncovered: Callable[[str], None]) -> None:
        self._watcher = watcher
        self._blocking = blocking
        self._wake = wake  # path → woke a follower of it?
        self._uncovered = uncovered  # a directory lost its events: its resting files need checks again
        self._dirs: dict[str, _Directory] = {}
        self._suspects: dict[str, float] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    def covers(self, path: str) -> bool:
        """Will a growth of ``path`` be announced by an event?"""
        d = self._dirs.get(os.path.dirname(path))
        return d is not None and d.covered

    def follow(self, path: str) -> None:
        """A followed file lives here: its directory is a candidate for growth events."""
        self._dirs.setdefault(os.path.dirname(path), _Directory())  # calm until its files grow fast

    def grew(self, path: str) -> None:
        """A file grew (its lines were shipped): count it towards its directory's rate."""
        d = self._dirs.get(os.path.dirname(path))
        if d is None:
            return
        now = time.monotonic()
        if now - d.window >= 1.0:
            d.window, d.growths = now, 0
        d.growths += 1
        if d.growths > BUSY_RATE:
            d.busy_at = now
            if d.covered:
                self._uncover(os.path.dirname(path), d)

    def unannounced(self, path: str) -> None:
        """A check found growth in a covered directory: an event should follow within GRACE."""
        self._suspects.setdefault(path, time.monotonic())

    def delivered(self, paths: set[str]) -> None:
        """Growth events arrived (on the loop): wake the followers of these paths."""
        for path in paths:
            self._suspects.pop(path, None)
            self._wake(path)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(GRACE if self._suspects else 1.0)
            now = time.monotonic()
            for path, since in list(self._suspects.items()):
                if now - since >= GRACE:
                    del self._suspects[path]
                    self._missed(path)
            for directory, d in list(self._dirs.items()):
                if d.trusted and not d.covered and not d.changing and now - d.busy_at >= CALM:
                    d.changing = True
                    try:
                        covered = await self._blocking(self._watcher.watch_growth, directory)
                    finally:
                        d.changing = False
                    if not covered:
                        continue
                    if d.trusted and d.busy_at <= now:
                        d.covered = True
                    else:  # busy again, or distrusted, while the watch was being added: take it back
                        self._uncover(directory, d)

    def _missed(self, path: str) -> None:
        directory = os.path.dirname(path)
        d = self._dirs.get(directory)
        if d is None or not d.covered:
            return
        d.misses += 1
        if d.misses >= MISSES:
            d.trusted = False
            log.info("growth events in %s do not arrive (a network file system?): polling it", directory)
            self._uncover(directory, d)

    def _uncover(self, directory: str, d: _Directory) -> None:
        d.covered = False
        self._uncovered(directory)
        d.changing = True

        async def unwatch() -> None:
            try:
                await self._blocking(self._watcher.unwatch_growth, directory)
            finally:
                d.changing = False

        task = asyncio.ensure_future(unwatch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
