"""Line ids: the same line has the same id whichever state directory ships it, and two different
files (identical first lines, a reused inode, another host, a file's next generation after a
truncation) never share one."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LOGFERRY, append, cli, lines, out_lines, run_engine, wait_for
from logferry.files.identity import Fingerprint, guard_of


def ship(tmp_path: Path, pattern: str, state: str, out: str = "out.json") -> list[dict]:
    """``logferry run --once --format json`` into tmp_path/OUT with the state dir tmp_path/STATE;
    the records it wrote in this run."""
    path = tmp_path / out
    before = path.stat().st_size if path.exists() else 0
    run = cli("run", pattern, "--once", "--format", "json", "--sink", f"file:{path}", "--state-dir",
              str(tmp_path / state))
    assert run.returncode == 0, run.stderr
    with open(path, "rb") as f:
        f.seek(before)
        return [json.loads(line) for line in f.read().splitlines()]


def ids_by_line(records: list[dict]) -> dict[tuple[str, int, str], set[str]]:
    out: dict[tuple[str, int, str], set[str]] = {}
    for r in records:
        out.setdefault((r["path"], r["offset"], r["line"]), set()).add(r["id"])
    return out


def test_the_same_line_has_the_same_id_from_any_state_directory(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log, wide = tmp_path / "in" / "app.log", tmp_path / "in" / "wide.log"
    pattern = str(tmp_path / "in" / "*.log")
    log.write_bytes(b"")
    wide.write_bytes(b"w" * 100)  # a first line longer than the part of it ids depend on, unfinished
    records = ship(tmp_path, pattern, "empty")  # first sees app.log empty
    append(log, b"first line, half writ")
    records += ship(tmp_path, pattern, "half")  # first sees half of its first line
    append(log, b"ten\n" + lines("a", 100))
    append(wide, b"\n" + lines("w", 10))
    records += ship(tmp_path, pattern, "full")
    append(log, lines("b", 100))
    for state in ("empty", "half", "full", "late"):  # "late" first sees the file long after
        records += ship(tmp_path, pattern, state)
    ids = ids_by_line(records)
    assert len(ids) == 201 + 11
    assert all(len(v) == 1 for v in ids.values()), {k: v for k, v in ids.items() if len(v) > 1}
    assert len(records) == 4 * (201 + 11)  # every state dir shipped every line


def test_files_with_identical_content_never_share_an_id(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / "in" / d).mkdir(parents=True)
        (tmp_path / "in" / d / "app.log").write_bytes(b"# the same header\n" + lines("x", 50))
    records = ship(tmp_path, str(tmp_path / "in" / "*" / "app.log"), "state")
    assert len(records) == 102
    assert len({r["id"] for r in records}) == 102


def test_a_reused_inode_with_the_same_content_gets_new_ids(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 20))
    from logferry.files.identity import birth_time

    fd = os.open(log, os.O_RDONLY)
    born = birth_time(fd)
    os.close(fd)
    if born is None:
        pytest.skip("this file system records no birth time: a reused inode with the same head keeps its ids")
    first = ship(tmp_path, str(log), "one")
    inode = log.stat().st_ino
    log.unlink()
    for n in range(5000):  # ext4 hands out the lowest free inode: take the lower ones until it is the old one
        new = tmp_path / "in" / f"new-{n}"
        new.touch()
        if new.stat().st_ino == inode:
            new.write_bytes(lines("a", 20))
            new.rename(log)
            break
    else:
        pytest.skip("the file system did not reuse the inode")
    again = ship(tmp_path, str(log), "two")  # a state directory that never saw the first file
    assert [r["line"] for r in again] == [r["line"] for r in first]
    assert not {r["id"] for r in first} & {r["id"] for r in again}


def test_another_host_gives_the_same_file_other_ids(tmp_path: Path) -> None:
    """Two hosts with the same paths (same inode numbers too, as on clones of one image): here the
    same file, shipped once under another host name in a UTS namespace of its own."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode:
        pytest.skip("cannot make a UTS namespace here (needs root and unshare)")
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 20))
    here = ship(tmp_path, str(log), "here")
    out = tmp_path / "there.json"
    command = shlex.join([*LOGFERRY, "run", str(log), "--once", "--format", "json", "--sink", f"file:{out}",
                        "--state-dir", str(tmp_path / "there")])
    run = subprocess.run(["unshare", "--uts", "sh", "-c", f"hostname other-host && {command}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    there = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["line"] for r in there] == [r["line"] for r in here]
    assert not {r["id"] for r in here} & {r["id"] for r in there}


def test_lines_after_a_truncation_do_not_get_the_ids_of_the_lines_before(settings, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    # watch=False: polling finds the truncation; a watcher's first start imports watchdog on the loop
    s = settings(sinks=[f"file:{out}"], format="json", watch=False)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"# header\n" + lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path, "out.json")) == 101)
        os.truncate(log, 0)  # and written again: the same first line, lines of the same length
        append(log, b"# header\n" + lines("b", 120))
        await wait_for(lambda: len(out_lines(tmp_path, "out.json")) == 222)

    run_engine(s, until)
    records = [json.loads(line) for line in out_lines(tmp_path, "out.json")]
    before, after = records[:101], records[101:]
    assert [r["offset"] for r in before] == [r["offset"] for r in after[:101]]
    assert after[0]["line"] == "# header" and after[1]["line"] == "b-000000"
    assert not {r["id"] for r in before} & {r["id"] for r in after}


def test_lines_after_a_truncation_while_stopped_do_not_get_the_ids_of_the_lines_before(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"# header\n" + lines("a", 50))
    before = ship(tmp_path, str(log), "state")
    os.truncate(log, 0)
    log.write_bytes(b"# header\n" + lines("b", 50))  # the same first line, lines of the same length
    after = ship(tmp_path, str(log), "state")
    assert [r["offset"] for r in after] == [r["offset"] for r in before]
    assert not {r["id"] for r in before} & {r["id"] for r in after}
    # Another state directory that saw both generations gives them the same ids.
    log.write_bytes(b"# header\n" + lines("a", 50))
    assert ids_by_line(ship(tmp_path, str(log), "other")) == ids_by_line(before)
    os.truncate(log, 0)
    log.write_bytes(b"# header\n" + lines("b", 50))
    assert ids_by_line(ship(tmp_path, str(log), "other")) == ids_by_line(after)


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    file_id TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, fp_len INTEGER NOT NULL,
    fp BLOB NOT NULL, offset INTEGER NOT NULL, guard BLOB NOT NULL, size INTEGER NOT NULL,
    path TEXT NOT NULL, lineage TEXT NOT NULL, state TEXT NOT NULL, seen REAL NOT NULL
);
CREATE INDEX files_by_inode ON files (dev, ino);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_a_state_directory_of_schema_1_keeps_the_ids_of_files_being_shipped(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "app.log"
    shipped = lines("a", 10)
    log.write_bytes(shipped + lines("a", 5, start=10))
    (tmp_path / "state").mkdir()
    db = sqlite3.connect(tmp_path / "state" / "checkpoints.db")
    db.executescript(SCHEMA_1)
    st = log.stat()
    fp = Fingerprint.of(log.read_bytes()[:1024])
    db.execute("INSERT INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               ("0123456789abcdef", st.st_dev, st.st_ino, fp.length, fp.value, len(shipped),
                guard_of(shipped, len(shipped)), st.st_size, str(log), str(log), "live", time.time()))
    db.commit()
    db.close()
    records = ship(tmp_path, str(log), "state")
    assert [r["line"] for r in records] == [f"a-{i:06d}" for i in range(10, 15)]
    assert [r["id"] for r in records] == [f"0123456789abcdef:{r['offset']}" for r in records]
    db = sqlite3.connect(tmp_path / "state" / "checkpoints.db")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()


def test_a_copy_that_takes_over_a_truncated_file_ships_its_lines_with_the_original_ids(settings, tmp_path: Path
                                                                                        ) -> None:
    out = tmp_path / "out.json"
    s = settings(str(tmp_path / "in" / "app.log*"), sinks=[f"file:{out}"], format="json", rotate_wait=2.0,
                 watch=False)
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 100))

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path, "out.json")) == 100)
        append(log, lines("a", 50, start=100))  # not read yet when logrotate copies and truncates
        shutil.copyfile(log, log.with_name("app.log.1"))
        os.truncate(log, 0)
        append(log, lines("a", 30, start=150))
        await wait_for(lambda: len(out_lines(tmp_path, "out.json")) >= 180)

    run_engine(s, until)
    records = [json.loads(line) for line in out_lines(tmp_path, "out.json")]
    assert [r["line"] for r in records] == [f"a-{i:06d}" for i in range(180)]
    bases = [r["id"].split(":")[0] for r in records]
    assert {r["path"] for r in records[100:150]} == {str(log.with_name("app.log.1"))}
    assert len(set(bases[:150])) == 1  # the original's lines, whichever file they were read from
    assert len(set(bases[150:])) == 1 and bases[150] != bases[0]
    assert [r["id"] for r in records[:150]] == [f"{bases[0]}:{r['offset']}" for r in records[:150]]
