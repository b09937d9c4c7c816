"""What a new user sees: one-line usage errors that name the fix, help that answers the first
questions, and a stop that says what it waits for. Through the real command, as a subprocess."""

from __future__ import annotations

import array
import fcntl
import os
import signal
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from conftest import Daemon, cli, lines, wait_until

# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (("run", "--poll-interval", "5x"),
     "--poll-interval: expected a duration such as 5, \"250ms\" or \"10m\", got '5x'; see 'logferry run --help'"),
    (("run", "--format", "xml"),
     "--format: invalid choice: 'xml' (choose from 'raw', 'json'); see 'logferry run --help'"),
    (("verify", "out.log"), "the following arguments are required: INPUT; see 'logferry verify --help'"),
    (("demo", "--files", "many"), "--files: invalid int value: 'many'; see 'logferry demo --help'"),
    (("config", "show", "--from-head", "--from-tail"),
     "--from-tail: not allowed with argument --from-head; see 'logferry config show --help'"),
    (("config",), "the following arguments are required: ACTION; see 'logferry config --help'"),
    ((), "the following arguments are required: COMMAND; see 'logferry --help'"),
])
def test_a_bad_flag_value_is_one_line_naming_the_commands_help(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"logferry: error: {message}\n"  # no usage block


@pytest.mark.parametrize("args,message", [
    (("run", "--snk", "file:/tmp/x", "/var/log/*.log"),
     "unrecognized argument: --snk (did you mean --sink?); see 'logferry run --help'"),
    (("run", "--onse", "--state-dir=/tmp/s", "--stats-intervl=1"),
     "unrecognized arguments: --onse (did you mean --once?), --stats-intervl=1 (did you mean --stats-interval?); "
     "see 'logferry run --help'"),
    (("plugins", "--jsn"), "unrecognized argument: --jsn (did you mean --json?); see 'logferry plugins --help'"),
    (("verify", "a", "b", "--fromat=json"),
     "unrecognized argument: --fromat=json (did you mean --format?); see 'logferry verify --help'"),
    (("config", "check", "-c", "x.toml", "--no-plugns"),
     "unrecognized argument: --no-plugns (did you mean --no-plugins?); see 'logferry config check --help'"),
    (("demo", "--stats"), "unrecognized argument: --stats (a flag of 'logferry run'); see 'logferry demo --help'"),
])
def test_a_mistyped_flag_names_the_command_and_the_closest_flag(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"logferry: error: {message}\n"


# -- help --------------------------------------------------------------------------------------


def test_run_help_has_examples_the_default_sink_and_the_state_directory() -> None:
    result = cli("run", "--help", env={"XDG_STATE_HOME": "/srv/st%ate"})  # short: help wraps long words
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "examples: logferry run '/var/log/app/*.log' follow; lines go to stdout" in text
    assert "--once --sink 'redis://127.0.0.1:6379/0?stream=logs'" in text
    assert "or a plugin's scheme (see logferry plugins); default: stdout" in text
    assert "where checkpoints live (default: /srv/st%ate/logferry)" in text
    assert "Checkpoints live in /srv/st%ate/logferry unless --state-dir" in text
    assert "Every setting: logferry config reference." in text


def test_demo_says_that_keep_keeps_its_directory() -> None:
    result = cli("demo", "--files", "2", "--lines", "10")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("removed /") and last.endswith(
        "; run logferry demo --keep to keep it and try logferry on its files")
    assert not os.path.exists(last.split()[1].rstrip(";"))
    assert "keep the demo directory (its files, merged output and state)" in " ".join(cli("demo", "--help").stdout.split())


# -- stopping ----------------------------------------------------------------------------------


def test_ctrl_c_with_a_stuck_sink_says_what_it_waits_for_and_a_second_stops_at_once(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 100_000))  # 1.1 MB: more than a pipe holds
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened, never read: the sink's writes block
    config = tmp_path / "c.toml"
    config.write_text('[output]\nshutdown_timeout = "10m"\n')  # the first Ctrl-C alone would wait that long
    log = tmp_path / "stderr.log"
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "-c", str(config), "--sink", f"file:{fifo}",
                    "--state-dir", str(tmp_path / "s"), log=log)
    try:
        wait_until(lambda: _pipe_full(reader), timeout=60)  # the rest is in flight: written, not taken
        daemon.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping:" in log.read_text(), timeout=60)
        assert daemon.alive()
        daemon.proc.send_signal(signal.SIGINT)
        code, _ = daemon.stop(signal.SIGINT, timeout=60)  # well within the 10 minutes
    finally:
        if daemon.alive():
            daemon.kill()
        os.close(reader)
    assert code == 0
    err = log.read_text()
    assert f"logferry: WARNING: stopping: waiting up to 10m for file:{fifo} to acknowledge " in err
    assert ("; press Ctrl-C again to stop now (unacknowledged lines are read again next run)\n") in err
    assert "not acknowledged by every sink: they are read again next run" in err


def _pipe_full(reader: int) -> bool:
    """Whether the pipe holds all it can (the sink's next write blocks)."""
    waiting = array.array("i", [0])
    fcntl.ioctl(reader, termios.FIONREAD, waiting)
    return waiting[0] >= fcntl.fcntl(reader, fcntl.F_GETPIPE_SZ)


def test_a_clean_stop_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 100))
    out = tmp_path / "out.log"
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "--sink", f"file:{out}", "--state-dir", str(tmp_path / "s"))
    try:
        wait_until(lambda: out.exists() and out.read_bytes() == lines("a", 100), timeout=60)
        code, err = daemon.stop(signal.SIGINT)
    finally:
        if daemon.alive():
            daemon.kill()
    assert (code, err) == (0, "")


def test_ctrl_c_while_a_sink_cannot_start_says_so_once_the_stop_lingers(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(b"line\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody reads it: opening it for writing blocks the sink's start
    config = tmp_path / "c.toml"
    config.write_text('[output]\nshutdown_timeout = "10m"\n')
    log = tmp_path / "stderr.log"
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "-c", str(config), "--sink", f"file:{fifo}",
                    "--state-dir", str(tmp_path / "s"), log=log)
    try:
        wait_until(lambda: (tmp_path / "s").exists(), timeout=60)  # started: the checkpoint store is open
        daemon.proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping:" in log.read_text(), timeout=60)
        code, _ = daemon.stop(signal.SIGINT, timeout=60)
    finally:
        if daemon.alive():
            daemon.kill()
    assert code == 0
    assert log.read_text().startswith(
        "logferry: WARNING: stopping: waiting up to 10m for the sinks to finish; press Ctrl-C again to stop now\n")


def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """`logferry sources --json | head -1`: no 'internal error' when the reader stops reading."""
    for n in range(300):
        (tmp_path / f"f{n:03d}.log").write_bytes(b"x\n")
    proc = subprocess.run(f"{sys.executable} -m logferry sources '{tmp_path}/*.log' --state-dir {tmp_path}/s --json"
                          " | head -c 10 > /dev/null; exit ${PIPESTATUS[0]}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode in (0, 141)
