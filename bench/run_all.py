#!/usr/bin/env python3
"""Run every benchmark in sequence; write bench/results/NAME.json, NAME.md, summary.md and benchmarks.png.

Order: catchup, live, newfile, idle, scale, memory, looplag, sinks, processors, then plot. Each script runs
with this Python (so the logferry it imports and the ``logferry`` beside it are the same install) and
its own --json/--markdown in the results directory; one that fails is reported and the others still
run. ``--quick`` passes --quick to each (catchup.py has none: it gets a smaller workload and one
repeat) for a smoke run of all of them in a few minutes. The full run takes about an hour on 2
cores (sinks.py alone about 15 minutes). summary.md is a table of every target (issue 4's, issue
12's from sinks.py, issue 11's from processors.py) with met / NOT met, then every report, under a
line saying when and where it ran.

Extra arguments after ``--`` go to every script (e.g. ``-- --logferry 'python -m logferry'``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SCRIPTS = ("catchup", "live", "newfile", "idle", "scale", "memory", "looplag", "sinks", "processors")
CATCHUP_QUICK = ["--lines", "20000", "--repeats", "1", "--seed-lines", "2000"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke-run every script")
    p.add_argument("--only", default=",".join(SCRIPTS), help="comma list of the scripts to run")
    p.add_argument("--results", default=str(HERE / "results"), help="where the results go")
    p.add_argument("extra", nargs="*", help="arguments for every script (after --)")
    args = p.parse_args(argv)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `logferry` of this Python
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    status: dict[str, str] = {}
    for name in wanted:
        if name not in SCRIPTS:
            sys.exit(f"unknown script {name!r} (known: {', '.join(SCRIPTS)})")
    for name in wanted:
        argv_ = [sys.executable, str(HERE / f"{name}.py"), "--json", str(results / f"{name}.json"),
                 "--markdown", str(results / f"{name}.md")]
        if args.quick:
            argv_ += CATCHUP_QUICK if name == "catchup" else ["--quick"]
        argv_ += args.extra
        print(f"\n[{time.strftime('%H:%M:%S')}] === {name} ===", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(argv_, env=env).returncode
        status[name] = f"exit {rc}, {time.monotonic() - t0:.0f} s"
        print(f"[{time.strftime('%H:%M:%S')}] === {name}: {status[name]} ===", file=sys.stderr, flush=True)
    plot = subprocess.run([sys.executable, str(HERE / "plot.py"), "--results", str(results)], env=env).returncode
    status["plot"] = f"exit {plot}"
    write_summary(results, wanted, status, args.quick)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in status.items()), file=sys.stderr)
    return 0 if all(v.startswith("exit 0") for v in status.values()) else 1


def catchup_targets(results: Path) -> list[dict]:
    """Issue 4's catch-up targets from catchup.json (catchup.py prints only the JSON one)."""
    from common import Target

    path = results / "catchup.json"
    if not path.exists():
        return []
    by = {s["contender"]: s for s in json.loads(path.read_text()).get("summary", [])}
    cat, raw, js = by.get("cat"), by.get("logferry"), by.get("logferry --format json")
    out = []
    if cat and raw:
        out.append(Target("catch-up, logferry, × cat (MB/s)", 0.5, "× cat", raw["mb_s"] / cat["mb_s"],
                          higher_is_better=True, note=f"{raw['mb_s']:,.0f} vs {cat['mb_s']:,.0f} MB/s"))
    if js:
        out.append(Target("catch-up, logferry --format json", 500_000, "lines/s", js["lines_s"], higher_is_better=True))
    return [asdict(t) for t in out]


def targets_table(results: Path, wanted: list[str]) -> str:
    """Every target of every result file, one row each."""
    from common import fmt, md_table

    rows = []
    for name in wanted:
        path = results / f"{name}.json"
        if not path.exists():
            continue
        found = catchup_targets(results) if name == "catchup" else json.loads(path.read_text()).get("targets", [])
        for t in found:
            op = "≥" if t["higher_is_better"] else "≤"
            verdict = {True: "met", False: "**NOT met**", None: "not measured"}[t["met"]]
            digits = t.get("digits")
            rows.append([name, str(t.get("issue", 4)), t["what"],
                         "—" if t["value"] is None else f"{fmt(t['value'], digits)} {t['unit']}",
                         f"{op} {fmt(t['limit'], digits)} {t['unit']}", verdict, t.get("note", "")])
    if not rows:
        return ""
    return "## Targets at a glance\n\n" + md_table(
        ["script", "issue", "target", "measured", "limit", "verdict", "note"], rows, (0, 2, 5, 6)) + "\n"


def write_summary(results: Path, wanted: list[str], status: dict[str, str], quick: bool) -> None:
    from common import environment

    parts = [f"# Benchmark results{' (quick smoke run: not representative)' if quick else ''}\n",
             f"{time.strftime('%Y-%m-%d %H:%M')}; {environment()}. Each table was measured in one run: compare "
             "ratios, not absolute times across runs.\n",
             "This run: " + ", ".join(f"{k} ({v})" for k, v in status.items())
             + ". Sections from earlier runs in the same directory are kept; each says which logferry it measured.\n"]
    present = [name for name in SCRIPTS if (results / f"{name}.md").exists()]  # earlier runs' too
    parts.append(targets_table(results, present))
    if (results / "benchmarks.png").exists():
        parts.append("![benchmarks](benchmarks.png)\n")
    for name in present:
        md = results / f"{name}.md"
        if md.exists():
            text = md.read_text()
            if not text.startswith("## "):  # catchup.py writes the table without a title
                text = "## Catch-up: ship files already written\n\n" + text
            parts.append(text)
    (results / "summary.md").write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
