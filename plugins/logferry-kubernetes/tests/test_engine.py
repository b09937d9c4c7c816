"""The plugin inside an embedded engine in asyncio debug mode: the decoders run on the processing
thread, and nothing of the plugin holds the event loop."""

from __future__ import annotations

import json
from pathlib import Path

from logferry import Settings, SinkSpec
from logferry.engine import Engine
from logferry.plugins import get_plugin_manager
from logferry.testing import run_without_blocking

from .node import Node
from .runtimes import Clock, cri, docker


def test_a_node_of_logs_ships_without_blocking_the_loop(tmp_path: Path) -> None:
    node = Node(tmp_path)
    clock = Clock()
    for n in range(20):
        body = b"".join(cri(f"pod {n} line {i} ".encode() + b"y" * (i % 300) + b"\n",
                            "stdout" if i % 4 else "stderr", clock, max_line=128) for i in range(1500))
        (node.container_dir(pod=f"web-{n}") / "0.log").write_bytes(body)
    cid = "ab" * 32
    (node.docker_dir(cid) / f"{cid}-json.log").write_bytes(
        b"".join(docker(f"docker {i} ".encode() + b"z" * 20_000 + b"\n", clock=clock) for i in range(200)))
    settings = Settings(plugin_tables={"kubernetes": {"pods_root": str(node.pods),
                                                      "containers_root": str(node.containers)}},
                        sinks=[SinkSpec(f"file:{node.out}", {"format": "json"})], state_dir=node.state, once=True)
    host = get_plugin_manager(allowed={"logferry-kubernetes"}, blocked=set())  # imports: before the loop runs
    engine = Engine(settings, host=host)
    run_without_blocking(engine.run)
    records = [json.loads(line) for line in node.out.read_text().splitlines()]
    assert len(records) == 20 * 1500 + 200
    assert sum(1 for r in records if r.get("container_id") == cid and len(r["line"]) > 20_000) == 200
    assert {r["pod"] for r in records if "pod" in r} == {f"web-{n}" for n in range(20)}
