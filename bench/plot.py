#!/usr/bin/env python3
"""Plot the benchmark results: one PNG with a panel per result file found.

Reads the ``--json`` files the benchmarks wrote into a directory (default bench/results):

  catchup.json   catch-up throughput (MB/s) of every contender, cat's as a reference line
  live.json      live latency percentiles (p50/p95/p99/max) per contender, issue 4's 5 ms line
  newfile.json   new file to first line (p50/max) per contender          } when present
  idle.json      idle CPU % of one core per contender and file count     }
  looplag.json   event-loop lag (p50/p99/max) per contender              }
  memory.json    peak RSS with a stalled output per contender            }
  scale.json     wall time with 10,000 files per contender               }
  sinks.json     network sinks (issue 12): catch-up lines/s and live latency }

Result files can also be named on the command line (``plot.py results/sinks-before.json --out
sinks-before.png``): each is drawn as the result its name starts with (catchup-800mb.json as catchup).

Needs matplotlib, a bench-only dependency: ``pip install matplotlib``. Log scales throughout: the
contenders differ by orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLORS = {"logferry": "#1f77b4", "cat": "#7f7f7f", "tail": "#2ca02c", "rsyslog": "#ff7f0e", "seed": "#d62728",
          "fluent": "#9467bd", "idle": "#7f7f7f"}


def color(name: str) -> str:
    for key, value in COLORS.items():
        if key in name:
            return value
    return "#8c564b"


def load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        print(f"plot: skipping {path}: {exc}", file=sys.stderr)
        return None


def hbars(ax: Any, names: list[str], values: list[float | None], title: str, xlabel: str,
          ref: float | None = None, ref_label: str = "") -> None:
    shown = [(n, v) for n, v in zip(names, values) if v]
    if not shown:
        ax.set_visible(False)
        return
    ys = range(len(shown))
    ax.barh(list(ys), [v for _, v in shown], color=[color(n) for n, _ in shown])
    ax.set_yticks(list(ys), [n for n, _ in shown])
    ax.invert_yaxis()
    ax.set_xscale("log")
    for y, (_, v) in zip(ys, shown):
        ax.text(v, y, f" {v:,.0f}" if v >= 100 else f" {v:.3g}", va="center", fontsize=8)
    if ref:
        ax.axvline(ref, color="k", ls="--", lw=1, label=ref_label)
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)


def grouped(ax: Any, names: list[str], series: dict[str, list[float | None]], title: str, ylabel: str,
            target: float | None = None, target_label: str = "") -> None:
    if not names:
        ax.set_visible(False)
        return
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(names))]
        ax.bar(xs, [v or 0 for v in values], width, label=label)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    if target:
        ax.axhline(target, color="k", ls="--", lw=1, label=target_label)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)


RESULTS = ("catchup", "live", "newfile", "idle", "looplag", "memory", "scale", "sinks")


def kinds(name: str, data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The panels of one result: sinks.json has two (catch-up, live), the others one."""
    if name != "sinks":
        return [(name, data)]
    present = {r.get("workload") for r in data.get("summary", [])}
    return [(f"sinks-{w}", data) for w in ("catchup", "live") if w in present]


def clamp(ms: float | None) -> float | None:
    """Redis latencies come from 1 ms entry ids and can read below 0: drawn at 0.01 ms on the log scale."""
    return None if ms is None else max(ms, 0.01)


def panels(directory: Path, files: list[str]) -> list[tuple[str, Any]]:
    """(kind, data) for each result named in ``files``, else for each present in ``directory`` in a fixed order."""
    out = []
    if files:
        for path in map(Path, files):
            name = next((k for k in RESULTS if path.stem.split("-")[0] == k), None)
            data = load(path.parent, path.stem) if name else None
            if name is None:
                print(f"plot: skipping {path}: its name starts with none of {', '.join(RESULTS)}", file=sys.stderr)
            elif data:
                out += kinds(name, data)
        return out
    for name in RESULTS:
        data = load(directory, name)
        if data:
            out += kinds(name, data)
    return out


def failed(r: dict[str, Any]) -> bool:
    """Whether a summary row stands for a failed run (lines lost, a crash, a timeout)."""
    if r.get("failed"):
        return True
    if r.get("intact") is False or r.get("success") is False:
        return True
    return r.get("status") not in (None, "ok", "done")


def label(r: dict[str, Any]) -> str:
    name = r.get("contender") or r.get("case", "?")
    return f"{name} ✗" if failed(r) else name


def draw(ax: Any, kind: str, data: dict[str, Any]) -> None:
    s = data.get("summary", [])
    args = data.get("meta", {}).get("args", {})
    names = [label(r) for r in s]
    if kind == "catchup":
        cat = next((r["mb_s"] for r in s if r["contender"] == "cat"), None)
        workload = data.get("meta", {}).get("workload", "")
        hbars(ax, names, [r["mb_s"] for r in s], f"Catch-up throughput\n{workload}", "MB/s (log)",
              cat / 2 if cat else None, "0.5 × cat (target)")
    elif kind == "live":
        grouped(ax, names, {q: [r.get(f"{q}_ms") for r in s] for q in ("p50", "p95", "p99", "max")},
                f"Live latency, {args.get('rate', 0):,.0f} lines/s over {args.get('files', '?')} files",
                "ms (log)", 5.0, "5 ms (p99 target, hint)")
    elif kind == "newfile":
        grouped(ax, names, {q: [r.get(f"{q}_ms") for r in s] for q in ("p50", "max")},
                "New file to first line", "ms (log)", 50.0, "50 ms (target, hint)")
    elif kind == "idle":
        sizes = sorted({r["files"] for r in s})
        contenders = list(dict.fromkeys(r["contender"] for r in s))

        def pct(n: int, who: str) -> float | None:
            r = next((r for r in s if r["files"] == n and r["contender"] == who), None)
            if r is None or failed(r) or r.get("cpu_pct") is None:
                return None  # not run, or failed: no bar
            return max(r["cpu_pct"], 0.01)

        grouped(ax, contenders, {f"{n:,} files": [pct(n, who) for who in contenders] for n in sizes},
                "Idle CPU (0.01 = below one tick; no bar: failed or not run)", "% of one core (log)", 0.5,
                "0.5 % (target, 1,000 files)")
    elif kind == "looplag":
        grouped(ax, names, {q: [r.get(f"{q}_ms") for r in s] for q in ("p50", "p99", "max")},
                "Event-loop lag under catch-up", "ms (log)", 5.0, "5 ms (p99 target)")
    elif kind == "memory":
        hbars(ax, names, [r.get("peak_rss_mb") for r in s],
              f"Peak RSS, {args.get('files', 0):,} files, stalled output", "MB (log)", 100.0, "100 MB (target)")
    elif kind == "scale":
        follow = data.get("follow", [])
        hbars(ax, [label(r) for r in follow], [r.get("wall_s") for r in follow],
              f"Ship {args.get('files', 0):,} files at once (wall time)", "s (log)")
    elif kind == "sinks-catchup":
        rows = [r for r in s if r["workload"] == "catchup"]
        hbars(ax, [label(r) for r in rows], [r.get("lines_s") for r in rows],
              f"Catch-up to network sinks, {args.get('files', '?')} files × {args.get('lines', 0):,} lines",
              "lines/s (log)")
    elif kind == "sinks-live":
        rows = [r for r in s if r["workload"] == "live"]
        grouped(ax, [label(r) for r in rows], {q: [clamp(r.get(f"{q}_ms")) for r in rows] for q in ("p50", "p99", "max")},
                f"Live to network sinks, {args.get('rate', 0):,.0f} lines/s over {args.get('files', '?')} files",
                "ms (log)", 10.0, "10 ms (p99 target)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(HERE / "results"), help="directory holding the *.json results")
    p.add_argument("--out", default=None, help="PNG to write (default: RESULTS/benchmarks.png)")
    p.add_argument("files", nargs="*", metavar="FILE.json", help="draw these result files instead of RESULTS/*.json")
    args = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot: matplotlib is not installed (a bench-only dependency): pip install matplotlib", file=sys.stderr)
        return 2
    directory = Path(args.results)
    found = panels(directory, args.files)
    if not found:
        print(f"plot: no results in {directory} (run the benchmarks with --json {directory}/NAME.json)",
              file=sys.stderr)
        return 1
    cols = 2 if len(found) > 1 else 1
    rows = (len(found) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4 * rows), squeeze=False)
    for ax, (kind, data) in zip(axes.flat, found):
        draw(ax, kind, data)
    for ax in list(axes.flat)[len(found):]:
        ax.set_visible(False)
    meta = next((d.get("meta", {}) for _, d in found if d.get("meta", {}).get("logferry")), {})
    fig.suptitle(f"logferry benchmarks ({meta.get('logferry', '')}, {meta.get('cpus', '?')} CPUs) — "
                 "each panel from one run, compare ratios; ✗ = failed run", fontsize=11)
    fig.tight_layout()
    out = Path(args.out) if args.out else directory / "benchmarks.png"
    fig.savefig(out, dpi=110)
    print(f"plot: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
