"""The seed's scenario through the real command: live writers, follow, SIGTERM, verify."""

from __future__ import annotations

import random
import string
import threading
import time
from pathlib import Path

from conftest import Daemon, cli, count_lines, wait_until


def write_random_lines(path: Path, count: int, interval: float, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "ab", buffering=0) as f:
        for i in range(count):
            time.sleep(rng.random() * interval)
            letters = "".join(rng.choices(string.ascii_lowercase, k=10))
            f.write(f"{path}-{i:04}-{letters}\n".encode())


def test_five_live_writers_are_merged_completely_and_in_order(tmp_path: Path) -> None:
    inputs = [tmp_path / f"{i}.log" for i in range(5)]
    for path in inputs:
        path.touch()
    out = tmp_path / "merged.out"
    daemon = Daemon(str(tmp_path / "*.log"), "--sink", f"file:{out}", "--state-dir", str(tmp_path / "state"))
    writers = [threading.Thread(target=write_random_lines, args=(p, 100, 0.02, i)) for i, p in enumerate(inputs)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    wait_until(lambda: count_lines(out) >= 500)
    code, err = daemon.stop()
    assert code == 0, err
    result = cli("verify", str(out), *map(str, inputs))
    assert result.returncode == 0, result.stdout
    assert "all 500 lines of 5 inputs arrived once, in order" in result.stdout


def test_sigint_flushes_and_saves_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(1000)))
    out = tmp_path / "out.txt"
    state = tmp_path / "state"
    daemon = Daemon(str(log), "--sink", str(out), "--state-dir", str(state))
    wait_until(lambda: count_lines(out) == 1000)
    code, err = daemon.stop(signal_number := 2)  # SIGINT
    assert signal_number == 2
    assert code == 0, err
    # The checkpoint was saved on the way out: a second run ships nothing again.
    again = cli("run", str(log), "--once", "--sink", str(out), "--state-dir", str(state))
    assert again.returncode == 0, again.stderr
    assert count_lines(out) == 1000
