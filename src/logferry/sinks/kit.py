"""Building blocks for sink plugins: options, host lists, secrets from the environment, name templates.

A sink takes its options from two places, the URL's query (strings) and its ``[[sinks]]`` table
(TOML values). :func:`parse_options` runs both through one table of parsers, so ``?maxlen=1000``
and ``maxlen = 1000`` mean the same; a parser is any callable that takes the raw value and returns
the parsed one or raises :class:`ValueError` (:func:`boolean`, :func:`positive_int`, :func:`text`,
:func:`choice`, :func:`checked` are ready-made). Every mistake becomes one :class:`~logferry.errors.ConfigError`
naming the sink and the option: the run exits with code 2 and that line, never a traceback.

The ``sink`` argument of these functions names the sink in messages: pass its URL with any
secret already masked.

:class:`SourceTemplate` turns a template such as ``logs:{stem}`` into the destination name (a
stream, a subject, a topic) for each source file.

Only the standard library and :mod:`logferry.errors` are imported here, so a plugin's config
module can use this kit without making ``logferry plugins`` or a configuration error slower.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from ..errors import ConfigError

T = TypeVar("T")

Parser = Callable[[Any], Any]
"""Raw option value (a query string or a TOML value) → parsed value; raises ValueError if bad."""

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


# --- option parsers -------------------------------------------------------------------------------


def boolean(value: Any) -> bool:
    """A TOML boolean, or one of the strings in :data:`TRUE` / :data:`FALSE` (any case)."""
    if isinstance(value, bool):
        return value
    word = value.lower() if isinstance(value, str) else ""
    if word not in TRUE | FALSE:
        raise ValueError(f"expected true or false, got {value!r}")
    return word in TRUE


def positive_int(value: Any) -> int:
    """A whole number above 0: a TOML integer (not a boolean) or a string of digits."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number <= 0:
        raise ValueError(f"expected a whole number above 0, got {value!r}")
    return number


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def choice(*allowed: str) -> Callable[[Any], str]:
    """One of the strings ``allowed``."""

    def parse_choice(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return str(value)

    return parse_choice


def checked(parse: Callable[[Any], T], accept: Callable[[T], bool], expected: str) -> Callable[[Any], T]:
    """``parse``, then refuse a parsed value ``accept`` says no to with "expected EXPECTED, got …".

    ``checked(parse_duration, lambda s: s > 0, 'a duration above 0 such as 5 or "500ms"')`` is a
    timeout; errors of ``parse`` itself pass through unchanged.
    """

    def parse_checked(value: Any) -> T:
        parsed = parse(value)
        if not accept(parsed):
            raise ValueError(f"expected {expected}, got {value!r}")
        return parsed

    return parse_checked


# --- the sink's options ---------------------------------------------------------------------------


def parse_options(sink: str, query: str, table: Mapping[str, Any], parsers: Mapping[str, Parser], *,
                  overridable: Collection[str] = ()) -> dict[str, Any]:
    """The options of the URL's ``query`` and of the ``[[sinks]]`` ``table``, each parsed by ``parsers``.

    Only options given are in the result: defaults are the caller's. An option given twice in the
    URL, or both in the URL and in the table, is an error, except those in ``overridable``, where
    the table's value wins (the host passes the user's ``format`` to every sink's table).
    An unknown option is an error listing the known ones.
    """
    raw: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in raw:
            raise ConfigError(f"sink {sink!r}: option {key!r} is given twice in the URL")
        raw[key] = value
    for key, value in table.items():
        if key in raw and key not in overridable:
            raise ConfigError(f"sink {sink!r}: option {key!r} is given both in the URL and in the [[sinks]] table")
        raw[key] = value
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        parse = parsers.get(key)
        if parse is None:
            raise ConfigError(f"sink {sink!r}: unknown option {key!r} (known: {', '.join(sorted(parsers))})")
        try:
            parsed[key] = parse(value)
        except ValueError as exc:
            raise ConfigError(f"sink {sink!r}: option {key!r}: {exc}") from None
    return parsed


def parse_hosts(sink: str, hostlist: str, default_port: int, usage: str) -> list[tuple[str, int]]:
    """``host[:port]`` items separated by commas (IPv6 addresses in brackets) → ``(host, port)`` pairs.

    ``hostlist`` is the URL's netloc without its userinfo; an item without a port gets
    ``default_port``. An empty host is an error that shows ``usage`` (``redis://HOST:PORT/DB``).
    """
    hosts = []
    for item in hostlist.split(","):
        host, port = item, default_port
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                port = parse_port(sink, rest.removeprefix(":"))
        elif ":" in item:
            host, _, digits = item.rpartition(":")
            port = parse_port(sink, digits)
        if not host:
            raise ConfigError(f"sink {sink!r}: no host given (use {usage})")
        hosts.append((host, port))
    return hosts


def parse_port(sink: str, digits: str) -> int:
    """A TCP port, 1 to 65535, written in decimal digits."""
    if not digits.isdigit() or not 0 < int(digits) < 65536:
        raise ConfigError(f"sink {sink!r}: bad port {digits!r}")
    return int(digits)


def from_env(sink: str, key: str, variable: str) -> str:
    """The value of the environment variable ``variable``, named by the option ``key``.

    Secrets go in the environment, not in the config file: ``password_env = "REDIS_PASSWORD"``.
    An unset variable is an error naming the option and the variable (never a value). An empty
    one is returned as it is.
    """
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(f"sink {sink!r}: option {key!r}: environment variable {variable!r} is not set")
    return value


# --- destination names from the source file -------------------------------------------------------


FIELDS = {
    "path": "the file's path",
    "name": "the file's name (basename)",
    "stem": "the file's name up to its first dot: app.log, app.log.1 and app.log-2026 give 'app'",
    "dir": "the name of the file's directory",
    "host": "this machine's host name",
}
"""The placeholders a :class:`SourceTemplate` knows, with what each stands for."""

_CACHE_MAX = 4096


class SourceTemplate:
    """A destination name with optional ``{field}`` placeholders (:data:`FIELDS`), rendered for each
    source file; ``{{`` and ``}}`` are literal braces.

    The template is checked when it is made (an unknown field, a format spec, an unmatched brace
    raise ValueError; wrap it in a ConfigError naming the option), so a typo fails the run at once
    instead of at the first batch. :meth:`render` gives the name as bytes, with the path's own bytes
    kept (``surrogateescape``) so a file name that is not UTF-8 still gives a stable name; renders
    are cached, a bounded number of paths.

    Subclass to shape each field's value for the destination (:meth:`field_text`) and to check the
    template further (:attr:`pieces`).
    """

    def __init__(self, template: str, host: str) -> None:
        self.template = template
        self.host = host
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:  # an unmatched brace
            raise ValueError(f"{exc} in {template!r} (write {{{{ and }}}} for literal braces)") from None
        pieces = []
        for literal, name, spec, conversion in parsed:
            if name is not None and name not in FIELDS:
                known = ", ".join(f"{{{f}}}" for f in FIELDS)
                raise ValueError(f"unknown field {{{name}}} in {template!r} (known: {known})")
            if spec or conversion:
                raise ValueError(f"{{{name}}} takes no format spec or conversion in {template!r}")
            pieces.append((literal, name))
        self.pieces: tuple[tuple[str, str | None], ...] = tuple(pieces)
        """``(literal text, field name or None)`` pairs, in order: the template, parsed."""
        self.fixed = all(name is None for _, name in self.pieces)
        """True when the template has no placeholder: every file gives the same name."""
        self._cache: dict[str, bytes] = {}

    def render(self, path: str) -> bytes:
        """The destination name for lines of the file at ``path``."""
        rendered = self._cache.get(path)
        if rendered is None:
            if len(self._cache) >= _CACHE_MAX:  # bounded: files come and go over months
                self._cache.clear()
            values = self.fields(path)
            name = "".join(literal + (self.field_text(values[field]) if field else "") for literal, field in self.pieces)
            rendered = self._cache[path] = name.encode("utf-8", "surrogateescape")
        return rendered

    def fields(self, path: str) -> dict[str, str]:
        """The value of every field of :data:`FIELDS` for the file at ``path``."""
        base = os.path.basename(path)
        return {
            "path": path,
            "name": base,
            "stem": base.lstrip(".").split(".", 1)[0] or base,
            "dir": os.path.basename(os.path.dirname(path)),
            "host": self.host,
        }

    def field_text(self, value: str) -> str:
        """A field's value as it goes into the name: as it is here; a subclass may escape it."""
        return value
