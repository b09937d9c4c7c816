"""The connection side: redis-py asyncio clients, routing a stream to its node, one exchange per batch.

redis-py does what it does well: connecting, TLS, AUTH/HELLO, pooled connections that notice a
server restart, reply parsing, and for a cluster the map of slots to nodes. The sink hands it one
pre-encoded payload per batch (see :mod:`.wire`) and reads one reply per command.
"""

from __future__ import annotations

import inspect
from typing import Any

from logferry import Batch, SinkError
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, ConnectionPool
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry would not await the attempt
from redis.backoff import ExponentialBackoff

from .config import RedisConfig
from .wire import xadd_payload

_MOVED_RETRIES = 2  # a resharding moved the slot: refresh the map and try the new owner


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

    async def xadd(self, stream: bytes, batch: Batch) -> None:
        """Append every line of ``batch`` to ``stream`` in one round trip; raise the first error."""
        maxlen = self.config.maxlen
        payload, replies = xadd_payload(stream, batch, maxlen)
        for _ in range(_MOVED_RETRIES + 1):
            error = await exchange(await self._client_for(stream), payload, replies)
            kind, node = redirection(error)
            if kind and not self.config.cluster:
                raise SinkError(f"{self.config.safe_url} is a node of a Redis Cluster ({kind} {node[0]}:{node[1]}):"
                                " use a redis+cluster:// URL or cluster = true", retryable=False)
            if kind == "ASK":  # the slot is being migrated and the stream is on the importing node
                asking, asking_replies = xadd_payload(stream, batch, maxlen, asking=True)
                error = await exchange(self._node(*node), asking, asking_replies)
                kind, node = redirection(error)
            if kind != "MOVED":
                break
            await self.reset()  # the slot has a new owner: map the slots again
        if error is not None:
            raise error

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

    async def _client_for(self, stream: bytes) -> Redis:
        client = self._client
        if client is None:
            raise rex.ConnectionError("the redis sink is not started")
        if isinstance(client, Redis):
            return client
        await client.initialize()  # a no-op once the slots are mapped
        node = client.get_node_from_key(stream)  # type: ignore[arg-type]  # bytes keys hash the same
        if node is None:
            raise rex.SlotNotCoveredError(f"no node serves stream {stream!r}")
        return self._node(node.host, int(node.port))

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
            "socket_timeout": config.timeout,
            "socket_connect_timeout": config.timeout,
            "socket_keepalive": True,
            # For PING and cluster discovery: one quick reconnect if the connection just died.
            "retry": Retry(ExponentialBackoff(cap=0.25, base=0.05), 2),
            "retry_on_error": [rex.ConnectionError, rex.TimeoutError],
            "client_name": "logferry",
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


def redirection(error: Exception | None) -> tuple[str, tuple[str, int]]:
    """``("MOVED" or "ASK", (host, port))`` for a cluster redirection, else ``("", ("", 0))``.

    Parsed from the text too: redis-py before 5.1 reports them as plain ResponseErrors on a
    connection of its own (not a cluster client's), and later versions strip the code from the text.
    """
    if isinstance(error, rex.AskError):  # MovedError is an AskError
        return ("MOVED" if isinstance(error, rex.MovedError) else "ASK"), (error.host, int(error.port))
    words = str(error).split() if isinstance(error, rex.ResponseError) else []
    if len(words) == 3 and words[0] in ("MOVED", "ASK") and ":" in words[2]:
        host, _, port = words[2].rpartition(":")
        return words[0], (host, int(port))
    return "", ("", 0)


async def exchange(client: Redis, payload: bytes, replies: int) -> rex.ResponseError | None:
    """Write ``payload`` on one pooled connection and read its ``replies``; the first error reply.

    Every reply is read even after an error, so the connection goes back to the pool in step. If
    anything else goes wrong (a timeout, a lost connection, a cancellation) the connection is closed
    instead: a half-read reply must never be taken for the next batch's.
    """
    pool = client.connection_pool
    connection = await _get_connection(pool)
    try:
        await connection.send_packed_command(payload)
        first: rex.ResponseError | None = None
        for _ in range(replies):
            try:
                await connection.read_response()
            except rex.ResponseError as error:
                first = first or error
        return first
    except BaseException:
        await _quietly(connection.disconnect(nowait=True))
        raise
    finally:
        await pool.release(connection)


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
