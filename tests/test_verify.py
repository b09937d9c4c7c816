"""``logferry verify`` counts missing, duplicated and out-of-order lines per input."""

from __future__ import annotations

from pathlib import Path

from conftest import cli
from logferry.verify import verify_files


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
