#!/usr/bin/env python3
"""Processors benchmark: multiline (java) + JSON parse + drop, next to Fluent Bit's filters (issue 11).

Input: FILES files (8) of about LINES lines each (250,000), generated once: the log of a Java service,
one JSON object a line ``{"ts":"2026-12-01T10:00:00.123Z","level":…,"logger":…,"thread":…,
"rid":"f03-0001234","msg":…}`` (30 % debug, 55 % info, 10 % warn, 5 % error), where 1 % of the
events are an error line followed by a plain-text Java stack trace of 7 to 12 lines (the
exception's line, ``\\tat …`` frames, ``Caused by: …``, its frames, ``\\t... N more``). Every
event carries its file and number (``rid``; a trace names it in its first line), so that any
record in an output can be traced back and compared with what was written. Each file ends with an
info line, so no trace is left waiting for a multiline timeout at the end.

Contenders, on the same files from the page cache:

  fluent-bit       tail (``multiline.parser java``, DB, Read_from_Head) → ``[FILTER] parser`` (json,
                   Key_Name log, Reserve_Data On, Time_Key ts, Time_Keep On) → ``[FILTER] grep``
                   (Exclude level ^debug$) → file output, Format plain (a JSON object a line).
                   Follow mode: timed from its start until its output holds the expected number of
                   records (the output's lines, counted every 10 ms as anchors.py's catch-up does;
                   the moment is taken half-way between the last poll short of it and the first
                   that saw it: ± 5 ms), then SIGTERM. CPU (user+sys, /proc) and VmHWM at that
                   moment. Its Flush (0.1 s) can add up to 0.1 s to its time.
  logferry         ``logferry run -c CONFIG --once``: ``[[processors]]`` multiline (preset java),
                   json (timestamp_key ts), drop (field level, pattern ^debug$); a file sink with
                   format json. Timed from its start to its exit, CPU from wait4.
  logferry raw, logferry --format json
                   the same files through ``logferry run DIR/*.log --once`` with no processor:
                   the no-processor path.
  before: …        with ``--before CMD`` (a logferry from before the processors stage, e.g. an install
                   of the commit before it), the two no-processor rows again with that logferry.

Each processed row runs --repeats times (3), each no-processor row --plain-repeats times (7: its runs
last under 4 s, so their noise is larger), interleaved.

Reported: wall s, lines/s (input lines / wall s), CPU s, CPU s per million input lines, peak RSS
(VmHWM sampled every 10 ms), records out; ratios to Fluent Bit's throughput and CPU per line; and
"others' cores": the machine's busy CPU during the run (/proc/stat) less the contender's, per second,
to show what else competed for the 2 cores.
Medians over the runs that ran to the end (a failed check is reported beside the figures, it does not
drop them). With --quick: 20,000 lines a file, one run.

Every output is checked. Processed (Fluent Bit's and logferry's): every non-debug event exactly once,
in order per file, equal to what was written (level, logger, thread, msg; a trace's whole text), every
trace one record, no debug record, nothing else. No-processor rows: every line once and byte for byte
(the lines that name their event in order per file; the other trace lines as a multiset). Lines and
fields are compared by their 64-bit hash with what was generated.

Targets (issue 11): logferry with the processors ≥ 1 × Fluent Bit's lines/s on this work; the
no-processor path unchanged: with --before, logferry raw and --format json ≥ 0.95 × that build's
lines/s in the same run (without it: not measured). A logferry run that failed its check meets no
target; Fluent Bit's faulty runs keep their figures, marked ✗.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common as c
from catchup import Reaper, RunDir, spawn, stop, vm_hwm_mb, write_bytecode

ISSUE = 11
THROUGHPUT_X = 1.0            # issue 11: ≥ 1 × Fluent Bit's lines/s
UNCHANGED_X = 0.95            # "unchanged": within 5 % of the build before processors (run-to-run noise)
POLL_S = 0.01
QUICK_LINES = 20_000
FLUENT_BIT = c.REPO.parent / "shared" / "bench" / "bin" / "fluent-bit"

# --------------------------------------------------------------------------------------------
# Workload: a Java service's log, every event rebuilt from (file, number) alone
# --------------------------------------------------------------------------------------------
SERVICES = ("orders", "payments", "inventory", "shipping", "accounts", "catalog", "search", "gateway")
PEERS = ("inventory-db", "payments-api", "redis-cache", "kafka-broker", "auth-service")
CLASSES = ("Controller", "Service", "Repository", "Client", "Scheduler")
RID = re.compile(r"f(\d{2})-(\d{7})")
LEVELS = ((300, "debug"), (850, "info"), (950, "warn"), (1000, "error"))
TRACE_PER_MILLE = 10          # events (errors) followed by a stack trace


def _mix(fid: int, n: int) -> int:
    """A well-spread 32-bit number from (file, event): the dice of the generator, reproducible anywhere."""
    h = ((fid + 1) * 0x9E3779B1 ^ (n + 1) * 0x85EBCA77) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    h = (h * 0x297A2D39) & 0xFFFFFFFF
    return h ^ (h >> 15)


@dataclass(frozen=True, slots=True)
class Event:
    fid: int
    n: int
    level: str
    logger: str
    thread: str
    msg: str
    trace: str | None       # the stack trace after the line, its lines joined by "\n"

    @property
    def rid(self) -> str:
        return f"f{self.fid:02d}-{self.n:07d}"

    def json_line(self) -> str:
        return (f'{{"ts":"{stamp(self.fid, self.n)}","level":"{self.level}","logger":"{self.logger}",'
                f'"thread":"{self.thread}","rid":"{self.rid}","msg":"{self.msg}"}}')

    def lines(self) -> list[str]:
        return [self.json_line(), *(self.trace.split("\n") if self.trace else ())]


def stamp(fid: int, n: int) -> str:
    """The time of event ``n`` of file ``fid``: 7 ms apart, from 2026-12-01T10:00:00Z."""
    ms = n * 7 + fid
    return (f"2026-12-01T{10 + ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}."
            f"{ms % 1000:03d}Z")


def event(fid: int, n: int, last: bool = False) -> Event:
    """Event ``n`` of file ``fid`` (``last``: the file's final event, always a plain info line)."""
    h = _mix(fid, n)
    dice = 500 if last else h % 1000
    level = next(name for bound, name in LEVELS if dice < bound)
    svc = SERVICES[fid % len(SERVICES)]
    cls = svc.capitalize() + CLASSES[h >> 10 & 3]
    peer = PEERS[h >> 12 & 3]
    num, ms = h >> 8 & 0xFFFFF, 1 + (h >> 20) % 900
    if level == "debug":
        msg = f"cache lookup key={svc}:{num} hit={'true' if h & 64 else 'false'} in {ms % 9}ms"
    elif level == "info":
        msg = f"POST /api/{svc}/{num} 200 {ms}ms"
    elif level == "warn":
        msg = f"slow call to {peer}: {ms + 500}ms (limit 500ms), retrying"
    else:
        msg = f"request {num} to {peer} failed: connection reset"
    trace = None
    if level == "error" and dice >= 1000 - TRACE_PER_MILLE:
        msg = f"request {num} failed, see the stack trace"
        trace = _trace(fid, n, svc, h)
    return Event(fid, n, level, f"com.acme.{svc}.{cls}", f"http-nio-8080-exec-{h >> 4 & 15}", msg, trace)


def _trace(fid: int, n: int, svc: str, h: int) -> str:
    kind = svc.capitalize()
    frames = [f"\tat com.acme.{svc}.{kind}Service.handle({kind}Service.java:{40 + h % 200})",
              f"\tat com.acme.{svc}.{kind}Controller.post({kind}Controller.java:{20 + h % 90})",
              "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
              "\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)",
              "\tat org.apache.tomcat.util.threads.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1190)",
              "\tat java.base/java.lang.Thread.run(Thread.java:1583)"]
    cause = ["\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)",
             "\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:182)",
             f"\tat com.acme.{svc}.client.HttpTransport.send(HttpTransport.java:{60 + h % 40})"]
    shown, caused = 3 + (h >> 3) % 4, 1 + (h >> 6) % 3
    return "\n".join([f"com.acme.{svc}.{kind}ServiceException: request f{fid:02d}-{n:07d} failed",
                      *frames[:shown], "Caused by: java.net.SocketTimeoutException: Read timed out",
                      *cause[:caused], f"\t... {len(frames) - shown + 2} more"])


@dataclass
class Expected:
    """One file's events as the checks need them: what each line hashes to, with no event to rebuild."""

    lines: array[int] = field(default_factory=lambda: array("q"))    # hash of each event's JSON line
    fields: array[int] = field(default_factory=lambda: array("q"))   # hash of (level, logger, thread, msg)
    debug: bytearray = field(default_factory=bytearray)              # 1: a debug event, to be dropped
    traces: dict[int, str] = field(default_factory=dict)             # event number → its stack trace

    def add(self, e: Event) -> None:
        self.lines.append(hash(e.json_line()))
        self.fields.append(hash((e.level, e.logger, e.thread, e.msg)))
        self.debug.append(e.level == "debug")
        if e.trace is not None:
            self.traces[e.n] = e.trace


@dataclass
class Workload:
    """The generated files, and what a correct output of them holds."""

    directory: Path
    files: list[Expected]
    lines: int = 0                  # input lines, all files
    records: int = 0                # what a processed output must hold: non-debug events and traces
    traces: int = 0
    debug: int = 0
    continuation: Counter[str] = field(default_factory=Counter)  # trace lines naming no event (raw checks)
    size: int = 0                   # bytes, all files

    @property
    def paths(self) -> list[Path]:
        return [self.directory / f"svc{fid:02d}.log" for fid in range(len(self.files))]

    @property
    def glob(self) -> str:
        return str(self.directory / "*.log")

    @property
    def events(self) -> int:
        return sum(len(f.debug) for f in self.files)

    def describe(self) -> str:
        return (f"{len(self.files)} files, {self.lines:,} lines ({self.size / 1e6:,.0f} MB), {self.events:,} "
                f"events: {self.debug:,} debug, {self.traces:,} stack traces "
                f"({self.lines - self.events - self.traces:,} trace lines after their first)")

    def named(self, text: str) -> tuple[int, int] | None:
        """(file, event) of the first rid in ``text``, if the input has that event."""
        m = RID.search(text)
        if m is None:
            return None
        fid, n = int(m[1]), int(m[2])
        return (fid, n) if fid < len(self.files) and n < len(self.files[fid].debug) else None


def write_workload(directory: Path, files: int, lines: int) -> Workload:
    """Write ``files`` files of at least ``lines`` lines each (whole events), each ending with an info line."""
    directory.mkdir(parents=True)
    w = Workload(directory, [Expected() for _ in range(files)])
    for fid, path in enumerate(w.paths):
        written, chunk = 0, []
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for n in itertools.count():
                last = written >= lines - 1
                e = event(fid, n, last)
                w.files[fid].add(e)
                text = e.lines()
                chunk.extend(text)
                written += len(text)
                w.debug += e.level == "debug"
                w.records += (e.level != "debug") + (e.trace is not None)
                if e.trace:
                    w.traces += 1
                    w.continuation.update(text[2:])
                if last:
                    break
                if len(chunk) >= 65536:
                    f.write("\n".join(chunk) + "\n")
                    chunk.clear()
            f.write("\n".join(chunk) + "\n")
        w.lines += written
        w.size += path.stat().st_size
    return w


# --------------------------------------------------------------------------------------------
# Output checks
# --------------------------------------------------------------------------------------------
@dataclass
class Check:
    """How an output compares with what a correct one holds (``expected`` records or lines)."""

    expected: int
    out: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    garbled: int = 0            # not JSON, not an event of the input, or an event not as written
    debug: int = 0              # debug records that should have been dropped
    broken_traces: int = 0      # records holding part of a trace only
    whole_traces: int = 0
    ts_off: int = 0             # parsed events whose "ts" differs from the one written (not a fault here)
    ts_example: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.out_of_order or self.garbled or self.debug
                    or self.broken_traces)

    def describe(self) -> str:
        faults = ", ".join(f"{getattr(self, k):,} {k.replace('_', ' ')}" for k in
                           ("missing", "duplicated", "out_of_order", "garbled", "debug", "broken_traces")
                           if getattr(self, k))
        head = f"{self.out:,} of {self.expected:,} out"
        return f"{head}, each once, in order" if self.ok else f"{head}: {faults}"


class Order:
    """Per file: which of its records were seen (2 per event: its line, its trace), and in what order."""

    def __init__(self, w: Workload, check: Check) -> None:
        self.seen = [bytearray(2 * len(f.debug)) for f in w.files]
        self.last = [-1] * len(w.files)
        self.check = check
        self.count = 0

    def saw(self, fid: int, key: int) -> None:
        if self.seen[fid][key]:
            self.check.duplicated += 1
            return
        self.seen[fid][key] = 1
        self.count += 1
        if key < self.last[fid]:
            self.check.out_of_order += 1
        else:
            self.last[fid] = key


def _lines(path: Path) -> Iterator[bytes]:
    if path.exists():
        with open(path, "rb") as f:
            yield from f


def check_processed(path: Path, w: Workload, text_key: str) -> Check:
    """A processed output (a JSON object a line): every non-debug event once, as written, in order per
    file; every trace one whole record (its text under ``text_key``); nothing else."""
    check = Check(w.records)
    order = Order(w, check)
    for raw in _lines(path):
        check.out += 1
        try:
            record = json.loads(raw)
        except ValueError:
            check.garbled += 1
            continue
        if not isinstance(record, dict):
            check.garbled += 1
        elif isinstance(record.get("rid"), str):  # a parsed event
            at = w.named(record["rid"])
            if at is None or hash((record.get("level"), record.get("logger"), record.get("thread"),
                                   record.get("msg"))) != w.files[at[0]].fields[at[1]]:
                check.garbled += 1
            elif w.files[at[0]].debug[at[1]]:
                check.debug += 1
            else:
                if record.get("ts") != stamp(*at):
                    check.ts_off += 1
                    check.ts_example = check.ts_example or f"{stamp(*at)} written, {record.get('ts')} out"
                order.saw(at[0], 2 * at[1])
        else:  # a trace: Fluent Bit keeps its last line's newline
            text = record.get(text_key)
            at = w.named(text) if isinstance(text, str) else None
            trace = w.files[at[0]].traces.get(at[1]) if at else None
            if at and trace is not None and str(text).removesuffix("\n") == trace:
                check.whole_traces += 1
                order.saw(at[0], 2 * at[1] + 1)
            elif isinstance(text, str) and (trace is not None or text.startswith(("\t", "Caused by: "))):
                check.broken_traces += 1  # a piece of a trace: its head, or lines of its middle
            else:
                check.garbled += 1
    check.missing = w.records - order.count
    return check


def check_lines(path: Path, w: Workload, fmt: str) -> Check:
    """A no-processor output (raw lines, or JSON records with the line in "line"): every input line once,
    as written (by its hash); the lines that name their event in order per file, the other trace lines as a
    multiset."""
    check = Check(w.lines)
    order = Order(w, check)
    rest: Counter[str] = Counter()
    for raw in _lines(path):
        check.out += 1
        try:
            text = raw[:-1].decode() if fmt == "raw" else json.loads(raw)["line"]
        except (ValueError, KeyError, TypeError):
            check.garbled += 1
            continue
        at = w.named(text) if isinstance(text, str) and raw.endswith(b"\n") else None
        if not isinstance(text, str) or not raw.endswith(b"\n"):
            check.garbled += 1
        elif not text.startswith(("{", "com.acme.")):
            rest[text] += 1
        elif at is None:
            check.garbled += 1
        elif text[0] == "{":
            if hash(text) == w.files[at[0]].lines[at[1]]:
                order.saw(at[0], 2 * at[1])
            else:
                check.garbled += 1
        elif text == w.files[at[0]].traces.get(at[1], "").split("\n", 1)[0]:
            order.saw(at[0], 2 * at[1] + 1)
        else:
            check.garbled += 1
    lacking, extra = w.continuation - rest, rest - w.continuation
    check.garbled += sum(n for line, n in extra.items() if line not in w.continuation)
    check.duplicated += sum(n for line, n in extra.items() if line in w.continuation)
    check.missing = (w.lines - w.continuation.total() - order.count) + lacking.total()
    return check


# --------------------------------------------------------------------------------------------
# Contenders
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contender:
    name: str
    start: Callable[[RunDir], subprocess.Popen]
    check: Callable[[Path], Check]
    follows: bool = False       # runs until stopped: timed until its output holds every record
    role: str = ""              # "fluent-bit", "processors", "raw", "json", "before raw", "before json"

    @property
    def processed(self) -> bool:
        return self.role in ("fluent-bit", "processors")


FLUENT_BIT_CONF = """\
[SERVICE]
    Flush        {flush}
    Grace        1
    Daemon       Off
    Log_Level    warn
    HTTP_Server  Off
    Parsers_File {state}/parsers.conf

[INPUT]
    Name              tail
    Path              {glob}
    DB                {state}/tail.db
    Read_from_Head    On
    multiline.parser  java

[FILTER]
    Name          parser
    Match         *
    Key_Name      log
    Parser        java_json
    Reserve_Data  On

[FILTER]
    Name     grep
    Match    *
    Exclude  level ^debug$

[OUTPUT]
    Name    file
    Match   *
    Path    {out_dir}
    File    {out_name}
    Format  plain
"""

FLUENT_BIT_PARSERS = """\
[PARSER]
    Name         java_json
    Format       json
    Time_Key     ts
    Time_Format  %Y-%m-%dT%H:%M:%S.%LZ
    Time_Keep    On
"""

LOGFERRY_CONF = """\
[sources]
paths = [{glob}]

[[processors]]
type = "multiline"
preset = "java"

[[processors]]
type = "json"
timestamp_key = "ts"

[[processors]]
type = "drop"
field = "level"
pattern = "^debug$"

[[sinks]]
url = {sink}
format = "json"

[state]
dir = {state}
"""


def _toml(text: str | Path) -> str:
    return json.dumps(str(text))  # a JSON string is a TOML basic string


def fluent_bit_contender(binary: str, flush: str, w: Workload) -> Contender:
    def start(run: RunDir) -> subprocess.Popen:
        (run.state / "parsers.conf").write_text(FLUENT_BIT_PARSERS)
        (run.state / "fluent-bit.conf").write_text(FLUENT_BIT_CONF.format(
            flush=flush, state=run.state, glob=w.glob, out_dir=run.out.parent, out_name=run.out.name))
        return spawn([binary, "-c", str(run.state / "fluent-bit.conf")], run)

    return Contender("fluent-bit: multiline java + parser json + grep", start,
                     lambda out: check_processed(out, w, "log"), follows=True, role="fluent-bit")


def logferry_processors(command: list[str], w: Workload) -> Contender:
    def start(run: RunDir) -> subprocess.Popen:
        config = run.path / "logferry.toml"
        config.write_text(LOGFERRY_CONF.format(glob=_toml(w.glob), sink=_toml(f"file:{run.out}"),
                                               state=_toml(run.state)))
        return spawn([*command, "run", "-c", str(config), "--once"], run)

    return Contender("logferry: multiline java + json + drop", start,
                     lambda out: check_processed(out, w, "line"), role="processors")


def logferry_plain(command: list[str], w: Workload, fmt: str, before: bool = False) -> Contender:
    extra = [] if fmt == "raw" else ["--format", fmt]

    def start(run: RunDir) -> subprocess.Popen:
        return spawn([*command, "run", w.glob, "--once", "--sink", f"file:{run.out}",
                      "--state-dir", str(run.state), *extra], run)

    name = ("before: " if before else "") + "logferry, no processor" + ("" if fmt == "raw" else f", --format {fmt}")
    return Contender(name, start, lambda out: check_lines(out, w, fmt), role=("before " if before else "") + fmt)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
@dataclass
class Result:
    contender: str
    role: str
    repeat: int
    status: str
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float
    lines_s: float
    cpu_per_m: float | None     # CPU s per million input lines
    others: float | None        # cores kept busy meanwhile by everything else (this harness included)
    check: Check
    intact: bool = field(init=False)

    def __post_init__(self) -> None:
        self.intact = self.status == "ok" and self.check.ok


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (every core; /proc/stat, without idle and iowait)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / c.CLK_TCK


def measure(ct: Contender, run: RunDir, records: int, timeout: float,
            stall: float) -> tuple[str, float, float | None, float]:
    """(status, wall s, CPU s, peak RSS MB) of one run: to its exit, or (follow mode) until its output holds
    ``records`` lines, taken half-way between the last poll short of them and the first that saw them."""
    counter = c.anchors().OutCounter(run.out)
    t0 = time.perf_counter()
    proc = ct.start(run)
    reaper = None if ct.follows else Reaper(proc)
    if reaper:
        reaper.start()
    status, cpu, rss = "ok", None, 0.0
    before = grew = t0
    seen = 0
    try:
        while True:
            rss = max(rss, vm_hwm_mb(proc.pid))
            if reaper:
                reaper.join(POLL_S)
                if not reaper.is_alive():
                    end, cpu = reaper.exited_at, reaper.cpu_s
                    status = f"exit {reaper.returncode}" if reaper.returncode else status
                    break
                now = time.perf_counter()
            else:
                time.sleep(POLL_S)
                now = time.perf_counter()
                n = counter.poll()
                if n >= records:
                    end, cpu = (before + now) / 2, c.group_cpu(proc.pid)
                    break
                if n != seen:
                    seen, grew = n, now
                elif now - grew > stall:
                    end, cpu, status = grew, c.group_cpu(proc.pid), f"stalled at {n:,} of {records:,} records"
                    break
                if proc.poll() is not None:
                    end, status = now, f"exit {proc.returncode}"
                    break
                before = now
            if now - t0 > timeout:
                end, status = now, f"timeout after {timeout:g} s"
                break
    finally:
        if reaper:
            stop(reaper)  # SIGTERM, then SIGKILL, its process group (when it is still running)
        else:
            c.stop(proc)
        counter.close()
    return status, end - t0, cpu, rss


def run_once(ct: Contender, repeat: int, root: Path, w: Workload, args: Any) -> Result:
    run = RunDir(root / f"{re.sub(r'[^A-Za-z0-9]+', '_', ct.role)}-{repeat}")
    run.state.mkdir(parents=True)
    expected = w.records if ct.processed else w.lines
    busy = busy_cpu_s()
    status, wall, cpu, rss = measure(ct, run, expected, args.timeout, args.stall)
    others = None if cpu is None else max(0.0, busy_cpu_s() - busy - cpu) / wall
    check = ct.check(run.out)
    if status != "ok":
        c.progress(f"{ct.name}: {status}; the end of its log:\n{c.tool_log(run.log, 10)}")
    if not args.keep:
        shutil.rmtree(run.path, ignore_errors=True)
    return Result(ct.name, ct.role, repeat, status, wall, cpu, rss, w.lines / wall,
                  None if cpu is None else cpu / w.lines * 1e6, others, check)


@dataclass
class Summary:
    """Medians of one contender's runs that ran to the end (a failed check does not change the timing; it is
    reported beside it), else of all its runs."""

    contender: str
    role: str
    runs: int
    failed: int
    wall_s: float
    lines_s: float
    cpu_s: float | None
    cpu_per_m: float | None
    peak_rss_mb: float
    others: float | None
    records_out: int
    check: str


def summarise(ct: Contender, results: list[Result]) -> Summary:
    mine = [r for r in results if r.contender == ct.name]
    good = [r for r in mine if r.status == "ok"] or mine
    return Summary(ct.name, ct.role, len(mine), sum(not r.intact for r in mine),
                   statistics.median(r.wall_s for r in good), statistics.median(r.lines_s for r in good),
                   c.median(r.cpu_s for r in good), c.median(r.cpu_per_m for r in good),
                   statistics.median(r.peak_rss_mb for r in good), c.median(r.others for r in good),
                   good[-1].check.out, good[-1].check.describe())


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def table(summaries: list[Summary]) -> str:
    by = {s.role: s for s in summaries}
    fb, before = by.get("fluent-bit"), {"raw": by.get("before raw"), "json": by.get("before json")}
    header = ["contender", "lines/s", "× fluent-bit", "wall s", "CPU s", "CPU s / M lines", "CPU/line × fluent-bit",
              "peak RSS MB", "others' cores", "out", "intact"]
    if any(before.values()):
        header.insert(3, "× before")
    rows = []
    for s in summaries:
        row = [s.contender, f"{s.lines_s:,.0f}", c.ratio(s.lines_s, fb.lines_s if fb else None), c.fmt(s.wall_s, 2),
               c.fmt(s.cpu_s, 2), c.fmt(s.cpu_per_m, 2), c.ratio(s.cpu_per_m, fb.cpu_per_m if fb else None),
               c.fmt(s.peak_rss_mb, 1), c.fmt(s.others, 2), f"{s.records_out:,}",
               "✓" if not s.failed else f"✗ ({s.failed}/{s.runs})"]
        if any(before.values()):
            base = before.get(s.role)
            row.insert(3, c.ratio(s.lines_s, base.lines_s) if base and s.role in ("raw", "json") else "")
        rows.append(row)
    return c.md_table(header, rows, (0, len(header) - 1))


def _versus(what: str, limit: float, unit: str, mine: Summary | None, theirs: Summary | None,
            absent: str, strict: bool) -> c.Target:
    """A target on the ratio of two contenders' lines/s, not met when a run of ``mine`` failed (or of ``theirs``,
    with ``strict``: both are logferry); a peer's faulty run keeps its figures, and the notes say so."""
    if mine is None or theirs is None:
        return c.Target(what, limit, unit, None, higher_is_better=True, issue=ISSUE, digits=2, note=absent)
    t = c.Target(what, limit, unit, mine.lines_s / theirs.lines_s, higher_is_better=True, issue=ISSUE, digits=2,
                 note=f"{mine.lines_s:,.0f} vs {theirs.lines_s:,.0f} lines/s")
    return t.failed("a run failed its check") if mine.failed or strict and theirs.failed else t


def targets(summaries: list[Summary]) -> list[c.Target]:
    by = {s.role: s for s in summaries}
    out = [_versus("multiline java + json + drop: logferry lines/s × Fluent Bit's", THROUGHPUT_X, "× fluent-bit",
                   by.get("processors"), by.get("fluent-bit"), "needs logferry with processors and Fluent Bit",
                   strict=False)]
    out += [_versus(f"no-processor path unchanged ({fmt}): lines/s × the build before processors", UNCHANGED_X,
                    "× before", by.get(fmt), by.get(f"before {fmt}"),
                    "run with --before CMD (a logferry from before the processors stage)", strict=True)
            for fmt in ("raw", "json")]
    return out


def notes(args: Any, w: Workload, summaries: list[Summary], results: list[Result], skipped: list[str],
          load: tuple[float, float, float], versions: dict[str, str]) -> list[str]:
    out = [f"Input: {w.describe()}; from the page cache. A processed output must hold {w.records:,} records "
           f"(the non-debug events and the traces). Medians of {args.repeats} runs with processors, "
           f"{args.plain_repeats} without (shorter, noisier), interleaved; {c.environment()}; "
           f"load average when it started {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
           "lines/s = input lines / wall s. Wall: logferry from start to exit (`--once`, interpreter start-up "
           "included); Fluent Bit from start until its output held every record (polled every 10 ms, the moment "
           f"taken half-way between two polls: ± 5 ms; its Flush {args.fluent_bit_flush} s can add up to that much). "
           "CPU is user+sys (logferry: wait4 at exit; Fluent Bit: /proc at that moment, its shutdown left out); "
           "peak RSS is VmHWM sampled every 10 ms. Others' cores: the machine's busy CPU during the run (/proc/stat) "
           "less the contender's, per second of its wall time: this harness (≈ 0.05) and whatever else ran.",
           "Checks: processed outputs hold every non-debug event once, in order per file, with the level, logger, "
           "thread and msg written, every trace as one record of its whole text (Fluent Bit keeps the trace's last "
           "newline, accepted), and no debug record; no-processor outputs hold every input line once, byte for byte.",
           *(f"{name}: {v}" for name, v in versions.items()), *skipped]
    for s in summaries:
        r = next(r for r in results if r.contender == s.contender)
        if r.check.ts_off:
            out.append(f"{s.contender}: {r.check.ts_off:,} of its parsed records carry a `ts` other than the one "
                       f"written (e.g. {r.check.ts_example}); not counted as a fault here.")
    if any(r.check.broken_traces for r in results):
        out.append("Broken traces: a stack trace shipped in pieces (its head; lines of its own; a `Caused by:` line "
                   "that starts an event of its own). Both multiline stages let an open event go after a timeout; "
                   "catching up, a file waiting its turn to be processed is not quiet, yet its trace can be cut.")
    out += [f"✗ {r.contender}, run {r.repeat}: " + ("" if r.status == "ok" else f"{r.status}; ")
            + r.check.describe() for r in results if not r.intact]
    return out


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--files", type=int, default=8, metavar="N", help="input files (at most 99)")
    p.add_argument("--lines", type=int, default=250_000, metavar="N", help="lines in each input file (about)")
    p.add_argument("--repeats", type=int, default=3, metavar="N", help="runs of each contender; medians reported")
    p.add_argument("--plain-repeats", type=int, default=7, metavar="N",
                   help="runs of each no-processor row (short runs: more of them, for 'unchanged')")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="longest run")
    p.add_argument("--stall", type=float, default=30.0, metavar="S",
                   help="give Fluent Bit up when its output has not grown for this long")
    p.add_argument("--fluent-bit", metavar="PATH", default=str(FLUENT_BIT) if os.access(FLUENT_BIT, os.X_OK)
                   else shutil.which("fluent-bit"), help="default: ../shared/bench/bin/fluent-bit, else on PATH")
    p.add_argument("--fluent-bit-flush", default="0.1", metavar="S", help="Fluent Bit's [SERVICE] Flush")
    p.add_argument("--before", metavar="CMD", default=None,
                   help="a logferry from before the processors stage: its no-processor rows are the yardstick "
                        "of 'the no-processor path unchanged'")
    p.add_argument("--contenders", default="fluent-bit,processors,raw,json",
                   help="comma list of: fluent-bit, processors, raw, json (with --before, its raw and json too)")
    args = p.parse_args(argv)
    if args.quick:
        args.lines, args.repeats, args.plain_repeats = QUICK_LINES, 1, 1
    if not 1 <= args.files <= 99 or args.lines < 2 or args.repeats < 1 or args.plain_repeats < 1:
        p.error("--files must be 1..99, --lines at least 2, --repeats and --plain-repeats at least 1")
    return args


def build(args: Any, w: Workload) -> tuple[list[Contender], list[str], dict[str, str]]:
    command = c.logferry_command(args.logferry)
    contenders, skipped = [], []
    versions = {"logferry": f"`{shlex.join(command)}`, {c.logferry_version(command)}"}
    for name in (x.strip() for x in args.contenders.split(",") if x.strip()):
        if name == "fluent-bit":
            if args.fluent_bit:
                contenders.append(fluent_bit_contender(args.fluent_bit, args.fluent_bit_flush, w))
                versions["Fluent Bit"] = f"{c.logferry_version([args.fluent_bit]).splitlines()[0]} at {args.fluent_bit}"
            else:
                skipped.append("fluent-bit: skipped (not found at ../shared/bench/bin/fluent-bit nor on PATH).")
        elif name == "processors":
            contenders.append(logferry_processors(command, w))
        elif name in ("raw", "json"):
            contenders.append(logferry_plain(command, w, name))
        else:
            sys.exit(f"unknown contender {name!r} (known: fluent-bit, processors, raw, json)")
    if args.before:
        before = shlex.split(args.before)
        versions["before"] = f"`{args.before}`, {c.logferry_version(before)}"
        contenders += [logferry_plain(before, w, fmt, before=True) for fmt in ("raw", "json")]
    return contenders, skipped, versions


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="logferry-processors-", dir=args.workdir))
    try:
        c.progress(f"writing {args.files} files × {args.lines:,} lines into {root}")
        w = write_workload(root / "in", args.files, args.lines)
        c.progress(w.describe())
        contenders, skipped, versions = build(args, w)
        commands = [c.logferry_command(args.logferry), *([shlex.split(args.before)] if args.before else [])]
        for i, command in enumerate(commands):
            (root / f"warm-{i}").mkdir()
            write_bytecode(command, root / f"warm-{i}")
        subprocess.run(["cat", *map(str, w.paths)], stdout=subprocess.DEVNULL, check=True)  # the page cache
        results = []
        for repeat in range(1, max(args.repeats, args.plain_repeats) + 1):
            for ct in contenders:
                runs = args.repeats if ct.processed else args.plain_repeats
                if repeat > runs:
                    continue
                r = run_once(ct, repeat, root / "runs", w, args)
                results.append(r)
                c.progress(f"run {repeat}/{runs} {ct.name}: {r.status}, {r.wall_s:.2f} s, "
                           f"{r.lines_s:,.0f} lines/s, CPU {c.fmt(r.cpu_s, 2)} s, others {c.fmt(r.others, 2)} "
                           f"cores, {r.check.describe()}")
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    summaries = [summarise(ct, results) for ct in contenders]
    body = table(summaries) + "\n\n" + "\n".join(f"- {n}" for n in notes(args, w, summaries, results, skipped,
                                                                          load, versions))
    c.emit(args, "Processors: multiline (java) + JSON parse + drop, next to Fluent Bit", body,
           targets(summaries),
           {"workload": w.describe(), "expected_records": w.records, "input_lines": w.lines,
            "summary": [asdict(s) for s in summaries], "runs": [asdict(r) for r in results], "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())
