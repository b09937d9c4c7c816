"""Fixtures: a real redis-server per test, a real 3-node Redis Cluster per module, and helpers to
read what reached a stream, batches, and sinks made through the plugin's hook."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from logferry import Batch, Settings
from logferry.plugins import PluginHost, get_plugin_manager
from logferry.testing import run_without_blocking as run_debug  # noqa: F401 - for the tests

from logferry_redis import client

from .servers import REDIS_CLI, REDIS_SERVER, RedisClusterNodes, RedisServer

pytest_plugins = ["logferry.testing"]  # the sink contract every logferry sink passes

NO_SERVER = "redis-server not found on PATH (apt-get install redis-server); these tests need a real server"


def skip_without_redis_server() -> None:
    """Skip the calling test, saying why, when there is no redis-server to start."""
    if not REDIS_SERVER:
        pytest.skip(NO_SERVER)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port, AOF fsynced always, data in tmp_path."""
    skip_without_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A 3-master Redis Cluster on 127.0.0.1, shared by the tests of a module (use distinct streams)."""
    if not REDIS_SERVER or not REDIS_CLI:
        pytest.skip(NO_SERVER.replace("redis-server", "redis-server or redis-cli"))
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def entries(port: int, stream: str | bytes) -> list[dict[bytes, bytes]]:
    """Every entry of ``stream`` on the server at ``port``, oldest first (fields as bytes)."""
    with redis.Redis(port=port) as client:
        return [fields for _, fields in client.xrange(stream)]


def cluster_entries(nodes: RedisClusterNodes, stream: str | bytes) -> list[dict[bytes, bytes]]:
    with redis.RedisCluster(host="127.0.0.1", port=nodes.ports[0]) as client:
        return [fields for _, fields in client.xrange(stream)]


def make_batch(lines: list[bytes], path: str = "/var/log/app.log", offset: int = 0, file_id: str = "f1") -> Batch:
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path, file_id, offset, offset + len(data), data)


@functools.cache
def _host() -> PluginHost:
    # Loading entry points takes milliseconds: done once, not in each test's event loop.
    return get_plugin_manager(allowed={"logferry-redis"}, blocked=set())


def make_sink(url: str, **options: Any):  # -> RedisSink
    """Build a sink through the plugin's hook, exactly as the engine does."""
    return _host().make_sink(url, options, Settings())


def ship(url: str, *batches: Batch, together: bool = False, **options: Any) -> None:
    """Start a sink, send the batches in order (``together``: in one ``send_many``), stop it: all
    in asyncio debug mode."""
    sink = make_sink(url, **options)

    async def main() -> None:
        await sink.start()
        try:
            if together:
                await sink.send_many(list(batches))
            else:
                for batch in batches:
                    await sink.send(batch)
        finally:
            await sink.stop()

    run_debug(main)


def count_exchanges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of payloads of each exchange the sink makes from now on."""
    sizes: list[int] = []
    real = client.exchange

    async def counting(redis_client, commands):
        commands = list(commands)
        sizes.append(len(commands))
        return await real(redis_client, commands)

    monkeypatch.setattr(client, "exchange", counting)
    return sizes
