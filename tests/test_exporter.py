"""``--metrics HOST:PORT``: Prometheus text at /metrics from the real command, counters that move."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import Daemon, append, cli, lines, wait_until
from logferry.testing import free_port


def scrape(port: int) -> dict[str, float]:
    """Every sample of http://127.0.0.1:PORT/metrics: ``name{labels}`` → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_are_served_while_following_and_the_counters_move_as_lines_are_appended(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    a, b = tmp_path / "in" / "a.log", tmp_path / "in" / "b.log"
    a.write_bytes(lines("a", 100))
    b.write_bytes(lines("b", 10))
    port = free_port()
    out = tmp_path / "out.log"
    daemon = Daemon(str(tmp_path / "in" / "*.log"), "--sink", f"file:{out}", "--state-dir", str(tmp_path / "s"),
                    "--metrics", f"127.0.0.1:{port}")
    try:
        def shipped(n: int) -> bool:
            try:
                return scrape(port).get(f'logferry_sink_shipped_lines_total{{sink="file:{out}"}}') == n
            except OSError:
                return False

        wait_until(lambda: shipped(110))
        first = scrape(port)
        append(a, lines("a", 400, start=100))
        wait_until(lambda: shipped(510))
        lag_count = "logferry_event_loop_lag_seconds_count"
        wait_until(lambda: scrape(port)[lag_count] > first[lag_count])  # the probe wakes every LAG_INTERVAL
        second = scrape(port)
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    assert first["logferry_read_lines_total"] == 110 and second["logferry_read_lines_total"] == 510
    path_a = f'logferry_file_read_bytes_total{{path="{a}"}}'
    assert first[path_a] == len(lines("a", 100)) and second[path_a] == a.stat().st_size
    assert second[f'logferry_file_read_bytes_total{{path="{b}"}}'] == b.stat().st_size
    assert second[f'logferry_sink_shipped_bytes_total{{sink="file:{out}"}}'] == a.stat().st_size + b.stat().st_size
    assert second[f'logferry_sink_errors_total{{sink="file:{out}"}}'] == 0
    assert second[f'logferry_sink_retries_total{{sink="file:{out}"}}'] == 0
    assert second["logferry_files_followed"] == 2 and second["logferry_open_files"] == 2
    assert "logferry_checkpoint_lag_bytes" in second and "logferry_oldest_unshipped_age_seconds" in second
    assert second["logferry_event_loop_lag_seconds_count"] > first["logferry_event_loop_lag_seconds_count"]
    assert second['logferry_event_loop_lag_seconds_bucket{le="+Inf"}'] == second["logferry_event_loop_lag_seconds_count"]
    assert all(name.startswith("logferry_") for name in second)  # its own registry: no python_/process_ series


def test_metrics_without_prometheus_client_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "lib" / "prometheus_client"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    (tmp_path / "a.log").write_bytes(b"x\n")
    result = cli("run", str(tmp_path / "a.log"), "--once", "--metrics", f"127.0.0.1:{free_port()}",
                 "--state-dir", str(tmp_path / "s"), env={"PYTHONPATH": str(tmp_path / "lib")})
    assert result.returncode == 2
    assert result.stderr == "logferry: error: --metrics needs prometheus_client: pip install 'logferry[metrics]'\n"


@pytest.mark.parametrize("address", ["9100", "host:port", "127.0.0.1:99999"])
def test_a_bad_metrics_address_is_a_usage_error(tmp_path: Path, address: str) -> None:
    result = cli("run", str(tmp_path / "a.log"), "--once", "--metrics", address, "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2 and "--metrics: expected HOST:PORT" in result.stderr


def test_a_metrics_port_in_use_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "a.log").write_bytes(b"x\n")
        started = time.monotonic()
        result = cli("run", str(tmp_path / "a.log"), "--once", "--metrics", f"127.0.0.1:{port}",
                     "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and time.monotonic() - started < 30
