"""The engine: discovery → tailers → batches → sinks → acknowledgements → checkpoints.

``Engine`` is the Python API the CLI is a thin shell over; embed it in any asyncio program::

    engine = Engine(Settings(paths=["/var/log/app/*.log"], sinks=[SinkSpec("file:/tmp/merged.log")]))
    task = engine.start()  # or asyncio.create_task(engine.run())
    await engine.wait_ready()
    ...
    engine.stop()          # drain in-flight batches, save checkpoints
    await task

See docs/embedding.md. The event loop only schedules and moves references: file reads run on a small thread pool,
sink I/O on each sink's own thread or async client, and the checkpoint database on its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from .delivery.budget import Budget
from .delivery.pipeline import Pipeline
from .errors import ConfigError, LogferryError, NotAcknowledged
from .files.descriptors import Descriptors
from .files.discovery import Discovery
from .files.followed import Followed
from .files.losses import Losses
from .files.poller import Poller
from .files.reader import LinePolicy, read_size_for
from .files.tailer import Wiring
from .metrics import Metrics, age
from .plugins import PluginHost, get_plugin_manager
from .processors.routing import compile_route
from .processors.stage import Processing, Step
from .settings import ProcessorSpec, Settings, SinkSpec, Source
from .sinks.base import Sink
from .sinks.threadloop import quick_gil_handoff
from .state.checkpoints import CheckpointStore
from .state.committer import Committer

if TYPE_CHECKING:
    from .files.watch import Watcher

log = logging.getLogger("logferry.engine")
T = TypeVar("T")

READ_THREADS = 4
ONCE_RETRY_LIMIT = 5


def sources_of(host: PluginHost, settings: Settings) -> list[Source]:
    """What a run of ``settings`` follows (every source plugin's); a ConfigError if nothing."""
    sources = host.sources(settings)
    if not sources:
        raise ConfigError("no files to follow: give a path or pattern, or [sources] paths in the config")
    return sources


def _fields_spec(source: Source) -> ProcessorSpec:
    return ProcessorSpec("fields", {"fields": dict(source.fields)}, key=f"{source.name or 'a source'}: fields")


def own_outputs(sinks: list[Sink]) -> frozenset[str]:
    """The files these sinks write: a run never follows them (it would ship their lines again and again)."""
    return frozenset(os.path.realpath(s.output_path) for s in sinks if s.output_path)


class Engine:
    """Follows the configured files and ships their lines to the configured sinks."""

    def __init__(self, settings: Settings, host: PluginHost | None = None, sinks: list[Sink] | None = None) -> None:
        self.host = host or get_plugin_manager()
        self.settings = settings = self.host.configure(settings)
        self.sources = sources_of(self.host, settings)
        self.patterns = [pattern for source in self.sources for pattern in source.paths]
        specs = settings.sinks or [SinkSpec("-")]
        self.sinks = sinks if sinks is not None else [self.host.make_sink(s.url, s.options, settings) for s in specs]
        if not self.sinks:
            raise ConfigError("no sinks: every line needs somewhere to go")
        steps = [self._step(spec) for spec in settings.processors]
        # Each source's own steps: its processors, then its static fields (none: read as a pattern's files).
        groups = [[self._step(spec) for spec in source.processors]
                  + ([Step(self.host.make_processor(_fields_spec(source), settings))] if source.fields else [])
                  for source in self.sources]
        routes = [compile_route(s.key, s.match) if s.match is not None else None for s in specs] \
            if sinks is None else [None] * len(self.sinks)
        self.losses = Losses()
        self.metrics = Metrics()
        self.started_at = 0.0
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="logferry-read")
        # The stages, from the checkpoints up: each sees the ones it needs through narrow protocols.
        self.committer = Committer(CheckpointStore(settings.state_dir, settings.reset_unreadable_checkpoints),
                                   settings.commit_interval, settings.max_inflight_bytes, settings.forget_after)
        self.pipeline = Pipeline(self.sinks, Budget(settings.max_inflight_bytes),
                                 ONCE_RETRY_LIMIT if settings.once else None)
        self.poller = Poller(settings.poll_interval, self.blocking, self.pipeline.budget)
        self.descriptors = Descriptors(settings.max_open_files or 0)
        self.followed = Followed(self.descriptors)
        policy = LinePolicy(settings.max_line_bytes, settings.long_lines,
                            read_size_for(settings.max_inflight_bytes, min(s.max_bytes_per_send for s in self.sinks)))
        # Processors (and routing) sit between the tailers and delivery only when configured.
        shaped = steps or any(routes) or any(source.shaped for source in self.sources)
        self.processing = Processing(steps, routes, self.pipeline, groups) if shaped else None
        wiring = Wiring(settings, policy, self.blocking, self.pipeline.budget, self.processing or self.pipeline,
                        self.committer, self.poller, self.descriptors, self.followed, self.losses)
        self.discovery = Discovery(wiring, self.sources, own_outputs(self.sinks))
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None  # set by start()

    def _step(self, spec: ProcessorSpec) -> Step:
        return Step(self.host.make_processor(spec, self.settings), tuple(spec.paths))

    @property
    def ready(self) -> asyncio.Event:
        """Set once the first scan is done and its files are being followed."""
        return self.discovery.ready

    # -- the public surface --------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop` (or, with ``once``, until every file is read), then flush and save."""
        self.started_at = time.monotonic()
        self.descriptors.start()
        with quick_gil_handoff():
            await self._run()

    async def _run(self) -> None:
        store = self.committer.store
        self.discovery.load(await store.open())
        failure: LogferryError | None = None
        try:
            try:
                if await self._unless_stopped(self.pipeline.start()):
                    await self._run_stages()
            except LogferryError as exc:
                if not self.settings.once:
                    raise
                failure = exc  # told with what it left unacknowledged (below)
            finally:
                await self.committer.commit()
                if not await self._within(time.monotonic() + self.settings.shutdown_timeout,
                                          self.pipeline.stop_sinks()):
                    log.warning("a sink did not stop within %ss; abandoned", self.settings.shutdown_timeout)
        finally:
            await store.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self.processing is not None:
                self.processing.close()
        if self.settings.once:
            self._raise_if_incomplete(failure)

    def _raise_if_incomplete(self, failure: LogferryError | None) -> None:
        """A ``--once`` run must not end as a success with lines it read not delivered, or with its
        checkpoints not saved (the next run would ship again what this one shipped)."""
        nbytes, files, sinks = self.pipeline.unacknowledged()
        if (not nbytes and not files) or isinstance(failure, ConfigError):
            if failure is not None:
                raise failure
            if unsaved := self.committer.unsaved:
                what = f"{unsaved} file{'' if unsaved == 1 else 's'}"
                raise LogferryError(f"the checkpoints of {what} could not be saved in "
                                    f"{self.committer.store.path} (see above): what they shipped since the last save "
                                    "is shipped again next run")
            return
        cause = str(failure) if failure is not None else (
            f"stopped before every sink acknowledged (shutdown_timeout {self.settings.shutdown_timeout:g}s)")
        raise NotAcknowledged(nbytes, files, sinks, cause) from failure

    def stop(self) -> None:
        """Stop reading, let in-flight batches reach the sinks (bounded), save checkpoints. A second call
        stops waiting for the sinks."""
        if self._stop.is_set():
            self._force.set()
        self._stop.set()

    def start(self) -> asyncio.Task[None]:
        """Schedule :meth:`run` as a task on the running loop and return it (an engine runs once).

        Await the task after :meth:`stop`: it ends once the sinks are stopped and checkpoints saved,
        and raises what :meth:`run` raised (e.g. a sink that refused to start).
        """
        if self._run_task is not None:
            raise RuntimeError("this engine was already started: an Engine runs once")
        self._run_task = asyncio.get_running_loop().create_task(self.run(), name="logferry engine")
        return self._run_task

    async def wait_ready(self) -> None:
        """Return once the first scan is done and its files are being followed.

        With :meth:`start`, a run that ends before it is ready does not leave this waiting forever:
        its error is raised here (a run stopped early just returns).
        """
        task = self._run_task
        if task is None:
            await self.ready.wait()
            return
        ready = asyncio.ensure_future(self.ready.wait())
        try:
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.ready.is_set() and task.done() and not task.cancelled():
            task.result()

    def progress(self) -> list[tuple[str, int, int]]:
        """(path, acknowledged offset, size last seen) for every followed file."""
        return [(t.path, t.record.offset, t.record.size) for t in self.followed]

    def stats(self) -> dict[str, Any]:
        """A snapshot of the run's numbers (a new dict each call; totals count since :meth:`run` began).

        ``files``: files followed now; ``files_followed``: files followed since the start; ``unreadable_files``:
        files a pattern matched that could not be read (skipped); ``open_files``: descriptors held; ``read_bytes``/``read_lines``/
        ``read_batches``: queued for the sinks; ``file_read_bytes``: the same per followed file (by path);
        ``acked_bytes``: acknowledged by every sink; ``checkpoint_lag_bytes``: read but not yet saved in
        the checkpoint store; ``unread_bytes``: seen in followed files, not yet read; ``oldest_unshipped_age``:
        seconds since the oldest batch in flight was read; ``loop_lag``: the event loop's wake-up lateness
        (a histogram, see :mod:`logferry.metrics`); ``sinks``: per sink :class:`~logferry.delivery.pipeline.SinkStats`;
        ``reserved_bytes``: the in-flight budget held for reads under way; ``processors``: each
        ``[[processors]]`` table's :class:`~logferry.processors.base.Tally`; ``dropped``: records
        dropped by processors (counted as delivered); ``unparsed``: records a parser passed on
        unparsed; ``unrouted``: records no sink's ``match`` took (counted as delivered);
        ``held_files``: files whose last records a processor holds back; ``records``: records handed
        to the sinks (``read_lines`` but for what processors joined, dropped or hold).
        """
        tailers, totals = list(self.followed), self.pipeline.totals
        return {
            "files": len(tailers),
            "open_files": self.descriptors.count,
            "uptime": time.monotonic() - self.started_at if self.started_at else 0.0,
            "inflight_bytes": self.pipeline.inflight_bytes,
            "reserved_bytes": self.pipeline.budget.reserved,
            "sinks": {s.describe(): dict(vars(st)) for s, st in zip(self.sinks, self.pipeline.stats)},
            "lost_bytes": self.losses.by_reason(),
            "files_followed": self.followed.started,
            "unreadable_files": self.discovery.unreadable,
            "cut_lines": sum(self.losses.cut_lines.values()),
            "scans": self.discovery.scans,
            "poll_sweeps": self.poller.sweeps,
            "read_bytes": totals.read_bytes if self.processing is None else self.processing.bytes_in,
            "read_lines": totals.read_lines if self.processing is None else self.processing.lines_in,
            "read_batches": totals.read_batches,
            "acked_bytes": totals.acked_bytes,
            "file_read_bytes": {t.path: t.read_bytes for t in tailers},
            "checkpoint_lag_bytes": sum(t.pos - t.record.offset for t in tailers) + self.committer.unsaved_bytes,
            "unread_bytes": sum(max(0, t.record.size - t.pos) for t in tailers),
            "oldest_unshipped_age": age(self.pipeline.oldest_read_at),
            "loop_lag": self.metrics.loop_lag.snapshot(),
            "records": totals.read_lines,
            **(self.processing.stats() if self.processing is not None else
               {"processors": [], "dropped": 0, "unparsed": 0, "unrouted": 0, "held_files": 0}),
        }

    # -- what the stages share ---------------------------------------------------------

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking file-system call on the read pool, never on the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- the stages --------------------------------------------------------------------

    async def _run_stages(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                self.followed.bind(tasks)
                consumers = [tasks.create_task(self.pipeline.consume(i)) for i in range(len(self.sinks))]
                committing = self.committer.run(lambda: {t.record.file_id for t in self.followed},
                                                lambda: not self.discovery.first_scan)
                services = [tasks.create_task(self.poller.run()), tasks.create_task(committing),
                            tasks.create_task(self.metrics.probe_loop())]
                scanning = tasks.create_task(self.discovery.run())
                watcher = await self._start_watcher()
                if self.followed.hints is not None:
                    services.append(tasks.create_task(self.followed.hints.run()))
                try:
                    await self._until_done(scanning)
                    await self._shut_down(consumers, services + [scanning])
                finally:
                    if watcher is not None:
                        await self.blocking(watcher.stop)
        except* LogferryError as group:
            raise group.exceptions[0] from None

    async def _start_watcher(self) -> Watcher | None:
        if not self.settings.watch or self.settings.once:
            return None
        from .files.hints import GrowthHints  # watchdog is imported only by runs that watch
        from .files.watch import Watcher

        watcher = Watcher(self.patterns, asyncio.get_running_loop(), self.discovery.rescan_soon,
                          lambda paths: hints.delivered(paths))
        hints = GrowthHints(watcher, self.blocking, self.followed.wake_path, self.poller.wake_directory)
        try:
            await self.blocking(watcher.start)
        except Exception as exc:  # no events at all: polling alone still finds everything
            log.warning("file-system events unavailable (%s); polling only", exc)
            return None
        self.followed.hints = self.poller.hints = hints
        self.discovery.watched = watcher.complete
        for tailer in self.followed:
            hints.follow(tailer.path)
        return watcher

    async def _until_done(self, scanning: asyncio.Task[None]) -> None:
        if not self.settings.once:
            await self._stop.wait()
            return
        await scanning
        if len(self.followed):  # one wait for all of them: waiting on each in turn is quadratic in files
            stop, finished = asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self.followed.all_done())
            await asyncio.wait([stop, finished], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            finished.cancel()

    async def _shut_down(self, consumers: list[asyncio.Task[None]], services: list[asyncio.Task[None]]) -> None:
        """Stop reading; give the sinks ``shutdown_timeout`` to take what is in flight; cancel the rest."""
        self.followed.stop()
        drained = await self._drain()
        if not drained and not self.settings.once:  # --once raises NotAcknowledged instead
            log.warning("stopping with %d bytes not acknowledged by every sink: they are read again next run",
                        self.pipeline.inflight_bytes)
        await self.pipeline.close_queues()
        tasks = self.followed.tasks()
        for task in [*tasks, *services] + ([] if drained else consumers):
            task.cancel()
        await asyncio.gather(*consumers, *services, *tasks, return_exceptions=True)
        self.followed.close_taskless()

    async def _drain(self) -> bool:
        """Wait for the sinks to acknowledge what was read; True if they did. A ``--once`` run that read
        everything waits as long as the sinks keep trying (each batch gets ``ONCE_RETRY_LIMIT``
        attempts); a stop (a signal) gives them ``shutdown_timeout``."""
        work = asyncio.ensure_future(self._drain_tailers_and_pipeline())
        if self.settings.once and not self._stop.is_set() and await self._before_stop(work):
            return True
        return await self._within(time.monotonic() + self.settings.shutdown_timeout, work)

    async def _drain_tailers_and_pipeline(self) -> None:
        tasks = self.followed.tasks()
        if tasks:
            await asyncio.wait(tasks)
        if self.processing is not None:
            # --once read every file to its end: what processors hold is complete. A stop leaves it
            # held: its checkpoint is before it, so the next run assembles it again, whole.
            if self.settings.once and not self._stop.is_set():
                await self.processing.flush_all()
            else:
                await self.processing.settle()
        await self.pipeline.drain()

    async def _unless_stopped(self, coro: Any) -> bool:
        """Run ``coro`` unless a stop is requested first (then give it the shutdown timeout)."""
        work = asyncio.ensure_future(coro)
        if await self._before_stop(work):
            return True
        await self._within(time.monotonic() + self.settings.shutdown_timeout, work)  # bounded, then stop it
        return False

    async def _before_stop(self, work: asyncio.Future[Any]) -> bool:
        """Wait for ``work`` or a stop request; True (and its exception raised) if ``work`` finished."""
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            work.result()
            return True
        return False

    async def _within(self, deadline: float, coro: Any) -> bool:
        work = asyncio.ensure_future(coro)
        force = asyncio.ensure_future(self._force.wait())
        done, _ = await asyncio.wait([work, force], timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=asyncio.FIRST_COMPLETED)
        force.cancel()
        if work in done:
            work.result()
            return True
        work.cancel()
        return False
