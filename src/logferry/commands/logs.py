"""logferry's own log lines on stderr: ``text`` (``logferry: WARNING: …``) or ``json`` (one object a line).

Standard :mod:`logging` only. :func:`setup_logging` installs one handler on the ``logferry`` and
``asyncio`` loggers (asyncio reports slow callbacks in debug mode), replacing the one it installed
before, so calling it again (as tests calling ``cli.main`` do) never doubles lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "logferry: %(levelname)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a record: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
    ``message``, and ``exception`` (the formatted traceback) when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "ts": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-01-31T12:00:00.123Z``, as in logferry's JSON line records."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``--log-format`` ``text`` or ``json``."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def setup_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send the ``logferry`` and ``asyncio`` loggers' records at ``level`` or above to ``stream``
    (stderr) in ``log_format``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.set_name("logferry-cli")
    root = logging.getLogger("logferry")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.handlers[:] = [h for h in asyncio_log.handlers if h.get_name() != "logferry-cli"] + [handler]
    return handler
