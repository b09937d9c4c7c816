"""The writer-thread file sink: its own thread and loop, errors reach the caller, flush on stop."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from logferry import Batch, SinkError
from logferry.sinks.file import FileSink


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


def test_the_output_is_reopened_when_it_is_rotated_away(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("logferry.sinks.file._REOPEN_CHECK", 0.0)
    out = tmp_path / "out.log"
    sink = FileSink("x", str(out))

    async def main() -> None:
        await sink.start()
        await sink.send(batch(b"before\n"))
        os.rename(out, tmp_path / "out.log.1")
        await sink.send(batch(b"after\n"))
        await sink.stop()

    asyncio.run(main())
    assert (tmp_path / "out.log.1").read_bytes() == b"before\n"
    assert out.read_bytes() == b"after\n"


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
