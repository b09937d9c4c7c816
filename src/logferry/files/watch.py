"""File-system events as wake-up hints, from one watchdog observer (never one watch per file).

Create, move and delete events in the directories the patterns live in trigger a scan now.
Growth events are asked for per directory, and only where :mod:`logferry.files.hints` decides it is
cheap: watchdog turns every write into a Python event. Events stay a hint: scans and polling remain
the source of truth, so network file systems and exhausted inotify limits lose latency, never lines.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

log = logging.getLogger("logferry.watch")

EVENTS = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent]
GROWTH_EVENTS: list[type[FileSystemEvent]] = [FileModifiedEvent]


def watch_roots(patterns: list[str]) -> dict[str, bool]:
    """The directory under which each pattern can match → whether to watch it recursively.

    A pattern whose directory does not exist (yet) gets no watch: scans find it when it appears.
    """
    roots: dict[str, bool] = {}
    for root, recursive in map(_root, patterns):
        if os.path.isdir(root):
            roots[root] = roots.get(root, False) or recursive
    return roots


def _root(pattern: str) -> tuple[str, bool]:
    parts = os.path.abspath(os.path.expanduser(pattern)).split(os.sep)
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    if len(fixed) == len(parts):  # a plain path: watch its directory
        fixed.pop()
    recursive = len(fixed) < len(parts) - 1  # a wildcard in a directory part
    return os.sep.join(fixed) or os.sep, recursive


class _Hint(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self.loop = loop
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        # On the observer's thread: hand the hint to the loop (coalesced there by the scan trigger).
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake)


class _Growth(FileSystemEventHandler):
    """Collects the paths that grew; the loop is woken once per burst, not once per write."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[set[str]], None]) -> None:
        self.loop = loop
        self.deliver = deliver
        self._paths: set[str] = set()
        self._lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self._lock:
            first = not self._paths
            self._paths.add(os.fsdecode(event.src_path))
        if first and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            paths, self._paths = self._paths, set()
        self.deliver(paths)


class Watcher:
    """Starts and stops the observer and its watches; every call blocks, so the engine runs them
    off the loop."""

    def __init__(self, patterns: list[str], loop: asyncio.AbstractEventLoop, wake: Callable[[], None],
                 grew: Callable[[set[str]], None]) -> None:
        self.roots = watch_roots(patterns)
        self._every_root = len({_root(p)[0] for p in patterns}) == len(self.roots)
        self._handler = _Hint(loop, wake)
        self._growth = _Growth(loop, grew)
        # Two observers, two inotify instances: watchdog shares one per observer, and two watches of
        # one directory in one instance replace each other's event mask.
        self._observer = Observer()
        self._observer.daemon = True
        self._growth_observer = Observer()
        self._growth_observer.daemon = True
        self._growth_watches: dict[str, ObservedWatch] = {}
        self.watching: list[str] = []

    def start(self) -> None:
        for root, recursive in self.roots.items():
            try:
                self._observer.schedule(self._handler, root, recursive=recursive, event_filter=EVENTS)
                self.watching.append(root)
            except OSError as exc:  # inotify limits, permissions: polling covers it
                log.info("no file-system events for %s (%s): polling only", root, exc.strerror or exc)
        self._observer.start()
        self._growth_observer.start()

    @property
    def complete(self) -> bool:
        """Every pattern's directory is watched: new files are announced by events."""
        return self._every_root and len(self.watching) == len(self.roots)

    def stop(self) -> None:
        for observer in (self._observer, self._growth_observer):
            observer.stop()
        for observer in (self._observer, self._growth_observer):
            observer.join(timeout=5)

    def watch_growth(self, directory: str) -> bool:
        """Ask for growth events of the files in ``directory`` (not its subdirectories)."""
        try:
            watch = self._growth_observer.schedule(self._growth, directory, event_filter=GROWTH_EVENTS)
        except OSError as exc:
            log.info("no growth events for %s (%s): polling it", directory, exc.strerror or exc)
            return False
        self._growth_watches[directory] = watch
        return True

    def unwatch_growth(self, directory: str) -> None:
        watch = self._growth_watches.pop(directory, None)
        if watch is not None:
            try:
                self._growth_observer.unschedule(watch)
            except KeyError:
                pass
