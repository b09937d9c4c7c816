"""``logferry run --metrics HOST:PORT``: the run's numbers in Prometheus text format at ``/metrics``.

Served by ``prometheus_client``'s own HTTP server thread with a registry of its own, never on the event
loop. That thread must not walk the engine's structures while the loop changes them, so a loop task
copies ``Engine.stats()`` into :attr:`EngineCollector.snapshot` every ``REFRESH`` seconds and a scrape
reads the latest copy. ``prometheus_client`` is an optional extra: ``pip install 'logferry[metrics]'``.

Per-file series (``logferry_file_read_bytes_total{path=…}``) are limited to the ``MAX_FILE_SERIES`` files
that read the most, so following thousands of files cannot flood Prometheus; the unlabelled
``logferry_read_bytes_total`` counts every file.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError, LogferryError
from ..metrics import LAG_INTERVAL
from .config import mask_url

REFRESH = 1.0
MAX_FILE_SERIES = 100


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``:PORT`` for every interface) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--metrics: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class EngineCollector:
    """A ``prometheus_client`` collector of the latest :meth:`Engine.stats` snapshot."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None

    async def refresh(self, engine: Any, interval: float = REFRESH) -> None:
        """Copy the engine's numbers for the server thread every ``interval`` seconds (until cancelled)."""
        while True:
            self.snapshot = engine.stats()
            await asyncio.sleep(interval)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        stats = self.snapshot
        if stats is None:
            return
        yield CounterMetricFamily("logferry_read_bytes", "Bytes read from every file and queued for the sinks.",
                                  value=stats["read_bytes"])
        yield CounterMetricFamily("logferry_read_lines", "Lines read from every file.", value=stats["read_lines"])
        per_file = CounterMetricFamily(
            "logferry_file_read_bytes", f"Bytes read per followed file (the {MAX_FILE_SERIES} that read most).",
            labels=["path"])
        top = sorted(stats["file_read_bytes"].items(), key=lambda item: item[1], reverse=True)[:MAX_FILE_SERIES]
        for path, nbytes in top:
            per_file.add_metric([path], nbytes)
        yield per_file
        yield from _per_sink(stats["sinks"], CounterMetricFamily, GaugeMetricFamily)
        lost = CounterMetricFamily("logferry_lost_bytes", "Bytes never shipped, by reason.", labels=["reason"])
        for reason, nbytes in stats["lost_bytes"].items():
            lost.add_metric([reason], nbytes)
        yield lost
        yield from _processors(stats, CounterMetricFamily, GaugeMetricFamily)
        for name, key, doc in (
            ("logferry_files_followed", "files", "Files being followed."),
            ("logferry_open_files", "open_files", "File descriptors held open."),
            ("logferry_checkpoint_lag_bytes", "checkpoint_lag_bytes",
             "Bytes read but not yet saved in the checkpoint store (what a crash now would re-deliver)."),
            ("logferry_inflight_bytes", "inflight_bytes", "Bytes queued for the sinks, not yet acknowledged by all."),
            ("logferry_oldest_unshipped_age_seconds", "oldest_unshipped_age",
             "Seconds since the oldest batch not yet acknowledged by every sink was read."),
        ):
            yield GaugeMetricFamily(name, doc, value=stats[key])
        lag = stats["loop_lag"]
        yield HistogramMetricFamily(
            "logferry_event_loop_lag_seconds", f"How late the event loop woke a {LAG_INTERVAL} s timer.",
            buckets=[("+Inf" if math.isinf(bound) else repr(bound), count) for bound, count in lag["buckets"]],
            sum_value=lag["sum"])


def _processors(stats: dict[str, Any], counter: Any, gauge: Any) -> Iterator[Any]:
    """What the processors did: per ``[[processors]]`` table (labelled by its position and type)."""
    yield counter("logferry_records_unrouted", "Records no sink's match took (counted as delivered).",
                  value=stats["unrouted"])
    yield counter("logferry_records", "Records handed to the sinks (after the processors).", value=stats["records"])
    yield gauge("logferry_files_held", "Files whose last records a processor holds back (an event being assembled).",
                value=stats["held_files"])
    families = {
        "dropped": counter("logferry_processor_dropped_records", "Records a processor dropped (counted as delivered).",
                           labels=["processor"]),
        "unparsed": counter("logferry_processor_unparsed_records", "Records a parser passed on unparsed.",
                            labels=["processor"]),
        "joined": counter("logferry_processor_joined_lines", "Lines joined into the record before them (multiline).",
                          labels=["processor"]),
        "records_in": counter("logferry_processor_records_in", "Records a processor was given.", labels=["processor"]),
        "records_out": counter("logferry_processor_records_out", "Records a processor passed on.",
                               labels=["processor"]),
    }
    for n, tally in enumerate(stats["processors"], 1):
        for key, family in families.items():
            family.add_metric([f"{n}:{tally['name']}"], tally[key])
    yield from families.values()


def _per_sink(sinks: dict[str, dict[str, Any]], counter: Any, gauge: Any) -> Iterator[Any]:
    families = {
        "lines": counter("logferry_sink_shipped_lines", "Lines the sink acknowledged.", labels=["sink"]),
        "bytes": counter("logferry_sink_shipped_bytes", "Bytes the sink acknowledged.", labels=["sink"]),
        "batches": counter("logferry_sink_shipped_batches", "Batches the sink acknowledged.", labels=["sink"]),
        "calls": counter("logferry_sink_calls", "Calls (requests, writes) the sink completed; each holds "
                         "every batch that queued for it while it was busy.", labels=["sink"]),
        "failures": counter("logferry_sink_errors", "Sends that failed.", labels=["sink"]),
        "retries": counter("logferry_sink_retries", "Batches sent again after a failure.", labels=["sink"]),
        "backlog_bytes": gauge("logferry_sink_backlog_bytes", "Bytes queued for the sink, not yet sent.",
                               labels=["sink"]),
    }
    for name, stats in sinks.items():
        for key, family in families.items():
            family.add_metric([mask_url(name)], stats[key])
    yield from families.values()


def start_server(address: str, collector: EngineCollector) -> Any:
    """Serve ``collector`` at http://ADDRESS/metrics from a thread of prometheus_client; returns the server."""
    host, port = parse_address(address)
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError("--metrics needs prometheus_client: pip install 'logferry[metrics]'") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as exc:
        raise LogferryError(f"--metrics: cannot listen on {address}: {exc.strerror or exc}") from None
    return server
