"""An asyncio event loop on a thread of its own, for sinks whose I/O blocks.

This is the seed's ``WriteThread`` made robust: the engine's loop never runs the blocking call; it
hands a coroutine to this loop with ``run_coroutine_threadsafe`` and awaits the result through
``wrap_future``, so exceptions raised on the thread reach the caller, and stop is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits (Python's default: 5 ms)


@contextlib.contextmanager
def quick_gil_handoff(interval: float = SWITCH_INTERVAL) -> Iterator[None]:
    """Lower the interpreter's switch interval while the block runs.

    Reads, sink encoding and the database run on threads; the loop must get the GIL back quickly
    when its callbacks are due, or every busy thread adds up to 5 ms to each step that releases it.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class LoopThread:
    """Runs coroutines on a private event loop in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def start(self) -> None:
        """Start the thread and return once its loop is running."""
        if self.running:
            return
        caller = asyncio.get_running_loop()
        ready: asyncio.Future[None] = caller.create_future()
        self._ended = caller.create_future()
        self._loop = asyncio.new_event_loop()
        ended = self._ended

        def main() -> None:
            loop = self._loop
            assert loop is not None
            asyncio.set_event_loop(loop)
            loop.call_soon(caller.call_soon_threadsafe, _resolve, ready)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                if not caller.is_closed():
                    caller.call_soon_threadsafe(_resolve, ended)

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        await ready

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and return (or raise) its result."""
        if not self.running or self._loop is None:
            coro.close()
            raise RuntimeError(f"{self.name} is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """Stop the loop after the work already handed to it, and wait for the thread to end.

        The wait is a future the thread resolves as it ends, not a ``join`` on a worker thread, so a
        thread stuck in a system call can be abandoned by cancelling this (it is a daemon thread).
        """
        thread, loop, ended = self._thread, self._loop, self._ended
        if thread is None or loop is None or ended is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        await ended
        self._thread = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
