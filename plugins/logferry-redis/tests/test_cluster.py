"""Redis Cluster: templated streams spread over three masters, every line checked by XRANGE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from logferry import SinkError
from redis.crc import key_slot

from .conftest import cluster_entries, count_exchanges, make_batch, make_sink, run_debug, ship
from .servers import RedisClusterNodes


def stems_on_every_node(nodes: RedisClusterNodes, prefix: str, per_node: int = 2) -> dict[str, int]:
    """File stems whose stream ``prefix:{stem}`` hashes to each master, ``per_node`` of them each."""
    chosen: dict[str, int] = {}
    counts = dict.fromkeys(nodes.ports, 0)
    i = 0
    while min(counts.values()) < per_node:
        stem = f"app{i}"
        port = nodes.port_of_slot(key_slot(f"{prefix}:{stem}".encode()))
        if counts[port] < per_node:
            counts[port] += 1
            chosen[stem] = port
        i += 1
    return chosen


def test_templated_streams_on_three_nodes_receive_every_line_in_order(redis_cluster: RedisClusterNodes) -> None:
    stems = stems_on_every_node(redis_cluster, "sink")
    assert len(set(stems.values())) == 3
    seed_nodes = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports[:2])
    sink = make_sink(f"redis+cluster://{seed_nodes}?stream=sink:{{stem}}")
    expected: dict[str, list[bytes]] = {stem: [] for stem in stems}

    async def main() -> None:
        await sink.start()
        try:
            offsets = dict.fromkeys(stems, 0)
            for round_ in range(5):  # interleaved batches, as the engine sends them
                for stem in stems:
                    lines = [f"{stem} {round_} {n} \xff".encode("latin-1") for n in range(40)]
                    batch = make_batch(lines, path=f"/in/{stem}.log", offset=offsets[stem], file_id=stem)
                    await sink.send(batch)
                    offsets[stem] = batch.end
                    expected[stem].extend(lines)
        finally:
            await sink.stop()

    run_debug(main)
    for stem, lines in expected.items():
        got = cluster_entries(redis_cluster, f"sink:{stem}")
        assert [e[b"line"] for e in got] == lines, stem
        assert {e[b"path"] for e in got} == {f"/in/{stem}.log".encode()}


def test_the_cli_ships_once_to_the_cluster_and_a_second_run_ships_nothing(
    redis_cluster: RedisClusterNodes, tmp_path: Path
) -> None:
    stems = stems_on_every_node(redis_cluster, "cli", per_node=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = {}
    for stem in stems:
        expected[stem] = [f"{stem} line {n}".encode() for n in range(3000)]
        (logs / f"{stem}.log").write_bytes(b"".join(line + b"\n" for line in expected[stem]))
    command = [sys.executable, "-m", "logferry", "run", str(logs / "*.log"), "--once",
               "--sink", f"{redis_cluster.url}?stream=cli:{{stem}}", "--state-dir", str(tmp_path / "state")]

    first = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert first.returncode == 0, first.stderr
    for stem, lines in expected.items():
        assert [e[b"line"] for e in cluster_entries(redis_cluster, f"cli:{stem}")] == lines, stem

    second = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert second.returncode == 0, second.stderr
    for stem, lines in expected.items():
        assert len(cluster_entries(redis_cluster, f"cli:{stem}")) == len(lines), "the second run shipped again"



def test_a_send_of_many_files_is_one_exchange_per_node_and_keeps_each_stream_in_order(
    redis_cluster: RedisClusterNodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    stems = stems_on_every_node(redis_cluster, "many")
    exchanges = count_exchanges(monkeypatch)
    batches, expected = [], {stem: [] for stem in stems}
    for round_ in range(3):
        for stem in stems:
            lines = [f"{stem} {round_} {n}".encode() for n in range(500)]
            batches.append(make_batch(lines, path=f"/in/{stem}.log", offset=round_ * 100_000, file_id=stem))
            expected[stem] += lines
    ship(f"{redis_cluster.url}?stream=many:{{stem}}", *batches, together=True)
    assert sorted(exchanges) == [6, 6, 6]  # three masters, two files each, three batches a file
    for stem, lines in expected.items():
        assert [e[b"line"] for e in cluster_entries(redis_cluster, f"many:{stem}")] == lines, stem


def test_a_resharded_slot_is_followed_moved_and_ask(redis_cluster: RedisClusterNodes) -> None:
    """A slot handed to another master (MOVED) and one being migrated (ASK) while the sink runs,
    each alone in a send and in a send with batches of streams that did not move."""
    moved, asked = b"reshard:moved", b"reshard:asked"
    steady = [make_batch([b"s%d" % n], path="/in/steady.log", offset=n * 3) for n in range(4)]

    def another_master(stream: bytes) -> int:
        owner = redis_cluster.port_of_slot(key_slot(stream))
        return next(p for p in redis_cluster.ports if p != owner)

    moved_to, asked_to = another_master(moved), another_master(asked)
    sink = make_sink(f"{redis_cluster.url}?stream=reshard:{{stem}}")

    async def main() -> None:
        await sink.start()  # the slot map is read here, before the slots move
        try:
            redis_cluster.move_slot(key_slot(moved), moved_to)
            await sink.send(make_batch([b"m1", b"m2"], path="/in/moved.log"))
            await sink.send_many([steady[0], make_batch([b"m3"], path="/in/moved.log", offset=6), steady[1]])
            redis_cluster.move_slot(key_slot(asked), asked_to, stage="migrating")
            await sink.send(make_batch([b"a1", b"a2"], path="/in/asked.log"))
            await sink.send_many([steady[2], make_batch([b"a3"], path="/in/asked.log", offset=6), steady[3]])
        finally:
            await sink.stop()

    run_debug(main)
    assert [e[b"line"] for e in cluster_entries(redis_cluster, moved)] == [b"m1", b"m2", b"m3"]
    assert [e[b"line"] for e in cluster_entries(redis_cluster, b"reshard:steady")] == [b"s0", b"s1", b"s2", b"s3"]
    # ASK sent the new stream to the importing node; finish the migration there to read it back.
    redis_cluster.move_slot(key_slot(asked), asked_to)
    assert [e[b"line"] for e in cluster_entries(redis_cluster, asked)] == [b"a1", b"a2", b"a3"]


def test_a_plain_url_to_a_cluster_node_says_to_use_cluster_mode(redis_cluster: RedisClusterNodes) -> None:
    stream = b"plain:to-cluster"
    owner = redis_cluster.port_of_slot(key_slot(stream))
    other = next(p for p in redis_cluster.ports if p != owner)
    with pytest.raises(SinkError, match="redis\\+cluster://") as caught:
        ship_one(f"redis://127.0.0.1:{other}/0?stream=plain:to-cluster")
    assert caught.value.retryable is False


def ship_one(url: str) -> None:
    sink = make_sink(url)

    async def main() -> None:
        await sink.start()
        try:
            await sink.send(make_batch([b"x"]))
        finally:
            await sink.stop()

    run_debug(main)
