"""The plugin through the real ``logferry`` command: a ``[plugins.kubernetes]`` table, no paths,
kubelet's and Docker's files in tmp_path, records checked field by field."""

from __future__ import annotations

import gzip
import os
import json
import subprocess
from pathlib import Path

from .node import LOGFERRY, UID, Node
from .runtimes import Clock, cri, docker

CONTAINER_ID = "9a" * 32


def test_plugins_lists_kubernetes_with_its_decoders_and_table() -> None:
    done = subprocess.run([*LOGFERRY, "plugins", "--json"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    [row] = [p for p in json.loads(done.stdout) if p["name"] == "kubernetes"]
    assert row["status"] == "loaded" and row["distribution"] == "logferry-kubernetes"
    assert row["processors"] == ["cri", "docker"] and row["tables"] == ["kubernetes"]


def test_a_table_without_paths_ships_pods_and_docker_logs_decoded_with_their_fields(tmp_path: Path) -> None:
    node = Node(tmp_path)
    clock = Clock()
    web = node.container_dir()
    long_line = b"L" * 40_000  # containerd cuts it at 16 KiB: P, P, F
    rotated = cri(b"from the rotation\n", clock=clock)
    current = (cri(b"GET / 200\n", clock=clock) + cri(long_line + b"\n", clock=clock)
               + cri(b"oops\n", "stderr", clock))
    (web / "0.log.20240501-095959").write_bytes(rotated)
    # an older rotation, compressed, never followed: read once, decompressed
    (web / "0.log.20240501-095900.gz").write_bytes(gzip.compress(cri(b"from the compressed rotation\n", clock=clock)))
    older = (web / "0.log.20240501-095959").stat().st_mtime - 60  # a log's files are read oldest first (mtime)
    os.utime(web / "0.log.20240501-095900.gz", (older, older))
    (web / "0.log").write_bytes(current)
    restarted = node.container_dir() / "1.log"
    restarted.write_bytes(cri(b"after the restart\n", clock=clock))
    docker_log = node.docker_dir(CONTAINER_ID) / f"{CONTAINER_ID}-json.log"
    docker_log.write_bytes(docker(b"D" * 20_000 + b"\n", "stdout", clock) + docker(b"docker err\n", "stderr", clock))
    (docker_log.parent / "config.v2.json").write_text("{}")  # not a log

    run = node.run_once()
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "WARNING" not in run.stderr, run.stderr
    records = node.records()
    by_line = {r["line"]: r for r in records}
    assert sorted(by_line) == sorted(["from the compressed rotation", "from the rotation", "GET / 200",
                                      long_line.decode(), "oops",
                                      "after the restart", "D" * 20_000, "docker err"])
    pod = {"namespace": "shop", "pod": "web-7d4b9c-x2x9q", "pod_uid": UID, "container": "web"}
    for line, stream in [("GET / 200", "stdout"), (long_line.decode(), "stdout"), ("oops", "stderr"),
                         ("from the rotation", "stdout"), ("after the restart", "stdout"),
                         ("from the compressed rotation", "stdout")]:
        record = by_line[line]
        assert {k: record.get(k) for k in [*pod, "stream"]} == {**pod, "stream": stream}
    assert by_line["D" * 20_000]["container_id"] == CONTAINER_ID and by_line["docker err"]["stream"] == "stderr"
    assert "namespace" not in by_line["docker err"]
    # the joined record: the first chunk's offset (so its id) and time
    first_chunk = current.splitlines(keepends=True)[1]
    assert by_line[long_line.decode()]["offset"] == len(current.splitlines(keepends=True)[0])
    assert by_line[long_line.decode()]["ts"] == first_chunk.split(b" ")[0].decode()[:23] + "Z"
    # in order per file: the rotation (an older file of 0.log's lineage) before 0.log's own lines
    lines = [r["line"] for r in records]
    assert lines.index("from the compressed rotation") < lines.index("from the rotation") < lines.index("GET / 200") \
        < lines.index(long_line.decode())

    again = node.run_once()  # a clean run checkpointed everything: nothing twice
    assert again.returncode == 0, again.stderr
    assert len(node.records()) == len(records)


def test_the_runtimes_time_is_the_records_ts(tmp_path: Path) -> None:
    node = Node(tmp_path)
    (node.container_dir() / "0.log").write_bytes(b"2024-05-01T12:00:00.987654321+02:00 stdout F zoned\n")
    run = node.run_once()
    assert run.returncode == 0, run.stderr
    [record] = node.records()
    assert record["ts"] == "2024-05-01T10:00:00.988Z"  # JSON records carry milliseconds


def test_namespaces_pods_and_containers_are_chosen_by_globs(tmp_path: Path) -> None:
    node = Node(tmp_path, table='namespaces = ["shop", "kube-*"]\nexclude_namespaces = ["kube-system"]\n'
                                'exclude_pods = ["debug-*"]\nexclude_containers = ["istio-proxy"]\n'
                                'include_docker = false')
    for namespace, pod, container in [("shop", "web-1", "web"), ("shop", "web-1", "istio-proxy"),
                                      ("shop", "debug-x", "sh"), ("kube-system", "dns-1", "dns"),
                                      ("kube-public", "info-1", "info"), ("other", "web-2", "web")]:
        (node.container_dir(namespace, pod, container) / "0.log").write_bytes(
            cri(f"{namespace}/{pod}/{container}\n".encode()))
    (node.docker_dir(CONTAINER_ID) / f"{CONTAINER_ID}-json.log").write_bytes(docker(b"docker\n"))
    run = node.run_once()
    assert run.returncode == 0, run.stderr
    assert sorted(r["line"] for r in node.records()) == ["kube-public/info-1/info", "shop/web-1/web"]


def test_a_message_cut_by_a_rotation_arrives_whole_in_two_records_nothing_lost(tmp_path: Path) -> None:
    """containerd flushes a line it was cutting when kubelet reopens the log (its old writer ends):
    the first part closes the rotated file tagged P, the rest opens the new one."""
    node = Node(tmp_path)
    web = node.container_dir()
    clock = Clock()
    (web / "0.log.20240501-100000").write_bytes(cri(b"before\n", clock=clock) + cri(b"first half", clock=clock, eof=True))
    (web / "0.log").write_bytes(cri(b"second half\n", clock=clock))
    run = node.run_once()
    assert run.returncode == 0, run.stderr
    lines = [r["line"] for r in node.records()]
    assert sorted(lines) == ["before", "first half", "second half"]
    # The rotated file's open message is held until its file is quiet (partial_timeout) or, here, the
    # run's end, while 0.log (the next file of the lineage) ships: it may come after 0.log's first lines.
    assert lines.index("before") < lines.index("first half")


def test_the_decoders_serve_processors_tables_by_hand(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(cri(b"x" * 30 + b"\n", max_line=16) + b"not cri\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[sources]\npaths = ["{logs}/*.log"]\n\n[[processors]]\ntype = "cri"\nmax_bytes = "1KiB"\n\n'
                      f'[[processors]]\ntype = "keep"\nfield = "stream"\npattern = "stdout"\n\n'
                      f'[[sinks]]\nurl = "file:{tmp_path / "out.json"}"\nformat = "json"\n\n'
                      f'[state]\ndir = "{tmp_path / "state"}"\n')
    run = subprocess.run([*LOGFERRY, "run", "-c", str(config), "--once", "--stats"], capture_output=True, text=True, check=False,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in (tmp_path / "out.json").read_text().splitlines()]
    assert [(r["line"], r["stream"]) for r in records] == [("x" * 30, "stdout")]


def test_a_bad_key_or_value_in_the_table_is_one_line_naming_it(tmp_path: Path) -> None:
    for table, named in [("pods_rot = \"/x\"", "pods_rot"), ("partial_timeout = \"soon\"", "partial_timeout"),
                         ("include_docker = \"yes\"", "include_docker")]:
        node = Node(tmp_path / named, table=table)
        run = subprocess.run([*LOGFERRY, "config", "check", "-c", str(node.config)], capture_output=True, text=True, check=False,
                             timeout=60)
        assert run.returncode == 2 and named in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    node = Node(tmp_path / "processor")
    config = node.config.read_text() + '\n[[processors]]\ntype = "docker"\nmax_byte = 10\n'
    node.config.write_text(config)
    run = node.run_once()
    assert run.returncode == 2 and "max_byte" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_without_the_table_the_plugin_follows_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"plain\n")
    run = subprocess.run([*LOGFERRY, "run", f"{logs}/*.log", "--once", "--state-dir", str(tmp_path / "state"),
                          "--sink", f"file:{tmp_path / 'out.log'}"], capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.log").read_bytes() == b"plain\n"
    sources = subprocess.run([*LOGFERRY, "sources", f"{logs}/*.log", "--state-dir", str(tmp_path / "state"), "--json"],
                             capture_output=True, text=True, check=False, timeout=60)
    assert "pods" not in sources.stdout, sources.stdout
