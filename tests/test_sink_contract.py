"""The sink contract of ``logferry.testing``: the built-in file sink passes it, raw and JSON; the
contract catches sinks that break it; the plugin fixtures give each test a fresh host."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logferry import Batch, Settings, Sink, hookimpl
from logferry.plugins import PluginHost
from logferry.sinks.file import FileSink
from logferry.testing import SinkCase, SinkContract


class RotatingOutput:
    """The file sink's destination: ``out/merged.log``, plus the files it was rotated to.

    Breaking it fills the disk: the output is rotated away (``merged.log.1``…) and ``/dev/full``
    takes its place, so the sink, which follows a rotated output, gets ENOSPC on its next write.
    Repairing removes ``/dev/full`` again; the sink then creates a fresh file.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "out" / "merged.log"
        self.rotated: list[Path] = []

    def files(self) -> list[Path]:
        return [*self.rotated, self.path]

    def data(self) -> bytes:
        # is_file() is False for /dev/full, whose endless zeros are not ours to read.
        return b"".join(path.read_bytes() for path in self.files() if path.is_file())

    def raw_lines(self) -> list[bytes]:
        lines = self.data().split(b"\n")  # not splitlines(): a lone \r is part of a line
        if lines[-1] == b"":
            lines.pop()
        return lines

    def json_lines(self) -> list[bytes]:
        return [json.loads(record)["line"].encode() for record in self.raw_lines()]

    def fill_disk(self) -> None:
        if self.path.is_file():
            rotated = self.path.with_name(f"{self.path.name}.{len(self.rotated) + 1}")
            self.path.rename(rotated)
            self.rotated.append(rotated)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.symlink_to("/dev/full")

    def free_disk(self) -> None:
        self.path.unlink()


@pytest.fixture
def output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RotatingOutput:
    # The sink looks for a rotated output once a second; look on every write so breaking is immediate.
    monkeypatch.setattr("logferry.sinks.file._REOPEN_CHECK", 0.0)
    return RotatingOutput(tmp_path)


class TestFileSinkRaw(SinkContract):
    @pytest.fixture
    def sink_case(self, output: RotatingOutput) -> SinkCase:
        return SinkCase(
            make=lambda: FileSink(f"file:{output.path}", str(output.path)),
            received=output.raw_lines,
            break_destination=output.fill_disk,
            repair_destination=output.free_disk,
        )


class TestFileSinkJson(SinkContract):
    @pytest.fixture
    def sink_case(self, output: RotatingOutput) -> SinkCase:
        return SinkCase(
            make=lambda: FileSink(f"file:{output.path}", str(output.path), fmt="json"),
            received=output.json_lines,
            break_destination=output.fill_disk,
            repair_destination=output.free_disk,
            exact_bytes=False,  # JSON carries text: invalid UTF-8 becomes U+FFFD
        )


# -- the contract catches sinks that break it ----------------------------------------------

BAD_SINKS = '''
import asyncio
import time

import pytest

import logferry
from logferry.testing import SinkCase, SinkContract

DESTINATION = []
BROKEN = [False]


def received():
    return list(DESTINATION)


class GoodSink(logferry.Sink):
    max_sends_in_flight = 3

    async def send(self, batch):
        await asyncio.sleep(0)
        if BROKEN[0]:
            raise ConnectionError("destination down")
        DESTINATION.extend(line for _, line in batch.records())


class BuffersUntilStop(GoodSink):
    """Acknowledges before the lines are at the destination, and keeps the caller's buffer."""
    pending = None

    async def send(self, batch):
        self.pending = (self.pending or []) + [batch]

    async def stop(self):
        for batch in self.pending or []:
            await GoodSink.send(self, batch)
        self.pending = []


class SwallowsErrors(GoodSink):
    async def send(self, batch):
        try:
            await super().send(batch)
        except ConnectionError:
            pass


class BlocksTheLoop(GoodSink):
    """Does its work on the loop thread: quick for small batches, blocking for a full read."""

    async def send(self, batch):
        if len(batch) > 100_000:
            time.sleep(0.1)
        await super().send(batch)


class OverlapsBadly(GoodSink):
    """Claims several calls at once, but keeps a call's batches in one attribute across an await."""

    async def send_many(self, batches):
        self.current = batches
        await asyncio.sleep(0)
        for batch in self.current:
            await super().send(batch)


class StopFailsTwice(GoodSink):
    stopped = False

    async def stop(self):
        if self.stopped:
            raise RuntimeError("already stopped")
        self.stopped = True


class Contract(SinkContract):
    sink_class = GoodSink

    @pytest.fixture
    def sink_case(self):
        DESTINATION.clear()
        BROKEN[0] = False
        return SinkCase(make=lambda: self.sink_class("test:"), received=received,
                        break_destination=lambda: BROKEN.__setitem__(0, True),
                        repair_destination=lambda: BROKEN.__setitem__(0, False))


class TestGood(Contract):
    pass


class TestBuffersUntilStop(Contract):
    sink_class = BuffersUntilStop


class TestSwallowsErrors(Contract):
    sink_class = SwallowsErrors


class TestBlocksTheLoop(Contract):
    sink_class = BlocksTheLoop


class TestStopFailsTwice(Contract):
    sink_class = StopFailsTwice


class TestOverlapsBadly(Contract):
    sink_class = OverlapsBadly
'''


@pytest.fixture(scope="module")
def bad_sinks_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run the contract on the sinks of BAD_SINKS in a pytest of its own: ``{"TestGood::test_x": "passed"}``."""
    root = tmp_path_factory.mktemp("bad_sinks")
    (root / "test_bad_sinks.py").write_text(BAD_SINKS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "logferry.testing", "-v", "-p", "no:cacheprovider",
                          "test_bad_sinks.py"], cwd=root, capture_output=True, text=True, timeout=300, check=False)
    found = {}
    for line in run.stdout.splitlines():
        match = re.match(r"^\S+?::(\S+) (PASSED|FAILED|SKIPPED|ERROR)\b", line)
        if match:
            found[match.group(1)] = match.group(2).lower()
    assert found, run.stdout + run.stderr
    return found


def test_a_sink_that_keeps_its_promises_passes_the_contract(bad_sinks_run: dict[str, str]) -> None:
    good = {test: status for test, status in bad_sinks_run.items() if test.startswith("TestGood::")}
    assert len(good) == 9
    assert set(good.values()) == {"passed"}, good


@pytest.mark.parametrize("sink,broken_promise", [
    ("TestBuffersUntilStop", "test_lines_arrive_in_order_per_file_and_are_readable_as_soon_as_send_returns"),
    ("TestBuffersUntilStop", "test_everything_sent_is_at_the_destination_after_stop"),  # it kept reused buffers
    ("TestSwallowsErrors", "test_send_raises_while_the_destination_is_broken_and_succeeds_after_repair"),
    ("TestBlocksTheLoop", "test_send_never_blocks_the_event_loop"),
    ("TestStopFailsTwice", "test_stop_is_idempotent_and_safe_without_start"),
    ("TestOverlapsBadly", "test_its_limits_are_valid_and_overlapping_calls_for_different_files_all_arrive"),
])
def test_the_contract_catches_a_sink_that_breaks_a_promise(bad_sinks_run: dict[str, str], sink: str,
                                                           broken_promise: str) -> None:
    assert bad_sinks_run[f"{sink}::{broken_promise}"] == "failed"


def test_each_bad_sink_fails_only_the_promises_it_breaks(bad_sinks_run: dict[str, str]) -> None:
    failed = sorted(test for test, status in bad_sinks_run.items() if status == "failed")
    assert failed == sorted([
        *(f"TestBuffersUntilStop::{test}" for test in (  # acknowledges early and keeps reused buffers
            "test_lines_arrive_in_order_per_file_and_are_readable_as_soon_as_send_returns",
            "test_send_many_delivers_every_batch_in_order_before_it_returns",
            "test_any_bytes_survive_invalid_utf8_nul_cr_empty_and_200kb_lines",
            "test_send_raises_while_the_destination_is_broken_and_succeeds_after_repair",
            "test_everything_sent_is_at_the_destination_after_stop",
            "test_send_never_blocks_the_event_loop",
            "test_its_limits_are_valid_and_overlapping_calls_for_different_files_all_arrive",
        )),
        "TestSwallowsErrors::test_send_raises_while_the_destination_is_broken_and_succeeds_after_repair",
        "TestBlocksTheLoop::test_any_bytes_survive_invalid_utf8_nul_cr_empty_and_200kb_lines",  # a 200 KB line
        "TestBlocksTheLoop::test_send_never_blocks_the_event_loop",
        "TestStopFailsTwice::test_stop_is_idempotent_and_safe_without_start",
        "TestStopFailsTwice::test_stop_is_safe_after_start_against_a_broken_destination",
        "TestOverlapsBadly::test_its_limits_are_valid_and_overlapping_calls_for_different_files_all_arrive",
    ])


def test_a_sink_case_without_a_breakable_destination_skips_only_the_failure_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_unbreakable=textwrap.dedent('''
        import pytest
        import logferry
        from logferry.testing import SinkCase, SinkContract

        LINES = []

        class ListSink(logferry.Sink):
            async def send(self, batch):
                LINES.extend(line for _, line in batch.records())

        class TestListSink(SinkContract):
            @pytest.fixture
            def sink_case(self):
                LINES.clear()
                return SinkCase(make=lambda: ListSink("list:"), received=lambda: list(LINES))
    '''))
    result = pytester.runpytest_subprocess("-p", "logferry.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, skipped=3)  # the failure tests, and overlapping calls (it takes one)


def test_the_testing_plugin_is_opt_in() -> None:
    registered = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.value.startswith("logferry")]
    assert registered == []


# -- the plugin fixtures ------------------------------------------------------------------------


class EchoSink(Sink):
    """Echoes every batch back into a list."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.got: list[bytes] = []

    async def send(self, batch: Batch) -> None:
        self.got.append(bytes(batch.data))


class EchoPlugin:
    @hookimpl
    def logferry_sink_schemes(self) -> list[str]:
        return ["echo"]

    @hookimpl
    def logferry_make_sink(self, url: str, scheme: str, options: dict, settings: Settings) -> Sink:
        return EchoSink(url)


def test_plugin_manager_holds_only_the_built_in_plugins(plugin_manager: PluginHost) -> None:
    assert [info.origin for info in plugin_manager.listing()] == ["built-in", "built-in", "built-in"]
    assert sorted(plugin_manager.schemes()) == ["file", "null", "stdout"]
    assert sorted(plugin_manager.processor_types()) == ["drop", "fields", "json", "keep", "logfmt", "multiline",
                                                       "redact", "regex"]


def test_plugin_manager_ignores_installed_plugins_and_the_block_list(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("LOGFERRY_DISABLE_PLUGINS", "logferry.sinks.builtin")
    monkeypatch.setenv("LOGFERRY_LOAD_PLUGINS", "anything")
    host: PluginHost = request.getfixturevalue("plugin_manager")
    assert {(info.origin, info.status) for info in host.listing()} == {("built-in", "loaded")}


def test_a_registered_plugin_serves_its_scheme_through_make_sink(plugin_manager: PluginHost,
                                                                 register_plugin) -> None:
    assert register_plugin(EchoPlugin(), name="echo") == "echo"
    sink = plugin_manager.make_sink("echo://anywhere", {}, Settings())
    assert isinstance(sink, EchoSink)
    asyncio.run(sink.send(Batch("a.log", "f", 0, 6, b"hello\n")))
    assert sink.got == [b"hello\n"]
    info = {i.name: i for i in plugin_manager.listing()}["echo"]
    assert (info.origin, info.status, info.schemes) == ("registered", "loaded", ["echo"])


def test_register_plugin_unregisters_at_the_end_of_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixture=textwrap.dedent('''
        import pytest
        import logferry

        class Echo:
            @logferry.hookimpl
            def logferry_sink_schemes(self):
                return ["echo"]

        @pytest.fixture(scope="module")
        def shared_host():
            from logferry.plugins import get_plugin_manager
            return get_plugin_manager(load_entrypoints=False)

        @pytest.fixture
        def plugin_manager(shared_host):  # one host across tests, to see what each test leaves
            return shared_host

        def test_registers(plugin_manager, register_plugin):
            register_plugin(Echo(), name="echo")
            assert "echo" in plugin_manager.schemes()

        def test_left_nothing_behind(plugin_manager):
            assert "echo" not in plugin_manager.schemes()
            assert "echo" not in [info.name for info in plugin_manager.listing()]
    '''))
    result = pytester.runpytest_subprocess("-p", "logferry.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
