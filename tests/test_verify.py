"""``logferry verify`` counts missing, duplicated and out-of-order lines per input."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli
from logferry.commands.verify import verify_files


def test_counts_missing_duplicated_and_out_of_order(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a.write_bytes(b"a1\na2\na3\na4\n")
    b.write_bytes(b"b1\nb2\n")
    out.write_bytes(b"b1\na1\na3\na2\nb2\nb2\nforeign\n")
    report = verify_files(str(out), [str(a), str(b)])
    ra, rb = report.inputs
    assert (ra.missing, ra.duplicated, ra.out_of_order) == (1, 0, 1)
    assert (rb.missing, rb.duplicated, rb.out_of_order) == (0, 1, 0)
    assert report.foreign == 1 and not report.ok
    result = cli("verify", str(out), str(a), str(b))
    assert result.returncode == 1
    assert "1 missing, 0 duplicated, 1 out of order" in result.stdout


def test_repeated_lines_are_expected_as_often_as_they_occur(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a.write_bytes(b"ok\nok\nx\n")
    b.write_bytes(b"ok\n")
    out.write_bytes(b"ok\nok\nok\nx\n")
    assert verify_files(str(out), [str(a), str(b)]).ok


def test_json_output_is_compared_by_its_line_field(tmp_path: Path) -> None:
    a, out = tmp_path / "a", tmp_path / "out"
    a.write_bytes(b"x\n\xff\n")
    out.write_text('{"line": "x"}\n{"line": "\\ufffd"}\n')
    assert verify_files(str(out), [str(a)], "json").ok
    result = cli("verify", "--format", "json", str(a), str(a))
    assert result.returncode == 1 and "not a JSON record" in result.stderr


def test_the_first_lines_of_each_kind_are_shown_with_their_input_offsets(tmp_path: Path) -> None:
    a, out = tmp_path / "a", tmp_path / "out"
    a.write_bytes(b"".join(b"line-%02d\n" % i for i in range(10)) + b"long-" + b"x" * 100 + b"\n")
    # 03 before 02; 04 to 08 and the long line missing; 09 twice
    out.write_bytes(b"line-00\nline-01\nline-03\nline-02\nline-09\nline-09\n")
    result = cli("verify", str(out), str(a))
    assert result.returncode == 1
    assert result.stdout.splitlines()[1:] == [
        f"  FAIL  {a}: 11 lines: 6 missing, 1 duplicated, 1 out of order",
        "          missing       input offset 32: 'line-04'",
        "          missing       input offset 40: 'line-05'",
        "          missing       input offset 48: 'line-06'",
        "          missing       … and 3 more",
        "          duplicated    input offset 72: 'line-09' (again at OUTPUT line 6)",
        "          out of order  input offset 24: 'line-03' (at OUTPUT line 3)",
        "verify: FAILED for 1 of 1 inputs",
    ]
    out.write_bytes(b"line-00\n")
    (rep,) = verify_files(str(out), [str(a)]).inputs
    assert rep.missing == 10 and [(e.offset, e.line) for e in rep.missing_examples] == [
        (8, b"line-01"), (16, b"line-02"), (24, b"line-03")]


def test_a_long_missing_line_is_shown_cut(tmp_path: Path) -> None:
    a, out = tmp_path / "a", tmp_path / "out"
    a.write_bytes(b"x\n" + b"y" * 100 + b"\n")
    out.write_bytes(b"x\n")
    result = cli("verify", str(out), str(a))
    assert f"          missing       input offset 2: '{'y' * 59}…'" in result.stdout.splitlines()


def test_json_output_examples_carry_the_raw_input_offsets(tmp_path: Path) -> None:
    a, out = tmp_path / "a", tmp_path / "out"
    a.write_bytes("é\nb\nc\n".encode())
    out.write_text('{"line": "c"}\n{"line": "é"}\n')
    report = verify_files(str(out), [str(a)], "json")
    (rep,) = report.inputs
    assert [(e.offset, e.line) for e in rep.missing_examples] == [(3, b"b")]  # é is 2 bytes
    assert [(e.offset, e.output_line) for e in rep.out_of_order_examples] == [(5, 1)]


@pytest.mark.parametrize("case", ["missing input", "input is a directory", "missing output", "output is a directory"])
def test_a_file_that_cannot_be_read_is_one_clear_line_and_exit_code_2(tmp_path: Path, case: str) -> None:
    a, out = tmp_path / "a.log", tmp_path / "out"
    a.write_bytes(b"x\n")
    out.write_bytes(b"x\n")
    (tmp_path / "dir").mkdir()
    args, message = {
        "missing input": ((out, tmp_path / "nope.log"), f"INPUT {tmp_path / 'nope.log'}: no such file"),
        "input is a directory": ((out, tmp_path / "dir"),
                                 f"INPUT {tmp_path / 'dir'} is a directory: give its files, e.g. {tmp_path}/dir/*.log"),
        "missing output": ((tmp_path / "nope", a), f"OUTPUT {tmp_path / 'nope'}: no such file"),
        "output is a directory": ((tmp_path / "dir", a), f"OUTPUT {tmp_path / 'dir'} is a directory: give the file "
                                                         "shipped to"),
    }[case]
    result = cli("verify", *map(str, args))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"logferry: error: {message}\n"


def test_verify_help_says_what_output_and_input_are() -> None:
    result = cli("verify", "--help")
    text = " ".join(result.stdout.split())
    assert "OUTPUT the file logferry shipped to (a file: sink's path)" in text
    assert "INPUT the log files logferry followed" in text
