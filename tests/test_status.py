"""``--stats``: a live table on a terminal, one log line per report otherwise, and a summary at exit;
``--once`` on a terminal: a progress bar, erased at the end, and nothing extra elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Daemon, append, cli, lines, wait_until
from terminal import big_files, run_on_terminal, screen


def test_stats_on_a_terminal_is_a_table_redrawn_in_place_with_live_numbers(tmp_path: Path) -> None:
    big_files(tmp_path / "in", 2, 50_000)

    def caught_up_and_redrawn(raw: str) -> bool:
        # However long the start takes on a busy machine: drawn 3 times, and nothing read lately.
        table = [line for line in screen(raw) if not line.startswith("logferry: ")]
        return raw.count("\x1b[J") >= 3 and len(table) == 5 and table[2].split()[:2] == ["in", "0"]

    code, raw = run_on_terminal(
        ["run", str(tmp_path / "in" / "*.log"), "--sink", "null:", "--state-dir", str(tmp_path / "s"),
         "--stats", "--stats-interval", "0.3"], stop_after=0, until=caught_up_and_redrawn)
    assert code == 0, raw
    assert raw.count("\x1b[J") >= 3 and "\x1b[5F" in raw  # redrawn over its previous five lines
    shown = screen(raw)
    table = [line for line in shown if not line.startswith("logferry: ")]
    assert len(table) == 5, shown  # one table, however many times it was drawn
    assert re.match(r"logferry  up \d+s  files 2 \(open \d\)  loop lag p99 \d+ ms$", table[0]), table
    assert table[1].split() == ["lines/s", "MB/s", "backlog", "retries", "errors"]
    assert table[2].split()[0] == "in" and table[3].split()[0] == "null:"
    assert table[4].startswith("oldest unshipped ")
    first = screen(raw[:raw.index("\x1b[J", raw.index("\x1b[J") + 1)])  # the first table only
    assert int(first[2].split()[1]) > 0, first  # lines/s while catching up
    assert "summary: " in shown[-1] and "100000 lines" in shown[-1]


def test_stats_without_a_terminal_is_one_plain_log_line_per_report_and_a_summary(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(lines("a", 1000))
    stderr = tmp_path / "stderr.log"
    daemon = Daemon(str(log), "--sink", "null:", "--state-dir", str(tmp_path / "s"), "--stats-interval", "0.2",
                    log=stderr)

    def reports() -> list[str]:
        return [line for line in stderr.read_text().splitlines() if line.startswith("logferry: INFO: stats: ")]

    wait_until(lambda: len(reports()) >= 2)  # running and reporting, however long it took to start
    append(log, lines("a", 500, start=1000))
    wait_until(lambda: len(reports()) >= 5)
    code, _ = daemon.stop()
    err = stderr.read_text()
    assert code == 0, err
    assert "\x1b" not in err
    reports = [line for line in err.splitlines() if line.startswith("logferry: INFO: stats: ")]
    assert len(reports) >= 5, err
    assert re.search(r"files=1 open=1 in=\d+ lines/s [\d.]+ MB/s \[null: out=\d+ lines/s [\d.]+ MB/s backlog=0 B "
                     r"retries=0 errors=0\] oldest_unshipped=[\d.]+s checkpoint_lag=.* loop_lag_p99=\d+ ms$",
                     reports[0]), reports[0]
    assert any(not re.search(r" in=0 lines/s", line) for line in reports)
    assert err.splitlines()[-1].startswith("logferry: INFO: summary: ") and "1500 lines" in err.splitlines()[-1]


def test_once_on_a_terminal_shows_a_progress_bar_then_leaves_only_the_summary(tmp_path: Path) -> None:
    big_files(tmp_path / "in", 4, 400_000)
    out = tmp_path / "out.log"
    code, raw = run_on_terminal(["run", str(tmp_path / "in" / "*.log"), "--once", "--sink", f"file:{out}",
                                 "--format", "json", "--state-dir", str(tmp_path / "s")])  # json: slow enough to see
    assert code == 0, raw
    bars = re.findall(r"\[[#-]{30}\] +([\d.]+)%  [\d.]+ [kMG]?B of [\d.]+ [kMG]?B  [\d.]+ MB/s  ETA (?:\d+s|--)", raw)
    assert bars, raw
    shown = screen(raw)  # the bar is erased: only the run's summary is left on the terminal
    assert len(shown) == 1 and shown[0].startswith("logferry: INFO: summary: "), shown
    assert "4 files, read 1600000 lines" in shown[0] and "skipped 0 files (unreadable); lost: none" in shown[0]
    assert all(0 <= float(percent) <= 100 for percent in bars)
    assert out.read_bytes().count(b"\n") == 1_600_000


def test_once_without_a_terminal_prints_nothing_extra(tmp_path: Path) -> None:
    big_files(tmp_path / "in", 2, 100_000)
    result = cli("run", str(tmp_path / "in" / "*.log"), "--once", "--sink", "null:", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""
