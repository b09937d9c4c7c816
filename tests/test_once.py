"""--once ships every line exactly once; a second --once ships only what was appended since."""

from __future__ import annotations

from pathlib import Path

from conftest import append, cli, lines, run_engine


def test_six_files_of_20000_lines_ship_exactly_once_then_only_appended_lines(settings, tmp_path: Path) -> None:
    inputs = [tmp_path / "in" / f"f{i}.log" for i in range(6)]
    s = settings(once=True)
    for i, path in enumerate(inputs):
        path.write_bytes(lines(f"f{i}", 20_000))
    run_engine(s)
    out = tmp_path / "out.log"
    result = cli("verify", str(out), *map(str, inputs))
    assert result.returncode == 0, result.stdout
    assert out.read_bytes().count(b"\n") == 120_000

    for i, path in enumerate(inputs):
        append(path, lines(f"f{i}", 500, start=20_000))
    run_engine(s)
    assert out.read_bytes().count(b"\n") == 120_000 + 3_000
    result = cli("verify", str(out), *map(str, inputs))
    assert result.returncode == 0, result.stdout


def test_once_through_the_command_twice_ships_nothing_twice(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(lines("a", 1000))
    out, state = tmp_path / "out.txt", tmp_path / "state"
    for _ in range(2):
        result = cli("run", str(log), "--once", "--sink", f"file:{out}", "--state-dir", str(state))
        assert result.returncode == 0, result.stderr
    assert out.read_bytes() == log.read_bytes()


def test_an_unterminated_last_line_waits_for_its_newline(settings, tmp_path: Path) -> None:
    log = tmp_path / "in" / "a.log"
    s = settings(once=True)
    log.write_bytes(b"complete\npartial")
    run_engine(s)
    out = tmp_path / "out.log"
    assert out.read_bytes() == b"complete\n"
    append(log, b" now done\n")
    run_engine(s)
    assert out.read_bytes() == b"complete\npartial now done\n"


def test_from_tail_skips_existing_lines_of_files_without_checkpoint(settings, tmp_path: Path) -> None:
    s = settings(once=True, start="tail")
    log = tmp_path / "in" / "a.log"
    log.write_bytes(lines("old", 10) + b"half")
    run_engine(s)
    assert not (tmp_path / "out.log").exists() or (tmp_path / "out.log").read_bytes() == b""
    append(log, b"-line\nnew\n")
    run_engine(s)
    assert (tmp_path / "out.log").read_bytes() == b"half-line\nnew\n"
