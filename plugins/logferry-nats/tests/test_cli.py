"""End to end with the real ``logferry`` command: the plugin listed, bad options, and a SIGKILL loop
while writers append: the stream ends up with every line exactly once (JetStream drops the
re-delivered ones by their Nats-Msg-Id)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

from .live import LOGFERRY, Writers, logferry, per_file, wait_until
from .servers import NatsServer


def test_plugins_json_lists_nats_loaded_with_its_scheme() -> None:
    done = subprocess.run([*LOGFERRY, "plugins", "--json"], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr
    [row] = [p for p in json.loads(done.stdout) if p["name"] == "nats"]
    assert row["status"] == "loaded" and row["distribution"] == "logferry-nats"
    assert row["schemes"] == ["nats"]
    assert row["hooks"] == ["logferry_make_sink", "logferry_sink_schemes"]


def test_a_bad_option_is_one_line_naming_it_and_exit_code_2(tmp_path: Path) -> None:
    done = subprocess.run([*LOGFERRY, "run", str(tmp_path / "*.log"), "--once", "--state-dir", str(tmp_path),
                           "--sink", "nats://alice:hunter2@127.0.0.1:1?subject=s&replicas=7"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2
    assert "option 'replicas'" in done.stderr and "hunter2" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_missing_stream_stops_the_run_with_one_line_and_exit_code_1(nats_server: NatsServer, tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"one\n")
    done = subprocess.run([*LOGFERRY, "run", str(tmp_path / "*.log"), "--once", "--state-dir", str(tmp_path / "s"),
                           "--sink", f"{nats_server.url}?stream=nope&create=false"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "stream 'nope' does not exist" in done.stderr and "Traceback" not in done.stderr


def test_sigkill_loop_while_writers_append_leaves_every_line_exactly_once(nats_server: NatsServer, tmp_path: Path) -> None:
    """As the core's torture test: logferry is killed with SIGKILL at random moments and started
    again; what it shipped but had not yet checkpointed is shipped again, and JetStream drops it."""
    rng = random.Random(15)
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    config = tmp_path / "logferry.toml"
    config.write_text('[state]\ncommit_interval = "500ms"\n')
    sink = f"{nats_server.url}?stream=kill&subject=kill.{{stem}}&timeout=5"
    args = (str(logs / "*.log"), "-c", str(config), "--sink", sink, "--state-dir", str(state),
            "--poll-interval", "0.05")
    writers = Writers(logs, ["a.log", "b.log", "c.log"], pause=0.005).start()
    kills = 0
    try:
        daemon = logferry(*args)
        for _ in range(5):
            time.sleep(rng.uniform(0.8, 2.0))
            daemon.kill()
            daemon.communicate(timeout=30)
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            daemon = logferry(*args)
        time.sleep(1)
        daemon.kill()
        daemon.communicate(timeout=30)
    finally:
        writers.stop()
    done = subprocess.run([*LOGFERRY, "run", *args, "--once"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0, done.stderr

    expected = writers.expected()
    got, repeated = per_file(nats_server.url, "kill")
    assert got == expected  # every line, once, in order per file
    assert repeated == 0
    assert kills == 5 and all(len(lines) > 1000 for lines in expected.values())


def test_live_files_survive_a_server_restart_and_a_clean_stop_ships_nothing_twice(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    sink = f"{nats_server.url}?stream=s&subject=s.{{stem}}&timeout=2"
    args = [str(logs / "*.log"), "--sink", sink, "--state-dir", str(state), "--poll-interval", "0.05"]
    writers = Writers(logs, ["a.log", "b.log"]).start()
    daemon = logferry(*args)
    try:
        time.sleep(1.5)
        nats_server.stop(signal.SIGKILL)
        time.sleep(1.5)
        nats_server.start()  # same ports, same store
        time.sleep(1.5)
    finally:
        writers.stop()
    expected = writers.expected()
    wait_until(lambda: per_file(nats_server.url, "s")[0] == expected, 60, "every line in the stream", daemon)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert per_file(nats_server.url, "s") == (expected, 0)

    again = subprocess.run([*LOGFERRY, "run", *args, "--once"], capture_output=True, text=True, check=False,
                           timeout=60)
    assert again.returncode == 0, again.stderr
    assert per_file(nats_server.url, "s") == (expected, 0)
