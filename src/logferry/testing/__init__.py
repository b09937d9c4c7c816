"""Opt-in pytest helpers for logferry plugin authors: a fresh plugin host, and the sink contract.

logferry does not load this plugin on its own. Enable it in your ``conftest.py``::

    pytest_plugins = ["logferry.testing"]

or on the command line with ``pytest -p logferry.testing``. It provides:

* the ``plugin_manager`` fixture: a fresh :class:`logferry.plugins.PluginHost` with only the
  built-in plugins (no installed entry point, whatever the environment says);
* the ``register_plugin`` fixture: ``register_plugin(plugin, name=None)`` registers a plugin object
  or module on that host for one test;
* :class:`ProcessorContract`: subclass it, define a ``processor_case`` fixture returning a
  :class:`ProcessorCase`, and your processor is checked for what the processing stage relies on
  (order, positions and ids kept, output independent of batch boundaries, nothing silently
  dropped, held lines named and released on flush); :func:`processed_batch`, ``SAMPLE_LOG``,
  ``SAMPLE_PROCESSORS`` and ``SAMPLE_TRACE`` test a sink with records as processors make them;
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

import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..plugins import PluginHost, get_plugin_manager
from .loop import SLOW_CALLBACK, SlowCallbacks, run_debug, run_without_blocking
from .processors import SAMPLE_LOG, SAMPLE_PROCESSORS, SAMPLE_TRACE, ProcessorCase, ProcessorContract, processed_batch
from .sinks import SinkCase, SinkContract

__all__ = [
    "SAMPLE_LOG",
    "SAMPLE_PROCESSORS",
    "SAMPLE_TRACE",
    "SLOW_CALLBACK",
    "ProcessorCase",
    "ProcessorContract",
    "SinkCase",
    "SinkContract",
    "SlowCallbacks",
    "free_port",
    "plugin_manager",
    "processed_batch",
    "register_plugin",
    "run_debug",
    "run_without_blocking",
    "stop_process",
]

# -- real servers -----------------------------------------------------------------------


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on now: the kernel's pick, released at once,
    and never one this process was handed before (the kernel may pick a released port again, and
    a server given the same port for two listeners fails to start)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


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


