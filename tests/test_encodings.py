"""``[sources] encoding`` and per-source encodings: files in UTF-16/32, latin-1, Shift_JIS… arrive
as the same text in UTF-8, cut into lines at the newline *of their encoding*, with byte offsets.

Ported from the peers' suites: Filebeat's ``TestFilestreamUTF16BOMs`` and ``test_encodings`` (a
file per encoding, BOMs), Fluent Bit's big5/sjis/utf16 tail tests (a file written in pieces).
"""

from __future__ import annotations

import codecs
import json
import os
import time
from pathlib import Path

import pytest

from conftest import Daemon, append, cli, wait_until

TEXT = ["héllo wörld", "日本語のログ行", "Zeile drei: ÄÖÜ ß", "plain ascii", "", "ending"]

# (encoding as configured, codec the file is written in, BOM written first)
CASES = {
    "utf-16le-bom": ("utf-16", "utf-16-le", codecs.BOM_UTF16_LE),
    "utf-16be-bom": ("utf-16", "utf-16-be", codecs.BOM_UTF16_BE),
    "utf-16-no-bom": ("utf-16", "utf-16-le", b""),  # little-endian without a BOM, as Windows writes it
    "utf-16be-declared": ("utf-16-be", "utf-16-be", b""),
    "utf-16le-declared-with-bom": ("utf-16-le", "utf-16-le", codecs.BOM_UTF16_LE),
    "utf-32le-bom": ("utf-32", "utf-32-le", codecs.BOM_UTF32_LE),
    "utf-32be-bom": ("utf-32", "utf-32-be", codecs.BOM_UTF32_BE),
    "utf-8-bom": ("utf-8", "utf-8", codecs.BOM_UTF8),
    "latin-1": ("latin-1", "latin-1", b""),
    "cp1252": ("cp1252", "cp1252", b""),
    "shift_jis": ("shift_jis", "shift_jis", b""),
    "euc-jp": ("euc-jp", "euc-jp", b""),
    "gbk": ("gbk", "gbk", b""),
    "big5": ("big5", "big5", b""),
    "euc-kr": ("euc-kr", "euc-kr", b""),
}
LATIN = ["café au lait", "naïve façade", "Ünïcödé", ""]
CJK = {"shift_jis": ["日本語のログ", "カタカナ ｶﾀｶﾅ", "表示"], "euc-jp": ["日本語のログ", "カタカナ"],
       "gbk": ["中文日志", "简体字"], "big5": ["中文日誌", "繁體字"], "euc-kr": ["한국어 로그", "두번째"]}


def texts(case: str) -> list[str]:
    encoding = CASES[case][1]
    if encoding in ("latin-1", "cp1252"):
        return LATIN + (["€ cost"] if encoding == "cp1252" else [])
    return CJK.get(encoding, TEXT)


def encoded(case: str, lines: list[str]) -> bytes:
    _, codec, bom = CASES[case]
    return bom + "".join(line + "\n" for line in lines).encode(codec)


def config(tmp_path: Path, encoding: str, *, paths: str = "in/*.log", fmt: str = "json", extra: str = "") -> Path:
    path = tmp_path / "logferry.toml"
    path.write_text(f'[sources]\npaths = ["{tmp_path / paths}"]\nencoding = "{encoding}"\nscan_interval = "100ms"\n'
                    f'poll_interval = "50ms"\n{extra}\n[output]\nformat = "{fmt}"\n'
                    f'[[sinks]]\nurl = "file:{tmp_path / "out.log"}"\n[state]\ndir = "{tmp_path / "state"}"\n'
                    f'commit_interval = "100ms"\n')
    return path


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out.log").read_bytes().splitlines()]


def byte_offsets(data: bytes, bom: bytes, codec: str, lines: list[str]) -> list[int]:
    offsets, at = [], len(bom)
    for line in lines:
        offsets.append(at)
        at += len((line + "\n").encode(codec))
    assert at == len(data)
    return offsets


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_in_each_encoding_arrives_as_the_same_text_in_utf8_at_its_byte_offsets(tmp_path: Path,
                                                                                      case: str) -> None:
    (tmp_path / "in").mkdir()
    lines = texts(case)
    data = encoded(case, lines)
    (tmp_path / "in" / "a.log").write_bytes(data)
    result = cli("run", "-c", str(config(tmp_path, CASES[case][0])), "--once")
    assert result.returncode == 0, result.stderr
    got = records(tmp_path)
    assert [r["line"] for r in got] == lines  # no BOM, no stray NUL bytes, nothing replaced
    assert [r["offset"] for r in got] == byte_offsets(data, CASES[case][2], CASES[case][1], lines)


@pytest.mark.parametrize("case", ["utf-16le-bom", "utf-16be-bom", "shift_jis", "latin-1"])
def test_raw_output_is_the_text_in_utf8(tmp_path: Path, case: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(encoded(case, texts(case)))
    result = cli("run", "-c", str(config(tmp_path, CASES[case][0], fmt="raw")), "--once")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.log").read_bytes() == "".join(line + "\n" for line in texts(case)).encode()


def test_a_utf8_bom_is_never_shipped_whatever_the_format(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes(codecs.BOM_UTF8 + b"first\nsecond\n")
    (tmp_path / "in" / "b.log").write_bytes(b"no bom\n\xef\xbb\xbfa BOM inside a file is text\n")
    result = cli("run", "-c", str(config(tmp_path, "utf-8", fmt="raw")), "--once")
    assert result.returncode == 0, result.stderr
    out = (tmp_path / "out.log").read_bytes()
    assert sorted(out.splitlines()) == sorted([b"first", b"second", b"no bom", b"\xef\xbb\xbfa BOM inside a file is text"])


def test_a_utf16_newline_across_two_characters_does_not_end_a_line(tmp_path: Path) -> None:
    """U+0A41 U+0100 is ``41 0A 00 01`` in UTF-16LE: ``0A 00`` at an odd offset is not a newline."""
    (tmp_path / "in").mkdir()
    tricky = ["ਁĀ and ਁĀ again", "੨Ā", "next"]
    data = codecs.BOM_UTF16_LE + "".join(line + "\n" for line in tricky).encode("utf-16-le")
    assert any(data.startswith(b"\n\x00", i) for i in range(1, len(data), 2))  # the trap is there
    (tmp_path / "in" / "a.log").write_bytes(data)
    result = cli("run", "-c", str(config(tmp_path, "utf-16")), "--once")
    assert result.returncode == 0, result.stderr
    assert [r["line"] for r in records(tmp_path)] == tricky


def test_bytes_the_encoding_cannot_read_become_u_fffd_in_their_line_only(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    good = "日本語".encode("shift_jis")
    (tmp_path / "in" / "a.log").write_bytes(good + b"\n\x81\n" + b"\xff\xfe ok\n" + good + b"\n")
    result = cli("run", "-c", str(config(tmp_path, "shift_jis")), "--once")
    assert result.returncode == 0, result.stderr
    got = [r["line"] for r in records(tmp_path)]
    assert len(got) == 4 and got[0] == got[3] == "日本語"
    assert "\ufffd" in got[1] and got[2].endswith(" ok")


def test_long_utf16_lines_are_split_on_character_boundaries(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    line = "".join(chr(0x4E00 + i) for i in range(300))  # 600 bytes in UTF-16
    (tmp_path / "in" / "a.log").write_bytes(codecs.BOM_UTF16_LE + (line + "\nshort\n").encode("utf-16-le"))
    result = cli("run", "-c", str(config(tmp_path, "utf-16", extra='max_line_bytes = 101')), "--once")
    assert result.returncode == 0, result.stderr
    got = [r["line"] for r in records(tmp_path)]
    assert "".join(got[:-1]) == line and got[-1] == "short"
    assert all(len(piece) <= 50 and "\ufffd" not in piece for piece in got)


def test_a_growing_utf16_file_written_byte_by_byte_ships_whole_lines_and_resumes_after_a_restart(
    tmp_path: Path,
) -> None:
    """A writer that flushes mid-character and mid-newline: only whole lines leave, each once; a
    restart resumes at the byte offset it saved."""
    (tmp_path / "in").mkdir()
    log = tmp_path / "in" / "a.log"
    log.write_bytes(b"")
    cfg = config(tmp_path, "utf-16")
    first = [f"zeile {n} ÄÖÜ 日本" for n in range(20)]
    data = codecs.BOM_UTF16_LE + "".join(line + "\n" for line in first).encode("utf-16-le")
    daemon = Daemon("-c", str(cfg))
    try:
        for at in range(0, len(data), 3):  # odd-sized writes: BOM, characters and newlines cut in two
            append(log, data[at:at + 3])
            if at % 99 == 0:
                time.sleep(0.01)
        wait_until(lambda: (tmp_path / "out.log").exists() and len(records(tmp_path)) >= len(first), timeout=60)
        wait_until(lambda: _saved(tmp_path) == len(data), timeout=60)
    finally:
        assert daemon.stop()[0] == 0
    assert [r["line"] for r in records(tmp_path)] == first
    more = ["after the restart", "zwei"]
    append(log, "".join(line + "\n" for line in more).encode("utf-16-le"))
    result = cli("run", "-c", str(cfg), "--once")
    assert result.returncode == 0, result.stderr
    assert [r["line"] for r in records(tmp_path)] == first + more  # nothing twice, nothing garbled


def _saved(tmp_path: Path) -> int:
    result = cli("sources", "-c", str(tmp_path / "logferry.toml"), "--json")
    files = json.loads(result.stdout)["files"] if result.returncode == 0 else []
    return files[0]["offset"] if files else -1


def test_a_source_table_has_its_own_encoding_fields_and_processors_beside_plain_paths(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "legacy").mkdir()
    (tmp_path / "in" / "app.log").write_bytes(b'{"level":"info","msg":"utf-8 line"}\n')
    (tmp_path / "legacy" / "old.log").write_bytes('level=info msg="café"\nlevel=debug msg=noise\n'.encode("latin-1"))
    extra = f'''
[[sources.files]]
name = "legacy"
paths = ["{tmp_path / 'legacy' / '*.log'}"]
encoding = "latin-1"
fields = {{ app = "legacy" }}
[[sources.files.processors]]
type = "logfmt"
'''
    processors = '\n[[processors]]\ntype = "drop"\nfield = "level"\npattern = "^debug$"\n'
    cfg = config(tmp_path, "utf-8", extra=extra)
    cfg.write_text(cfg.read_text() + processors)
    result = cli("run", "-c", str(cfg), "--once")
    assert result.returncode == 0, result.stderr
    got = {r["path"]: r for r in records(tmp_path)}
    legacy = got[str(tmp_path / "legacy" / "old.log")]
    assert (legacy["line"], legacy["msg"], legacy["app"]) == ('level=info msg="café"', "café", "legacy")
    assert len(got) == 2  # the source's logfmt ran before the global drop: the debug line was dropped
    assert got[str(tmp_path / "in" / "app.log")]["line"] == '{"level":"info","msg":"utf-8 line"}'
    assert "app" not in got[str(tmp_path / "in" / "app.log")]  # a table's fields are its own
    shown = cli("sources", "-c", str(cfg))
    assert "legacy (iso8859-1)" in shown.stdout, shown.stdout


def test_a_file_two_sources_match_belongs_to_the_first(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.log").write_bytes("für\n".encode("latin-1"))
    extra = f'[[sources.files]]\npaths = ["{tmp_path / "in" / "a.log"}"]\nencoding = "latin-1"\n' \
            f'[[sources.files]]\npaths = ["{tmp_path / "in" / "*.log"}"]\nfields = {{ second = true }}\n'
    result = cli("run", "-c", str(config(tmp_path, "utf-8", extra=extra)), "--once")
    assert result.returncode == 0, result.stderr
    assert [(r["line"], "second" in r) for r in records(tmp_path)] == [("für", False)]


@pytest.mark.parametrize(("value", "message"), [
    ('"klingon"', "'klingon' is not a text encoding"),
    ('"base64"', "'base64' is not a text encoding"),
    ("8", "expected an encoding name"),
])
def test_a_bad_encoding_is_an_error_naming_the_key(tmp_path: Path, value: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[sources]\npaths = ["{tmp_path}/*.log"]\nencoding = {value}\n')
    result = cli("config", "check", "-c", str(cfg))
    assert result.returncode == 2 and "[sources] encoding" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    cfg.write_text(f'[[sources.files]]\npaths = ["{tmp_path}/*.log"]\nencoding = {value}\n')
    result = cli("config", "check", "-c", str(cfg))
    assert result.returncode == 2 and "[[sources.files]] #1 encoding" in result.stderr, result.stderr


def test_a_source_table_with_an_unknown_key_or_no_paths_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[sources.files]]\npaths = ["/x/*.log"]\nencodng = "latin-1"\n')
    result = cli("config", "check", "-c", str(cfg))
    assert result.returncode == 2 and "unknown key 'encodng'" in result.stderr, result.stderr
    cfg.write_text('[[sources.files]]\nencoding = "latin-1"\n')
    result = cli("config", "check", "-c", str(cfg))
    assert result.returncode == 2 and "[[sources.files]] #1 paths" in result.stderr, result.stderr


def test_config_show_prints_source_tables_that_check_accepts(tmp_path: Path) -> None:
    extra = f'[[sources.files]]\npaths = ["{tmp_path}/x/*.log"]\nencoding = "utf-16"\nfields = {{ a = "b" }}\n' \
            '[[sources.files.processors]]\ntype = "json"\n'
    cfg = config(tmp_path, "latin-1", extra=extra)
    shown = cli("config", "show", "-c", str(cfg))
    assert shown.returncode == 0, shown.stderr
    again = tmp_path / "shown.toml"
    again.write_text(shown.stdout)
    checked = cli("config", "check", "-c", str(again))
    assert checked.returncode == 0, checked.stderr + shown.stdout
    assert 'encoding = "utf-16"' in shown.stdout and 'encoding = "iso8859-1"' in shown.stdout
    assert os.path.getsize(again) > 0
