"""When idle files are looked at again: adaptive per-file backoff, checked in batches off the loop.

A tailer that reaches the end of its file hands itself to the poller and sleeps. The poller keeps
one timer for all of them; when checks are due it ``fstat``s every due file in a single worker-thread
call, and for an open file that grew it reads the new lines in that same call, so a busy file costs
one thread hop per check instead of three (check, read, wake). Only the tailers whose file changed
are woken, with what was read for them.

A file is checked again after a delay that grows with how long it has been quiet: files being
written are checked every few milliseconds, files quiet for a second or more every ``ceiling``
(the poll interval), which is therefore the longest a change can go unnoticed without a watcher
hint. Where growth events cover a file (see hints.py), it rests instead: one check every
``hints.REST`` seconds, in case an event is lost. Thousands of idle files cost one thread hop and
a few microseconds each per sweep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from .hints import REST, GrowthHints
from .identity import GUARD
from .reader import Read, Step, read_step

FLOOR = 0.002  # a file being written is checked this often: latency stays within a few ms
BACKOFF = 0.25  # the next check comes after this share of the time the file has been quiet
BEING_CHECKED = -1
ALIGN = 0.05  # longer delays end on a multiple of this: idle files share sweeps, and thread hops
SWEEP_MAX = 1000  # files per sweep: the loop handles one sweep's results between other callbacks


class Budget(Protocol):
    def room(self) -> int: ...

    def reserve_now(self, size: int) -> None: ...

    def unreserve(self, size: int) -> None: ...


class Pollable(Protocol):
    """A file the poller checks: a sleeping tailer, or a file discovery holds back."""

    @property
    def fd(self) -> int | None: ...

    @property
    def path(self) -> str: ...

    @property
    def key(self) -> tuple[int, int]: ...

    @property
    def size(self) -> int: ...

    @property
    def deleted(self) -> bool: ...

    @property
    def last_growth(self) -> float: ...

    @property
    def settled(self) -> bool:
        """At its path and expected to stay: may rest where growth events cover it."""

    def read_args(self) -> Read | None:
        """The read the poller may do for it (:func:`read_step`), else None."""

    def polled(self, step: Step | None) -> None:
        """Its file changed; ``step`` is what the poller read (None: look yourself), its
        ``step.read`` bytes reserved in the budget for it."""


class Poller:
    """One timer and one batched check for every idle file."""

    def __init__(self, ceiling: float, blocking: Callable[..., Any], budget: Budget) -> None:
        self.ceiling = max(ceiling, 0.001)
        self.floor = min(FLOOR, self.ceiling)
        self._blocking = blocking
        self._budget = budget
        self.hints: GrowthHints | None = None
        self._heap: list[tuple[float, int, Pollable, bool]] = []
        self._tickets: dict[int, int] = {}  # id(file) → ticket of its live entry, or BEING_CHECKED
        self._counter = itertools.count()
        self._changed: asyncio.Event = asyncio.Event()
        self.sweeps = 0

    def schedule(self, item: Pollable) -> None:
        """Check ``item``'s file after a delay that grows with its quiet time (replaces any earlier one)."""
        now = time.monotonic()
        resting = item.settled and self.hints is not None and self.hints.covers(item.path)
        if resting:
            delay = REST
        else:
            delay = min(self.ceiling, max(self.floor, (now - item.last_growth) * BACKOFF))
        if resting or delay >= self.ceiling >= 2 * ALIGN:
            # Idle files are checked together, on multiples of their period, never later than it.
            when = (math.floor(now / delay) + 1) * delay
        elif delay >= 2 * ALIGN:
            when = math.ceil((now + delay) / ALIGN) * ALIGN
        else:
            when = now + delay
        ticket = next(self._counter)
        self._tickets[id(item)] = ticket
        heapq.heappush(self._heap, (when, ticket, item, resting))
        if self._heap[0][1] == ticket:
            self._changed.set()

    def cancel(self, item: Pollable) -> None:
        """Forget ``item``: a check under way for it is discarded."""
        self._tickets.pop(id(item), None)

    def wake_directory(self, directory: str) -> None:
        """Growth events stopped covering ``directory``: its resting files get regular checks again."""
        for _, ticket, item, resting in list(self._heap):
            if resting and self._tickets.get(id(item)) == ticket and os.path.dirname(item.path) == directory:
                self.schedule(item)

    def checking(self, item: Pollable) -> bool:
        """Is a worker thread looking at ``item``'s descriptor right now? (Do not close it.)"""
        return self._tickets.get(id(item)) == BEING_CHECKED

    async def run(self) -> None:
        while True:
            due = self._pop_due()
            if due:
                self.sweeps += 1
                allowance = self._budget.room()  # reads in the sweep stay within the in-flight budget
                self._budget.reserve_now(allowance)
                try:
                    results = await self._blocking(_sweep, [_args(item) for item, _ in due], allowance)
                except BaseException:
                    self._budget.unreserve(allowance)
                    raise
                used = sum(r.read for r in results if isinstance(r, Step))
                self._budget.unreserve(allowance - used)
                for (item, resting), result in zip(due, results):
                    if self._tickets.get(id(item)) != BEING_CHECKED:
                        if isinstance(result, Step):
                            self._budget.unreserve(result.read)
                        continue  # woken or cancelled meanwhile: what was read is not used
                    if result is None:
                        self.schedule(item)
                        continue
                    if resting and self.hints is not None:
                        self.hints.unannounced(item.path)
                    del self._tickets[id(item)]
                    item.polled(result if isinstance(result, Step) else None)
                continue
            self._changed.clear()
            timeout = self._heap[0][0] - time.monotonic() if self._heap else None
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _pop_due(self) -> list[tuple[Pollable, bool]]:
        now = time.monotonic()
        due: list[tuple[Pollable, bool]] = []
        while self._heap and self._heap[0][0] <= now and len(due) < SWEEP_MAX:
            _, ticket, item, resting = heapq.heappop(self._heap)
            if self._tickets.get(id(item)) == ticket:
                self._tickets[id(item)] = BEING_CHECKED
                due.append((item, resting))
        return due


_Check = tuple[int | None, str, tuple[int, int], int, bool, Read | None]


def _args(item: Pollable) -> _Check:
    return item.fd, item.path, item.key, item.size, item.deleted, item.read_args()


def _sweep(files: list[_Check], allowance: int) -> list[Step | bool | None]:
    """For each file: None if unchanged since its last read, else what was read (or True: changed,
    but nothing read here). Reads stop once ``allowance`` bytes were read. Runs on a worker thread."""
    out: list[Step | bool | None] = []
    for fd, path, key, size, deleted, read in files:
        try:
            if fd is not None:
                st = os.fstat(fd)
            else:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) != key:
                    out.append(True)
                    continue
            if st.st_size == size and (st.st_nlink == 0) == deleted:
                out.append(None)
            elif read is not None and st.st_size > size and (
                    min(st.st_size - read.pos, read.policy.chunk) + GUARD <= allowance):
                step = read_step(read)
                allowance -= step.read
                out.append(step)
            else:
                out.append(True)
        except OSError:
            out.append(True)
    return out
