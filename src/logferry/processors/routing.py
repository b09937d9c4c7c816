"""Routing: a sink's ``match`` table says which records go to it."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..records.record import Record
from .filters import found_in

if TYPE_CHECKING:
    from .patterns import Pattern


class Route:
    """``match = { path = "*/app/*.log", level = "^(error|fatal)$" }``: a record goes to the sink when
    its file's path matches one of the ``path`` globs (``*`` spans ``/``) and every other key's
    pattern is found in the field of that name (``line``: the record's text). A record without the
    field does not match."""

    def __init__(self, paths: Sequence[str], fields: dict[str, Pattern]) -> None:
        self.paths, self.fields = tuple(paths), fields

    def wants(self, path: str) -> bool:
        """Whether records of the file at ``path`` may go to the sink at all."""
        return not self.paths or any(fnmatchcase(path, glob) for glob in self.paths)

    def select(self, records: Sequence[Record]) -> list[Record]:
        """The records (of a file it wants) that go to the sink."""
        chosen = list(records)
        for name, pattern in self.fields.items():  # one field at a time: most tables have one
            chosen = [r for r, hit in zip(chosen, found_in(pattern, chosen, name)) if hit]
        return chosen


def compile_route(key: str, match: Any) -> Route:
    """The route of a ``[[sinks]]`` table's ``match`` (``key`` names it in errors)."""
    if not isinstance(match, dict) or not match:
        raise ConfigError(f"{key}: needs a table such as {{ path = \"*/app/*.log\", level = \"^error$\" }}")
    paths = match.get("path", [])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{key}.path: needs a glob or a list of globs")
    from .patterns import compile_pattern  # RE2 is imported by the runs that route only

    fields = {name: compile_pattern(f"{key}.{name}", value) for name, value in match.items() if name != "path"}
    return Route(paths, fields)
