"""End to end with the real ``logferry`` command: a flaky server loses no line, keeps each file's
order, and the checkpoint never passes a batch the server did not acknowledge."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from lfhttp_support import Received, Server, logferry, logferry_live, sigterm, wait_for

TOKEN = "e2e-SECRET-token"


def write_lines(folder: Path, files: int, lines: int, start: int = 0) -> dict[str, list[str]]:
    """Append ``lines`` lines to each of ``files`` logs; returns path → the lines written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[str]] = {}
    for f in range(files):
        path = folder / f"app{f}.log"
        text = [f"file {f} line {i:07d} " + "x" * 80 for i in range(start, start + lines)]
        with open(path, "a") as out:
            out.write("".join(line + "\n" for line in text))
        written[str(path)] = text
    return written


def delivered(stored: list[Received]) -> dict[str, list[str]]:
    """Each file's lines as first delivered, re-deliveries (same id) removed.

    Also checks that a re-delivery replays whole batches: every request is either all new lines or
    all lines already seen, never a mix (that would mean a batch was cut or reordered).
    """
    seen: set[str] = set()
    per_file: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for request in stored:
        records = request.json_lines()
        fresh = [r["id"] not in seen for r in records]
        assert all(fresh) or not any(fresh), "a request mixed new and re-delivered lines"
        for record in records:
            if record["id"] not in seen:
                seen.add(record["id"])
                per_file[record["path"]].append((record["offset"], record["line"]))
    for path, lines in per_file.items():
        offsets = [offset for offset, _line in lines]
        assert offsets == sorted(offsets), f"{path}: lines out of order"
    return {path: [line for _offset, line in lines] for path, lines in per_file.items()}


def run_once(logs: Path, state: Path, url: str) -> tuple[int, str]:
    result = logferry("run", f"{logs}/*.log", "--once", "--sink", url, "--state-dir", str(state),
                      env={"LF_E2E_TOKEN": TOKEN})
    assert TOKEN not in result.stdout + result.stderr
    return result.returncode, result.stderr


def test_once_with_a_flaky_server_delivers_everything_and_checkpoints_only_acknowledged(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    expected = write_lines(logs, files=3, lines=30_000)  # ~3 MiB a file: several batches each
    flaky = Server(fail_rate=0.3, drop_rate=0.1).start()
    try:
        code, err = run_once(logs, state, flaky.url + "?token_env=LF_E2E_TOKEN&max_backoff=100ms")
        assert code == 0, err
        assert delivered(flaky.stored) == expected
        assert {r.answer for r in flaky.requests} > {"ok"}, "the server should have misbehaved"
        assert {r.headers["Authorization"] for r in flaky.requests} == {f"Bearer {TOKEN}"}
    finally:
        flaky.stop()

    healthy = Server().start()
    code, err = run_once(logs, state, healthy.url)
    assert code == 0, err
    assert healthy.requests == [], "a clean --once run must leave nothing to ship again"
    down_url = healthy.url
    healthy.stop()

    more = write_lines(logs, files=3, lines=500, start=30_000)
    code, err = run_once(logs, state, down_url + "?retries=0")
    assert code == 1 and "failed" in err  # nothing acknowledged: gives up with an error

    final = Server().start()
    try:
        code, err = run_once(logs, state, final.url)
        assert code == 0, err
        assert delivered(final.stored) == more
        assert sum(len(r.json_lines()) for r in final.stored) == 1500  # each exactly once
    finally:
        final.stop()


def test_catch_up_bodies_stay_within_max_body_bytes_with_several_requests_in_flight(tmp_path, server):
    logs, state = tmp_path / "logs", tmp_path / "state"
    expected = write_lines(logs, files=4, lines=5_000)
    code, err = run_once(logs, state, server.url + "?max_body_bytes=64KiB&concurrency=3")
    assert code == 0, err
    assert delivered(server.stored) == expected
    assert len(server.requests) > 40 and all(len(r.body) <= 64 * 1024 for r in server.requests)


def test_live_run_with_a_flaky_server_then_sigterm(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    expected: dict[str, list[str]] = defaultdict(list)
    for path, lines in write_lines(logs, files=3, lines=10).items():
        expected[path] += lines
    flaky = Server(fail_rate=0.3, drop_rate=0.1, seed=7).start()
    proc = logferry_live("run", f"{logs}/*.log", "--sink", flaky.url + "?max_backoff=100ms",
                         "--state-dir", str(state), "--poll-interval", "0.05")
    try:
        assert wait_for(lambda: _delivered_quietly(flaky) == expected, timeout=20), "the first lines did not arrive"
        for burst in range(20):  # many small batches while it follows the files: each one arrives before the next
            for path, lines in write_lines(logs, files=3, lines=25, start=10 + burst * 25).items():
                expected[path] += lines
            assert wait_for(lambda: _delivered_quietly(flaky) == expected, timeout=20), f"burst {burst} did not arrive"
        code, err = sigterm(proc)
        assert code == 0, err
        assert len(flaky.requests) > 20 and {r.answer for r in flaky.requests} > {"ok"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        flaky.stop()

    healthy = Server().start()
    try:
        code, err = run_once(logs, state, healthy.url)
        assert code == 0, err
        assert healthy.requests == [], "after a clean stop nothing is shipped twice"
    finally:
        healthy.stop()


def _delivered_quietly(server: Server) -> dict[str, list[str]]:
    with server.lock:
        stored = list(server.stored)
    return delivered(stored)


def test_sinks_table_options_from_a_config_file(tmp_path, server):
    logs = tmp_path / "logs"
    expected = write_lines(logs, files=1, lines=3)
    server.ok_body = b'{"errors":false,"items":[]}'
    config = tmp_path / "logferry.toml"
    config.write_text(f"""
[sources]
paths = ["{logs}/*.log"]

[[sinks]]
url = "{server.url}"
format = "es-bulk"
index = "app"
gzip = true
header.X-Team = "ops"
""")
    result = logferry("run", "-c", str(config), "--once", "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    (request,) = server.requests
    assert request.headers["X-Team"] == "ops" and request.headers["Content-Encoding"] == "gzip"
    rows = request.json_lines()
    assert [row["index"]["_index"] for row in rows[0::2]] == ["app"] * 3
    assert [row["line"] for row in rows[1::2]] == next(iter(expected.values()))


def test_unknown_option_exits_2_naming_it(tmp_path):
    (tmp_path / "a.log").write_text("x\n")
    result = logferry("run", str(tmp_path / "a.log"), "--once", "--sink", "http://127.0.0.1:9/in?colour=blue",
                      "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert "unknown option 'colour'" in result.stderr and "Traceback" not in result.stderr


def test_plugins_lists_http_as_loaded():
    result = logferry("plugins", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = [row for row in json.loads(result.stdout) if row["name"] == "http"]
    assert row["status"] == "loaded" and row["distribution"] == "logferry-http"
    assert row["schemes"] == ["http", "https"]
    assert row["hooks"] == ["logferry_make_sink", "logferry_sink_schemes"]


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers (a hung ingest endpoint); counts them."""

    def __init__(self) -> None:
        import socket
        import threading

        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/ingest"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            self.connections.append(conn)

    def stop(self) -> None:
        self._listener.close()
        for conn in self.connections:
            conn.close()


def test_once_against_a_server_that_never_answers_gives_up_after_5_attempts_and_exits_1(tmp_path):
    logs, state = tmp_path / "logs", tmp_path / "state"
    write_lines(logs, files=2, lines=500)
    config = tmp_path / "logferry.toml"
    config.write_text('[output]\nshutdown_timeout = "1s"\n')  # shorter than the 5 attempts: they still run
    silent = SilentServer()
    try:
        result = logferry("run", f"{logs}/*.log", "-c", str(config), "--once", "--state-dir", str(state),
                          "--sink", silent.url + "?timeout=300ms&retries=0", timeout=120)
        attempts = len(silent.connections)
    finally:
        silent.stop()
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "gave up after 5 attempts (no answer within 0.3s (1 request))" in last, last
    assert "bytes of 2 files were not acknowledged by" in last and "read again next run" in last, last
    assert attempts == 5  # one request an attempt (retries=0): exactly what the message says

    healthy = Server().start()
    try:  # nothing was checkpointed: the next run ships every line
        code, err = run_once(logs, state, healthy.url)
    finally:
        healthy.stop()
    assert code == 0, err
    assert sum(len(r.json_lines()) for r in healthy.stored) == 1000
