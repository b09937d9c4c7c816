"""End to end with the real ``logferry`` command: live writers, a Redis restart mid-run, SIGTERM."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from .servers import RedisServer

LOGFERRY = [sys.executable, "-m", "logferry"]


def test_plugins_json_lists_redis_loaded_with_its_schemes() -> None:
    done = subprocess.run([*LOGFERRY, "plugins", "--json"], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr
    [row] = [p for p in json.loads(done.stdout) if p["name"] == "redis"]
    assert row["status"] == "loaded" and row["distribution"] == "logferry-redis"
    assert row["schemes"] == ["redis", "redis+cluster", "rediss"]
    assert row["hooks"] == ["logferry_make_sink", "logferry_sink_schemes"]


def test_a_bad_option_is_one_line_naming_it_and_exit_code_2(tmp_path: Path) -> None:
    done = subprocess.run([*LOGFERRY, "run", str(tmp_path / "*.log"), "--once", "--state-dir", str(tmp_path),
                           "--sink", "redis://:hunter2@127.0.0.1:1/0?stream=s&maxlenn=5"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2
    assert "unknown option 'maxlenn'" in done.stderr and "hunter2" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


class Writers:
    """Threads appending numbered lines to files at random intervals, as live applications do."""

    def __init__(self, directory: Path, names: list[str]) -> None:
        self.paths = [directory / name for name in names]
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

    def _write(self, path: Path, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        with open(path, "ab", buffering=0) as f:
            while not self._stop.is_set():
                burst = b"".join(f"{path.name} {n + i:06d} {'x' * rng.randrange(80)}\n".encode()
                                 for i in range(rng.randrange(1, 20)))
                n += burst.count(b"\n")
                f.write(burst)
                time.sleep(rng.uniform(0.001, 0.01))


def per_file_after_dedup(port: int, stream: str) -> dict[bytes, list[bytes]]:
    """Each file's lines in stream order, dropping re-deliveries (an ``id`` seen before)."""
    seen: set[bytes] = set()
    lines: dict[bytes, list[bytes]] = {}
    with redis.Redis(port=port) as client:
        for _, fields in client.xrange(stream):
            if fields[b"id"] in seen:
                continue
            seen.add(fields[b"id"])
            lines.setdefault(fields[b"path"], []).append(fields[b"line"])
    return lines


def stream_length(port: int, stream: str) -> int:
    with redis.Redis(port=port) as client:
        return client.xlen(stream)


def test_live_files_survive_a_redis_restart_and_a_clean_stop_ships_nothing_twice(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    sink = f"{redis_server.url}?stream=s&timeout=2"
    args = [str(logs / "*.log"), "--sink", sink, "--state-dir", str(state), "--poll-interval", "0.05"]
    writers = Writers(logs, ["a.log", "b.log", "c.log"]).start()
    daemon = subprocess.Popen([*LOGFERRY, "run", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        redis_server.stop(signal.SIGKILL)  # a crash: only what was fsynced (acknowledged) survives
        time.sleep(1.5)
        redis_server.start()  # same port, same append-only file
        time.sleep(1.5)
    finally:
        writers.stop()

    expected = {os.fsencode(p): p.read_bytes().splitlines() for p in writers.paths}
    deadline = time.monotonic() + 30
    while per_file_after_dedup(redis_server.port, "s") != expected:
        assert daemon.poll() is None, daemon.communicate()[1]
        assert time.monotonic() < deadline, "not every line reached the stream within 30 s"
        time.sleep(0.2)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    # Every line, in order per file, duplicates only as whole re-delivered batches (dropped by id).
    assert per_file_after_dedup(redis_server.port, "s") == expected
    assert all(len(lines) > 100 for lines in expected.values())

    # The checkpoint never passed an unacknowledged batch, and a clean stop saved it: nothing new.
    shipped = stream_length(redis_server.port, "s")
    again = subprocess.run([*LOGFERRY, "run", *args, "--once"], capture_output=True, text=True, check=False, timeout=60)
    assert again.returncode == 0, again.stderr
    assert stream_length(redis_server.port, "s") == shipped
