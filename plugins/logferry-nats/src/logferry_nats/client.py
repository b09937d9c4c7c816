"""The connection side: a nats-py connection, the stream checked (or created), and publishing with
every PubAck counted.

nats-py does what it does well: connecting (to any server of a cluster), TLS, credentials, the
inbox subscription that receives the acknowledgements, and the JetStream API (stream info and
creation). The messages themselves are pre-encoded ``HPUB`` commands (see :mod:`.wire`) written
on its connection's transport: nats-py's ``publish`` costs a dict of headers, a subject check and
a command build per line, several times the encoding of a whole run at once.

Order under failures. A send's messages are pipelined on one connection, so the server stores them
in order; what can break the order of a file is a gap: a message refused (a stream's leader
election answers "no responders" or 503 for a while) while later ones of the same send were
already stored, so that the retry appends the refused one after them. Three rules keep that
window tiny: at most :data:`WINDOW` messages are unacknowledged at once; a send stops writing at
its first refused message or lost connection; and after a failed send, the next one writes its
first message alone and waits for its PubAck before pipelining the rest (a leader is there again).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from logferry import Batch, SinkError
from nats.aio.client import Client
from nats.aio.client import __version__ as NATS_PY_VERSION
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from .config import NatsConfig
from .errors import PubAckError
from .subjects import covers
from .wire import RUN_LINES, messages

WINDOW = 8 * RUN_LINES
"""Most messages of one send written but not yet acknowledged."""

Item = tuple[bytes, Batch]
"""A batch and the subject its lines go to."""


class _Acks:
    """The PubAcks of one send, counted as they arrive (on the sink's loop)."""

    __slots__ = ("sent", "answered", "duplicates", "failure", "_until", "_wake")

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.duplicates = 0
        self.failure: BaseException | None = None
        self._until = 0
        self._wake = asyncio.Event()

    def take(self, data: bytes, headers: dict[str, str] | None, subject: bytes) -> None:
        self.answered += 1
        if data[:10] == b'{"stream":' and b'"error":{' not in data:
            if b'"duplicate"' in data:  # '"duplicate": true' (the server writes a space)
                self.duplicates += 1  # stored before (a re-delivery): JetStream kept the first
        elif self.failure is None:
            self.fail(_refusal(data, headers, subject))
        if self.answered >= self._until:
            self._wake.set()

    def fail(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
        self._wake.set()

    async def wait(self, answered: int) -> None:
        """Until ``answered`` PubAcks arrived, or a failure."""
        while self.answered < answered and self.failure is None:
            self._until = answered
            self._wake.clear()
            await self._wake.wait()


def _refusal(data: bytes, headers: dict[str, str] | None, subject: bytes) -> PubAckError:
    if not data and headers and headers.get("Status") == "503":
        return PubAckError(subject, 503, "")  # no responders: no stream (or no leader yet) for the subject
    try:
        error = json.loads(data)["error"]
        return PubAckError(subject, int(error.get("code", 0)), str(error.get("description", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return PubAckError(subject, 0, f"unexpected answer {data[:200]!r}")


class _Client(Client):
    """nats-py's client, with the PubAcks of the sink's sends taken straight from its parser.

    nats-py hands every message to a subscription through a ``Msg`` object, a queue and a task
    (~3 µs each); the sink gets tens of thousands of PubAcks a second, so the plain ones (no
    headers: "no responders" and other statuses still go the usual way) of its inbox subscription
    skip that. ``_process_msg(sid, subject, reply, data, headers)`` and ``Subscription._id`` (its
    sid) are private, the same from nats-py 2.0 to 2.16; if the override were ever bypassed, the
    subscription's callback would still count the PubAcks, only slower.
    """

    acks_sid = -1
    take_ack: Any = None

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if sid == self.acks_sid and not headers:
            self.take_ack(subject, data)
            return
        await super()._process_msg(sid, subject, reply, data, headers)


class NatsTarget:
    """One connection to the servers, the stream ready for the subject. Used on the sink's thread only."""

    def __init__(self, config: NatsConfig, servers: list[str]) -> None:
        self.config = config
        self.servers = servers
        self.nc: _Client | None = None
        self.last_error: BaseException | None = None
        self._sends: dict[bytes, _Acks] = {}
        self._inbox = b""
        self._count = 0

    @property
    def alive(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> None:
        """Connect, subscribe to the acknowledgements and check the stream (creating it if
        missing and allowed); raise if anything fails."""
        self.last_error = None
        try:
            nc = await self._open_connection()
        except nats.errors.NoServersError:
            if self.last_error is not None:  # why each server failed says more: refused, bad credentials…
                raise self.last_error from None
            raise
        try:
            _require_transport(nc)
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox + ".*", cb=self._on_ack, pending_msgs_limit=4 * WINDOW,
                                     pending_bytes_limit=64 << 20)
            nc.take_ack, nc.acks_sid = self._take_ack, sub._id
            await self._prepare_stream(nc)
        except BaseException:
            await _close(nc)
            raise
        self.nc, self._inbox = nc, inbox.encode() + b"."

    async def _open_connection(self) -> _Client:
        config = self.config
        nc = _Client()
        await nc.connect(
            servers=self.servers,
            name="logferry",
            # No reconnecting inside nats-py: it would flush what was written for a dead connection
            # to the next one after the retry began. A lost connection fails the send; the next
            # send connects anew.
            allow_reconnect=False,
            max_reconnect_attempts=1,  # each server tried twice, then NoServersError
            reconnect_time_wait=0.05,
            connect_timeout=config.timeout,
            user=config.username,
            password=config.password,
            token=config.token,
            tls=self._tls() if config.tls else None,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnect,
            closed_cb=self._on_disconnect,
        )
        return nc

    def known_servers(self) -> list[str]:
        """The configured servers and those the cluster told about, for the next connection."""
        if self.nc is None:
            return self.servers
        discovered = [f"{'tls' if self.config.tls else 'nats'}://{uri.netloc}" for uri in self.nc.discovered_servers]
        return list(dict.fromkeys([*self.servers, *discovered]))

    async def publish(self, items: list[Item], probe: bool) -> int:
        """Publish every line of every batch, in order, and return when every PubAck arrived, with
        how many were duplicates (stored before: re-deliveries JetStream dropped); raise the first
        failure (a :class:`PubAckError`, or a lost connection). With ``probe``, the first
        message goes alone and its PubAck is awaited before the rest are written."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            raise nats.errors.ConnectionClosedError()
        self._count += 1
        token = b"%d" % self._count
        reply = self._inbox + token
        acks = self._sends[token] = _Acks()
        transport = nc._transport
        try:
            first = 1 if probe else RUN_LINES
            runs = self._runs(items, reply, nc.max_payload, first)
            for data, count in runs:
                if acks.sent - acks.answered >= WINDOW:
                    await acks.wait(acks.sent - WINDOW + RUN_LINES)
                if acks.failure is not None:
                    break
                transport.write(data)
                acks.sent += count
                await transport.drain()
                if first == 1:
                    first = 0
                    await acks.wait(acks.sent)  # the probe: is a leader there?
            await acks.wait(acks.sent)
        finally:
            del self._sends[token]
        if acks.failure is not None:
            raise acks.failure
        return acks.duplicates

    def _runs(self, items: list[Item], reply: bytes, max_payload: int, first: int) -> Iterable[tuple[bytes, int]]:
        """Every batch's runs of commands, each encoded only when its turn comes; every batch's
        sizes checked before the first byte is written."""
        json = self.config.format == "json"
        encoded = [messages(subject, reply, batch, json, max_payload, first if i == 0 else RUN_LINES)
                   for i, (subject, batch) in enumerate(items)]
        started = [(next(runs, None), runs) for runs in encoded]  # raises TooLarge before anything is sent
        for head, runs in started:
            if head is not None:
                yield head
                yield from runs

    async def close(self) -> None:
        nc, self.nc = self.nc, None
        for acks in self._sends.values():
            acks.fail(nats.errors.ConnectionClosedError())
        if nc is not None:
            await _close(nc)

    # -- callbacks (on the sink's loop) -----------------------------------------------------

    def _take_ack(self, subject: bytes, data: bytes) -> None:
        acks = self._sends.get(subject[len(self._inbox):])
        if acks is not None:  # else: the answer to a send that already failed
            acks.take(data, None, subject)

    async def _on_ack(self, msg: Msg) -> None:
        """An answer with headers: "no responders" (a status) and the like."""
        subject = msg.subject.encode()
        acks = self._sends.get(subject[len(self._inbox):])
        if acks is not None:
            acks.take(msg.data, msg.headers, subject)

    async def _on_error(self, error: Exception) -> None:
        self.last_error = error  # says more than the NoServersError that ends a failed connect

    async def _on_disconnect(self) -> None:
        for acks in self._sends.values():
            acks.fail(self.last_error or nats.errors.ConnectionClosedError())

    # -- the stream ----------------------------------------------------------------------

    async def _prepare_stream(self, nc: Client) -> None:
        config = self.config
        js = nc.jetstream(timeout=config.timeout)
        try:
            info = await js.stream_info(config.stream)
        except nats.js.errors.NotFoundError:
            if not config.create:
                raise SinkError(f"stream {config.stream!r} does not exist on {config.safe_url} (create = false):"
                                f" create it to capture {config.subject.wildcard!r}, or set create = true",
                                retryable=False) from None
            info = await self._create_stream(js)
        subjects = info.config.subjects or []
        if not any(covers(pattern, config.subject.wildcard) for pattern in subjects):
            raise SinkError(f"stream {config.stream!r} captures {', '.join(subjects) or 'no subject'}, not"
                            f" {config.subject.wildcard!r}: add it to the stream's subjects or change 'subject'",
                            retryable=False)

    async def _create_stream(self, js: Any) -> Any:
        config = self.config
        stream = StreamConfig(name=config.stream, subjects=[config.subject.wildcard], num_replicas=config.replicas,
                              duplicate_window=config.duplicate_window,
                              storage=StorageType.MEMORY if config.storage == "memory" else StorageType.FILE)
        try:
            return await js.add_stream(stream)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == 10058:  # created meanwhile, by another logferry: use it
                return await js.stream_info(config.stream)
            raise SinkError(f"creating stream {config.stream!r}: {exc.description} (err_code {exc.err_code})",
                            retryable=False) from None

    def _tls(self) -> ssl.SSLContext:
        config = self.config
        context = ssl.create_default_context(cafile=config.tls_ca_file)
        if config.tls_cert_file:
            context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
        if not config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _require_transport(nc: Client) -> None:
    """The sink writes its commands on nats-py's transport (a private attribute, ``_transport``,
    the same from nats-py 2.6 to 2.16): fail clearly on a version that works otherwise."""
    transport = getattr(nc, "_transport", None)
    if not (callable(getattr(transport, "write", None)) and callable(getattr(transport, "drain", None))):
        raise SinkError(f"nats-py {NATS_PY_VERSION} has no writable transport on its connections: logferry-nats"
                        " was tested with nats-py 2.6 to 2.16", retryable=False)


async def _close(nc: Client) -> None:
    try:
        await nc.close()
    except Exception:  # noqa: BLE001, S110 - how a discarded connection fails to close does not matter
        pass
