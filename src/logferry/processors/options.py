"""The options of a ``[[processors]]`` table: each parsed by its parser, every mistake a ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..settings import parse_duration, parse_size
from ..sinks.kit import Parser, boolean, checked, choice, positive_int, text
from .patterns import compile_pattern

__all__ = ["Parser", "boolean", "choice", "duration", "parse", "positive_int", "size", "table", "text"]

duration = checked(parse_duration, lambda seconds: seconds >= 0, 'a duration such as 2 or "500ms"')
size = checked(parse_size, lambda n: n > 0, 'a size above 0 such as 65536 or "1MiB"')


def table(value: Any) -> dict[str, Any]:
    """A TOML table (``{ env = "prod" }``) with string keys."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected a table such as {{ env = \"prod\" }}, got {value!r}")
    return dict(value)


PATTERN = object()
"""The parser of a regular expression option: compiled by RE2 (see :mod:`.patterns`)."""


def parse(key: str, options: Mapping[str, Any], parsers: Mapping[str, Parser | object],
          required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``options`` of the table ``key`` (e.g. ``[[processors]] #2 (drop)``), each by its parser;
    an unknown or missing option is an error listing the known ones."""
    parsed: dict[str, Any] = {}
    for name, value in options.items():
        parser = parsers.get(name)
        if parser is None:
            known = ", ".join(sorted(parsers)) or "none"
            raise ConfigError(f"{key}: unknown option {name!r} (known: {known})")
        if parser is PATTERN:
            parsed[name] = compile_pattern(f"{key} {name}", value)
            continue
        try:
            parsed[name] = parser(value)  # type: ignore[operator]
        except ValueError as exc:
            raise ConfigError(f"{key} {name}: {exc}") from None
    missing = [name for name in required if name not in parsed]
    if missing:
        raise ConfigError(f"{key}: needs {' and '.join(missing)}")
    return parsed
