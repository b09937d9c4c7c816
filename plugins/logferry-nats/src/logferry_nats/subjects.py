"""Subjects: fixed (``logs``) or templated from the source file (``logs.{stem}``).

A placeholder always renders to exactly one subject token: characters a token cannot hold (``.``,
whitespace, the wildcards ``*`` and ``>``) become ``_``, and bytes that are not UTF-8 become U+FFFD,
so every subscriber can decode the subject. So ``logs.{stem}`` only ever gives subjects that
``logs.*`` matches: that wildcard form is what a stream must capture (and what a stream created by
the sink captures). A template is checked when the sink is made, so a typo fails the run at once.
"""

from __future__ import annotations

import os
import re
import string

FIELDS = {
    "path": "the file's path",
    "name": "the file's name (basename)",
    "stem": "the file's name up to its first dot: app.log, app.log.1 and app.log-2026 give 'app'",
    "dir": "the name of the file's directory",
    "host": "this machine's host name",
}
_CACHE_MAX = 4096
_NOT_IN_TOKEN = re.compile(r"[\s.*>\x00-\x1f\x7f]")


class SubjectTemplate:
    """A subject with optional ``{field}`` placeholders (``{{`` and ``}}`` for literal braces)."""

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
        self.wildcard = self._join("*")
        """The subjects this template can give, as a subject filter: ``logs.{stem}`` is ``logs.*``."""
        _check_subject(self._join("x"), template)
        self._cache: dict[str, bytes] = {}

    def render(self, path: str) -> bytes:
        """The subject for lines of the file at ``path``."""
        subject = self._cache.get(path)
        if subject is None:
            if len(self._cache) >= _CACHE_MAX:  # bounded: files come and go over months
                self._cache.clear()
            subject = self._cache[path] = self._render(path).encode()
        return subject

    def _render(self, path: str) -> str:
        base = os.path.basename(path)
        values = {
            "path": path,
            "name": base,
            "stem": base.lstrip(".").split(".", 1)[0] or base,
            "dir": os.path.basename(os.path.dirname(path)),
            "host": self.host,
        }
        return "".join(literal + (_token(values[name]) if name else "") for literal, name in self._pieces)

    def _join(self, placeholder: str) -> str:
        """The template with every token holding a placeholder replaced by ``placeholder``."""
        text = "".join(literal + ("\0" if name else "") for literal, name in self._pieces)
        return ".".join(placeholder if "\0" in token else token for token in text.split("."))


def _token(value: str) -> str:
    """``value`` as one subject token of valid UTF-8."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _NOT_IN_TOKEN.sub("_", text) or "_"


def _check_subject(subject: str, template: str) -> None:
    if not subject:
        raise ValueError("the subject is empty")
    for token in subject.split("."):
        if not token:
            raise ValueError(f"{template!r} has an empty token (a leading, trailing or double '.')")
        if token in ("*", ">") or _NOT_IN_TOKEN.search(token):
            raise ValueError(f"{template!r}: a subject to publish to holds no wildcard (*, >), space or"
                             " control character")


def covers(filter_: str, subject: str) -> bool:
    """Whether the subject filter ``filter_`` (a stream's subject, wildcards allowed) matches every
    subject that ``subject`` (itself possibly holding ``*`` tokens) stands for."""
    want, have = filter_.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)
