"""A container writing its log through a CRI runtime while kubelet rotates it, as a script.

``python kubelet.py CONTAINER_DIR CONTROL_DIR [options]``

The container: numbered messages on stdout and stderr, a fifth of them longer than the runtime's
line limit (``--chunk`` bytes here, 16 KiB in containerd), so written as ``P`` chunks and a last
``F``; the two streams are copied by two goroutines, so their chunks interleave (a random stream
writes its next chunk each time). Every chunk is one ``write`` to the log opened ``O_APPEND``, in
containerd's format, at the real time.

kubelet (``pkg/kubelet/logs/container_log_manager.go``), every ``--period`` seconds: when the
running container's log has reached ``--max-size``, rotate it: list ``<log>.*``, remove the
``.tmp`` files and the uncompressed files a ``.gz`` of exists, remove the oldest beyond
``--max-files`` - 2, compress every uncompressed rotation (gzip to ``.tmp``, rename to ``.gz``,
remove the original), rename the log to ``<log>.<YYYYMMDD-HHMMSS>`` and ask the runtime to reopen it
(``ReopenContainerLog``). The runtime goes on writing to the renamed file until it reopens; it
reopens once no message of either stream is half written (a message the runtime cut at the reopen
is in test_cli). The rotation's timestamp comes from a clock a second ahead per rotation: kubelet
checks every 10 s, so its names never collide; rotations here are far more frequent.

After ``--restart-at`` messages the container restarts: the runtime closes ``<n>.log`` and writes
``<n+1>.log``; kubelet rotates only the running container's log.

CONTROL_DIR: ``pause`` (a file) holds rotations back while it exists; ``rotate`` asks for one
rotation now (removed when done); ``finish`` lets it end once every message is written (until
then it goes on rotating when asked); ``status.json`` is rewritten after each rotation
(``rotations``, and ``rotated_up_to``: per restart and stream, the last message in a file the
runtime no longer writes); ``truth.json`` (every message per restart and stream, in order) and
``done`` are written at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

from runtimes import rfc3339nano

ROTATION_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405"


class Runtime:
    """The container runtime's side: the log file it writes, reopened on request."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.restarts = directory, 0
        self.fd = self._open()

    @property
    def path(self) -> Path:
        return self.directory / f"{self.restarts}.log"

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def write(self, stream: str, tag: str, text: str) -> None:
        os.write(self.fd, f"{rfc3339nano(time.time_ns())} {stream} {tag} {text}\n".encode())

    def reopen(self) -> None:
        os.close(self.fd)
        self.fd = self._open()

    def restart(self) -> None:
        os.close(self.fd)
        self.restarts += 1
        self.fd = self._open()


class Kubelet:
    """kubelet's container log manager for one container."""

    def __init__(self, max_size: int, max_files: int) -> None:
        self.max_size, self.max_files = max_size, max_files
        self.clock = datetime(2024, 5, 1, 10, 0, 0)
        self.rotations = 0

    def due(self, log: Path) -> bool:
        try:
            return log.stat().st_size >= self.max_size
        except FileNotFoundError:
            return False

    def rotate(self, log: Path) -> None:
        """Everything of a rotation but the reopen, which the runtime does when it can."""
        logs = sorted(str(p) for p in log.parent.glob(log.name + ".*"))
        inuse = []
        for name in logs:  # cleanupUnusedLogs
            if name.endswith(".tmp") or (not name.endswith(".gz") and name + ".gz" in logs):
                os.remove(name)
            else:
                inuse.append(name)
        keep = max(self.max_files - 2, 0)  # removeExcessLogs: the log and the rotation to come are the other two
        while len(inuse) > keep:
            os.remove(inuse.pop(0))
        for name in inuse:  # compress every uncompressed rotation
            if not name.endswith(".gz"):
                with open(name, "rb") as src, open(name + ".tmp", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                    shutil.copyfileobj(src, gz)
                os.rename(name + ".tmp", name + ".gz")
                os.remove(name)
        self.clock += timedelta(seconds=1)
        os.rename(log, f"{log}.{self.clock.strftime(ROTATION_FORMAT)}")  # rotateLatestLog
        self.rotations += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("control", type=Path)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=400.0, help="chunks per second")
    parser.add_argument("--chunk", type=int, default=64, help="the runtime's line limit")
    parser.add_argument("--max-size", type=int, default=32 * 1024)
    parser.add_argument("--max-files", type=int, default=4)
    parser.add_argument("--period", type=float, default=0.2)
    parser.add_argument("--restart-at", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runtime, kubelet = Runtime(args.directory), Kubelet(args.max_size, args.max_files)
    pause, request, status = args.control / "pause", args.control / "rotate", args.control / "status.json"
    truth: dict[int, dict[str, list[str]]] = {0: {"stdout": [], "stderr": []}}
    queues: dict[str, list[tuple[str, str]]] = {"stdout": [], "stderr": []}  # chunks (tag, text) to write
    reopen_due, written, start = False, 0, time.monotonic()
    last_check, chunks = start, 0
    last: dict[int, dict[str, int]] = {}  # per restart and stream: the last message in the file being written
    rotated_up_to: dict[int, dict[str, int]] = {}

    def add_message(stream: str) -> None:
        nonlocal written
        seq = len(truth[runtime.restarts][stream])
        text = f"{stream} seq={seq:06d} " + "x" * (rng.randint(args.chunk, 4 * args.chunk) if rng.random() < 0.2
                                                   else rng.randint(0, args.chunk // 2))
        truth[runtime.restarts][stream].append(text)
        pieces = [text[i:i + args.chunk] for i in range(0, len(text), args.chunk)]
        queues[stream] = [("P", p) for p in pieces[:-1]] + [("F", pieces[-1])]
        last.setdefault(runtime.restarts, {})[stream] = seq
        written += 1

    def idle() -> bool:
        return not queues["stdout"] and not queues["stderr"]

    def write_status() -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rotations": kubelet.rotations, "rotated_up_to": rotated_up_to}))
        os.replace(tmp, status)

    write_status()
    finish = args.control / "finish"
    while written < args.messages or not idle() or not finish.exists():
        if idle() and args.restart_at and written >= args.restart_at and runtime.restarts == 0:
            runtime.restart()
            truth[runtime.restarts] = {"stdout": [], "stderr": []}
            reopen_due = False  # the new container writes a new log: nothing to reopen
        for stream in ("stdout", "stderr"):
            if not queues[stream] and written < args.messages and rng.random() < (0.7 if stream == "stdout" else 0.3):
                add_message(stream)
        busy = [s for s in ("stdout", "stderr") if queues[s]]
        if busy:
            stream = rng.choice(busy)
            tag, text = queues[stream].pop(0)
            runtime.write(stream, tag, text)
            chunks += 1
        if reopen_due and idle():  # ReopenContainerLog, between messages
            runtime.reopen()
            reopen_due = False
            rotated_up_to = {n: dict(streams) for n, streams in last.items()}
            write_status()
        now = time.monotonic()
        if now - last_check >= args.period and not reopen_due:
            last_check = now
            if request.exists() or (kubelet.due(runtime.path) and not pause.exists()):
                kubelet.rotate(runtime.path)
                reopen_due = True
                request.unlink(missing_ok=True)
        ahead = chunks / args.rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        elif not busy:  # every message written: waiting for ``finish``, still rotating when asked
            time.sleep(0.01)
    (args.control / "truth.json").write_text(json.dumps(truth))
    (args.control / "done").write_text(str(kubelet.rotations))
    os.close(runtime.fd)


if __name__ == "__main__":
    main()
