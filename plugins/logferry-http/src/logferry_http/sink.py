"""The HTTP sink: one POST for everything the engine hands over at once, acknowledged only by a 2xx
the format accepts.

Failures that may pass (connection refused or dropped, timeouts, 5xx, 429, 408) are retried here
``retries`` times with backoff, then raised as a retryable :class:`logferry.SinkError` so the
engine keeps retrying the same batches with its own backoff; failures that cannot pass (other 4xx, a
redirect, a TLS certificate refused) are raised with ``retryable=False`` and stop the run, since
sending the same bytes again would only get the same answer. Elasticsearch documents refused for now
(429, 5xx items) are sent again alone, the others of the request being stored already.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import aiohttp.payload
from aiohttp.abc import AbstractStreamWriter
from logferry import Batch, Sink, SinkError

from . import __version__
from .formats import (
    CONTENT_TYPES,
    BulkOutcome,
    LokiClock,
    bulk_outcome,
    bulk_stored_all,
    encode_es_bulk,
    encode_ndjson,
    es_bulk_documents,
    loki_bodies,
    loki_ignored,
    loki_stream,
    request_bodies,
)
from .options import HttpConfig, redact_url
from .retry import backoff, retry_after, retryable_status

log = logging.getLogger("logferry.http")
T = TypeVar("T")
Chunks = Sequence[bytes | memoryview]
"""A request body as consecutive buffers (see :func:`logferry.json_chunks`)."""

OFF_LOOP_BYTES = 64 * 1024
"""Requests (and responses) larger than this are encoded, compressed or parsed on a worker thread:
JSON-encoding or gzipping a megabyte takes long enough to stall the event loop."""
GZIP_LEVEL = 6  # zlib's default trade-off: level 9 costs far more CPU for a few percent
SNIPPET = 200
LINES_PER_BODY_BYTE = 0.4
"""The share of ``max_body_bytes`` asked of the engine as lines: a 100-byte line becomes a 220-byte
NDJSON record (250 in ``_bulk``), so a call's body is about the limit; a longer body is cut."""


@dataclass
class HttpStats:
    """Counters of one sink, for tests and embedding programs."""

    requests: int = 0
    retries: int = 0
    rejected: int = 0
    """Lines the destination refused for good (Elasticsearch item errors, Loki ignored entries)."""


class _Retry(Exception):
    """An attempt failed in a way a later attempt may not: wait (``wait`` or backoff) and try again."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class _ChunkedBody(aiohttp.payload.Payload):
    """A request body given as chunks, written one after the other (with a Content-Length, not HTTP's
    chunked encoding). The body is never one buffer of its own size, whose fresh pages cost more CPU
    than encoding it did; and aiohttp joins only the first chunk to the headers (on Python < 3.12.9
    it copies the whole body there when given one buffer)."""

    def __init__(self, chunks: Chunks, content_type: str) -> None:
        super().__init__(chunks, content_type=content_type)
        self._size = sum(map(len, chunks))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        for chunk in self._value:
            await writer.write(chunk)  # waits while the socket's buffer is full

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await self.write(writer)  # aiohttp >= 3.12; the length is the size given


@dataclass(frozen=True)
class _Body:
    """One request body: ``raw`` as encoded, ``wire`` as sent (gzipped when asked)."""

    raw: Chunks
    wire: Chunks


class HttpSink(Sink):
    """POSTs batches to ``config.endpoint`` as NDJSON, an Elasticsearch ``_bulk`` body or a Loki push.

    ``send_many`` makes one request of all the batches it gets, from any number of files; bodies over
    ``max_body_bytes`` are cut into several requests, sent one after the other (in file order).
    """

    def __init__(self, url: str, config: HttpConfig, host: str | None = None) -> None:
        super().__init__(url)
        self.config = config
        self.host = host or socket.gethostname()
        self.stats = HttpStats()
        self.max_bytes_per_send = max(1, int(config.max_body_bytes * LINES_PER_BODY_BYTE))
        self.max_sends_in_flight = config.concurrency
        self.send_interval = config.send_interval
        self._session: aiohttp.ClientSession | None = None
        self._clock = LokiClock()
        self._record_start = b'\n{"%s":{' % config.action.encode()
        """What follows the end of one ``_bulk`` document: the next one's action line."""

    def describe(self) -> str:
        """The URL with its userinfo and any header or pass-through query values masked."""
        return redact_url(self.url)

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included (``logferry config show``)."""
        return self.config.options()

    async def start(self) -> None:
        """Open the client session (its connection pool); nothing is connected until the first send."""
        if self._session is not None:
            return
        tls = await asyncio.to_thread(self._tls)  # loading CA certificates reads files: off the loop
        headers = {"User-Agent": f"logferry-http/{__version__}", **self.config.headers}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers=headers,
        )

    async def stop(self) -> None:
        """Close the session; safe to call twice and without ``start``."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, batch: Batch) -> None:
        """POST ``batch`` (retrying what may pass); return only after the destination accepted it."""
        await self.send_many([batch])

    async def send_many(self, batches: list[Batch]) -> None:
        """POST ``batches`` in one request (several if the body is over ``max_body_bytes``), retrying
        what may pass; return only after the destination accepted every line."""
        if self._session is None:
            raise SinkError(f"sink {self.describe()} was not started", retryable=False)
        batches = [batch for batch in batches if batch.data]
        if not batches:
            return
        size = sum(len(batch.data) for batch in batches)
        for body in await self._off_loop_if_large(size, self._bodies_builder(batches)):
            await self._deliver(body)

    # -- building bodies -----------------------------------------------------

    def _bodies_builder(self, batches: Sequence[Batch]) -> Callable[[], list[_Body]]:
        """A function returning the request bodies; the Loki clock is read here, on the loop."""
        cfg = self.config
        if cfg.format == "loki":
            stamped = [(loki_stream(batch, self.host, cfg.labels), batch) for batch in batches]
            stamped_ns = [(stream, batch, self._clock.first_ns(stream, batch, batch.line_count()))
                          for stream, batch in stamped]
            return lambda: [self._wire(raw) for raw in loki_bodies(stamped_ns, cfg.max_body_bytes,
                                                                    cfg.structured_metadata)]
        if cfg.format == "es-bulk":
            def build() -> list[_Body]:
                chunks = encode_es_bulk(batches, self.host, cfg.index, cfg.action)
                return [self._wire(raw) for raw in request_bodies(chunks, cfg.max_body_bytes, self._record_start)]
        else:
            def build() -> list[_Body]:
                chunks = encode_ndjson(batches, self.host)
                return [self._wire(raw) for raw in request_bodies(chunks, cfg.max_body_bytes, b"\n")]
        return build

    def _wire(self, raw: Chunks) -> _Body:
        if not self.config.gzip:
            return _Body(raw, raw)
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
        wire = [compressor.compress(chunk) for chunk in raw]
        wire.append(compressor.flush())
        return _Body(raw, [chunk for chunk in wire if chunk])

    async def _off_loop_if_large(self, size: int, work: Callable[[], T]) -> T:
        """Run ``work`` on a worker thread when ``size`` says it may take long, else right here."""
        return await asyncio.to_thread(work) if size > OFF_LOOP_BYTES else work()

    # -- one request -----------------------------------------------------------

    async def _deliver(self, body: _Body) -> None:
        """POST ``body`` until it is accepted, the ``_bulk`` documents refused for now alone again."""
        attempt = 0
        while True:
            try:
                outcome = await self._post(body.wire)
            except _Retry as exc:
                attempt = await self._wait_to_retry(attempt, exc)
                continue
            if outcome.rejected:
                self._reject(outcome.rejected, outcome.reason)
            if not outcome.retry:
                return
            raw = b"".join(body.raw)
            documents = raw.count(b"\n") // 2
            if outcome.items != documents:  # positions would name the wrong documents
                raise SinkError(f"unexpected answer to a _bulk request: {outcome.items} items for "
                                f"{documents} documents", retryable=False)
            retry = outcome.retry  # documents carry _id = line id: sending them again is idempotent
            body = await self._off_loop_if_large(len(raw), lambda: self._wire([es_bulk_documents(raw, retry)]))
            attempt = await self._wait_to_retry(
                attempt, _Retry(f"{len(retry)} documents refused for now ({outcome.reason})"))

    async def _wait_to_retry(self, attempt: int, exc: _Retry) -> int:
        """Wait before retry number ``attempt + 1`` and return that number; raise when none is left."""
        attempt += 1
        if attempt > self.config.retries:
            # Requests, not attempts: the engine counts its own attempts, each one this many requests.
            raise SinkError(f"{exc} ({attempt} request{'' if attempt == 1 else 's'})") from None
        wait = exc.wait if exc.wait is not None else backoff(attempt, self.config.max_backoff)
        self.stats.retries += 1
        log.debug("sink %s: %s; retry %d in %.2fs", self.describe(), exc, attempt, wait)
        await asyncio.sleep(wait)
        return attempt

    async def _post(self, body: Chunks) -> BulkOutcome:
        """One request; returns on acceptance (with the fate of each document for ``_bulk``), raises
        ``_Retry`` or a final SinkError otherwise."""
        assert self._session is not None
        content_type = CONTENT_TYPES[self.config.format]
        headers = {"Content-Type": content_type}
        if self.config.gzip:
            headers["Content-Encoding"] = "gzip"
        self.stats.requests += 1
        try:
            async with self._session.post(
                self.config.endpoint, data=_ChunkedBody(body, content_type), headers=headers, allow_redirects=False
            ) as response:
                payload = await response.read()
                status, reason = response.status, response.reason or ""
                wait = retry_after(response.headers.get("Retry-After"), self.config.max_backoff)
                location = response.headers.get("Location", "")
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError) as exc:
            raise SinkError(f"TLS handshake with {self.describe()} failed: {exc}", retryable=False) from None
        except TimeoutError:
            raise _Retry(f"no answer within {self.config.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return await self._accepted(payload)
        text = _snippet(payload)
        if self.config.format == "loki" and status == 400:
            full = payload.decode("utf-8", "replace")
            if (ignored := loki_ignored(full)) is not None:  # the summary ends a long message
                return BulkOutcome(rejected=ignored, reason=text)
        if retryable_status(status):
            raise _Retry(f"HTTP {status} {reason}: {text}".rstrip(": "), wait)
        if 300 <= status < 400:
            raise SinkError(f"HTTP {status} {reason}: redirected to {location!r}; use that URL", retryable=False)
        raise SinkError(f"HTTP {status} {reason}: {text}".rstrip(": "), retryable=False)

    async def _accepted(self, payload: bytes) -> BulkOutcome:
        """A 2xx: done, except that an Elasticsearch ``_bulk`` answer lists the fate of each document."""
        if self.config.format != "es-bulk" or bulk_stored_all(payload):
            return BulkOutcome()
        try:
            return await self._off_loop_if_large(len(payload), lambda: bulk_outcome(payload))
        except ValueError as exc:
            raise SinkError(f"unexpected answer to a _bulk request: {exc}", retryable=False) from None

    def _reject(self, count: int, reason: str) -> None:
        self.stats.rejected += count
        log.warning("sink %s refused %d lines for good (not retried): %s", self.describe(), count, reason)

    def _tls(self) -> ssl.SSLContext | bool:
        """The TLS settings: verification on by default, against ``ca_file`` alone when given."""
        if not self.config.endpoint.startswith("https:"):
            return True  # aiohttp's default; unused for plain http
        if not self.config.verify:
            return False
        return ssl.create_default_context(cafile=self.config.ca_file)


def _snippet(payload: bytes) -> str:
    """The start of a response body, on one line, for error messages."""
    return " ".join(payload[:SNIPPET].decode("utf-8", "replace").split())
