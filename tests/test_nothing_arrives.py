"""When nothing arrives, logferry says why: patterns that match nothing, a directory given as the
pattern, unreadable files, and the one-line summary that ends ``--once`` (issue 11), all through the
real command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import LOGFERRY, Daemon, cli, count_lines, wait_until
from terminal import run_on_terminal, screen


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("logferry: WARNING: ")]


def test_a_pattern_matching_nothing_is_one_warning_in_once_mode(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "app.log").write_bytes(b"one\n")
    typo = str(tmp_path / "in" / "*.lgo")
    result = cli("run", str(tmp_path / "in" / "*.log"), typo, "--once", "--sink", f"file:{tmp_path / 'out.log'}",
                 "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == [f"logferry: WARNING: no file matches {typo}"]
    assert (tmp_path / "out.log").read_bytes() == b"one\n"


def test_a_pattern_matching_nothing_warns_at_start_in_follow_mode_and_a_later_match_is_quiet(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pattern, out, log = str(tmp_path / "in" / "*.log"), tmp_path / "out.log", tmp_path / "stderr.log"
    daemon = Daemon(pattern, "--sink", f"file:{out}", "--state-dir", str(tmp_path / "s"), "--poll-interval", "0.1",
                    log=log)
    try:
        wait_until(lambda: "no file matches" in log.read_text())
        (tmp_path / "in" / "late.log").write_bytes(b"appeared later\n")  # logs appear after the shipper: normal
        wait_until(lambda: count_lines(out) == 1)
    finally:
        code, _ = daemon.stop()
    assert code == 0
    assert warnings(log.read_text()) == [
        f"logferry: WARNING: no file matches {pattern} yet: files that appear later are followed"]


def test_a_directory_given_as_the_pattern_warns_with_the_pattern_to_give(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"not followed: a directory is not a pattern of its files\n")
    result = cli("run", str(logs), "--once", "--sink", f"file:{tmp_path / 'out.log'}", "--state-dir",
                 str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == [
        f"logferry: WARNING: {logs} is a directory: logferry follows files; to follow the files in it, give the "
        f"pattern '{logs}/*' (quoted, so that files created later are followed too)"]
    assert not (tmp_path / "out.log").exists() or (tmp_path / "out.log").read_bytes() == b""


def test_a_pattern_whose_files_are_all_left_out_says_why(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "old.log.gz").write_bytes(b"\x1f\x8b compressed\n")
    pattern = str(tmp_path / "in" / "*")
    result = cli("run", pattern, "--once", "--exclude", "*.gz", "--sink", "null:", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == [
        f"logferry: WARNING: {pattern} matches no file to follow (1 excluded); see 'logferry sources'"]


def unprivileged() -> list[str]:
    """A command prefix under which chmod 000 makes a file unreadable (root reads anything: drop
    the capabilities that let it, keeping its uid so the test's directories stay usable)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_an_unreadable_file_is_warned_about_and_counted_in_the_once_summary(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.log").write_bytes(b"ok 1\nok 2\n")
    locked = tmp_path / "in" / "locked.log"
    locked.write_bytes(b"secret\n")
    locked.chmod(0)
    result = subprocess.run([*unprivileged(), *LOGFERRY, "run", str(tmp_path / "in" / "*.log"), "--once", "--stats",
                             "--sink", f"file:{tmp_path / 'out.log'}", "--state-dir", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == [
        f"logferry: WARNING: cannot read {locked}: Permission denied (skipped until it becomes readable)"]
    summary = result.stderr.splitlines()[-1]
    assert summary.startswith("logferry: INFO: summary: "), result.stderr
    assert "1 file, read 2 lines (10 B)" in summary and "skipped 1 file (unreadable)" in summary, summary


def test_the_once_summary_with_stats_names_files_lines_bytes_and_the_bytes_lost_by_reason(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(b"short\n" + b"x" * 5000 + b"\n")
    (tmp_path / "in" / "b.log").write_bytes(b"b\n")
    config = tmp_path / "logferry.toml"
    config.write_text('[sources]\nmax_line_bytes = "1KiB"\nlong_lines = "skip"\n')
    result = cli("run", str(tmp_path / "in" / "*.log"), "-c", str(config), "--once", "--stats", "--sink",
                 f"file:{tmp_path / 'out.log'}", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    summaries = [line for line in lines if "summary: " in line]
    assert summaries == [lines[-1]], result.stderr  # one line, the last
    assert re.search(r"summary: [\d.]+s, 2 files, read 2 lines \(8 B\); shipped: file:\S+out.log 2 lines 8 B "
                     r"retries=0 errors=0; skipped 0 files \(unreadable\); lost: line_too_long=5001 B; loop lag",
                     lines[-1]), lines[-1]
    assert not any("bytes lost this run" in line for line in lines)  # said once, in the summary


def test_the_once_summary_is_left_on_a_terminal_without_stats(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(b"1\n2\n3\n")
    code, raw = run_on_terminal(["run", str(tmp_path / "in" / "*.log"), "--once", "--sink", "null:", "--state-dir",
                                 str(tmp_path / "s")])
    assert code == 0, raw
    shown = screen(raw)
    assert len(shown) == 1 and re.match(r"logferry: INFO: summary: [\d.]+s, 1 file, read 3 lines \(6 B\); shipped: "
                                        r"null: 3 lines 6 B .*; skipped 0 files \(unreadable\); lost: none;",
                                        shown[0]), shown


def test_a_pattern_that_still_matches_nothing_is_warned_about_again_at_a_low_rate(settings, tmp_path: Path, caplog,
                                                                                 monkeypatch) -> None:
    from conftest import run_engine, wait_for
    from logferry.files import discovery

    monkeypatch.setattr(discovery, "UNMATCHED_REPEAT", 0.3)  # an hour in a real run
    # (watch=False: periodic scans every 0.1 s, as on a file system without events)
    pattern = str(tmp_path / "in" / "*.log")
    caplog.set_level("WARNING", logger="logferry.files.discovery")

    def told() -> list[str]:
        return [r.getMessage() for r in caplog.records if "no file matches" in r.getMessage()]

    run_engine(settings(pattern, watch=False), until=lambda engine: wait_for(lambda: len(told()) >= 3))
    first, *again = told()
    assert first == f"no file matches {pattern} yet: files that appear later are followed"
    assert set(again) == {first + " (still, since the start)"}
