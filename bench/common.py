"""Helpers shared by the benchmark scripts in bench/ (not a benchmark itself).

* where things are: the repository, bench/results, the outside harness ``anchors.py``
  (``../shared/bench/anchors.py`` relative to the repository root, never copied in here);
* contenders: logferry through its CLI, and anchors.py's built-in tools (``tail -F``, rsyslogd,
  fluent-bit, the seed-style Python baseline) launched with anchors.py's own configurations;
* measuring a process (group) from /proc: CPU seconds, resident memory, open descriptors;
* a thread that reads a growing output file and notes when each chunk arrived;
* reports: one Markdown table per workload, targets with met / NOT met, ``--markdown`` and ``--json``.

Formatting helpers and ``load_anchors`` come from ``catchup.py`` so the numbers look alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import catchup  # noqa: E402  (the existing catch-up benchmark: its helpers are shared)
from catchup import fmt_number, fmt_ratio, progress  # noqa: E402,F401  (re-exported)

REPO = catchup.REPO
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
ANCHORS = catchup.ANCHORS
NATIVES = ("rsyslog", "fluent-bit")

# Names in the tables for anchors.py's built-in contenders.
DISPLAY = {"tail": "tail -F", "seed": "seed-style Python", "rsyslog": "rsyslog", "fluent-bit": "fluent-bit",
           "cat": "cat", "syslog-ng": "syslog-ng"}

# Issue 4's targets and the figures from FACTS.md they lean on.
RSYSLOG_LIVE_CPU_FACT = 1.8  # CPU s per 10 s at 20k lines/s, FACTS.md


# --------------------------------------------------------------------------------------------
# anchors.py
# --------------------------------------------------------------------------------------------
_anchors: ModuleType | None = None


def load_outside(path: Path, name: str, uses: str) -> ModuleType:
    """An outside harness (``../shared/bench/NAME.py``, never copied in here) imported as module ``name``;
    exits with a clear message when it is absent. ``uses`` says what the benchmarks take from it."""
    if not path.exists():
        sys.exit(f"error: {path} not found. The benchmarks reuse the outside harness {path.name} ({uses}); it is "
                 f"expected at ../shared/bench/{path.name} relative to the repository root.")
    return catchup.load_anchors(path, name)


def anchors() -> ModuleType:
    """The outside harness anchors.py, imported once."""
    global _anchors
    if _anchors is None:
        _anchors = load_outside(ANCHORS, "anchors", "line format, live writer, checks, baseline configurations")
    return _anchors


def anchors_options(**overrides: Any) -> argparse.Namespace:
    """The options anchors.py's built-in contenders read (binaries from PATH, its default settings)."""
    opts = dict(cat=None, tail=None, rsyslogd=None, syslog_ng=None, fluent_bit=None, seed_interval=0.1,
                fluent_bit_flush="0.1", syslog_ng_follow_freq="0.1")
    opts.update(overrides)
    return argparse.Namespace(**opts)


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------
@dataclass
class Tool:
    """A contender: a name for the tables and how to start it on a run's paths (anchors.RunPaths)."""

    name: str
    launch: Callable[[Any], subprocess.Popen]
    kind: str = "baseline"  # or "logferry"
    describe: str = ""


def logferry_command(spec: str | None) -> list[str]:
    """``--logferry`` split like a shell would, else the ``logferry`` next to this Python, else on PATH,
    else ``python -m logferry``."""
    if spec:
        return shlex.split(spec)
    beside = Path(sys.executable).parent / "logferry"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("logferry")
    return [found] if found else [sys.executable, "-m", "logferry"]


def logferry_tool(command: list[str], name: str, extra: Sequence[str] = (),
                  sink: Callable[[Any], str] | None = None) -> Tool:
    """``logferry run DIR/*.log --sink file:OUT --state-dir STATE EXTRA...`` in its own session."""

    def argv(p: Any) -> list[str]:
        target = sink(p) if sink else f"file:{p.out}"
        return [*command, "run", p.glob, "--sink", target, "--state-dir", str(p.state), *extra]

    def launch(p: Any) -> subprocess.Popen:
        return popen(argv(p), p)

    shown = shlex.join([Path(command[0]).name, *command[1:], "run", "DIR/*.log", "--sink", "file:OUT",
                        "--state-dir", "STATE", *extra])
    return Tool(name, launch, "logferry", shown)


def follow_tools(args: Any, baselines: Sequence[str], extra: Sequence[str] = ()) -> tuple[list[Tool], list[str]]:
    """``--contenders``: logferry, logferry-nowatch (both with ``extra``) and the named baselines."""
    command = logferry_command(args.logferry)
    tools, skipped = [], []
    for name in (w.strip() for w in args.contenders.split(",") if w.strip()):
        if name == "logferry":
            tools.append(logferry_tool(command, "logferry", extra))
        elif name == "logferry-nowatch":
            tools.append(logferry_tool(command, "logferry --no-watch", [*extra, "--no-watch"]))
        elif name in baselines:
            found, notes = baseline_tools([name])
            tools += found
            skipped += notes
        else:
            sys.exit(f"unknown contender {name!r}")
    return tools, skipped


def popen(argv: list[str], p: Any, stdout: Path | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own session and process group, stderr to the run's log."""
    p.state.mkdir(parents=True, exist_ok=True)
    with open(p.log, "ab") as log, open(stdout or p.log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=log, cwd=p.state,
                                start_new_session=True)


def baseline_tools(names: Iterable[str], **options: Any) -> tuple[list[Tool], list[str]]:
    """anchors.py's built-in contenders that are installed, and a note for each one that is not."""
    a = anchors()
    opts = anchors_options(**options)
    tools, skipped = [], []
    for name in names:
        native = a.BUILTIN[name](opts)
        why = native.available()
        shown = DISPLAY.get(name, name)
        if why:
            skipped.append(f"{shown}: skipped ({why}).")
            continue
        tools.append(Tool(shown, native.launch, "baseline", native.describe().strip().splitlines()[0]))
    return tools, skipped


def run_paths(run_dir: Path, in_dir: Path, names: Sequence[str], out: Path | None = None) -> Any:
    """anchors.RunPaths for a run directory: inputs in ``in_dir``, output, private state and log."""
    for sub in ("out", "state"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return anchors().RunPaths(in_dir=in_dir, inputs=[in_dir / n for n in names],
                              out=out or run_dir / "out" / "out.log", state=run_dir / "state",
                              log=run_dir / "tool.log")


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout``."""
    anchors().stop_proc(proc, timeout)


def tool_log(path: Path, lines: int = 6) -> str:
    return anchors().tail_log(path, lines)


# --------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """user+sys seconds of every process in the group (from /proc/PID/stat; clock ticks of 10 ms)."""
    return anchors().group_cpu(pgid)


def group_rss_mb(pgid: int, key: str = "VmRSS") -> float:
    return anchors().group_rss_mb(pgid, key)


def group_fds(pgid: int) -> int:
    total = 0
    for pid in anchors().group_pids(pgid):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def status_kb(pid: int, key: str) -> int:
    return anchors()._status_kb(pid, key)


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------------------------
# Watching an output file grow
# --------------------------------------------------------------------------------------------
class ArrivalReader(threading.Thread):
    """Reads a growing file as closely as it can and keeps (CLOCK_MONOTONIC ns, bytes) per read.

    The arrival time of a line is the time of the read that returned its newline; with
    ``sleep`` between empty reads this is at most ``sleep`` (plus scheduling) late. Lines are
    parsed later, by :meth:`take_lines`, so the reading itself stays cheap.
    """

    def __init__(self, path: Path, sleep: float = 0.0005) -> None:
        super().__init__(daemon=True, name="arrival-reader")
        self.path = path
        self.sleep = sleep
        self.chunks: list[tuple[int, bytes]] = []
        self.newlines = 0
        self._halt = threading.Event()
        self._taken = 0
        self._rest = b""

    def run(self) -> None:
        fd = None
        while not self._halt.is_set():
            if fd is None:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except FileNotFoundError:
                    time.sleep(self.sleep)
                    continue
            data = os.read(fd, 1 << 20)
            if data:
                self.chunks.append((time.monotonic_ns(), data))
                self.newlines += data.count(b"\n")
            else:
                time.sleep(self.sleep)
        if fd is not None:
            while data := os.read(fd, 1 << 20):
                self.chunks.append((time.monotonic_ns(), data))
                self.newlines += data.count(b"\n")
            os.close(fd)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def take_lines(self) -> list[tuple[int, bytes]]:
        """(arrival ns, line without newline) for every complete line not taken before."""
        out = []
        chunks = self.chunks[self._taken:]
        self._taken += len(chunks)
        for t, data in chunks:
            data = self._rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                self._rest = data
                continue
            self._rest = data[cut + 1:]
            out.extend((t, line) for line in data[:cut].split(b"\n"))
        return out


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.005,
             alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: Iterable[float | None]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def fmt(value: float | None, digits: int | None = None) -> str:
    """A number for a table: fmt_number's rounding unless ``digits`` is given; — for None."""
    if value is None:
        return "—"
    if digits is not None:
        return f"{value:,.{digits}f}"
    return fmt_number(value) if value >= 0.01 or value == 0 else f"{value:.3f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "—"
    return fmt_ratio(a / b) if a > 0 else "0"


def md_table(header: list[str], rows: list[list[str]], text_columns: Iterable[int] = (0,)) -> str:
    """A Markdown table with aligned columns; columns not in ``text_columns`` are right-aligned."""
    text = set(text_columns)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i in text else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i in text else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


@dataclass
class Target:
    """One of an issue's targets (issue 4's unless ``issue`` says otherwise) and what this run measured for it."""

    what: str
    limit: float
    unit: str
    value: float | None
    higher_is_better: bool = False
    note: str = ""
    digits: int | None = None  # how the value and limit are shown (default: fmt's rounding)
    issue: int = 4  # the issue that set the target
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        if self.value is None:
            self.met = None
        else:
            self.met = self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def line(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        got = "—" if self.value is None else f"{fmt(self.value, self.digits)} {self.unit}".strip()
        extra = f" ({self.note})" if self.note else ""
        return (f"{self.what}: {got} (target {op} {fmt(self.limit, self.digits)} {self.unit}".rstrip()
                + f"): **{verdict}**{extra}")

    def failed(self, why: str) -> Target:
        """The run behind this figure failed: the target is not met, whatever the figure says."""
        self.met = False
        self.note = f"{self.note}; {why}" if self.note else why
        return self


def targets_block(targets: list[Target]) -> str:
    issues = ", ".join(str(n) for n in sorted({t.issue for t in targets}))
    return f"Targets (issue {issues}):\n\n" + "\n".join(f"- {t.line()}" for t in targets)


# --------------------------------------------------------------------------------------------
# Command line and output
# --------------------------------------------------------------------------------------------
class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=Formatter)
    p.add_argument("--quick", action="store_true", help="a smoke run (well under a minute): small sizes, one repeat")
    p.add_argument("--logferry", metavar="CMD", default=None,
                   help="command that runs logferry (default: the logferry next to this Python, else on PATH)")
    p.add_argument("--markdown", metavar="FILE", help="also write the report (Markdown) here")
    p.add_argument("--json", metavar="FILE", help="write the summary and every run's raw results here")
    p.add_argument("--workdir", metavar="DIR", default=None, help="parent of the temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (inputs, outputs, logs)")
    return p


def git_describe() -> str:
    """The last commit that changed logferry's code (src/, plugins/): commits to bench/ or docs move HEAD, not it."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", "src", "plugins"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src",
                                "plugins"], capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" + uncommitted changes in src/ or plugins/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def logferry_version(command: list[str]) -> str:
    try:
        return subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"


def environment() -> str:
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}; "
            f"logferry at {git_describe()}")


def emit(args: argparse.Namespace, title: str, body: str, targets: list[Target], data: dict[str, Any]) -> None:
    """Print the report; write it with --markdown, and the data (+ targets, meta) with --json."""
    report = f"## {title}\n\n{body.strip()}\n"
    if targets:
        report += "\n" + targets_block(targets) + "\n"
    print(report)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(report)
    if args.json:
        meta = {"title": title, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                "logferry": git_describe(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        out = {"meta": meta, **data, "targets": [asdict(t) for t in targets]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")


def dump(obj: Any) -> Any:
    return asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj
