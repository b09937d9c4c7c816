"""The state directory: a damaged or empty checkpoint database stops the run until the user chooses to
set it aside; the directory is private; deleted or full, it is noticed and said in one line, and
nothing is lost. A ``--once`` run that could not deliver exits 1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LOGFERRY, Daemon, append, cli, count_lines, lines, tmpfs, wait_until
from logferry.state.checkpoints import DB_NAME, RESET_FLAG, database_problem


def run_once(tmp_path: Path, *extra: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    return cli("run", str(tmp_path / "in" / "*.log"), "--once", "--sink", f"file:{tmp_path / 'out.log'}",
               "--state-dir", str(state or tmp_path / "state"), *extra)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("logferry: error:")]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "a.log"
    log.write_bytes(lines("a", 50))
    return log


def fill(fs: Path) -> Path:
    """Fill the file system ``fs`` to its last byte; returns the file to delete to free it."""
    filler = fs / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as f:  # what dd's last block left
        while True:
            f.write(b"\0")
    return filler


# -- item 3: the checkpoint database ---------------------------------------------------

def test_an_empty_checkpoint_database_refuses_to_start_until_set_aside(tmp_path: Path, inputs: Path) -> None:
    assert run_once(tmp_path).returncode == 0
    db = tmp_path / "state" / DB_NAME
    db.write_bytes(b"")  # what a full disk or a careless copy leaves
    append(inputs, lines("a", 10, start=50))

    refused = run_once(tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert error_lines(refused.stderr) == refused.stderr.strip().splitlines()  # one line, no traceback
    (line,) = error_lines(refused.stderr)
    assert str(db) in line and "it is empty" in line and RESET_FLAG in line
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50)  # nothing shipped again
    assert db.read_bytes() == b""  # nothing changed

    reset = run_once(tmp_path, RESET_FLAG)
    assert reset.returncode == 0, reset.stderr
    assert "set aside as" in reset.stderr
    asides = [p for p in db.parent.iterdir() if p.name.startswith(f"{DB_NAME}.corrupt-")]
    assert len(asides) == 1 and stat.S_IMODE(asides[0].stat().st_mode) == 0o600
    # Without checkpoints: started by the start policy (from the head), as the user chose.
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50) + lines("a", 60)
    again = run_once(tmp_path, RESET_FLAG)  # the flag keeps a readable database
    assert again.returncode == 0 and "set aside" not in again.stderr
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50) + lines("a", 60)


def test_a_corrupt_checkpoint_database_refuses_to_start(tmp_path: Path, inputs: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / DB_NAME).write_bytes(b"this is not a database" * 100)
    refused = run_once(tmp_path)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "file is not a database" in line and RESET_FLAG in line
    assert not (tmp_path / "out.log").exists()
    assert database_problem(state / DB_NAME) == "file is not a database"

    assert run_once(tmp_path, RESET_FLAG).returncode == 0
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50)
    assert database_problem(state / DB_NAME) is None


def test_an_empty_database_beside_its_write_ahead_log_is_refused_and_the_log_kept(
        tmp_path: Path, inputs: Path) -> None:
    """SQLite cannot read pages that are only in -wal when the main file is empty: it deletes the
    -wal on open. So such a database is damaged, and the -wal, the only copy, must survive."""
    assert run_once(tmp_path).returncode == 0
    state = tmp_path / "state"
    source = sqlite3.connect(state / DB_NAME)
    staging = sqlite3.connect(tmp_path / "staging.db", isolation_level=None)
    staging.execute("PRAGMA journal_mode=WAL")
    staging.execute("PRAGMA wal_autocheckpoint=0")
    for (sql,) in source.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"):
        staging.execute(sql)
    for table in ("meta", "files"):
        for row in source.execute(f"SELECT * FROM {table}"):
            staging.execute(f"INSERT INTO {table} VALUES ({','.join('?' * len(row))})", row)
    source.close()
    (state / DB_NAME).write_bytes(b"")
    shutil.copy(tmp_path / "staging.db-wal", state / f"{DB_NAME}-wal")
    staging.close()
    wal = (state / f"{DB_NAME}-wal").read_bytes()

    assert database_problem(state / DB_NAME).startswith("it is empty; its write-ahead log")
    refused = run_once(tmp_path)
    assert refused.returncode == 2 and "write-ahead log checkpoints.db-wal" in refused.stderr, refused.stderr
    assert (state / f"{DB_NAME}-wal").read_bytes() == wal  # not deleted by opening the database

    assert run_once(tmp_path, RESET_FLAG).returncode == 0
    (aside,) = [p for p in state.iterdir() if p.name.startswith(f"{DB_NAME}.corrupt-") and p.name.endswith("-wal")]
    assert aside.read_bytes() == wal


def test_a_database_left_half_created_by_a_crash_is_a_first_start(tmp_path: Path, inputs: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / f"{DB_NAME}.new").write_bytes(b"")  # a crash while the first run created its database
    result = run_once(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50)
    assert sorted(p.name for p in state.iterdir()) == [DB_NAME, "lock"]


def test_a_state_directory_deleted_while_running_is_recreated_with_every_checkpoint(
        tmp_path: Path, inputs: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out.log"
    (tmp_path / "in" / "b.log").write_bytes(lines("b", 20))
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "--sink", f"file:{out}", "--state-dir", str(state),
                    "--poll-interval", "0.05", log=tmp_path / "stderr.log")
    try:
        wait_until(lambda: count_lines(out) == 70)
        time.sleep(1.5)  # a commit saved both files
        shutil.rmtree(state)
        append(inputs, lines("a", 30, start=50))
        wait_until(lambda: count_lines(out) == 100)
        wait_until(lambda: (state / DB_NAME).exists())
        assert (state / "lock").read_text().strip() == str(daemon.proc.pid)  # locked again
        time.sleep(1.5)  # the next commit after the last line
    finally:
        code, _ = daemon.stop()
    assert code == 0
    log = (tmp_path / "stderr.log").read_text()
    assert log.count("was deleted while logferry ran") == 1, log
    assert stat.S_IMODE(state.stat().st_mode) == 0o700

    append(inputs, lines("a", 5, start=80))
    second = run_once(tmp_path)
    assert second.returncode == 0, second.stderr
    # Nothing shipped twice: both files resumed from the checkpoints written back after the deletion.
    assert sorted(out.read_bytes().splitlines(keepends=True)) == sorted(
        (lines("a", 85) + lines("b", 20)).splitlines(keepends=True))


def test_a_full_state_file_system_at_start_is_one_clear_line(tmp_path: Path, inputs: Path) -> None:
    with tmpfs(tmp_path / "fs") as fs:
        fill(fs)
        result = run_once(tmp_path, state=fs / "state")
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "no space left for the checkpoints in state directory" in line and str(fs / "state") in line, line
        assert not (tmp_path / "out.log").exists()


def test_a_full_state_file_system_with_a_database_is_one_clear_line(tmp_path: Path, inputs: Path) -> None:
    with tmpfs(tmp_path / "fs") as fs:
        assert run_once(tmp_path, state=fs / "state").returncode == 0
        append(inputs, lines("a", 5, start=50))
        fill(fs)
        result = run_once(tmp_path, state=fs / "state")
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "no space left for the checkpoints" in line, line
        assert not [p for p in (fs / "state").iterdir() if "corrupt" in p.name]  # nothing set aside
    assert (tmp_path / "out.log").read_bytes() == lines("a", 50)


def test_a_state_file_system_filling_up_mid_run_is_said_once_and_loses_nothing(
        tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out.log"
    with tmpfs(tmp_path / "fs") as fs:
        daemon = Daemon(str(tmp_path / "in" / "*.log"), "--sink", f"file:{out}", "--state-dir", str(fs / "state"),
                        "--poll-interval", "0.05", log=tmp_path / "stderr.log")
        try:
            wait_until(lambda: count_lines(out) == 50)
            filler = fill(fs)
            for n in range(5):  # several commits fail
                append(inputs, lines("a", 200, start=50 + 200 * n))
                time.sleep(0.5)
            wait_until(lambda: "could not save checkpoints" in (tmp_path / "stderr.log").read_text())
            filler.unlink()
            wait_until(lambda: "checkpoints saved again" in (tmp_path / "stderr.log").read_text())
            wait_until(lambda: count_lines(out) == 1050)
            time.sleep(1.5)
        finally:
            code, _ = daemon.stop()
        assert code == 0
        log = (tmp_path / "stderr.log").read_text()
        assert log.count("could not save checkpoints") == 1, log  # once, not every commit
        assert "database or disk is full" in log
        assert run_once(tmp_path, state=fs / "state").returncode == 0
    assert out.read_bytes() == lines("a", 1050)  # nothing lost, nothing twice


# -- item 5: permissions -----------------------------------------------------------

def test_the_state_directory_is_0700_and_its_files_0600_under_umask_022(tmp_path: Path, inputs: Path) -> None:
    state = tmp_path / "parent" / "state"
    old = os.umask(0o022)
    try:
        daemon = Daemon(str(inputs), "--sink", "null:", "--state-dir", str(state))
    finally:
        os.umask(old)
    try:  # while it runs: the database's -wal and -shm exist too
        wait_until(lambda: (state / f"{DB_NAME}-wal").exists() and (state / f"{DB_NAME}-shm").exists())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
    finally:
        daemon.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o755  # parents as mkdir -p makes them
    assert modes == {DB_NAME: 0o600, f"{DB_NAME}-wal": 0o600, f"{DB_NAME}-shm": 0o600, "lock": 0o600}


def test_a_state_directory_open_to_others_is_warned_about_not_changed(tmp_path: Path, inputs: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    result = run_once(tmp_path)
    assert result.returncode == 0
    assert result.stderr.count("open to other users (mode 0755)") == 1, result.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o755  # not ours to change


# -- item 4: a --once run that could not deliver ------------------------------------------

def test_once_stopped_by_a_signal_with_lines_unacknowledged_exits_1(tmp_path: Path) -> None:
    """A real sink that hangs: the file sink writing into a pipe whose reader never reads."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 20_000))
    (tmp_path / "in" / "b.log").write_bytes(lines("b", 20_000))
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # holds the pipe open, never reads
    config = tmp_path / "logferry.toml"
    config.write_text('[output]\nshutdown_timeout = "1s"\n')
    try:
        proc = subprocess.Popen([*LOGFERRY, "run", str(tmp_path / "in" / "*.log"), "--once", "-c", str(config),
                                 "--sink", f"file:{fifo}", "--state-dir", str(tmp_path / "state")],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # the pipe is full: the sink's write blocks
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(reader)
    assert proc.returncode == 1, err
    line = err.strip().splitlines()[-1]  # after "a sink did not stop within 1.0s": it is stuck in write(2)
    assert "stopped before every sink acknowledged (shutdown_timeout 1s)" in line, line
    assert "bytes of 2 files were not acknowledged by file:" in line and "read again next run" in line, line


def test_once_whose_last_checkpoint_save_fails_exits_1(tmp_path: Path, inputs: Path) -> None:
    """The output is a pipe the test reads, so the state disk can be filled while the run ships."""
    inputs.write_bytes(lines("a", 30_000))  # several times a pipe's buffer
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with tmpfs(tmp_path / "fs") as fs:
        proc = subprocess.Popen([*LOGFERRY, "run", str(inputs), "--once", "--sink", f"file:{fifo}",
                                 "--state-dir", str(fs / "state")], stderr=subprocess.PIPE, text=True)
        with open(fifo, "rb") as pipe:
            received = pipe.read(64 << 10)
            time.sleep(1.5)  # a commit saves the first acknowledged batches
            fill(fs)
            while chunk := pipe.read(64 << 10):
                received += chunk
        _, err = proc.communicate(timeout=60)
    assert received == lines("a", 30_000)  # delivered in full
    assert proc.returncode == 1, err
    assert err.count("could not save checkpoints in") == 1, err
    last = err.strip().splitlines()[-1]
    assert "the checkpoints of 1 file could not be saved in" in last and "shipped again next run" in last, last
