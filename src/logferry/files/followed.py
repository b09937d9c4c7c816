"""The tailers of a run and their tasks: which read now, which wait without a task, which are done.

Discovery starts tailers here; a tailer asks here for a task when it wakes from dormancy or is
resumed by the budget, and says here when it ends. Growth events (``hints``) name paths: they are
delivered to the tailer following that path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .descriptors import Descriptors

if TYPE_CHECKING:
    from .hints import GrowthHints
    from .tailer import Tailer


class Followed:
    """Implements the tailer's ``Crew`` protocol; owns every tailer's task."""

    def __init__(self, descriptors: Descriptors) -> None:
        self.descriptors = descriptors
        self.stopping = False
        self.hints: GrowthHints | None = None  # growth events, when a watcher runs
        self.started = 0  # files followed since the start (a rotated file and its successor: two)
        self._tailers: dict[Tailer, asyncio.Task[None] | None] = {}  # None: no task (dormant or parked)
        self._none_left = asyncio.Event()  # every followed file is done (what --once waits for)
        self._tasks: asyncio.TaskGroup | None = None
        self._by_path: dict[str, Tailer] = {}  # rebuilt when stale
        self._paths_stale = True

    def __iter__(self) -> Iterator[Tailer]:
        return iter(list(self._tailers))

    def __len__(self) -> int:
        return len(self._tailers)

    def bind(self, tasks: asyncio.TaskGroup) -> None:
        """The task group tailer tasks run in (the engine's, for the run)."""
        self._tasks = tasks

    # -- from discovery -------------------------------------------------------------

    def start(self, tailer: Tailer) -> None:
        """Follow ``tailer``: with a task now, unless it sleeps dormant or parks before starting."""
        self._tailers[tailer] = None
        self.started += 1
        if not (tailer.go_dormant() or tailer.park_before_start()):
            tailer.begin()
        self._none_left.clear()
        self._paths_stale = True
        if self.hints is not None:
            self.hints.follow(tailer.path)

    # -- the Crew protocol: from the tailers ----------------------------------------

    def run(self, tailer: Tailer) -> None:
        """Give ``tailer`` its task (now, or when it wakes from dormancy or is resumed)."""
        assert self._tasks is not None, "a tailer runs inside the engine's task group"
        self._tailers[tailer] = self._tasks.create_task(tailer.run(), name=f"tail {tailer.path}")

    def parked(self, tailer: Tailer) -> None:
        """``tailer``'s task ends while it waits for the budget."""
        self._tailers[tailer] = None

    def ended(self, tailer: Tailer) -> None:
        self._tailers.pop(tailer, None)
        self._paths_stale = True
        if not self._tailers:
            self._none_left.set()

    def renamed(self, tailer: Tailer) -> None:
        """A tailer's file was found under another name."""
        self._paths_stale = True

    def active(self, tailer: Tailer) -> None:
        """``tailer`` read something: the last to give its descriptor back; counts towards its
        directory's growth rate."""
        self.descriptors.active(tailer)
        if self.hints is not None:
            self.hints.grew(tailer.path)

    # -- from the engine --------------------------------------------------------------

    def wake_path(self, path: str) -> bool:
        """A growth event for ``path``: wake the tailer following it; False if none does."""
        tailer = self._by_path.get(path)
        if (tailer is None or tailer.path != path) and self._paths_stale:
            self._by_path = {t.path: t for t in self._tailers}
            self._paths_stale = False
            tailer = self._by_path.get(path)
        if tailer is None or tailer.path != path:
            return False
        tailer.wake()
        return True

    async def all_done(self) -> None:
        """Return once no file is followed any more (each read to its end, with ``once``)."""
        if self._tailers:
            await self._none_left.wait()

    def stop(self) -> list[asyncio.Task[None]]:
        """Stop reading: every tailer is woken to notice; returns the tasks still running."""
        self.stopping = True
        for tailer in self._tailers:
            tailer.wake()
        return self.tasks()

    def tasks(self) -> list[asyncio.Task[None]]:
        return [task for task in self._tailers.values() if task is not None]

    def close_taskless(self) -> None:
        """At shutdown, for tailers without a task (dormant or parked): close their files."""
        for tailer, task in self._tailers.items():
            if task is None:
                tailer.close()
