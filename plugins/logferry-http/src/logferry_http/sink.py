"""The HTTP sink: one POST per batch, acknowledged only by a 2xx the format accepts.

Failures that may pass (connection refused or dropped, timeouts, 5xx, 429, 408) are retried here
``retries`` times with backoff, then raised as a retryable :class:`logferry.SinkError` so the
engine keeps retrying the same batch with its own backoff; failures that cannot pass (other 4xx, a
redirect, a TLS certificate refused) are raised with ``retryable=False`` and stop the run, since
sending the same bytes again would only get the same answer.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from logferry import Batch, Sink, SinkError

from . import __version__
from .formats import (
    CONTENT_TYPES,
    LokiClock,
    bulk_outcome,
    encode_es_bulk,
    encode_loki,
    encode_ndjson,
    loki_ignored,
    loki_stream,
)
from .options import HttpConfig, redact_url
from .retry import backoff, retry_after, retryable_status

log = logging.getLogger("logferry.http")
T = TypeVar("T")

OFF_LOOP_BYTES = 64 * 1024
"""Batches (and responses) larger than this are encoded, compressed or parsed on a worker thread:
JSON-encoding or gzipping a megabyte takes long enough to stall the event loop."""
GZIP_LEVEL = 6  # zlib's default trade-off: level 9 costs far more CPU for a few percent
SNIPPET = 200


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


class HttpSink(Sink):
    """POSTs each batch to ``config.endpoint`` as NDJSON, an Elasticsearch ``_bulk`` body or a Loki push."""

    def __init__(self, url: str, config: HttpConfig, host: str | None = None) -> None:
        super().__init__(url)
        self.config = config
        self.host = host or socket.gethostname()
        self.stats = HttpStats()
        self._session: aiohttp.ClientSession | None = None
        self._clock = LokiClock()

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
        """POST ``batch`` once (retrying what may pass); return only after the destination accepted it."""
        if self._session is None:
            raise SinkError(f"sink {self.describe()} was not started", retryable=False)
        body = await self._off_loop_if_large(len(batch.data), self._body_builder(batch))
        attempt = 0
        while True:
            try:
                await self._post(body)
                return
            except _Retry as exc:
                attempt += 1
                if attempt > self.config.retries:
                    # Requests, not attempts: the engine counts its own attempts, each one this many requests.
                    raise SinkError(f"{exc} ({attempt} request{'' if attempt == 1 else 's'})") from None
                wait = exc.wait if exc.wait is not None else backoff(attempt, self.config.max_backoff)
                self.stats.retries += 1
                log.debug("sink %s: %s; retry %d in %.2fs", self.describe(), exc, attempt, wait)
                await asyncio.sleep(wait)

    # -- one batch ---------------------------------------------------------

    def _body_builder(self, batch: Batch) -> Callable[[], bytes]:
        """A function returning the request body; the Loki clock is read here, on the loop."""
        cfg = self.config
        if cfg.format == "loki":
            stream = loki_stream(batch, self.host, cfg.labels)
            first_ns = self._clock.first_ns(stream, batch, bytes(batch.data).count(b"\n"))

            def build() -> bytes:
                return encode_loki(batch, stream, first_ns)
        elif cfg.format == "es-bulk":
            def build() -> bytes:
                return encode_es_bulk(batch, self.host, cfg.index, cfg.action)
        else:
            def build() -> bytes:
                return encode_ndjson(batch, self.host)

        if not cfg.gzip:
            return build
        return lambda: gzip.compress(build(), compresslevel=GZIP_LEVEL)

    async def _off_loop_if_large(self, size: int, work: Callable[[], T]) -> T:
        """Run ``work`` on a worker thread when ``size`` says it may take long, else right here."""
        return await asyncio.to_thread(work) if size > OFF_LOOP_BYTES else work()

    async def _post(self, body: bytes) -> None:
        """One request; returns on acceptance, raises ``_Retry`` or a final SinkError otherwise."""
        assert self._session is not None
        headers = {"Content-Type": CONTENT_TYPES[self.config.format]}
        if self.config.gzip:
            headers["Content-Encoding"] = "gzip"
        self.stats.requests += 1
        try:
            async with self._session.post(
                self.config.endpoint, data=body, headers=headers, allow_redirects=False
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
            await self._accepted(payload)
            return
        text = _snippet(payload)
        if self.config.format == "loki" and status == 400:
            full = payload.decode("utf-8", "replace")
            if (ignored := loki_ignored(full)) is not None:  # the summary ends a long message
                self._reject(ignored, text)
                return
        if retryable_status(status):
            raise _Retry(f"HTTP {status} {reason}: {text}".rstrip(": "), wait)
        if 300 <= status < 400:
            raise SinkError(f"HTTP {status} {reason}: redirected to {location!r}; use that URL", retryable=False)
        raise SinkError(f"HTTP {status} {reason}: {text}".rstrip(": "), retryable=False)

    async def _accepted(self, payload: bytes) -> None:
        """A 2xx: done, except that an Elasticsearch ``_bulk`` answer lists the fate of each document."""
        if self.config.format != "es-bulk":
            return
        try:
            outcome = await self._off_loop_if_large(len(payload), lambda: bulk_outcome(payload))
        except ValueError as exc:
            raise SinkError(f"unexpected answer to a _bulk request: {exc}", retryable=False) from None
        if outcome.retryable:  # documents carry _id = line id: sending the batch again is idempotent
            raise _Retry(f"{outcome.retryable} documents refused for now ({outcome.reason})")
        if outcome.rejected:
            self._reject(outcome.rejected, outcome.reason)

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
