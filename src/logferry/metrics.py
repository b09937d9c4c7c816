"""Plain counters the engine keeps while it runs, and the event-loop lag probe.

Everything here is updated on the event loop, once per batch (never per line): a few integer
additions. Readers of the numbers (``Engine.stats()``, ``--stats``, ``--metrics``) take snapshots.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

LAG_INTERVAL = 0.25  # seconds the probe sleeps; how late it wakes is the loop's lag (waking costs CPU)
LAG_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)


@dataclass
class LagHistogram:
    """How late the loop ran a timer, in seconds, counted into ``LAG_BUCKETS`` (upper bounds)."""

    counts: list[int] = field(default_factory=lambda: [0] * len(LAG_BUCKETS))
    count: int = 0
    sum: float = 0.0
    max: float = 0.0

    def observe(self, lag: float) -> None:
        for i, bound in enumerate(LAG_BUCKETS):
            if lag <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += lag
        self.max = max(self.max, lag)

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (the largest lag seen for the last one)."""
        if not self.count:
            return 0.0
        rank, seen = q * self.count, 0
        for bound, n in zip(LAG_BUCKETS, self.counts):
            seen += n
            if seen >= rank:
                return min(bound, self.max)
        return self.max

    def snapshot(self) -> dict[str, Any]:
        """``buckets``: (upper bound, cumulative count) pairs as Prometheus wants them; ``p99``; totals."""
        cumulative, running = [], 0
        for bound, n in zip(LAG_BUCKETS, self.counts):
            running += n
            cumulative.append((bound, running))
        return {"count": self.count, "sum": self.sum, "max": self.max, "p99": self.quantile(0.99),
                "buckets": cumulative}


@dataclass
class Metrics:
    """The engine's own measurements. What went through delivery is in
    :class:`~logferry.delivery.pipeline.Totals`, per sink in :class:`~logferry.delivery.pipeline.SinkStats`."""

    loop_lag: LagHistogram = field(default_factory=LagHistogram)

    async def probe_loop(self, interval: float = LAG_INTERVAL) -> None:
        """Sleep ``interval`` again and again and record how late each wake-up came (until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - due))


def age(read_at: float | None) -> float:
    """Seconds since ``read_at`` (a ``time.time()``), 0 for None."""
    return max(0.0, time.time() - read_at) if read_at is not None else 0.0
