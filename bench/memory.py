#!/usr/bin/env python3
"""Memory benchmark: peak resident memory following many files while the output is stalled.

--files files (default 10,000) of --lines lines each (default 100 × 100 B: 100 MB in all, more than
logferry's 16 MiB in-flight budget) are written first. Each contender then starts on DIR/*.log with
an output that never takes anything, and its process group's VmRSS/VmHWM (/proc/PID/status) is
sampled every 100 ms for --seconds (default 12) from its start:

  logferry (embedded, stalled Sink)   this script re-run as a child process (``memory.py _engine``)
                                      that runs ``logferry.engine.Engine(settings, sinks=[StalledSink()])``,
                                      a ``logferry.Sink`` whose ``send`` never returns (the embedding
                                      API); the child reports the engine's bytes in flight
                                      (``pipeline.inflight_bytes``), files and open files every 250 ms
  logferry → FIFO never read          the CLI, ``--sink file:FIFO``: the harness holds the FIFO open
                                      for reading (so the open succeeds) but never reads, so the sink's
                                      writer thread blocks once the 64 KiB pipe buffer is full
  tail -F → FIFO never read           GNU ``tail -q -n +1 -F`` with stdout on such a FIFO
  seed-style Python → FIFO            anchors.py's seed writing to such a FIFO
  rsyslog → FIFO                      anchors.py's rsyslog configuration, omfile on such a FIFO

Reported: peak RSS (VmHWM), RSS at the end, and for the embedded engine the bytes in flight (peak
and at the end; they must stay within ``max_inflight_bytes``), batches offered to the stalled sink,
files followed and descriptors open. Bytes in flight of the CLI run cannot be seen from outside.

Target (issue 4): RSS ≤ 100 MB with 10,000 files and a stalled sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import common as c

RSS_TARGET_MB = 100.0


def parse_args(argv: list[str] | None) -> Any:
    p = c.parser(__doc__)
    p.add_argument("--files", type=int, default=10_000, metavar="N")
    p.add_argument("--lines", type=int, default=100, metavar="N", help="lines per file")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N")
    p.add_argument("--seconds", type=float, default=12.0, metavar="S", help="sampling time from each start")
    p.add_argument("--contenders", default="embedded,cli,tail,seed,rsyslog",
                   help="comma list of: embedded, cli, tail, seed, rsyslog")
    args = p.parse_args(argv)
    if args.quick:
        args.files, args.lines, args.seconds = 1000, 400, 4.0
    return args


# --------------------------------------------------------------------------------------------
# The child: the engine in-process with a sink that never returns
# --------------------------------------------------------------------------------------------
def engine_child(glob: str, state: str) -> None:
    from logferry import Settings, Sink
    from logferry.engine import Engine

    class StalledSink(Sink):
        """Takes the first batch and never returns: a destination that hangs forever."""

        def __init__(self) -> None:
            super().__init__("stalled:")
            self.calls = 0

        async def send(self, batch: Any) -> None:
            self.calls += 1
            await asyncio.Event().wait()

    async def main() -> None:
        sink = StalledSink()
        settings = Settings(paths=[glob], state_dir=Path(state))
        engine = Engine(settings, sinks=[sink])
        task = asyncio.create_task(engine.run())
        t0 = time.monotonic()
        while not task.done():
            stats = engine.stats()
            print(json.dumps({"t": time.monotonic() - t0, "inflight_bytes": stats["inflight_bytes"],
                              "files": stats["files"], "open_files": stats["open_files"], "send_calls": sink.calls,
                              "max_inflight_bytes": settings.max_inflight_bytes}), flush=True)
            await asyncio.sleep(0.25)
        task.result()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------
def build(args: Any, in_dir: Path) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """(name, launch(p), kind) for each contender, and notes on skipped ones."""
    command = c.logferry_command(args.logferry)
    out, skipped = [], []
    for name in (w.strip() for w in args.contenders.split(",") if w.strip()):
        if name == "embedded":
            out.append(("logferry (embedded, stalled Sink)", _child, "embedded"))
        elif name == "cli":
            tool = c.logferry_tool(command, "logferry → FIFO never read", sink=lambda p: f"file:{p.out}")
            out.append((tool.name, tool.launch, "logferry"))
        elif name in ("tail", "seed", "rsyslog"):
            found, notes = c.baseline_tools([name])
            out += [(f"{t.name} → FIFO never read", t.launch, "baseline") for t in found]
            skipped += notes
        else:
            sys.exit(f"unknown contender {name!r}")
    return out, skipped


def _child(p: Any) -> subprocess.Popen:
    """This script as ``_engine`` in a process of its own, its stats on a pipe."""
    p.state.mkdir(parents=True, exist_ok=True)
    with open(p.log, "ab") as log:
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_engine", p.glob, str(p.state)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                start_new_session=True, text=True)


def run_one(name: str, launch: Any, kind: str, args: Any, in_dir: Path, names: list[str],
            root: Path) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="memory-", dir=root))
    fifo = d / "out" / "stalled.fifo"
    p = c.run_paths(d, in_dir, names, out=fifo)
    os.mkfifo(fifo)
    holder = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a reader exists, and never reads
    res: dict[str, Any] = {"contender": name, "status": "ok"}
    stats: list[dict[str, Any]] = []
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    proc = launch(p)

    def read_stats() -> None:
        for line in proc.stdout:
            try:
                stats.append(json.loads(line))
            except ValueError:
                pass

    reader = None
    if kind == "embedded":
        reader = threading.Thread(target=read_stats, daemon=True)
        reader.start()
    hwm = 0.0
    while time.monotonic() - t0 < args.seconds:
        if proc.poll() is not None:
            res["status"] = f"exited with {proc.returncode}"
            break
        rss = c.group_rss_mb(proc.pid, "VmRSS")
        hwm = max(hwm, c.group_rss_mb(proc.pid, "VmHWM"))
        samples.append((time.monotonic() - t0, rss))
        time.sleep(0.1)
    if proc.poll() is None:
        res["fds"] = c.group_fds(proc.pid)
        hwm = max(hwm, c.group_rss_mb(proc.pid, "VmHWM"))
    res["end_rss_mb"] = samples[-1][1] if samples else None
    res["peak_rss_mb"] = hwm
    res["rss_samples"] = samples[::5]
    try:
        os.killpg(proc.pid, 9)  # the output is stalled: there is nothing to flush
    except ProcessLookupError:
        pass
    proc.wait()
    os.close(holder)
    if reader:
        reader.join(5)
        res["stats"] = stats[::4]
        if stats:
            last = stats[-1]
            res.update(inflight_peak=max(s["inflight_bytes"] for s in stats), inflight_end=last["inflight_bytes"],
                       max_inflight_bytes=last["max_inflight_bytes"], send_calls=last["send_calls"],
                       files=last["files"], open_files=last["open_files"])
    if res["status"] != "ok":
        res["tool_log"] = c.tool_log(p.log)
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_engine":
        engine_child(sys.argv[2], sys.argv[3])
        return 0
    args = parse_args(argv)
    a = c.anchors()
    c.raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="logferry-memory-", dir=args.workdir))
    in_dir = root / "in"
    in_dir.mkdir()
    names = a.input_names(args.files)
    c.progress(f"writing {args.files:,} files × {args.lines} lines × {args.line_bytes} B")
    total = 0
    for fid, name in enumerate(names):
        data = b"".join(a.make_line(name.encode(), fid, seq, 0, args.line_bytes) for seq in range(args.lines))
        (in_dir / name).write_bytes(data)
        total += len(data)
    contenders, skipped = build(args, in_dir)
    for note in skipped:
        c.progress(note)
    runs = []
    try:
        for name, launch, kind in contenders:
            c.progress(f"{name} ...")
            r = run_one(name, launch, kind, args, in_dir, names, root)
            runs.append(r)
            c.progress(f"{name}: {r['status']}, peak RSS {r['peak_rss_mb']:.1f} MB, end {c.fmt(r['end_rss_mb'], 1)} MB"
                       + (f", in flight {r['inflight_end']:,} B" if "inflight_end" in r else ""))
    finally:
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    tail = next((r for r in runs if r["contender"].startswith("tail -F")), None)
    header = ["contender", "peak RSS MB", "× tail -F", "RSS at end MB", "bytes in flight (peak / end)",
              "batches offered", "files", "open fds", "status"]
    rows = []
    for r in runs:
        inflight = (f"{r['inflight_peak']:,} / {r['inflight_end']:,}" if "inflight_peak" in r else "—")
        rows.append([r["contender"], c.fmt(r["peak_rss_mb"], 1), c.ratio(r["peak_rss_mb"], tail and tail["peak_rss_mb"]),
                     c.fmt(r["end_rss_mb"], 1), inflight, str(r.get("send_calls", "—")),
                     f"{r['files']:,}" if "files" in r else "—", str(r.get("fds", "—")), r["status"]])
    notes = [f"{args.files:,} files × {args.lines} lines × {args.line_bytes} B = {total / 1e6:.0f} MB; RSS sampled "
             f"every 100 ms for {args.seconds:g} s from each start (peak: VmHWM of the process group); "
             f"{c.environment()}.",
             "The embedded engine runs with default settings (max_inflight_bytes 16 MiB); its own interpreter and "
             "imports are part of its RSS, as in the CLI.", *skipped]
    notes += [f"✗ {r['contender']}: {r['status']}: {r.get('tool_log', '')[-300:]!r}" for r in runs if r["status"] != "ok"]
    targets = []
    for r in runs:
        if r["contender"].startswith("logferry"):
            t = c.Target(f"peak RSS, {args.files:,} files, stalled sink, {r['contender']}", RSS_TARGET_MB, "MB",
                         r["peak_rss_mb"])
            targets.append(t if r["status"] == "ok" else t.failed(f"run failed: {r['status']}"))
        if "inflight_peak" in r:
            targets.append(c.Target(f"bytes in flight, {r['contender']}", r["max_inflight_bytes"] / 2**20, "MiB",
                                    r["inflight_peak"] / 2**20, note="max_inflight_bytes"))
    body = c.md_table(header, rows, (0, len(header) - 1)) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    c.emit(args, "Memory: many files, stalled sink", body, targets,
           {"summary": [{k: v for k, v in r.items() if k not in ("rss_samples", "stats")} for r in runs],
            "runs": runs, "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())
