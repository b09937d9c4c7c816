"""Cutting chunks into complete lines: unterminated lines wait, long lines follow the policy,
a changed file is noticed by its guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logferry.files.identity import EMPTY_GUARD, GUARD, digest
from logferry.files.reader import Buffers, LinePolicy, Read, read_size_for, read_step


def read_all(path: Path, policy: LinePolicy, final: bool = False) -> tuple[list[bytes], int, list]:
    fd = os.open(path, os.O_RDONLY)
    pos, guard, discarding, out, pieces = 0, EMPTY_GUARD, False, [], []
    try:
        while True:
            step = read_step(Read(fd, pos, guard, discarding, policy, 1024, final))
            assert not step.truncated
            if not step.pieces:
                return out, pos, pieces
            for piece in step.pieces:
                out.append(bytes(piece.data))
                pieces.append(piece)
                pos, guard = piece.end, piece.guard
            discarding = step.discarding
    finally:
        os.close(fd)


def test_complete_lines_leave_in_one_piece_and_a_partial_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\nthr")
    out, pos, pieces = read_all(path, LinePolicy(1 << 20, "split"))
    assert out == [b"one\ntwo\n"] and pos == 8 and len(pieces) == 1


def test_the_final_read_of_a_drained_file_ships_its_unterminated_line(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\nlast words")
    out, pos, _ = read_all(path, LinePolicy(1 << 20, "split"), final=True)
    assert out == [b"one\n", b"last words\n"] and pos == path.stat().st_size


@pytest.mark.parametrize("policy,expected,dropped", [
    ("split", [b"short\n", b"aaaaaaaaaa\n", b"aaaaaaaaaa\n", b"aaaaa\nafter\n"], 0),
    ("truncate", [b"short\n", b"aaaaaaaaaa\n", b"", b"after\n"], 16),
    ("skip", [b"short\n", b"", b"after\n"], 26),
])
def test_long_lines_in_the_middle_follow_the_policy(tmp_path: Path, policy: str, expected, dropped) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"short\n" + b"a" * 25 + b"\nafter\n")
    out, pos, pieces = read_all(path, LinePolicy(10, policy, read_size=4096))
    assert out == expected
    assert sum(p.dropped for p in pieces) == dropped
    assert pos == path.stat().st_size  # every byte accounted for: the checkpoint covers them


@pytest.mark.parametrize("policy", ["split", "truncate", "skip"])
def test_a_huge_unterminated_line_never_needs_more_than_max_line_in_memory(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"x" * 100_000)  # no newline yet, 10x the maximum
    fd = os.open(path, os.O_RDONLY)
    try:
        step = read_step(Read(fd, 0, EMPTY_GUARD, False, LinePolicy(10_000, policy, read_size=4096), 1024))
    finally:
        os.close(fd)
    assert all(len(p.data) <= 10_001 for p in step.pieces)
    assert step.partial <= 10_000
    if policy != "split":
        assert step.discarding


def test_chunks_of_many_short_lines_with_a_small_max_line_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    data = b"".join(b"%05d\n" % i for i in range(20_000))
    path.write_bytes(data)
    out, _, pieces = read_all(path, LinePolicy(64, "split", read_size=1 << 20))
    assert b"".join(out) == data and len(pieces) == 1


def test_a_rewritten_file_is_noticed_by_the_guard_before_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"a" * 100 + b"\n" + b"more\n")
    guard = digest((b"a" * 100 + b"\n")[-GUARD:])
    path.write_bytes(b"b" * 100 + b"\n" + b"more\n")  # same size, different bytes before offset 101
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_step(Read(fd, 101, guard, False, LinePolicy(1 << 20, "split"), 1024)).truncated
        assert read_step(Read(fd, 500, guard, False, LinePolicy(1 << 20, "split"), 1024)).truncated
    finally:
        os.close(fd)


def test_a_catch_up_read_takes_several_megabytes_in_one_piece_with_its_lines_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    data = b"".join(b"line %07d of a file being caught up\n" % i for i in range(200_000))  # 7.4 MB
    path.write_bytes(data)
    policy = LinePolicy(1 << 20, "split", read_size=read_size_for(16 << 20))
    out, pos, pieces = read_all(path, policy)
    assert b"".join(out) == data and pos == len(data)
    assert len(pieces) == 2  # 4 MiB, then the rest: a line of max_line fits in either
    assert sum(p.lines for p in pieces) == 200_000
    assert [p.lines for p in pieces] == [bytes(p.data).count(b"\n") for p in pieces]


def test_read_size_is_within_a_quarter_of_the_budget_and_one_send_and_1_to_4_mib() -> None:
    assert read_size_for(16 << 20) == 4 << 20
    assert read_size_for(64 << 20) == 4 << 20
    assert read_size_for(8 << 20) == 2 << 20
    assert read_size_for(1 << 20) == 1 << 20
    assert read_size_for(16 << 20, 1_600_000) == 1_600_000  # batches an HTTP sink takes whole
    assert read_size_for(16 << 20, 64 << 10) == 1 << 20


def test_a_read_takes_the_smallest_pooled_buffer_that_holds_it() -> None:
    buffers = Buffers(1 << 20, 4 << 20)
    small, large = buffers.take(300 << 10), buffers.take((1 << 20) + 1)
    assert (len(small), len(large)) == (1 << 20, 4 << 20)
    buffers.give(small)
    buffers.give(large)
    assert buffers.take(1 << 20) is small and buffers.take(4 << 20) is large  # reused, by size
