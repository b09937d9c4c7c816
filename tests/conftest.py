"""Shared helpers: run the engine in asyncio debug mode (failing on loop-blocking callbacks), run the
``logferry`` command as a real subprocess, write test files."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("logferry.testing")  # before the import below, as for any pytest plugin

from logferry import Settings, SinkSpec
from logferry.engine import Engine
from logferry.testing import run_debug, run_without_blocking  # noqa: F401 - run_debug: for the tests

# The opt-in helpers for plugin authors, used here as a plugin author would; pytester runs the
# sink contract against deliberately bad sinks in tests/test_sink_contract.py.
pytest_plugins = ["logferry.testing", "pytester"]


def run_engine(settings: Settings, until: Callable[[Engine], Awaitable[object]] | None = None, **engine_kw):
    """Run an Engine in debug mode until ``until(engine)`` returns (or to the end with ``once``);
    fail if any callback blocked the loop. Returns (engine, until's result)."""

    engine = Engine(settings, **engine_kw)  # loading plugins imports modules: before the loop runs

    async def main() -> tuple[Engine, object]:
        running = asyncio.create_task(engine.run())
        result = None
        if until is not None:
            ready = asyncio.create_task(engine.wait_ready())
            await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                result = await until(engine)
                engine.stop()
        await running
        return engine, result

    return run_without_blocking(main)


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0,
                   interval: float = 0.02) -> None:
    """Wait until ``predicate()`` holds; it may return an awaitable (e.g. :func:`holds_lines`)."""

    async def holds() -> bool:
        result = predicate()
        return await result if inspect.isawaitable(result) else result

    deadline = time.monotonic() + timeout
    while not await holds():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(interval)


def shipped_everything(engine: Engine, paths: list[Path]) -> bool:
    acked = {path: offset for path, offset, _ in engine.progress()}
    return all(acked.get(str(p)) == p.stat().st_size for p in paths)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def out_lines(tmp_path: Path, name: str = "out.log") -> list[bytes]:
    """The lines the default test sink (tmp_path/out.log) has received so far."""
    path = tmp_path / name
    return path.read_bytes().splitlines() if path.exists() else []


async def holds_lines(path: Path, n: int) -> bool:
    """Does ``path`` hold ``n`` lines? Counted on a worker thread: a large output is read off the loop."""
    return await asyncio.to_thread(count_lines, path) == n


def lines(prefix: str, n: int, start: int = 0) -> bytes:
    return b"".join(f"{prefix}-{i:06d}\n".encode() for i in range(start, start + n))


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a run over tmp_path/in with a state dir in tmp_path, fast timings for tests."""

    def make(*patterns: str, sinks: list[str] | None = None, **kw) -> Settings:
        (tmp_path / "in").mkdir(exist_ok=True)
        base = dict(
            paths=list(patterns) or [str(tmp_path / "in" / "*.log")],
            sinks=[SinkSpec(url) for url in (sinks or [f"file:{tmp_path / 'out.log'}"])],
            state_dir=tmp_path / "state",
            poll_interval=0.05,
            scan_interval=0.1,
            rotate_wait=0.3,
            commit_interval=0.1,
        )
        base.update(kw)
        return Settings(**base)

    return make


# -- the command as a real subprocess ---------------------------------------------------

LOGFERRY = [sys.executable, "-m", "logferry"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOGFERRY, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class Daemon:
    """``logferry run`` in follow mode as a subprocess, stopped with a signal."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        """``log``: append stderr to this file instead of keeping it for :meth:`stop`."""
        self._log = open(log, "a") if log else None  # noqa: SIM115 - closed when the process ends
        self.proc = subprocess.Popen([*LOGFERRY, "run", *args], stdout=subprocess.PIPE,
                                     stderr=self._log or subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        self._close_log()
        return self.proc.returncode, err or ""

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(interval)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where``: a disk that fills up (mounting needs root, as
    in CI; skips where it is not permitted)."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command: this test needs a real tmpfs")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)
