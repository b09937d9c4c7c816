"""``logferry sources``: what a run would follow now and why, read-only beside a running logferry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import Daemon, append, cli, count_lines, lines, wait_until


def sources(*args: str) -> dict[str, Any]:
    result = cli("sources", *args, "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def by_path(doc: dict[str, Any], key: str = "files") -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in doc[key]}


def test_a_followed_file_shows_its_identity_checkpoint_and_the_bytes_not_yet_shipped(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    app, state = tmp_path / "in" / "app.log", str(tmp_path / "s")
    app.write_bytes(lines("a", 10))
    assert cli("run", str(app), "--once", "--sink", "null:", "--state-dir", state).returncode == 0
    shipped = app.stat().st_size
    append(app, b"not yet shipped\n")
    doc = sources(str(app), "--state-dir", state)
    st = app.stat()
    entry = by_path(doc)[str(app)]
    assert entry == {
        "path": str(app), "paths": [str(app)], "log": str(app), "dev": st.st_dev, "inode": st.st_ino,
        "fingerprint_length": st.st_size, "size": st.st_size, "offset": shipped, "unshipped": 16,
        "start": "checkpoint", "file_id": entry["file_id"], "checkpoint_path": str(app), "note": None,
        "source": "[sources] paths", "encoding": "utf-8",
    }
    assert doc["checkpoints"] == 1 and doc["checkpoint_db"] == str(tmp_path / "s" / "checkpoints.db")
    assert doc["patterns"] == [{"pattern": str(app), "files": 1, "warning": None}]

    human = cli("sources", str(app), "--state-dir", state)
    assert human.returncode == 0, human.stderr
    row = next(line for line in human.stdout.splitlines() if line.strip().startswith(str(app)))
    assert row.split() == [str(app), str(app), f"{st.st_dev}:{st.st_ino}", str(st.st_size), str(st.st_size),
                           str(shipped), "16", "checkpoint"]
    assert f"state directory {state}: 1 checkpoint in " in human.stdout


def test_left_out_paths_show_their_reason_and_a_pattern_matching_nothing_its_warning(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"followed\n")
    (logs / "old.log.gz").write_bytes(b"excluded\n")
    (logs / "merged.log").write_bytes(b"the sink's own output\n")
    os.mkfifo(logs / "pipe.log")
    (logs / "archive").mkdir()
    nothing = str(tmp_path / "nowhere" / "*.log")
    args = [str(logs / "*"), nothing, str(logs), "--exclude", "*.gz", "--sink", f"file:{logs / 'merged.log'}",
            "--state-dir", str(tmp_path / "s")]
    doc = sources(*args)
    assert list(by_path(doc)) == [str(logs / "app.log")]
    assert by_path(doc)[str(logs / "app.log")]["start"] == "head"
    assert doc["left_out"] == [
        {"path": str(logs), "pattern": str(logs), "reason": "not a regular file", "detail": "directory"},
        {"path": str(logs / "archive"), "pattern": str(logs / "*"), "reason": "not a regular file",
         "detail": "directory"},
        {"path": str(logs / "merged.log"), "pattern": str(logs / "*"), "reason": "sink output", "detail": ""},
        {"path": str(logs / "old.log.gz"), "pattern": str(logs / "*"), "reason": "excluded", "detail": "*.gz"},
        {"path": str(logs / "pipe.log"), "pattern": str(logs / "*"), "reason": "not a regular file", "detail": "FIFO"},
    ]
    assert doc["patterns"] == [
        {"pattern": str(logs / "*"), "files": 1, "warning": None},
        {"pattern": nothing, "files": 0,
         "warning": f"no file matches {nothing} yet: files that appear later are followed"},
        {"pattern": str(logs), "files": 0,
         "warning": f"{logs} is a directory: logferry follows files; to follow the files in it, give the pattern "
                    f"'{logs}/*' (quoted, so that files created later are followed too)"},
    ]

    human = cli("sources", *args)
    assert human.returncode == 0, human.stderr
    text = [line.split(None, 1) for line in human.stdout.splitlines() if line.startswith("  /")]
    assert [str(logs / "pipe.log"), "not a regular file (FIFO)"] in text
    assert [str(logs / "merged.log"), "sink output"] in text
    assert [str(logs / "old.log.gz"), "excluded (*.gz)"] in text
    assert f"pattern {nothing}: warning: no file matches {nothing} yet" in human.stdout
    assert "left out: 5 paths" in human.stdout and "followed: 1 file" in human.stdout


def test_a_rotated_file_belongs_to_the_log_it_was_rotated_from(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    app, state, pattern = tmp_path / "in" / "app.log", str(tmp_path / "s"), str(tmp_path / "in" / "app.log*")
    app.write_bytes(lines("gen1", 5))
    assert cli("run", pattern, "--once", "--sink", "null:", "--state-dir", state).returncode == 0
    append(app, b"written before the rotation, not shipped\n")
    app.rename(tmp_path / "in" / "app.log.1")
    app.write_bytes(lines("gen2", 2))
    files = by_path(sources(pattern, "--state-dir", state))
    rotated, live = files[str(app) + ".1"], files[str(app)]
    assert (rotated["log"], rotated["start"], rotated["checkpoint_path"]) == (str(app), "checkpoint", str(app))
    assert rotated["unshipped"] == 41 and rotated["offset"] == len(lines("gen1", 5))
    assert (live["log"], live["start"], live["offset"], live["unshipped"]) == (str(app), "head", 0, len(lines("gen2", 2)))


def test_sources_beside_a_running_logferry_disturbs_nothing(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    app, out, state = tmp_path / "in" / "app.log", tmp_path / "out.log", tmp_path / "s"
    app.write_bytes(lines("x", 100))
    daemon = Daemon(str(app), "--sink", f"file:{out}", "--state-dir", str(state), "--poll-interval", "0.1")
    try:
        wait_until(lambda: count_lines(out) == 100)
        names = sorted(os.listdir(state))
        for n in range(5):
            append(app, lines("y", 10, start=10 * n))
            doc = sources(str(app), "--state-dir", str(state))  # no "state directory in use"
            assert by_path(doc)[str(app)]["start"] == "checkpoint"
            wait_until(lambda n=n: count_lines(out) == 100 + 10 * (n + 1))  # the run keeps shipping
        assert sorted(os.listdir(state)) == names
        wait_until(lambda: by_path(sources(str(app), "--state-dir", str(state)))[str(app)]["unshipped"] == 0)
        assert daemon.alive()
    finally:
        code, err = daemon.stop()
    assert code == 0 and "WARNING" not in err and "ERROR" not in err, err
    assert out.read_bytes() == app.read_bytes()


def test_sources_creates_nothing_in_a_state_directory(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    app, state = tmp_path / "in" / "app.log", tmp_path / "s"
    app.write_bytes(b"one\n")
    doc = sources(str(app), "--state-dir", str(state))
    assert not state.exists()  # never created
    assert (doc["checkpoint_db"], doc["checkpoints"]) == (None, 0)
    assert by_path(doc)[str(app)]["unshipped"] == 4
    assert cli("run", str(app), "--once", "--sink", "null:", "--state-dir", str(state)).returncode == 0
    before = {name: (state / name).stat().st_mtime_ns for name in os.listdir(state)}
    assert by_path(sources(str(app), "--state-dir", str(state)))[str(app)]["unshipped"] == 0
    assert {name: (state / name).stat().st_mtime_ns for name in os.listdir(state)} == before  # no -wal, no -shm


def test_a_bad_config_or_no_pattern_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[sources]\npaths = 3\n")
    bad = cli("sources", "-c", str(config))
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "paths" in bad.stderr, bad.stderr
    none = cli("sources", "--state-dir", str(tmp_path / "s"))
    assert none.returncode == 2 and none.stderr.startswith("logferry: error: no files to follow"), none.stderr
    assert not (tmp_path / "s").exists()


def test_sources_reads_a_state_directory_of_the_previous_schema(tmp_path: Path) -> None:
    """A state directory written before line ids were derived (schema 1) is read as it is: sources
    migrates nothing (it writes nothing)."""
    import sqlite3

    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    state = tmp_path / "state"
    state.mkdir()
    st = log.stat()
    db = sqlite3.connect(state / "checkpoints.db")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE files (file_id TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
            fp_len INTEGER NOT NULL, fp BLOB NOT NULL, offset INTEGER NOT NULL, guard BLOB NOT NULL,
            size INTEGER NOT NULL, path TEXT NOT NULL, lineage TEXT NOT NULL, state TEXT NOT NULL, seen REAL NOT NULL);
    """)
    from logferry.files.identity import Fingerprint, guard_of

    fp = Fingerprint.of(b"one\ntwo\n")
    db.execute("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               ("0123456789abcdef", st.st_dev, st.st_ino, fp.length, fp.value, 4, guard_of(b"one\n", 4), 8,
                str(log), str(log), "live", 0.0))
    db.commit()
    db.close()
    result = cli("sources", str(log), "--state-dir", str(state), "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["offset"] == 4 and entry["unshipped"] == 4 and entry["start"] == "checkpoint", entry


def test_sources_says_what_a_run_would_say_of_an_empty_checkpoint_database(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"one\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "checkpoints.db").write_bytes(b"")
    shown = cli("sources", str(tmp_path / "app.log"), "--state-dir", str(state))
    run = cli("run", str(tmp_path / "app.log"), "--once", "--state-dir", str(state), "--sink", "null:")
    assert shown.returncode == run.returncode == 2
    assert shown.stderr == run.stderr and "--reset-unreadable-checkpoints" in shown.stderr, shown.stderr
    assert sorted(p.name for p in state.iterdir()) == ["checkpoints.db", "lock"]  # the run's lock: sources wrote nothing
