"""Crashes and restarts: SIGKILL loses nothing, rotations made while stopped are caught up in order,
changed files are noticed, line ids are stable across re-deliveries."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

from conftest import Daemon, append, cli, count_lines, lines, run_engine, wait_until
from logferry.commands.verify import verify_files


def run_once(tmp_path: Path, pattern: str, *extra: str):
    result = cli("run", pattern, "--once", "--sink", f"file:{tmp_path / 'out.log'}", "--state-dir",
                 str(tmp_path / "state"), *extra)
    assert result.returncode == 0, result.stderr
    return result


def long_lines(prefix: str, n: int) -> bytes:
    return b"".join(f"{prefix}-{i:08d}-".encode().ljust(99, b"x") + b"\n" for i in range(n))


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    from logferry.files.reader import READ_SIZE

    budget = 256 << 10
    (tmp_path / "in").mkdir()
    config = tmp_path / "logferry.toml"
    config.write_text(f"[output]\nmax_inflight_bytes = {budget}\n")
    inputs = [tmp_path / "in" / f"{i}.log" for i in range(4)]
    for i, path in enumerate(inputs):
        path.write_bytes(long_lines(f"f{i}", 100_000))
    out = tmp_path / "out.log"
    args = (str(tmp_path / "in" / "*.log"), "-c", str(config), "--sink", f"file:{out}",
            "--state-dir", str(tmp_path / "state"))
    rng = random.Random(7)
    kills = 0
    while count_lines(out) < 300_000:
        daemon = Daemon(*args)
        time.sleep(rng.uniform(0.2, 0.8))
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.communicate()
        kills += 1
    daemon = Daemon(*args)
    wait_until(lambda: all(r.missing == 0 for r in verify_files(str(out), list(map(str, inputs))).inputs),
               timeout=60)
    code, err = daemon.stop()
    assert code == 0, err
    report = verify_files(str(out), list(map(str, inputs)))
    assert all(r.missing == 0 and r.out_of_order == 0 for r in report.inputs), report
    duplicated = sum(r.duplicated for r in report.inputs)
    # Re-delivered per kill: at most the batches in flight plus what was acknowledged since the last
    # commit, each bounded by the in-flight budget (a single read may exceed it once).
    window_lines = (3 * budget + 2 * READ_SIZE) // 100
    assert duplicated <= kills * window_lines, (duplicated, kills)


def test_restart_across_rename_rotations_drains_the_old_file_first(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))
    run_once(tmp_path, str(log) + "*")
    # While stopped: more lines, then two rotations by rename.
    append(log, lines("a", 50, start=100))
    os.rename(log, tmp_path / "in" / "app.log.1")
    log.write_bytes(lines("a", 50, start=150))
    time.sleep(0.02)
    os.rename(tmp_path / "in" / "app.log.1", tmp_path / "in" / "app.log.2")
    os.rename(log, tmp_path / "in" / "app.log.1")
    log.write_bytes(lines("a", 50, start=200))
    run_once(tmp_path, str(log) + "*")
    assert (tmp_path / "out.log").read_bytes() == lines("a", 250)


def test_restart_across_copytruncate_resumes_in_the_copy(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))
    run_once(tmp_path, str(log) + "*")
    append(log, lines("a", 50, start=100))
    shutil.copyfile(log, tmp_path / "in" / "app.log.1")
    os.truncate(log, 0)
    time.sleep(0.02)
    log.write_bytes(lines("a", 30, start=150))
    run_once(tmp_path, str(log) + "*")
    assert (tmp_path / "out.log").read_bytes() == lines("a", 180)


def test_a_file_replaced_while_stopped_on_a_reused_inode_is_read_from_its_head(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("first", 100))
    inode = log.stat().st_ino
    run_once(tmp_path, str(log))
    log.unlink()
    log.write_bytes(lines("second", 150))  # ext4 hands the freed inode to the new file
    run_once(tmp_path, str(log))
    assert (tmp_path / "out.log").read_bytes() == lines("first", 100) + lines("second", 150)
    if log.stat().st_ino != inode:  # pragma: no cover - depends on the file system
        print("note: the inode was not reused here; the test checked a plain replacement")


def test_a_file_truncated_while_stopped_counts_what_was_lost(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 10) + b"unfinished")  # seen, not shipped: it has no newline yet
    run_once(tmp_path, str(log))
    os.truncate(log, 0)
    log.write_bytes(lines("b", 3))
    result = run_once(tmp_path, str(log))
    assert (tmp_path / "out.log").read_bytes() == lines("a", 10) + lines("b", 3)
    assert "truncated or replaced while logferry was stopped" in result.stderr
    assert "10 bytes after offset 90 were not read" in result.stderr
    assert "vanished_unread=10" in result.stderr


def test_json_ids_are_the_same_on_every_redelivery(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 300_000))
    out = tmp_path / "out.json"
    args = (str(log), "--format", "json", "--sink", f"file:{out}", "--state-dir", str(tmp_path / "state"))
    daemon = Daemon(*args)
    wait_until(lambda: count_lines(out) > 50_000, timeout=60)
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.communicate()
    run = cli("run", *args, "--once")
    assert run.returncode == 0, run.stderr
    ids: dict[str, set[str]] = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        ids.setdefault(record["line"], set()).add(record["id"])
    assert len(ids) == 300_000
    assert all(len(v) == 1 for v in ids.values()), "a re-delivered line got a new id"


def test_two_runs_cannot_share_a_state_dir(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "a.log"
    log.write_bytes(b"x\n")
    daemon = Daemon(str(log), "--sink", "null:", "--state-dir", str(tmp_path / "state"))
    wait_until(lambda: (tmp_path / "state" / "checkpoints.db").exists())
    time.sleep(0.3)
    second = cli("run", str(log), "--once", "--sink", "null:", "--state-dir", str(tmp_path / "state"))
    daemon.stop()
    assert second.returncode == 2
    assert "in use by another logferry" in second.stderr


def test_a_store_from_a_newer_logferry_is_refused(tmp_path: Path) -> None:
    import sqlite3

    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "checkpoints.db")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.commit()
    db.close()
    result = cli("run", str(tmp_path / "x.log"), "--once", "--state-dir", str(state))
    assert result.returncode == 2 and "newer logferry" in result.stderr


def test_an_unreadable_file_is_a_warning_not_a_failure(settings, tmp_path: Path) -> None:
    s = settings(once=True)
    (tmp_path / "in" / "ok.log").write_bytes(b"ok\n")
    (tmp_path / "in" / "locked.log").write_bytes(b"secret\n")
    os.chmod(tmp_path / "in" / "locked.log", 0)
    if os.access(tmp_path / "in" / "locked.log", os.R_OK):  # root reads anything: use a directory instead
        os.chmod(tmp_path / "in" / "locked.log", 0o644)
        (tmp_path / "in" / "dir.log").mkdir()
    run_engine(s)
    assert b"ok\n" in (tmp_path / "out.log").read_bytes()
