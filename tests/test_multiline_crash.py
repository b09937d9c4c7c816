"""Multiline events across crashes and clean stops: a writer process appends ordinary lines and
Java-style stack traces, each trace in several writes (flushed, some cut mid-line) so that a read can
end inside it, while ``logferry run`` (preset "java") is SIGKILLed and restarted at random moments.
No event is ever split, lost, or doubled except as a whole record re-shipped after a kill.

LOGFERRY_MULTILINE_CRASH_SECONDS (default 12) and LOGFERRY_MULTILINE_CRASH_SEED (default 1) tune it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Daemon, cli, wait_until

SECONDS = float(os.environ.get("LOGFERRY_MULTILINE_CRASH_SECONDS", "12"))
SEED = int(os.environ.get("LOGFERRY_MULTILINE_CRASH_SEED", "1"))

# The writer: events (one line, or a trace of several) appended to argv[1] for argv[3] seconds, each
# trace in 2 to 6 writes flushed one by one; the events' texts go to argv[4] (JSON) at the end.
WRITER = r'''
import json, random, sys, time

path, seed, seconds, truth = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)


def trace(seq):
    frames = rng.randint(1, 10)
    lines = [f"java.lang.IllegalStateException: seq={seq:06d} request failed"]
    lines += [f"\tat com.example.Worker.step{j}(Worker.java:{10 + j})" for j in range(frames)]
    if rng.random() < 0.3:
        lines += [f"\tSuppressed: java.io.IOException: seq={seq:06d} close failed",
                  "\t\tat com.example.Conn.close(Conn.java:7)", f"\t\t... {frames} more"]
    for cause in range(rng.randint(0, 2)):
        lines.append(f"Caused by: java.io.IOException: seq={seq:06d} cause {cause}")
        lines += [f"\tat com.example.Io.read{j}(Io.java:{20 + j})" for j in range(rng.randint(1, 4))]
        lines.append(f"\t... {frames} more")
    return "\n".join(lines)


def ordinary(seq):
    if rng.random() < 0.1:  # the java preset's start rule matches it: held until the next line
        return f"2024-05-01 12:00:00.000 WARN  [main] seq={seq:06d} upstream said Error: timeout"
    return f"2024-05-01 12:00:00.000 INFO  [main] seq={seq:06d} " + "x" * rng.randint(0, 80)


events, seq = [], 0
deadline = time.monotonic() + seconds
with open(path, "ab") as f:
    while time.monotonic() < deadline:
        seq += 1
        text = trace(seq) if rng.random() < 0.35 else ordinary(seq)
        data = (text + "\n").encode()
        if "\n" in text:  # cut at line ends and inside lines
            cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 5)))
            for start, end in zip([0, *cuts], [*cuts, len(data)]):
                f.write(data[start:end])
                f.flush()
                time.sleep(rng.uniform(0, 0.01))
        else:
            f.write(data)
            f.flush()
        events.append(text)
        if rng.random() < 0.05:
            time.sleep(rng.uniform(0, 0.05))
with open(truth, "w") as out:
    json.dump(events, out)
'''


def config(tmp_path: Path, log: Path, out: Path) -> Path:
    """Follow ``log`` through the java preset into ``out`` (JSON); commits often. The timeout is long:
    a trace paused on a busy machine must not be released half written."""
    path = tmp_path / "logferry.toml"
    path.write_text(f'[sources]\npaths = ["{log}"]\npoll_interval = "50ms"\n'
                    f'[output]\nmax_inflight_bytes = "64KiB"\n'
                    f'[state]\ndir = "{tmp_path / "state"}"\ncommit_interval = "200ms"\n'
                    f'[[processors]]\ntype = "multiline"\npreset = "java"\ntimeout = "60s"\n'
                    f'[[sinks]]\nurl = "file:{out}"\nformat = "json"\n')
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def truth(events: list[str]) -> dict[int, str]:
    """Each event's text by its offset in the file."""
    at, offset = {}, 0
    for text in events:
        at[offset] = text
        offset += len(text.encode()) + 1
    return at


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.mark.timeout(240)
def test_sigkills_never_split_lose_or_double_a_multiline_event(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    log, out, done = tmp_path / "app.log", tmp_path / "out.json", tmp_path / "written.json"
    cfg = config(tmp_path, log, out)
    messages = tmp_path / "logferry.log"  # every run's stderr, to explain a failure
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(SEED), str(SECONDS), str(done)])
    kills = 0
    try:
        daemon = Daemon("-c", str(cfg), log=messages)
        while writer.poll() is None:
            shipped = size(out)
            wait_until(lambda shipped=shipped: size(out) > shipped or writer.poll() is not None,
                       timeout=60)  # it got going
            time.sleep(rng.uniform(0.0, 1.5))
            daemon.kill()
            kills += 1
            daemon = Daemon("-c", str(cfg), log=messages)
        assert writer.wait(timeout=60) == 0
        time.sleep(rng.uniform(0.0, 0.5))
        daemon.kill()  # the last one too: whatever it had in flight is shipped again below
        kills += 1
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    once = cli("run", "-c", str(cfg), "--once", timeout=120)
    assert once.returncode == 0, once.stderr

    events = truth(json.loads(done.read_text()))
    got = records(out)
    traces = sum(1 for text in events.values() if "\n" in text)
    print(f"multiline crash: {len(events)} events ({traces} traces), {kills} kills, {len(got)} records")
    assert kills >= 2 and traces > 50, "too little happened to judge"
    for record in got:  # each record is one whole event: never a part, never a trace's tail alone
        assert record["offset"] in events, record
        assert record["line"] == events[record["offset"]], record
    first = {}
    for record in got:
        first.setdefault(record["id"], record["offset"])
        assert first[record["id"]] == record["offset"], record  # one id, one event
    assert len(set(first.values())) == len(first)  # two events never share an id
    assert sorted(first.values()) == sorted(events)  # none lost
    # Shipped in file order; a record shipped again only after a restart re-read from its checkpoint:
    # the offsets rise, falling back at most once a kill.
    offsets = [r["offset"] for r in got]
    rewinds = sum(1 for a, b in itertools.pairwise(offsets) if b <= a)
    assert rewinds <= kills, (rewinds, kills)
    assert list(first.values()) == sorted(first.values())


@pytest.mark.timeout(120)
def test_a_clean_stop_mid_trace_ships_the_trace_once_whole_after_the_restart(tmp_path: Path) -> None:
    log, out = tmp_path / "app.log", tmp_path / "out.json"
    cfg = config(tmp_path, log, out)
    trace = ["java.lang.IllegalStateException: cannot start", "\tat com.example.App.start(App.java:51)",
             "\tat com.example.App.main(App.java:74)", "Caused by: java.io.IOException: config: bad port",
             "\tat com.example.App.readConfig(App.java:35)", "\t... 2 more"]
    before = [f"2024-05-01 12:00:00.{n:03d} INFO  [main] request {n} done" for n in range(3)]
    after = "2024-05-01 12:00:01.000 INFO  [main] restarted"
    data = "".join(line + "\n" for line in [*before, *trace, after]).encode()
    pause = data.index(b"Caused by: ") + 15  # the writer pauses mid-trace, mid-line
    with open(log, "ab") as f:
        f.write(data[:pause])
        f.flush()
        daemon = Daemon("-c", str(cfg))
        wait_until(lambda: len(records(out)) == len(before), timeout=60)
        code, err = daemon.stop(signal.SIGTERM)
        assert code == 0, err
        assert [r["line"] for r in records(out)] == before  # the half-written trace was held back

        daemon = Daemon("-c", str(cfg))
        try:
            f.write(data[pause:])
            f.flush()
            wait_until(lambda: len(records(out)) >= len(before) + 2, timeout=60)
        finally:
            code, err = daemon.stop(signal.SIGTERM)
        assert code == 0, err
    got = records(out)
    assert [r["line"] for r in got] == [*before, "\n".join(trace), after]
    assert len({r["id"] for r in got}) == len(got)
    assert got[len(before)]["offset"] == data.index(trace[0].encode())
