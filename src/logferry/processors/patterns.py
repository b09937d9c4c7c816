"""Regular expressions users write, compiled so that no line can hang the shipper.

They are compiled by RE2 (``google-re2``), whose matching takes time linear in the line whatever
the pattern: Python's ``re`` backtracks, and a pattern such as ``(a+)+$`` takes seconds on a line
of 30 characters and years on a longer one. RE2 is some ten times slower per call on short lines
(1 µs against 0.1 µs, measured here), which the processors' figures already include. What RE2
cannot do (backreferences, lookaround) is a configuration error naming the key.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2

from ..errors import ConfigError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised as one line naming the key, not logged by RE2 too


class Pattern(Protocol):
    """What the processors use of a compiled pattern (RE2's, with ``re``'s methods)."""

    pattern: str

    def search(self, text: str) -> Any: ...

    def match(self, text: str) -> Any: ...

    def sub(self, repl: str, text: str) -> str: ...

    @property
    def groupindex(self) -> dict[str, int]: ...


def compile_pattern(key: str, value: Any) -> Pattern:
    """``value`` (the option ``key``) as a compiled pattern, or a ConfigError naming the key."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: needs a regular expression (a non-empty string)")
    try:
        return re2.compile(value, _OPTIONS)
    except Exception as exc:  # re2.error, and ValueError/TypeError from its parser
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ConfigError(f"{key}: bad regular expression {value!r}: {reason} (RE2 syntax: no backreferences or "
                          "lookaround)") from None
