"""The embedding API: docs/embedding.md's code runs as written, and the Engine keeps its promises
(start, wait_ready, stop twice, stats that move, a custom sink that receives every line in order)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

import logferry
from logferry.engine import Engine
from logferry.testing import run_without_blocking

DOC = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"
STATS_KEYS = {"files", "open_files", "uptime", "read_bytes", "read_lines", "read_batches", "acked_bytes",
              "file_read_bytes", "inflight_bytes", "unread_bytes", "checkpoint_lag_bytes",
              "oldest_unshipped_age", "sinks", "lost_bytes", "cut_lines", "scans", "poll_sweeps", "loop_lag"}


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_the_docs_complete_example_runs(tmp_path: Path) -> None:
    example = next(block for block in python_blocks() if "asyncio.run(main())" in block)
    script = tmp_path / "example.py"
    script.write_text(example)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "received 101 lines, in order" in done.stdout
    assert "101 lines read" in done.stdout


def test_the_docs_threaded_sink_ships_every_line(tmp_path: Path) -> None:
    block = next(block for block in python_blocks() if "ThreadedSink" in block and "asyncio.run" not in block)
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    out = tmp_path / "out" / "merged.log"
    out.parent.mkdir()
    (tmp_path / "a.log").write_bytes(b"".join(b"a %d\n" % n for n in range(500)))
    settings = logferry.Settings(paths=[str(tmp_path / "*.log")], state_dir=tmp_path / "state", once=True)

    async def main() -> None:
        await Engine(settings, sinks=[namespace["AppendToFile"](str(out))]).run()

    run_without_blocking(main)
    assert out.read_bytes() == (tmp_path / "a.log").read_bytes()


class Recorder(logferry.Sink):
    def __init__(self) -> None:
        super().__init__("recorder:")
        self.events: list[str] = []
        self.lines: dict[str, list[bytes]] = {}

    async def start(self) -> None:
        self.events.append("start")

    async def send(self, batch: logferry.Batch) -> None:
        self.lines.setdefault(Path(batch.path).name, []).extend(batch.lines())

    async def stop(self) -> None:
        self.events.append("stop")


def test_start_wait_ready_stats_stop_twice_and_every_line_in_order(tmp_path: Path) -> None:
    names = ("a.log", "b.log", "c.log")
    for name in names:
        (tmp_path / name).write_bytes(b"%s head\n" % name.encode())
    settings = logferry.Settings(paths=[str(tmp_path / "*.log")], state_dir=tmp_path / "state", poll_interval=0.02)
    sink = Recorder()
    expected = {name: [b"%s head\n" % name.encode()] for name in names}

    async def main() -> tuple[dict, dict]:
        engine = Engine(settings, sinks=[sink])
        task = engine.start()
        with pytest.raises(RuntimeError):
            engine.start()
        async with asyncio.timeout(30):
            await engine.wait_ready()
        assert engine.stats()["files"] == 3
        files = {name: (tmp_path / name).open("ab") for name in names}
        for n in range(300):
            for name, f in files.items():
                line = b"%s %05d %s\n" % (name.encode(), n, b"x" * (n % 50))
                f.write(line)
                expected[name].append(line)
            if n % 30 == 0:
                for f in files.values():
                    f.flush()
                await asyncio.sleep(0.01)
        for f in files.values():
            f.close()
        async with asyncio.timeout(30):
            while sink.lines != expected:
                await asyncio.sleep(0.02)
        first = engine.stats()
        with (tmp_path / "a.log").open("ab") as f:
            f.write(b"a.log one more\n")
        expected["a.log"].append(b"a.log one more\n")
        async with asyncio.timeout(30):
            while engine.stats()["acked_bytes"] == first["acked_bytes"]:
                await asyncio.sleep(0.02)
        second = engine.stats()
        engine.stop()
        engine.stop()  # a second stop only stops waiting for the sinks
        async with asyncio.timeout(30):
            await task
        return first, second

    switch_interval = sys.getswitchinterval()
    first, second = run_without_blocking(main)
    assert sys.getswitchinterval() == switch_interval  # restored after the run
    assert sink.events == ["start", "stop"]
    assert sink.lines == expected
    assert STATS_KEYS <= first.keys()
    total = sum(len(line) for lines in expected.values() for line in lines)
    assert second["read_bytes"] == second["acked_bytes"] == total
    assert second["read_lines"] == sum(len(lines) for lines in expected.values())
    assert second["read_bytes"] > first["read_bytes"] and second["uptime"] > first["uptime"]
    assert second["sinks"]["recorder:"]["bytes"] == total
    assert second["file_read_bytes"][str(tmp_path / "a.log")] == sum(len(line) for line in expected["a.log"])


def test_wait_ready_raises_when_the_run_fails_before_it_is_ready(tmp_path: Path) -> None:
    class Refuses(logferry.Sink):
        async def start(self) -> None:
            raise OSError("destination unreachable")

        async def send(self, batch: logferry.Batch) -> None:
            raise AssertionError("never started")

    (tmp_path / "a.log").write_bytes(b"line\n")
    settings = logferry.Settings(paths=[str(tmp_path / "*.log")], state_dir=tmp_path / "state")

    async def main() -> None:
        engine = Engine(settings, sinks=[Refuses("refuses:")])
        task = engine.start()
        async with asyncio.timeout(30):
            with pytest.raises(logferry.LogferryError, match="destination unreachable"):
                await engine.wait_ready()
        with pytest.raises(logferry.LogferryError):
            await task

    asyncio.run(main())
