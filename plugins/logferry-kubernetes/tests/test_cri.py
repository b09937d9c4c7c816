"""The ``cri`` decoder on lines exactly as containerd and CRI-O write them."""

from __future__ import annotations

import logging

import logferry
import pytest
from logferry.plugins import PluginHost

from logferry_kubernetes import hookspecs
from logferry_kubernetes.decoders import Cri, parse_cri

from .decoding import POD_LOG, decode, raw, records_of
from .runtimes import Clock, cri

POD_FIELDS = {"namespace": "shop", "pod": "web-7d4b9c-x2x9q", "pod_uid": "0b1e5c7a-8a33-4f6e-9d5e-2f1c0a9b7e11",
              "container": "web"}


def test_each_line_becomes_its_message_with_the_runtimes_time_and_the_pods_fields() -> None:
    data = (b"2024-05-01T10:00:00.123456789Z stdout F GET /health 200\n"
            b"2024-05-01T10:00:00.5Z stderr F warning: slow\n"
            b"2024-05-01T10:00:01Z stdout F \n")  # an empty line: containerd writes the space after the tag
    out = decode(Cri(1 << 20), data)
    assert [r.line for r in out] == ["GET /health 200", "warning: slow", ""]
    assert [r.offset for r in out] == [0, data.index(b"2024-05-01T10:00:00.5Z"), data.index(b"2024-05-01T10:00:01Z")]
    assert [r.fields for r in out] == [{**POD_FIELDS, "stream": s} for s in ("stdout", "stderr", "stdout")]
    # nanoseconds kept to well under a microsecond (a float: ~0.2 µs at today's dates)
    assert out[0].ts == pytest.approx(1714557600.123456789, abs=5e-7)
    assert round(out[0].ts, 6) == 1714557600.123457
    assert [out[1].ts, out[2].ts] == [1714557600.5, 1714557601.0]


def test_cri_o_times_in_the_nodes_zone_are_read_with_their_offset() -> None:
    out = decode(Cri(1 << 20), b"2024-05-01T12:00:00.000001+02:00 stdout F hello\n"
                               b"2024-05-01T05:30:00-04:30 stdout F west\n")
    assert out[0].ts == pytest.approx(1714557600.000001, abs=5e-7)
    assert out[1].ts == 1714557600.0


def test_a_line_cut_at_16_KiB_by_containerd_is_one_record_at_its_first_chunks_offset() -> None:
    clock = Clock()
    line = bytes(range(97, 123)) * 1600  # 41,600 bytes: P, P, F
    data = cri(b"before\n", clock=clock) + cri(line + b"\n", clock=clock) + cri(b"after\n", clock=clock)
    assert [chunk.split(b" ")[2] for chunk in data.splitlines()] == [b"F", b"P", b"P", b"F", b"F"]
    decoder = Cri(1 << 20)
    out = decode(decoder, data)
    assert [len(r.line) for r in out] == [6, len(line), 5]
    assert raw(out[1]) == line
    assert out[1].offset == len(data.splitlines()[0]) + 1
    assert out[1].ts == decode(Cri(1 << 20), data.splitlines(keepends=True)[1])[0].ts  # the first chunk's time
    assert decoder.tally.joined == 2 and decoder.tally.unparsed == 0


def test_interleaved_partials_of_stdout_and_stderr_are_joined_per_stream_in_file_order() -> None:
    clock = Clock()
    out_chunks = cri(b"O" * 40 + b"\n", "stdout", clock, max_line=16).splitlines(keepends=True)
    err_chunks = cri(b"E" * 40 + b"\n", "stderr", clock, max_line=16).splitlines(keepends=True)
    # the two goroutines' writes interleave: stdout P, stderr P, stdout P, stderr P, stderr F, stdout F
    data = b"".join([out_chunks[0], err_chunks[0], out_chunks[1], err_chunks[1], err_chunks[2], out_chunks[2],
                     cri(b"done\n", "stderr", clock)])
    one = Cri(1 << 20).for_source(POD_LOG)
    records = records_of(data)
    seen = []
    for i, record in enumerate(records):
        seen.extend(one.process([record]))
        if i < 5:  # the stdout message opened first: everything waits behind it, and the checkpoint before it
            assert one.held() == 0
            assert seen == []
    assert one.held() is None
    assert [(r.offset, r.fields["stream"], r.line) for r in seen] == [
        (records[0].offset, "stdout", "O" * 40), (records[1].offset, "stderr", "E" * 40),
        (records[6].offset, "stderr", "done")]


def test_the_format_without_tags_and_tags_with_extensions_are_read() -> None:
    out = decode(Cri(1 << 20), b"2016-10-06T00:17:09.669794202Z stdout log content 1\n"
                               b"2016-10-06T00:17:09.669794202Z stderr Pending: not a tag\n"
                               b"2016-10-06T00:17:10Z stdout F:x extended tag\n"
                               b"2016-10-06T00:17:11Z stdout\n")
    assert [(r.line, r.fields["stream"]) for r in out] == [
        ("log content 1", "stdout"), ("Pending: not a tag", "stderr"), ("extended tag", "stdout"), ("", "stdout")]


def test_containerd_drops_the_carriage_return_and_a_lone_one_stays() -> None:
    data = cri(b"windows line\r\n") + b"2024-05-01T10:00:00Z stdout F cr inside\r\n"
    assert [r.line for r in decode(Cri(1 << 20), data)] == ["windows line", "cr inside\r"]


def test_a_character_cut_in_two_by_the_runtime_is_whole_again_in_the_joined_record() -> None:
    line = "x" * 15 + "日本"  # the cut at 16 bytes falls inside 日
    data = cri(line.encode() + b"\n", max_line=16)
    [record] = decode(Cri(1 << 20), data)
    assert raw(record) == line.encode()
    assert record.line.encode("utf-8", "surrogateescape").decode() == line


def test_malformed_lines_pass_through_unchanged_and_counted_without_breaking_an_open_message() -> None:
    clock = Clock()
    chunks = cri(b"M" * 30 + b"\n", clock=clock, max_line=16).splitlines(keepends=True)
    bad = [b"", b"garbage", b"2024-13-01T10:00:00Z stdout F month 13", b"2024-05-01T10:00:00Z stdin F x",
           b"\xff\xfe not utf-8", b"2024-05-01T10:00:00Z"]
    data = chunks[0] + b"".join(b + b"\n" for b in bad) + chunks[1]
    decoder = Cri(1 << 20)
    out = decode(decoder, data)
    assert [raw(r) for r in out] == [b"M" * 30, *bad]  # the message first: it began first
    assert [r.fields for r in out[1:]] == [POD_FIELDS] * len(bad)  # the path's fields, no stream
    assert [r.ts for r in out[1:]] == [None] * len(bad)
    assert decoder.tally.unparsed == len(bad)
    assert set(decoder.tally.errors) == {"cri: no time and stream", "cri: bad time", "cri: stream is not stdout or stderr"}


def test_an_open_message_holds_the_checkpoint_until_flushed_as_it_is() -> None:
    clock = Clock()
    data = cri(b"first\n", clock=clock) + cri(b"no newline yet", clock=clock, eof=True)
    decoder = Cri(1 << 20)
    one = decoder.for_source(POD_LOG)
    records = records_of(data)
    assert [r.line for r in one.process(records)] == ["first"]
    assert one.held() == records[1].offset
    assert [r.line for r in one.flush()] == ["no newline yet"]
    assert one.held() is None and decoder.tally.flushed == 1


def test_a_message_longer_than_max_bytes_is_cut_and_the_rest_starts_a_record_counted() -> None:
    data = cri(b"L" * 100 + b"\n", max_line=16)  # 6 chunks of 16 and one of 4
    decoder = Cri(max_bytes=40)
    out = decode(decoder, data)
    assert [len(r.line) for r in out] == [32, 32, 36]
    assert "".join(r.line for r in out) == "L" * 100
    assert decoder.tally.cut == 2


def test_records_waiting_behind_an_open_message_are_bounded_by_max_bytes() -> None:
    clock = Clock()
    opened = cri(b"S" * 20 + b"\n", "stdout", clock, max_line=16).splitlines(keepends=True)
    data = opened[0] + b"".join(cri(f"err {i:03d}\n".encode(), "stderr", clock) for i in range(40)) + opened[1]
    decoder = Cri(max_bytes=64)
    out = decode(decoder, data)
    # once more than 64 bytes of stderr waited, the stdout message went on as it was
    assert [r.line for r in out] == ["S" * 16] + [f"err {i:03d}" for i in range(40)] + ["S" * 4]
    assert decoder.tally.cut == 1


def test_a_message_whose_stream_stopped_while_the_other_went_on_is_released_after_timeout() -> None:
    lines = (b"2024-05-01T10:00:00Z stdout P progress 10%\n"
             b"2024-05-01T10:00:01Z stderr F tick\n"
             b"2024-05-01T10:00:07Z stderr F tock\n"  # 7 s of the runtime's time later: stdout gave up
             b"2024-05-01T10:00:08Z stdout F done\n")
    decoder = Cri(1 << 20, timeout=5.0)
    out = decode(decoder, lines, flush=False)
    assert [r.line for r in out] == ["progress 10%", "tick", "tock", "done"]
    assert decoder.tally.flushed == 1


def test_the_output_does_not_depend_on_batches() -> None:
    clock = Clock()
    data = b"".join(cri(f"{i} ".encode() * (i * 7) + b"\n", "stdout" if i % 3 else "stderr", clock, max_line=32)
                    for i in range(60))
    whole = [(r.offset, r.line, r.fields, r.ts) for r in decode(Cri(1 << 20), data)]
    for size in (1, 2, 5, 13):
        assert [(r.offset, r.line, r.fields, r.ts) for r in decode(Cri(1 << 20), data, batch=size)] == whole


def test_docker_json_file_lines_are_read_too_as_cri_dockerd_links_them_into_pods() -> None:
    out = decode(Cri(1 << 20), b'{"log":"from docker\\n","stream":"stderr","time":"2024-05-01T10:00:00.25Z"}\n')
    assert [(r.line, r.fields["stream"], r.ts) for r in out] == [("from docker", "stderr", 1714557600.25)]


def test_fields_come_from_the_path_of_the_log_and_of_its_rotations() -> None:
    line = b"2024-05-01T10:00:00Z stdout F x\n"
    rotated = POD_LOG.replace("0.log", "3.log.20240501-100000")
    assert decode(Cri(1 << 20), line, rotated)[0].fields == {**POD_FIELDS, "stream": "stdout"}
    assert decode(Cri(1 << 20), line, rotated + ".gz")[0].fields == {**POD_FIELDS, "stream": "stdout"}
    assert decode(Cri(1 << 20), line, "/var/log/app.log")[0].fields == {"stream": "stdout"}
    assert decode(Cri(1 << 20, fields=False), line)[0].fields == {"stream": "stdout"}


def test_parse_cri_says_why_a_line_is_not_one() -> None:
    assert parse_cri("2024-05-01T10:00:00Z stdout F hi") == (1714557600.0, "stdout", False, "hi", None)
    assert parse_cri("2024-05-01T10:00:00Z stderr P hi") == (1714557600.0, "stderr", True, "hi", None)
    assert parse_cri("yesterday stdout F hi") == "cri: bad time"


class FieldsPlugin:
    """A plugin adding fields to containers' records through logferry_kubernetes_fields."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    @logferry.hookimpl
    def logferry_kubernetes_fields(self, path: str, fields: dict[str, str]) -> dict[str, object]:
        self.calls.append((path, dict(fields)))
        fields["namespace"] = "changed"  # a copy: changes nothing
        return {"app": "web", "ts": "a name of the record's own"}


def _host_with(plugin: object, plugin_manager: PluginHost) -> object:
    plugin_manager.pm.add_hookspecs(hookspecs)
    plugin_manager.pm.register(plugin, name="fields-plugin")
    return plugin_manager.pm.hook.logferry_kubernetes_fields


def test_plugins_add_fields_through_the_hook_once_per_path(plugin_manager: PluginHost) -> None:
    plugin = FieldsPlugin()
    decoder = Cri(1 << 20, hook=_host_with(plugin, plugin_manager))
    data = b"2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:00Z stdout F b\n"
    for _ in range(3):  # the stage forgets a file holding nothing and makes its processor again
        out = decode(decoder, data)
    assert [r.fields for r in out] == [{**POD_FIELDS, "app": "web", "parsed_ts": "a name of the record's own",
                                        "stream": "stdout"}] * 2
    assert plugin.calls == [(POD_LOG, POD_FIELDS)]
    decode(decoder, data, "/var/log/other.log")  # not a container's log: not asked
    assert len(plugin.calls) == 1


def test_a_hook_that_raises_leaves_the_paths_fields_and_says_so(plugin_manager: PluginHost, caplog) -> None:
    class Broken:
        @logferry.hookimpl
        def logferry_kubernetes_fields(self, path: str, fields: dict[str, str]) -> None:
            raise RuntimeError("labels unavailable")

    decoder = Cri(1 << 20, hook=_host_with(Broken(), plugin_manager))
    with caplog.at_level(logging.ERROR, "logferry.kubernetes"):
        out = decode(decoder, b"2024-05-01T10:00:00Z stdout F a\n")
    assert out[0].fields == {**POD_FIELDS, "stream": "stdout"}
    assert "labels unavailable" in caplog.text and POD_LOG in caplog.text
