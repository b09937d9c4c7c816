"""Subjects: fixed (``logs``) or templated from the source file (``logs.{stem}``).

A placeholder always renders to exactly one subject token: characters a token cannot hold (``.``,
whitespace, the wildcards ``*`` and ``>``) become ``_``, and bytes that are not UTF-8 become U+FFFD,
so every subscriber can decode the subject. So ``logs.{stem}`` only ever gives subjects that
``logs.*`` matches: that wildcard form is what a stream must capture (and what a stream created by
the sink captures). A template is checked when the sink is made, so a typo fails the run at once.
"""

from __future__ import annotations

import re

from logferry.sinks.kit import SourceTemplate

_NOT_IN_TOKEN = re.compile(r"[\s.*>\x00-\x1f\x7f]")


class SubjectTemplate(SourceTemplate):
    """A subject with optional ``{field}`` placeholders (``{{`` and ``}}`` for literal braces)."""

    def __init__(self, template: str, host: str) -> None:
        super().__init__(template, host)
        self.wildcard = self._join("*")
        """The subjects this template can give, as a subject filter: ``logs.{stem}`` is ``logs.*``."""
        _check_subject(self._join("x"), template)

    def field_text(self, value: str) -> str:
        """``value`` as one subject token of valid UTF-8."""
        text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return _NOT_IN_TOKEN.sub("_", text) or "_"

    def _join(self, placeholder: str) -> str:
        """The template with every token holding a placeholder replaced by ``placeholder``."""
        text = "".join(literal + ("\0" if name else "") for literal, name in self.pieces)
        return ".".join(placeholder if "\0" in token else token for token in text.split("."))


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
