"""Limits for many files and bad input: idle files give their descriptors back, the open-file budget
holds, old files start at their end, stale checkpoints are forgotten, long lines are bounded,
shutdown is bounded even with a stalled sink."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conftest import Daemon, append, cli, holds_lines, lines, out_lines, run_engine, wait_for, wait_until
from logferry import Batch, Sink
from logferry.state.checkpoints import CheckpointStore


def test_inactive_files_are_closed_and_reopened_when_they_grow(settings, tmp_path: Path) -> None:
    s = settings(close_inactive=0.2)
    log = tmp_path / "in" / "a.log"
    log.write_bytes(b"one\n")

    async def until(engine) -> None:
        await wait_for(lambda: out_lines(tmp_path) == [b"one"])
        await wait_for(lambda: engine.stats()["open_files"] == 0)
        append(log, b"two\n")
        await wait_for(lambda: out_lines(tmp_path) == [b"one", b"two"])

    run_engine(s, until)


def test_no_more_files_are_held_open_than_the_budget(settings, tmp_path: Path) -> None:
    s = settings(max_open_files=5)
    paths = [tmp_path / "in" / f"{i:02}.log" for i in range(20)]
    for p in paths:
        p.write_bytes(b"first\n")

    async def until(engine) -> tuple[int, int]:
        await wait_for(lambda: len(out_lines(tmp_path)) == 20)
        await asyncio.sleep(0.2)
        held = engine.stats()["open_files"]
        for p in paths:
            append(p, b"second\n")
        await wait_for(lambda: len(out_lines(tmp_path)) == 40)
        return held, engine.stats()["files"]

    _, (held, followed) = run_engine(s, until)
    assert held <= 5 and followed == 20


def test_files_older_than_ignore_older_start_at_their_end(settings, tmp_path: Path) -> None:
    s = settings(ignore_older=3600.0)
    old, new = tmp_path / "in" / "old.log", tmp_path / "in" / "new.log"
    old.write_bytes(b"ancient\n")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    new.write_bytes(b"recent\n")

    async def until(engine) -> None:
        await wait_for(lambda: out_lines(tmp_path) == [b"recent"])
        append(old, b"revived\n")
        await wait_for(lambda: len(out_lines(tmp_path)) == 2)

    run_engine(s, until)
    assert out_lines(tmp_path) == [b"recent", b"revived"]


def test_checkpoints_of_files_long_gone_are_forgotten(settings, tmp_path: Path, monkeypatch) -> None:
    s = settings(once=True, forget_after=0.5)
    (tmp_path / "in" / "gone.log").write_bytes(b"x\n")
    run_engine(s)
    (tmp_path / "in" / "gone.log").unlink()
    (tmp_path / "in" / "kept.log").write_bytes(b"y\n")
    time.sleep(0.6)
    monkeypatch.setattr("logferry.state.committer.FORGET_EVERY", 0.0)
    run_engine(s.replace(once=False), lambda engine: asyncio.sleep(0.5))

    async def records() -> list[str]:
        store = CheckpointStore(s.state_dir)
        found = await store.open()
        await store.close()
        return [r.path for r in found]

    assert [os.path.basename(p) for p in asyncio.run(records())] == ["kept.log"]


def test_long_lines_are_split_by_default_counted_and_bounded(settings, tmp_path: Path) -> None:
    s = settings(once=True, max_line_bytes=1000)
    (tmp_path / "in" / "a.log").write_bytes(b"short\n" + b"x" * 2500 + b"\nafter\n")
    engine, _ = run_engine(s)
    assert out_lines(tmp_path) == [b"short", b"x" * 1000, b"x" * 1000, b"x" * 500, b"after"]
    assert engine.stats()["cut_lines"] == 2 and engine.losses.total() == 0


def test_skipped_long_lines_are_counted_as_lost(settings, tmp_path: Path) -> None:
    s = settings(once=True, max_line_bytes=1000, long_lines="skip")
    (tmp_path / "in" / "a.log").write_bytes(b"short\n" + b"x" * 2500 + b"\nafter\n")
    engine, _ = run_engine(s)
    assert out_lines(tmp_path) == [b"short", b"after"]
    assert engine.losses.by_reason() == {"line_too_long": 2501}


def test_nul_bytes_and_invalid_utf8_pass_through_raw(settings, tmp_path: Path) -> None:
    s = settings(once=True)
    data = b"nul\x00inside\n\xff\xfe\xfd\n\r\n"
    (tmp_path / "in" / "a.log").write_bytes(data)
    run_engine(s)
    assert (tmp_path / "out.log").read_bytes() == data


class StalledSink(Sink):
    """Accepts one batch, then never returns."""

    def __init__(self) -> None:
        super().__init__("stalled:")
        self.calls = 0

    async def send(self, batch: Batch) -> None:
        self.calls += 1
        if self.calls > 1:
            await asyncio.Event().wait()


def test_a_stalled_sink_stops_the_readers_and_shutdown_stays_bounded(settings, tmp_path: Path) -> None:
    s = settings(max_inflight_bytes=64 << 10, shutdown_timeout=0.5)
    for i in range(3):
        (tmp_path / "in" / f"{i}.log").write_bytes(lines(f"f{i}", 200_000))  # 2 MB each
    sink = StalledSink()

    async def until(engine) -> int:
        await asyncio.sleep(0.5)
        return engine.pipeline.inflight_bytes

    started = time.monotonic()
    engine, inflight = run_engine(s, until, sinks=[sink])
    assert time.monotonic() - started < 5
    assert inflight <= (64 << 10) + (1 << 20) + 1  # the budget, plus at most one read
    # Nothing past the first batch was acknowledged, so nothing past it was checkpointed.
    offsets = [t for t in engine.progress()]
    assert offsets == [] or all(offset <= (1 << 20) + 1 for _, offset, _ in offsets)


def test_sigterm_with_a_dead_sink_exits_within_the_shutdown_timeout(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(b"line\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody reads it: opening it for writing blocks the sink thread
    config = tmp_path / "c.toml"
    config.write_text('[output]\nshutdown_timeout = "1s"\n')
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "-c", str(config), "--sink", f"file:{fifo}",
                    "--state-dir", str(tmp_path / "s"))
    # Running (its signal handlers are set before the database is opened), however slow to start.
    wait_until(lambda: (tmp_path / "s" / "checkpoints.db").exists())
    started = time.monotonic()
    daemon.proc.terminate()
    try:
        daemon.proc.communicate(timeout=20)
    finally:
        if daemon.alive():
            daemon.kill()
    assert daemon.proc.returncode == 0
    assert time.monotonic() - started < 5


def test_a_state_dir_that_cannot_be_created_is_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = cli("run", str(tmp_path / "x.log"), "--once", "--state-dir", str(tmp_path / "file" / "state"))
    assert result.returncode == 2 and "cannot use state directory" in result.stderr


class FlakySink(Sink):
    """Fails the first ``failures`` sends, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky:")
        self.failures = failures
        self.received: list[bytes] = []

    async def send(self, batch: Batch) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the destination is down")
        self.received.append(bytes(batch.data))


def test_a_failing_sink_is_retried_until_it_takes_the_batch(settings, tmp_path: Path, caplog) -> None:
    s = settings(once=True)
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 1000))
    sink = FlakySink(failures=3)
    engine, _ = run_engine(s, sinks=[sink])
    assert b"".join(sink.received) == lines("a", 1000)
    assert engine.stats()["sinks"]["flaky:"]["retries"] == 3
    assert any("retrying the batch" in r.getMessage() for r in caplog.records)


def test_once_gives_up_on_a_sink_that_keeps_failing(settings, tmp_path: Path, monkeypatch) -> None:
    import pytest

    from logferry import NotAcknowledged

    monkeypatch.setattr("logferry.delivery.pipeline.RETRY_FIRST", 0.001)
    s = settings(once=True)
    (tmp_path / "in" / "a.log").write_bytes(b"x\n")
    sink = FlakySink(failures=100)
    with pytest.raises(NotAcknowledged, match=r"^sink flaky: gave up after 5 attempts \(ConnectionError: the "
                       r"destination is down\); 2 bytes of 1 file were not acknowledged by flaky:") as info:
        run_engine(s, sinks=[sink])
    assert sink.failures == 100 - 5 and (info.value.bytes, info.value.files, info.value.sinks) == (2, 1, ["flaky:"])


def test_once_ships_every_file_when_there_are_more_files_than_descriptors(tmp_path: Path) -> None:
    import resource
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    for n in range(600):
        (tmp_path / "in" / f"f{n}.log").write_bytes(lines(f"f{n}", 3))

    def low_limit() -> None:  # in the child: 128 descriptors for 600 files
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    result = subprocess.run(
        [sys.executable, "-m", "logferry", "run", str(tmp_path / "in" / "*.log"), "--once",
         "--sink", f"file:{tmp_path / 'out.log'}", "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, preexec_fn=low_limit)
    assert result.returncode == 0, result.stderr
    inputs = sorted(str(p) for p in (tmp_path / "in").iterdir())
    assert cli("verify", str(tmp_path / "out.log"), *inputs).returncode == 0


def test_with_many_files_and_a_stalled_sink_only_the_budget_is_read(settings, tmp_path: Path) -> None:
    s = settings(max_inflight_bytes=64 << 10, shutdown_timeout=0.5)
    for i in range(60):
        (tmp_path / "in" / f"{i:03}.log").write_bytes(lines(f"f{i}", 2_000))  # about 20 KB each
    sink = StalledSink()

    async def until(engine) -> tuple[int, int, int, int]:
        await wait_for(lambda: engine.stats()["files"] == 60)
        await asyncio.sleep(0.5)
        stats = engine.stats()
        held = stats["inflight_bytes"] + stats["reserved_bytes"]
        tasks = sum(1 for task in asyncio.all_tasks() if task.get_name().startswith("tail "))
        return held, sum(1 for n in stats["file_read_bytes"].values() if n), tasks

    _, (held, read, tasks) = run_engine(s, until, sinks=[sink])
    # Readers reserve budget before they read: data in memory stays within it (one read over at
    # most), and files beyond it are not read at all until the sink takes something.
    assert held <= (64 << 10) + (1 << 20) + 64
    assert read <= 8  # of 60
    assert tasks <= 8  # the files that wait for the budget wait without a task (memory per file)


def _ship_once(settings, paths: list[Path], tmp_path: Path) -> None:
    once = settings(once=True)
    for n, p in enumerate(paths):
        p.write_bytes(b"first %d\n" % n)
    run_engine(once)
    assert len(out_lines(tmp_path)) == len(paths)


def test_known_files_with_nothing_new_start_unopened_when_descriptors_are_short(settings, tmp_path: Path) -> None:
    paths = [tmp_path / "in" / f"{i:03}.log" for i in range(60)]
    _ship_once(settings, paths, tmp_path)

    async def until(engine) -> tuple[int, int]:
        opened_at_start = engine.stats()["open_files"]
        for p in paths[::7]:
            append(p, b"second\n")
        await wait_for(lambda: len(out_lines(tmp_path)) == 60 + len(paths[::7]))
        await asyncio.sleep(0.3)  # nothing else arrives
        return opened_at_start, engine.stats()["files"]

    _, (opened_at_start, followed) = run_engine(settings(max_open_files=10), until)
    assert opened_at_start == 0  # 60 files, room for 10: none opened before it grew
    assert followed == 60
    got = out_lines(tmp_path)
    assert len(got) == len(set(got)) + len(paths[::7]) - 1  # "second" repeated; every "first" once


def test_files_quiet_for_close_inactive_start_unopened_and_follow_renames(settings, tmp_path: Path) -> None:
    old, fresh = tmp_path / "in" / "old.log", tmp_path / "in" / "fresh.log"
    _ship_once(settings, [old, fresh], tmp_path)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    async def until(engine) -> int:
        await wait_for(lambda: engine.stats()["open_files"] >= 1)  # fresh.log (its tailer opens it now)
        await asyncio.sleep(0.2)
        opened_at_start = engine.stats()["open_files"]
        os.rename(old, tmp_path / "in" / "old-renamed.log")  # still matched: the same file, followed
        await asyncio.sleep(0.3)
        append(tmp_path / "in" / "old-renamed.log", b"after the rename\n")
        await wait_for(lambda: out_lines(tmp_path)[-1:] == [b"after the rename"])
        return opened_at_start

    _, opened_at_start = run_engine(settings(close_inactive=60), until)
    assert opened_at_start == 1  # fresh.log; old.log, quiet for an hour, is opened once it grows
    got = out_lines(tmp_path)
    assert sorted(got[:2]) == [b"first 0", b"first 1"]  # order is kept per file, not across files
    assert got[2:] == [b"after the rename"]


def test_a_file_started_unopened_that_grows_past_the_budget_is_read_to_its_end(settings, tmp_path: Path) -> None:
    paths = [tmp_path / "in" / f"{i:03}.log" for i in range(20)]
    _ship_once(settings, paths, tmp_path)
    grown = paths[::6]

    async def until(engine) -> int:
        for p in grown:  # 330 KB each, five times the budget: the reader parks and resumes
            await asyncio.to_thread(lambda p=p: append(p, lines(p.stem, 30_000)))  # made and written off the loop
        await wait_for(lambda: holds_lines(tmp_path / "out.log", 20 + 30_000 * len(grown)))
        await wait_for(lambda: engine.pipeline.budget.room() == 64 << 10)  # no reservation left behind
        return engine.stats()["files"]

    _, followed = run_engine(settings(max_open_files=5, max_inflight_bytes=64 << 10), until)
    assert followed == 20
