"""Stream names: fixed (``logs``) or templated from the source file (``logs:{stem}``).

A template is checked when the sink is made, so a typo fails the run at once instead of at the
first batch. Names are rendered to bytes with the path's own bytes (``surrogateescape``), so a
file name that is not UTF-8 still gives a stable stream name.
"""

from __future__ import annotations

from logferry.sinks.kit import SourceTemplate


class StreamTemplate(SourceTemplate):
    """A stream name with optional ``{field}`` placeholders (``{{`` and ``}}`` for literal braces).

    Literal braces matter in Redis Cluster: ``logs:{{app}}`` is the stream ``logs:{app}``, whose
    hash tag ``app`` pins it to one slot.
    """

    def __init__(self, template: str, host: str) -> None:
        super().__init__(template, host)
        if not self.render("/var/log/example.log"):
            raise ValueError("the stream name is empty")
