"""Times as logferry's JSON records write them."""

from __future__ import annotations

import time
from functools import lru_cache


def iso_ts(read_at: float) -> str:
    """``2026-01-02T03:04:05.678Z``: a batch's ``read_at`` (or a record's time) as logferry's JSON
    records write it, to the nearest millisecond (a parsed ``.123`` is 0.12299... as a float)."""
    second, ms = divmod(round(read_at * 1000), 1000)
    return _iso_second(second) + _MILLIS[ms]


_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))  # batches read within a second share it
