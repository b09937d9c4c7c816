"""What a sink is: an object with async ``start``, ``send`` and ``stop``.

Sinks are objects, not a per-batch hook: the engine calls each sink inside its own error handling
and retries, so one failing sink cannot break the others (pluggy stops a hook call at the first
exception). A plugin returns a sink from the ``logferry_make_sink`` hook.
"""

from __future__ import annotations

from .batch import Batch


class Sink:
    """Base class for sinks. Subclasses implement :meth:`send`; the rest is optional.

    The engine guarantees: ``start`` is awaited once before the first ``send``; ``send`` is never
    called concurrently on one sink and receives each file's batches in file order; ``stop`` is
    awaited once at the end (also after a failed ``start``), after the last ``send`` returned.
    """

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
