"""File-system events are a wake-up hint: a new file is found long before the next periodic scan;
without events, polling alone still finds it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import run_engine, wait_for

from logferry.watch import watch_roots


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
    assert first_line_latency(settings, tmp_path, scan_interval=20.0, watch=True) < 2.0


def test_without_events_polling_still_finds_new_files(settings, tmp_path: Path) -> None:
    latency = first_line_latency(settings, tmp_path, scan_interval=1.0, watch=False)
    assert 0.3 < latency < 5.0  # found by the periodic scan, not by an event


def test_watch_roots_are_directories_never_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    roots = watch_roots([str(tmp_path / "a" / "*.log"), str(tmp_path / "a" / "b" / "x.log"),
                         str(tmp_path / "**" / "*.log"), str(tmp_path / "missing" / "*.log")])
    assert roots == {str(tmp_path / "a"): False, str(tmp_path / "a" / "b"): False, str(tmp_path): True}
