#!/usr/bin/env python3
"""New-file benchmark: how long from creating a matching file until its first line is shipped.

Each contender follows DIR/*.log, where --idle-files files (default 8) already hold one line each.
Once those lines have arrived and --settle seconds passed (so the contender is idle, its pollers
backed off), the harness runs --trials trials (default 20): it waits a random 0.3–1.3 s (so trials
fall at every phase of a contender's timers), then creates a new file ``newNNNN.log`` and writes
one line into it (``open(O_CREAT|O_EXCL)``, one ``write(2)``, ``close``). The line carries the
CLOCK_MONOTONIC time taken just before the file was created (anchors.py's line format); a reader
thread reads the merged output as it grows (0.5 ms sleeps) and notes when that line arrives.
Latency = arrival − creation. A trial whose line has not arrived after --trial-timeout counts as
missed. Reported: p50, p95 and max over the trials, and misses; the output is checked at the end
(every line once, byte for byte).

Contenders (each skipped when not installed):
  logferry              ``logferry run DIR/*.log --sink file:OUT --state-dir STATE``: a create event
                        (watchdog hint) triggers a scan
  logferry --no-watch   the same with ``--no-watch``: new files are found by the periodic scan
                        (scan_interval, reported)
  rsyslog, fluent-bit   anchors.py's configurations (wildcards; rsyslog imfile in inotify mode)

``tail -F`` and the seed-style baseline follow the paths they were given when started: they
never see a new file, so they have no figure here.

Targets (issue 4): new file to first line ≤ 50 ms with the hint, ≤ 1 s by polling alone, judged
on the slowest trial (max); p50 is shown too.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common as c

HINT_MS = 50.0
POLL_MS = 1000.0


def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--trials", type=int, default=20, metavar="N", help="new files per contender")
    p.add_argument("--idle-files", type=int, default=8, metavar="N", help="files already followed (one line each)")
    p.add_argument("--settle", type=float, default=2.0, metavar="S",
                   help="seconds of idleness after the existing lines arrived, before the first trial")
    p.add_argument("--gap", type=float, nargs=2, default=(0.3, 1.3), metavar=("MIN", "MAX"),
                   help="random wait before each trial, seconds")
    p.add_argument("--trial-timeout", type=float, default=10.0, metavar="S", help="a trial's line is missed after this")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N")
    p.add_argument("--seed", type=int, default=4, help="random seed of the gaps")
    p.add_argument("--contenders", default="logferry,logferry-nowatch,rsyslog,fluent-bit",
                   help="comma list of: logferry, logferry-nowatch, rsyslog, fluent-bit")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.settle = min(args.trials, 5), 1.0
    return args


def scan_interval() -> float | None:
    try:
        from logferry.settings import Settings
    except ImportError:
        return None
    return Settings().scan_interval


def build_tools(args: Any) -> tuple[list[c.Tool], list[str]]:
    return c.follow_tools(args, ("rsyslog", "fluent-bit"))


def run_trials(tool: c.Tool, args: Any, root: Path) -> dict[str, Any]:
    a = c.anchors()
    d = Path(tempfile.mkdtemp(prefix="newfile-", dir=root))
    in_dir = d / "in"
    in_dir.mkdir()
    names = a.input_names(args.idle_files)
    for fid, name in enumerate(names):
        (in_dir / name).write_bytes(a.make_line(name.encode(), fid, 0, 0, args.line_bytes))
    p = c.run_paths(d, in_dir, names)
    res: dict[str, Any] = {"contender": tool.name, "status": "done", "latencies_ms": [], "missed": 0}
    reader = c.ArrivalReader(p.out)
    reader.start()
    rng = random.Random(args.seed)
    proc = tool.launch(p)
    alive = lambda: proc.poll() is None
    new_names: list[str] = []
    try:
        if not c.wait_for(lambda: reader.newlines >= args.idle_files, 60, 0.01, alive):
            raise RuntimeError(f"not ready: {reader.newlines}/{args.idle_files} existing lines arrived")
        reader.take_lines()
        time.sleep(args.settle)
        for trial in range(args.trials):
            time.sleep(rng.uniform(*args.gap))
            fid = args.idle_files + trial
            name = f"new{trial:04d}.log"
            new_names.append(name)
            t0 = time.monotonic_ns()
            line = a.make_line(name.encode(), fid, 0, t0, args.line_bytes)
            fd = os.open(in_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            os.write(fd, line)
            os.close(fd)
            want = line[:-1]
            arrived = None
            deadline = time.monotonic() + args.trial_timeout
            while arrived is None and time.monotonic() < deadline and alive():
                for t_arr, got in reader.take_lines():
                    if got == want:
                        arrived = t_arr
                if arrived is None:
                    time.sleep(0.001)
            if arrived is None:
                res["missed"] += 1
                c.progress(f"{tool.name}: trial {trial}: no line after {args.trial_timeout:g} s")
            else:
                res["latencies_ms"].append((arrived - t0) / 1e6)
            if not alive():
                raise RuntimeError(f"exited with {proc.returncode}")
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        res["status"] = f"error: {exc}"
    finally:
        time.sleep(0.05)
        c.stop(proc)
        reader.stop()
    if res["status"] != "done":
        res["tool_log"] = c.tool_log(p.log)
    lat = sorted(res["latencies_ms"])
    res.update(trials=len(new_names), p50_ms=c.percentile(lat, 50), p95_ms=c.percentile(lat, 95),
               max_ms=lat[-1] if lat else None, min_ms=lat[0] if lat else None)
    all_names = names + new_names
    res["check"] = a.verify(p.out, all_names, [1] * len(all_names), args.line_bytes)
    res["intact"] = res["check"]["ok"] and res["status"] == "done" and not res["missed"]
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    c.anchors()
    tools, skipped = build_tools(args)
    for note in skipped:
        c.progress(note)
    root = Path(tempfile.mkdtemp(prefix="logferry-newfile-", dir=args.workdir))
    runs = []
    try:
        for tool in tools:
            r = run_trials(tool, args, root)
            runs.append(r)
            c.progress(f"{tool.name}: {r['status']}, p50 {c.fmt(r['p50_ms'], 1)} ms, max {c.fmt(r['max_ms'], 1)} ms, "
                       f"{r['missed']} missed, {c.anchors().check_str(r['check'])}")
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    by = {r["contender"]: r for r in runs}
    rsys = by.get("rsyslog")
    header = ["contender", "trials", "p50 ms", "p95 ms", "max ms", "p50 × rsyslog", "missed", "intact"]
    rows = [[r["contender"], str(r["trials"]), c.fmt(r["p50_ms"], 1), c.fmt(r["p95_ms"], 1), c.fmt(r["max_ms"], 1),
             c.ratio(r["p50_ms"], rsys and rsys["p50_ms"]), str(r["missed"]), "✓" if r["intact"] else "✗"]
            for r in runs]
    scan = scan_interval()
    notes = [f"{args.idle_files} idle files already followed; each trial creates one new file with one "
             f"{args.line_bytes} B line after a random {args.gap[0]:g}–{args.gap[1]:g} s wait; {c.environment()}.",
             "Latency: from just before the file was created to the harness's read of the output that returned "
             "its line (reader sleeps 0.5 ms when idle).",
             f"logferry --no-watch finds new files by its periodic scan: scan_interval "
             f"{'?' if scan is None else f'{scan:g} s'} (logferry's default).",
             "tail -F and the seed-style baseline follow a fixed list of paths: they never pick up a new file.",
             *skipped]
    notes += [f"✗ {r['contender']}: {r['status']}, {r['missed']} missed, {c.anchors().check_str(r['check'])}"
              for r in runs if not r["intact"]]
    targets = []
    for name, label, limit in (("logferry", "logferry (hint)", HINT_MS), ("logferry --no-watch", "logferry --no-watch", POLL_MS)):
        if name in by:
            r = by[name]
            t = c.Target(f"new file to first line, {label}, max", limit, "ms", r["max_ms"],
                         note=f"p50 {c.fmt(r['p50_ms'], 1)} ms" + (f", {r['missed']} missed" if r["missed"] else ""))
            if r["missed"]:
                t.met = False
            targets.append(t)
    body = c.md_table(header, rows, (0, len(header) - 1)) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    c.emit(args, "New file to first line shipped", body, targets,
           {"scan_interval_s": scan, "summary": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in runs],
            "runs": runs, "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())
