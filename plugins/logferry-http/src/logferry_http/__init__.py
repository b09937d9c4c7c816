"""logferry-http: a logferry sink plugin that POSTs batches of lines to an HTTP(S) endpoint.

Registered under the ``logferry`` entry-point group as ``http``; it serves the ``http`` and
``https`` sink schemes. Formats: NDJSON (default), Elasticsearch/OpenSearch ``_bulk``, Grafana
Loki push. See the README for the options.

This module holds only the hooks. The HTTP client is imported when a sink is made, so listing
plugins or a configuration error never pays for importing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import logferry

__version__ = "0.1.0"

if TYPE_CHECKING:
    from logferry import Settings, Sink


@logferry.hookimpl
def logferry_sink_schemes() -> list[str]:
    """The schemes this plugin serves."""
    return ["http", "https"]


@logferry.hookimpl
def logferry_make_sink(url: str, scheme: str, options: dict[str, Any], settings: Settings) -> Sink | None:
    """Validate the options (URL query and ``[[sinks]]`` table) and return an unstarted HttpSink."""
    if scheme not in ("http", "https"):
        return None
    from .options import parse_config
    from .sink import HttpSink

    return HttpSink(url, parse_config(url, options))
