"""The Redis stream sink: one XADD per line, all of a batch's in one pipelined round trip.

The redis-py asyncio client runs on a thread and event loop of the sink's own (a
:class:`logferry.ThreadedSink`):
encoding a 1 MiB batch of short lines (tens of thousands of commands) and reading as many replies
is CPU work that would hold the engine's loop for tens of milliseconds; on the sink's thread it only
delays this sink. The engine's loop just awaits the result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from logferry import Batch, SinkError, ThreadedSink
from redis import exceptions as rex

from .client import RedisTarget, StreamError
from .config import RedisConfig
from .errors import classify, is_connection_problem


class RedisSink(ThreadedSink):
    """Append every line of a batch to a Redis stream, with ``line``, ``path``, ``offset``, ``id``."""

    def __init__(self, url: str, config: RedisConfig) -> None:
        super().__init__(url, thread_name=f"logferry-redis {config.safe_url}")
        self.config = config
        self.max_bytes_per_send = config.max_bytes_per_send
        self.max_sends_in_flight = config.max_sends_in_flight
        self.send_interval = config.send_interval
        self._target: RedisTarget | None = None  # used on the sink's thread only

    def describe(self) -> str:
        return self.config.safe_url

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included (``logferry config show``)."""
        return self.config.options()

    # -- on the sink's own thread ----------------------------------------------

    @property
    def _where(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.config.nodes)

    async def open(self) -> None:
        """Connect and PING, retrying connection failures for up to ``timeout`` (a server that is
        still starting); a refused password fails at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        delay = 0.05
        last: SinkError | None = None
        while True:
            target = RedisTarget(self.config)
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                    await target.connect()
            except Exception as exc:
                error = classify(exc, self._where)
                if isinstance(exc, TimeoutError) and last is not None:
                    error = last  # cut short by our deadline: the previous failure says more
                if not error.retryable or loop.time() + delay >= deadline:
                    raise SinkError(str(error), retryable=False) from exc
                last = error
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._target = target
            return

    async def write(self, batches: list[Batch]) -> None:
        """Every batch handed over in one exchange per node (a pipeline of all their XADDs)."""
        target = self._target
        if target is None:
            raise SinkError(f"the redis sink {self.describe()} is not started", retryable=False)
        render = self.config.stream.render
        items = [(render(batch.path), batch) for batch in batches]
        try:
            async with asyncio.timeout(self.config.timeout):
                try:
                    await target.xadd(items)
                except rex.ConnectionError as exc:
                    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
                        raise
                    # A connection that died between two sends (a server restart, an idle
                    # timeout): reconnect and send again at once. Entries the dead connection did
                    # deliver are delivered twice, with the same ids.
                    await target.reset()
                    await target.xadd(items)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) or is_connection_problem(exc):
                await target.reset()
            if isinstance(exc, Exception):
                error = classify(exc, self._where)
                if isinstance(exc, StreamError):
                    error = SinkError(f"XADD to {exc.stream.decode('utf-8', 'replace')!r}: {error}",
                                      retryable=error.retryable)
                raise error from exc
            raise

    async def close(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            await target.close()
