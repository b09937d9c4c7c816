"""``--debug``: asyncio debug mode reports a callback that blocked the loop (one stderr line naming
the task's coroutine and file:line), and errors show their traceback; without it, neither."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distributions import make_distribution

BLOCKING_SINK = """
import time
import logferry

class BlockingSink(logferry.Sink):
    async def send(self, batch):
        time.sleep(0.2)  # holds the event loop: exactly what --debug must report

@logferry.hookimpl
def logferry_sink_schemes():
    return ["blocking"]

@logferry.hookimpl
def logferry_make_sink(url, scheme, options, settings):
    if scheme == "blocking":
        return BlockingSink(url)
"""

BROKEN_SINK = """
import logferry

class BrokenSink(logferry.Sink):
    @property
    def output_path(self):  # a bug in a plugin: the engine hits it while it sets up
        raise RuntimeError("a bug on purpose")

    async def send(self, batch):
        pass

@logferry.hookimpl
def logferry_sink_schemes():
    return ["broken"]

@logferry.hookimpl
def logferry_make_sink(url, scheme, options, settings):
    if scheme == "broken":
        return BrokenSink(url)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    make_distribution(root, "logferry-blocking", "logferry_blocking", BLOCKING_SINK)
    make_distribution(root, "logferry-broken", "logferry_broken", BROKEN_SINK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("LOGFERRY_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("LOGFERRY_LOAD_PLUGINS", raising=False)
    return root


def run(tmp_path: Path, sink: str, *flags: str) -> subprocess.CompletedProcess[str]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "app.log").write_text("".join(f"line {n}\n" for n in range(10)))
    return subprocess.run(
        [sys.executable, "-m", "logferry", "run", "--once", "--sink", sink, "--state-dir", str(tmp_path / "state"),
         "--log-level", "warning", *flags, str(logs / "*.log")],
        capture_output=True, text=True, timeout=120)


def slow_reports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Executing" in line and " took " in line]


def test_debug_reports_a_blocking_sink_in_one_line_naming_its_coroutine(site: Path, tmp_path: Path) -> None:
    done = run(tmp_path, "blocking:", "--debug")
    assert done.returncode == 0, done.stderr
    reports = slow_reports(done.stderr)
    blocked = [line for line in reports if ("Pipeline.consume()" in line or "Pipeline._send()" in line)]
    assert blocked, done.stderr
    assert blocked[0].startswith("logferry: WARNING: Executing <Task")
    assert "pipeline.py:" in blocked[0] and "took 0.2" in blocked[0]


def test_without_debug_there_is_no_slow_callback_report(site: Path, tmp_path: Path) -> None:
    done = run(tmp_path, "blocking:")
    assert done.returncode == 0, done.stderr
    assert slow_reports(done.stderr) == []


def test_an_internal_error_is_one_line_without_debug_and_a_traceback_with_it(site: Path, tmp_path: Path) -> None:
    plain = run(tmp_path, "broken:")
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        "logferry: internal error: RuntimeError: a bug on purpose (run with --debug for the traceback)"]

    debug = run(tmp_path, "broken:", "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last):" in debug.stderr
    assert "logferry_broken.py" in debug.stderr and 'raise RuntimeError("a bug on purpose")' in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("logferry: internal error: RuntimeError")


def test_the_debug_help_states_the_threshold() -> None:
    from logferry.cli import SLOW_CALLBACK, build_parser

    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    debug = next(a for a in run_parser._actions if "--debug" in a.option_strings)  # noqa: SLF001
    assert f"{SLOW_CALLBACK * 1000:g} ms" in debug.help
