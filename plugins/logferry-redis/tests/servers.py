"""Real redis-server processes on 127.0.0.1 for the tests: one server, or a 3-node Redis Cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from logferry import testing

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
CLUSTER_BUS_OFFSET = 10000  # redis' default cluster bus port is the client port + 10000


def free_port(also_free: int | None = None) -> int:
    """A port nobody listens on now (with ``also_free``: port + that offset is free too)."""
    while True:
        port = testing.free_port()
        if also_free is None or (port + also_free < 65536 and _bindable(port + also_free)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """Send one inline command over a raw socket; the reply line, or a bulk reply's body.

    No client needed: the servers are checked before and while redis-py is under test.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(" ".join(args).encode() + b"\r\n")
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        if not reply.startswith(b"$"):
            return reply
        header, _, body = reply.partition(b"\r\n")
        while len(body) < int(header[1:]) + 2:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return body[: int(header[1:])]


class RedisServer:
    """One ``redis-server`` with an append-only file fsynced on every write, in ``directory``.

    ``stop`` and ``start`` again keep the port and the data (the AOF), as a server restart does.
    """

    def __init__(self, directory: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, wait: bool = True) -> RedisServer:
        assert REDIS_SERVER, "redis-server not found"
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory), *self.extra]
        self.proc = subprocess.Popen(args, stdout=open(self.directory / "redis.log", "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited: {log}")
            with contextlib.suppress(OSError):
                reply = command(self.port, "PING")
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL: as a crash; with ``appendfsync always`` no reply is lost)."""
        if self.proc is not None:
            testing.stop_process(self.proc, sig, timeout=10)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class RedisClusterNodes:
    """Three redis-server processes joined by ``redis-cli --cluster create`` (three masters, no replicas)."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.servers = []
        for i in range(size):
            port = free_port(also_free=CLUSTER_BUS_OFFSET)
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf",
                     "--cluster-node-timeout", "2000")
            self.servers.append(RedisServer(directory / f"node-{i}", port, extra))

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 20.0) -> RedisClusterNodes:
        assert REDIS_CLI, "redis-cli not found"
        for server in self.servers:
            server.start()
        subprocess.run([REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while not all(b"cluster_state:ok" in command(p, "CLUSTER", "INFO") for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    def slot_owners(self) -> list[tuple[int, int, int]]:
        """``(first slot, last slot, port)`` for every slot range, parsed from ``CLUSTER NODES``."""
        text = command(self.ports[0], "CLUSTER", "NODES").decode()
        owners = []
        for row in text.splitlines():
            fields = row.split()
            if len(fields) < 9 or "master" not in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for piece in fields[8:]:
                if piece.startswith("["):
                    continue  # a slot being migrated
                first, _, last = piece.partition("-")
                owners.append((int(first), int(last or first), port))
        return owners

    def node_ids(self) -> dict[int, str]:
        """Port → node id of every master."""
        text = command(self.ports[0], "CLUSTER", "NODES").decode()
        return {int(row.split()[1].split("@")[0].rsplit(":", 1)[1]): row.split()[0] for row in text.splitlines()}

    def move_slot(self, slot: int, to_port: int, stage: str = "done") -> None:
        """Hand ``slot`` to another master, without its keys (use it for slots of new streams only).

        ``stage="migrating"`` leaves it half-way (the owner answers ASK for keys it does not hold);
        ``"done"`` finishes (everyone answers MOVED towards the new owner).
        """
        ids = self.node_ids()
        from_port = self.port_of_slot(slot)
        if stage == "migrating":
            command(to_port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[from_port])
            command(from_port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[to_port])
            return
        for port in [to_port, from_port, *(p for p in self.ports if p not in (to_port, from_port))]:
            command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", ids[to_port])

    def port_of_slot(self, slot: int) -> int:
        for first, last, port in self.slot_owners():
            if first <= slot <= last:
                return port
        raise LookupError(slot)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
