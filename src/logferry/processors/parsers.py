"""Parsers: fields out of each record's text (JSON, logfmt, a regular expression with named groups).

A record a parser cannot parse passes on unchanged, counted in its tally with the reason (and, with
``error_field``, the reason in that field): never a stop, never a loss. Parsed fields go beside the
record's own keys (a field named like one, ``ts`` for instance, becomes ``parsed_ts``); with
``timestamp_key`` the named field becomes the record's time instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from ..errors import ConfigError
from ..records.record import RESERVED, Record
from .base import Processor
from .options import PATTERN, Parser, parse, text
from .patterns import Pattern

TIMESTAMP_FORMATS = ("iso8601", "unix", "unix_ms", "unix_us", "unix_ns")
"""``timestamp_format`` names; anything with a ``%`` is a ``strptime`` format. A time without a
zone is taken as UTC."""
_UNIX_SCALE = {"unix": 1, "unix_ms": 1e3, "unix_us": 1e6, "unix_ns": 1e9}
_RESERVED = frozenset(RESERVED)


def timestamp_parser(form: str) -> Callable[[Any], float]:
    """The function that turns a ``timestamp_format`` value into seconds since the epoch (or raises)."""
    if form in _UNIX_SCALE:
        scale = _UNIX_SCALE[form]
        return lambda value: float(value) / scale
    if form == "iso8601":
        return _iso8601
    return lambda value: _epoch(datetime.strptime(str(value), form))


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


_ISO_TAIL = re.compile(r"(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)?")


def _iso8601(value: Any) -> float:
    """``2026-12-01T10:00:00.123Z`` (any ISO 8601 / RFC 3339 form) in seconds since the epoch.

    The common shape is taken apart here, its second remembered: lines of one second share it, and
    ``datetime`` costs a microsecond and a half a line."""
    text = str(value)
    if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[20:23].isdigit():  # ...00.123Z: most logs
        return _second(text[:19]) + int(text[20:23]) / 1000
    tail = _ISO_TAIL.fullmatch(text, 19) if len(text) >= 19 and text[10] in "Tt " else None
    if tail is None:
        return _epoch(datetime.fromisoformat(text))
    seconds = _second(text[:19])
    fraction, zone = tail.groups()
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "+" else 1
        seconds += sign * (int(zone[1:3]) * 3600 + int(zone[-2:]) * 60)
    return seconds


@lru_cache(maxsize=256)
def _second(head: str) -> float:
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()


def _timestamp_format(value: Any) -> str:
    form = text(value)
    if form not in TIMESTAMP_FORMATS and "%" not in form:
        raise ValueError(f"expected one of {', '.join(TIMESTAMP_FORMATS)} or a strptime format such as "
                         f"'%d/%b/%Y:%H:%M:%S %z', got {value!r}")
    return form


COMMON: dict[str, Parser | object] = {"field": text, "timestamp_key": text, "timestamp_format": _timestamp_format,
                                      "error_field": text}
"""The options every parser takes: ``field`` (parse that field's value, not the line), the
timestamp's key and format, and ``error_field`` (where to say why a record was not parsed)."""


class Parse(Processor):
    """What the parsers share: which text to parse, what to do with the result and with failures."""

    def __init__(self, given: dict[str, Any]) -> None:
        super().__init__()
        self.field: str | None = given.get("field")
        self.timestamp_key: str | None = given.get("timestamp_key")
        self.timestamp = timestamp_parser(given.get("timestamp_format", "iso8601"))
        self.error_field: str | None = given.get("error_field")

    def fields_of(self, text: str) -> dict[str, Any] | str:
        """The fields parsed from ``text``, or why there are none (a short reason, e.g. ``not JSON``)."""
        raise NotImplementedError

    def process(self, records: list[Record]) -> Sequence[Record]:
        name, fields_of, key, timestamp, reserved = (self.field, self.fields_of, self.timestamp_key, self.timestamp,
                                                     _RESERVED)
        for record in records:
            value = record.line if name is None else record.get(name)
            if type(value) is not str:
                self._failed(record, f"no field {name!r}" if value is None else f"{name} is not text")
                continue
            found = fields_of(value)
            if isinstance(found, str):
                self._failed(record, found)
                continue
            if key is not None and key in found:
                stamp = found.pop(key)
                try:
                    record.ts = timestamp(stamp)
                except (ValueError, TypeError, OverflowError, OSError):
                    found[key] = stamp
                    self._failed(record, f"bad timestamp {str(stamp)[:40]!r}")
            if reserved.isdisjoint(found):
                if record.fields is None:
                    record.fields = found
                else:
                    record.fields.update(found)
            else:
                for field_name, field_value in found.items():
                    record.set(field_name, field_value)
        return records

    def _failed(self, record: Record, reason: str) -> None:
        self.tally.unparsable(reason)
        if self.error_field is not None:
            record.set(self.error_field, reason)


class JsonParser(Parse):
    """A JSON object per line: its members become fields."""

    def fields_of(self, text: str) -> dict[str, Any] | str:
        try:
            found = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "not JSON"
        return found if isinstance(found, dict) else "not a JSON object"


_PAIR = re.compile(r'([^\s=]+)(=)?("(?:[^"\\]|\\.)*"|[^\s"]\S*)?')  # ours, and linear: re is safe here


class LogfmtParser(Parse):
    """``key=value key2="quoted value" flag`` pairs (a bare key is ``true``)."""

    def fields_of(self, text: str) -> dict[str, Any] | str:
        if "=" not in text:
            return "no key=value pairs"
        found: dict[str, Any] = {}
        for key, equals, value in _PAIR.findall(text):
            if not value:
                found[key] = "" if equals else True
            elif value[0] == '"':
                found[key] = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            else:
                found[key] = value
        return found


class RegexParser(Parse):
    """The named groups of ``pattern`` (searched in the text) become fields; unmatched groups are left out."""

    def __init__(self, given: dict[str, Any]) -> None:
        super().__init__(given)
        self.pattern: Pattern = given["pattern"]

    def fields_of(self, text: str) -> dict[str, Any] | str:
        found = self.pattern.groups(text)
        return "no match" if found is None else found


def make_parser(kind: str, key: str, options: dict[str, Any]) -> Parse:
    """A ``json``, ``logfmt`` or ``regex`` parser from its table's options."""
    if kind == "regex":
        given = parse(key, options, {**COMMON, "pattern": PATTERN}, required=("pattern",))
        if not given["pattern"].groupindex:
            raise ConfigError(f"{key} pattern: has no named group such as (?P<level>\\w+): it would add no field")
        return RegexParser(given)
    given = parse(key, options, COMMON)
    return JsonParser(given) if kind == "json" else LogfmtParser(given)
