"""Rotation, truncation and deletion while logferry runs: nothing lost, nothing doubled, and the
lines of a rotated-away file leave before its successor's."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from conftest import append, lines, out_lines, run_engine, shipped_everything, wait_for
from logferry import Batch, Sink
from logferry.commands.verify import verify_files


def truth(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def copytruncate_with_unread_tail(log: Path) -> None:
    """After lines a-0…a-99: 50 more lines not read yet when logrotate copies the file to
    ``app.log.1`` and truncates it; then 30 new lines in the truncated file (a-0…a-179 in all)."""
    append(log, lines("a", 50, start=100))
    shutil.copyfile(log, log.with_name(log.name + ".1"))
    os.truncate(log, 0)
    append(log, lines("a", 30, start=150))


def test_rename_rotation_loses_no_line_and_keeps_order(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log"))
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        append(log, lines("a", 50, start=100))  # written just before the rename: not yet read
        os.rename(log, tmp_path / "in" / "app.log.1")  # not matched by the pattern any more
        log.write_bytes(lines("a", 100, start=150))  # the new file
        await wait_for(lambda: len(out_lines(tmp_path)) >= 250)
        await asyncio.sleep(0.5)  # the old file is drained, stays quiet, and is closed
        assert not any("app.log.1" in os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                       if os.path.exists(f"/proc/self/fd/{fd}"))

    run_engine(s, until)
    report = verify_files(str(tmp_path / "out.log"), [truth(tmp_path, "truth", lines("a", 250))])
    assert report.ok, report


def test_a_renamed_file_still_matched_is_the_same_file(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log*"))
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        os.rename(log, tmp_path / "in" / "app.log.1")
        append(tmp_path / "in" / "app.log.1", lines("a", 10, start=100))
        log.write_bytes(lines("a", 20, start=110))
        await wait_for(lambda: len(out_lines(tmp_path)) >= 130)
        await asyncio.sleep(0.5)

    run_engine(s, until)
    assert out_lines(tmp_path) == lines("a", 130).splitlines()


def test_copytruncate_loses_no_line_the_copy_holds_the_unread_tail(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=2.0)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        copytruncate_with_unread_tail(log)
        await wait_for(lambda: len(out_lines(tmp_path)) >= 180)
        await asyncio.sleep(0.3)

    engine, _ = run_engine(s, until)
    assert out_lines(tmp_path) == lines("a", 180).splitlines()
    assert engine.losses.total() == 0


def test_truncation_without_a_copy_restarts_at_zero_and_counts_the_loss(settings, tmp_path: Path, caplog) -> None:
    s = settings()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        os.truncate(log, 0)
        log.write_bytes(lines("b", 10))
        await wait_for(lambda: len(out_lines(tmp_path)) >= 110)
        return engine.losses.total()

    _, lost = run_engine(s, until)
    assert out_lines(tmp_path) == (lines("a", 100) + lines("b", 10)).splitlines()
    assert lost == 0  # nothing had been written past the offset before the truncation
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_truncated_then_regrown_past_the_offset_is_noticed(settings, tmp_path: Path) -> None:
    s = settings()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 10))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 10)
        with open(log, "r+b") as f:  # rewritten in place, longer than before: size never looks smaller
            f.write(lines("b", 30))
        await wait_for(lambda: len(out_lines(tmp_path)) >= 40)

    run_engine(s, until)
    assert out_lines(tmp_path) == (lines("a", 10) + lines("b", 30)).splitlines()


def test_a_file_deleted_while_open_is_drained_then_closed(settings, tmp_path: Path) -> None:
    s = settings()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 10))

    def held_open() -> bool:
        return any("app.log" in os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 10)
        with open(log, "ab") as writer:  # the writing application keeps its handle...
            os.unlink(log)  # ...while the file is deleted
            writer.write(lines("a", 5, start=10) + b"no newline at the end")
        await wait_for(lambda: not held_open(), timeout=10)

    run_engine(s, until)
    assert out_lines(tmp_path) == lines("a", 15).splitlines() + [b"no newline at the end"]


def test_new_files_are_read_from_their_head_even_with_from_tail(settings, tmp_path: Path) -> None:
    s = settings(start="tail")
    (tmp_path / "in" / "old.log").write_bytes(lines("old", 5))

    async def until(engine) -> None:
        (tmp_path / "in" / "new.log").write_bytes(lines("new", 5))
        await wait_for(lambda: len(out_lines(tmp_path)) == 5)
        append(tmp_path / "in" / "old.log", lines("old", 1, start=5))
        await wait_for(lambda: len(out_lines(tmp_path)) == 6)

    run_engine(s, until)
    assert sorted(out_lines(tmp_path)) == sorted(lines("new", 5).splitlines() + [b"old-000005"])


def test_a_live_unterminated_line_waits_for_its_newline(settings, tmp_path: Path) -> None:
    s = settings()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"done\nstill being wri")

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 1)
        await asyncio.sleep(0.5)  # longer than rotate_wait: a live file's partial line is not shipped
        assert out_lines(tmp_path) == [b"done"]
        append(log, b"tten\n")
        await wait_for(lambda: len(out_lines(tmp_path)) == 2)

    run_engine(s, until)
    assert out_lines(tmp_path) == [b"done", b"still being written"]


def test_files_with_identical_content_are_distinct_files(settings, tmp_path: Path) -> None:
    s = settings(once=True)
    for name in ("a.log", "b.log", "c.log"):
        (tmp_path / "in" / name).write_bytes(b"hello\n")  # under 1 KiB, same first line, same content
    run_engine(s)
    assert out_lines(tmp_path) == [b"hello"] * 3


def test_symlinks_to_one_file_are_followed_once(settings, tmp_path: Path) -> None:
    s = settings(once=True)
    (tmp_path / "in" / "real.log").write_bytes(lines("r", 3))
    os.symlink(tmp_path / "in" / "real.log", tmp_path / "in" / "link.log")
    run_engine(s)
    assert out_lines(tmp_path) == lines("r", 3).splitlines()


def test_excluded_and_sink_output_files_are_not_followed(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "*.log"), str(tmp_path / "in" / "*"), once=True, exclude=["*.gz"])
    (tmp_path / "in" / "a.log").write_bytes(b"a\n")
    (tmp_path / "in" / "a.log.gz").write_bytes(b"compressed\n")
    run_engine(s)  # the sink writes tmp_path/out.log, which the first pattern matches
    run_engine(s)
    assert out_lines(tmp_path) == [b"a"]


class SlowSink(Sink):
    """Takes 50 ms per batch, so the reader falls behind the writer; keeps what it received."""

    def __init__(self) -> None:
        super().__init__("slow:")
        self.received = bytearray()

    async def send(self, batch: Batch) -> None:
        await asyncio.sleep(0.05)
        self.received += batch.data


def test_bytes_truncated_before_they_were_read_are_counted(settings, tmp_path: Path) -> None:
    s = settings(max_inflight_bytes=64 << 10)
    log = tmp_path / "in" / "app.log"
    old = lines("a", 400_000)  # 3.6 MB: read 1 MiB at a time, behind a slow sink
    log.write_bytes(old)
    sink = SlowSink()

    async def until(engine) -> int:
        await wait_for(lambda: any(pos > 0 for _, pos, _ in engine.progress()))
        os.truncate(log, 0)  # no copy anywhere: what was not read yet is gone
        log.write_bytes(lines("b", 10))
        await wait_for(lambda: sink.received.endswith(lines("b", 10)), timeout=30)
        return engine.losses.by_reason()["truncated_unread"]

    _, lost = run_engine(s, until, sinks=[sink])
    shipped_old = bytes(sink.received)[: -len(lines("b", 10))]
    assert old.startswith(shipped_old) and lost > 0
    assert len(shipped_old) + lost == len(old)  # every byte either shipped or counted as lost


def test_a_backup_copy_of_a_live_file_is_followed_after_rotate_wait(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=0.5)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 20))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 20)
        shutil.copyfile(log, tmp_path / "in" / "app.log.bak")  # a copy, but no truncation follows
        await asyncio.sleep(0.3)
        assert len(out_lines(tmp_path)) == 20  # held back as a possible copytruncate copy
        await wait_for(lambda: len(out_lines(tmp_path)) == 40, timeout=10)

    run_engine(s, until)
    assert out_lines(tmp_path) == lines("a", 20).splitlines() * 2  # a copy is content of its own


def test_a_file_renamed_before_its_tailer_could_open_it_is_found_and_drained_first(
        settings, tmp_path: Path, monkeypatch) -> None:
    import logferry.files.tailer

    pattern = str(tmp_path / "in" / "app.log*")
    once = settings(pattern, once=True)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"old-1\n")
    run_engine(once)
    append(log, b"old-2\n")  # while stopped: written, then rotated, then a new app.log
    os.rename(log, tmp_path / "in" / "app.log.1")
    log.write_bytes(b"new-1\n")

    real = logferry.files.tailer.open_checked
    moved = []

    def rotated_again_first(path: str, *args):  # a second rotation races the first open of app.log.1
        if path.endswith("app.log.1") and not moved:
            os.rename(path, tmp_path / "in" / "app.log.2")
            moved.append(path)
        return real(path, *args)

    monkeypatch.setattr(logferry.files.tailer, "open_checked", rotated_again_first)

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 3)
        await asyncio.sleep(0.3)

    run_engine(settings(pattern), until)
    assert moved
    assert out_lines(tmp_path) == [b"old-1", b"old-2", b"new-1"]  # not new-1 before old-2


def test_a_copytruncate_before_the_first_read_is_noticed(settings, tmp_path: Path, monkeypatch) -> None:
    """The scan saw app.log's first bytes; before its tailer read anything (it waits for an older
    file, or for the budget, under load) the file was copied, truncated and written again. At
    offset 0 the guard proves nothing: the head must. Read as the old content, the new lines went
    out first, and the copy, followed after rotate_wait as a file of its own, after them."""
    import logferry.files.tailer

    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=0.5)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 200))  # longer than a fingerprint: the scan's head is the whole fingerprint
    real = logferry.files.tailer.open_checked
    rotated = []

    def copytruncate_first(path: str, *args):  # on a worker thread, as the tailer's first open
        if path == str(log) and not rotated:
            shutil.copyfile(log, log.with_name("app.log.1"))
            os.truncate(log, 0)
            append(log, lines("b", 300))  # longer than the old content: the size never looks smaller
            rotated.append(path)
        return real(path, *args)

    monkeypatch.setattr(logferry.files.tailer, "open_checked", copytruncate_first)

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) >= 500)
        await asyncio.sleep(1.0)  # past rotate_wait: a copy wrongly followed on its own would ship again

    engine, _ = run_engine(s, until)
    assert rotated
    assert out_lines(tmp_path) == (lines("a", 200) + lines("b", 300)).splitlines()
    assert engine.losses.total() == 0


class GatedSink(Sink):
    """Delivers while ``gate`` is open, holds every batch while it is closed; keeps what it received."""

    def __init__(self) -> None:
        super().__init__("gated:")
        self.received = bytearray()
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, batch: Batch) -> None:
        await self.gate.wait()
        self.received += batch.data


def test_a_copy_made_while_its_original_waits_for_the_budget_stays_its_copy(settings, tmp_path: Path) -> None:
    """A stalled sink holds app.log's reader (the budget is full) longer than rotate_wait while it
    is copied and truncated. The quiet copy is not a file of its own: the original has not looked
    at its file since. Followed from its head, it shipped everything again, the unread tail was
    counted lost, and the original's new lines went out before the copy's."""
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=0.3, max_inflight_bytes=64 << 10)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))
    sink = GatedSink()

    def copytruncate() -> None:
        shutil.copyfile(log, log.with_name("app.log.1"))
        os.truncate(log, 0)
        append(log, lines("b", 100))

    async def until(engine) -> float:
        await wait_for(lambda: sink.received.count(b"\n") == 100)
        sink.gate.clear()
        await asyncio.to_thread(append, log, lines("a", 300_000, start=100))  # far more than the budget
        await wait_for(lambda: any(t.pos > 900 for t in engine.discovery.tracked.values()))  # held by the budget
        await asyncio.to_thread(copytruncate)
        await wait_for(lambda: bool(engine.discovery.pending))  # the copy is seen, held back
        await asyncio.sleep(3 * s.rotate_wait)  # quiet for longer than rotate_wait, its original still held
        sink.gate.set()
        await wait_for(lambda: sink.received.count(b"\n") >= 300_200, timeout=30)
        await asyncio.sleep(3 * s.rotate_wait)  # time for a copy wrongly followed on its own to ship again
        return engine.losses.total()

    _, lost = run_engine(s, until, sinks=[sink])
    assert bytes(sink.received) == lines("a", 300_100) + lines("b", 100)
    assert lost == 0


def test_copytruncate_of_a_file_closed_for_inactivity_loses_no_line(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=1.0, close_inactive=0.2)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        await wait_for(lambda: engine.stats()["open_files"] == 0)  # closed: checked by path
        copytruncate_with_unread_tail(log)
        await wait_for(lambda: len(out_lines(tmp_path)) >= 180)
        await asyncio.sleep(1.5)

    engine, _ = run_engine(s, until)
    got = out_lines(tmp_path)
    assert set(got) == set(lines("a", 180).splitlines())  # every line (re-reading the copy is allowed)
    assert got[:100] == lines("a", 100).splitlines()
    assert engine.losses.total() == 0


def test_a_copy_shorter_than_what_was_read_is_never_shipped_again_however_often_renamed(
        settings, tmp_path: Path) -> None:
    """logrotate's race window: lines written after the copy was made are read from the original
    before its truncation. The copy then holds only lines already shipped: it is never read, not
    even when later rotations rename it (app.log.1 → app.log.2 → …)."""
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=5.0)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("gen0", 100))
    expected = lines("gen0", 100)

    def shift() -> None:
        for n in sorted((int(p.suffix[1:]) for p in log.parent.glob("app.log.*")), reverse=True):
            os.rename(log.with_name(f"app.log.{n}"), log.with_name(f"app.log.{n + 1}"))

    async def until(engine) -> None:
        nonlocal expected
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        for g in range(1, 5):
            await asyncio.to_thread(shift)
            shutil.copyfile(log, log.with_name("app.log.1"))
            await wait_for(lambda: bool(engine.discovery.pending))  # the copy is seen, held back
            append(log, lines(f"race{g}", 10))  # after the copy, before the truncation: read from the original
            expected += lines(f"race{g}", 10)
            await wait_for(lambda: shipped_everything(engine, [log]))
            os.truncate(log, 0)
            append(log, lines(f"gen{g}", 100))
            expected += lines(f"gen{g}", 100)
            await wait_for(lambda: len(out_lines(tmp_path)) >= len(expected.splitlines()))
        await asyncio.sleep(0.5)  # time for a wrongly followed copy to be read again

    run_engine(s, until)
    assert out_lines(tmp_path) == expected.splitlines()


def test_a_copy_shorter_than_the_checkpoint_found_after_a_restart_is_not_shipped_again(
        settings, tmp_path: Path) -> None:
    """logferry read the race window's lines from the original, then stopped before it saw the
    truncation: at the next start the original is found truncated, and its copy, shorter than the
    saved offset, holds only lines already shipped."""
    s = settings(str(tmp_path / "in" / "app.log*"), rotate_wait=5.0)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("gen0", 100))

    async def read_race_window(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 100)
        shutil.copyfile(log, log.with_name("app.log.1"))
        await wait_for(lambda: bool(engine.discovery.pending))
        append(log, lines("race", 10))
        await wait_for(lambda: shipped_everything(engine, [log]))

    run_engine(s, read_race_window)
    os.truncate(log, 0)  # while logferry is stopped
    append(log, lines("gen1", 20))

    async def rotate_again(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) >= 130)
        os.rename(log.with_name("app.log.1"), log.with_name("app.log.2"))
        await asyncio.sleep(0.5)  # a scan sees the renamed copy

    run_engine(s, rotate_again)
    assert out_lines(tmp_path) == (lines("gen0", 100) + lines("race", 10) + lines("gen1", 20)).splitlines()
