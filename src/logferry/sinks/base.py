"""What a sink is: an object with async ``start``, ``send`` and ``stop``.

Sinks are objects, not a per-batch hook: the engine calls each sink inside its own error handling
and retries, so one failing sink cannot break the others (pluggy stops a hook call at the first
exception). A plugin returns a sink from the ``logferry_make_sink`` hook.
"""

from __future__ import annotations

from typing import Any

from ..records.batch import Batch
from .threadloop import LoopThread


class Sink:
    """Base class for sinks. Subclasses implement :meth:`send`; the rest is optional.

    The engine guarantees: ``start`` is awaited once before the first ``send``; each file's batches
    arrive in file order, and a file's next batch only once the call holding its previous one
    returned (so a retried call never reorders a file's lines); no more than
    :attr:`max_sends_in_flight` calls run at once (by default one); ``stop`` is awaited once at the
    end (also after a failed ``start``), after the last call returned.

    Delivery is coalesced: while a sink is busy, what queues for it from any file joins its next
    ``send_many`` call, up to :attr:`max_bytes_per_send` and :attr:`max_lines_per_send`; when it is
    idle, a batch goes out at once.
    """

    max_bytes_per_send: int = 8 << 20
    """Most bytes of lines (as read from the files, before any encoding) one ``send``/``send_many``
    call receives. A batch larger than this is split at line boundaries (a single line longer than
    this still travels alone)."""
    max_lines_per_send: int = 0
    """Most lines one call receives (0: no limit); batches are split to respect it."""
    max_sends_in_flight: int = 1
    """How many calls may run at once. Above 1 the engine starts another call while earlier ones
    are in flight, once a full call's worth (either limit) is queued, but never two calls holding
    lines of the same file; each file's checkpoint still moves in order."""

    send_interval: float = 0.0
    """Seconds between the starts of two calls while batches keep coming (0: none). A call that
    is not full waits until this long after the previous call started, so that more joins it:
    fewer, larger calls where each one has a cost of its own (a request, a round trip). A batch
    after a quiet spell still goes out at once; the wait adds at most this much latency."""

    url: str = ""
    output_path: str | None = None
    """A local file this sink writes to: logferry never follows it, even if a pattern matches it."""

    def __init__(self, url: str = "") -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """How the sink is named in messages: its URL with any secret removed."""
        return self.url

    def options(self) -> dict[str, Any]:
        """Every option of this sink with the value it uses, defaults included, as TOML values
        (durations as ``"10s"``): ``logferry config show`` prints those not given in the URL or the
        ``[[sinks]]`` table beside those given. Leave out secrets and options without a value. The
        default, ``{}``, shows only the options given."""
        return {}

    async def start(self) -> None:
        """Open connections or files. Raise to refuse to start (the run stops with the error)."""

    async def send(self, batch: Batch) -> None:
        """Deliver ``batch``; return only once it is durable at the destination, raise otherwise.

        Raising is the way to report failure: the engine retries the same batch with backoff, so
        the checkpoint never passes a batch that was not acknowledged.

        ``batch.data`` may be a view of a read buffer that is reused once every sink has returned:
        copy it (``bytes(batch.data)``) if anything must outlive this call.
        """
        raise NotImplementedError

    async def send_many(self, batches: list[Batch]) -> None:
        """Deliver several batches at once (optional); same contract as :meth:`send` for all of them.

        Implement it when one round trip for many batches is cheaper than one each (one ``write``,
        one request, one pipeline): the engine then hands over everything queued for this sink,
        in queue order (each file's batches in file order). On an exception the whole list is
        retried. The default sends one by one.
        """
        for batch in batches:
            await self.send(batch)

    async def stop(self) -> None:
        """Flush anything buffered and release resources. Must be safe to call twice."""


class ThreadedSink(Sink):
    """A sink whose I/O runs on an event loop of its own, in a thread of its own (the seed's writer
    thread). Blocking calls and CPU work there (writing files, encoding many records) delay only
    this sink: the engine's loop awaits the result. Each ``send``/``send_many`` is one thread hop.

    Subclasses implement the coroutines :meth:`open`, :meth:`write` and :meth:`close`, which run on
    the sink's thread; the base class gives ``start``/``send``/``send_many``/``stop``.
    """

    def __init__(self, url: str = "", thread_name: str = "") -> None:
        super().__init__(url)
        self._thread = LoopThread(thread_name or f"logferry-sink {url}")

    async def start(self) -> None:
        await self._thread.start()
        await self._thread.run(self.open())

    async def send(self, batch: Batch) -> None:
        await self._thread.run(self.write([batch]))

    async def send_many(self, batches: list[Batch]) -> None:
        await self._thread.run(self.write(batches))

    async def stop(self) -> None:
        if self._thread.running:
            try:
                await self._thread.run(self.close())
            finally:
                await self._thread.stop()

    # -- on the sink's own thread ----------------------------------------------

    async def open(self) -> None:
        """Open files or connections (on the sink's thread). Raise to refuse to start."""

    async def write(self, batches: list[Batch]) -> None:
        """Deliver ``batches`` in order and return once they are durable (on the sink's thread)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush and close (on the sink's thread); called once, also after a failed ``open``."""
