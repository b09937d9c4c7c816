"""Built-in sink plugin: ``file:PATH`` or a bare path, ``-`` (stdout) and ``null:``.

It uses the same hooks as any third-party sink plugin; being registered first, it runs last.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError
from ..markers import hookimpl
from ..records.formats import FORMATS
from ..settings import Settings
from .base import Sink
from .file import STDOUT, FileSink, NullSink

_FILE_OPTIONS = {"format", "fsync", "mode"}
_OCTAL_MODE = re.compile(r"(?:0o?)?([0-7]{1,3})", re.IGNORECASE)


@hookimpl
def logferry_sink_schemes() -> list[str]:
    return ["file", "stdout", "null"]


@hookimpl(trylast=True)
def logferry_make_sink(url: str, scheme: str, options: dict[str, Any], settings: Settings) -> Sink | None:
    if scheme == "null":
        _check_options(url, options, {"format"})
        return NullSink(url)
    if scheme not in ("file", "stdout"):
        return None
    _check_options(url, options, _FILE_OPTIONS)
    fmt = options.get("format", settings.format)
    if fmt not in FORMATS:
        raise ConfigError(f"sink {url!r}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fsync = options.get("fsync", False)
    if not isinstance(fsync, bool):
        raise ConfigError(f"sink {url!r}: fsync must be true or false, got {fsync!r}")
    path = file_path(url, scheme)
    mode = file_mode(url, options["mode"]) if "mode" in options else None
    if mode is not None and path == STDOUT:
        raise ConfigError(f"sink {url!r}: mode applies to files, not to stdout")
    return FileSink(url, path, fmt, fsync, mode)


def file_mode(url: str, value: object) -> int:
    """The ``mode`` option: ``"0640"``, ``"640"``, ``"0o640"`` or a TOML octal integer (``0o640``).

    Permission bits only (0–0o777). A plain integer over 0o777 (``mode = 640``, decimal) is refused
    rather than taken as 0o1200.
    """
    if isinstance(value, str) and (match := _OCTAL_MODE.fullmatch(value)):
        return int(match[1], 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    raise ConfigError(f"sink {url!r}: mode must be permission bits in octal (\"0640\", or 0o640 unquoted), "
                      f"got {value!r}")


def file_path(url: str, scheme: str) -> str:
    """``file:///a/b`` and ``file:/a/b`` → ``/a/b``; a bare path stays; ``-``/``stdout:`` → stdout."""
    if scheme == "stdout":
        return STDOUT
    if url.lower().startswith("file://"):
        path = url[len("file://"):]
    elif url.lower().startswith("file:"):
        path = url[len("file:"):]
    else:
        path = url
    if not path:
        raise ConfigError(f"sink {url!r}: no file path given (use file:PATH)")
    return path


def _check_options(url: str, options: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"sink {url!r}: unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
