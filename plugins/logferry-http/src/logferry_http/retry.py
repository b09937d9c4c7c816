"""When to try a request again, and how long to wait first: exponential backoff with jitter,
or the server's ``Retry-After`` when it gives one."""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime

FIRST_DELAY = 0.1
"""The wait before the first in-sink retry; it doubles with each attempt, up to ``max_backoff``."""

RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx answers that may succeed later (timeout, too early, rate limit); every 5xx may too."""


def retryable_status(status: int) -> bool:
    """True for answers that retrying may fix: 5xx and :data:`RETRYABLE_STATUS`.

    Other 4xx (400 bad request, 401/403 refused credentials, 404 wrong path, 413 too large) and 3xx
    (the URL should be the redirect target) come back identical however often the batch is sent.
    """
    return status >= 500 or status in RETRYABLE_STATUS


def backoff(attempt: int, max_backoff: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): exponential, with "equal jitter"
    (between half and all of the step) so many shippers failing together do not retry in step."""
    step = min(max_backoff, FIRST_DELAY * 2 ** (attempt - 1))
    return step * random.uniform(0.5, 1.0)


def retry_after(value: str | None, max_backoff: float, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), capped at
    ``max_backoff`` so a misbehaving server cannot stall the sink for hours; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), max_backoff)
