"""The files stage on its own: Tailer and Discovery built with fakes of the protocols they see.

Real files, real reads on worker threads; everything else a tailer or discovery talks to (the
budget, the outlet, the checkpoints, the poller, the crew, discovery itself) is a small fake that
records what it was told. No Engine is built here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logferry import Batch, Settings, Source
from logferry.files.descriptors import Descriptors
from logferry.files.discovery import Discovery
from logferry.files.identity import EMPTY_GUARD, Fingerprint, guard_of, key_of
from logferry.files.losses import Losses
from logferry.files.reader import LinePolicy
from logferry.files.record import LIVE, FileOffset, FileRecord, new_file_id
from logferry.files.tailer import Phase, Tailer, Wiring
from logferry.testing import run_without_blocking


class Budget:
    """Room for everything, unless ``full``: then a reader parks, and ``give_room`` resumes it."""

    limit = 64 << 20

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.parked: list[tuple[int, Callable[[int], None]]] = []
        self.reserved = 0

    def park(self, size: int, resume: Callable[[int], None]) -> bool:
        if self.full:
            self.parked.append((size, resume))
        return self.full

    async def reserve(self, size: int) -> None:
        self.reserved += size

    def unreserve(self, size: int, wake: bool = True) -> None:
        self.reserved -= size

    def give_room(self) -> None:
        self.full = False
        for size, resume in self.parked:
            self.reserved += size
            resume(size)
        self.parked.clear()


class Outlet:
    """Delivery: takes every batch with its position, its bytes out of the reader's reservation
    (acknowledges them only when the test says)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.sent: list[tuple[Batch, FileOffset]] = []

    async def submit(self, batch: Batch, position: FileOffset, reserved: int = 0) -> int:
        self.sent.append((batch, position))
        used = min(reserved, len(batch.data))
        self.budget.reserved -= used
        return used

    def lines(self) -> list[bytes]:
        return [line for batch, _ in self.sent for _, line in batch.records()]


class Checkpoints:
    def __init__(self) -> None:
        self.persisted: list[FileRecord] = []
        self.changed_records: list[FileRecord] = []
        self.acked: list[tuple[str, int]] = []

    def changed(self, record: FileRecord) -> None:
        self.changed_records.append(record)

    def acknowledged(self, record: FileRecord, nbytes: int) -> None:
        self.acked.append((record.path, record.offset))

    async def persist(self, records: list[FileRecord]) -> None:
        self.persisted.extend(records)


class Poller:
    def __init__(self) -> None:
        self.scheduled: set[int] = set()

    def schedule(self, item: Any) -> None:
        self.scheduled.add(id(item))

    def cancel(self, item: Any) -> None:
        self.scheduled.discard(id(item))

    def checking(self, item: Any) -> bool:
        return False


class Crew:
    """The followed files: runs each tailer's task on the test's loop, and records what it is told."""

    def __init__(self) -> None:
        self.stopping = False
        self.started: list[Tailer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.told: list[tuple[str, Tailer]] = []

    def start(self, tailer: Tailer) -> None:
        self.started.append(tailer)

    def run(self, tailer: Tailer) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(tailer.run()))

    def parked(self, tailer: Tailer) -> None:
        self.told.append(("parked", tailer))

    def ended(self, tailer: Tailer) -> None:
        self.told.append(("ended", tailer))

    def renamed(self, tailer: Tailer) -> None:
        self.told.append(("renamed", tailer))

    def active(self, tailer: Tailer) -> None:
        pass


class Finder:
    def __init__(self) -> None:
        self.done: list[Tailer] = []

    async def fresh_scan(self) -> None:
        pass

    async def adopt_copy(self, original: Tailer) -> Tailer | None:
        return None

    def leave_out_compressed(self, path: str, key: tuple[int, int], kind: str) -> None:
        pass

    def tailer_done(self, tailer: Tailer) -> None:
        self.done.append(tailer)

    def rescan_soon(self) -> None:
        pass


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def wiring(tmp_path: Path, budget: Budget | None = None, **settings: Any) -> Wiring:
    s = Settings(paths=[str(tmp_path / "*.log")], state_dir=tmp_path / "state", **settings)
    budget = budget or Budget()
    return Wiring(s, LinePolicy(s.max_line_bytes, s.long_lines), blocking, budget, Outlet(budget),
                  Checkpoints(), Poller(), Descriptors(64), Crew(), Losses())


def record_for(path: Path, offset: int = 0) -> FileRecord:
    st = path.stat()
    return FileRecord(new_file_id(), key_of(st), Fingerprint.of(b""), offset, EMPTY_GUARD, st.st_size, str(path),
                      str(path), LIVE, id_base="base")


async def finish(crew: Crew) -> None:
    while crew.tasks:
        await asyncio.wait_for(crew.tasks.pop(0), 30)


def test_a_tailer_ships_its_file_and_each_batch_acknowledges_its_own_position(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"line %d\n" % n for n in range(1000)) + b"unterminated")

    async def main() -> tuple[Wiring, Tailer]:
        w = wiring(tmp_path, once=True)
        tailer = Tailer(w, Finder(), record_for(log), str(log))
        assert tailer.phase is Phase.NEW
        tailer.begin()
        await finish(w.crew)
        return w, tailer

    w, tailer = run_without_blocking(main)
    outlet, checkpoints = w.outlet, w.checkpoints
    assert isinstance(outlet, Outlet) and isinstance(checkpoints, Checkpoints)
    assert outlet.lines() == [b"line %d" % n for n in range(1000)]  # complete lines only
    assert tailer.phase is Phase.DONE and ("ended", tailer) in w.crew.told
    assert tailer.record.offset == 0  # nothing moves before delivery acknowledges
    end = outlet.sent[-1][1].end
    for _, position in outlet.sent:
        position.acknowledge()
    assert tailer.record.offset == end == log.stat().st_size - len(b"unterminated")
    assert checkpoints.acked[-1] == (str(log), end)


def test_a_tailer_facing_a_full_budget_parks_without_a_task_and_resumes_when_given_room(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"x\n" * 10)

    async def main() -> tuple[list[Phase], Wiring]:
        budget = Budget(full=True)
        w = wiring(tmp_path, budget, once=True)
        tailer = Tailer(w, Finder(), record_for(log), str(log))
        tailer.begin()
        await finish(w.crew)
        phases = [tailer.phase]  # its task ended while it waits for room
        assert not w.outlet.sent
        budget.give_room()
        phases.append(tailer.phase)
        await finish(w.crew)
        phases.append(tailer.phase)
        return phases, w

    phases, w = run_without_blocking(main)
    assert phases == [Phase.PARKED, Phase.READING, Phase.DONE]
    assert [what for what, _ in w.crew.told] == ["parked", "ended"]
    assert w.outlet.lines() == [b"x"] * 10
    assert w.budget.reserved == 0  # everything reserved was given back


def test_a_dormant_tailer_has_no_task_until_woken_and_its_repr_says_where_it_is(tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    log.write_bytes(b"old\n")

    async def main() -> list[str]:
        w = wiring(tmp_path)
        record = record_for(log, offset=4)
        tailer = Tailer(w, Finder(), record, str(log))
        tailer.start_unopened()
        assert tailer.go_dormant()
        seen = [repr(tailer)]
        assert not w.crew.tasks and tailer.idle
        with open(log, "ab") as f:
            f.write(b"new\n")
        tailer.wake()  # what the poller does when it sees the file grow
        seen.append(repr(tailer))
        while not w.outlet.sent:
            await asyncio.sleep(0.01)
        w.crew.stopping = True
        tailer.wake()
        await finish(w.crew)
        seen.append(repr(tailer))
        return seen

    seen = run_without_blocking(main)
    assert [r.rsplit(" ", 1)[-1] for r in seen] == ["dormant>", "reading>", "done>"]


def test_a_tailer_refuses_a_transition_its_lifecycle_does_not_have(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    tailer = Tailer(wiring(tmp_path, Budget(full=True)), Finder(), record_for(log), str(log))
    tailer.start_unopened()
    assert tailer.go_dormant()
    with pytest.raises(RuntimeError, match="cannot go from dormant to parked"):
        tailer.park_before_start()  # dormant means asleep at its end: it has no read to wait for
    assert tailer.phase is Phase.DORMANT


def test_discovery_saves_new_files_records_before_starting_them_oldest_first(tmp_path: Path) -> None:
    for name, age in (("app.log.1", 20), ("app.log", 10), ("other.log", 0)):
        (tmp_path / name).write_bytes(f"{name} first line\n".encode())
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))

    async def main() -> tuple[Discovery, Wiring]:
        w = wiring(tmp_path)
        discovery = Discovery(w, [Source([str(tmp_path / "*.log*")])])
        await discovery.scan()
        return discovery, w

    discovery, w = run_without_blocking(main)
    started = w.crew.started
    assert discovery.ready.is_set()
    assert [os.path.basename(t.path) for t in started] == ["app.log.1", "app.log", "other.log"]
    assert {id(t.record) for t in started} <= {id(r) for r in w.checkpoints.persisted}
    rotated, live = started[0], started[1]
    assert live.after == [rotated.drained] and rotated.superseded  # one log: the rotated file goes first
    assert all(t.record.id_base for t in started)  # line ids are fixed before a line leaves


def test_discovery_resumes_a_saved_file_at_its_offset_and_follows_a_rename_with_the_same_tailer(
        tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"shipped\nnot yet\n")

    async def main() -> tuple[Tailer, list[Tailer], list[tuple[str, Tailer]]]:
        first = wiring(tmp_path)
        seed = Discovery(first, [Source([str(tmp_path / "*.log*")])])
        await seed.scan()
        saved = first.crew.started[0].record
        saved.offset = 8  # as if "shipped\n" had been acknowledged and saved

        saved.guard = guard_of(log.read_bytes(), 8)

        w = wiring(tmp_path)
        discovery = Discovery(w, [Source([str(tmp_path / "*.log*")])])
        discovery.load([saved])
        await discovery.scan()
        tailer = w.crew.started[0]
        os.rename(log, tmp_path / "app.log.1")
        await discovery.scan()
        return tailer, list(w.crew.started), list(w.crew.told)

    tailer, started, told = run_without_blocking(main)
    assert tailer.pos == 8  # resumed where its checkpoint says
    assert started == [tailer] and ("renamed", tailer) in told  # renamed: the same tailer goes on
    assert tailer.path == str(tmp_path / "app.log.1")
