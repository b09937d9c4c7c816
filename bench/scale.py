#!/usr/bin/env python3
"""Scale benchmark: many files at once, and many files known to the checkpoint store.

(a) FOLLOW: --files files (default 10,000) of --lines lines each (default 10, anchors.py's line
    format, 100 B) are shipped by every contender:
      cat                    ``cat f1..fN > out`` (the floor), timed to exit
      logferry --once        ``logferry run DIR/*.log --once --sink file:OUT --state-dir STATE``, to exit
      logferry               the same without --once (follow mode), until every byte arrived
      tail -F, rsyslog, fluent-bit, seed-style Python   anchors.py's, follow mode, until every byte arrived
    Reported: wall time (process start to exit / to the last byte), CPU (user+sys), peak open
    descriptors (/proc/PID/fd counted every 50 ms), peak RSS (VmHWM), and success: the run
    ended normally and the output holds every line once, byte for byte, in order per file.
    The open-file limit the contenders inherit is printed (logferry raises its soft limit to the hard one).

(b) START-UP WITH MANY KNOWN FILES: --known files (default 100,000) of one line each. The state is
    created by ``logferry run --once`` over them (repeated, up to 5 passes, until every line was
    shipped; a pass is stopped after --state-timeout; each pass is reported) — or, with
    ``--state-method api``, written directly with logferry's checkpoint API: one record per file at
    its end, so the start-up measurement does not depend on --once working at that scale. Then, twice:
      all present     logferry starts (follow mode) on the same state; right after it started,
                      one line is appended to the last file;
      1% present      99% of the files are deleted first, then the same with the first file.
    Reported: time from process start to the "first scan" log line (ready) and to the appended
    line's arrival in the output, CPU and peak RSS until then, and whether anything else was
    shipped (a resumed run must ship only the new line).

Targets (issue 4): 10,000 files followed at once within the fd limit; start-up with 100,000 known
files ≤ 5 s (judged on the appended line's arrival, all files present).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common as c
from catchup import Reaper

STARTUP_TARGET_S = 5.0
MAX_ONCE_PASSES = 5


def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--files", type=int, default=10_000, metavar="N", help="(a) files shipped at once")
    p.add_argument("--lines", type=int, default=10, metavar="N", help="(a) lines per file")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N")
    p.add_argument("--known", type=int, default=100_000, metavar="N", help="(b) files in the checkpoint store")
    p.add_argument("--state-method", choices=("once", "api"), default="once",
                   help="(b) create the state with logferry --once passes, or with the checkpoint API")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S", help="longest run of one contender")
    p.add_argument("--stall", type=float, default=30.0, metavar="S",
                   help="(a) give a follow-mode contender up when its output has not grown for this long")
    p.add_argument("--state-timeout", type=float, default=300.0, metavar="S",
                   help="(b) longest logferry --once pass while creating the state")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                   help="(b) longest wait for the appended line")
    p.add_argument("--parts", default="a,b", help="which parts to run: a, b or a,b")
    p.add_argument("--contenders", default="cat,logferry-once,logferry,tail,rsyslog,fluent-bit,seed",
                   help="(a) comma list of: cat, logferry-once, logferry, tail, rsyslog, fluent-bit, seed")
    args = p.parse_args(argv)
    if args.quick:
        args.files, args.known, args.timeout = 1000, 5000, min(args.timeout, 60.0)
        args.startup_timeout, args.state_timeout = min(args.startup_timeout, 30.0), min(args.state_timeout, 60.0)
    return args


def write_files(directory: Path, names: list[str], lines: int, line_bytes: int) -> int:
    a = c.anchors()
    directory.mkdir(parents=True)
    total = 0
    for fid, name in enumerate(names):
        data = b"".join(a.make_line(name.encode(), fid, seq, 0, line_bytes) for seq in range(lines))
        (directory / name).write_bytes(data)
        total += len(data)
    return total


# --------------------------------------------------------------------------------------------
# (a) many files at once
# --------------------------------------------------------------------------------------------
def build_tools(args: Any) -> tuple[list[tuple[c.Tool, bool]], list[str]]:
    command = c.logferry_command(args.logferry)
    tools: list[tuple[c.Tool, bool]] = []  # (tool, exits when done)
    skipped: list[str] = []
    for name in (w.strip() for w in args.contenders.split(",") if w.strip()):
        if name == "logferry-once":
            tools.append((c.logferry_tool(command, "logferry --once", ["--once"]), True))
        elif name == "logferry":
            tools.append((c.logferry_tool(command, "logferry (follow)"), False))
        elif name in ("cat", "tail", "rsyslog", "fluent-bit", "seed"):
            found, notes = c.baseline_tools([name])
            tools += [(t, name == "cat") for t in found]
            skipped += notes
        else:
            sys.exit(f"unknown contender {name!r}")
    return tools, skipped


def timed_run(tool: c.Tool, exits: bool, p: Any, total_bytes: int, timeout: float,
              stall: float = 30.0) -> dict[str, Any]:
    """Start, sample fds and VmHWM every 50 ms, until exit (``exits``) or until the output is complete
    (follow mode; given up when it has not grown for ``stall`` seconds)."""
    t0 = time.perf_counter()
    proc = tool.launch(p)
    reaper = Reaper(proc) if exits else None
    if reaper:
        reaper.start()
    fds = 0
    hwm = 0.0
    status, cpu = "ok", None
    size, grew = 0, t0
    while True:
        fds = max(fds, c.fd_count(proc.pid))
        hwm = max(hwm, c.status_kb(proc.pid, "VmHWM") / 1024)
        now = time.perf_counter()
        if reaper:
            reaper.join(0.05)
            if not reaper.is_alive():
                end, cpu = reaper.exited_at, reaper.cpu_s
                if reaper.returncode:
                    status = f"exit {reaper.returncode}"
                break
        else:
            time.sleep(0.05)
            now_size = p.out.stat().st_size if p.out.exists() else 0
            if now_size >= total_bytes:
                end, cpu = time.perf_counter(), c.group_cpu(proc.pid)
                break
            if now_size != size:
                size, grew = now_size, now
            elif now - grew > stall:
                end, status = now, f"stalled: no output for {stall:g} s"
                cpu = c.group_cpu(proc.pid)
                break
            if proc.poll() is not None:
                end, status = now, f"exit {proc.returncode}"
                break
        if now - t0 > timeout:
            end, status = now, f"timeout after {timeout:g} s"
            cpu = c.group_cpu(proc.pid) if not reaper else None
            break
    if reaper is None or reaper.is_alive():
        fds = max(fds, c.fd_count(proc.pid))  # a follow-mode tool that finished between two samples
        c.stop(proc)
    if reaper:
        reaper.join(15)
    return {"status": status, "wall_s": end - t0, "cpu_s": cpu, "peak_fds": fds, "peak_rss_mb": hwm}


def part_a(args: Any, root: Path) -> tuple[str, list[c.Target], dict[str, Any]]:
    a = c.anchors()
    names = a.input_names(args.files)
    in_dir = root / "a-in"
    c.progress(f"(a) writing {args.files:,} files × {args.lines} lines")
    total = write_files(in_dir, names, args.lines, args.line_bytes)
    subprocess.run(["cat", *(str(in_dir / n) for n in names)], stdout=subprocess.DEVNULL, check=True)  # page cache
    tools, skipped = build_tools(args)
    soft, hard = c.raise_fd_limit()
    runs = []
    for tool, exits in tools:
        d = root / f"a-{tool.name.replace(' ', '_')}"
        p = c.run_paths(d, in_dir, names)
        c.progress(f"(a) {tool.name} ...")
        r = {"contender": tool.name, **timed_run(tool, exits, p, total, args.timeout, args.stall)}
        r["check"] = a.verify(p.out, names, [args.lines] * args.files, args.line_bytes)
        r["success"] = r["status"] == "ok" and r["check"]["ok"]
        if not r["success"]:
            r["tool_log"] = c.tool_log(p.log)
        runs.append(r)
        c.progress(f"(a) {tool.name}: {r['status']}, {r['wall_s']:.2f} s, peak {r['peak_fds']:,} fds, "
                   f"{r['peak_rss_mb']:.1f} MB, {a.check_str(r['check'])}")
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    by = {r["contender"]: r for r in runs}
    cat = by.get("cat")
    header = ["contender", "wall s", "× cat", "CPU s", "peak open fds", "peak RSS MB", "success"]
    rows = [[r["contender"], c.fmt(r["wall_s"], 2), c.ratio(r["wall_s"], cat and cat["wall_s"]), c.fmt(r["cpu_s"], 2),
             f"{r['peak_fds']:,}", c.fmt(r["peak_rss_mb"], 1),
             "✓" if r["success"] else f"✗ {r['status']}, {a.check_str(r['check'])}"] for r in runs]
    notes = [f"{args.files:,} files × {args.lines} lines × {args.line_bytes} B = {total / 1e6:.1f} MB, from the page "
             f"cache; open-file limit {soft:,} (hard {hard:,}); {c.environment()}.",
             "× cat is wall time relative to cat's (higher is slower). Follow-mode contenders are timed until the "
             "last byte landed; fds and RSS are sampled every 50 ms (a shorter peak can be missed).", *skipped]
    notes += [f"✗ {r['contender']}: {r.get('tool_log', '')[-300:]!r}" for r in runs if not r["success"]]
    targets = []
    for name in ("logferry --once", "logferry (follow)"):
        if name in by:
            r = by[name]
            t = c.Target(f"{args.files:,} files followed at once, {name}: peak open fds", hard, "fds",
                         float(r["peak_fds"]), note="limit: the hard open-file limit", digits=0)
            targets.append(t if r["success"] else t.failed(f"FAILED: {r['status']}, {a.check_str(r['check'])}"))
    body = (f"### (a) {args.files:,} files at once\n\n" + c.md_table(header, rows, (0, len(header) - 1)) + "\n\n"
            + "\n".join(f"- {n}" for n in notes))
    return body, targets, {"follow": runs, "follow_skipped": skipped}


# --------------------------------------------------------------------------------------------
# (b) many known files
# --------------------------------------------------------------------------------------------
def state_by_once(command: list[str], in_dir: Path, state: Path, root: Path, expected: int,
                  timeout: float) -> list[dict[str, Any]]:
    """logferry --once passes until every line was shipped (at most MAX_ONCE_PASSES, each stopped after
    ``timeout`` seconds)."""
    passes = []
    shipped = 0
    for n in range(1, MAX_ONCE_PASSES + 1):
        out = root / f"b-once-{n}.log"
        log = root / f"b-once-{n}.err"
        t0 = time.perf_counter()
        with open(log, "wb") as err:
            proc = subprocess.Popen([*command, "run", str(in_dir / "*.log"), "--once", "--sink", f"file:{out}",
                                     "--state-dir", str(state), "--log-level", "info"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                c.progress(f"(b) state pass {n}: still running after {timeout:g} s; stopping it (SIGTERM)")
                c.stop(proc)
                rc = f"stopped after {timeout:g} s"
        lines = _count_lines(out)
        shipped += lines
        passes.append({"pass": n, "exit": rc, "wall_s": time.perf_counter() - t0, "lines": lines,
                       "shipped_total": shipped, "stderr": c.anchors().tail_log(log, 3)})
        c.progress(f"(b) state pass {n}: exit {rc}, {lines:,} lines in {passes[-1]['wall_s']:.1f} s "
                   f"({shipped:,}/{expected:,} so far)")
        if shipped >= expected or rc != 0:  # done, or failing (more passes would not tell more)
            break
    return passes


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def state_by_api(in_dir: Path, names: list[str], state: Path) -> float:
    """One LIVE record per file at its end, written with logferry's CheckpointStore."""
    import asyncio

    from logferry.files.identity import Fingerprint, guard_of
    from logferry.files.record import LIVE, FileRecord, new_file_id
    from logferry.state.checkpoints import CheckpointStore

    async def write() -> None:
        store = CheckpointStore(state)
        await store.open()
        records = []
        now = time.time()
        for name in names:
            path = str(in_dir / name)
            data = (in_dir / name).read_bytes()
            st = os.stat(path)
            records.append(FileRecord(new_file_id(), (st.st_dev, st.st_ino), Fingerprint.of(data), len(data),
                                      guard_of(data, len(data)), len(data), path, path, LIVE, now))
        await store.save(records)
        await store.close()

    t0 = time.perf_counter()
    asyncio.run(write())
    return time.perf_counter() - t0


def startup_run(command: list[str], in_dir: Path, state: Path, d: Path, append_to: Path, line: bytes,
                timeout: float) -> dict[str, Any]:
    """Start logferry on the state, append ``line`` right away; time to "first scan" and to its arrival."""
    a = c.anchors()
    d.mkdir(parents=True)
    p = a.RunPaths(in_dir, [], d / "out.log", state, d / "tool.log")
    reader = c.ArrivalReader(p.out, sleep=0.001)
    reader.start()
    argv = [*command, "run", str(in_dir / "*.log"), "--sink", f"file:{p.out}", "--state-dir", str(state),
            "--log-level", "info"]
    t0 = time.monotonic_ns()
    with open(p.log, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    with open(append_to, "ab") as f:
        f.write(line)
    res: dict[str, Any] = {"status": "ok", "ready_s": None, "line_s": None}
    want = line[:-1]
    hwm, fds = 0.0, 0
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    with open(p.log, "rb") as log:
        text = b""
        while time.monotonic() < deadline:
            hwm = max(hwm, c.status_kb(proc.pid, "VmHWM") / 1024)
            fds = max(fds, c.fd_count(proc.pid))
            if res["ready_s"] is None:
                text += log.read()
                if b"first scan:" in text:
                    res["ready_s"] = (time.monotonic_ns() - t0) / 1e9
            for t_arr, got in reader.take_lines():
                seen.append(got)
                if got == want and res["line_s"] is None:
                    res["line_s"] = (t_arr - t0) / 1e9
                    res["cpu_to_line_s"] = c.group_cpu(proc.pid)
            if res["ready_s"] is not None and res["line_s"] is not None:
                break
            if proc.poll() is not None:
                res["status"] = f"exit {proc.returncode}"
                break
            time.sleep(0.01)
        else:
            res["status"] = f"timeout after {timeout:g} s"
    if proc.poll() is None:
        time.sleep(1.0)  # anything else it would ship (it should not ship anything else)
        hwm = max(hwm, c.status_kb(proc.pid, "VmHWM") / 1024)
        res["cpu_s"] = c.group_cpu(proc.pid)
    c.stop(proc)
    reader.stop()
    seen += [got for _, got in reader.take_lines()]
    res.update(peak_rss_mb=hwm, peak_fds=fds, lines_out=len(seen), extra_lines=sum(1 for s in seen if s != want),
               log=c.anchors().tail_log(p.log, 3))
    res["success"] = res["status"] == "ok" and res["line_s"] is not None and res["extra_lines"] == 0
    return res


def part_b(args: Any, root: Path) -> tuple[str, list[c.Target], dict[str, Any]]:
    a = c.anchors()
    command = c.logferry_command(args.logferry)
    names = a.input_names(args.known)
    in_dir = root / "b-in"
    c.progress(f"(b) writing {args.known:,} files of one line")
    write_files(in_dir, names, 1, args.line_bytes)
    state = root / "b-state"
    passes: list[dict[str, Any]] = []
    if args.state_method == "api":
        api_s = state_by_api(in_dir, names, state)
        state_note = f"state written with logferry's CheckpointStore API in {api_s:.1f} s"
    else:
        passes = state_by_once(command, in_dir, state, root, args.known, args.state_timeout)
        shipped = passes[-1]["shipped_total"]
        state_note = (f"state created by {len(passes)} `logferry run --once` pass(es): "
                      + ", ".join(f"pass {x['pass']}: exit {x['exit']}, {x['lines']:,} lines, {x['wall_s']:.1f} s"
                                  for x in passes))
        if shipped < args.known:
            state_note += f" — only {shipped:,} of {args.known:,} lines shipped after {len(passes)} passes"
        elif len(passes) > 1 or passes[0]["lines"] < args.known:
            state_note += (f" — **the first pass exited {passes[0]['exit']} having shipped only "
                           f"{passes[0]['lines']:,} of {args.known:,} lines**")
    runs = []
    c.progress("(b) start-up, all files present ...")
    last = len(names) - 1
    line = a.make_line(names[last].encode(), last, 1, 0, args.line_bytes)
    r = startup_run(command, in_dir, state, root / "b-run1", in_dir / names[last], line, args.startup_timeout)
    runs.append({"case": f"{args.known:,} known, all present", **r})
    c.progress(f"(b) all present: {r['status']}, ready {c.fmt(r['ready_s'], 2)} s, line {c.fmt(r['line_s'], 2)} s, "
               f"{r['extra_lines']} other lines")
    keep = max(1, args.known // 100)
    for name in names[keep:]:
        os.unlink(in_dir / name)
    c.progress(f"(b) start-up, {keep:,} of {args.known:,} files present ...")
    line = a.make_line(names[0].encode(), 0, 1, 0, args.line_bytes)
    r = startup_run(command, in_dir, state, root / "b-run2", in_dir / names[0], line, args.startup_timeout)
    runs.append({"case": f"{args.known:,} known, {keep:,} present", **r})
    c.progress(f"(b) 1% present: {r['status']}, ready {c.fmt(r['ready_s'], 2)} s, line {c.fmt(r['line_s'], 2)} s, "
               f"{r['extra_lines']} other lines")
    header = ["case", "ready s", "appended line shipped s", "CPU s", "peak RSS MB", "peak open fds",
              "other lines shipped", "success"]
    rows = [[r["case"], c.fmt(r["ready_s"], 2), c.fmt(r["line_s"], 2), c.fmt(r.get("cpu_to_line_s"), 2),
             c.fmt(r["peak_rss_mb"], 1), f"{r['peak_fds']:,}", f"{r['extra_lines']:,}",
             "✓" if r["success"] else f"✗ {r['status']}"] for r in runs]
    notes = [state_note + ".",
             "Times from process start (interpreter start-up included). Ready: the `first scan:` info log line. "
             "CPU: user+sys until the appended line arrived. Other lines shipped: anything but the appended line "
             "(a resumed run should ship nothing else).",
             "No baseline here: none of the baselines is given the same state."]
    notes += [f"✗ {r['case']}: {r['log']!r}" for r in runs if not r["success"]]
    targets = [c.Target(f"start-up with {args.known:,} known files (appended line shipped)", STARTUP_TARGET_S, "s",
                        runs[0]["line_s"], note=f"ready after {c.fmt(runs[0]['ready_s'], 2)} s")]
    if not runs[0]["success"]:
        targets[0].failed(f"FAILED: {runs[0]['status']}, {runs[0]['extra_lines']:,} other lines shipped")
    body = (f"### (b) {args.known:,} known files: start-up\n\n" + c.md_table(header, rows, (0, len(header) - 1))
            + "\n\n" + "\n".join(f"- {n}" for n in notes))
    return body, targets, {"known": runs, "state_passes": passes, "state_method": args.state_method}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c.anchors()
    c.raise_fd_limit()
    parts = {x.strip() for x in args.parts.split(",")}
    root = Path(tempfile.mkdtemp(prefix="logferry-scale-", dir=args.workdir))
    bodies, targets, data = [], [], {}
    try:
        if "a" in parts:
            body, t, d = part_a(args, root)
            bodies.append(body)
            targets += t
            data.update(d)
        if "b" in parts:
            body, t, d = part_b(args, root)
            bodies.append(body)
            targets += t
            data.update(d)
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    data["summary"] = data.get("follow", []) + data.get("known", [])
    c.emit(args, "Scale: many files at once, many known files", "\n\n".join(bodies), targets, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
