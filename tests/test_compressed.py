"""Compressed files a pattern matches that are not read as their content (zstd, lz4, zip: gzip,
bzip2 and xz are, see test_gzip.py) are never shipped as text: they are told by their first bytes,
left out, and said once."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from conftest import append, cli, lines, out_lines, run_engine, wait_for

ZSTD, LZ4, ZIP = b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04"  # their first bytes


def opaque(magic: bytes, size: int = 2000) -> bytes:
    """A file of that format, as far as its first bytes tell (logferry reads no further)."""
    return magic + os.urandom(size)


def test_compressed_files_present_at_start_are_left_out_and_said_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(lines("live", 5))
    (logs / "app.log.1").write_bytes(lines("rotated", 5))
    (logs / "app.log.2.zst").write_bytes(opaque(ZSTD))
    (logs / "app.log.3.lz4").write_bytes(opaque(LZ4))
    (logs / "archive").write_bytes(opaque(ZIP))  # told by its bytes, not its name
    out = tmp_path / "out.log"
    run = cli("run", f"{logs}/*", "--once", "--sink", f"file:{out}", "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 0, run.stderr
    assert sorted(out.read_bytes().splitlines()) == sorted((lines("rotated", 5) + lines("live", 5)).splitlines())
    warnings = [line for line in run.stderr.splitlines() if "compressed" in line]
    assert len(warnings) == 1, run.stderr  # once, however many compressed files
    assert "not followed" in warnings[0] and "exclude" in warnings[0]

    again = cli("run", f"{logs}/*", "--once", "--sink", f"file:{out}", "--state-dir", str(tmp_path / "state"),
                "--exclude", "*.zst", "--exclude", "*.lz4", "--exclude", "archive")
    assert again.returncode == 0 and "compressed" not in again.stderr, again.stderr


def test_a_file_found_empty_that_a_compressor_fills_is_never_shipped(settings, tmp_path: Path) -> None:
    s = settings(str(tmp_path / "in" / "app.log*"))
    log = tmp_path / "in" / "app.log"
    log.write_bytes(lines("a", 10))
    gz = tmp_path / "in" / "app.log.2.zst"

    async def until(engine) -> None:
        await wait_for(lambda: len(out_lines(tmp_path)) == 10)
        gz.write_bytes(b"")  # gzip creates its output, then writes it
        await wait_for(lambda: any(t.path == str(gz) for t in engine.discovery.tracked.values()))
        with open(gz, "ab") as f:
            f.write(opaque(ZSTD, 60_000))
        append(log, lines("a", 10, start=10))
        await wait_for(lambda: len(out_lines(tmp_path)) >= 20)
        await wait_for(lambda: os.stat(gz).st_ino in {k[1] for k in engine.discovery.compressed})

    run_engine(s, until)
    assert out_lines(tmp_path) == lines("a", 20).splitlines()


def test_sources_shows_a_compressed_file_as_left_out_and_why(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(lines("live", 5))
    (logs / "app.log.2.zst").write_bytes(opaque(ZSTD, 50))
    (logs / "app.log.3.gz").write_bytes(gzip.compress(lines("old", 50)))  # read as its content
    result = cli("sources", f"{logs}/app.log*", "--state-dir", str(tmp_path / "state"), "--json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert [f["path"] for f in view["files"]] == [str(logs / "app.log"), str(logs / "app.log.3.gz")]
    assert {(lo["path"], lo["reason"], lo["detail"]) for lo in view["left_out"]} == {
        (str(logs / "app.log.2.zst"), "compressed", "zstd")}
