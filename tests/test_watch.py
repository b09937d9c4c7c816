"""File-system events are a wake-up hint: a new file is found long before the next periodic scan;
without events, polling alone still finds it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import run_engine, wait_for
from logferry.files.watch import watch_roots


def first_line_latency(settings, tmp_path: Path, **kw) -> float:
    s = settings(**kw)

    async def until(engine) -> float:
        await asyncio.sleep(0.3)  # the first scan is over; the next periodic one is far away
        started = time.monotonic()
        (tmp_path / "in" / "new.log").write_bytes(b"hello\n")
        await wait_for(lambda: (tmp_path / "out.log").exists() and (tmp_path / "out.log").read_bytes() == b"hello\n",
                       timeout=30)
        return time.monotonic() - started

    _, latency = run_engine(s, until)
    return latency


def test_a_created_file_wakes_discovery_before_the_scan_interval(settings, tmp_path: Path) -> None:
    assert first_line_latency(settings, tmp_path, scan_interval=20.0, watch=True) < 1.0


def test_without_events_polling_still_finds_new_files(settings, tmp_path: Path) -> None:
    latency = first_line_latency(settings, tmp_path, scan_interval=1.0, watch=False)
    assert 0.3 < latency < 5.0  # found by the periodic scan, not by an event


def test_watch_roots_are_directories_never_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    roots = watch_roots([str(tmp_path / "a" / "*.log"), str(tmp_path / "a" / "b" / "x.log"),
                         str(tmp_path / "**" / "*.log"), str(tmp_path / "missing" / "*.log")])
    assert roots == {str(tmp_path / "a"): False, str(tmp_path / "a" / "b"): False, str(tmp_path): True}


def test_a_growth_event_wakes_a_resting_file_long_before_its_next_check(settings, tmp_path: Path) -> None:
    s = settings(poll_interval=30.0, scan_interval=30.0, watch=True)
    log = tmp_path / "in" / "quiet.log"
    log.write_bytes(b"one\n")

    async def until(engine) -> float:
        await wait_for(lambda: (tmp_path / "out.log").exists() and (tmp_path / "out.log").read_bytes() == b"one\n")
        await wait_for(lambda: engine.followed.hints is not None and engine.followed.hints.covers(str(log)))  # the directory is calm: events cover it
        await asyncio.sleep(0.5)  # the file is resting now: its next check is seconds away
        started = time.monotonic()
        with log.open("ab") as f:
            f.write(b"two\n")
        await wait_for(lambda: (tmp_path / "out.log").read_bytes() == b"one\ntwo\n", interval=0.005)
        return time.monotonic() - started

    _, latency = run_engine(s, until)
    assert latency < 1.0  # the poll interval is 30 s and a resting file is checked every 10 s


def test_a_directory_whose_files_grow_fast_is_polled_not_watched(settings, tmp_path: Path) -> None:
    s = settings(watch=True)
    log = tmp_path / "in" / "busy.log"
    log.write_bytes(b"")

    async def until(engine) -> tuple[bool, bool]:
        await wait_for(lambda: engine.followed.hints is not None and engine.followed.hints.covers(str(log)))
        with log.open("ab", buffering=0) as f:
            for n in range(400):  # 400 lines over 2 s: far above the rate where events cost more than polls
                f.write(b"%d\n" % n)
                await asyncio.sleep(0.005)
        busy = engine.followed.hints.covers(str(log))
        await wait_for(lambda: len((tmp_path / "out.log").read_bytes().splitlines()) == 400)
        return busy, True

    _, (covered_while_busy, _) = run_engine(s, until)
    assert not covered_while_busy
