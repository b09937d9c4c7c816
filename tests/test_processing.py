"""Processors in a real run: records shaped on the way, and the delivery guarantee kept through them.

Real files, the real engine in asyncio debug mode (a callback that blocks the loop fails the test),
real sinks; the checkpoint is read from the engine's acknowledged offsets and from the store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from logferry import Sink, SinkSpec, hookimpl
from logferry.engine import Engine
from logferry.plugins import get_plugin_manager
from logferry.settings import ProcessorSpec

from conftest import append, cli, run_engine, wait_for

TRACE = (b"java.lang.IllegalStateException: outer\n\tat com.example.App.run(App.java:10)\n"
         b"Caused by: java.io.IOException: inner\n\tat com.example.Io.read(Io.java:7)\n\t... 1 more\n")


@pytest.fixture(autouse=True)
def inputs(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()


def spec(type_: str, **options: Any) -> ProcessorSpec:
    paths = options.pop("paths", [])
    return ProcessorSpec(type_, options, paths, key=f"[[processors]] ({type_})")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def acked(engine: Engine, path: Path) -> int:
    return {p: offset for p, offset, _ in engine.progress()}.get(str(path), 0)


def reads_again(settings_) -> int:
    """Lines a second ``--once`` run reads: 0 when the first one's checkpoints reached every file's end."""
    engine, _ = run_engine(settings_)
    return engine.stats()["read_lines"]


def test_parsed_and_static_fields_sit_beside_the_records_own_keys(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    settings_ = settings(once=True, format="json",
                         processors=[spec("json", timestamp_key="time"), spec("fields", fields={"env": "prod"})])
    log.write_bytes(b'{"time":"2026-12-01T10:00:00.250Z","level":"info","msg":"hi","path":"/x"}\nplain\n')
    run_engine(settings_)
    first, second = records(tmp_path / "out.log")
    assert first["ts"] == "2026-12-01T10:00:00.250Z" and first["offset"] == 0
    assert first["path"] == str(log) and first["parsed_path"] == "/x"
    assert (first["level"], first["msg"], first["env"]) == ("info", "hi", "prod")
    assert first["line"] == '{"time":"2026-12-01T10:00:00.250Z","level":"info","msg":"hi","path":"/x"}'
    assert second["line"] == "plain" and second["env"] == "prod" and "level" not in second
    assert second["id"].endswith(":%d" % (len(log.read_bytes().splitlines()[0]) + 1))


def test_a_multiline_event_is_one_json_record_and_its_original_bytes_in_raw_output(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"INFO a\n" + TRACE + b"INFO b\n")
    raw = tmp_path / "raw.log"
    settings_ = settings(once=True, processors=[spec("multiline", preset="java")],
                         sinks=[f"file:{raw}"]).replace(
        sinks=[SinkSpec(f"file:{tmp_path / 'out.log'}", {"format": "json"}), SinkSpec(f"file:{raw}")])
    engine, _ = run_engine(settings_)
    got = records(tmp_path / "out.log")
    assert [r["line"] for r in got] == ["INFO a", TRACE.decode().rstrip("\n"), "INFO b"]
    assert got[1]["offset"] == 7 and got[1]["id"].endswith(":7")
    assert raw.read_bytes() == log.read_bytes()
    assert engine.stats()["read_lines"] == 7 and engine.stats()["records"] == 3


def test_the_checkpoint_stays_before_an_event_being_assembled_until_it_is_complete(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"")
    out = tmp_path / "out.log"
    settings_ = settings(format="json", processors=[spec("multiline", preset="python", timeout=3600)])
    head = b"INFO before\n"
    partial = b'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n'

    async def scenario(engine: Engine) -> None:
        append(log, head + partial)
        await wait_for(lambda: len(records(out)) == 1)
        await wait_for(lambda: acked(engine, log) == len(head))  # the lines before the event, not beyond
        assert engine.stats()["held_files"] == 1
        await asyncio.sleep(0.5)  # several polls and commits later it still has not passed the event's start
        assert acked(engine, log) == len(head) and len(records(out)) == 1
        append(log, b"ValueError: boom\nINFO after\n")
        await wait_for(lambda: len(records(out)) == 3)
        await wait_for(lambda: acked(engine, log) == log.stat().st_size)

    run_engine(settings_, scenario)
    got = records(out)
    assert got[1]["line"] == (partial + b"ValueError: boom").decode() and got[1]["offset"] == len(head)


def test_a_quiet_files_last_event_is_released_after_the_timeout(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"")
    out = tmp_path / "out.log"
    settings_ = settings(format="json", processors=[spec("multiline", preset="java", timeout=0.2)])

    async def scenario(engine: Engine) -> None:
        append(log, TRACE)
        await wait_for(lambda: len(records(out)) == 1)
        await wait_for(lambda: acked(engine, log) == len(TRACE))

    engine, _ = run_engine(settings_, scenario)
    assert records(out)[0]["line"] == TRACE.decode().rstrip("\n")
    assert engine.stats()["processors"][0]["flushed"] == 1


@pytest.mark.parametrize("head", [b"INFO one\n", b"INFO " + b"x" * 100 + b"\n", b"INFO one\n" * 20])
@pytest.mark.parametrize("apart", [False, True], ids=["one-batch", "event-starts-a-batch"])
def test_a_clean_stop_leaves_a_half_written_event_to_the_next_run_which_ships_it_once_whole(
        tmp_path: Path, settings, head: bytes, apart: bool) -> None:
    """The checkpoint saved mid-batch, before the event (its guard hashes the bytes before it: short
    heads, long ones, the event at a batch's start), lets the next run resume exactly there."""
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"")
    out = tmp_path / "out.log"
    processors = [spec("multiline", preset="java", timeout=3600)]
    first = TRACE.split(b"\n")[0] + b"\n"
    before = head.count(b"\n")

    async def half(engine: Engine) -> None:
        append(log, head if apart else head + first)
        if apart:
            await wait_for(lambda: len(records(out)) == before)
            append(log, first)
        await wait_for(lambda: len(records(out)) == before and engine.stats()["held_files"] == 1)
        await wait_for(lambda: acked(engine, log) == len(head))

    run_engine(settings(format="json", processors=processors), half)
    append(log, TRACE[len(first):] + b"INFO two\n")
    engine, _ = run_engine(settings(format="json", processors=processors, once=True))
    got = records(out)
    assert [r["line"] for r in got] == [line.decode() for line in head.splitlines()] + [
        TRACE.decode().rstrip("\n"), "INFO two"]
    assert len({r["id"] for r in got}) == len(got)  # nothing doubled across the clean stop
    assert engine.stats()["read_lines"] == TRACE.count(b"\n") + 1  # resumed at the event's first line


def test_dropped_lines_count_as_delivered_and_are_counted(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"DEBUG a\nINFO b\nDEBUG c\nDEBUG d\n")
    engine, _ = run_engine(settings(once=True, processors=[spec("drop", pattern="^DEBUG ")]))
    assert (tmp_path / "out.log").read_bytes() == b"INFO b\n"
    assert reads_again(settings(once=True, processors=[spec("drop", pattern="^DEBUG ")])) == 0
    stats = engine.stats()
    assert stats["dropped"] == 3 and stats["processors"][0]["dropped"] == 3 and stats["read_lines"] == 4


def test_a_file_whose_lines_are_all_dropped_is_checkpointed_at_its_end(tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"DEBUG a\n" * 1000)
    engine, _ = run_engine(settings(once=True, processors=[spec("drop", pattern="^DEBUG ")]))
    assert engine.stats()["read_lines"] == 1000 and (tmp_path / "out.log").read_bytes() == b""
    assert reads_again(settings(once=True, processors=[spec("drop", pattern="^DEBUG ")])) == 0


def test_processors_apply_only_to_the_files_their_paths_match(tmp_path: Path, settings) -> None:
    (tmp_path / "in" / "app.log").write_bytes(b"DEBUG a\n")
    (tmp_path / "in" / "db.log").write_bytes(b"DEBUG b\n")
    run_engine(settings(once=True, processors=[spec("drop", pattern="^DEBUG", paths=["*/app.log"])]))
    assert (tmp_path / "out.log").read_bytes() == b"DEBUG b\n"


def test_unparsable_lines_pass_through_counted_with_the_reason(tmp_path: Path, settings) -> None:
    (tmp_path / "in" / "app.log").write_bytes(b'{"a":1}\nnot json\n\xff\xfe\x00 bytes\n')
    engine, _ = run_engine(settings(once=True, processors=[spec("json")]))
    assert (tmp_path / "out.log").read_bytes() == b'{"a":1}\nnot json\n\xff\xfe\x00 bytes\n'  # raw: byte for byte
    tally = engine.stats()["processors"][0]
    assert tally["unparsed"] == 2 and tally["last_error"] == "not JSON" and engine.stats()["unparsed"] == 2


def test_redaction_applies_to_raw_and_json_output(tmp_path: Path, settings) -> None:
    (tmp_path / "in" / "app.log").write_bytes(b"login password=hunter2 ok\n")
    raw, js = tmp_path / "raw.log", tmp_path / "js.log"
    run_engine(settings(once=True, processors=[spec("redact", pattern=r"password=\S+", replace="password=***")],
                        ).replace(sinks=[SinkSpec(f"file:{raw}"), SinkSpec(f"file:{js}", {"format": "json"})]))
    assert raw.read_bytes() == b"login password=*** ok\n"
    assert records(js)[0]["line"] == "login password=*** ok"


def test_no_processor_configured_leaves_the_fast_path_untouched(tmp_path: Path, settings) -> None:
    (tmp_path / "in" / "app.log").write_bytes(b"a\nb\n")
    engine, _ = run_engine(settings(once=True))
    assert engine.processing is None and engine.stats()["records"] == 2
    assert (tmp_path / "out.log").read_bytes() == b"a\nb\n"


# -- routing ----------------------------------------------------------------------------------


class _Gate(Sink):
    """A sink that takes batches only once its gate opens (a slow destination)."""

    gate: asyncio.Event | None = None
    got: list[bytes] = []

    def describe(self) -> str:
        return "gate:"

    async def send(self, batch) -> None:
        assert _Gate.gate is not None
        await _Gate.gate.wait()
        _Gate.got.extend(line for _, line in batch.records())


class _GatePlugin:
    @hookimpl
    def logferry_sink_schemes(self):
        return ["gate"]

    @hookimpl
    def logferry_make_sink(self, url, scheme, options, settings):
        return _Gate()


def test_records_go_to_the_sinks_whose_match_selects_them_and_unrouted_ones_are_counted(
        tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"level=error a\nlevel=info b\nlevel=fatal c\nlevel=debug d\n")
    errors, infos = tmp_path / "errors.log", tmp_path / "infos.log"
    sinks = [SinkSpec(f"file:{errors}", match={"level": "^(error|fatal)$"}, key="[[sinks]] #1 match"),
             SinkSpec(f"file:{infos}", match={"level": "^(error|info)$", "path": "*/app.log"}, key="[[sinks]] #2 match"),
             SinkSpec(f"file:{tmp_path / 'none.log'}", match={"path": "*/other/*"}, key="[[sinks]] #3 match")]
    engine, _ = run_engine(settings(once=True, processors=[spec("logfmt")]).replace(sinks=sinks))
    assert errors.read_bytes() == b"level=error a\nlevel=fatal c\n"
    assert infos.read_bytes() == b"level=error a\nlevel=info b\n"
    assert not (tmp_path / "none.log").exists() or not (tmp_path / "none.log").read_bytes()
    assert engine.stats()["unrouted"] == 1
    assert reads_again(settings(once=True, processors=[spec("logfmt")]).replace(sinks=sinks)) == 0


def test_a_record_routed_to_several_sinks_moves_the_checkpoint_only_once_every_one_has_it(
        tmp_path: Path, settings) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"")
    host = get_plugin_manager(load_entrypoints=False, blocked=set())
    host.register(_GatePlugin(), name="gate")
    _Gate.got = []
    out = tmp_path / "out.log"
    sinks = [SinkSpec(f"file:{out}"), SinkSpec("gate:x", match={"line": "ERROR"}, key="[[sinks]] #2 match")]

    async def scenario(engine: Engine) -> None:
        _Gate.gate = asyncio.Event()
        append(log, b"INFO a\nERROR b\n")
        await wait_for(lambda: out.exists() and out.read_bytes() == b"INFO a\nERROR b\n")
        await asyncio.sleep(0.3)
        assert acked(engine, log) == 0  # the gate has not taken ERROR b yet
        _Gate.gate.set()
        await wait_for(lambda: acked(engine, log) == log.stat().st_size)

    run_engine(settings(processors=[spec("fields", fields={"x": 1})]).replace(sinks=sinks), scenario, host=host)
    assert _Gate.got == [b"ERROR b"]


def test_a_sinks_match_works_without_any_processor(tmp_path: Path, settings) -> None:
    (tmp_path / "in" / "app.log").write_bytes(b"INFO a\nERROR b\n")
    (tmp_path / "in" / "db.log").write_bytes(b"ERROR c\n")
    only = tmp_path / "only.log"
    sinks = [SinkSpec(f"file:{only}", match={"path": "*/app.log", "line": "^ERROR"}, key="[[sinks]] #1 match")]
    engine, _ = run_engine(settings(once=True).replace(sinks=sinks))
    assert only.read_bytes() == b"ERROR b\n" and engine.stats()["unrouted"] == 2


# -- the command line -----------------------------------------------------------------------------


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    config = tmp_path / "c.toml"
    config.write_text(f'[sources]\npaths = ["{tmp_path}/in/*.log"]\n[state]\ndir = "{tmp_path}/state"\n'
                      f'[[sinks]]\nurl = "file:{tmp_path}/out.log"\n{body}')
    return config


@pytest.mark.parametrize(("body", "message"), [
    ('[[processors]]\ntype = "drop"\npattern = "(x"\n', "[[processors]] #1 (drop) pattern: bad regular expression '(x'"),
    ('[[processors]]\ntype = "json"\nwhat = 1\n', "[[processors]] #1 (json): unknown option 'what'"),
    ('[[processors]]\ntype = "nope"\n', "[[processors]] #1 (nope): unknown processor type 'nope'"),
])
def test_a_bad_processor_is_one_line_exit_2_naming_the_key(tmp_path: Path, body: str, message: str) -> None:
    config = _config(tmp_path, body)
    for command in (["run", "-c", str(config), "--once"], ["config", "check", "-c", str(config)]):
        done = cli(*command)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_match_is_one_line_exit_2_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, 'match = { level = "[" }\n')
    done = cli("run", "-c", str(config), "--once")
    assert done.returncode == 2 and "[[sinks]] #1 match.level: bad regular expression '['" in done.stderr


def test_stats_say_what_the_processors_dropped_and_what_no_sink_took(tmp_path: Path) -> None:
    config = _config(tmp_path, 'match = { line = "^INFO" }\n[[processors]]\ntype = "drop"\npattern = "^DEBUG"\n')
    (tmp_path / "in" / "a.log").write_bytes(b"DEBUG a\nINFO b\nWARN c\n")
    done = cli("run", "-c", str(config), "--once", "--stats")
    assert done.returncode == 0, done.stderr
    assert "processed into 2 records: dropped 1, unparsed 0, unrouted 1" in done.stderr
    assert (tmp_path / "out.log").read_bytes() == b"INFO b\n"


class _Broken:
    """A processor plugin whose processor raises on every other batch."""

    @hookimpl
    def logferry_processor_types(self):
        return ["broken"]

    @hookimpl
    def logferry_make_processor(self, type, options, settings, key):
        from logferry import Processor

        class Broken(Processor):
            calls = 0

            def process(self, records):
                Broken.calls += 1
                if Broken.calls % 2:
                    raise RuntimeError("bug in a plugin")
                return [r for r in records if "x" not in r.line]

        return Broken()


def test_a_processor_that_raises_neither_stops_the_run_nor_loses_a_line(tmp_path: Path, settings, caplog) -> None:
    log = tmp_path / "in" / "app.log"
    log.write_bytes(b"a\nx\n")
    host = get_plugin_manager(load_entrypoints=False, blocked=set())
    host.register(_Broken(), name="broken")
    engine, _ = run_engine(settings(once=True, processors=[spec("broken")]), host=host)
    assert (tmp_path / "out.log").read_bytes() == b"a\nx\n"  # went on as given
    tally = engine.stats()["processors"][0]
    assert tally["failures"] == 1 and tally["last_failure"] == "RuntimeError: bug in a plugin"
    assert "processor broken failed (RuntimeError: bug in a plugin)" in caplog.text


def test_config_show_prints_processors_and_match_as_config_check_accepts_them(tmp_path: Path) -> None:
    config = _config(tmp_path, 'match = { level = "^error$" }\n[[processors]]\ntype = "json"\npaths = ["*/a.log"]\n'
                               'timestamp_key = "ts"\n')
    shown = cli("config", "show", "-c", str(config))
    assert shown.returncode == 0, shown.stderr
    assert '[[processors]]\ntype = "json"\npaths = ["*/a.log"]\ntimestamp_key = "ts"' in shown.stdout
    assert 'match = { level = "^error$" }' in shown.stdout or "[sinks.match]" in shown.stdout
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    checked = cli("config", "check", "-c", str(again))
    assert checked.returncode == 0 and "1 processor" in checked.stdout, checked.stderr


class _Slow(Sink):
    """A sink that takes a while for each batch: readers catching up wait for the budget."""

    got: list[bytes] = []

    def describe(self) -> str:
        return "slow:"

    async def send(self, batch) -> None:
        await asyncio.sleep(0.1)
        _Slow.got.extend(line for _, line in batch.records())


class _SlowPlugin:
    @hookimpl
    def logferry_sink_schemes(self):
        return ["slow"]

    @hookimpl
    def logferry_make_sink(self, url, scheme, options, settings):
        return _Slow()


def test_an_event_is_not_cut_by_its_timeout_while_its_file_is_still_being_caught_up(tmp_path: Path, settings) -> None:
    """The timeout is for a quiet file: a reader waiting for the budget (a slow sink) or for the
    processing thread is not quiet, and its open event must not be released half read."""
    log = tmp_path / "in" / "app.log"
    filler = b"INFO " + b"x" * 120 + b"\n"
    trace = TRACE + b"\tat com.example.Deep.f(Deep.java:1)\n" * 60
    with open(log, "wb") as f:
        for _ in range(2000):  # ~7 MB: reads of 1 MiB end inside traces several times
            f.write(filler * 10)
            f.write(trace)
    host = get_plugin_manager(load_entrypoints=False, blocked=set())
    host.register(_SlowPlugin(), name="slow")
    _Slow.got = []
    run_engine(settings(once=True, max_inflight_bytes=1 << 20, processors=[spec("multiline", preset="java",
                                                                                timeout=0.01)]
                        ).replace(sinks=[SinkSpec("slow:x")]), host=host)
    traces = [line for line in _Slow.got if not line.startswith(b"INFO ")]
    assert len(traces) == 2000 and set(traces) == {trace.rstrip(b"\n")}
