"""When idle files are looked at again: adaptive per-file backoff, checked in batches off the loop.

A tailer that reaches the end of its file hands itself to the poller and sleeps. The poller keeps
one timer for all of them; when checks are due it ``fstat``s every due file in a single worker-thread
call and wakes only the tailers whose file changed. Unchanged files back off (doubling) up to the
poll interval, which is therefore the longest a change can go unnoticed without a watcher hint.
Thousands of idle files cost one thread hop and a few microseconds each per sweep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

FLOOR = 0.005  # first re-check after activity: hot files are noticed within milliseconds


class Pollable(Protocol):
    fd: int | None
    path: str
    key: tuple[int, int]
    size: int
    deleted: bool

    def wake(self) -> None: ...


class Poller:
    """One timer and one batched check for every idle file."""

    def __init__(self, ceiling: float, blocking: Callable[..., Any]) -> None:
        self.ceiling = max(ceiling, 0.001)
        self.floor = min(FLOOR, self.ceiling)
        self._blocking = blocking
        self._heap: list[tuple[float, int, Pollable, float]] = []
        self._tickets: dict[int, int] = {}  # id(tailer) → ticket of its live entry
        self._counter = itertools.count()
        self._changed: asyncio.Event = asyncio.Event()
        self.sweeps = 0

    def schedule(self, tailer: Pollable, delay: float | None = None) -> None:
        """Check ``tailer``'s file after ``delay`` (default: the floor), replacing any earlier schedule."""
        delay = self.floor if delay is None else min(delay, self.ceiling)
        ticket = next(self._counter)
        self._tickets[id(tailer)] = ticket
        heapq.heappush(self._heap, (time.monotonic() + delay, ticket, tailer, delay))
        if self._heap[0][1] == ticket:
            self._changed.set()

    def cancel(self, tailer: Pollable) -> None:
        self._tickets.pop(id(tailer), None)

    async def run(self) -> None:
        while True:
            due = self._pop_due()
            if due:
                self.sweeps += 1
                changed = await self._blocking(_check, [(t.fd, t.path, t.key, t.size, t.deleted) for t, _ in due])
                for (tailer, delay), moved in zip(due, changed):
                    if self._tickets.get(id(tailer)) != -1:
                        continue  # rescheduled or cancelled meanwhile
                    if moved:
                        del self._tickets[id(tailer)]
                        tailer.wake()
                    else:
                        self.schedule(tailer, delay * 2)
                continue
            self._changed.clear()
            timeout = self._heap[0][0] - time.monotonic() if self._heap else None
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _pop_due(self) -> list[tuple[Pollable, float]]:
        now = time.monotonic()
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, ticket, tailer, delay = heapq.heappop(self._heap)
            if self._tickets.get(id(tailer)) == ticket:
                self._tickets[id(tailer)] = -1  # being checked
                due.append((tailer, delay))
        return due


def _check(files: list[tuple[int | None, str, tuple[int, int], int, bool]]) -> list[bool]:
    """For each file: has it changed since its tailer last read it? (runs on a worker thread)"""
    out = []
    for fd, path, key, size, deleted in files:
        try:
            if fd is not None:
                st = os.fstat(fd)
            else:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) != key:
                    out.append(True)
                    continue
        except OSError:
            out.append(True)
            continue
        out.append(st.st_size != size or (st.st_nlink == 0) != deleted)
    return out
