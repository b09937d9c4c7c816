"""File-system events as a wake-up hint: a file appearing, moving or vanishing triggers a scan now.

One watchdog observer thread watches the directories the patterns live in (never one watch per
file). Only create, move and delete events are asked of the kernel: growth is left to the poller,
because turning every write into a Python event costs more CPU under load than shipping the lines
(see FACTS.md). Events are only ever a hint — scans and polling stay the source of truth, so
network file systems and exhausted inotify limits lose latency, never lines.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = logging.getLogger("logferry.watch")

EVENTS = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent]


def watch_roots(patterns: list[str]) -> dict[str, bool]:
    """The directory under which each pattern can match → whether to watch it recursively.

    A pattern whose directory does not exist (yet) gets no watch: scans find it when it appears.
    """
    roots: dict[str, bool] = {}
    for pattern in patterns:
        parts = os.path.abspath(os.path.expanduser(pattern)).split(os.sep)
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        if len(fixed) == len(parts):  # a plain path: watch its directory
            fixed.pop()
        recursive = len(fixed) < len(parts) - 1  # a wildcard in a directory part
        root = os.sep.join(fixed) or os.sep
        if os.path.isdir(root):
            roots[root] = roots.get(root, False) or recursive
    return roots


class _Hint(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self.loop = loop
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        # On the observer's thread: hand the hint to the loop (coalesced there by the scan trigger).
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake)


class Watcher:
    """Starts and stops the observer; every call blocks, so the engine runs them off the loop."""

    def __init__(self, patterns: list[str], loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self.roots = watch_roots(patterns)
        self._handler = _Hint(loop, wake)
        self._observer = Observer()
        self._observer.daemon = True
        self.watching: list[str] = []

    def start(self) -> None:
        for root, recursive in self.roots.items():
            try:
                self._observer.schedule(self._handler, root, recursive=recursive, event_filter=EVENTS)
                self.watching.append(root)
            except OSError as exc:  # inotify limits, permissions: polling covers it
                log.info("no file-system events for %s (%s): polling only", root, exc.strerror or exc)
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
