"""A run's last commit saves every acknowledged offset, even when a commit that the bytes in flight
asked for was still waiting as the run stopped (it was cancelled with its records in hand)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli


def test_once_saves_the_final_offset_every_time(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"".join(b"line %07d %s\n" % (n, b"x" * 80) for n in range(18_000)))  # 1.7 MB
    config = tmp_path / "c.toml"
    config.write_text(f'[output]\nmax_inflight_bytes = "1MiB"\n[[sinks]]\nurl = "file:{tmp_path / "out.log"}"\n'
                      f'fsync = true\n')
    for run in range(6):
        state = tmp_path / f"state{run}"
        result = cli("run", str(log), "-c", str(config), "--once", "--state-dir", str(state))
        assert result.returncode == 0, result.stderr
        shown = json.loads(cli("sources", str(log), "--state-dir", str(state), "--json").stdout)
        assert shown["files"][0]["offset"] == log.stat().st_size, f"run {run}: {shown['files'][0]}"
