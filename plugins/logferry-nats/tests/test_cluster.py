"""A 3-node JetStream cluster and an R3 stream: the stream's leader is killed while logferry ships
and comes back; every line is in the stream once, in order per file."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import nats

from .conftest import make_batch, messages, ship
from .live import Writers, logferry, per_file, wait_until
from .servers import NatsCluster


def stream_leader(cluster: NatsCluster, stream: str) -> str:
    async def ask() -> str:
        nc = await nats.connect([s.url for s in cluster.servers if s.proc is not None])
        try:
            info = await nc.jetstream(timeout=5).stream_info(stream)
            return info.cluster.leader if info.cluster else ""
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_an_r3_stream_is_created_on_the_cluster_and_templated_subjects_arrive_in_order(
    nats_cluster: NatsCluster,
) -> None:
    batches = [make_batch([f"{stem} {r} {i}".encode() for i in range(300)], path=f"/in/{stem}.log",
                          offset=r * 10_000, file_id=stem) for r in range(3) for stem in ("app", "web", "db")]
    ship(f"{nats_cluster.url}?stream=r3&subject=r3.{{stem}}&replicas=3", *batches, together=True)
    got = messages(nats_cluster.url, "r3")
    for stem in ("app", "web", "db"):
        assert [m.data for m in got if m.subject == f"r3.{stem}"] == [
            f"{stem} {r} {i}".encode() for r in range(3) for i in range(300)]
    assert stream_leader(nats_cluster, "r3")


def test_the_streams_leader_killed_mid_run_and_back_loses_no_line_and_doubles_none(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    sink = f"{nats_cluster.url}?stream=lk&subject=lk.{{stem}}&replicas=3&timeout=5"
    writers = Writers(logs, ["a.log", "b.log", "c.log"]).start()
    daemon = logferry(str(logs / "*.log"), "--sink", sink, "--state-dir", str(state), "--poll-interval", "0.05")
    try:
        wait_until(lambda: stored(nats_cluster, "lk") > 2000, 60, "the first lines", daemon)
        leader = nats_cluster.by_name(stream_leader(nats_cluster, "lk"))
        leader.stop(signal.SIGKILL)
        before = stored(nats_cluster, "lk")
        wait_until(lambda: stored(nats_cluster, "lk") > before + 2000, 60, "lines after the leader's death", daemon)
        leader.start()
        time.sleep(1)
    finally:
        writers.stop()
    expected = writers.expected()
    wait_until(lambda: per_file(nats_cluster.url, "lk")[0] == expected, 90, "every line in the stream", daemon)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    got, repeated = per_file(nats_cluster.url, "lk")
    assert got == expected  # every line, in order per file
    assert repeated == 0  # re-deliveries were dropped by their Nats-Msg-Id
    assert all(len(lines) > 1000 for lines in expected.values())


def stored(cluster: NatsCluster, stream: str) -> int:
    async def ask() -> int:
        nc = await nats.connect([s.url for s in cluster.servers if s.proc is not None])
        try:
            return (await nc.jetstream(timeout=5).stream_info(stream)).state.messages
        except (nats.js.errors.NotFoundError, nats.errors.Error):
            return 0
        finally:
            await nc.close()

    return asyncio.run(ask())
