"""logferry-redis: ship every line to a Redis stream (XADD), on a standalone server or a Redis Cluster.

Registered under the ``logferry`` entry-point group; serves ``redis://``, ``rediss://`` (TLS) and
``redis+cluster://`` sink URLs. See the README for the options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import logferry
from logferry import Settings

from .config import SCHEMES, RedisConfig, parse_config

if TYPE_CHECKING:
    from .sink import RedisSink

__version__ = "0.1.0"
__all__ = ["RedisConfig", "RedisSink", "__version__", "parse_config"]


def __getattr__(name: str) -> Any:
    # redis-py takes ~0.1 s to import: only runs that use a redis sink pay for it,
    # not every `logferry` command that merely loads the plugins.
    if name == "RedisSink":
        from .sink import RedisSink

        return RedisSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@logferry.hookimpl
def logferry_sink_schemes() -> list[str]:
    return list(SCHEMES)


@logferry.hookimpl
def logferry_make_sink(url: str, scheme: str, options: dict[str, Any], settings: Settings) -> RedisSink | None:
    if scheme not in SCHEMES:
        return None
    from .sink import RedisSink

    return RedisSink(url, parse_config(url, scheme, options))
