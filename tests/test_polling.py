"""The poller's pace follows each file: files being written are checked within milliseconds, idle
files back off to the poll interval, and files that growth events cover rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import run_engine, wait_for


def sweeps_while_idle(settings, tmp_path: Path, seconds: float, **kw) -> int:
    s = settings(**kw)
    for n in range(20):
        (tmp_path / "in" / f"f{n}.log").write_bytes(b"x\n")

    async def until(engine) -> int:
        await wait_for(lambda: len((tmp_path / "out.log").read_bytes().splitlines()) == 20)
        if s.watch:
            await wait_for(lambda: engine.hints is not None and engine.hints.covers(str(tmp_path / "in" / "f0.log")))
        await asyncio.sleep(1.0)  # every file has been quiet for a while (checks due before are over)
        before = engine.poller.sweeps
        await asyncio.sleep(seconds)
        return engine.poller.sweeps - before

    _, sweeps = run_engine(s, until)
    return sweeps


def test_idle_files_back_off_to_the_poll_interval(settings, tmp_path: Path) -> None:
    # At the 2 ms pace of a busy file, 2 s would take 1,000 sweeps; backed off to 0.2 s, about 10.
    assert sweeps_while_idle(settings, tmp_path, 2.0, watch=False, poll_interval=0.2) <= 25


def test_idle_files_covered_by_growth_events_rest(settings, tmp_path: Path) -> None:
    # Growth events wake them; a check every 10 s only guards against a lost event.
    assert sweeps_while_idle(settings, tmp_path, 2.0, watch=True, poll_interval=0.2) <= 2


def test_a_file_being_written_is_checked_at_a_fast_pace(settings, tmp_path: Path) -> None:
    s = settings(watch=False, poll_interval=1.0)
    log = tmp_path / "in" / "busy.log"
    log.write_bytes(b"")

    async def until(engine) -> int:
        await engine.wait_ready()
        before = engine.poller.sweeps
        with log.open("ab", buffering=0) as f:
            for n in range(100):
                f.write(b"%d\n" % n)
                await asyncio.sleep(0.01)
        await wait_for(lambda: len((tmp_path / "out.log").read_bytes().splitlines()) == 100)
        return engine.poller.sweeps - before

    _, sweeps = run_engine(s, until)
    assert sweeps >= 50  # about one check per write, not one per poll interval (1 s)
