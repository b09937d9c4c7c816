"""The real logrotate under a continuous writer, while the real ``logferry run`` follows ``app.log*``.

Every line that is on disk at the end (in ``app.log``, its rotations, or inside the compressed
ones) was shipped exactly once, and nothing else was shipped: no compressed bytes, no line twice.
Lines written in logrotate's own copytruncate race window (after its copy, before its truncation)
are on no disk at all: no shipper can read them unless it read them from the original first, so
they are reported, not counted as missing.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Daemon, wait_until

LOGROTATE = shutil.which("logrotate") or (os.path.exists("/usr/sbin/logrotate") and "/usr/sbin/logrotate")
pytestmark = pytest.mark.skipif(not LOGROTATE, reason="logrotate is not installed (apt-get install logrotate)")

ROTATIONS = 5
LINE = re.compile(rb"^(w|bulk)-(\d{8})-x+$")
BULK = 8 << 20  # appended before each rotation: logrotate's fsync of a large copy widens its race window


class Writer(threading.Thread):
    """Appends numbered lines (about 2,000 a second) and, like a daemon told to reopen its log,
    reopens the path when a rotation renamed the file away."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.written = 0
        self.bulks = 0

    def bulk(self, nbytes: int) -> None:
        """Append about ``nbytes`` of lines at once (a burst: whole lines, one O_APPEND write)."""
        block = b"".join(b"bulk-%08d-%s\n" % (self.bulks + i, b"x" * 40) for i in range(nbytes // 55))
        self.bulks += nbytes // 55
        with open(self.path, "ab") as f:
            f.write(block)

    def run(self) -> None:
        f = open(self.path, "ab", buffering=0)  # noqa: SIM115 - reopened on rotation
        try:
            while not self.stop.is_set():
                try:
                    if os.stat(self.path).st_ino != os.fstat(f.fileno()).st_ino:
                        raise FileNotFoundError
                except FileNotFoundError:
                    f.close()
                    f = open(self.path, "ab", buffering=0)  # noqa: SIM115
                for _ in range(20):
                    f.write(b"w-%08d-%s\n" % (self.written, b"x" * (self.written % 50 + 10)))
                    self.written += 1
                time.sleep(0.01)
        finally:
            f.close()


def on_disk(logs: Path) -> list[bytes]:
    """Every line in the log's files, decompressing the compressed rotations."""
    out: list[bytes] = []
    for path in logs.iterdir():
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out += data.splitlines()
    return out


@pytest.mark.parametrize("options", [
    ["copytruncate"],
    ["copytruncate", "dateext", "dateformat -%Y%m%d-%s"],
    ["copytruncate", "compress", "delaycompress"],
    ["create", "compress", "delaycompress"],
    ["create", "dateext", "dateformat -%Y%m%d-%s", "compress", "delaycompress"],
], ids=lambda o: "+".join(w.split()[0] for w in o))
def test_logrotate_under_a_continuous_writer_loses_and_doubles_nothing(tmp_path: Path, options: list[str]) -> None:
    log, out, state, conf, writer, daemon = rotate_under_a_writer(tmp_path, options)
    logs = log.parent
    try:
        for _ in range(ROTATIONS):
            time.sleep(1.2)  # dateext names have a one-second resolution
            writer.bulk(BULK)
            rotated = subprocess.run([LOGROTATE, "-f", "-s", str(state), str(conf)],
                                                   capture_output=True, text=True)
            assert rotated.returncode == 0, rotated.stderr
        time.sleep(0.5)
        writer.stop.set()
        writer.join()
        disk = on_disk(logs)

        def caught_up() -> bool:
            return out.exists() and out.stat().st_size >= sum(len(line) + 1 for line in disk)

        wait_until(caught_up, timeout=60)
        time.sleep(1.0)  # anything that would be shipped twice or wrongly has time to arrive
    finally:
        code, _ = daemon.stop()
    assert code == 0, (tmp_path / "logferry.log").read_text()
    shipped = out.read_bytes().splitlines()
    garbage = [line for line in shipped if not LINE.match(line)]
    seen: dict[bytes, int] = {}
    for line in shipped:
        seen[line] = seen.get(line, 0) + 1
    doubled = [line for line, n in seen.items() if n > 1]
    missing = sorted(set(disk) - set(seen))
    race = writer.written + writer.bulks - len(set(disk))  # logrotate's copytruncate race window: on no disk
    rescued = len(seen.keys() - set(disk))  # of those, read from the original before its truncation
    summary = (f"{options}: {writer.written + writer.bulks} written, {len(disk)} on disk, {race} on no disk "
               f"(logrotate's race window; {rescued} of them read before the truncation and shipped), "
               f"{len(shipped)} shipped, {len(missing)} missing, {len(doubled)} doubled, "
               f"{len(garbage)} not lines of the log")
    print(summary)
    assert not garbage, f"{summary}; e.g. {[line[:40] for line in garbage[:3]]}"
    assert not doubled, f"{summary}; e.g. {doubled[:3]}"
    assert not missing, f"{summary}; e.g. {missing[:3]}"
    assert len(disk) == len(set(disk))  # the writer's lines are unique: the harness itself is sound


def rotate_under_a_writer(tmp_path: Path, options: list[str]) -> tuple[Path, Path, Path, Path, Writer, Daemon]:
    """``logs/app.log`` written by a running :class:`Writer`, a logrotate config with ``options``
    for it, and logferry following ``logs/app.log*``: (log, output, logrotate state, config, writer,
    daemon)."""
    logs, state = tmp_path / "logs", tmp_path / "logrotate.state"
    logs.mkdir()
    log, out = logs / "app.log", tmp_path / "out.log"
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n    rotate 100\n    missingok\n" + "".join(f"    {o}\n" for o in options) + "}\n")
    conf.chmod(0o644)
    writer = Writer(log)
    writer.start()
    wait_until(lambda: log.exists())
    daemon = Daemon(f"{logs}/app.log*", "--sink", f"file:{out}", "--state-dir", str(tmp_path / "state"),
                    "--log-level", "info", log=tmp_path / "logferry.log")
    return log, out, state, conf, writer, daemon
