"""The writer-thread file sink: its own thread and loop, errors reach the caller, flush on stop."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import LOGFERRY
from logferry import Batch, SinkError
from logferry.sinks.file import WRITE_MAX, FileSink


def batch(data: bytes, path: str = "/in/a.log", offset: int = 0) -> Batch:
    return Batch(path, "f1", offset, offset + len(data), data)


def test_writes_happen_on_the_sink_thread_not_the_loop(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "dir" / "out.log"
    sink = FileSink(f"file:{out}", str(out))
    threads = set()
    original = os.writev

    def spy(fd, chunks):
        threads.add(threading.current_thread().name)
        return original(fd, chunks)

    async def main() -> None:
        await sink.start()
        os.writev = spy
        try:
            await sink.send(batch(b"one\ntwo\n"))
        finally:
            os.writev = original
        await sink.stop()

    asyncio.run(main())
    assert out.read_bytes() == b"one\ntwo\n"
    assert threads and all(name.startswith("logferry-sink") for name in threads)


def test_large_batches_go_out_in_whole_line_writes_of_about_write_max(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    sink = FileSink(f"file:{out}", str(out))
    short = b"".join(b"line %06d\n" % i for i in range(100_000))  # 1.2 MB of short lines
    long = b"x" * (WRITE_MAX * 2) + b"\n"  # one line longer than a write
    batches = [batch(short), batch(b"a\n"), batch(long + short[:5000] + long), batch(b"b\nc\n")]
    writes = []
    original = os.writev

    def spy(fd, chunks):
        n = original(fd, chunks)
        writes.append(b"".join(bytes(c) for c in chunks)[:n])
        return n

    async def main() -> None:
        await sink.start()
        os.writev = spy
        try:
            await sink.send_many(batches)
        finally:
            os.writev = original
        await sink.stop()

    asyncio.run(main())
    assert out.read_bytes() == b"".join(b.data for b in batches)
    assert all(w.endswith(b"\n") for w in writes)  # each write ends a line: nothing another writer could split
    assert all(len(w) <= WRITE_MAX or w.count(b"\n") == 1 for w in writes)  # larger only for a long line alone
    assert len(writes) < len(out.read_bytes()) // (WRITE_MAX // 2)  # small batches are gathered, not one write each


def test_a_write_error_reaches_the_caller_and_stop_is_idempotent(tmp_path: Path) -> None:
    sink = FileSink("file:/dev/full", "/dev/full")

    async def main() -> None:
        await sink.start()
        with pytest.raises(SinkError, match="No space left on device"):
            await sink.send(batch(b"x\n"))
        await sink.stop()
        await sink.stop()

    asyncio.run(main())


def test_an_unopenable_path_fails_start_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    sink = FileSink("x", str(tmp_path / "file" / "sub" / "out.log"))

    async def main() -> None:
        with pytest.raises(SinkError, match="cannot open"):
            await sink.start()
        await sink.stop()

    asyncio.run(main())


def test_json_records_carry_path_offset_id_line_and_ts(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    sink = FileSink("x", str(out), fmt="json")
    data = b"plain\n\xff\xfe bad utf-8\nnul\x00byte\n"

    async def main() -> None:
        await sink.start()
        await sink.send(batch(data, offset=100))
        await sink.send(batch(data, offset=100))  # a re-delivery
        await sink.stop()

    asyncio.run(main())
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in records[:3]] == ["plain", "\ufffd\ufffd bad utf-8", "nul\x00byte"]
    assert [r["offset"] for r in records[:3]] == [100, 106, 119]
    assert [r["id"] for r in records[:3]] == ["f1:100", "f1:106", "f1:119"]
    assert [r["id"] for r in records[3:]] == [r["id"] for r in records[:3]]  # same ids on re-delivery
    assert all(r["path"] == "/in/a.log" and r["ts"].endswith("Z") for r in records)


@pytest.mark.parametrize("mode", [None, 0o600])
def test_the_output_is_reopened_when_it_is_rotated_away(tmp_path: Path, monkeypatch, mode: int | None) -> None:
    """The new output gets the sink's mode too."""
    monkeypatch.setattr("logferry.sinks.file._REOPEN_CHECK", 0.0)
    out = tmp_path / "out.log"
    sink = FileSink("x", str(out), mode=mode)

    async def main() -> None:
        await sink.start()
        await sink.send(batch(b"before\n"))
        os.rename(out, tmp_path / "out.log.1")
        await sink.send(batch(b"after\n"))
        await sink.stop()

    asyncio.run(main())
    assert (tmp_path / "out.log.1").read_bytes() == b"before\n"
    assert out.read_bytes() == b"after\n"
    assert mode is None or _mode(out) == mode


def test_a_torn_last_line_left_by_a_crash_is_cut_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    out.write_bytes(b"complete\n{\"line\": \"torn")
    sink = FileSink("x", str(out))

    async def main() -> None:
        await sink.start()
        await sink.send(batch(b"again\n"))
        await sink.stop()

    asyncio.run(main())
    assert out.read_bytes() == b"complete\nagain\n"


def _run_once_under_umask(tmp_path: Path, umask: int, sink_options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "a.log").write_bytes(b"one\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[sources]\npaths = ["{tmp_path / "in" / "*.log"}"]\n[state]\ndir = "{tmp_path / "state"}"\n'
                      f'[[sinks]]\nurl = "file:{tmp_path / "out" / "out.log"}"\n{sink_options}\n')
    return subprocess.run([*LOGFERRY, "run", "--once", "-c", str(config)], capture_output=True, text=True,
                          umask=umask, timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("option", ['mode = "0640"', 'mode = "640"', "mode = 0o640"])
def test_mode_sets_the_permission_bits_of_the_output_it_creates_whatever_the_umask(tmp_path: Path,
                                                                                  option: str) -> None:
    run = _run_once_under_umask(tmp_path, 0o077, option)  # the umask alone would make it 0600
    assert run.returncode == 0, run.stderr
    assert _mode(tmp_path / "out" / "out.log") == 0o640
    assert (tmp_path / "out" / "out.log").read_bytes() == b"one\n"


def test_without_mode_the_umask_decides_and_an_existing_output_keeps_its_mode(tmp_path: Path) -> None:
    run = _run_once_under_umask(tmp_path, 0o002, "")
    assert run.returncode == 0, run.stderr
    assert _mode(tmp_path / "out" / "out.log") == 0o664  # 0666 & ~umask, as `>` in a shell
    os.chmod(tmp_path / "out" / "out.log", 0o600)
    (tmp_path / "in" / "b.log").write_bytes(b"two\n")
    run = _run_once_under_umask(tmp_path, 0o022, 'mode = "0644"')
    assert run.returncode == 0, run.stderr
    assert _mode(tmp_path / "out" / "out.log") == 0o600
    assert (tmp_path / "out" / "out.log").read_bytes() == b"one\ntwo\n"


def test_a_bad_mode_stops_the_run_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    run = _run_once_under_umask(tmp_path, 0o022, 'mode = "rw-r-----"')
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"logferry: error: sink 'file:{tmp_path / 'out' / 'out.log'}': mode must be permission bits in octal "
        "(\"0640\", or 0o640 unquoted), got 'rw-r-----'"]
    assert not (tmp_path / "out").exists()


def test_mode_is_refused_for_stdout(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[sources]\npaths = ["{tmp_path / "in" / "*.log"}"]\n[[sinks]]\nurl = "-"\nmode = "0600"\n')
    check = subprocess.run([*LOGFERRY, "config", "check", "-c", str(config)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 2 and "mode applies to files, not to stdout" in check.stderr
