"""One record on its way through the processors: a line of a file, or a multiline event of its lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

RESERVED = ("ts", "path", "offset", "id", "line")
"""The keys every JSON record has: a field of the same name is kept as ``parsed_<name>``."""
NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
"""What ``record.fields or NO_FIELDS`` looks fields up in when a record has none."""


@dataclass(slots=True)
class Record:
    """A line (or an event of lines) with what processors learnt about it.

    ``line`` is the text without its newline; an event's lines are joined by ``"\\n"``. It is the
    file's bytes decoded as UTF-8 with invalid bytes kept as surrogate escapes, so :attr:`raw` gives
    the file's bytes back unchanged (unless a processor rewrote the text). ``offset`` is the byte
    offset of its (first) line in the file: with the batch's ``file_id`` it is the record's id, the
    same on every re-delivery.
    """

    offset: int
    line: str
    fields: dict[str, Any] | None = None
    """Parsed and added fields, written at the top level of JSON records beside the record's own keys."""
    ts: float | None = None
    """Its own time (a parsed timestamp, seconds since the epoch); None: when it was read."""

    @property
    def raw(self) -> bytes:
        """What raw output writes: the text as the file's bytes, with its newline."""
        return self.line.encode("utf-8", "surrogateescape") + b"\n"

    def set(self, name: str, value: Any) -> None:
        """Add a field; a name the record's own keys use becomes ``parsed_<name>``."""
        if name in RESERVED:
            name = "parsed_" + name
        if self.fields is None:
            self.fields = {name: value}
        else:
            self.fields[name] = value

    def get(self, name: str) -> Any:
        """A field's value, or the record's own ``line``/``offset``; None when it has none."""
        if name == "line":
            return self.line
        if name == "offset":
            return self.offset
        return self.fields.get(name) if self.fields else None
