"""logferry-nats: publish every line to a NATS JetStream stream, effectively once.

Registered under the ``logferry`` entry-point group; serves ``nats://`` sink URLs. Each line is one
JetStream message whose ``Nats-Msg-Id`` is the line's id, so JetStream's duplicate window drops
the re-deliveries of at-least-once shipping. See the README for the options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import logferry
from logferry import Settings

from .config import SCHEMES, NatsConfig, parse_config

if TYPE_CHECKING:
    from .sink import NatsSink

__version__ = "0.1.0"
__all__ = ["NatsConfig", "NatsSink", "__version__", "parse_config"]


def __getattr__(name: str) -> Any:
    # nats-py is imported only by runs that use a nats sink, not by every `logferry` command
    # that merely loads the plugins.
    if name == "NatsSink":
        from .sink import NatsSink

        return NatsSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@logferry.hookimpl
def logferry_sink_schemes() -> list[str]:
    return list(SCHEMES)


@logferry.hookimpl
def logferry_make_sink(url: str, scheme: str, options: dict[str, Any], settings: Settings) -> NatsSink | None:
    if scheme not in SCHEMES:
        return None
    from .sink import NatsSink

    return NatsSink(url, parse_config(url, scheme, options))
