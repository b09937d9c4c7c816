"""The exceptions logferry raises on purpose; each maps to an exit code and a one-line message."""


class LogferryError(Exception):
    """Base class: a failure that can be told to the user in one line (exit code 1)."""

    exit_code = 1


class ConfigError(LogferryError):
    """Bad usage or configuration: an unknown sink scheme, a bad key or value (exit code 2)."""

    exit_code = 2


class SinkError(LogferryError):
    """A sink failed to accept a batch.

    The pipeline retries a failed batch with backoff (whatever the sink raised), unless the error is
    a ``SinkError`` with ``retryable=False``: then the run stops with the message (exit code 1).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class NotAcknowledged(LogferryError):
    """A ``--once`` run ended with lines it read not acknowledged by every sink (exit code 1).

    Nothing is lost: their checkpoints did not move, so the next run reads them again. ``bytes``,
    ``files``: how much; ``sinks``: the sinks that did not acknowledge; ``cause``: why it ended
    (a sink gave up after its attempts, failed for good, or the run was stopped).
    """

    def __init__(self, nbytes: int, files: int, sinks: list[str], cause: str) -> None:
        self.bytes, self.files, self.sinks, self.cause = nbytes, files, sinks, cause
        super().__init__(
            f"{cause}; {nbytes:,} bytes of {files} file{'' if files == 1 else 's'} were not acknowledged by "
            f"{', '.join(sinks) or 'the sinks'}: they are read again next run"
        )
