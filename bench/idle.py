#!/usr/bin/env python3
"""Idle benchmark: CPU spent following many files that do not change.

For each size in --sizes (default 1,000 and 10,000) and each contender, a fresh directory holds
that many files of one line each (anchors.py's line format). The contender starts on DIR/*.log;
once every line has arrived in its output ("start-up"), the harness waits --settle seconds
(default 5), then reads the contender's process-group CPU time (user+sys, from /proc/PID/stat, in
10 ms clock ticks) before and after --seconds (default 10) of nothing happening:
CPU % of one core = Δcpu / seconds × 100. Resident memory (VmRSS) and open descriptors are read at
the end of the window. Then one line is appended to the first, a middle and the last file, and
the time until all three arrived is the "probe" (it proves the files are really followed, and
shows how long an idle file waits to be looked at). The output is checked: every line once.

Contenders (each skipped when not installed):
  logferry              ``logferry run DIR/*.log --sink file:OUT --state-dir STATE``
  logferry --no-watch   the same with ``--no-watch``
  tail -F               GNU ``tail -q -n +1 -F`` on every path (one inotify watch and one descriptor
                        per file: with 10,000 files it may hit the open-file or inotify limits;
                        its complaints are quoted under the table)
  rsyslog, fluent-bit   anchors.py's configurations
  seed-style Python     one task per file polling every 0.1 s through the default executor; run up to
                        --seed-max-files files (default: all sizes)

Targets (issue 4): 1,000 files ≤ 0.5 % of a core; 10,000 files ≤ 3 %.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common as c

TARGETS = {1000: 0.5, 10000: 3.0}


def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--sizes", default="1000,10000", help="comma list of file counts")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S", help="length of the idle window")
    p.add_argument("--settle", type=float, default=5.0, metavar="S", help="wait after start-up before the window")
    p.add_argument("--startup-timeout", type=float, default=180.0, metavar="S",
                   help="give up when the initial lines have not all arrived by then")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N")
    p.add_argument("--seed-max-files", type=int, default=10_000, metavar="N", help="largest size the seed runs")
    p.add_argument("--contenders", default="logferry,logferry-nowatch,tail,rsyslog,fluent-bit,seed",
                   help="comma list of: logferry, logferry-nowatch, tail, rsyslog, fluent-bit, seed")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        args.sizes, args.seconds, args.settle = [200, 1000], 2.0, 1.0
    return args


def build_tools(args: Any) -> tuple[list[c.Tool], list[str]]:
    return c.follow_tools(args, ("tail", "rsyslog", "fluent-bit", "seed"))


def complaints(log: Path) -> list[str]:
    """Distinct lines of a tool's stderr, numbers blurred (``f0123.log`` → ``f#.log``), most common first."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    counts: dict[str, int] = {}
    for line in text.splitlines():
        key = re.sub(r"\d+", "#", line.strip())[:200]
        if key:
            counts[key] = counts.get(key, 0) + 1
    return [f"{n}× {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3]]


def run_idle(tool: c.Tool, n: int, args: Any, root: Path) -> dict[str, Any]:
    a = c.anchors()
    d = Path(tempfile.mkdtemp(prefix=f"idle-{n}-", dir=root))
    in_dir = d / "in"
    in_dir.mkdir()
    names = a.input_names(n)
    for fid, name in enumerate(names):
        (in_dir / name).write_bytes(a.make_line(name.encode(), fid, 0, 0, args.line_bytes))
    p = c.run_paths(d, in_dir, names)
    res: dict[str, Any] = {"contender": tool.name, "files": n, "status": "done"}
    counts = [1] * n
    reader = c.ArrivalReader(p.out, sleep=0.002)
    reader.start()
    t0 = time.monotonic()
    proc = tool.launch(p)
    alive = lambda: proc.poll() is None
    try:
        if not c.wait_for(lambda: reader.newlines >= n, args.startup_timeout, 0.01, alive):
            raise RuntimeError(f"start-up: {reader.newlines:,}/{n:,} lines arrived"
                               + ("" if alive() else f", exited with {proc.returncode}"))
        res["startup_s"] = time.monotonic() - t0
        res["startup_cpu_s"] = c.group_cpu(proc.pid)
        time.sleep(args.settle)
        cpu0, w0 = c.group_cpu(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, w1 = c.group_cpu(proc.pid), time.monotonic()
        if not alive():
            raise RuntimeError(f"exited with {proc.returncode}")
        res.update(idle_cpu_s=cpu1 - cpu0, window_s=w1 - w0, cpu_pct=(cpu1 - cpu0) / (w1 - w0) * 100,
                   rss_mb=c.group_rss_mb(proc.pid, "VmRSS"), fds=c.group_fds(proc.pid))
        before = reader.newlines
        t_probe = time.monotonic()
        for fid in sorted({0, n // 2, n - 1}):
            with open(p.inputs[fid], "ab") as fh:
                fh.write(a.make_line(names[fid].encode(), fid, 1, 0, args.line_bytes))
            counts[fid] = 2
        want = before + len({0, n // 2, n - 1})
        if c.wait_for(lambda: reader.newlines >= want, 30, 0.002, alive):
            res["probe_s"] = time.monotonic() - t_probe
        else:
            res["status"] = "probe lines did not arrive within 30 s"
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        res["status"] = f"error: {exc}"
    finally:
        c.stop(proc)
        reader.stop()
    res["complaints"] = complaints(p.log)
    res["check"] = a.verify(p.out, names, counts, args.line_bytes)
    res["intact"] = res["check"]["ok"] and res["status"] == "done"
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c.anchors()
    limits = c.raise_fd_limit()
    tools, skipped = build_tools(args)
    for note in skipped:
        c.progress(note)
    root = Path(tempfile.mkdtemp(prefix="logferry-idle-", dir=args.workdir))
    runs = []
    try:
        for n in args.sizes:
            for tool in tools:
                if tool.name == "seed-style Python" and n > args.seed_max_files:
                    continue
                c.progress(f"{n:,} files, {tool.name} ...")
                r = run_idle(tool, n, args, root)
                runs.append(r)
                c.progress(f"{n:,} files, {tool.name}: {r['status']}, start-up {c.fmt(r.get('startup_s'), 2)} s, "
                           f"idle {c.fmt(r.get('cpu_pct'), 2)} % of a core, probe {c.fmt(r.get('probe_s'), 3)} s, "
                           f"{c.anchors().check_str(r['check'])}")
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sections, targets, notes = [], [], []
    for n in args.sizes:
        mine = [r for r in runs if r["files"] == n]
        by = {r["contender"]: r for r in mine}
        rsys, seed = by.get("rsyslog"), by.get("seed-style Python")
        header = ["contender", "idle CPU % of a core", "× rsyslog", "× seed", "idle CPU s", "start-up s",
                  "start-up CPU s", "RSS MB", "open fds", "probe s", "intact"]
        rows = [[r["contender"], c.fmt(r.get("cpu_pct"), 2), c.ratio(r.get("cpu_pct"), rsys and rsys.get("cpu_pct")),
                 c.ratio(r.get("cpu_pct"), seed and seed.get("cpu_pct")), c.fmt(r.get("idle_cpu_s"), 2), c.fmt(r.get("startup_s"), 2), c.fmt(r.get("startup_cpu_s"), 2),
                 c.fmt(r.get("rss_mb"), 1), str(r.get("fds", "—")), c.fmt(r.get("probe_s"), 3),
                 "✓" if r["intact"] else "✗"] for r in mine]
        sections.append(f"### {n:,} files\n\n" + c.md_table(header, rows, (0, len(header) - 1)))
        for name in ("logferry", "logferry --no-watch"):
            if name in by and n in TARGETS:
                r = by[name]
                t = c.Target(f"idle CPU, {n:,} files, {name}", TARGETS[n], "% of a core", r.get("cpu_pct"), digits=2)
                targets.append(t if r["intact"] else t.failed(f"run failed: {r['status']}"))
        for r in mine:
            if not r["intact"]:
                notes.append(f"✗ {n:,} files, {r['contender']}: {r['status']}, {c.anchors().check_str(r['check'])}")
            if r["complaints"]:
                notes.append(f"{n:,} files, {r['contender']} said on stderr: " + "; ".join(
                    f"`{x}`" for x in r["complaints"]))
    notes = [f"Files of one {args.line_bytes} B line each; CPU over a {args.seconds:g} s window after start-up + "
             f"{args.settle:g} s, from /proc/PID/stat (10 ms ticks: 0.00 means under one tick); "
             f"open-file limit {limits[0]:,} (hard {limits[1]:,}); {c.environment()}.",
             "× rsyslog, × seed: idle CPU relative to theirs in this run (— when theirs was under one tick or "
             "the run failed; tail -F's is always under one tick, so it gets no column).",
             "Start-up: until every file's line arrived. Probe: one line appended to the first, a middle and the "
             "last file after the window; time until all three arrived.",
             *([f"seed-style Python: not run above {args.seed_max_files:,} files."]
               if any(n > args.seed_max_files for n in args.sizes) else []),
             *skipped, *notes]
    body = "\n\n".join(sections) + "\n\n" + "\n".join(f"- {x}" for x in notes)
    c.emit(args, "Idle: CPU while following files that do not change", body, targets,
           {"fd_limit": limits, "summary": runs, "runs": runs, "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())
