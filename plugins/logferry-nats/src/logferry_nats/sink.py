"""The JetStream sink: one message per line, every PubAck counted before a send returns.

nats-py's asyncio client runs on a thread and event loop of the sink's own (a
:class:`logferry.ThreadedSink`): encoding a 4 MiB send (tens of thousands of commands) and
taking as many PubAcks is CPU work that would hold the engine's loop; on the sink's thread it only
delays this sink. The engine's loop just awaits the result.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from logferry import Batch, SinkError, ThreadedSink

from .client import NatsTarget
from .config import NatsConfig
from .errors import PubAckError, classify, is_jetstream_silent
from .wire import TooLarge

log = logging.getLogger(__name__)


class NatsSink(ThreadedSink):
    """Publish every line of a batch to JetStream, ``Nats-Msg-Id`` = the line's id."""

    def __init__(self, url: str, config: NatsConfig) -> None:
        super().__init__(url, thread_name=f"logferry-nats {config.safe_url}")
        self.config = config
        self.max_bytes_per_send = config.max_bytes_per_send
        self.max_sends_in_flight = config.max_sends_in_flight
        self.send_interval = config.send_interval
        # Used on the sink's thread only:
        self._target: NatsTarget | None = None
        self._servers = config.urls
        self._probe = False  # after a failed send: the next one tests the water with one message
        self._connecting: asyncio.Lock | None = None
        self.duplicates = 0
        """Messages JetStream answered as duplicates (stored before: re-deliveries it dropped)."""

    def describe(self) -> str:
        return self.config.safe_url

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included (``logferry config show``)."""
        return self.config.options()

    # -- on the sink's own thread ----------------------------------------------

    @property
    def _where(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.config.servers)

    async def open(self) -> None:
        """Connect and check the stream, retrying what a retry can fix for up to ``timeout``.

        A refused credential, a missing stream (with ``create = false``) or JetStream not enabled
        fail the start. Servers still unreachable at the deadline do not: the run starts, and each
        send tries to connect until one answers (the engine retries it with backoff)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        delay = 0.05
        last: BaseException | None = None
        while True:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                    await self._connect()
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                if isinstance(exc, TimeoutError) and last is not None:
                    exc = last  # cut short by our deadline: the previous failure says more
                error = classify(exc, self._where)
                if not error.retryable:
                    raise error from exc
                if loop.time() + delay >= deadline:
                    if is_jetstream_silent(exc):
                        raise SinkError(str(error), retryable=False) from exc
                    log.warning("sink %s: %s; starting anyway: each send tries to connect until a server answers",
                                self.describe(), error)
                    return
                last = exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def write(self, batches: list[Batch]) -> None:
        """Every batch published in one pipelined exchange; returns when every PubAck arrived."""
        render = self.config.subject.render
        items = [(render(batch.path), batch) for batch in batches]
        try:
            async with asyncio.timeout(self.config.timeout):
                target = await self._connected()
                self.duplicates += await target.publish(items, probe=self._probe)
            self._probe = False
        except BaseException as exc:
            self._probe = True
            if not isinstance(exc, PubAckError | SinkError | TooLarge):
                await self._reset()  # a lost or stuck connection: the next send starts afresh
            if isinstance(exc, TooLarge):
                raise SinkError(str(exc), retryable=False) from exc
            if isinstance(exc, Exception):
                raise classify(exc, self._where) from exc
            raise

    async def close(self) -> None:
        await self._reset()

    # -- connections -------------------------------------------------------------

    async def _connected(self) -> NatsTarget:
        if self._target is not None and self._target.alive:
            return self._target
        if self._connecting is None:
            self._connecting = asyncio.Lock()  # made on the sink's loop, where it is used
        async with self._connecting:  # two sends in flight: one connects, the other waits for it
            if self._target is None or not self._target.alive:
                await self._reset()
                await self._connect()
        assert self._target is not None
        return self._target

    async def _connect(self) -> None:
        target = NatsTarget(self.config, self._servers)
        await target.connect()
        self._servers = target.known_servers()
        self._target = target

    async def _reset(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            await target.close()
