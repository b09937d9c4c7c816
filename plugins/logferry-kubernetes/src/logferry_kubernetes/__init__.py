"""logferry-kubernetes: containers' logs found where kubelet and dockerd write them, decoded.

With ``[plugins.kubernetes]`` in the config, it adds two sources: kubelet's ``pods_root`` (CRI
lines) and Docker's ``containers_root`` (json-file lines), each with its decoder (``cri``,
``docker``: processor types usable in ``[[processors]]`` too), which joins partial lines and adds
the fields the path tells. Other plugins add fields through ``logferry_kubernetes_fields``.

Nothing heavy here: every ``logferry`` command imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import logferry

if TYPE_CHECKING:
    import pluggy
    from logferry import PluginOption, Processor, Settings, Source

__version__ = "0.1.0"

TYPES = ("cri", "docker")
TABLE = "kubernetes"
PARTIAL_TIMEOUT = 5.0
"""Seconds a quiet log's unfinished message waits for its next part (the runtime writes them back to back)."""

_fields_hook: Any = None
"""``logferry_kubernetes_fields`` of the plugin host that registered this plugin (its decoders call it)."""


@logferry.hookimpl
def logferry_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    global _fields_hook
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    _fields_hook = pluginmanager.hook.logferry_kubernetes_fields


@logferry.hookimpl
def logferry_plugin_options() -> Mapping[str, Iterable[PluginOption]]:
    from .config import OPTIONS

    return {TABLE: OPTIONS}


@logferry.hookimpl
def logferry_sources(settings: Settings) -> list[Source] | None:
    table = settings.plugins.get(TABLE)
    if table is None:  # installed, not configured: inactive
        return None
    from .config import sources

    return sources(table)


@logferry.hookimpl
def logferry_processor_types() -> Iterable[str]:
    return TYPES


@logferry.hookimpl
def logferry_make_processor(type: str, options: dict[str, Any], settings: Settings, key: str) -> Processor | None:
    if type not in TYPES:
        return None
    from .config import decoder_options
    from .decoders import Cri, Docker

    given = decoder_options(key, options)
    decoder = Cri if type == "cri" else Docker
    return decoder(given.get("max_bytes", settings.max_line_bytes), given.get("timeout", PARTIAL_TIMEOUT),
                   given.get("fields", True), _fields_hook)
