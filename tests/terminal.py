"""Run the ``logferry`` command with stderr on a pseudo-terminal, and render what a person would see."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import LOGFERRY

ESCAPE = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def run_on_terminal(args: list[str], stop_after: float | None = None, timeout: float = 60,
                    until: Callable[[str], bool] | None = None) -> tuple[int, str]:
    """Run ``logferry ARGS`` with stderr (only) on a pty; return its exit code and the raw bytes it wrote
    there, decoded. ``stop_after``: send SIGTERM after that many seconds, and once ``until(output so
    far)`` holds."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*LOGFERRY, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = bytearray()
    started = time.monotonic()
    stopped = False
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the process closed its end
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
            elapsed = time.monotonic() - started
            wanted = until is None or until(out.decode(errors="replace"))
            if stop_after is not None and not stopped and elapsed > stop_after and wanted:
                proc.send_signal(signal.SIGTERM)
                stopped = True
            assert elapsed < timeout, f"timed out; wrote so far: {bytes(out)!r}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    return proc.returncode, out.decode(errors="replace")


def screen(output: str) -> list[str]:
    """The lines left on a terminal after ``output``: handles \\r, \\n, cursor up to line start (F), erase
    to end of screen (J) and of line (K), which is all logferry uses."""
    rows, row, col = [""], 0, 0
    pos = 0
    for match in ESCAPE.finditer(output + "\x1b[0z"):
        for ch in output[pos:match.start()]:
            if ch == "\n":
                row, col = row + 1, 0
                rows.extend([""] * (row + 1 - len(rows)))
            elif ch == "\r":
                col = 0
            else:
                line = rows[row].ljust(col)
                rows[row] = line[:col] + ch + line[col + 1:]
                col += 1
        pos = match.end()
        n, code = int(match.group(1) or 1), match.group(2)
        if code == "F":
            row, col = max(0, row - n), 0
        elif code == "J":
            rows[row] = rows[row][:col]
            del rows[row + 1:]
        elif code == "K":
            rows[row] = rows[row][:col]
    return [r for r in rows if r.strip()] if rows else []


def big_files(directory: Path, files: int, lines: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = directory / f"f{i}.log"
        path.write_bytes(b"".join(b"line %08d of a file to ship, padded to look like a real log\n" % n
                                  for n in range(lines)))
        paths.append(path)
    return paths
