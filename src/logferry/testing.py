"""Opt-in pytest helpers for logferry plugin authors: a fresh plugin host, and the sink contract.

logferry does not load this plugin on its own. Enable it in your ``conftest.py``::

    pytest_plugins = ["logferry.testing"]

or on the command line with ``pytest -p logferry.testing``. It provides:

* the ``plugin_manager`` fixture: a fresh :class:`logferry.plugins.PluginHost` with only the
  built-in plugins (no installed entry point, whatever the environment says);
* the ``register_plugin`` fixture: ``register_plugin(plugin, name=None)`` registers a plugin object
  or module on that host for one test;
* :class:`SinkContract`: subclass it, define a ``sink_case`` fixture returning a :class:`SinkCase`,
  and your sink is checked for everything the engine relies on (order, acknowledgement, any bytes,
  errors that surface, idempotent stop, flush on stop, a loop that never blocks);
* :func:`run_debug` / :func:`run_without_blocking`: run a coroutine in asyncio debug mode and
  collect (or fail on) callbacks that blocked the event loop;
* :func:`free_port` / :func:`stop_process`: for tests against a real server on 127.0.0.1, a port
  to start it on and a stop that always reaps it (SIGKILL stops it as a crash would).

The contract's tests need no asyncio plugin for pytest: each runs its own loop.

How a blocked loop is told from a busy machine. asyncio's own report times each callback by the
wall clock, which a loaded machine stretches: a 5 ms callback takes 80 ms while other processes
hold every CPU. The detector here times every callback of the loop itself and counts only the time
the code under test held it: time on a CPU, and time asleep in a blocking call (``time.sleep``, a
read, a wait for a lock or a thread). It does not count the time the loop thread was ready to run
but waited for a CPU (the kernel's per-thread count in ``/proc/self/task/TID/schedstat`` bounds
the total), nor waits for the GIL, nor the test's own code. To tell them apart, a watchdog thread
looks at the loop thread every 5 ms while a callback runs long: its CPU clock, the system call it
sleeps in (``/proc/self/task/TID/syscall``: a futex is the GIL unless a lock's or a thread's wait
function sleeps in it; ``Thread.start`` waiting for a CPU for the new thread does not count), and
its Python stack. A stretch counts against the code under test when one of its frames is on that
stack: logferry (but this module), the packages of the installed plugins (``logferry`` entry
points), and the methods of every :class:`~logferry.Sink` subclass wherever it is defined. More
than the threshold (50 ms) of it blocks the loop on any machine; a callback that was slow only by
the wall clock is *excused* (``SlowCallbacks.excused``). With ``LOGFERRY_SLOW_CALLBACKS=FILE``
every verdict, either way, is appended to FILE with the test's name and its figures.
Where /proc is missing (not Linux), waiting for a CPU or the GIL cannot be told apart, and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import importlib.util
import inspect
import itertools
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, TypeVar

import pytest

from .plugins import PluginHost, get_plugin_manager
from .records.batch import Batch
from .sinks.base import Sink
from .sinks.threadloop import quick_gil_handoff

__all__ = [
    "SLOW_CALLBACK",
    "SinkCase",
    "SinkContract",
    "SlowCallbacks",
    "free_port",
    "plugin_manager",
    "register_plugin",
    "run_debug",
    "run_without_blocking",
    "stop_process",
]

T = TypeVar("T")

SLOW_CALLBACK = 0.05
"""Seconds a callback may hold the event loop before it counts as blocking it."""


# -- the event-loop blocking detector (the module's docstring says how it judges) -------------

_SAMPLE_EVERY = 0.005  # seconds between two looks at the stack of a callback that runs long


class SlowCallbacks(list[str]):
    """The callbacks that blocked the loop, one message each (empty: none did).

    :attr:`excused` has a message for each callback that was slow only by the wall clock: it waited
    for a CPU or the GIL, or the time went to the test's own code.
    """

    def __init__(self) -> None:
        super().__init__()
        self.excused: list[str] = []


@dataclass
class _Point:
    """One moment of a callback on the loop thread, as the loop or the watchdog saw it."""

    at: float
    cpu: float | None
    """The loop thread's CPU time so far, in seconds (None where it cannot be read)."""
    blocked: bool = True
    """In a blocking call (sleep, read, lock): its time off a CPU counts as holding the loop.
    False: running, ready to run, or waiting for the GIL. True where it cannot be told."""
    stack: tuple[tuple[CodeType, int], ...] = ()
    """The loop thread's Python frames inside the callback, innermost first."""


def _run_handle(handle: asyncio.Handle) -> None:
    """Replaces ``asyncio.Handle._run`` while a watch runs: callbacks of a watched loop are timed."""
    watch = _WATCHES.get(handle._loop)  # type: ignore[attr-defined]  # asyncio's own attribute
    if watch is None:
        _HANDLE_RUN(handle)
    else:
        watch.run(handle)


_HANDLE_RUN = asyncio.Handle._run
_WATCHES: dict[asyncio.AbstractEventLoop, _LoopWatch] = {}
_WATCHES_LOCK = threading.Lock()
# The functions that wait for a lock or a thread (Condition.wait, Thread.join, Queue.get,
# Future.result): the futex they wait in is a blocking call. A futex anywhere else, also in other
# code of these modules (Thread.__init__, say), is the GIL.
_STDLIB = os.path.dirname(threading.__file__)
_LOCK_WAITS = frozenset(
    [(os.path.join(_STDLIB, "threading.py"), name) for name in ("wait", "join", "_wait_for_tstate_lock", "acquire")]
    + [(os.path.join(_STDLIB, "queue.py"), name) for name in ("get", "put", "join")]
    + [(os.path.join(_STDLIB, "concurrent", "futures", "_base.py"), name)
       for name in ("result", "exception", "wait", "as_completed")])
# Thread.start waits until the new thread runs: on a busy machine, until a CPU is free for it. That
# is the machine's load, like the loop thread's own wait for a CPU: not counted.
_THREAD_START = threading.Thread.start.__code__


class _LoopWatch:
    """Times each callback of one loop, run on the current thread, and judges the slow ones."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self.loop, self.threshold = loop, threshold
        self.slow = SlowCallbacks()
        self.current: _Point | None = None  # the running callback's start: the watchdog's cue
        self._samples: list[_Point] = []
        self._waiting_at_start = 0.0
        self._thread = threading.get_ident()
        self._proc = _ThreadFiles(threading.get_native_id())
        try:
            self._cpu_clock: int | None = time.pthread_getcpuclockid(self._thread)
        except (AttributeError, OSError):
            self._cpu_clock = None
        self._futex = _futex()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._sample, name="logferry.testing watchdog", daemon=True)

    def __enter__(self) -> _LoopWatch:
        with _WATCHES_LOCK:
            _WATCHES[self.loop] = self
            asyncio.Handle._run = _run_handle  # type: ignore[method-assign,assignment]  # timed while watched
        self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watchdog.join()
        with _WATCHES_LOCK:
            del _WATCHES[self.loop]
            if not _WATCHES:
                asyncio.Handle._run = _HANDLE_RUN  # type: ignore[method-assign]
        self._proc.close()

    def run(self, handle: asyncio.Handle) -> None:
        self._waiting_at_start = self._proc.waiting()
        start = _Point(time.perf_counter(), time.thread_time())
        self._samples = []
        self.current = start
        try:
            _HANDLE_RUN(handle)
        finally:
            self.current = None
            end = _Point(time.perf_counter(), time.thread_time())
            if end.at - start.at >= self.threshold:
                self._judge(handle, start, end, self._proc.waiting() - self._waiting_at_start)

    def _sample(self) -> None:
        """The watchdog: while one callback runs longer than a sampling period, note what it does."""
        while not self._stop.wait(_SAMPLE_EVERY):
            start = self.current
            if start is None or time.perf_counter() - start.at < _SAMPLE_EVERY:
                continue
            samples = self._samples
            syscall = self._proc.syscall()
            cpu = time.clock_gettime(self._cpu_clock) if self._cpu_clock is not None else None
            frame = sys._current_frames().get(self._thread)
            stack = _stack(frame)
            # A futex is the GIL (the watchdog holds it now), unless the thread waits in a lock's code.
            blocked = syscall is None or syscall != _RUNS and (syscall != self._futex or _waits_for_a_lock(stack))
            if self.current is start:  # else the callback ended meanwhile: the stack may be another one's
                samples.append(_Point(time.perf_counter(), cpu, blocked, stack))

    def _judge(self, handle: asyncio.Handle, start: _Point, end: _Point, waited: float) -> None:
        samples = self._samples
        tested = _CodeUnderTest()
        held = own = 0.0  # seconds: in the code under test; in the test's own code
        seen: list[tuple[CodeType, int]] = []
        for before, after in itertools.pairwise([start, *samples, end]):
            # A stretch is what the sample after it saw (the last one: what the last sample saw).
            # No sample at all (the watchdog was late): the whole callback counts, to be safe.
            look = after if after is not end else (samples[-1] if samples else None)
            span = after.at - before.at
            if look is not None and before.cpu is not None and after.cpu is not None:
                on_cpu = min(span, max(0.0, after.cpu - before.cpu))
                span = span if look.blocked else on_cpu
            if look is None or tested.on(look.stack):
                held += span
                if look is not None:
                    seen.append(tested.innermost(look.stack))
            else:
                own += span
        wall = end.at - start.at
        # The kernel's count, exact at both ends, bounds what the samples estimated.
        held = min(held, max(0.0, wall - waited))
        what = f"Executing {_describe(handle)}"
        cpu = f"{end.cpu - start.cpu:.3f}" if end.cpu is not None and start.cpu is not None else "?"
        figures = (f"{wall:.3f} s by the wall clock, {cpu} s of it on a CPU, "
                   f"{waited:.3f} s waiting for one, {own:.3f} s in the test's own code")
        if held >= self.threshold:
            where = f", at {_where(max(seen, key=seen.count))}" if seen else ""
            message = f"{what} held the loop for {held:.3f} seconds in the code under test{where} ({figures})"
            self.slow.append(message)
        else:
            message = f"{what} took {wall:.3f} seconds, excused: {held:.3f} s in the code under test ({figures})"
            self.slow.excused.append(message)
        _log_slow(message)


def _waits_for_a_lock(stack: tuple[tuple[CodeType, int], ...]) -> bool:
    """Whether a thread sleeping in a futex with this stack waits for a lock or a thread (not the GIL,
    nor a new thread's start)."""
    return (bool(stack) and (stack[0][0].co_filename, stack[0][0].co_name) in _LOCK_WAITS
            and not any(code is _THREAD_START for code, _ in stack))


def _stack(frame: FrameType | None) -> tuple[tuple[CodeType, int], ...]:
    """The frames of the running callback, innermost first: up to the watch's own ``run``."""
    stack = []
    while frame is not None and frame.f_code is not _LoopWatch.run.__code__:
        stack.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return tuple(stack)


class _ThreadFiles:
    """What Linux tells of one thread (``/proc/self/task/TID``); elsewhere nothing is known."""

    def __init__(self, native_id: int) -> None:
        self._fds: dict[str, int] = {}
        for name in ("schedstat", "stat", "syscall"):
            with contextlib.suppress(OSError):
                self._fds[name] = os.open(f"/proc/self/task/{native_id}/{name}", os.O_RDONLY)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)

    def _read(self, name: str) -> bytes | None:
        fd = self._fds.get(name)
        if fd is None:
            return None
        try:
            return os.pread(fd, 512, 0)
        except OSError:
            return None

    def waiting(self) -> float:
        """Seconds the thread has waited, ready to run, for a CPU (0 where not known: it counts)."""
        data = self._read("schedstat")
        return int(data.split()[1]) / 1e9 if data else 0.0

    def syscall(self) -> int | None:
        """The number of the system call the thread sleeps in; ``_RUNS``: it runs or is ready to
        run; None: not known."""
        stat, syscall = self._read("stat"), self._read("syscall")
        if stat is None or syscall is None:
            return None
        if stat[stat.rindex(b")") + 2:][:1] not in b"SD":
            return _RUNS
        try:
            number = int(syscall.split()[0])  # "running", or -1 outside a system call
        except ValueError:
            return _RUNS
        return number if number >= 0 else _RUNS


_RUNS = -1


@functools.cache
def _futex() -> int | None:
    """The system call a thread waiting for a lock (or the GIL) sleeps in, as /proc shows it."""
    lock = threading.Lock()
    lock.acquire()
    waiter = threading.Thread(target=lock.acquire, daemon=True)
    waiter.start()
    files = _ThreadFiles(waiter.native_id or 0)
    try:
        for _ in range(1000):  # until the waiter sleeps in its wait
            number = files.syscall()
            if number != _RUNS:
                return number
            time.sleep(0.001)
        return None
    finally:
        files.close()
        lock.release()
        waiter.join()


class _CodeUnderTest:
    """Which frames belong to the code under test: logferry (but this module), the packages that
    registered ``logferry`` entry points (plugins), and the methods of every :class:`Sink`
    subclass wherever it is defined (a sink in a test file is the code under test there)."""

    def __init__(self) -> None:
        self.codes: set[CodeType] = set()
        pending = [Sink]
        while pending:
            cls = pending.pop()
            pending.extend(cls.__subclasses__())
            for value in vars(cls).values():
                function = getattr(value, "__func__", value)
                code = getattr(function, "__code__", None)
                if isinstance(code, CodeType):
                    self._add(code)

    def _add(self, code: CodeType) -> None:
        self.codes.add(code)
        for const in code.co_consts:  # functions defined inside a method
            if isinstance(const, CodeType):
                self._add(const)

    def frame(self, code: CodeType) -> bool:
        filename = code.co_filename
        if filename == __file__:
            return False
        return code in self.codes or filename.startswith(_product_directories())

    def on(self, stack: tuple[tuple[CodeType, int], ...]) -> bool:
        return any(self.frame(code) for code, _ in stack)

    def innermost(self, stack: tuple[tuple[CodeType, int], ...]) -> tuple[CodeType, int]:
        """The innermost frame under test, where the time went (the C call it made has no frame)."""
        return next(entry for entry in stack if self.frame(entry[0]))


@functools.cache
def _product_directories() -> tuple[str, ...]:
    """The directories of logferry's package and of every installed plugin's top-level package."""
    names = {"logferry"} | {ep.module.partition(".")[0] for ep in importlib.metadata.entry_points(group="logferry")}
    directories: list[str] = []
    for name in sorted(names):
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                directories.extend(os.path.join(path, "") for path in spec.submodule_search_locations)
            elif spec is not None and spec.origin:
                directories.append(spec.origin)
    return tuple(directories)


def _describe(handle: asyncio.Handle) -> str:
    """The callback in a few words: a task step by the task's name and coroutine."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return f"{task.get_name()} ({getattr(coro, '__qualname__', coro)})"
    return getattr(callback, "__qualname__", repr(handle))


def _where(entry: tuple[CodeType, int]) -> str:
    code, line = entry
    return f"{code.co_qualname} ({code.co_filename}:{line})"


def _log_slow(message: str) -> None:
    """With ``LOGFERRY_SLOW_CALLBACKS=FILE``, append every verdict to FILE, with the test's name."""
    path = os.environ.get("LOGFERRY_SLOW_CALLBACKS")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?")
        with open(path, "a") as log:
            log.write(f"{test}: {message}\n")


def run_debug(main: Callable[[], Awaitable[T]], slow_callback: float = SLOW_CALLBACK) -> tuple[T, SlowCallbacks]:
    """Run ``main()`` in asyncio debug mode and watch every callback of its loop (threshold 50 ms).

    Returns its result and the callbacks that held the loop longer than ``slow_callback`` seconds in
    the code under test (see the module's comment on the detector), one message each. Threads hand
    the GIL back as quickly as they do under the engine, so a sink's busy writer thread is measured
    as it will run there.
    """

    async def wrapper() -> T:
        return await main()

    with quick_gil_handoff(), asyncio.Runner(debug=True) as runner:
        loop = runner.get_loop()
        loop.slow_callback_duration = math.inf  # its wall-clock warnings: the watch judges instead
        with _LoopWatch(loop, slow_callback) as watch:
            try:
                result = runner.run(wrapper())
            finally:
                runner.close()  # its last callbacks (async generators, the executor) are watched too
    return result, watch.slow


def run_without_blocking(main: Callable[[], Awaitable[T]], slow_callback: float = SLOW_CALLBACK) -> T:
    """Like :func:`run_debug`, and fail the test if any callback blocked the loop."""
    result, slow = run_debug(main, slow_callback)
    if slow:
        pytest.fail(f"callbacks blocked the event loop for more than {slow_callback}s: {list(slow)}")
    return result


# -- real servers -----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on now: the kernel's pick, released at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send ``sig`` to ``proc`` unless it has ended, and reap it; still running after ``timeout``
    seconds, it is killed. A test server stopped with ``signal.SIGKILL`` stops as in a crash."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def plugin_manager() -> PluginHost:
    """A fresh plugin host with only logferry's built-in plugins: no entry point is loaded and
    ``LOGFERRY_DISABLE_PLUGINS`` is ignored, so tests do not depend on what is installed."""
    return get_plugin_manager(load_entrypoints=False, blocked=set())


@pytest.fixture
def register_plugin(plugin_manager: PluginHost) -> Iterator[Callable[..., str]]:
    """``register_plugin(plugin, name=None) -> name``: register a plugin object or module on
    ``plugin_manager`` for the current test; it is unregistered when the test ends."""
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered = plugin_manager.register(plugin, name=name)
        names.append(registered)
        return registered

    yield register
    for name in reversed(names):
        plugin_manager.unregister(name)


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
