"""The hooks a logferry plugin can implement. These docstrings are the plugin documentation.

Every hook name starts with ``logferry_``. Implement a hook by decorating a function of the same
name with :data:`logferry.hookimpl` in a module (or object) that your distribution registers under
the ``logferry`` entry-point group::

    [project.entry-points.logferry]
    redis = "logferry_redis"

Hooks are plain functions and never coroutines: async work lives in the sink objects they return.
The built-in sources and sinks are plugins too and use exactly these hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .markers import hookimpl, hookspec

if TYPE_CHECKING:
    import pluggy

    from .processors.base import Processor
    from .settings import PluginOption, Settings, Source
    from .sinks.base import Sink

__all__ = ["hookimpl", "hookspec"]  # hookimpl: also here, where plugins written for 0.1 import it

# -------------------------------------------------------------------------
# Discovery: which files to follow
# -------------------------------------------------------------------------


@hookspec
def logferry_sources(settings: Settings) -> Iterable[str | Source] | None:
    """Contribute files to follow: paths or glob patterns, or :class:`~logferry.Source` objects.

    Called once when a run starts; what every plugin contributes is combined (and de-duplicated)
    with the ``[[sources.files]]`` tables and the patterns given on the command line or in
    ``[sources] paths``. Patterns may use ``*``, ``?``, ``[...]`` and ``**``; they are re-expanded
    periodically, so files created later are picked up. ``settings.exclude`` applies to every one.

    A plain pattern's files are read as ``[sources] encoding`` says and shaped by the
    ``[[processors]]`` only. A :class:`~logferry.Source` says more about its files: their
    encoding, static fields, and processors of its own that run first (a container runtime's
    log format is decoded by a processor there). A file several sources match belongs to the
    first: the config's tables, then the plugins' sources (in load order), then plain patterns.
    A plugin with a ``[plugins.NAME]`` table reads it from ``settings.plugins`` (see
    :func:`logferry_plugin_options`) and may contribute nothing when its table is absent.

    :param settings: the effective settings of the run.
    :return: an iterable of patterns and sources, or None to contribute nothing.
    """


@hookspec
def logferry_plugin_options() -> Mapping[str, Iterable[PluginOption]] | None:
    """Declare the keys of this plugin's own configuration table(s), ``[plugins.NAME]``.

    Return ``{"NAME": [PluginOption(key, type, default, help), ...]}``. logferry checks a
    ``[plugins.NAME]`` table of the config file against them as it checks its own keys (an unknown
    key, or a bad value, is an error naming the file and the key; a table no plugin declares is an
    error too), fills in the defaults, and puts the values in ``settings.plugins["NAME"]``. A table
    the file does not have is not in ``settings.plugins``. ``logferry config check``, ``config
    show`` and ``config reference`` know the declared keys. Two plugins declaring one table name
    is an error naming both.

    :return: table name → its keys, or None.
    """


@hookspec(historic=True)
def logferry_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of this plugin's own, for other plugins to implement (as pytest's
    ``pytest_addhooks``): call ``pluginmanager.add_hookspecs(module)`` here, and call the hooks
    through ``pluginmanager.hook``. Called once for each plugin as it is registered.
    """


# -------------------------------------------------------------------------
# Sinks: where lines go
# -------------------------------------------------------------------------


@hookspec
def logferry_sink_schemes() -> Iterable[str] | None:
    """Declare the sink URL schemes this plugin serves, e.g. ``["redis", "redis+cluster"]``.

    Schemes are matched case-insensitively against the part of a sink URL before the first
    ``:``. Two plugins declaring the same scheme is a configuration error that names both.
    ``logferry plugins`` lists the schemes next to each plugin.

    :return: an iterable of scheme names (without the colon).
    """


@hookspec(firstresult=True)
def logferry_make_sink(
    url: str, scheme: str, options: dict[str, Any], settings: Settings
) -> Sink | None:
    """Create the sink object for ``url``.

    Called only on the plugin that declared ``scheme`` in :func:`logferry_sink_schemes`, once per
    configured sink, before the run starts. Validate ``options`` here and raise
    :class:`logferry.ConfigError` with a message naming the bad option; it is shown to the user as
    one line and the run exits with code 2. Do not open connections here: do that in the sink's
    ``start``. Stops at the first non-None result.

    :param url: the sink URL as given (``--sink`` or ``url`` in a ``[[sinks]]`` table); options may
        also come as its query parameters.
    :param scheme: the URL's scheme, lower-cased (``"file"`` for a bare path).
    :param options: the other keys of the ``[[sinks]]`` table (empty for ``--sink``), plus
        ``format`` (``"raw"`` or ``"json"``) when the user chose one.
    :param settings: the effective settings of the run.
    :return: a :class:`logferry.Sink`.
    """


# -------------------------------------------------------------------------
# Processors: what happens to records on the way
# -------------------------------------------------------------------------


@hookspec
def logferry_processor_types() -> Iterable[str] | None:
    """Declare the processor types this plugin serves, e.g. ``["geoip"]``: the ``type`` of a
    ``[[processors]]`` table.

    Two plugins declaring the same type is a configuration error that names both. ``logferry
    plugins`` lists the types next to each plugin. The built-in types (``multiline``, ``json``,
    ``logfmt``, ``regex``, ``drop``, ``keep``, ``fields``, ``redact``) are declared the same way.

    :return: an iterable of type names.
    """


@hookspec(firstresult=True)
def logferry_make_processor(type: str, options: dict[str, Any], settings: Settings, key: str) -> Processor | None:
    """Create the processor of one ``[[processors]]`` table.

    Called only on the plugin that declared ``type`` in :func:`logferry_processor_types`, once per
    table, before the run starts. Validate ``options`` here and raise :class:`logferry.ConfigError`
    with a message that starts with ``key`` and names the bad option (``f"{key} pattern: ..."``); it
    is shown as one line and the run exits with code 2. Compile the regular expressions users give
    with :func:`logferry.compile_pattern` (RE2: no line can make it hang). Stops at the first
    non-None result.

    :param type: the table's ``type``.
    :param options: the table's other keys, except ``paths`` (logferry applies it: the processor
        only sees the records of the files it matches).
    :param settings: the effective settings of the run.
    :param key: how the table is named in messages, e.g. ``[[processors]] #2 (geoip)``.
    :return: a :class:`logferry.Processor`; its :meth:`~logferry.Processor.process` runs on the
        processing thread, never on the event loop.
    """
