"""The in-flight budget: bytes read and not yet acknowledged by every sink, plus bytes reserved for reads.

A reader reserves before it reads and waits while the budget is used up, so a slow or stalled sink
stops the readers (the files are the buffer) and memory stays bounded however many files there are.
Readers that have no task of their own while they wait *park*: they are resumed, with their bytes
reserved, once there is room.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Budget:
    """At most ``limit`` bytes in flight and reserved together (one batch may go over when nothing else is held)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0  # submitted and not yet acknowledged by every sink
        self.reserved = 0  # by readers, for the reads they are doing
        # Tasks waiting for room, and parked readers (size, resume): see park().
        self._waiters: deque[asyncio.Future[None] | tuple[int, Callable[[int], None]]] = deque()

    def room(self) -> int:
        """Bytes that may be reserved now without waiting."""
        return max(0, self.limit - self.inflight - self.reserved)

    async def reserve(self, size: int) -> None:
        """Reserve ``size`` bytes for a read; waits while the budget is used up."""
        await self._wait_for(size)
        self.reserved += size
        if self.room():
            self._wake()  # room for the next one too

    def park(self, size: int, resume: Callable[[int], None]) -> bool:
        """If ``size`` bytes cannot be reserved now, queue ``resume`` among the waiters and return True:
        once there is room, the bytes are reserved for it and ``resume(size)`` is called (on the
        loop). With thousands of files and a stalled sink, the files that wait hold no task."""
        if not self._must_wait(size):
            return False
        self._waiters.append((size, resume))
        return True

    def reserve_now(self, size: int) -> None:
        """Reserve without waiting (the poller reserves what :meth:`room` said was free)."""
        self.reserved += size

    def unreserve(self, size: int, wake: bool = True) -> None:
        """Give back what a read did not use (``wake``: let a waiter have it)."""
        if size:
            self.reserved -= size
            if wake:
                self._wake()

    async def take(self, size: int, reserved: int) -> int:
        """``size`` bytes go in flight, out of the caller's reservation (up to ``reserved``; returns
        what was used of it); beyond it, waits while the budget is used up."""
        used = min(size, reserved)
        self.reserved -= used
        if size > used:
            await self._wait_for(size - used)
        self.inflight += size
        if size > used and self.room():
            self._wake()
        return used

    def release(self, size: int) -> None:
        """``size`` bytes in flight were acknowledged."""
        self.inflight -= size
        self._wake()

    def _must_wait(self, size: int) -> bool:
        return bool(self.inflight or self.reserved) and self.inflight + self.reserved + size > self.limit

    async def _wait_for(self, size: int) -> None:
        while self._must_wait(size):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        """Wake the first waiting task (it looks again, and waits again if the room is too small);
        parked readers in front of it get their bytes reserved and resume, as many as fit."""
        while self._waiters:
            waiter = self._waiters[0]
            if isinstance(waiter, asyncio.Future):
                self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
                continue
            size, resume = waiter
            if self._must_wait(size):
                return
            self._waiters.popleft()
            self.reserved += size
            resume(size)
