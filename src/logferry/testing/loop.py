"""The event-loop blocking detector behind :func:`run_debug` (the package's docstring says how it judges)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.metadata
import importlib.util
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, TypeVar

import pytest

from ..sinks.base import Sink
from ..sinks.threadloop import quick_gil_handoff

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

    # What the test process holds already is left out of the collector's work while the run lasts: in
    # a long test session a full collection walks every object of it (tens of milliseconds), in
    # whichever callback happens to trigger it. That is the session's cost, not the code under test's.
    gc.freeze()
    try:
        return _run_watched(wrapper, slow_callback)
    finally:
        gc.unfreeze()


def _run_watched(wrapper: Callable[[], Coroutine[Any, Any, T]], slow_callback: float) -> tuple[T, SlowCallbacks]:
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


