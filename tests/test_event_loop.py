"""The event loop never blocks: the engine runs in asyncio debug mode and must stay quiet, and the
detector itself is shown to catch a blocking call."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

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


class BlockingSink(Sink):
    """A badly written sink: blocks the loop thread in send."""

    async def send(self, batch: Batch) -> None:
        time.sleep(0.2)


def test_the_detector_catches_a_callback_that_blocks_the_loop(settings, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(b"one line\n")

    async def main() -> None:
        from logferry.engine import Engine

        await Engine(settings(once=True), sinks=[BlockingSink("blocking:")]).run()

    _, slow = run_debug(main)
    assert slow, "a 200 ms time.sleep on the loop was not reported"
    assert any("took 0.2" in message for message in slow)
