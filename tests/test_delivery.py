"""Delivery: coalescing up to the sink's limits, several calls in flight, acknowledgement in order.

The pipeline is driven directly with sinks that hold each call until the test lets it go, so "a
later call finishes first" is made to happen rather than hoped for; the engine test at the end runs
the same mechanisms over real files with calls that finish in random order.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import logferry
from logferry.delivery.budget import Budget
from logferry.delivery.pipeline import Pipeline
from logferry.engine import Engine
from logferry.errors import SinkError
from logferry.records.batch import Batch
from logferry.testing import run_without_blocking


@dataclass(eq=False)
class Rec:
    """A source as delivery sees it: batches of one source go out, and are acknowledged, in order."""

    acked: list[tuple[str, int]]  # (path, offset) of every position acknowledged, in order
    path: str
    offset: int = 0

    def at(self, end: int) -> At:
        return At(self, end)


@dataclass
class At:
    """A position in a ``Rec``: what the pipeline acknowledges once every sink has the batch."""

    source: Rec
    end: int

    def acknowledge(self) -> None:
        self.source.offset = self.end
        self.source.acked.append((self.source.path, self.end))


async def submit(pipeline: Pipeline, rec: Rec, b: Batch) -> None:
    await pipeline.submit(b, rec.at(b.end))


@dataclass
class Call:
    batches: list[Batch]
    release: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False  # when released: raise a retryable error instead of returning


class Gate(logferry.Sink):
    """Records every call and holds it until the test releases it (or ``auto`` releases it)."""

    def __init__(self, max_bytes: int = 8 << 20, max_lines: int = 0, in_flight: int = 1,
                 auto: bool = False) -> None:
        super().__init__("gate:")
        self.max_bytes_per_send, self.max_lines_per_send, self.max_sends_in_flight = max_bytes, max_lines, in_flight
        self.auto = auto
        self.calls: list[Call] = []
        self.running = 0
        self.most_running = 0
        self.delivered: list[tuple[str, int, bytes]] = []  # (path, offset, line) of calls that returned
        self.called = asyncio.Event()

    async def send(self, batch: Batch) -> None:
        await self.send_many([batch])

    async def send_many(self, batches: list[Batch]) -> None:
        call = Call(list(batches))
        self.calls.append(call)
        self.called.set()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if not self.auto:
                await call.release.wait()
            if call.fail:
                call.fail = False
                raise SinkError("refused for now", retryable=True)
            self.delivered += [(b.path, off, line) for b in batches for off, line in b.records()]
        finally:
            self.running -= 1

    def open_calls(self) -> list[Call]:
        return [c for c in self.calls if not c.release.is_set()]


def batch(path: str, offset: int, lines: list[bytes]) -> Batch:
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path, path, offset, offset + len(data), data, nlines=len(lines))


async def settle() -> None:
    """Let every ready task run (the pipeline decides on the loop, without timers)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def started(sinks: list[logferry.Sink], **kw) -> tuple[Pipeline, list[asyncio.Task]]:
    pipeline = Pipeline(sinks, Budget(64 << 20), **kw)
    await pipeline.start()
    return pipeline, [asyncio.create_task(pipeline.consume(i)) for i in range(len(sinks))]


async def finish(pipeline: Pipeline, consumers: list[asyncio.Task]) -> None:
    await asyncio.wait_for(pipeline.drain(), 30)
    await pipeline.close_queues()
    await asyncio.wait_for(asyncio.gather(*consumers), 30)
    await pipeline.stop_sinks()


def test_an_idle_sink_gets_a_batch_at_once_and_a_busy_one_gets_what_queued_in_one_call() -> None:
    async def main() -> None:
        sink, acked = Gate(), []
        pipeline, consumers = await started([sink])
        recs = [Rec(acked, f"f{i}") for i in range(5)]
        await submit(pipeline, recs[0], batch("f0", 0, [b"first"]))
        await settle()
        assert [len(c.batches) for c in sink.calls] == [1]  # no waiting for more: it went out alone
        for i, rec in enumerate(recs):  # while that call runs, every file queues more
            await submit(pipeline, rec, batch(rec.path, 6 if i == 0 else 0, [b"a", b"b"]))
        await settle()
        assert len(sink.calls) == 1  # one call in flight at most (the default)
        sink.calls[0].release.set()
        await settle()
        assert len(sink.calls) == 2
        assert sorted(b.path for b in sink.calls[1].batches) == [r.path for r in recs]  # one call, five files
        sink.calls[1].release.set()
        await finish(pipeline, consumers)
        assert sorted(acked) == sorted([("f0", 6), ("f0", 10)] + [(r.path, 4) for r in recs[1:]])
        assert (pipeline.stats[0].calls, pipeline.stats[0].batches) == (2, 6)

    run_without_blocking(main)


def test_coalesced_calls_respect_the_sinks_byte_and_line_limits() -> None:
    async def main() -> None:
        sink, acked = Gate(max_bytes=100, max_lines=7, auto=True), []
        pipeline, consumers = await started([sink])
        recs = [Rec(acked, f"file{i}") for i in range(6)]
        expected: dict[str, list[bytes]] = {}
        rng = random.Random(7)
        offsets = dict.fromkeys((r.path for r in recs), 0)
        for _round in range(10):
            for rec in recs:
                lines = [b"%s-%d" % (rec.path.encode(), rng.randrange(10**6)) * rng.randint(1, 3)
                         for _ in range(rng.randint(1, 12))]
                expected.setdefault(rec.path, []).extend(lines)
                b = batch(rec.path, offsets[rec.path], lines)
                offsets[rec.path] = b.end
                await submit(pipeline, rec, b)
        await finish(pipeline, consumers)  # everything was queued before the consumer first ran
        for call in sink.calls:
            size = sum(len(b.data) for b in call.batches)
            lines = sum(b.line_count() for b in call.batches)
            assert lines <= 7
            assert size <= 100 or lines == 1, f"a call of {size} bytes, {lines} lines"
        assert max(len({b.path for b in c.batches}) for c in sink.calls) > 1  # coalesced across files
        for path, lines in expected.items():  # cut batches still arrive whole, in order
            assert [line for p, _o, line in sink.delivered if p == path] == lines
            assert (path, offsets[path]) in acked
        per_file: dict[str, list[int]] = {}
        for path, offset in acked:
            per_file.setdefault(path, []).append(offset)
        assert all(offs == sorted(offs) for offs in per_file.values())  # checkpoints only move forward

    run_without_blocking(main)


def test_a_checkpoint_never_passes_a_call_in_flight_when_a_later_call_finishes_first() -> None:
    async def main() -> None:
        sink, acked = Gate(max_bytes=10, in_flight=3), []  # 10 bytes: each batch a call of its own
        pipeline, consumers = await started([sink])
        a, b = Rec(acked, "a"), Rec(acked, "b")
        await submit(pipeline, a, batch("a", 0, [b"a-first"]))
        await settle()
        await submit(pipeline, a, batch("a", 8, [b"a-second"]))
        await submit(pipeline, b, batch("b", 0, [b"b-first!!"]))  # 10 bytes: a full call's worth
        await settle()
        # Two calls run: a's first batch and b's. a's second batch waits for a's call, although a
        # third call may run: a file's lines are never in two calls at once.
        assert [[x.path for x in c.batches] for c in sink.calls] == [["a"], ["b"]]
        sink.calls[1].release.set()  # the later call finishes first
        await settle()
        assert acked == [("b", 10)]  # b moved; a did not move past its call in flight
        assert a.offset == 0
        sink.calls[0].release.set()
        await settle()
        assert acked == [("b", 10), ("a", 8)]
        assert [[x.offset for x in c.batches] for c in sink.calls if c.batches[0].path == "a"] == [[0], [8]]
        sink.calls[2].release.set()
        await finish(pipeline, consumers)
        assert acked == [("b", 10), ("a", 8), ("a", 17)]
        assert sink.most_running == 2

    run_without_blocking(main)


def test_a_retried_call_does_not_reorder_a_files_lines_while_other_calls_pass() -> None:
    async def main() -> None:
        sink, acked = Gate(max_bytes=4, in_flight=2), []  # each batch below is a full call's worth
        pipeline, consumers = await started([sink])
        a, b = Rec(acked, "a"), Rec(acked, "b")
        await submit(pipeline, a, batch("a", 0, [b"a-1"]))
        await settle()
        sink.calls[0].fail = True
        sink.calls[0].release.set()  # a's first call fails: it is retried after a backoff
        await submit(pipeline, a, batch("a", 4, [b"a-2"]))
        await submit(pipeline, b, batch("b", 0, [b"b-1"]))
        await settle()
        assert [c.batches[0].path for c in sink.calls] == ["a", "b"]  # b passes; a-2 waits for a-1
        sink.calls[1].release.set()
        await asyncio.wait_for(_until(lambda: len(sink.calls) == 3), 10)  # the retry of a-1
        assert [x.offset for x in sink.calls[2].batches] == [0]
        assert acked == [("b", 4)]
        sink.calls[2].release.set()
        await asyncio.wait_for(_until(lambda: len(sink.calls) == 4), 10)
        sink.calls[3].release.set()
        await finish(pipeline, consumers)
        assert [line for p, _o, line in sink.delivered if p == "a"] == [b"a-1", b"a-2"]
        assert acked == [("b", 4), ("a", 4), ("a", 8)]
        assert pipeline.stats[0].retries == 1

    run_without_blocking(main)


def test_a_cut_batch_is_acknowledged_only_once_every_piece_is() -> None:
    async def main() -> None:
        sink, acked = Gate(max_lines=2), []
        pipeline, consumers = await started([sink])
        a = Rec(acked, "a")
        big = batch("a", 100, [b"%d" % n for n in range(5)])
        await submit(pipeline, a, big)
        for piece in range(3):
            await asyncio.wait_for(_until(lambda: len(sink.calls) == piece + 1), 10)
            assert acked == []  # not before the last piece
            sink.calls[piece].release.set()
        await finish(pipeline, consumers)
        assert [[b.line_count() for b in c.batches] for c in sink.calls] == [[2], [2], [1]]
        assert acked == [("a", big.end)]
        assert [line for _p, _o, line in sink.delivered] == [b"0", b"1", b"2", b"3", b"4"]
        assert [o for _p, o, _line in sink.delivered] == [o for o, _line in big.records()]

    run_without_blocking(main)


def test_under_sustained_load_calls_wait_out_the_send_interval_unless_full() -> None:
    async def main() -> None:
        sink, acked = Gate(max_bytes=100, auto=True), []
        sink.send_interval = 0.3
        pipeline, consumers = await started([sink])
        loop = asyncio.get_running_loop()
        await submit(pipeline, Rec(acked, "a"), batch("a", 0, [b"quiet until now"]))
        await settle()
        first = loop.time()
        assert len(sink.calls) == 1  # after a quiet spell: at once
        await submit(pipeline, Rec(acked, "b"), batch("b", 0, [b"soon after"]))
        await settle()
        await submit(pipeline, Rec(acked, "c"), batch("c", 0, [b"and more"]))
        await settle()
        assert len(sink.calls) == 1  # not full: it waits for the interval, gathering what comes
        await asyncio.wait_for(_until(lambda: len(sink.calls) == 2), 10)
        assert loop.time() - first >= 0.3
        assert sorted(b.path for b in sink.calls[1].batches) == ["b", "c"]
        await submit(pipeline, Rec(acked, "d"), batch("d", 0, [b"x" * 99]))  # a full call's worth
        await settle()
        assert len(sink.calls) == 3  # goes at once, interval or not
        await finish(pipeline, consumers)

    run_without_blocking(main)


def test_a_batch_acknowledged_by_one_sink_waits_for_the_other() -> None:
    async def main() -> None:
        fast, slow, acked = Gate(auto=True, in_flight=4), Gate(), []
        pipeline, consumers = await started([fast, slow])
        a = Rec(acked, "a")
        await submit(pipeline, a, batch("a", 0, [b"x"]))
        await settle()
        assert len(fast.delivered) == 1 and acked == []
        slow.calls[0].release.set()
        await finish(pipeline, consumers)
        assert acked == [("a", 2)]

    run_without_blocking(main)


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


class Shuffled(logferry.Sink):
    """Calls that take random times, several at once; what returned is what arrived."""

    max_bytes_per_send = 4096
    max_sends_in_flight = 4

    def __init__(self) -> None:
        super().__init__("shuffled:")
        self.lines: dict[str, list[bytes]] = {}
        self.rng = random.Random(3)
        self.running = self.most = 0

    async def send_many(self, batches: list[Batch]) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.01))
            if self.rng.random() < 0.1:
                raise SinkError("try again", retryable=True)
            for b in batches:
                self.lines.setdefault(Path(b.path).name, []).extend(b.lines())
        finally:
            self.running -= 1

    async def send(self, batch: Batch) -> None:
        await self.send_many([batch])


def test_the_engine_ships_every_files_lines_in_order_through_overlapping_retried_calls(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = {}
    for i in range(8):
        data = b"".join(b"file%d line %06d\n" % (i, n) for n in range(3000))
        (logs / f"f{i}.log").write_bytes(data)
        expected[f"f{i}.log"] = data
    sink = Shuffled()
    settings = logferry.Settings(paths=[str(logs / "*.log")], state_dir=tmp_path / "state", once=True,
                                 max_inflight_bytes=1 << 18)  # several files in flight, each cut into many calls

    async def main() -> None:
        await Engine(settings, sinks=[sink]).run()

    run_without_blocking(main)
    assert {name: b"".join(lines) for name, lines in sink.lines.items()} == expected
    assert sink.most > 1
