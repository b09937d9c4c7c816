"""Stream names: fixed (``logs``) or templated from the source file (``logs:{stem}``).

A template is checked when the sink is made, so a typo fails the run at once instead of at the
first batch. Names are rendered to bytes with the path's own bytes (``surrogateescape``), so a
file name that is not UTF-8 still gives a stable stream name.
"""

from __future__ import annotations

import os
import string

FIELDS = {
    "path": "the file's path",
    "name": "the file's name (basename)",
    "stem": "the file's name up to its first dot: app.log, app.log.1 and app.log-2026 give 'app'",
    "dir": "the name of the file's directory",
    "host": "this machine's host name",
}
_CACHE_MAX = 4096


class StreamTemplate:
    """A stream name with optional ``{field}`` placeholders (``{{`` and ``}}`` for literal braces).

    Literal braces matter in Redis Cluster: ``logs:{{app}}`` is the stream ``logs:{app}``, whose
    hash tag ``app`` pins it to one slot.
    """

    def __init__(self, template: str, host: str) -> None:
        self.template = template
        self.host = host
        self._pieces: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:  # an unmatched brace
            raise ValueError(f"{exc} in {template!r} (write {{{{ and }}}} for literal braces)") from None
        for literal, name, spec, conversion in parsed:
            if name is not None and name not in FIELDS:
                known = ", ".join(f"{{{f}}}" for f in FIELDS)
                raise ValueError(f"unknown field {{{name}}} in {template!r} (known: {known})")
            if spec or conversion:
                raise ValueError(f"{{{name}}} takes no format spec or conversion in {template!r}")
            self._pieces.append((literal, name))
        self.fixed = all(name is None for _, name in self._pieces)
        self._cache: dict[str, bytes] = {}
        if not self.render("/var/log/example.log"):
            raise ValueError("the stream name is empty")

    def render(self, path: str) -> bytes:
        """The stream name for lines of the file at ``path``."""
        name = self._cache.get(path)
        if name is None:
            if len(self._cache) >= _CACHE_MAX:  # bounded: files come and go over months
                self._cache.clear()
            name = self._cache[path] = self._render(path)
        return name

    def _render(self, path: str) -> bytes:
        base = os.path.basename(path)
        values = {
            "path": path,
            "name": base,
            "stem": base.lstrip(".").split(".", 1)[0] or base,
            "dir": os.path.basename(os.path.dirname(path)),
            "host": self.host,
        }
        text = "".join(literal + (values[name] if name else "") for literal, name in self._pieces)
        return text.encode("utf-8", "surrogateescape")
