"""The connection side: redis-py asyncio clients, routing streams to their nodes, one exchange per node.

redis-py does what it does well: connecting, TLS, AUTH/HELLO, pooled connections that notice a
server restart, and for a cluster the map of slots to nodes. The sink hands it pre-encoded payloads
(see :mod:`.wire`), and :func:`exchange` reads all their replies in one pass instead of one
``read_response`` (a parser call and an asyncio timeout) per reply.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

import redis
from logferry import Batch, SinkError
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry would not await the attempt
from redis.backoff import ExponentialBackoff

from .config import RedisConfig
from .wire import Replies, xadd_payload

_MOVED_RETRIES = 2  # a resharding moved the slot: refresh the map and try the new owner
WRITE_SIZE = 1 << 20  # payload bytes handed to the socket at once: a few batches of short lines
READ_SIZE = 1 << 20  # most reply bytes taken from the connection at once

Item = tuple[bytes, Batch]
"""A batch and the stream its lines go to."""
T = TypeVar("T")


class StreamError(rex.ResponseError):
    """The first error reply to the XADDs of one batch, with the stream they were for."""

    def __init__(self, stream: bytes, error: rex.ResponseError) -> None:
        super().__init__(str(error))
        self.stream = stream


class RedisTarget:
    """The server (or cluster) the sink writes to. Used on the sink's own thread only."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._client: Redis | RedisCluster | None = None
        self._nodes: dict[tuple[str, int], Redis] = {}  # cluster mode: a plain client per master

    async def connect(self) -> None:
        """Connect (for a cluster: discover its nodes and slots) and PING; raise if it fails."""
        client = self._build()
        try:
            if isinstance(client, RedisCluster):
                await client.initialize()
            await client.ping()
        except BaseException:
            await _close(client)
            raise
        self._client = client

    async def xadd(self, items: list[Item]) -> None:
        """Append every line of every batch to its stream: one pipelined exchange per node, all
        nodes at once, each stream's entries in the order given. Raise the first error
        (a :class:`StreamError` for an error reply); what the other batches delivered stays."""
        pending = items
        for _ in range(_MOVED_RETRIES + 1):
            moved = await self._round(pending)
            if not moved:
                return
            await self.reset()  # the slot has a new owner: map the slots again
            pending = [item for item, _ in moved]
        (stream, _), error = moved[0]
        raise StreamError(stream, error)

    async def _round(self, items: list[Item]) -> list[tuple[Item, rex.ResponseError]]:
        """Send ``items`` to the nodes that own their streams; those a slot move turned away
        (MOVED), with the error. Any other error reply is raised."""
        groups = await self._by_node(items)
        errors = await _all([self._exchange(client, group) for client, group in groups.items()])
        asked: dict[tuple[str, int], list[Item]] = {}
        moved: list[tuple[Item, rex.ResponseError]] = []
        for group, group_errors in zip(groups.values(), errors, strict=True):
            for item, error in zip(group, group_errors, strict=True):
                if error is None:
                    continue
                kind, node = redirection(error)
                if kind and not self.config.cluster:
                    raise SinkError(f"{self.config.safe_url} is a node of a Redis Cluster ({kind} {node[0]}:{node[1]}):"
                                    " use a redis+cluster:// URL or cluster = true", retryable=False)
                if kind == "ASK":  # the slot is being migrated and the stream is on the importing node
                    asked.setdefault(node, []).append(item)
                elif kind == "MOVED":
                    moved.append((item, error))
                else:
                    raise StreamError(item[0], error)
        nodes = list(asked)
        errors = await _all([self._exchange(self._node(*node), asked[node], asking=True) for node in nodes])
        for node, group_errors in zip(nodes, errors, strict=True):
            for item, error in zip(asked[node], group_errors, strict=True):
                if error is not None and redirection(error)[0] == "MOVED":
                    moved.append((item, error))
                elif error is not None:
                    raise StreamError(item[0], error)
        return moved

    def _exchange(self, client: Redis, items: list[Item], asking: bool = False) -> Coroutine[Any, Any, list]:
        maxlen = self.config.maxlen
        return exchange(client, (xadd_payload(stream, batch, maxlen, asking) for stream, batch in items))

    async def _by_node(self, items: list[Item]) -> dict[Redis, list[Item]]:
        """``items`` grouped by the client of the node that owns their stream, in order."""
        client = self._client
        if client is None:
            raise rex.ConnectionError("the redis sink is not started")
        if isinstance(client, Redis):
            return {client: items}
        await client.initialize()  # a no-op once the slots are mapped
        groups: dict[Redis, list[Item]] = {}
        for stream, batch in items:
            node = client.get_node_from_key(stream)  # type: ignore[arg-type]  # bytes keys hash the same
            if node is None:
                raise rex.SlotNotCoveredError(f"no node serves stream {stream!r}")
            groups.setdefault(self._node(node.host, int(node.port)), []).append((stream, batch))
        return groups

    async def reset(self) -> None:
        """Drop every connection (a cluster also forgets its slot map) so the next use starts afresh."""
        client, nodes = self._client, list(self._nodes.values())
        self._nodes.clear()
        for node in nodes:
            await _close(node)
        if isinstance(client, RedisCluster):
            await _close(client)
            self._client = self._build()  # maps the slots again on first use
        elif client is not None:
            await _quietly(client.connection_pool.disconnect())

    async def close(self) -> None:
        client, self._client = self._client, None
        for node in self._nodes.values():
            await _close(node)
        self._nodes.clear()
        if client is not None:
            await _close(client)

    # -- routing -------------------------------------------------------------------------

    def _node(self, host: str, port: int) -> Redis:
        node = self._nodes.get((host, port))
        if node is None:
            node = self._nodes[(host, port)] = Redis(host=host, port=port, **self._options())
        return node

    # -- building ------------------------------------------------------------------------

    def _build(self) -> Redis | RedisCluster:
        config = self.config
        if config.cluster:
            nodes = [ClusterNode(host, port) for host, port in config.nodes]
            return RedisCluster(startup_nodes=nodes, **self._options())
        host, port = config.nodes[0]
        return Redis(host=host, port=port, db=config.db, **self._options())

    def _options(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {
            "username": config.username,
            "password": config.password,
            # No per-operation timeout: every call runs inside the sink's own asyncio.timeout (one
            # per send, one for start), and redis-py's would cost a task per write (wait_for).
            "socket_timeout": None,
            "socket_connect_timeout": config.timeout,
            "socket_keepalive": True,
            # For PING and cluster discovery: one quick reconnect if the connection just died.
            "retry": Retry(ExponentialBackoff(cap=0.25, base=0.05), 2),
            "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
            "client_name": "logferry",
            # RESP2: a reply is only ever an answer to a command sent, never a push (RESP3 servers
            # may push notifications at any time, which a pipeline's count of replies cannot
            # tell from answers). redis-py 8 speaks RESP3 unless told otherwise.
            "protocol": 2,
            "decode_responses": False,  # entry ids stay bytes; nothing is decoded
        }
        if config.tls:
            options.update(
                ssl=True,
                ssl_ca_certs=config.tls_ca_file,
                ssl_certfile=config.tls_cert_file,
                ssl_keyfile=config.tls_key_file,
                ssl_cert_reqs="required" if config.tls_verify else "none",  # names: redis-py 5.0 takes no enum
                ssl_check_hostname=config.tls_verify,
            )
        return options


def redirection(error: rex.ResponseError) -> tuple[str, tuple[str, int]]:
    """``("MOVED" or "ASK", (host, port))`` for a cluster redirection, else ``("", ("", 0))``."""
    words = str(error).split()
    if len(words) == 3 and words[0] in ("MOVED", "ASK") and ":" in words[2]:
        host, _, port = words[2].rpartition(":")
        return words[0], (host, int(port))
    return "", ("", 0)


async def exchange(client: Redis, commands: Iterable[tuple[bytes, int]]) -> list[rex.ResponseError | None]:
    """Write each payload (each ``(payload, number of replies)`` of ``commands``) on one pooled
    connection, then read every reply in large chunks and parse them in one pass; the first error
    reply of each payload, or None.

    Every reply is read even after an error, so the connection goes back to the pool in step. If
    anything else goes wrong (a timeout, a lost connection, a cancellation, bytes that are not RESP)
    the connection is closed instead: a half-read reply must never be taken for the next exchange's.
    """
    pool = client.connection_pool
    connection = await _get_connection(pool)
    try:
        counts = []
        for payloads in _chunks(commands, counts):
            await connection.send_packed_command(payloads)
        replies = Replies(counts)
        reader = _stream_reader(connection)
        while not replies.complete:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                raise rex.ConnectionError(f"Error while reading from {connection.host}:{connection.port}: {exc}") from exc
            if not data:
                raise rex.ConnectionError("Connection closed by server.")
            replies.feed(data)
        return replies.errors
    except BaseException:
        await _quietly(connection.disconnect(nowait=True))
        raise
    finally:
        await pool.release(connection)


def _chunks(commands: Iterable[tuple[bytes, int]], counts: list[int]) -> Iterator[list[bytes]]:
    """The payloads, a few at a time up to WRITE_SIZE (each payload is built only when its turn
    comes, so the server starts on the first while the next is encoded); ``counts`` gets their
    numbers of replies."""
    pending: list[bytes] = []
    size = 0
    for payload, count in commands:
        counts.append(count)
        pending.append(payload)
        size += len(payload)
        if size >= WRITE_SIZE:
            yield pending
            pending, size = [], 0
    if pending:
        yield pending


def _stream_reader(connection: Connection) -> asyncio.StreamReader:
    """The stream a redis-py asyncio connection reads its replies from.

    A private attribute (``_reader``, set by ``connect``, the same from redis-py 5.0 to 8.1): it is
    where the replies arrive, and redis-py's public reading is one ``read_response`` per reply. Its
    own parser has read nothing of them (the pool hands out connections with nothing buffered), and
    after the exchange nothing is left for it.
    """
    reader = getattr(connection, "_reader", None)
    if not isinstance(reader, asyncio.StreamReader):  # a redis-py that works otherwise: no retry helps
        raise SinkError(f"redis-py {redis.__version__} keeps no StreamReader on its connections: logferry-redis"
                        " was tested with redis-py 5.0 to 8.1", retryable=False)
    return reader


async def _all(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Await ``calls`` together (one exchange per node); the first failure is raised as it is and
    cancels the others."""
    if len(calls) <= 1:
        return [await call for call in calls]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


# redis-py 5.0 to 5.2 require a command name here; later versions deprecate passing one.
_NAMED = inspect.signature(ConnectionPool.get_connection).parameters["command_name"].default is inspect.Parameter.empty


async def _get_connection(pool: ConnectionPool) -> Connection:
    if _NAMED:
        return await pool.get_connection("XADD")
    return await pool.get_connection()


async def _close(client: Redis | RedisCluster) -> None:
    close = getattr(client, "aclose", None) or client.close  # aclose() since redis-py 5.0.1
    await _quietly(close())


async def _quietly(awaitable: Any) -> None:
    """Await a close or disconnect whose failure does not matter: the connection is thrown away."""
    try:
        await awaitable
    except Exception:  # noqa: BLE001, S110 - how a discarded connection fails to close does not matter
        pass
