#!/usr/bin/env python3
"""Network sinks: logferry to HTTP and Redis, next to Fluent Bit and rsyslog, on the same work (issue 12).

The outside harness ``../shared/bench/sinks.py`` (relative to the repository root, never copied in
here) does the measuring; this script imports it, runs it on the workloads below, checks every
line that arrived, and reports ratios and issue 12's targets. The harness brings:

* a counting HTTP/1.1 receiver in a process of its own (every body read whole, the lines it holds
  counted in place, ``{"errors":false}`` answers, one item per action on ``_bulk``). Here it also
  appends every body to a file, so that the check below reads back what arrived;
* a redis-server on a free port (no persistence): lines counted with XLEN on stream ``s``;
* the contenders, started in turn (A B C A B C …) on the same generated files:

  lf-ndjson   logferry run DIR/*.log --from-head --sink http://127.0.0.1:P/x                  (NDJSON)
  lf-esbulk   logferry run … --sink 'http://127.0.0.1:P/_bulk?format=es-bulk&index=x'
  lf-redis    logferry run … --sink 'redis://127.0.0.1:R/0?stream=s'                     (XADD per line)
  fb-http     Fluent Bit: tail → http, Format json_lines (Flush 0.1)
  fb-es       Fluent Bit: tail → es (Elasticsearch ``_bulk``)
  rs-es       rsyslogd: imfile (inotify) → omelasticsearch, bulkmode, a JSON document per line
  rs-redis    rsyslogd: imfile → omhiredis, mode=template "XADD s * line %msg%"

Workloads (the harness's):

  catch-up  FILES files (8) × LINES lines (250,000) of 100 B already written; wall time from the
            contender's start until the receiver counted every line; CPU (user+sys) of its
            process group at that moment, per million lines. Median of --repeats runs (3).
  live      the contender starts on FILES empty files; once one warm-up line per file arrived, a
            writer process appends RATE lines/s (20,000) in total for DURATION s (10), one
            write(2) per line, each line carrying its CLOCK_REALTIME write time. Latency = arrival
            at the receiver (HTTP: when it read the body; Redis: the entry id's milliseconds) −
            write time, per line; CPU over the live phase, per 10 s of writing; drain = how long
            after the last write the last line arrived (the backlog left). --live-repeats runs (3).

Every run is checked here, after the harness's count: each line read back from what the receiver
got (the recorded HTTP bodies; Redis: XRANGE of the whole stream) must be byte for byte the line
written, each line once, in order per file. A run that lost, doubled, reordered or garbled a line,
stalled or crashed is marked ✗, and any target it stands for counts as NOT met. Figures are medians
of a contender's intact runs (of all its runs when none was intact).

Targets (issue 12), as ratios taken in the same run:
  catch-up → HTTP NDJSON and ``_bulk``: lines/s ≥ 1.5 × Fluent Bit's (fb-http, fb-es), CPU per line
  ≤ Fluent Bit's. Catch-up → Redis: lines/s ≥ 2 × rsyslog omhiredis's, CPU per line ≤ rsyslog's.
  Live 20,000 lines/s over 8 files → HTTP (NDJSON and ``_bulk``) and → Redis: p99 ≤ 10 ms; CPU per
  10 s ≤ Fluent Bit's (HTTP), ≤ 1.5 × rsyslog's (Redis); no growing backlog (drain ≤ 0.5 s).

Peers that are not installed are skipped and the report says so: Fluent Bit is looked up at
``../shared/bench/bin/fluent-bit`` (then PATH); rsyslogd needs its imfile, omelasticsearch and
omhiredis modules (Debian: rsyslog, rsyslog-elasticsearch, rsyslog-hiredis); redis-server from PATH.
``--keep`` keeps the inputs, the recorded bodies and the receivers' logs (the harness removes each
contender's own directory; the tail of a failed run's log is in the report and the JSON).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import common as c

HARNESS = c.REPO.parent / "shared" / "bench" / "sinks.py"
ISSUE = 12

# The harness's contenders: a name for the tables (the tool's name first, for the plot's colours).
SHOWN = {"lf-ndjson": "logferry → HTTP NDJSON", "lf-esbulk": "logferry → HTTP _bulk",
         "lf-redis": "logferry → Redis XADD", "fb-http": "fluent-bit → HTTP json_lines",
         "fb-es": "fluent-bit → HTTP _bulk (es)", "rs-es": "rsyslog → HTTP _bulk (omelasticsearch)",
         "rs-redis": "rsyslog → Redis XADD (omhiredis)"}

# (workload, what, logferry, Fluent Bit column, rsyslog column, the peer its targets compare with)
WORKS = [("catchup", "catch-up → HTTP NDJSON", "lf-ndjson", "fb-http", None, "fb-http"),
         ("catchup", "catch-up → HTTP `_bulk`", "lf-esbulk", "fb-es", "rs-es", "fb-es"),
         ("catchup", "catch-up → Redis stream (XADD per line)", "lf-redis", None, "rs-redis", "rs-redis"),
         ("live", "live → HTTP NDJSON", "lf-ndjson", "fb-http", None, "fb-http"),
         ("live", "live → HTTP `_bulk`", "lf-esbulk", "fb-es", "rs-es", "fb-es"),
         ("live", "live → Redis stream", "lf-redis", None, "rs-redis", "rs-redis")]

# Issue 12's limits: catch-up throughput × the peer, live p99, live CPU × the peer, drain.
THROUGHPUT_X = {"fb-http": 1.5, "fb-es": 1.5, "rs-redis": 2.0}
LIVE_CPU_X = {"fb-http": 1.0, "fb-es": 1.0, "rs-redis": 1.5}
P99_MS = 10.0
DRAIN_S = 0.5

QUICK = {"lines": 10_000, "repeats": 1, "live_repeats": 1, "duration": 1.0, "settle": 0.5}

# A generated line: <name>-<seq:010d>-<write time ns:019d>-<letters> (the harness's make_line).
LINE = re.compile(rb"(f(\d{4})\.log-(\d{10})-(\d{19})-[A-Za-z]*)")
ENTRY = re.compile(rb"\*2\r\n\$\d+\r\n(\d+-\d+)\r\n\*")  # a stream entry's id in an XRANGE reply
_harness: ModuleType | None = None


def harness() -> ModuleType:
    """The outside harness sinks.py, imported once."""
    global _harness
    if _harness is None:
        _harness = c.load_outside(HARNESS, "sinks_harness", "receivers, contenders, workloads")
        # The harness starts its receiver and writer as `python THIS_FILE _http_receiver|_writer`:
        # through this script, so that the receiver records what it counts.
        _harness.THIS_FILE = Path(__file__).resolve()
    return _harness


# --------------------------------------------------------------------------------------------
# The receiver, recording (runs in the harness's receiver process)
# --------------------------------------------------------------------------------------------
def receiver_main(argv: list[str]) -> None:
    """The harness's HTTP receiver process, whose protocol also writes every body it counts to a file
    while told to: ``GET /__record?file=PATH`` starts (appending), ``GET /__record`` stops."""
    h = harness()

    class RecordingReceiver(h.HttpRecv):
        fd: int | None = None  # one recording for the whole process, whichever connection a body uses

        def _handle(self, buf: bytearray, b0: int, b1: int) -> None:
            if self.target.startswith("/__record"):
                if RecordingReceiver.fd is not None:
                    os.close(RecordingReceiver.fd)
                    RecordingReceiver.fd = None
                path = urllib.parse.parse_qs(urllib.parse.urlsplit(self.target).query).get("file")
                if path:
                    RecordingReceiver.fd = os.open(path[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._reply(b'{"ok":true}')
                return
            if RecordingReceiver.fd is not None and not self.target.startswith("/__"):
                with memoryview(buf)[b0:b1] as body:
                    done = 0
                    while done < len(body):
                        done += os.write(RecordingReceiver.fd, body[done:])
            super()._handle(buf, b0, b1)

    h.HttpRecv = RecordingReceiver  # cmd_http_receiver builds its protocol from this module global
    h.cmd_http_receiver(argv)


# --------------------------------------------------------------------------------------------
# The check: every line once, byte for byte, in order per file
# --------------------------------------------------------------------------------------------
def check_lines(chunks: Iterable[bytes], files: int, per_file: int, line_bytes: int) -> dict[str, Any]:
    """Find every generated line in ``chunks`` (raw bodies or replies, in arrival order; a line never
    spans two chunks) and compare it with the line written: seq 0..per_file-1 in each of ``files``."""
    make_line = harness().make_line
    names = [b"f%04d.log" % fid for fid in range(files)]
    seen = [bytearray(per_file) for _ in range(files)]
    last = [-1] * files
    found = doubled = reordered = garbled = foreign = 0
    for chunk in chunks:
        for line, fid_text, seq_text, written in LINE.findall(chunk):  # findall: half the time of finditer
            fid, seq = int(fid_text), int(seq_text)
            found += 1
            if fid >= files or seq >= per_file:
                foreign += 1
                continue
            if line != make_line(names[fid], fid, seq, int(written), line_bytes)[:-1]:
                garbled += 1
            if seen[fid][seq]:
                doubled += 1
            seen[fid][seq] = 1
            if seq < last[fid]:
                reordered += 1
            else:
                last[fid] = seq
    missing = files * per_file - sum(map(sum, seen))
    return {"ok": not (missing or doubled or garbled or foreign), "in_order": not reordered, "lines": found,
            "missing": missing, "doubled": doubled, "reordered": reordered, "garbled": garbled, "unknown": foreign}


def check_str(check: dict[str, Any] | None) -> str:
    if not check:
        return "not checked"
    if "error" in check:
        return f"FAIL {check['error']}"
    if check["ok"] and check["in_order"]:
        return f"OK {check['lines']:,} lines"
    return ("OK" if check["ok"] else "FAIL") + " " + " ".join(
        f"{k}={check[k]:,}" for k in ("missing", "doubled", "reordered", "garbled", "unknown") if check[k])


def file_chunks(path: Path, size: int = 64 << 20) -> Iterator[bytes]:
    """A recording in pieces cut after a newline (every format here ends a line's record with one)."""
    rest = b""
    with open(path, "rb") as f:
        while data := f.read(size):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            yield data[:cut]
    yield rest


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def redis_pages(port: int, stream: bytes = b"s", count: int = 100_000) -> Iterator[bytes]:
    """The whole stream in XRANGE pages, raw: each page's reply is read up to the PONG of a PING sent
    behind it (no value here can hold one), so no reply is parsed element by element in Python."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        start = b"-"
        while True:
            s.sendall(resp(b"XRANGE", stream, start, b"+", b"COUNT", b"%d" % count) + resp(b"PING"))
            page = bytearray()
            while not page.endswith(b"+PONG\r\n"):
                data = s.recv(1 << 20)
                if not data:
                    raise ConnectionError("redis closed the connection")
                page += data
            if page.startswith(b"-"):
                raise RuntimeError(page.split(b"\r\n", 1)[0].decode(errors="replace"))
            ids = ENTRY.findall(page)
            yield bytes(page)
            if len(ids) < count:
                return
            start = b"(" + ids[-1]


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
def with_command(con: Any, command: list[str]) -> Any:
    """The harness's logferry contender ``con``, started with --logferry's command instead of BIN_DIR/logferry."""

    class Command(harness().Logferry):
        def available(self) -> str | None:
            return None

        def argv(self, p: Any) -> list[str]:
            return [*command, *super().argv(p)[1:]]

    return Command(con.a, con.name, con.sink, con.url)


def contenders(args: Any) -> tuple[list[Any], list[str]]:
    """The harness's contenders that --contenders names and that can run here, and a note for the others."""
    h = harness()
    command = c.logferry_command(args.logferry)
    wanted = None if args.contenders == "all" else {w.strip() for w in args.contenders.split(",") if w.strip()}
    usable, skipped = [], []
    for con in h.all_contenders(args):
        if wanted is not None and con.name not in wanted:
            continue
        if isinstance(con, h.Logferry):
            con = with_command(con, command)
        why = con.available() or ("redis-server not found" if con.sink == "redis" and not args.redis_server else None)
        if why:
            skipped.append(f"{SHOWN.get(con.name, con.name)}: skipped ({why}).")
        else:
            usable.append(con)
    unknown = (wanted or set()) - set(SHOWN)
    if unknown:
        sys.exit(f"unknown contender(s) {', '.join(sorted(unknown))} (known: {', '.join(SHOWN)})")
    return usable, skipped


def run_one(bench: Any, con: Any, workload: str, rep: int, args: Any, root: Path) -> dict[str, Any]:
    """One harness run, with what arrived recorded (HTTP) and checked afterwards."""
    record = root / f"{workload}-{con.name}-{rep}.body"
    if con.sink == "http":
        bench.http.get("/__record?file=" + urllib.parse.quote(str(record)))
    try:
        r = bench.run_catchup(con, rep) if workload == "catchup" else bench.run_live(con, rep)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        r = {"workload": workload, "contender": con.name, "rep": rep, "status": f"error: {exc!r}", "ok": False}
    finally:
        if con.sink == "http":
            bench.http.get("/__record")
    r["id"], r["contender"] = con.name, SHOWN.get(con.name, con.name)
    per_file = args.lines if workload == "catchup" else (r.get("expected") or 0) // args.files
    if per_file:
        try:
            chunks = file_chunks(record) if con.sink == "http" else redis_pages(bench.redis.port)
            r["check"] = check_lines(chunks, args.files, per_file, args.line_bytes)
        except (OSError, RuntimeError) as exc:
            r["check"] = {"ok": False, "error": repr(exc)}
    # Every line once, byte for byte; in order per file too for logferry, which promises it. A peer's
    # figures stand when it reorders (Fluent Bit's outputs flush on 2 worker threads by default): reported.
    check = r.get("check", {})
    r["intact"] = bool(r.get("ok") and check.get("ok") and (check.get("in_order") or not con.name.startswith("lf-")))
    if workload == "live" and r.get("cpu_s") is not None and r.get("writer_elapsed_s"):
        r["cpu_s_per_10s"] = r["cpu_s"] * 10 / r["writer_elapsed_s"]
    if workload == "catchup" and r.get("status") == "done":
        r["lines_s"] = r["klines_s"] * 1000
    elif workload == "catchup":
        r["mb_s"] = r["klines_s"] = None  # the harness divides by the time to the failure: no rate
    r["load1"] = os.getloadavg()[0]  # the machine's load as the run ends: how shared it was
    if not args.keep:
        record.unlink(missing_ok=True)
    return r


def describe_run(r: dict[str, Any]) -> str:
    if r["workload"] == "catchup":
        figures = (f"{c.fmt(r.get('lines_s'), 0)} lines/s, {c.fmt(r.get('cpu_per_mline'), 2)} CPU s/Mline, "
                   f"wall {c.fmt(r.get('wall_s'), 2)} s")
    else:
        figures = (f"p50 {c.fmt(r.get('p50_ms'), 2)} p99 {c.fmt(r.get('p99_ms'), 2)} ms, "
                   f"CPU {c.fmt(r.get('cpu_s_per_10s'), 2)} s/10 s, drain {c.fmt(r.get('drain_s'), 2)} s")
    return f"{r['status']}, {figures}, {check_str(r.get('check'))}"


# --------------------------------------------------------------------------------------------
# Summary and report
# --------------------------------------------------------------------------------------------
CATCHUP_KEYS = ("lines_s", "mb_s", "cpu_per_mline", "wall_s", "cpu_s", "recv_cpu_s", "requests")
LIVE_KEYS = ("p50_ms", "p99_ms", "max_ms", "cpu_s_per_10s", "drain_s", "rate_achieved", "requests", "recv_cpu_s")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for workload, keys in (("catchup", CATCHUP_KEYS), ("live", LIVE_KEYS)):
        for name, shown in SHOWN.items():
            mine = [r for r in runs if r["workload"] == workload and r["id"] == name]
            if not mine:
                continue
            pool = [r for r in mine if r["intact"]] or mine
            row = {"workload": workload, "id": name, "contender": shown, "runs": len(mine),
                   "failed": sum(not r["intact"] for r in mine),
                   "out_of_order": sum(r["intact"] and not r["check"]["in_order"] for r in mine)}
            row.update({k: c.median(r.get(k) for r in pool) for k in keys})
            row["faults"] = [f"✗ run {r['rep'] + 1}: {r['status']}, {check_str(r.get('check'))}"
                             + (f"; log: {r['tool_log'][-300:]!r}" if r.get("tool_log") else "")
                             for r in mine if not r["intact"]]
            row["faults"] += [f"out of order, run {r['rep'] + 1}: {r['check']['reordered']:,} lines arrived after a "
                              "later line of their file (every line once, byte for byte)"
                              for r in mine if r["intact"] and not r["check"]["in_order"]]
            out.append(row)
    return out


def mark(row: dict[str, Any] | None) -> str:
    return f" ✗ ({row['failed']}/{row['runs']})" if row and row["failed"] else ""


def intact(row: dict[str, Any]) -> str:
    """✓, or ✗ with the share of failed runs; "out of order" when intact runs reordered a file's lines."""
    text = f"✗ ({row['failed']}/{row['runs']})" if row["failed"] else "✓"
    return text + (f", out of order ({row['out_of_order']}/{row['runs']})" if row["out_of_order"] else "")


def cell(row: dict[str, Any] | None, workload: str, requests: bool = True) -> str:
    if row is None:
        return "—"
    if workload == "catchup":
        text = (f"{c.fmt(row['lines_s'] and row['lines_s'] / 1000, 0)}k lines/s, "
                f"{c.fmt(row['cpu_per_mline'], 2)} CPU s/Mline")
    else:
        text = (f"p50 {c.fmt(row['p50_ms'], 1)} ms, **p99 {c.fmt(row['p99_ms'], 1)} ms**, "
                f"{c.fmt(row['cpu_s_per_10s'], 1)} CPU s, drain {c.fmt(row['drain_s'], 2)} s")
        if requests and row.get("requests") is not None:
            text += f", {c.fmt(row['requests'], 0)} requests"
    return text + mark(row)


def ratio_cell(me: dict[str, Any], other: dict[str, Any] | None, key: str) -> str:
    shown = c.ratio(me[key], other and other[key])
    return shown if shown == "—" else f"{shown}×"


def works_table(by: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Issue 12's table: a row per work, logferry and its peers, the ratios to the peer of the targets."""
    rows = []
    for workload, what, lf, fb, rs, peer in WORKS:
        me, other = by.get((workload, lf)), by.get((workload, peer))
        if me is None:
            continue
        if workload == "catchup":
            vs = f"{ratio_cell(me, other, 'lines_s')} lines/s, {ratio_cell(me, other, 'cpu_per_mline')} CPU per line"
        else:
            vs = f"{ratio_cell(me, other, 'p99_ms')} p99, {ratio_cell(me, other, 'cpu_s_per_10s')} CPU"
        rows.append([what, cell(me, workload), cell(by.get((workload, fb)) if fb else None, workload),
                     cell(by.get((workload, rs)) if rs else None, workload, requests=False),
                     f"{vs} ({SHOWN[peer].split(' ')[0]})"])
    return c.md_table(["work", "logferry", "Fluent Bit", "rsyslog", "logferry / peer"], rows, (0, 1, 2, 3, 4))


def detail_tables(summary: list[dict[str, Any]]) -> str:
    parts = []
    catchup = [s for s in summary if s["workload"] == "catchup"]
    if catchup:
        rows = [[s["contender"], c.fmt(s["lines_s"], 0), c.fmt(s["mb_s"]), c.fmt(s["cpu_per_mline"], 2),
                 c.fmt(s["wall_s"], 2), c.fmt(s["requests"], 0), c.fmt(s["recv_cpu_s"], 2), intact(s)]
                for s in catchup]
        parts.append("Catch-up, per contender:\n\n" + c.md_table(
            ["contender", "lines/s", "MB/s", "CPU s / Mline", "wall s", "requests", "receiver CPU s", "intact"],
            rows, (0, 7)))
    live = [s for s in summary if s["workload"] == "live"]
    if live:
        rows = [[s["contender"], c.fmt(s["p50_ms"], 2), c.fmt(s["p99_ms"], 2), c.fmt(s["max_ms"], 1),
                 c.fmt(s["cpu_s_per_10s"], 2), c.fmt(s["drain_s"], 2), c.fmt(s["rate_achieved"], 0),
                 c.fmt(s["requests"], 0), intact(s)] for s in live]
        parts.append("Live, per contender:\n\n" + c.md_table(
            ["contender", "p50 ms", "p99 ms", "max ms", "CPU s / 10 s", "drain s", "lines/s written", "requests",
             "intact"], rows, (0, 8)))
    return "\n\n".join(parts)


def targets(by: dict[tuple[str, str], dict[str, Any]]) -> list[c.Target]:
    out: list[c.Target] = []

    def add(me: dict[str, Any], peer: dict[str, Any] | None, t: c.Target) -> None:
        """A target of ``me`` (against ``peer``): NOT met when a run of ``me`` failed, not measured when
        the peer's figure is missing or stands for failed runs."""
        if me["failed"]:
            t.failed(f"{me['failed']} of {me['runs']} run(s) failed or lost lines")
        elif peer is not None and peer["failed"]:
            t.met, t.note = None, f"{t.note}; {peer['contender']}: {peer['failed']} of {peer['runs']} run(s) failed"
        out.append(t)

    def times(me: dict[str, Any], peer: dict[str, Any] | None, key: str) -> float | None:
        return me[key] / peer[key] if peer and peer.get(key) and me.get(key) is not None else None

    for workload, what, lf, _, _, peer_id in WORKS:
        me, peer = by.get((workload, lf)), by.get((workload, peer_id))
        if me is None:
            continue
        tool = SHOWN[peer_id].split(" → ")[0]
        if workload == "catchup":
            note = f"{c.fmt(me['lines_s'], 0)} vs {c.fmt(peer['lines_s'], 0)} lines/s" if peer else "peer not run"
            add(me, peer, c.Target(f"{what}: lines/s × {tool}'s", THROUGHPUT_X[peer_id], "×",
                                   times(me, peer, "lines_s"), higher_is_better=True, note=note, issue=ISSUE))
            note = (f"{c.fmt(me['cpu_per_mline'], 2)} vs {c.fmt(peer['cpu_per_mline'], 2)} CPU s/Mline"
                    if peer else "peer not run")
            add(me, peer, c.Target(f"{what}: CPU per line × {tool}'s", 1.0, "×", times(me, peer, "cpu_per_mline"),
                                   note=note, issue=ISSUE))
        else:
            add(me, None, c.Target(f"{what}: p99 write → arrival", P99_MS, "ms", me["p99_ms"], issue=ISSUE))
            note = (f"{c.fmt(me['cpu_s_per_10s'], 2)} vs {c.fmt(peer['cpu_s_per_10s'], 2)} CPU s per 10 s"
                    if peer else "peer not run")
            add(me, peer, c.Target(f"{what}: CPU per 10 s × {tool}'s", LIVE_CPU_X[peer_id], "×",
                                   times(me, peer, "cpu_s_per_10s"), note=note, issue=ISSUE))
            add(me, None, c.Target(f"{what}: no growing backlog (last line's arrival after the last write)", DRAIN_S,
                                   "s", me["drain_s"], digits=2, issue=ISSUE))
    return out


def version(argv: list[str]) -> str:
    """The first line a tool prints about its version, without build details."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        first = (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return f"? ({exc})"
    return re.sub(r"\s+(compiled with:|sha=).*$", "", " ".join(first.split()))


def report(args: Any, runs: list[dict[str, Any]], summary: list[dict[str, Any]], skipped: list[str],
           cons: list[Any]) -> tuple[str, list[c.Target]]:
    by = {(s["workload"], s["id"]): s for s in summary}
    command = c.logferry_command(args.logferry)
    shown = shlex.join([Path(command[0]).name, *command[1:]])
    notes = [(f"Catch-up: {args.files} files × {args.lines:,} lines of {args.line_bytes} B, median of {args.repeats} "
              f"run(s). Live: {args.rate:,.0f} lines/s over {args.files} files for {args.duration:g} s, median of "
              f"{args.live_repeats} run(s). Contenders interleaved; {c.environment()}."),
             ("Catch-up cells: lines/s, CPU s per million lines (the contender's process group, user+sys). Live "
              "cells: p50/p99 write → arrival, CPU s per 10 s of writing, drain (last arrival after the last "
              "write), HTTP requests. Redis entry ids have 1 ms resolution: Redis latencies read up to 1 ms low."),
             (f"logferry: `{shown} run 'DIR/*.log' --from-head --sink URL --state-dir STATE` (URLs in --help); "
              f"{c.logferry_version(command)}.")]
    if any(x.name.startswith("fb-") for x in cons):
        notes.append(f"Fluent Bit: {version([args.fluent_bit, '--version'])} at {args.fluent_bit}, "
                     f"Flush {args.fluent_bit_flush}.")
    if any(x.name.startswith("rs-") for x in cons):
        notes.append(f"rsyslog: {version([args.rsyslogd, '-v'])}, main_queue dequeueBatchSize {args.rsyslog_batch}.")
    if args.redis_server:
        notes.append(f"redis: {version([args.redis_server, '--version'])}.")
    loads = [r["load1"] for r in runs]
    notes += [("The receivers share the 2 CPUs with the contender (receiver CPU in the per-contender table); the "
               "HTTP receiver also writes every body to a file for the check, for every contender alike."),
              ("Order per file is part of logferry's check only: a peer that reorders a file's lines (\"out of "
               "order\") keeps its figures."),
              (f"Load average (1 min) as each run ended: {min(loads):.1f}–{max(loads):.1f}, median "
               f"{c.median(loads):.1f}, on {os.cpu_count()} CPUs (the bench's own processes account for up to "
               "about 2; the rest is other work on the machine)." if loads else ""),
              *args.note, *skipped]
    for s in summary:
        notes += [f"{s['contender']} ({s['workload']}): {f}" for f in s["faults"]]
    body = works_table(by) + "\n\n" + detail_tables(summary) + "\n\n" + "\n".join(f"- {n}" for n in notes if n)
    return body, targets(by)


def parse_args(argv: list[str] | None) -> Any:
    h = harness()
    p = c.parser(__doc__)
    p.add_argument("--workloads", default="catchup,live", help="comma list of: catchup, live")
    p.add_argument("--contenders", default="all", help=f"all, or a comma list of: {', '.join(SHOWN)}")
    p.add_argument("--files", type=int, default=8, metavar="N", help="files shipped at once")
    p.add_argument("--lines", type=int, default=250_000, metavar="N", help="lines per file (catch-up)")
    p.add_argument("--line-bytes", type=int, default=100, metavar="N", help="bytes per line, newline included")
    p.add_argument("--repeats", type=int, default=3, metavar="N", help="catch-up runs of each contender")
    p.add_argument("--live-repeats", type=int, default=3, metavar="N", help="live runs of each contender")
    p.add_argument("--rate", type=float, default=20_000, help="live: lines/s over all files")
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="live: seconds of writing")
    p.add_argument("--settle", type=float, default=2.0, metavar="S",
                   help="live: seconds after start before the warm-up lines")
    p.add_argument("--stall", type=float, default=30.0, metavar="S", help="give up when nothing arrived for this long")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S", help="catch-up: give up after this long")
    p.add_argument("--fluent-bit", default=h._bundled_fluent_bit(), metavar="PATH",
                   help="default: ../shared/bench/bin/fluent-bit, else on PATH")
    p.add_argument("--fluent-bit-flush", default="0.1", metavar="S", help="Fluent Bit's [SERVICE] Flush")
    p.add_argument("--rsyslogd", default=shutil.which("rsyslogd", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")),
                   metavar="PATH")
    p.add_argument("--rsyslog-moddir", default="/usr/lib/x86_64-linux-gnu/rsyslog", metavar="DIR")
    p.add_argument("--rsyslog-batch", default="1024", metavar="N", help="rsyslog's main_queue dequeueBatchSize")
    p.add_argument("--redis-server", default=shutil.which("redis-server"), metavar="PATH")
    p.add_argument("--note", action="append", default=[], help="a line added to the report's notes (repeatable)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, min(getattr(args, key), value))
    args.poll = 0.01  # the harness's catch-up sampling interval
    args.bin_dir = ""  # unused: logferry comes from --logferry (with_command)
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["_http_receiver"]:
        receiver_main(sys.argv[2:])
        return 0
    if argv is None and sys.argv[1:2] == ["_writer"]:
        harness().cmd_writer(sys.argv[2:])
        return 0
    args = parse_args(argv)
    cons, skipped = contenders(args)
    for note in skipped:
        c.progress(note)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if set(workloads) - {"catchup", "live"}:
        sys.exit(f"unknown workload(s) in {args.workloads!r} (known: catchup, live)")
    root = Path(tempfile.mkdtemp(prefix="logferry-sinks-", dir=args.workdir))
    bench = harness().Bench(args, root)
    runs = []
    try:
        for workload in workloads:
            repeats = args.repeats if workload == "catchup" else args.live_repeats
            for rep in range(repeats):
                for con in cons:
                    r = run_one(bench, con, workload, rep, args, root)
                    runs.append(r)
                    c.progress(f"{workload} {rep + 1}/{repeats} {con.name}: {describe_run(r)}")
    finally:
        bench.close()
        if args.keep:
            c.progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarise(runs)
    body, found = report(args, runs, summary, skipped, cons)
    c.emit(args, "Network sinks: logferry next to Fluent Bit and rsyslog (issue 12)", body, found,
           {"summary": summary, "runs": runs, "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())
