"""kubelet's rotation under a writing container, with ``logferry run`` following it, stopped and
restarted: every message once, in order per container stream, partials joined, fields right.

The writer is ``kubelet.py``: a container writing numbered messages on stdout and stderr (long ones
cut into P/F chunks, the two streams' chunks interleaved) through a CRI runtime, and kubelet
rotating the log when it reaches 32 KiB (rename to ``0.log.<ts>``, reopen, keep 4 files, gzip
every rotation but the newest), then a container restart (``1.log``). Docker's json-file driver
rotates by its own rules (``-json.log.1``, ``.2``).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from logferry.testing import stop_process

from .node import UID, Node, stop, wait_until
from .runtimes import cri, docker

KUBELET = str(Path(__file__).with_name("kubelet.py"))
MESSAGE = re.compile(r"^(stdout|stderr) seq=(\d{6}) ")
POD = {"namespace": "shop", "pod": "web-7d4b9c-x2x9q", "pod_uid": UID, "container": "web"}


def _status(control: Path) -> dict[str, Any]:
    return json.loads((control / "status.json").read_text())


def _newest_seen(node: Node) -> dict[tuple[int, str], int]:
    """Per (restart, stream): the highest message number shipped so far."""
    seen: dict[tuple[int, str], int] = {}
    for record in node.records():
        match = MESSAGE.match(record["line"])
        if match:
            key = (_restart(record["path"]), match.group(1))
            seen[key] = max(seen.get(key, -1), int(match.group(2)))
    return seen


def _restart(path: str) -> int:
    return int(re.match(r"(\d+)\.log", Path(path).name).group(1))  # type: ignore[union-attr]


def _rotated_is_shipped(node: Node, control: Path) -> bool:
    """Is every message in a file the runtime no longer writes shipped?"""
    seen = _newest_seen(node)
    return all(seen.get((int(n), stream), -1) >= seq
               for n, streams in _status(control)["rotated_up_to"].items() for stream, seq in streams.items())


def _run_rotations_with_a_restart_of_logferry(tmp_path: Path, sig: int, rotations_while_down: int = 1
                                              ) -> tuple[Node, dict[str, Any], str]:
    """Follow kubelet's rotations; stop logferry with ``sig`` at a moment its newest rotation is
    shipped, let kubelet rotate ``rotations_while_down`` times, start it again; wait for every
    message. Returns the node, the writer's truth and logferry's stderr."""
    node = Node(tmp_path, table="include_docker = false")
    container = node.container_dir()
    control = tmp_path / "control"
    control.mkdir()
    (container / "0.log").write_bytes(cri(b"hello\n"))
    errors = tmp_path / "logferry.log"
    logferry = node.follow(errors)
    writer = None
    try:
        wait_until(lambda: any(r["line"] == "hello" for r in node.records()), what="logferry to ship a first line")
        writer = subprocess.Popen([sys.executable, KUBELET, str(container), str(control), "--messages", "3000",
                                   "--rate", "500", "--restart-at", "2000", "--seed", str(sig)])
        wait_until(lambda: (control / "status.json").exists() and _status(control)["rotations"] >= 2,
                   what="two rotations")
        # Pause kubelet, and stop logferry once it has shipped every rotated file: kubelet then
        # compresses nothing logferry has not read (compressed rotations are not read).
        (control / "pause").touch()
        while True:
            rotations = _status(control)["rotations"]
            wait_until(lambda: _rotated_is_shipped(node, control), what="the rotated files to be shipped")
            if _status(control)["rotations"] == rotations:
                break
        assert stop(logferry, sig) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        for _ in range(rotations_while_down):
            rotations = _status(control)["rotations"]
            (control / "rotate").touch()
            wait_until(lambda before=rotations: _status(control)["rotations"] > before,
                       what="a rotation while logferry is down")
        logferry = node.follow(errors)
        # Rotating on before it has read what was rotated while it was down would compress that.
        wait_until(lambda: _rotated_is_shipped(node, control), what="the restarted logferry to ship the rotations")
        (control / "pause").unlink()
        (control / "finish").touch()
        assert writer.wait(timeout=300) == 0
        truth = json.loads((control / "truth.json").read_text())
        wanted = {(int(n), stream): len(texts) - 1 for n, streams in truth.items() for stream, texts in streams.items()}
        wait_until(lambda: all(_newest_seen(node).get(key, -1) >= seq for key, seq in wanted.items()),
                   timeout=300, what="every message")
        assert stop(logferry) == 0
    finally:
        stop_process(logferry, signal.SIGKILL)
        if writer is not None:
            stop_process(writer, signal.SIGKILL)
    assert int((control / "done").read_text()) >= 4  # kubelet rotated (and compressed) along the way
    assert any(p.name.endswith(".gz") for p in container.iterdir())
    return node, truth, errors.read_text()


def _messages(node: Node) -> tuple[dict[tuple[int, str], list[tuple[str, str]]], list[dict[str, Any]]]:
    """Per (restart, stream): (id, line) of each record in output order; and every record."""
    records = [r for r in node.records() if r["line"] != "hello"]
    got: dict[tuple[int, str], list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        got[(_restart(record["path"]), record["stream"])].append((record["id"], record["line"]))
    return got, records


def _check_fields(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert {k: record.get(k) for k in POD} == POD, record
        assert record["line"].startswith(record["stream"])  # each stream's messages stayed apart
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])


def test_rotations_and_a_container_restart_under_a_writer_survive_a_clean_stop_exactly_once(
        tmp_path: Path) -> None:
    node, truth, errors = _run_rotations_with_a_restart_of_logferry(tmp_path, signal.SIGTERM)
    got, records = _messages(node)
    _check_fields(records)
    assert set(got) == {(0, "stdout"), (0, "stderr"), (1, "stdout"), (1, "stderr")}
    for (n, stream), items in got.items():
        assert [line for _, line in items] == truth[str(n)][stream], f"restart {n}, {stream}"
    assert any(len(line) > 64 for _, line in got[(0, "stdout")])  # partials were joined
    assert "Traceback" not in errors and "compressed" not in errors, errors


def test_rotations_under_a_writer_survive_a_kill_nothing_lost_duplicates_only_redelivered(tmp_path: Path) -> None:
    node, truth, errors = _run_rotations_with_a_restart_of_logferry(tmp_path, signal.SIGKILL)
    got, records = _messages(node)
    _check_fields(records)
    for (n, stream), items in got.items():
        firsts = list(dict.fromkeys(items))  # a record shipped again after the kill has the same id
        assert [line for _, line in firsts] == truth[str(n)][stream], f"restart {n}, {stream}"
        assert max(Counter(items).values()) <= 2
    assert "Traceback" not in errors, errors


def test_two_rotations_while_logferry_is_down_lose_nothing_the_compressed_one_included(tmp_path: Path) -> None:
    """The first rotation while it is down renames the partly shipped 0.log, the second compresses it."""
    node, truth, _ = _run_rotations_with_a_restart_of_logferry(tmp_path, signal.SIGTERM, rotations_while_down=2)
    got, records = _messages(node)
    _check_fields(records)
    for (n, stream), items in got.items():
        assert [line for _, line in items] == truth[str(n)][stream], f"restart {n}, {stream}"


def _dockerd(log: Path, messages: int, max_size: int, max_files: int) -> list[str]:
    """dockerd's json-file driver with ``max-size``/``max-file``: write ``messages`` (every tenth
    over 16 KiB, so in chunks), rotating as ``loggerutils`` does: remove ``.<max-file - 1>``, shift
    ``.N`` to ``.N+1``, rename the log to ``.1``, write a new one. Returns the messages."""
    written = []
    out = open(log, "ab", buffering=0)  # noqa: SIM115 - reopened at each rotation
    try:
        for seq in range(messages):
            text = f"stdout seq={seq:06d} " + ("d" * 40_000 if seq % 10 == 0 else "d" * (seq % 50))
            out.write(docker(text.encode() + b"\n"))
            written.append(text)
            if log.stat().st_size >= max_size:
                out.close()
                Path(f"{log}.{max_files - 1}").unlink(missing_ok=True)
                for n in range(max_files - 1, 1, -1):
                    if Path(f"{log}.{n - 1}").exists():
                        Path(f"{log}.{n - 1}").rename(f"{log}.{n}")
                log.rename(f"{log}.1")
                out = open(log, "ab", buffering=0)  # noqa: SIM115
            time.sleep(0.002)
    finally:
        out.close()
    return written


def test_docker_rotations_under_a_writer_lose_nothing_and_join_the_16_KiB_parts(tmp_path: Path) -> None:
    node = Node(tmp_path, table="include_pods = false")
    container_id = "c0" * 32
    log = node.docker_dir(container_id) / f"{container_id}-json.log"
    log.write_bytes(docker(b"hello\n"))
    errors = tmp_path / "logferry.log"
    logferry = node.follow(errors)
    try:
        wait_until(lambda: any(r["line"] == "hello" for r in node.records()), what="logferry to ship a first line")
        written = _dockerd(log, 1500, max_size=256 * 1024, max_files=3)
        wait_until(lambda: len(node.records()) >= len(written) + 1, timeout=300, what="every message")
        assert stop(logferry) == 0
    finally:
        stop_process(logferry, signal.SIGKILL)
    records = node.records()
    assert [r["line"] for r in records] == ["hello", *written]
    assert all(r["container_id"] == container_id and r["stream"] == "stdout" for r in records)
    assert "Traceback" not in errors.read_text()
