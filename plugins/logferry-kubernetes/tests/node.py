"""A node's log directories in tmp_path, the config that points the plugin at them, and the real command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logferry.testing import stop_process

LOGFERRY = [sys.executable, "-m", "logferry"]
UID = "0b1e5c7a-8a33-4f6e-9d5e-2f1c0a9b7e11"


class Node:
    """``pods`` (kubelet's root) and ``containers`` (dockerd's) under ``root``, a JSON file sink, a state dir."""

    def __init__(self, root: Path, table: str = "", extra: str = "") -> None:
        self.root = root
        self.pods = root / "pods"
        self.containers = root / "containers"
        self.out = root / "out.json"
        self.state = root / "state"
        self.config = root / "logferry.toml"
        self.pods.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(parents=True, exist_ok=True)
        self.write_config(table, extra)

    def write_config(self, table: str = "", extra: str = "") -> None:
        self.config.write_text(
            f'[plugins.kubernetes]\npods_root = "{self.pods}"\ncontainers_root = "{self.containers}"\n{table}\n'
            f'[[sinks]]\nurl = "file:{self.out}"\nformat = "json"\n\n'
            f'[state]\ndir = "{self.state}"\ncommit_interval = "100ms"\n\n'
            f'[sources]\npoll_interval = "50ms"\nscan_interval = "100ms"\nrotate_wait = "500ms"\n{extra}')

    def container_dir(self, namespace: str = "shop", pod: str = "web-7d4b9c-x2x9q", container: str = "web",
                      uid: str = UID) -> Path:
        path = self.pods / f"{namespace}_{pod}_{uid}" / container
        path.mkdir(parents=True, exist_ok=True)
        return path

    def docker_dir(self, container_id: str) -> Path:
        path = self.containers / container_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_once(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LOGFERRY, "run", "-c", str(self.config), "--once", *args], capture_output=True,
                              text=True, check=False, timeout=120, env={**os.environ, **(env or {})})

    def follow(self, log: Path) -> subprocess.Popen[str]:
        """``logferry run`` in follow mode, its stderr appended to ``log``."""
        with open(log, "a") as err:
            return subprocess.Popen([*LOGFERRY, "run", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                    stderr=err, text=True)

    def records(self) -> list[dict[str, Any]]:
        """Every JSON record the sink holds so far (complete lines only)."""
        if not self.out.exists():
            return []
        data = self.out.read_bytes()
        return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines()]


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    stop_process(proc, sig, timeout=60)
    return proc.returncode


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0, what: str = "a condition") -> None:
    """Wait for ``predicate`` (generous: the machine may be busy); fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
