"""``logferry demo``: the seed's scenario as a first run, with nothing to set up.

Writers (threads) append lines at random intervals to files in a temporary directory while the
engine follows them live into a merged file; then the merge is verified line by line.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import string
import tempfile
import threading
import time
from pathlib import Path

from ..engine import Engine
from ..plugins import PluginHost
from ..settings import Settings, SinkSpec
from .verify import print_report, verify_files

WRITE_SECONDS = 2.0  # how long the writers keep writing
SETTLE_TIMEOUT = 30.0


def _write(path: Path, lines: int, done: threading.Event) -> None:
    """Append ``lines`` lines at random intervals, one write per line, like an application would."""
    pause = WRITE_SECONDS / lines
    with open(path, "ab", buffering=0) as f:
        for i in range(lines):
            time.sleep(random.random() * 2 * pause)
            letters = "".join(random.choices(string.ascii_lowercase, k=10))
            f.write(f"{path.name}-{i:05}-{letters}\n".encode())
    done.set()


async def run_demo(files: int, lines: int, sink: str | None, keep: bool, host: PluginHost) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="logferry-demo-"))
    inputs = [workdir / f"app{i}.log" for i in range(files)]
    for path in inputs:
        path.touch()
    merged = workdir / "merged.out"
    settings = Settings(paths=[str(workdir / "*.log")], sinks=[SinkSpec(sink or f"file:{merged}")],
                        state_dir=workdir / "state", poll_interval=0.1, scan_interval=0.5)
    engine = Engine(settings, host)
    print(f"logferry demo: {files} writers append {lines} lines each at random intervals to {workdir}/app*.log")
    print(f"               logferry follows them live and ships every line to {engine.sinks[0].describe()}")
    started = time.monotonic()
    running = asyncio.create_task(engine.run())
    ready = asyncio.create_task(engine.wait_ready())
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # it failed to start: raise its error
    done = [threading.Event() for _ in inputs]
    for path, event in zip(inputs, done):
        threading.Thread(target=_write, args=(path, lines, event), daemon=True).start()
    try:
        settled = await _watch(engine, inputs, done, started)
    finally:
        engine.stop()
        await running
    elapsed = time.monotonic() - started
    code = 0 if settled else 1
    if sink is None:
        report = verify_files(str(merged), [str(p) for p in inputs])
        print_report(report)
        code = 0 if report.ok and settled else 1
    elif settled:
        print(f"every byte of {files} files was acknowledged by {engine.sinks[0].describe()}")
    print(f"{'OK' if code == 0 else 'FAILED'}: {files * lines} lines followed live and shipped in {elapsed:.1f} s")
    if keep:
        print(f"kept {workdir}; try: logferry run '{workdir}/*.log' --once --state-dir {workdir}/state")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"removed {workdir}; run logferry demo --keep to keep it and try logferry on its files")
    return code


async def _watch(engine: Engine, inputs: list[Path], done: list[threading.Event], started: float) -> bool:
    """Print progress until every writer finished and every byte written was acknowledged."""
    deadline = None
    next_print = 0.0
    while True:
        sizes = {str(p): p.stat().st_size for p in inputs}
        acked = sum(offset for path, offset, _ in engine.progress() if path in sizes)
        written = sum(sizes.values())
        now = time.monotonic()
        finished = all(e.is_set() for e in done)
        if now >= next_print or (finished and acked >= written):
            print(f"  {now - started:4.1f} s  written {written:>8} bytes  acknowledged {acked:>8}")
            next_print = now + 0.5
        if finished:
            if acked >= written:
                return True
            deadline = deadline or now + SETTLE_TIMEOUT
            if now > deadline:
                print("  gave up waiting for the sink to acknowledge everything")
                return False
        await asyncio.sleep(0.05)
