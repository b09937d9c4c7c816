#!/usr/bin/env python3
"""Catch-up benchmark: ship files that are already written, next to `cat` and the seed baseline.

Generates FILES x LINES lines of LINE_BYTES bytes (newline included) once into a temporary
directory, warms the page cache with one untimed `cat`, then runs every contender on the same
files, --repeats times, interleaved:

  cat                      `cat f1..fN > out`: the floor
  Python read+write loop   a bare Python loop (read 1 MiB, cut at the last newline, count lines,
                           write): the least any Python shipper does, with no engine around it
  logferry                 `logferry run DIR/*.log --once --sink file:OUT --state-dir FRESH`
  logferry --format json   the same, writing one JSON record per line
  seed-style Python        `anchors.py seed` (follow mode) from ../shared/bench/anchors.py,
                           on the first --seed-lines lines of each file only
  rsyslog, fluent-bit      via anchors.py's configurations, when on PATH

Contenders that exit (cat, logferry --once) are timed from process start to exit. Follow-mode
contenders (seed, rsyslog, fluent-bit) are timed from process start until their output holds every
byte, then sent SIGTERM. CPU is the child's user+sys from os.wait4 (follow mode: up to its exit,
so shutdown is included). Peak RSS is /proc/PID/status VmHWM sampled every 10 ms: wait4's
ru_maxrss cannot be used, as Linux carries this harness's own peak into the child at exec.

Every output is checked: each input line exactly once, byte for byte, in order per input file
(JSON: the "line" field of each record). Results are medians over the repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
ANCHORS = REPO.parent / "shared" / "bench" / "anchors.py"
SEED_INTERVAL = 0.1          # the seed's sleep when a file has no new line
POLL_S = 0.01                # how often RSS and follow-mode output are sampled
STOP_GRACE_S = 10.0          # how long a SIGTERMed contender may take before SIGKILL
CHUNK = 8 << 20              # output is checked in chunks of this many bytes
JSON_TARGET_LINES_S = 500_000
NATIVES = ("rsyslog", "fluent-bit")
SEED = "seed-style Python"

# Line layout: b"f0003-0000000123-" then letters, then b"\n". The letters are a slice of a fixed
# pool chosen by file id and sequence number, so any line can be rebuilt from its header alone.
HEADER = b"f%04d-%010d-"
HEADER_RE = re.compile(rb"f(\d{4})-(\d{10})-")
KEY_LEN = 5                  # b"f0003": the part of a line that names its file
MAX_FILES = 9999
MIN_LINE_BYTES = len(HEADER % (0, 0)) + 2
_POOL = string.ascii_letters.encode() * 2


# --------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """FILES input files of LINES lines each, named f0000.log... in their own directory."""

    directory: Path
    files: int
    lines: int
    line_bytes: int

    @property
    def paths(self) -> list[Path]:
        return [self.directory / f"f{fid:04d}.log" for fid in range(self.files)]

    @property
    def glob(self) -> str:
        return str(self.directory / "*.log")

    @property
    def total_lines(self) -> int:
        return self.files * self.lines

    @property
    def total_bytes(self) -> int:
        return self.total_lines * self.line_bytes

    def describe(self) -> str:
        return (f"{self.files} files × {self.lines:,} lines × {self.line_bytes} B "
                f"= {fmt_number(self.total_bytes / 1e6)} MB")


def make_line(fid: int, seq: int, line_bytes: int) -> bytes:
    """Line ``seq`` of file ``fid``: distinct, ``line_bytes`` long including the newline."""
    head = HEADER % (fid, seq)
    pad = line_bytes - len(head) - 1
    rotated = _POOL[(fid + seq) % 52:][:52]
    return head + (rotated * (pad // 52 + 1))[:pad] + b"\n"


def write_workload(directory: Path, files: int, lines: int, line_bytes: int) -> Workload:
    """Write the workload's files into ``directory`` (created) and return it."""
    directory.mkdir(parents=True)
    workload = Workload(directory, files, lines, line_bytes)
    for fid, path in enumerate(workload.paths):
        with open(path, "wb") as f:
            for start in range(0, lines, 65536):
                f.write(b"".join(make_line(fid, seq, line_bytes)
                                 for seq in range(start, min(lines, start + 65536))))
    return workload


def warm_page_cache(workloads: list[Workload]) -> None:
    """Read every input once, untimed, so that every contender reads from the page cache."""
    paths = [str(p) for w in workloads for p in w.paths]
    subprocess.run(["cat", *paths], stdout=subprocess.DEVNULL, check=True)


def write_bytecode(command: list[str], root: Path) -> None:
    """Run logferry once, untimed, on one line, allowed to write its bytecode.

    A pip install compiles it at install time; without this, an editable install under
    PYTHONDONTWRITEBYTECODE (set on some CI and dev machines) would compile some 40 modules in every
    timed run: about 50 ms, a third of logferry's start-up.
    """
    work = root / "bytecode"
    work.mkdir()
    (work / "one.log").write_bytes(b"one line\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([*command, "run", str(work / "*.log"), "--once", "--sink", "null:", "--state-dir",
                    str(work / "state")], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


# --------------------------------------------------------------------------------------------
# Output check
# --------------------------------------------------------------------------------------------
@dataclass
class Check:
    """How an output compares with its workload."""

    expected: int
    lines_out: int
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    garbled: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.out_of_order or self.garbled)

    @property
    def delivered(self) -> int:
        return self.expected - self.missing

    def describe(self) -> str:
        if self.ok:
            return f"{self.lines_out:,} lines, each once, in order"
        faults = ("missing", "duplicated", "out_of_order", "garbled")
        found = ", ".join(f"{getattr(self, k):,} {k.replace('_', ' ')}"
                          for k in faults if getattr(self, k))
        return f"{self.lines_out:,} of {self.expected:,} lines out: {found}"


def output_lines(path: Path, fmt: str) -> Iterator[list[bytes]]:
    """The output's lines without newlines, a chunk at a time; JSON records become their "line".

    A record that is not JSON with a string "line" becomes b"", which matches no input line. An
    unterminated last line is yielded as it is; it cannot match an input line either.
    """
    with open(path, "rb") as f:
        rest = b""
        while chunk := f.read(CHUNK):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            lines = chunk[:cut - 1].split(b"\n") if cut else []
            yield lines if fmt == "raw" else [_json_line(record) for record in lines]
        if rest:
            yield [rest if fmt == "raw" else b""]


def _json_line(record: bytes) -> bytes:
    try:
        return json.loads(record)["line"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return b""


def check_output(path: Path, workload: Workload, fmt: str) -> Check:
    """Compare the output with the workload: the fast byte comparison, or a full diagnosis."""
    if not path.exists():
        return Check(workload.total_lines, 0, missing=workload.total_lines)
    lines_out = _count_if_intact(path, workload, fmt)
    if lines_out is not None:
        return Check(workload.total_lines, lines_out)
    return _diagnose(path, workload, fmt)


def _count_if_intact(path: Path, workload: Workload, fmt: str) -> int | None:
    """The number of output lines if, per input file, they are exactly its bytes; else None."""
    handles = {b"f%04d" % fid: open(p, "rb") for fid, p in enumerate(workload.paths)}
    try:
        count = 0
        for lines in output_lines(path, fmt):
            count += len(lines)
            by_file: dict[bytes, list[bytes]] = defaultdict(list)
            for line in lines:
                by_file[line[:KEY_LEN]].append(line)
            for key, got in by_file.items():
                data = b"\n".join(got) + b"\n"
                if key not in handles or handles[key].read(len(data)) != data:
                    return None
        return count if all(h.read(1) == b"" for h in handles.values()) else None
    finally:
        for h in handles.values():
            h.close()


def _diagnose(path: Path, workload: Workload, fmt: str) -> Check:
    """Count missing, duplicated, out-of-order and garbled lines, line by line."""
    check = Check(workload.total_lines, 0)
    seen = [bytearray(workload.lines) for _ in range(workload.files)]
    last = [-1] * workload.files
    for lines in output_lines(path, fmt):
        check.lines_out += len(lines)
        for line in lines:
            m = HEADER_RE.match(line)
            fid, seq = (int(m[1]), int(m[2])) if m else (-1, -1)
            if not (0 <= fid < workload.files and 0 <= seq < workload.lines) \
                    or line + b"\n" != make_line(fid, seq, workload.line_bytes):
                check.garbled += 1
            elif seen[fid][seq]:
                check.duplicated += 1
            else:
                seen[fid][seq] = 1
                if seq < last[fid]:
                    check.out_of_order += 1
                else:
                    last[fid] = seq
    check.missing = sum(s.count(0) for s in seen)
    return check


# --------------------------------------------------------------------------------------------
# Measuring one process
# --------------------------------------------------------------------------------------------
@dataclass
class Measurement:
    status: str              # "ok", "exit N" or "timeout after S s"
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident set so far (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Reaper(threading.Thread):
    """Waits for one child with os.wait4, noting when it exited, its status and its rusage."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.exited_at = 0.0
        self.returncode = 0
        self.cpu_s = 0.0

    def run(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.exited_at = time.perf_counter()
        self.returncode = self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime


def stop(reaper: Reaper) -> None:
    """SIGTERM the child's process group; SIGKILL it if it has not exited in STOP_GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(reaper.proc.pid, sig)
        except ProcessLookupError:
            pass
        reaper.join(STOP_GRACE_S)
        if not reaper.is_alive():
            return


def measure(start: Callable[[], subprocess.Popen], done: Callable[[], bool] | None,
            timeout: float) -> Measurement:
    """Run a child from ``start`` until it exits, or (follow mode) until ``done()``, then stop it."""
    t0 = time.perf_counter()
    reaper = Reaper(start())
    reaper.start()
    rss = 0.0
    status = "ok"
    while True:
        rss = max(rss, vm_hwm_mb(reaper.proc.pid))
        reaper.join(POLL_S)
        if not reaper.is_alive():
            end = reaper.exited_at
            if reaper.returncode != 0:
                status = f"exit {reaper.returncode}"
            break
        now = time.perf_counter()
        if done is not None and done():
            end = now
            break
        if now - t0 > timeout:
            end, status = now, f"timeout after {timeout:g} s"
            break
    stop(reaper)
    return Measurement(status, end - t0, reaper.cpu_s, rss)


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunDir:
    """Where one run of one contender writes: its output, private state and stderr log."""

    path: Path

    @property
    def out(self) -> Path:
        return self.path / "out.log"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def log(self) -> Path:
        return self.path / "tool.log"


@dataclass(frozen=True)
class Contender:
    name: str
    workload: Workload
    start: Callable[[RunDir], subprocess.Popen]
    timeout: float            # seconds before the run is stopped and marked as failed
    fmt: str = "raw"          # what the output holds: raw lines or JSON records
    follows: bool = False     # runs until stopped: timed until its output is complete


def spawn(argv: list[str], run: RunDir, stdout: Path | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own session, stderr (and stdout unless given) to the run's log."""
    with open(run.log, "ab") as log, open(stdout or run.log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
                                cwd=run.state, start_new_session=True)


def cat_contender(workload: Workload, timeout: float) -> Contender:
    paths = [str(p) for p in workload.paths]
    return Contender("cat", workload, lambda run: spawn(["cat", *paths], run, stdout=run.out), timeout)


PYTHON_FLOOR = "Python read+write loop"
# What any Python shipper must at least do to ship complete lines and count them: a bare loop with
# no engine (no asyncio, no threads, no checkpoints), 1 MiB reads into one reused buffer. cat would
# use copy_file_range (one copy in the kernel) but cannot on an O_APPEND output (spawn's): it reads
# and writes 128 KiB at a time. A shipper reads the bytes anyway, to find and count the lines.
_FLOOR_SCRIPT = """
import os, sys
out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
buf = bytearray(1 << 20)
view = memoryview(buf)
lines = 0
for path in sys.argv[2:]:
    fd, pos = os.open(path, os.O_RDONLY), 0
    while n := os.preadv(fd, [view], pos):
        end = buf.rfind(b"\\n", 0, n) + 1
        if not end:  # no complete line in a full buffer: not in this workload
            break
        lines += buf.count(b"\\n", 0, end)
        os.writev(out, [view[:end]])
        pos += end
    os.close(fd)
"""


def python_floor_contender(workload: Workload, timeout: float) -> Contender:
    paths = [str(p) for p in workload.paths]
    return Contender(PYTHON_FLOOR, workload,
                     lambda run: spawn([sys.executable, "-c", _FLOOR_SCRIPT, str(run.out), *paths], run), timeout)


def logferry_contender(command: list[str], workload: Workload, fmt: str, timeout: float) -> Contender:
    name = "logferry" if fmt == "raw" else f"logferry --format {fmt}"
    extra = [] if fmt == "raw" else ["--format", fmt]

    def start(run: RunDir) -> subprocess.Popen:
        return spawn([*command, "run", workload.glob, "--once", "--sink", f"file:{run.out}",
                      "--state-dir", str(run.state), *extra], run)

    return Contender(name, workload, start, timeout, fmt=fmt)


def seed_contender(anchors: Path, workload: Workload, timeout: float) -> Contender:
    def start(run: RunDir) -> subprocess.Popen:
        return spawn([sys.executable, str(anchors), "seed", "--interval", str(SEED_INTERVAL),
                      "--out", str(run.out), *map(str, workload.paths)], run)

    return Contender(SEED, workload, start, timeout, follows=True)


def load_anchors(path: Path, name: str = "anchors") -> ModuleType:
    """Import anchors.py (or another outside harness) as module ``name``, to reuse what it defines."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def native_contenders(anchors: ModuleType, workload: Workload,
                      timeout: float) -> tuple[list[Contender], list[str]]:
    """anchors.py's rsyslog and fluent-bit contenders that are on PATH, and notes on the others."""
    options = argparse.Namespace(rsyslogd=None, fluent_bit=None, fluent_bit_flush="0.1")
    found, skipped = [], []
    for name in NATIVES:
        native = anchors.BUILTIN[name](options)
        if native.available():
            skipped.append(f"{name}: skipped: not on PATH")
            continue

        def start(run: RunDir, native=native) -> subprocess.Popen:
            return native.launch(anchors.RunPaths(workload.directory, workload.paths, run.out,
                                                  run.state, run.log))

        found.append(Contender(name, workload, start, timeout, follows=True))
    return found, skipped


# --------------------------------------------------------------------------------------------
# Running and summarising
# --------------------------------------------------------------------------------------------
@dataclass
class Result:
    contender: str
    repeat: int
    status: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    mb_s: float
    lines_s: float
    check: Check
    intact: bool = field(init=False)

    def __post_init__(self) -> None:
        self.intact = self.status == "ok" and self.check.ok


def run_once(contender: Contender, repeat: int, root: Path, keep: bool) -> Result:
    """One timed run of one contender in a fresh run directory, with its output checked."""
    slug = re.sub(r"\W+", "_", contender.name)
    run = RunDir(root / f"{slug}-{repeat}")
    run.state.mkdir(parents=True)
    workload = contender.workload
    done = (lambda: run.out.exists() and run.out.stat().st_size >= workload.total_bytes) \
        if contender.follows else None
    m = measure(lambda: contender.start(run), done, contender.timeout)
    check = check_output(run.out, workload, contender.fmt)
    if m.status != "ok" and run.log.exists():
        progress(f"{contender.name}: {m.status}; the end of its stderr:\n"
                 + run.log.read_text(errors="replace")[-2000:])
    if not keep:
        shutil.rmtree(run.path)
    return Result(contender.name, repeat, m.status, m.wall_s, m.cpu_s, m.peak_rss_mb,
                  check.delivered * workload.line_bytes / 1e6 / m.wall_s, check.delivered / m.wall_s,
                  check)


@dataclass
class Summary:
    """Medians of one contender's runs."""

    contender: str
    runs: int
    failed: int
    mb_s: float
    lines_s: float
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def summarise(name: str, results: list[Result]) -> Summary:
    mine = [r for r in results if r.contender == name]

    def median(key: str) -> float:
        return statistics.median(getattr(r, key) for r in mine)

    return Summary(name, len(mine), sum(not r.intact for r in mine), median("mb_s"),
                   median("lines_s"), median("wall_s"), median("cpu_s"), median("peak_rss_mb"))


def fmt_number(value: float) -> str:
    """Whole and thousands-separated from 100, one decimal from 10, two below: 1,376 / 80.2 / 0.93."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    """Two significant digits: 1.0 / 0.42 / 0.0065, whole numbers from 10 up."""
    if value >= 10:
        return f"{value:,.0f}"
    if value <= 0:
        return "0"
    return f"{value:.{max(1, 1 - math.floor(math.log10(value)))}f}"


def table(summaries: list[Summary], seed_mark: str) -> str:
    """The summary as a Markdown table with aligned columns."""
    base = {s.contender: s.mb_s for s in summaries}
    cat, seed = base.get("cat"), base.get(SEED)
    header = ["contender", "MB/s", "lines/s", "wall s", "CPU s", "peak RSS MB", "× cat", "× seed", "intact"]
    rows = [header]
    for s in summaries:
        name = s.contender + (seed_mark if s.contender == SEED else "")
        intact = "✓" if not s.failed else f"✗ ({s.failed}/{s.runs})"
        rows.append([name, fmt_number(s.mb_s), f"{s.lines_s:,.0f}", f"{s.wall_s:.2f}",
                     f"{s.cpu_s:.2f}", f"{s.peak_rss_mb:.1f}" if s.peak_rss_mb else "—",
                     fmt_ratio(s.mb_s / cat) if cat else "—", fmt_ratio(s.mb_s / seed) if seed else "—",
                     intact])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    numeric = range(1, len(header) - 1)

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i in numeric else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), rule, *map(line, rows[1:])])


def notes(args: argparse.Namespace, main: Workload, seed: Workload | None, summaries: list[Summary],
          results: list[Result], skipped: list[str]) -> list[str]:
    """The lines printed under the table: workload, method, target, skips and failures."""
    out = [f"Catch-up of {main.describe()}, from the page cache; median of {args.repeats} runs; "
           f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
           f"{platform.system()} {platform.release()}.",
           "Wall time is from process start to exit (seed and other follow-mode tools: until the last "
           "byte landed, then SIGTERM); CPU is user+sys; peak RSS is VmHWM sampled every 10 ms "
           "(— : exited before the first sample)."]
    if seed is not None and seed is not main:
        out.append(f"† The seed ran on the first {seed.lines:,} lines of each file only "
                   f"({seed.describe()}): "
                   "at ~1 MB/s the full workload takes minutes, so compare its MB/s, not its wall time.")
    by_name = {s.contender: s for s in summaries}
    floor, raw = by_name.get(PYTHON_FLOOR), by_name.get("logferry")
    if floor and raw and floor.mb_s:
        out.append(f"logferry reaches {raw.mb_s / floor.mb_s:.2f} × the bare Python loop's bandwidth "
                   f"({raw.mb_s:,.0f} vs {floor.mb_s:,.0f} MB/s; the difference: logferry's start-up and "
                   "engine). Between the loop and cat: the interpreter's start and the lines (finding and "
                   "counting them). cat's output here is opened O_APPEND, where copy_file_range fails "
                   "(EBADF): cat copies through a 128 KiB buffer (read, then write), as the loop does through 1 MiB.")
    for s in summaries:
        if s.contender == "logferry --format json":
            verdict = "met" if s.lines_s >= JSON_TARGET_LINES_S else "NOT met"
            out.append(f"logferry --format json: {s.lines_s:,.0f} lines/s "
                       f"(target ≥ {JSON_TARGET_LINES_S:,}: {verdict}).")
    out.extend(skipped)
    out.extend(f"✗ {r.contender}, run {r.repeat}: " + ("" if r.status == "ok" else f"{r.status}; ")
               + f"{r.check.describe()}." for r in results if not r.intact)
    return out


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--files", type=int, default=8, metavar="N",
                        help=f"number of input files (at most {MAX_FILES})")
    parser.add_argument("--lines", type=int, default=250_000, metavar="N", help="lines in each input file")
    parser.add_argument("--line-bytes", type=int, default=100, metavar="N",
                        help=f"bytes per line, newline included (at least {MIN_LINE_BYTES})")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="timed runs of each contender; medians are reported")
    parser.add_argument("--logferry", metavar="CMD", default=shlex.join([sys.executable, "-m", "logferry"]),
                        help="command that runs logferry (split like a shell would)")
    parser.add_argument("--seed-lines", type=int, default=20_000, metavar="N",
                        help="the seed reads only this many first lines of each file (0: all)")
    parser.add_argument("--seed-timeout", type=float, default=60.0, metavar="S",
                        help="seconds a seed run may take before it is stopped and marked ✗")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="seconds any other run may take before it is stopped and marked ✗")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table and its notes here")
    parser.add_argument("--json", metavar="FILE", help="write every run's raw results here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (inputs and outputs)")
    args = parser.parse_args(argv)
    if not 1 <= args.files <= MAX_FILES or args.lines < 1 or args.repeats < 1 or args.seed_lines < 0:
        parser.error(f"--files must be 1..{MAX_FILES}, --lines and --repeats at least 1, "
                     "--seed-lines at least 0")
    if args.line_bytes < MIN_LINE_BYTES:
        parser.error(f"--line-bytes must be at least {MIN_LINE_BYTES}")
    return args


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_contenders(args: argparse.Namespace, root: Path,
                     main: Workload) -> tuple[list[Contender], Workload | None, list[str]]:
    """The contenders to run, the seed's workload (None when skipped), and notes on skipped ones."""
    command = shlex.split(args.logferry)
    contenders = [cat_contender(main, args.timeout),
                  python_floor_contender(main, args.timeout),
                  logferry_contender(command, main, "raw", args.timeout),
                  logferry_contender(command, main, "json", args.timeout)]
    if not ANCHORS.exists():
        return contenders, None, [f"seed, {', '.join(NATIVES)}: skipped: {ANCHORS} not found"]
    seed_lines = min(args.seed_lines or args.lines, args.lines)
    seed = main if seed_lines == args.lines else \
        write_workload(root / "seed-in", args.files, seed_lines, args.line_bytes)
    natives, skipped = native_contenders(load_anchors(ANCHORS), main, args.timeout)
    return [*contenders, seed_contender(ANCHORS, seed, args.seed_timeout), *natives], seed, skipped


def run_all(args: argparse.Namespace,
            root: Path) -> tuple[Workload, Workload | None, list[Summary], list[Result], list[str]]:
    """Generate the inputs, run every contender --repeats times, interleaved, and summarise."""
    progress(f"writing {args.files} × {args.lines:,} lines into {root}")
    workload = write_workload(root / "in", args.files, args.lines, args.line_bytes)
    contenders, seed, skipped = build_contenders(args, root, workload)
    warm_page_cache([workload] + ([seed] if seed and seed is not workload else []))
    write_bytecode(shlex.split(args.logferry), root)
    for note in skipped:
        progress(note)
    results = []
    for repeat in range(1, args.repeats + 1):
        for contender in contenders:
            r = run_once(contender, repeat, root / "runs", args.keep)
            results.append(r)
            progress(f"run {repeat}/{args.repeats} {r.contender}: {r.status}, {r.wall_s:.2f} s, "
                     f"{fmt_number(r.mb_s)} MB/s, {r.check.describe()}")
    summaries = [summarise(c.name, results) for c in contenders]
    return workload, seed, summaries, results, skipped


def write_json(path: str, args: argparse.Namespace, workload: Workload, seed: Workload | None,
               summaries: list[Summary], results: list[Result]) -> None:
    meta = {"args": vars(args), "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "workload": workload.describe(),
            "seed_workload": seed.describe() if seed else None}
    runs = [asdict(r) for r in results]
    Path(path).write_text(json.dumps({"meta": meta, "summary": [asdict(s) for s in summaries], "runs": runs},
                                     indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="logferry-catchup-"))
    try:
        workload, seed, summaries, results, skipped = run_all(args, root)
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sliced_seed = seed is not None and seed is not workload
    report = table(summaries, " †" if sliced_seed else "") + "\n\n" + "\n".join(
        f"- {n}" for n in notes(args, workload, seed, summaries, results, skipped))
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    if args.json:
        write_json(args.json, args, workload, seed, summaries, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
