#!/usr/bin/env python3
"""Event-loop lag benchmark: how late the loop wakes a timer while the engine catches up at full speed.

The catch-up workload of catchup.py (default 8 files × 250,000 lines × 100 B = 200 MB, written once,
page cache warmed) is shipped by an engine running in-process, each run in a fresh interpreter
(``looplag.py _probe WHAT ...``). Next to it, on the same event loop, a probe task loops on
``await asyncio.sleep(0.001)`` and records how late each wake-up is: lag = measured sleep − 1 ms
(time.perf_counter). The lags recorded while the work runs (from its start until it finished)
give p50/p99/p99.9/max, and the number of wake-ups later than 5 ms and 50 ms.

  idle loop                       the probe alone for --idle-seconds: the floor (timer and scheduler)
  logferry                        ``Engine(Settings(paths=[DIR/*.log], sinks=[SinkSpec("file:OUT")],
                                  once=True))`` via the embedding API, raw lines
  logferry --format json          the same with format="json"
  seed-style Python               anchors.py's ``seed_main`` (one executor hop per line) in-process, on
                                  the first --seed-lines lines of each file only, stopped once its
                                  output is complete

Every output is checked like catchup.py does (each line once, in order per file). Results are
medians over --repeats runs.

Target (issue 4): loop lag p99 ≤ 5 ms under full catch-up load.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import catchup
import common as c

TARGET_P99_MS = 5.0
PROBE_S = 0.001


# --------------------------------------------------------------------------------------------
# The child: probe + work on one loop
# --------------------------------------------------------------------------------------------
class Probe:
    def __init__(self) -> None:
        self.lags: list[float] = []
        self.recording = False

    async def run(self) -> None:
        clock = time.perf_counter
        while True:
            t = clock()
            await asyncio.sleep(PROBE_S)
            if self.recording:
                self.lags.append(clock() - t - PROBE_S)


async def child_main(what: str, glob: str, out: str, state: str, expected_bytes: int, idle_s: float,
                     paths: list[str]) -> dict[str, Any]:
    # Imports, plugin loading and the engine's construction happen before the probe records: they are
    # start-up, not catch-up (each run is a fresh interpreter).
    engine = anchors = None
    if what in ("logferry", "logferry-json"):
        from logferry import Settings, SinkSpec
        from logferry.engine import Engine

        settings = Settings(paths=[glob], sinks=[SinkSpec(f"file:{out}")], state_dir=Path(state), once=True,
                            format="json" if what == "logferry-json" else "raw")
        engine = Engine(settings)
    elif what == "seed":
        anchors = catchup.load_anchors(c.ANCHORS)
    probe = Probe()
    probe_task = asyncio.create_task(probe.run())
    await asyncio.sleep(0.05)  # the probe is running
    probe.recording = True
    t0 = time.perf_counter()
    if what == "idle":
        await asyncio.sleep(idle_s)
    elif engine is not None:
        await engine.run()
    elif anchors is not None:
        seed = asyncio.create_task(anchors.seed_main(paths, out, 0.1))

        async def complete() -> None:
            while not (os.path.exists(out) and os.path.getsize(out) >= expected_bytes):
                await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGTERM)  # seed_main stops on SIGTERM (a loop signal handler)

        watcher = asyncio.create_task(complete())
        await seed
        watcher.cancel()
    wall = time.perf_counter() - t0
    probe.recording = False
    probe_task.cancel()
    lags = sorted(x * 1000 for x in probe.lags)
    return {"wall_s": wall, "wakeups": len(lags), "p50_ms": c.percentile(lags, 50), "p99_ms": c.percentile(lags, 99),
            "p999_ms": c.percentile(lags, 99.9), "max_ms": lags[-1] if lags else None,
            "over_5ms": sum(x > 5 for x in lags), "over_50ms": sum(x > 50 for x in lags),
            "worst": [round(x, 2) for x in lags[-5:]]}


def child(argv: list[str]) -> int:
    what, glob, out, state, expected, idle_s, *paths = argv
    res = asyncio.run(child_main(what, glob, out, state, int(expected), float(idle_s), paths))
    print(json.dumps(res))
    return 0


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------
NAMES = {"idle": "idle loop (probe alone)", "logferry": "logferry", "logferry-json": "logferry --format json",
         "seed": "seed-style Python"}


def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--files", type=int, default=8, metavar="N")
    p.add_argument("--lines", type=int, default=250_000, metavar="N", help="lines in each file")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N")
    p.add_argument("--seed-lines", type=int, default=20_000, metavar="N", help="the seed's lines per file")
    p.add_argument("--idle-seconds", type=float, default=2.0, metavar="S")
    p.add_argument("--repeats", type=int, default=3, metavar="N")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S")
    p.add_argument("--contenders", default="idle,logferry,logferry-json,seed",
                   help="comma list of: idle, logferry, logferry-json, seed")
    args = p.parse_args(argv)
    if args.quick:
        args.lines, args.seed_lines, args.repeats, args.idle_seconds = 25_000, 2_000, 1, 1.0
    return args


def run_one(what: str, workload: catchup.Workload, args: Any, root: Path, rep: int) -> dict[str, Any]:
    d = root / f"{what}-{rep}"
    d.mkdir()
    out = d / "out.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "_probe", what, workload.glob, str(out), str(d / "state"),
            str(workload.total_bytes), str(args.idle_seconds), *map(str, workload.paths)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
        res = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        res, status = {}, f"timeout after {args.timeout:g} s"
    except (ValueError, IndexError) as exc:
        res, status = {}, f"no result: {exc}"
    res.update(contender=NAMES[what], rep=rep, status=status)
    if what != "idle":
        check = catchup.check_output(out, workload, "json" if what == "logferry-json" else "raw")
        res["check"] = check.describe()
        res["intact"] = status == "ok" and check.ok
        if res.get("wall_s"):
            res["mb_s"] = workload.total_bytes / 1e6 / res["wall_s"]
    else:
        res["intact"] = status == "ok"
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_probe":
        return child(sys.argv[2:])
    args = parse_args(argv)
    c.anchors()
    wanted = [w.strip() for w in args.contenders.split(",") if w.strip()]
    for w in wanted:
        if w not in NAMES:
            sys.exit(f"unknown contender {w!r}")
    root = Path(tempfile.mkdtemp(prefix="logferry-looplag-", dir=args.workdir))
    runs = []
    try:
        c.progress(f"writing {args.files} × {args.lines:,} lines")
        main_w = catchup.write_workload(root / "in", args.files, args.lines, args.line_bytes)
        seed_w = catchup.write_workload(root / "seed-in", args.files, min(args.seed_lines, args.lines),
                                        args.line_bytes)
        catchup.warm_page_cache([main_w, seed_w])
        for rep in range(1, args.repeats + 1):
            for what in wanted:
                r = run_one(what, seed_w if what == "seed" else main_w, args, root, rep)
                runs.append(r)
                c.progress(f"run {rep}/{args.repeats} {r['contender']}: {r['status']}, p50 {c.fmt(r.get('p50_ms'), 3)} "
                           f"p99 {c.fmt(r.get('p99_ms'), 2)} max {c.fmt(r.get('max_ms'), 1)} ms, "
                           f"{r.get('wakeups', 0):,} wake-ups, {r.get('check', '')}")
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = []
    for what in wanted:
        mine = [r for r in runs if r["contender"] == NAMES[what]]
        row = {"contender": NAMES[what], "runs": len(mine), "failed": sum(not r["intact"] for r in mine)}
        for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "wall_s", "mb_s", "wakeups", "over_5ms", "over_50ms"):
            row[key] = c.median(r.get(key) for r in mine)
        summary.append(row)
    idle = next((s for s in summary if s["contender"] == NAMES["idle"]), None)
    header = ["contender", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "p99 × idle loop", "wake-ups", "> 5 ms",
              "> 50 ms", "work s", "MB/s", "intact"]
    rows = [[s["contender"], c.fmt(s["p50_ms"], 3), c.fmt(s["p99_ms"], 2), c.fmt(s["p999_ms"], 2), c.fmt(s["max_ms"], 1),
             c.ratio(s["p99_ms"], idle and idle["p99_ms"]), c.fmt(s["wakeups"], 0), c.fmt(s["over_5ms"], 0),
             c.fmt(s["over_50ms"], 0), c.fmt(s["wall_s"], 2), c.fmt(s["mb_s"]),
             "✓" if not s["failed"] else f"✗ ({s['failed']}/{s['runs']})"] for s in summary]
    notes = [f"Catch-up of {args.files} files × {args.lines:,} lines × {args.line_bytes} B "
             f"({args.files * args.lines * args.line_bytes / 1e6:.0f} MB) from the page cache; the seed on the first "
             f"{min(args.seed_lines, args.lines):,} lines of each file; medians of {args.repeats} run(s); "
             f"{c.environment()}.",
             "Lag: how much later than 1 ms a `await asyncio.sleep(0.001)` on the engine's loop returned, over the "
             "whole run. Work s: from `engine.run()` (imports and the engine's construction done before) until it returned.",
             "Worst wake-ups of each run are in the JSON (`worst`)."]
    notes += [f"✗ {r['contender']} run {r['rep']}: {r['status']}; {r.get('check', '')}" for r in runs if not r["intact"]]
    targets = []
    for s in summary:
        if s["contender"].startswith("logferry"):
            t = c.Target(f"loop lag p99, {s['contender']}", TARGET_P99_MS, "ms", s["p99_ms"],
                         note=f"max {c.fmt(s['max_ms'], 1)} ms")
            targets.append(t.failed(f"{s['failed']} of {s['runs']} run(s) failed") if s["failed"] else t)
    body = c.md_table(header, rows, (0, len(header) - 1)) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    c.emit(args, "Event-loop lag under full catch-up load", body, targets, {"summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
