"""Helpers for the end-to-end tests: live writers, the real ``logferry`` command, and the check
that a stream holds every line of the files exactly once, in order per file."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote_to_bytes

from .conftest import messages

LOGFERRY = [sys.executable, "-m", "logferry"]


class Writers:
    """Threads appending numbered lines to files at random intervals, as live applications do."""

    def __init__(self, directory: Path, names: list[str], pause: float = 0.01) -> None:
        self.paths = [directory / name for name in names]
        self.pause = pause
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(p, i), daemon=True)
                         for i, p in enumerate(self.paths)]

    def start(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def expected(self) -> dict[bytes, list[bytes]]:
        return {os.fsencode(p): p.read_bytes().splitlines() for p in self.paths}

    def _write(self, path: Path, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        with open(path, "ab", buffering=0) as f:
            while not self._stop.is_set():
                burst = b"".join(f"{path.name} {n + i:06d} {'x' * rng.randrange(80)}\n".encode()
                                 for i in range(rng.randrange(1, 40)))
                n += burst.count(b"\n")
                f.write(burst)
                time.sleep(rng.uniform(0, self.pause))


def logferry(*args: str, **popen) -> subprocess.Popen[str]:
    """``logferry run ARGS`` in follow mode, its stderr kept to explain a failure."""
    return subprocess.Popen([*LOGFERRY, "run", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, **popen)


def per_file(url: str, stream: str) -> tuple[dict[bytes, list[bytes]], int]:
    """Each file's lines in stream order, and how many messages repeat an id seen before."""
    lines: dict[bytes, list[bytes]] = {}
    seen: set[str] = set()
    repeated = 0
    for message in messages(url, stream):
        if message.id in seen:
            repeated += 1
        seen.add(message.id)
        lines.setdefault(unquote_to_bytes(message.headers["Logferry-Path"]), []).append(message.data)
    return lines, repeated


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, alive: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"logferry exited ({alive.returncode}) while waiting for {what}:"
                                 f" {alive.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
