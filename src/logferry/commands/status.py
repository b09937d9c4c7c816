"""What ``logferry run --stats`` and ``--once`` show a person on stderr, from ``Engine.stats()``.

:func:`summary_line`: the run's totals at exit, with ``--stats`` and for ``--once`` on a terminal.
:class:`StatusReport`: every interval, rates since the last report, per sink backlog and retries, the
age of the oldest unshipped line and the loop's lag. On a terminal it is a table redrawn in place
(plain ANSI escapes); otherwise one log line per interval (so ``--log-format json`` applies).
:class:`ProgressBar`: for ``--once`` on a terminal, bytes shipped of bytes to ship, rate and ETA,
erased when the run ends. Both run as small tasks on the loop; each report is a few string formats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TextIO

from .config import mask_url

log = logging.getLogger("logferry.stats")

UP, CLEAR_DOWN, CLEAR_LINE = "\x1b[{}F", "\x1b[J", "\r\x1b[K"
BAR_WIDTH = 30
PROGRESS_INTERVAL = 0.25


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # not reached


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def _lag_p99(before: dict[str, Any] | None, now: dict[str, Any]) -> float:
    """The 99th percentile of the loop's lag since ``before`` (bucket bound; the whole run without it)."""
    old = dict(before["buckets"]) if before else {}
    seen_before = before["count"] if before else 0
    count = now["count"] - seen_before
    if count <= 0:
        return 0.0
    for bound, cumulative in now["buckets"]:
        if cumulative - old.get(bound, 0) >= 0.99 * count:
            return min(bound, now["max"])
    return now["max"]  # pragma: no cover - the last bucket is +Inf


def summary_line(stats: dict[str, Any]) -> str:
    """The run's totals in one line, for the end of a run with ``--stats`` or of ``--once`` on a
    terminal: files followed, lines and bytes read and shipped per sink, files skipped as
    unreadable, bytes lost by reason, the loop's lag."""
    sinks = "; ".join(f"{mask_url(name)} {st['lines']} lines {human_bytes(st['bytes'])} retries={st['retries']} "
                      f"errors={st['failures']}" for name, st in stats["sinks"].items())
    lost = ", ".join(f"{reason}={n} B" for reason, n in sorted(stats["lost_bytes"].items())) or "none"
    skipped = stats["unreadable_files"]
    lag = stats["loop_lag"]
    return (f"summary: {stats['uptime']:.1f}s, {_files(stats['files_followed'])}, read {stats['read_lines']} lines "
            f"({human_bytes(stats['read_bytes'])}); {shaped(stats)}shipped: {sinks}; skipped {_files(skipped)} "
            f"(unreadable); lost: {lost}; loop lag p99 {_ms(lag['p99'])}, max {_ms(lag['max'])}")


def shaped(stats: dict[str, Any]) -> str:
    """What the processors did (empty without processors): records made, dropped, unparsed, unrouted."""
    if not stats["processors"] and not stats["unrouted"]:
        return ""
    unparsed = ", ".join(f"{t['name']}: {t['last_error']}" for t in stats["processors"] if t["unparsed"])
    return (f"processed into {stats['records']} records: dropped {stats['dropped']}, unparsed {stats['unparsed']}"
            f"{f' (last: {unparsed})' if unparsed else ''}, unrouted {stats['unrouted']}; ")


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"


def log_summary(engine: Any) -> None:
    """Log :func:`summary_line` (on ``logferry.stats``, which the caller shows at any ``--log-level``)."""
    log.info("%s", summary_line(engine.stats()))


class StatusReport:
    """Writes the run's numbers every ``interval`` seconds (``live``: a table redrawn in place)."""

    def __init__(self, engine: Any, stream: TextIO, live: bool) -> None:
        self.engine = engine
        self.stream = stream
        self.live = live
        self._last: dict[str, Any] | None = None
        self._last_at = time.monotonic()
        self._drawn = 0  # lines of the table on screen

    async def run(self, interval: float) -> None:
        """Report every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.report()

    def report(self) -> None:
        now, stats = time.monotonic(), self.engine.stats()
        rows = self._rows(stats, max(now - self._last_at, 1e-6))
        self._last, self._last_at = stats, now
        if self.live:
            self._draw(rows)
        else:
            log.info("stats: %s", self._line(stats, rows))

    def _rows(self, stats: dict[str, Any], elapsed: float) -> dict[str, Any]:
        last = self._last or {"read_lines": 0, "read_bytes": 0, "sinks": {}}
        sinks = []
        for name, st in stats["sinks"].items():
            before = last["sinks"].get(name, {"lines": 0, "bytes": 0})
            sinks.append((mask_url(name), (st["lines"] - before["lines"]) / elapsed,
                          (st["bytes"] - before["bytes"]) / elapsed, st["backlog_bytes"], st["retries"],
                          st["failures"]))
        return {
            "in_lines": (stats["read_lines"] - last["read_lines"]) / elapsed,
            "in_bytes": (stats["read_bytes"] - last["read_bytes"]) / elapsed,
            "sinks": sinks,
            "lag_p99": _lag_p99(self._last["loop_lag"] if self._last else None, stats["loop_lag"]),
        }

    def _line(self, stats: dict[str, Any], rows: dict[str, Any]) -> str:
        sinks = " ".join(f"[{name} out={lps:.0f} lines/s {bps / 1e6:.2f} MB/s backlog={human_bytes(backlog)} "
                         f"retries={retries} errors={errors}]"
                         for name, lps, bps, backlog, retries, errors in rows["sinks"])
        return (f"files={stats['files']} open={stats['open_files']} in={rows['in_lines']:.0f} lines/s "
                f"{rows['in_bytes'] / 1e6:.2f} MB/s {sinks} oldest_unshipped={stats['oldest_unshipped_age']:.1f}s "
                f"checkpoint_lag={human_bytes(stats['checkpoint_lag_bytes'])} loop_lag_p99={_ms(rows['lag_p99'])}"
                + (f" dropped={stats['dropped']} unparsed={stats['unparsed']} unrouted={stats['unrouted']} "
                   f"held_files={stats['held_files']}" if stats["processors"] or stats["unrouted"] else ""))

    def _draw(self, rows: dict[str, Any]) -> None:
        stats = self._last
        assert stats is not None
        width = max([len("SINK")] + [len(s[0]) for s in rows["sinks"]])
        lines = [
            (f"logferry  up {stats['uptime']:.0f}s  files {stats['files']} (open {stats['open_files']})  "
             f"loop lag p99 {_ms(rows['lag_p99'])}"),
            f"{'':<{width}}  {'lines/s':>10}  {'MB/s':>8}  {'backlog':>10}  {'retries':>7}  {'errors':>6}",
            f"{'in':<{width}}  {rows['in_lines']:>10.0f}  {rows['in_bytes'] / 1e6:>8.2f}",
            *(f"{name:<{width}}  {lps:>10.0f}  {bps / 1e6:>8.2f}  {human_bytes(backlog):>10}  {retries:>7}  {errors:>6}"
              for name, lps, bps, backlog, retries, errors in rows["sinks"]),
            (f"oldest unshipped {stats['oldest_unshipped_age']:.1f}s  "
             f"checkpoint lag {human_bytes(stats['checkpoint_lag_bytes'])}"),
        ]
        up = UP.format(self._drawn) if self._drawn else ""
        self.stream.write(up + CLEAR_DOWN + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)


class ProgressBar:
    """``--once`` on a terminal: one line redrawn in place, erased by :meth:`clear`."""

    def __init__(self, engine: Any, stream: TextIO) -> None:
        self.engine = engine
        self.stream = stream
        self._started = time.monotonic()
        self._shown = False

    async def run(self, interval: float = PROGRESS_INTERVAL) -> None:
        """Redraw every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.draw()

    def draw(self) -> None:
        stats = self.engine.stats()
        done = stats["acked_bytes"]
        # What is left: in flight, and seen but not yet read in the files still followed.
        total = max(done + stats["inflight_bytes"] + stats["unread_bytes"], 1)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed
        eta = f"ETA {(total - done) / rate:.0f}s" if rate > 0 else "ETA --"
        filled = int(BAR_WIDTH * min(done / total, 1.0))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"{CLEAR_LINE}[{bar}] {100 * done / total:5.1f}%  {human_bytes(done)} of "
                          f"{human_bytes(total)}  {rate / 1e6:.2f} MB/s  {eta}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self._shown = False

