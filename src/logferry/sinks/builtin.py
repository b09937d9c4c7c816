"""Built-in sink plugin: ``file:PATH`` or a bare path, ``-`` (stdout) and ``null:``.

It uses the same hooks as any third-party sink plugin; being registered first, it runs last.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..formats import FORMATS
from ..hookspecs import hookimpl
from ..settings import Settings
from ..sink import Sink
from .file import STDOUT, FileSink, NullSink

_FILE_OPTIONS = {"format", "fsync"}


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
    return FileSink(url, file_path(url, scheme), fmt, fsync)


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
