"""The built-in processors: each passes the processor contract, and does what its table says."""

from __future__ import annotations

from typing import Any

import pytest

from logferry import ConfigError, Record, Settings
from logferry.plugins import get_plugin_manager
from logferry.settings import ProcessorSpec, settings_from_dict
from logferry.testing import ProcessorCase, ProcessorContract

JAVA = b"""2026-12-01 10:00:00 INFO starting
java.lang.IllegalStateException: outer
\tat com.example.App.run(App.java:10)
\tat com.example.App.main(App.java:3)
Caused by: java.io.IOException: inner
\tat com.example.Io.read(Io.java:7)
\t... 2 more
2026-12-01 10:00:01 INFO next
2026-12-01 10:00:02 ERROR Error: lone error line
2026-12-01 10:00:03 INFO last""".split(b"\n")


def make(type_: str, **options: Any):
    """A processor as a ``[[processors]]`` table makes it, through the plugin host."""
    host = get_plugin_manager(load_entrypoints=False, blocked=set())
    return host.make_processor(ProcessorSpec(type_, options, key=f"[[processors]] #1 ({type_})"), Settings())


def records(*lines: str) -> list[Record]:
    out, offset = [], 0
    for line in lines:
        out.append(Record(offset, line))
        offset += len(line.encode()) + 1
    return out


def shaped(processor, *lines: str) -> list[Record]:
    one = processor.for_source("/a.log")
    return [*one.process(records(*lines)), *one.flush()]


# -- the contract, for every built-in --------------------------------------------------------

CASES = {
    "multiline-java": (lambda: make("multiline", preset="java"), JAVA),
    "multiline-start": (lambda: make("multiline", start=r"^\d{4}-"), JAVA),
    "multiline-continue": (lambda: make("multiline", **{"continue": r"^\s"}), JAVA),
    "multiline-both": (lambda: make("multiline", start="Exception", **{"continue": r"^\s"}), JAVA),
    "multiline-max-lines": (lambda: make("multiline", preset="java", max_lines=2), JAVA),
    "json": (lambda: make("json", timestamp_key="ts"),
             [b'{"ts":"2026-12-01T10:00:00.5Z","level":"info","id":7}', b"not json", b"[1,2]", b'{"a":{"b":1}}']),
    "logfmt": (lambda: make("logfmt"), [b'level=info msg="a b" flag', b"nothing here", b"k=v"]),
    "regex": (lambda: make("regex", pattern=r"^(?P<level>[A-Z]+) (?P<msg>.*)$"), [b"INFO hello", b"lower", b"ERR x"]),
    "drop": (lambda: make("drop", pattern="^DEBUG "), [b"DEBUG a", b"INFO b", b"DEBUG c", b"WARN d"]),
    "keep": (lambda: make("keep", pattern="ERROR|WARN"), [b"DEBUG a", b"ERROR b", b"WARN c"]),
    "drop-field": (lambda: make("drop", field="level", pattern="^debug$"), [b"x", b"y"]),
    "fields": (lambda: make("fields", fields={"env": "prod", "n": 3}), [b"a", b"b"]),
    "redact": (lambda: make("redact", pattern=r"password=\S+", replace="password=***"),
               [b"login user=a password=hunter2 ok", b"nothing"]),
}


class TestBuiltins(ProcessorContract):
    @pytest.fixture(params=sorted(CASES))
    def processor_case(self, request: pytest.FixtureRequest) -> ProcessorCase:
        factory, lines = CASES[request.param]
        return ProcessorCase(make=factory, lines=lines)


# -- multiline ------------------------------------------------------------------------------------


def test_a_java_trace_is_one_record_at_its_first_lines_offset_and_other_lines_stay_alone() -> None:
    out = shaped(make("multiline", preset="java"), *(line.decode() for line in JAVA))
    assert [r.line for r in out] == [
        "2026-12-01 10:00:00 INFO starting",
        "\n".join(line.decode() for line in JAVA[1:7]),
        "2026-12-01 10:00:01 INFO next",
        "2026-12-01 10:00:02 ERROR Error: lone error line",
        "2026-12-01 10:00:03 INFO last",
    ]
    assert out[1].offset == len(JAVA[0]) + 1


def test_start_alone_joins_every_line_up_to_the_next_start() -> None:
    out = shaped(make("multiline", start=r"^\d{4}-"), "lead", "2026-1 a", "  b", "c", "2026-2 d", "e")
    assert [r.line for r in out] == ["lead", "2026-1 a\n  b\nc", "2026-2 d\ne"]


def test_continue_alone_joins_continuation_lines_to_the_line_before() -> None:
    out = shaped(make("multiline", **{"continue": r"^\s"}), " orphan", "a", " b", " c", "d")
    assert [r.line for r in out] == [" orphan", "a\n b\n c", "d"]


def test_an_event_over_max_lines_is_ended_and_the_rest_starts_a_record_of_its_own() -> None:
    processor = make("multiline", **{"continue": r"^\s"}, max_lines=3)
    out = shaped(processor, "a", " 1", " 2", " 3", " 4", "b")
    assert [r.line for r in out] == ["a\n 1\n 2", " 3\n 4", "b"]
    assert processor.tally.cut == 1


def test_held_names_the_open_events_first_line_and_flush_releases_it() -> None:
    one = make("multiline", preset="java").for_source("/a.log")
    given = records("INFO a", "java.lang.RuntimeException: x", "\tat A.b(A.java:1)")
    assert [r.line for r in one.process(given)] == ["INFO a"]
    assert one.held() == given[1].offset
    assert [r.line for r in one.flush()] == ["java.lang.RuntimeException: x\n\tat A.b(A.java:1)"]
    assert one.held() is None and one.tally.flushed == 1


def test_python_chained_tracebacks_are_one_record() -> None:
    trace = ["Traceback (most recent call last):", '  File "a.py", line 1, in <module>', "    f()",
             "    ^^^", "KeyError: 'x'", "", "During handling of the above exception, another exception occurred:",
             "", "Traceback (most recent call last):", '  File "a.py", line 3, in <module>', "    g()",
             "ValueError: boom"]
    out = shaped(make("multiline", preset="python"), "INFO before", *trace, "INFO after")
    assert [r.line for r in out] == ["INFO before", "\n".join(trace), "INFO after"]


def test_a_go_panic_with_its_goroutines_is_one_record() -> None:
    panic = ["panic: boom", "", "goroutine 1 [running]:", "main.main()", "\t/src/main.go:5 +0x25", "",
             "goroutine 6 [chan receive]:", "main.worker(0xc000010000)", "\t/src/main.go:9 +0x30",
             "created by main.main in goroutine 1", "\t/src/main.go:4 +0x20"]
    out = shaped(make("multiline", preset="go"), "level=info a", *panic, "level=info b")
    assert [r.line for r in out] == ["level=info a", "\n".join(panic), "level=info b"]


# -- parsers ----------------------------------------------------------------------------------


def test_json_members_become_fields_and_a_field_named_like_a_records_key_is_renamed() -> None:
    out = shaped(make("json"), '{"level":"info","line":3,"id":"x","nested":{"a":[1]}}')
    assert out[0].fields == {"level": "info", "parsed_line": 3, "parsed_id": "x", "nested": {"a": [1]}}


def test_timestamp_key_becomes_the_records_time() -> None:
    out = shaped(make("json", timestamp_key="time"), '{"time":"2026-12-01T10:00:00.250Z","a":1}',
                 '{"time":"2026-12-01T12:00:00+02:00"}', '{"time":"yesterday"}')
    assert out[0].ts == pytest.approx(1796119200.25) and out[0].fields == {"a": 1}
    assert out[1].ts == pytest.approx(1796119200.0)
    assert out[2].ts is None and out[2].fields == {"time": "yesterday"}


@pytest.mark.parametrize(("form", "value", "expected"), [
    ("unix", 1796119200.5, 1796119200.5), ("unix_ms", "1796119200500", 1796119200.5),
    ("%d/%b/%Y:%H:%M:%S %z", "01/Dec/2026:11:00:00 +0100", 1796119200.0),
])
def test_timestamp_formats(form: str, value: Any, expected: float) -> None:
    out = shaped(make("logfmt", timestamp_key="t", timestamp_format=form), f't="{value}"')
    assert out[0].ts == pytest.approx(expected)


def test_an_unparsable_line_passes_unchanged_counted_with_its_reason() -> None:
    processor = make("json", error_field="parse_error")
    out = shaped(processor, "plain text", "[1]", '{"ok":1}')
    assert [r.line for r in out] == ["plain text", "[1]", '{"ok":1}']
    assert out[0].fields == {"parse_error": "not JSON"} and out[1].fields == {"parse_error": "not a JSON object"}
    assert processor.tally.unparsed == 2 and processor.tally.errors == {"not JSON": 1, "not a JSON object": 1}
    assert processor.tally.last_error == "not a JSON object"


def test_logfmt_quoted_values_bare_keys_and_empty_values() -> None:
    out = shaped(make("logfmt"), r'level=warn msg="disk \"sda\" full" retry empty=')
    assert out[0].fields == {"level": "warn", "msg": 'disk "sda" full', "retry": True, "empty": ""}


def test_regex_named_groups_become_fields_and_a_field_can_be_parsed_instead_of_the_line() -> None:
    out = shaped(make("regex", pattern=r"(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<code>\d+))?"), "GET /a 200", "PUT /b")
    assert out[0].fields == {"method": "GET", "parsed_path": "/a", "code": "200"}
    assert out[1].fields == {"method": "PUT", "parsed_path": "/b"}
    chained = [make("json"), make("regex", field="msg", pattern=r"took (?P<ms>\d+)ms")]
    recs = records('{"msg":"took 12ms"}')
    for p in chained:
        recs = list(p.for_source("/a").process(recs))
    assert recs[0].fields == {"msg": "took 12ms", "ms": "12"}


def test_drop_and_keep_count_what_they_remove_and_match_fields() -> None:
    dropper = make("drop", field="level", pattern="^debug$")
    recs = records("a", "b", "c")
    recs[0].fields, recs[1].fields = {"level": "debug"}, {"level": "info"}
    assert [r.line for r in dropper.for_source("/a").process(recs)] == ["b", "c"]
    assert dropper.tally.dropped == 1
    keeper = make("keep", pattern="ERROR")
    assert [r.line for r in shaped(keeper, "INFO x", "ERROR y")] == ["ERROR y"] and keeper.tally.dropped == 1


def test_redact_rewrites_the_text_and_text_fields() -> None:
    processor = make("redact", pattern=r"(password=)\S+", replace=r"\1***")
    recs = records("user=a password=hunter2 ok")
    recs[0].fields = {"query": "password=x", "n": 1}
    out = list(processor.for_source("/a").process(recs))
    assert out[0].line == "user=a password=*** ok" and out[0].fields == {"query": "password=***", "n": 1}


def test_a_pattern_that_would_backtrack_forever_in_re_runs_in_linear_time() -> None:
    # With Python's re, (a+)+$ against 40 a's and a b takes longer than the age of the universe.
    out = shaped(make("drop", pattern=r"(a+)+$"), "a" * 100_000 + "b", "aaa")
    assert [r.line[-1] for r in out] == ["b"]


# -- configuration errors name the key ---------------------------------------------------------


@pytest.mark.parametrize(("table", "message"), [
    ({"type": "drop", "pattern": "(unclosed"}, "[[processors]] #1 (drop) pattern: bad regular expression '(unclosed'"),
    ({"type": "drop", "pattern": r"(?<=x)y"}, "[[processors]] #1 (drop) pattern: bad regular expression"),
    ({"type": "drop"}, "[[processors]] #1 (drop): needs pattern"),
    ({"type": "drop", "pattern": "x", "colour": 1}, "[[processors]] #1 (drop): unknown option 'colour' (known: field, pattern)"),
    ({"type": "multiline"}, "[[processors]] #1 (multiline): needs preset (java, python, go)"),
    ({"type": "multiline", "preset": "cobol"}, "[[processors]] #1 (multiline) preset: expected one of 'java', 'python', 'go'"),
    ({"type": "multiline", "preset": "java", "start": "x"}, "give preset, or start/continue, not both"),
    ({"type": "multiline", "preset": "java", "max_lines": 0}, "(multiline) max_lines: expected a whole number above 0"),
    ({"type": "fields", "fields": {"line": "x"}}, "(fields) fields: line is a key every record has already"),
    ({"type": "regex", "pattern": "no groups"}, "(regex) pattern: has no named group"),
    ({"type": "json", "timestamp_format": "weird"}, "(json) timestamp_format: expected one of iso8601"),
    ({"type": "teleport"}, "[[processors]] #1 (teleport): unknown processor type 'teleport'; installed types: drop"),
])
def test_a_bad_processor_table_is_a_config_error_naming_the_key(table: dict[str, Any], message: str) -> None:
    settings = settings_from_dict({"processors": [table]}, source="c.toml")
    host = get_plugin_manager(load_entrypoints=False, blocked=set())
    with pytest.raises(ConfigError) as info:
        host.make_processor(settings.processors[0], settings)
    assert str(info.value).startswith("c.toml: ") and message in str(info.value)


def test_processor_tables_must_be_tables_with_a_type_and_paths_globs() -> None:
    for bad, message in [({"processors": {"type": "x"}}, "processors must be an array of tables"),
                         ({"processors": [{"pattern": "x"}]}, "[[processors]] #1: needs a type string"),
                         ({"processors": [{"type": "drop", "paths": [3]}]}, "(drop) paths: needs a list of globs")]:
        with pytest.raises(ConfigError, match=re_escape(message)):
            settings_from_dict(bad, source="c.toml")


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_blank_line_after_a_trace_joins_it_only_if_a_chained_trace_follows() -> None:
    trace = ["Traceback (most recent call last):", '  File "a.py", line 1, in <module>', "ValueError: boom"]
    out = shaped(make("multiline", preset="python"), *trace, "", "INFO after")
    assert [r.line for r in out] == ["\n".join(trace), "", "INFO after"]
    panic = ["panic: boom", "", "goroutine 1 [running]:", "main.main()", "\t/src/main.go:5 +0x25"]
    out = shaped(make("multiline", preset="go"), *panic, "", "level=info b")
    assert [r.line for r in out] == ["\n".join(panic), "", "level=info b"]
    processor = make("multiline", preset="go").for_source("/a")
    assert [r.line for r in [*processor.process(records("panic: x", "")), *processor.flush()]] == ["panic: x", ""]


def test_a_parsed_time_is_written_back_to_the_millisecond_it_said() -> None:
    from logferry.formats import iso_ts

    stamps = [f"2026-12-01T10:00:{s:02d}.{ms:03d}Z" for s in (0, 59) for ms in range(1000)]
    out = shaped(make("json", timestamp_key="t"), *(f'{{"t":"{t}"}}' for t in stamps))
    assert [iso_ts(r.ts) for r in out] == stamps
