"""The event loop never blocks: the engine runs in asyncio debug mode and must stay quiet, and the
detector itself is shown to catch a blocking call."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import lines, run_debug, run_engine, shipped_everything, wait_for
from logferry import Batch, Sink


def test_catch_up_and_live_following_never_block_the_loop(settings, tmp_path: Path) -> None:
    inputs = [tmp_path / "in" / f"{i}.log" for i in range(4)]
    s = settings()
    for i, path in enumerate(inputs):
        path.write_bytes(lines(f"old{i}", 50_000))

    def writer(path: Path, tag: str) -> None:
        with open(path, "ab", buffering=0) as f:
            for i in range(300):
                f.write(f"{tag}-{i}\n".encode())
                time.sleep(0.001)

    async def until(engine) -> None:
        threads = [threading.Thread(target=writer, args=(p, f"new{i}")) for i, p in enumerate(inputs)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        await wait_for(lambda: shipped_everything(engine, inputs))

    run_engine(s, until)  # fails on any slow-callback warning
    out = (tmp_path / "out.log").read_bytes()
    assert out.count(b"\n") == 4 * (50_000 + 300)


def spin(seconds: float) -> None:
    """Run Python code on this thread for ``seconds`` of its CPU time, however busy the machine."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class BlockingSink(Sink):
    """A badly written sink: blocks the loop thread in send."""

    async def send(self, batch: Batch) -> None:
        time.sleep(0.2)


class ComputingSink(Sink):
    """Encodes on the loop thread: ``cpu`` seconds of Python work in each send."""

    cpu = 0.2

    async def send(self, batch: Batch) -> None:
        spin(self.cpu)


class WaitingSink(Sink):
    """Waits on the loop thread for another thread (a lock, a future's result)."""

    async def send(self, batch: Batch) -> None:
        threading.Event().wait(0.2)


def held(slow: list[str], where: str) -> float:
    """The longest time a report blaming ``where`` says the loop was held, in seconds (0: none)."""
    found = [float(m[1]) for message in slow if where in message
             and (m := re.search(r"held the loop for ([0-9.]+) seconds", message))]
    return max(found, default=0.0)


def ship_one_line_through(sink: Sink, settings, tmp_path: Path) -> list[str]:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "a.log").write_bytes(b"one line\n")

    async def main() -> None:
        from logferry.engine import Engine

        await Engine(settings(once=True), sinks=[sink]).run()

    _, slow = run_debug(main)
    return slow


def test_the_detector_catches_a_callback_that_blocks_the_loop(settings, tmp_path: Path) -> None:
    slow = ship_one_line_through(BlockingSink("blocking:"), settings, tmp_path)
    assert slow, "a 200 ms time.sleep on the loop was not reported"
    assert held(slow, "BlockingSink.send") > 0.15, slow


def test_the_detector_catches_python_work_that_holds_the_loop(settings, tmp_path: Path) -> None:
    slow = ship_one_line_through(ComputingSink("computing:"), settings, tmp_path)
    assert held(slow, "ComputingSink.send") > 0.15, slow


def test_the_detector_catches_a_wait_for_another_thread(settings, tmp_path: Path) -> None:
    # It sleeps in the same system call as a wait for the GIL, which does not count: told apart by
    # where the loop thread waits (threading's code).
    slow = ship_one_line_through(WaitingSink("waiting:"), settings, tmp_path)
    assert held(slow, "WaitingSink.send") > 0.15, slow


def test_the_detector_catches_a_blocking_read_in_logferry(tmp_path: Path) -> None:
    # Reading a pipe waits without using a CPU, as reading a slow disk does.
    from logferry.commands.verify import read_lines

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Timer(0.2, fifo.write_bytes, (b"late\n",))

    async def main() -> list[bytes | str]:
        writer.start()
        return read_lines(str(fifo))  # on the loop: waits 200 ms for the writer

    try:
        got, slow = run_debug(main)
    finally:
        writer.join()
    assert got == [b"late"]
    assert held(slow, "verify.py") > 0.15, slow  # blamed on the read, in logferry.commands.verify


def test_the_detector_excuses_the_test_blocking_its_own_loop(settings, tmp_path: Path) -> None:
    s = settings()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)
    writer = threading.Timer(0.2, os.write, (fd, b"x"))

    async def until(engine) -> None:
        time.sleep(0.2)  # the test's own code, not logferry's: the engine is only kept waiting
        await asyncio.sleep(0)
        writer.start()
        os.read(fd, 1)  # a blocking read, again in the test's code

    async def main() -> None:
        from logferry.engine import Engine

        engine = Engine(s)
        running = asyncio.create_task(engine.run())
        await engine.wait_ready()
        await until(engine)
        engine.stop()
        await running

    try:
        _, slow = run_debug(main)
    finally:
        writer.join()
        os.close(fd)
    assert slow == []
    assert sum("in the test's own code" in message for message in slow.excused) >= 2, slow.excused


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not Path("/proc/self/schedstat").exists(),
                    reason="needs Linux: CPU affinity, and the kernel's count of time spent waiting for a CPU")
def test_the_detector_excuses_a_callback_slowed_only_by_other_processes(settings, tmp_path: Path) -> None:
    # Two processes spinning on the loop thread's CPU leave it a third of it: 30 ms of work in a
    # sink take about 90 ms by the wall clock, yet the sink holds the loop for 30 ms only.
    sink = ComputingSink("computing:")
    sink.cpu = 0.03
    cpu = {min(os.sched_getaffinity(0))}
    before = os.sched_getaffinity(0)
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        for hog in hogs:
            os.sched_setaffinity(hog.pid, cpu)
        os.sched_setaffinity(0, cpu)  # this thread only: the loop's
        slow = ship_one_line_through(sink, settings, tmp_path)
    finally:
        os.sched_setaffinity(0, before)
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert slow == []
    assert any(("Pipeline.consume" in message or "Pipeline._send" in message) for message in slow.excused), (
        "the sink's callback was not slowed: the test proved nothing")
