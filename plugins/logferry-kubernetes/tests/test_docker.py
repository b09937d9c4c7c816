"""The ``docker`` decoder on lines exactly as dockerd's json-file driver writes them."""

from __future__ import annotations

import pytest

from logferry_kubernetes.decoders import Docker

from .decoding import CONTAINER_ID, DOCKER_LOG, decode, raw, records_of
from .runtimes import Clock, docker


def test_each_entry_becomes_its_message_with_dockers_time_and_the_container_id() -> None:
    data = (b'{"log":"GET /health 200\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}\n'
            b'{"log":"warning\\n","stream":"stderr","time":"2024-05-01T10:00:00.5Z"}\n'
            b'{"log":"\\n","stream":"stdout","time":"2024-05-01T10:00:01Z"}\n')
    out = decode(Docker(1 << 20), data, DOCKER_LOG)
    assert [r.line for r in out] == ["GET /health 200", "warning", ""]
    assert [r.fields for r in out] == [{"container_id": CONTAINER_ID, "stream": s} for s in ("stdout", "stderr", "stdout")]
    assert out[0].ts == pytest.approx(1714557600.123456789, abs=5e-7)
    assert [out[1].ts, out[2].ts] == [1714557600.5, 1714557601.0]


def test_dockers_escapes_come_back_as_the_text_the_container_wrote() -> None:
    text = 'a "quoted" <b> & c\\d\ttab\x01 \u2028 \u2029 日本 \x7f'
    data = docker(text.encode() + b"\n")
    assert b"\\u003cb\\u003e" in data and b"\\u0026" in data and b"\\u2028" in data and b"\\u0001" in data
    [record] = decode(Docker(1 << 20), data, DOCKER_LOG)
    assert record.line == text


def test_bytes_that_are_not_utf8_arrive_as_docker_wrote_them_replacement_characters() -> None:
    [record] = decode(Docker(1 << 20), docker(b"bad \xff\xe6\x97 bytes\n"), DOCKER_LOG)
    assert record.line == "bad \ufffd\ufffd\ufffd bytes"


def test_a_line_cut_at_16_KiB_by_dockerd_is_one_record_at_its_first_chunks_offset() -> None:
    clock = Clock()
    line = bytes(range(97, 123)) * 1600  # 41,600 bytes: 16384 + 16384 + 8832
    data = docker(b"before\n", clock=clock) + docker(line + b"\n", clock=clock) + docker(b"after\n", clock=clock)
    entries = data.splitlines()
    assert len(entries) == 5 and entries[1].startswith(b'{"log":"abc') and b'\\n"' not in entries[1]
    decoder = Docker(1 << 20)
    out = decode(decoder, data, DOCKER_LOG)
    assert [len(r.line) for r in out] == [6, len(line), 5]
    assert raw(out[1]) == line and out[1].offset == len(entries[0]) + 1
    assert decoder.tally.joined == 2


def test_interleaved_partials_of_stdout_and_stderr_are_joined_per_stream() -> None:
    clock = Clock()
    out_chunks = docker(b"O" * 40 + b"\n", "stdout", clock, chunk=16).splitlines(keepends=True)
    err_chunks = docker(b"E" * 20 + b"\n", "stderr", clock, chunk=16).splitlines(keepends=True)
    data = b"".join([out_chunks[0], err_chunks[0], out_chunks[1], err_chunks[1], out_chunks[2]])
    records = records_of(data)
    out = decode(Docker(1 << 20), data, DOCKER_LOG, batch=1)
    assert [(r.offset, r.fields["stream"], r.line) for r in out] == [
        (records[0].offset, "stdout", "O" * 40), (records[1].offset, "stderr", "E" * 20)]


def test_attrs_from_log_opts_become_a_field() -> None:
    data = docker(b"hello\n", attrs={"tag": "web", "com.example.team": "shop"})
    assert b'"attrs":{"tag":"web","com.example.team":"shop"},"time"' in data
    [record] = decode(Docker(1 << 20), data, DOCKER_LOG)
    assert record.fields == {"container_id": CONTAINER_ID, "stream": "stdout",
                             "attrs": {"tag": "web", "com.example.team": "shop"}}


def test_a_last_chunk_without_its_newline_is_held_then_flushed() -> None:
    data = b'{"log":"exiting","stream":"stdout","time":"2024-05-01T10:00:00Z"}\n'
    decoder = Docker(1 << 20)
    one = decoder.for_source(DOCKER_LOG)
    assert one.process(records_of(data)) == []
    assert one.held() == 0
    assert [r.line for r in one.flush()] == ["exiting"]
    assert decoder.tally.flushed == 1


def test_malformed_entries_pass_through_unchanged_and_counted() -> None:
    bad = [b"plain text", b'{"log":"no time\\n","stream":"stdout"}', b'["a list"]', b'{"log":1,"time":"x"}',
           b'{"log":"bad time\\n","stream":"stdout","time":"today"}', b"\xff not utf-8 {"]
    decoder = Docker(1 << 20)
    out = decode(decoder, b"".join(b + b"\n" for b in bad), DOCKER_LOG)
    assert [raw(r) for r in out] == bad
    assert [r.fields for r in out] == [{"container_id": CONTAINER_ID}] * len(bad)
    assert decoder.tally.unparsed == len(bad)
    assert set(decoder.tally.errors) == {"docker: not JSON", "docker: log, stream or time missing or not text",
                                         "docker: not a JSON object", "docker: bad time"}


def test_the_container_id_comes_from_the_path_of_the_log_and_of_its_rotations() -> None:
    data = docker(b"x\n")
    for path in (DOCKER_LOG + ".1", DOCKER_LOG + ".12"):
        assert decode(Docker(1 << 20), data, path)[0].fields == {"container_id": CONTAINER_ID, "stream": "stdout"}
    assert decode(Docker(1 << 20), data, "/tmp/x.log")[0].fields == {"stream": "stdout"}
