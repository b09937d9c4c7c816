"""The sink contract: the tests every sink passes (see :class:`SinkContract`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..records.batch import Batch
from ..sinks.base import Sink
from .loop import T, run_without_blocking

# -- the sink contract ------------------------------------------------------------------


@dataclass
class SinkCase:
    """How :class:`SinkContract` drives one sink and looks at its destination.

    Functions may be plain or async. Plain ones run on a worker thread (blocking is fine there);
    async ones (or functions returning an awaitable) are awaited on the test's event loop, which is
    a new loop in every test, so create async clients inside the call.
    """

    make: Callable[[], Sink]
    """Build a fresh, unstarted sink writing to the destination."""
    received: Callable[[], list[bytes] | Awaitable[list[bytes]]]
    """Every line that reached the destination so far, in arrival order, each line's bytes without
    its newline (for a sink writing JSON records: the ``line`` field, encoded as UTF-8)."""
    break_destination: Callable[[], Any] | None = None
    """Make the destination fail (stop the server, fill the disk…); None skips the tests needing it."""
    repair_destination: Callable[[], Any] | None = None
    """Make the destination work again after :attr:`break_destination`."""
    exact_bytes: bool = True
    """True when lines arrive byte for byte; False for sinks that encode text (JSON), whose lines
    are compared after ``decode("utf-8", "replace")``."""


class SinkContract:
    """The tests every sink passes. Subclass it and define the ``sink_case`` fixture::

        class TestMySink(SinkContract):
            @pytest.fixture
            def sink_case(self, tmp_path) -> SinkCase:
                return SinkCase(make=lambda: MySink(...), received=lambda: ...)

    Each test runs its body in asyncio debug mode and fails if any callback held the event loop
    longer than :data:`SLOW_CALLBACK` in the sink's code (a busy machine or the contract's own
    work does not count: see the module's docstring). Sends run one at a time, as the engine runs them, and every
    ``start``, ``send`` and ``stop`` must finish within :attr:`send_timeout`. After a ``send``
    returns, the contract overwrites the batch's buffer, as the engine reuses its read buffers: a
    sink must copy what it keeps.
    """

    send_timeout: float = 10.0
    """Seconds any one ``start``, ``send``, ``stop`` or destination call may take."""

    @pytest.fixture
    def sink_case(self) -> SinkCase:
        """Override in the subclass: return the :class:`SinkCase` of a fresh, empty destination."""
        pytest.fail(f"{type(self).__name__} must define a `sink_case` fixture returning a logferry.testing.SinkCase")

    # -- (a) order and acknowledgement ------------------------------------------------

    def test_lines_arrive_in_order_per_file_and_are_readable_as_soon_as_send_returns(
        self, sink_case: SinkCase
    ) -> None:
        files = _Files("a.log", "b.log")

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)
            sink = sink_case.make()
            await self._within(sink.start(), "start")
            try:
                for batch in files.interleaved(batches=6, lines=25):
                    await self._send(sink, batch)
                    # Acknowledged means durable: readable now, before any stop or flush.
                    files.check(await dest.new_lines(), sink_case.exact_bytes, after=f"send of {batch.path}")
            finally:
                await self._within(sink.stop(), "stop")
            files.check(await dest.new_lines(), sink_case.exact_bytes, after="stop")

        run_without_blocking(body)

    # -- (b) any bytes -----------------------------------------------------------------

    def test_any_bytes_survive_invalid_utf8_nul_cr_empty_and_200kb_lines(self, sink_case: SinkCase) -> None:
        lines = [
            b"plain ascii",
            b"\xff\xfe\xfd invalid utf-8 \xc3",
            b"nul\x00inside",
            b"",
            "h\u00e9llo w\u00f6rld \u2713 \U0001f680".encode(),
            b"carriage return at the end\r",
            b"tab\there \x1b[31mescape\x1b[0m",
            b"x" * 200_000 + b" end of a 200 KB line",
            b"last",
        ]

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)
            sink = sink_case.make()
            await self._within(sink.start(), "start")
            try:
                await self._send(sink, _batch("bytes.log", 0, lines))
                await self._send(sink, _batch("bytes.log", 1, [b""]))  # a batch of one empty line
            finally:
                await self._within(sink.stop(), "stop")
            got = await dest.new_lines()
            _assert_lines(got, [*lines, b""], sink_case.exact_bytes)

        run_without_blocking(body)

    def test_send_many_delivers_every_batch_in_order_before_it_returns(self, sink_case: SinkCase) -> None:
        files = _Files("a.log", "b.log")

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)
            sink = sink_case.make()
            send_many = getattr(sink, "send_many", None)
            if send_many is None:
                pytest.skip("this logferry's Sink has no send_many")
            await self._rounds(sink, dest, files, sink_case.exact_bytes, 4, send_many, "send_many")

        run_without_blocking(body)

    def test_its_limits_are_valid_and_overlapping_calls_for_different_files_all_arrive(
        self, sink_case: SinkCase
    ) -> None:
        sink = sink_case.make()
        for name, least in (("max_bytes_per_send", 1), ("max_lines_per_send", 0), ("max_sends_in_flight", 1)):
            value = getattr(sink, name, least)
            assert isinstance(value, int) and value >= least, f"{name} must be an int >= {least}, not {value!r}"
        interval = getattr(sink, "send_interval", 0.0)
        assert isinstance(interval, int | float) and interval >= 0, f"send_interval must be >= 0, not {interval!r}"
        calls = min(getattr(sink, "max_sends_in_flight", 1), 4)
        if calls < 2:
            pytest.skip("this sink takes one call at a time")
        files = _Files(*(f"file{i}.log" for i in range(calls)))

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)

            async def overlapping(batches: list[Batch]) -> None:  # as the engine does: never one file in two
                per_file = [[b for b in batches if b.path == path] for path in files.sent]
                await asyncio.gather(*(sink.send_many(group) for group in per_file))

            await self._rounds(sink, dest, files, sink_case.exact_bytes, 2, overlapping,
                               f"{calls} overlapping send_many calls")

        run_without_blocking(body)

    # -- (c) errors surface ------------------------------------------------------------

    def test_send_raises_while_the_destination_is_broken_and_succeeds_after_repair(
        self, sink_case: SinkCase
    ) -> None:
        breaks, repairs = _breakers(sink_case)
        files = _Files("a.log")

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)
            sink = sink_case.make()
            await self._within(sink.start(), "start")
            try:
                before = next(files.interleaved(batches=1, lines=5))
                await self._send(sink, before)
                await self._within(_call(breaks), "break_destination")
                try:
                    await self._send_to_broken(sink, next(files.interleaved(batches=1, lines=5)))
                finally:
                    await self._within(_call(repairs), "repair_destination")
                after = _batch("after.log", 0, [b"sent after the repair"])
                await self._send_until_accepted(sink, after)
            finally:
                await self._within(sink.stop(), "stop")
            got = await dest.new_lines()
            _assert_lines([line for line in got if line.startswith(b"a.log ")][:5], files.sent["a.log"][:5],
                          sink_case.exact_bytes, "the lines acknowledged before the break")
            _assert_lines(got[-1:], [b"sent after the repair"], sink_case.exact_bytes, "the batch sent after repair")

        run_without_blocking(body)

    # -- (d) stop ----------------------------------------------------------------------

    def test_stop_is_idempotent_and_safe_without_start(self, sink_case: SinkCase) -> None:
        async def body() -> None:
            never_started = sink_case.make()
            await self._within(never_started.stop(), "stop without start")
            await self._stop_again(never_started)

            sink = sink_case.make()
            await self._within(sink.start(), "start")
            await self._send(sink, _batch("a.log", 0, [b"one line"]))
            await self._within(sink.stop(), "stop")
            await self._stop_again(sink)

        run_without_blocking(body)

    def test_stop_is_safe_after_start_against_a_broken_destination(self, sink_case: SinkCase) -> None:
        breaks, repairs = _breakers(sink_case)

        async def body() -> None:
            await self._within(_call(breaks), "break_destination")
            try:
                sink = sink_case.make()
                with contextlib.suppress(Exception):  # refusing to start is a fine answer; stop must still work
                    await self._within(sink.start(), "start against a broken destination")
                await self._within(sink.stop(), "stop after start against a broken destination")
                await self._stop_again(sink)
            finally:
                await self._within(_call(repairs), "repair_destination")

        run_without_blocking(body)

    # -- (e) flush on stop -------------------------------------------------------------

    def test_everything_sent_is_at_the_destination_after_stop(self, sink_case: SinkCase) -> None:
        files = _Files("a.log", "b.log", "c.log")

        async def body() -> None:
            dest = await _Destination.open(sink_case, self.send_timeout)
            sink = sink_case.make()
            await self._within(sink.start(), "start")
            try:
                for batch in files.interleaved(batches=100, lines=2):
                    await self._send(sink, batch)
            finally:
                await self._within(sink.stop(), "stop")
            files.check(await dest.new_lines(), sink_case.exact_bytes, after="stop")

        run_without_blocking(body)

    # -- (f) the event loop ------------------------------------------------------------

    def test_send_never_blocks_the_event_loop(self, sink_case: SinkCase) -> None:
        files = _Files("a.log", "b.log")
        batches = list(files.interleaved(batches=2, lines=10_000, width=100))  # 1 MB each: a full read

        async def sends() -> None:
            sink = sink_case.make()
            await self._within(sink.start(), "start")
            try:
                for batch in batches:
                    await self._send(sink, batch)
            finally:
                await self._within(sink.stop(), "stop")

        # Only the sink's own work is timed: reading a large destination back may take a while.
        dest = asyncio.run(_Destination.open(sink_case, self.send_timeout))
        run_without_blocking(sends)
        files.check(asyncio.run(dest.new_lines()), sink_case.exact_bytes, after="stop")

    # -- helpers -----------------------------------------------------------------------

    async def _rounds(self, sink: Sink, dest: _Destination, files: _Files, exact_bytes: bool, batches: int,
                      deliver: Callable[[list[Batch]], Awaitable[None]], what: str) -> None:
        """Start ``sink``; three times: ``deliver`` interleaved batches of ``files``, check the
        destination, overwrite the batches' buffers (as the engine reuses them); stop it."""
        await self._within(sink.start(), "start")
        try:
            for _ in range(3):
                sent = list(files.interleaved(batches=batches, lines=10))
                await self._within(deliver(sent), what)
                files.check(await dest.new_lines(), exact_bytes, after=what)
                for batch in sent:
                    _scribble(batch)
        finally:
            await self._within(sink.stop(), "stop")

    async def _within(self, awaitable: Awaitable[T], what: str) -> T:
        timeout = asyncio.timeout(self.send_timeout)
        try:
            async with timeout:
                return await awaitable
        except TimeoutError:
            if timeout.expired():
                pytest.fail(f"{what} did not finish within {self.send_timeout}s")
            raise

    async def _stop_again(self, sink: Sink) -> None:
        try:
            await self._within(sink.stop(), "second stop")
        except Exception as exc:  # noqa: BLE001 - reported as the broken promise
            pytest.fail(f"a second stop raised {exc!r}: stop must be safe to call twice")

    async def _send(self, sink: Sink, batch: Batch) -> None:
        await self._within(sink.send(batch), f"send of {len(batch)} bytes from {batch.path}")
        _scribble(batch)  # the engine reuses the buffer once send returned

    async def _send_to_broken(self, sink: Sink, batch: Batch) -> None:
        timeout = asyncio.timeout(self.send_timeout)
        try:
            async with timeout:
                await sink.send(batch)
        except TimeoutError:
            if timeout.expired():
                pytest.fail(f"send hung for {self.send_timeout}s with the destination broken: it must raise")
        except Exception:  # noqa: BLE001, S110 - any exception is the right answer here
            pass
        else:
            pytest.fail("send returned with the destination broken: it acknowledged a batch it did not deliver")

    async def _send_until_accepted(self, sink: Sink, batch: Batch) -> None:
        """Send as the engine does after a failure: again, with a short backoff, until accepted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        while True:
            try:
                await self._within(sink.send(batch), "send after repair")
            except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
                if loop.time() > deadline:
                    pytest.fail(f"send still fails {self.send_timeout}s after the destination was repaired: {exc!r}")
                await asyncio.sleep(0.1)
            else:
                _scribble(batch)
                return


# -- the contract's helpers --------------------------------------------------------------


def _batch(path: str, offset: int, lines: list[bytes]) -> Batch:
    """A batch of ``lines`` from ``path`` whose data is a view of a buffer, as the engine sends them."""
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path=path, file_id=f"id-{path}", offset=offset, end=offset + len(data),
                 data=memoryview(bytearray(data)))


def _scribble(batch: Batch) -> None:
    if isinstance(batch.data, memoryview) and not batch.data.readonly:
        batch.data[:] = b"#" * len(batch.data)


class _Files:
    """Numbered lines of several files, handed out as interleaved batches, and the order check."""

    def __init__(self, *paths: str) -> None:
        self.sent: dict[str, list[bytes]] = {path: [] for path in paths}
        self.offsets = dict.fromkeys(paths, 0)

    def interleaved(self, batches: int, lines: int, width: int = 0) -> Iterator[Batch]:
        for _ in range(batches):
            for path in self.sent:
                numbered = [self._line(path, width) for _ in range(lines)]
                batch = _batch(path, self.offsets[path], numbered)
                self.offsets[path] = batch.end
                yield batch

    def _line(self, path: str, width: int) -> bytes:
        line = f"{path} {len(self.sent[path]):07d} ".encode()
        line += b"." * max(0, width - len(line))
        self.sent[path].append(line)
        return line

    def check(self, received: list[bytes], exact_bytes: bool, after: str) -> None:
        """Every line sent so far is at the destination, once, in order per file."""
        prefixes = {path: f"{path} ".encode() for path in self.sent}
        strays = [line for line in received if not line.startswith(tuple(prefixes.values()))]
        hint = ""
        if strays:
            hint = (f" ({len(strays)} lines at the destination belong to no file sent, e.g. {strays[0][:40]!r}: "
                    "did the sink keep batch.data after send returned? copy it)")
        for path, expected in self.sent.items():
            got = [line for line in received if line.startswith(prefixes[path])]
            _assert_lines(got, expected, exact_bytes, f"the lines of {path} after {after}", hint)


def _assert_lines(got: list[bytes], expected: list[bytes], exact_bytes: bool, what: str = "the lines",
                  hint: str = "") -> None:
    if not exact_bytes:
        got = [line.decode("utf-8", "replace").encode() for line in got]
        expected = [line.decode("utf-8", "replace").encode() for line in expected]
    if got == expected:
        return
    missing = len(expected) - len(got)
    first = next((i for i, (g, e) in enumerate(zip(got, expected, strict=False)) if g != e),
                 min(len(got), len(expected)))
    shown = (got[first:first + 1] or [b"(nothing)"])[0][:80]
    wanted = (expected[first:first + 1] or [b"(nothing)"])[0][:80]
    pytest.fail(f"{what}: {len(got)} received, {len(expected)} expected ({missing:+d} missing); "
                f"first difference at line {first}: got {shown!r}, expected {wanted!r}{hint}")


class _Destination:
    """Reads a SinkCase's destination, ignoring what was there before the test."""

    def __init__(self, case: SinkCase, timeout: float, baseline: int) -> None:
        self.case, self.timeout, self.baseline = case, timeout, baseline

    @classmethod
    async def open(cls, case: SinkCase, timeout: float) -> _Destination:
        async with asyncio.timeout(timeout):
            baseline = len(await _call(case.received))
        return cls(case, timeout, baseline)

    async def new_lines(self) -> list[bytes]:
        async with asyncio.timeout(self.timeout):
            lines = await _call(self.case.received)
        return [bytes(line) for line in lines[self.baseline:]]


def _breakers(case: SinkCase) -> tuple[Callable[[], Any], Callable[[], Any]]:
    if case.break_destination is None or case.repair_destination is None:
        pytest.skip("this SinkCase cannot break its destination (break_destination/repair_destination are None)")
    return case.break_destination, case.repair_destination


async def _call(fn: Callable[[], Any]) -> Any:
    """Call a SinkCase function: async ones on the loop, plain ones on a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    result = await asyncio.to_thread(fn)
    if inspect.isawaitable(result):
        result = await result
    return result

