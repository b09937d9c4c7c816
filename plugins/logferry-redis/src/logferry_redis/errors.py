"""Which Redis failures a retry can fix, as :class:`logferry.SinkError` with ``retryable`` set.

The engine retries a failed batch with backoff forever in follow mode, so an error that no retry
can fix (a key of the wrong type, a bad password, a missing permission) must say so: it stops the
run with one clear line instead of a warning every ten seconds. Everything else (connection loss,
timeouts, a cluster failover, OOM, a server still loading its data) is retried.
"""

from __future__ import annotations

from logferry import SinkError
from redis import exceptions as rex

# Error codes at the start of a Redis error reply that no retry of the same batch can fix.
PERMANENT_CODES = (
    "WRONGTYPE",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "ERR unknown command",
    "ERR syntax error",
    "ERR wrong number of arguments",
)


def classify(exc: BaseException, where: str) -> SinkError:
    """Turn what the client raised (or a pipeline returned) into the error the engine acts on."""
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError | rex.AuthenticationWrongNumberOfArgsError):
        return SinkError(f"redis at {where} refused the credentials: {exc}", retryable=False)
    if isinstance(exc, rex.NoPermissionError):
        return SinkError(f"redis at {where}: {exc}", retryable=False)
    if isinstance(exc, TimeoutError | rex.TimeoutError):
        return SinkError(f"redis at {where} did not answer in time ({type(exc).__name__}{_text(exc)})")
    if isinstance(exc, rex.ConnectionError | OSError):
        return SinkError(f"redis at {where} unreachable: {type(exc).__name__}{_text(exc)}")
    if isinstance(exc, rex.ResponseError) and str(exc).startswith(PERMANENT_CODES):
        return SinkError(f"redis at {where} rejected the entries: {exc}", retryable=False)
    return SinkError(f"redis at {where} failed: {type(exc).__name__}{_text(exc)}")


def is_connection_problem(exc: BaseException) -> bool:
    """Whether the connections (or a cluster's slot map) may be stale and should be dropped before
    the next try."""
    return isinstance(
        exc, TimeoutError | rex.TimeoutError | rex.ConnectionError | OSError | rex.ClusterError | rex.RedisClusterException
    )


def _text(exc: BaseException) -> str:
    text = str(exc)
    return f": {text}" if text else ""
