"""The poller's pace follows each file: files being written are checked within milliseconds, idle
files back off to the poll interval, and files that growth events cover rest."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conftest import holds_lines, run_engine, run_without_blocking, wait_for
from logferry.files.poller import SWEEP_MAX, Poller


def sweeps_while_idle(settings, tmp_path: Path, seconds: float, **kw) -> int:
    s = settings(**kw)
    for n in range(20):
        (tmp_path / "in" / f"f{n}.log").write_bytes(b"x\n")

    async def until(engine) -> int:
        await wait_for(lambda: len((tmp_path / "out.log").read_bytes().splitlines()) == 20)
        if s.watch:
            await wait_for(lambda: engine.followed.hints is not None and engine.followed.hints.covers(str(tmp_path / "in" / "f0.log")))
        await asyncio.sleep(1.0)  # every file has been quiet for a while (checks due before are over)
        before = engine.poller.sweeps
        await asyncio.sleep(seconds)
        return engine.poller.sweeps - before

    _, sweeps = run_engine(s, until)
    return sweeps


def test_idle_files_back_off_to_the_poll_interval(settings, tmp_path: Path) -> None:
    # At the 2 ms pace of a busy file, 2 s would take 1,000 sweeps; backed off to 0.2 s and checked
    # together on multiples of it, the 20 files take 10 or 11.
    assert sweeps_while_idle(settings, tmp_path, 2.0, watch=False, poll_interval=0.2) <= 12


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
                # Each write is a hop to a worker thread, as each check is: on a busy machine both
                # slow down alike, so the count below does not depend on how busy it is.
                await asyncio.to_thread(f.write, b"%d\n" % n)
                await asyncio.sleep(0.01)
        await wait_for(lambda: holds_lines(tmp_path / "out.log", 100))
        return engine.poller.sweeps - before

    _, sweeps = run_engine(s, until)
    assert sweeps >= 50  # about one check per write, not one per poll interval (1 s)


class _Idle:
    """A file the poller looks at by path (as it does for files it holds no descriptor of)."""

    def __init__(self, path: Path) -> None:
        st = path.stat()
        self.fd, self.path, self.key, self.size = None, str(path), (st.st_dev, st.st_ino), st.st_size
        self.deleted, self.last_growth, self.settled = False, 0.0, False
        self.woken = False

    def read_args(self) -> None:
        return None

    def polled(self, step) -> None:
        self.woken = True


class _NoBudget:
    def room(self) -> int:
        return 0

    def reserve_now(self, size: int) -> None:
        pass

    def unreserve(self, size: int) -> None:
        pass


def test_a_large_sweep_is_handled_in_slices_and_wakes_only_changed_files(tmp_path: Path) -> None:
    count = 2 * SWEEP_MAX + 500
    for n in range(count):
        (tmp_path / f"f{n}.log").write_bytes(b"x\n")
    items = [_Idle(tmp_path / f"f{n}.log") for n in range(count)]
    with open(tmp_path / "f7.log", "ab") as f:
        f.write(b"grown\n")

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        sizes: list[int] = []  # files per sweep

        def blocking(fn, files, *args):
            sizes.append(len(files))
            return loop.run_in_executor(None, fn, files, *args)

        poller = Poller(0.5, blocking, _NoBudget())
        for n, item in enumerate(items, 1):
            item.last_growth = time.monotonic() - 60
            poller.schedule(item)  # quiet for long: due at a multiple of the ceiling
            if n % SWEEP_MAX == 0:
                await asyncio.sleep(0)  # the test's setup, in slices too: not one long callback
        task = asyncio.create_task(poller.run())
        while sum(sizes) < count:
            await asyncio.sleep(0.01)
        task.cancel()
        return sizes

    sizes = run_without_blocking(main)
    assert max(sizes) == SWEEP_MAX and len(sizes) >= 3  # every file checked, in slices of SWEEP_MAX
    assert [item.path for item in items if item.woken] == [os.path.join(tmp_path, "f7.log")]
