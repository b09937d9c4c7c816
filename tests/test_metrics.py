"""The engine's counters: what was read and shipped, per file and per sink, backlog, lag and age."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import append, lines, run_engine, wait_for
from logferry import Batch, Sink
from logferry.metrics import LagHistogram


class GateSink(Sink):
    """Holds every send until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__("gate:")
        self.gate = asyncio.Event()
        self.received: list[bytes] = []

    async def send(self, batch: Batch) -> None:
        await self.gate.wait()
        self.received.append(bytes(batch.data))


def test_a_once_run_counts_every_line_and_byte_read_and_shipped_per_file_and_per_sink(settings, tmp_path: Path) -> None:
    a, b = tmp_path / "in" / "a.log", tmp_path / "in" / "b.log"
    s = settings(once=True)
    a.write_bytes(lines("a", 3000))
    b.write_bytes(lines("b", 500) + b"unterminated")
    engine, _ = run_engine(s)
    stats = engine.stats()
    total = len(lines("a", 3000)) + len(lines("b", 500))
    assert stats["read_lines"] == 3500 and stats["read_bytes"] == total
    assert stats["acked_bytes"] == total and stats["read_batches"] >= 2
    (sink,) = stats["sinks"].values()
    assert sink["lines"] == 3500 and sink["bytes"] == total
    assert sink["backlog_batches"] == 0 and sink["backlog_bytes"] == 0
    assert stats["checkpoint_lag_bytes"] == 0 and stats["oldest_unshipped_age"] == 0.0
    assert stats["files"] == 0  # every file read to its end: none followed any more


def test_a_stalled_sink_shows_as_backlog_checkpoint_lag_and_the_age_of_the_oldest_unshipped_line(
        settings, tmp_path: Path) -> None:
    s = settings()
    log = tmp_path / "in" / "a.log"
    log.write_bytes(lines("a", 100))
    sink = GateSink()

    async def until(engine):
        await wait_for(lambda: engine.stats()["sinks"]["gate:"]["backlog_bytes"] == len(lines("a", 100)))
        await asyncio.sleep(0.3)
        held = engine.stats()
        append(log, lines("a", 50, start=100))
        await wait_for(lambda: engine.stats()["file_read_bytes"].get(str(log)) == log.stat().st_size)
        sink.gate.set()
        await wait_for(lambda: engine.stats()["checkpoint_lag_bytes"] == 0)
        await wait_for(lambda: engine.stats()["loop_lag"]["count"] >= 3)  # the probe wakes every LAG_INTERVAL
        return held, engine.stats()

    _, (held, after) = run_engine(s, until, sinks=[sink])
    assert held["oldest_unshipped_age"] >= 0.3
    assert held["checkpoint_lag_bytes"] == len(lines("a", 100)) and held["read_lines"] == 100
    assert held["files"] == 1 and held["open_files"] == 1
    assert after["sinks"]["gate:"]["lines"] == 150 and after["oldest_unshipped_age"] == 0.0
    assert after["loop_lag"]["count"] >= 3 and after["loop_lag"]["max"] < 1.0
    assert b"".join(sink.received) == log.read_bytes()


def test_the_loop_lag_histogram_reports_its_99th_percentile_by_bucket() -> None:
    lag = LagHistogram()
    for _ in range(990):
        lag.observe(0.0005)
    for _ in range(10):
        lag.observe(0.3)
    snap = lag.snapshot()
    assert snap["count"] == 1000 and snap["p99"] == 0.001 and snap["max"] == 0.3
    assert snap["buckets"][0] == (0.001, 990) and snap["buckets"][-1][1] == 1000
    lag.observe(0.3)
    assert lag.quantile(0.99) == 0.3  # the bucket's bound (0.5) is capped by the largest lag seen
