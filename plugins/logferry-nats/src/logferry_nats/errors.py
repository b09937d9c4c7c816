"""Which NATS failures a retry can fix, as :class:`logferry.SinkError` with ``retryable`` set.

The engine retries a failed batch with backoff forever, so an error that no retry can fix (a
refused credential, a missing permission, a stream that does not capture the subject, a line larger
than the server takes) must say so: it stops the run with one clear line instead of a warning every
ten seconds. Everything else (a server down or restarting, a timeout, a leader election, JetStream
answering 503) is retried.
"""

from __future__ import annotations

import ssl

import nats.errors
import nats.js.errors
from logferry import SinkError

# Words of the server's -ERR line (or of nats-py's message for it) that no retry can fix.
_REFUSED = ("authorization violation", "authentication", "user authentication")
_FORBIDDEN = "permissions violation"


class PubAckError(Exception):
    """The first failed PubAck of a send: JetStream's error, or no responders (no stream listening)."""

    def __init__(self, subject: bytes, code: int, description: str) -> None:
        super().__init__(description)
        self.subject = subject
        self.code = code


def classify(exc: BaseException, where: str) -> SinkError:
    """Turn what nats-py raised (or a PubAck said) into the error the engine acts on."""
    if isinstance(exc, SinkError):
        return exc
    text = str(exc).strip().strip("'")
    lowered = text.lower()
    if isinstance(exc, nats.errors.AuthorizationError) or any(word in lowered for word in _REFUSED):
        return SinkError(f"nats at {where} refused the credentials: {text or 'authorization violation'}",
                         retryable=False)
    if _FORBIDDEN in lowered:
        return SinkError(f"nats at {where}: {text}", retryable=False)
    if isinstance(exc, nats.errors.SecureConnRequiredError | nats.errors.SecureConnWantedError):
        return SinkError(f"nats at {where}: {type(exc).__name__}: the server and the sink disagree on TLS"
                         " (set tls = true, or false)", retryable=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SinkError(f"nats at {where}: TLS certificate not trusted: {exc}", retryable=False)
    if isinstance(exc, PubAckError):
        subject = exc.subject.decode("utf-8", "replace")
        if exc.code == 503 and not text:
            return SinkError(f"nats at {where}: no stream answered for subject {subject!r} (no responders;"
                             " a stream's leader election passes, a missing stream does not)")
        return SinkError(f"JetStream refused a message on {subject!r}: {text} (code {exc.code})",
                         retryable=exc.code >= 500)
    if is_jetstream_silent(exc):
        return SinkError(f"nats at {where}: JetStream does not answer (no responders): is it enabled"
                         " (nats-server -js, or a jetstream {} block)?")
    if isinstance(exc, nats.js.errors.APIError):
        code = exc.code or 0
        return SinkError(f"JetStream at {where}: {exc.description or text} (code {code},"
                         f" err_code {exc.err_code})", retryable=code >= 500 or code == 408)
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return SinkError(f"nats at {where} did not answer in time ({type(exc).__name__}{_text(text)})")
    if is_unreachable(exc):
        return SinkError(f"nats at {where} unreachable: {type(exc).__name__}{_text(text)}")
    return SinkError(f"nats at {where} failed: {type(exc).__name__}{_text(text)}")


def is_jetstream_silent(exc: BaseException) -> bool:
    """Whether nothing answered the JetStream API (no responders): JetStream is not enabled, or a
    cluster is still electing its leaders. A start that still meets it at its deadline stops."""
    return isinstance(exc, nats.js.errors.ServiceUnavailableError) and exc.err_code is None


def is_unreachable(exc: BaseException) -> bool:
    """Whether the server could not be reached or the connection was lost: the connection is
    dropped, and a start that meets only this waits for the first send to connect."""
    return isinstance(exc, OSError | TimeoutError | nats.errors.NoServersError | nats.errors.ConnectionClosedError
                      | nats.errors.StaleConnectionError | nats.errors.TimeoutError
                      | nats.errors.ConnectionReconnectingError)


def _text(text: str) -> str:
    return f": {text}" if text else ""
