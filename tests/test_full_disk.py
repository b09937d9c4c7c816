"""A full disk under the file sink: a failed write is cut back to the last complete line before it is
retried, so the output never holds a torn line. On a real tmpfs (mounting needs root, as in CI)."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Daemon, cli, count_lines, lines, tmpfs, wait_until
from logferry import Batch, SinkError
from logferry.sinks.file import FileSink


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs: a disk that fills up."""
    with tmpfs(tmp_path / "tmpfs", "2m") as mnt:
        yield mnt


def grow(mnt: Path) -> None:
    """Free space the way an operator would: make the file system bigger."""
    subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)


def batch(data: bytes, offset: int = 0) -> Batch:
    return Batch("/in/a.log", "f1", offset, offset + len(data), data)


def test_a_full_disk_tears_no_line_and_every_line_arrives_once_space_is_freed(small_tmpfs: Path,
                                                                            tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    inputs = [tmp_path / "in" / f"f{n}.log" for n in range(2)]
    for n, path in enumerate(inputs):  # 2 × 2 MB: does not fit in the 2 MiB output file system
        path.write_bytes(b"".join(b"f%d %08d %s\n" % (n, i, b"x" * 90) for i in range(20_000)))
    whole_lines = {line for path in inputs for line in path.read_bytes().splitlines()}
    out, log = small_tmpfs / "out.log", tmp_path / "run.err"

    daemon = Daemon(str(tmp_path / "in" / "*.log"), "--sink", f"file:{out}",
                    "--state-dir", str(tmp_path / "state"), log=log)
    try:
        wait_until(lambda: "retrying the batch" in log.read_text(), timeout=60)
        grow(small_tmpfs)
        wait_until(lambda: count_lines(out) >= len(whole_lines), timeout=120)
    finally:
        code, _ = daemon.stop()
    assert code == 0, log.read_text()
    assert "No space left on device" in log.read_text()

    verified = cli("verify", str(out), *map(str, inputs))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    data = out.read_bytes()
    assert data.endswith(b"\n")
    torn = [line[:120] for line in data.splitlines() if line not in whole_lines]
    assert not torn, torn


def test_the_sink_raising_on_a_full_disk_leaves_its_output_at_a_line_boundary(small_tmpfs: Path) -> None:
    out = small_tmpfs / "out.log"
    sink = FileSink("x", str(out))
    first, big = lines("first", 1000), lines("big", 250_000)  # big: 3.4 MB, more than the disk

    async def main() -> None:
        await sink.start()
        await sink.send(batch(first))
        with pytest.raises(SinkError, match="No space left on device"):
            await sink.send(batch(big, len(first)))
        assert out.read_bytes() == first  # nothing of the failed write stayed
        grow(small_tmpfs)
        await sink.send(batch(big, len(first)))  # the retry
        await sink.stop()

    asyncio.run(main())
    assert out.read_bytes() == first + big


def test_a_once_run_against_a_disk_that_stays_full_gives_up_at_a_line_boundary(small_tmpfs: Path,
                                                                              tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 300_000))  # 2.7 MB
    out = small_tmpfs / "out.log"
    run = cli("run", str(tmp_path / "in" / "*.log"), "--once", "--sink", f"file:{out}",
              "--state-dir", str(tmp_path / "state"))
    assert run.returncode == 1, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert f"gave up after 5 attempts (cannot write to {out}: No space left on device" in last, last
    assert "of 1 file were not acknowledged" in last, last
    assert "Traceback" not in run.stderr
    data = out.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    assert lines("a", 300_000).startswith(data)


def test_when_the_cut_back_fails_nothing_is_appended_until_a_later_attempt_cuts_it(small_tmpfs: Path) -> None:
    """An append-only output (chattr +a) refuses ftruncate: the sink then refuses to write after the
    torn tail, and the first attempt once the cut works removes it before writing."""
    out = small_tmpfs / "out.log"
    out.touch()
    if subprocess.run(["chattr", "+a", str(out)], capture_output=True).returncode:
        pytest.skip("chattr +a is not supported here")
    sink = FileSink("x", str(out))
    first, big = lines("first", 1000), lines("big", 250_000)

    async def main() -> None:
        await sink.start()
        await sink.send(batch(first))
        with pytest.raises(SinkError, match="No space left on device"):
            await sink.send(batch(big, len(first)))  # torn, and it cannot be cut back
        grow(small_tmpfs)
        with pytest.raises(SinkError, match="cannot cut .* back to its last complete line"):
            await sink.send(batch(big, len(first)))
        subprocess.run(["chattr", "-a", str(out)], check=True)
        await sink.send(batch(big, len(first)))
        await sink.stop()

    try:
        asyncio.run(main())
    finally:
        subprocess.run(["chattr", "-a", str(out)], check=True)
    assert out.read_bytes() == first + big


_FSIZE_CHILD = """
import asyncio, sys
from logferry import Batch, SinkError
from logferry.sinks.file import FileSink

async def main(path):
    sink = FileSink("x", path)
    await sink.start()
    data = b"".join(b"line %06d\\n" % i for i in range(1000))
    try:
        await sink.send(Batch("/in/a.log", "f1", 0, len(data), data))
    except SinkError as exc:
        print(exc)
    await sink.stop()

asyncio.run(main(sys.argv[1]))
"""


def test_a_write_past_the_file_size_limit_is_cut_back_to_the_last_complete_line(tmp_path: Path) -> None:
    """EFBIG (RLIMIT_FSIZE) tears a write the way a full disk does; this one needs no root."""
    out = tmp_path / "out.log"
    out.write_bytes(b"before\n")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (5000, resource.RLIM_INFINITY))

    child = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(out)], capture_output=True, text=True,
                           preexec_fn=limit, timeout=60)
    assert child.returncode == 0, child.stderr
    assert "File too large" in child.stdout
    assert out.read_bytes() == b"before\n"
