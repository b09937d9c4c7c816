"""Filters and edits: drop or keep records, add static fields, redact what must not leave the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..records.record import NO_FIELDS, RESERVED, Record
from .base import Processor
from .options import PATTERN, boolean, parse, table, text
from .patterns import Pattern


class Select(Processor):
    """``drop``: removes the records whose text (or ``field``) ``pattern`` finds; ``keep``: removes
    the others. A removed record counts as delivered: its file's checkpoint moves past it."""

    def __init__(self, pattern: Pattern, field: str | None, keep: bool) -> None:
        super().__init__()
        self.pattern, self.field, self.keep = pattern, field, keep

    def process(self, records: list[Record]) -> Sequence[Record]:
        keep = self.keep
        kept = [r for r, hit in zip(records, found_in(self.pattern, records, self.field)) if hit is keep]
        self.tally.dropped += len(records) - len(kept)
        return kept


def found_in(pattern: Pattern, records: Sequence[Record], name: str | None) -> list[bool]:
    """Whether ``pattern`` is found in each record's field ``name`` (its text: ``line`` or None; a
    record without the field: no). The texts of a batch are searched in one pass."""
    if name is None or name == "line":
        hits = set(pattern.lines([r.line for r in records]))
        return [i in hits for i in range(len(records))]
    found = pattern.found_in_value
    if name == "offset":
        return [found(r.offset) for r in records]
    none = NO_FIELDS
    return [found((r.fields or none).get(name)) for r in records]


class Fields(Processor):
    """Adds static fields to every record (``fields = { env = "prod" }``), replacing parsed ones of the same name."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def process(self, records: list[Record]) -> Sequence[Record]:
        static = self.fields
        for record in records:
            if record.fields is None:
                record.fields = dict(static)
            else:
                record.fields.update(static)
        return records


class Redact(Processor):
    """Replaces what ``pattern`` finds in the text (and in text fields, unless ``fields = false``)
    with ``replace`` (``\\1`` refers to a group). Raw output writes the redacted text too."""

    def __init__(self, pattern: Pattern, replace: str, in_fields: bool) -> None:
        super().__init__()
        self.pattern, self.replace, self.in_fields = pattern, replace, in_fields

    def process(self, records: list[Record]) -> Sequence[Record]:
        pattern, replace = self.pattern, self.replace
        for i in pattern.lines([r.line for r in records]):
            records[i].line = pattern.sub(replace, records[i].line)
        if self.in_fields:
            for record in records:
                for name, value in (record.fields or {}).items():
                    if isinstance(value, str) and pattern.found(value):
                        record.fields[name] = pattern.sub(replace, value)  # type: ignore[index]
        return records


def make_select(kind: str, key: str, options: dict[str, Any]) -> Select:
    given = parse(key, options, {"pattern": PATTERN, "field": text}, required=("pattern",))
    return Select(given["pattern"], given.get("field"), keep=kind == "keep")


def make_fields(key: str, options: dict[str, Any]) -> Fields:
    given = parse(key, options, {"fields": table}, required=("fields",))
    taken = sorted(set(given["fields"]) & set(RESERVED))
    if taken:
        raise ConfigError(f"{key} fields: {', '.join(taken)} is a key every record has already "
                          f"({', '.join(RESERVED)}); choose another name")
    return Fields(given["fields"])


def make_redact(key: str, options: dict[str, Any]) -> Redact:
    given = parse(key, options, {"pattern": PATTERN, "replace": str, "fields": boolean}, required=("pattern",))
    return Redact(given["pattern"], given.get("replace", "***"), given.get("fields", True))
