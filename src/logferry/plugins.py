"""The plugin host: built-in plugins first, then the ``logferry`` entry points, one at a time.

Built-ins are registered before entry points, so third-party implementations run first (pluggy
calls the most recently registered first), as in pytest. Loading one plugin never stops another
from loading: a plugin that fails to import or to register is listed as failed, with its error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import pluggy

from . import __version__, hookspecs
from .errors import ConfigError
from .processors.base import Processor
from .settings import PLAIN, PluginOption, ProcessorSpec, Settings, Source
from .sinks.base import Sink

# name → module: the names are what ``logferry plugins`` lists and LOGFERRY_DISABLE_PLUGINS blocks
BUILTIN_PLUGINS = {"logferry.sources": "logferry.files.sources", "logferry.sinks.builtin": "logferry.sinks.builtin",
                   "logferry.processors": "logferry.processors.builtin"}
ENTRY_POINT_GROUP = "logferry"

log = logging.getLogger("logferry.plugins")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass
class PluginInfo:
    """One row of ``logferry plugins``."""

    name: str
    version: str
    origin: str  # "built-in" or "entry point"
    distribution: str = ""
    status: str = "loaded"  # "loaded", "blocked" or "failed"
    hooks: list[str] = field(default_factory=list)
    schemes: list[str] = field(default_factory=list)
    processors: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    """The ``[plugins.NAME]`` tables it declares keys for."""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sink_scheme(url: str) -> str:
    """The scheme that decides which plugin serves ``url``: ``-`` is stdout, a bare path is a file."""
    if url == "-":
        return "stdout"
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else "file"


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def get_plugin_manager(
    *, load_entrypoints: bool = True, blocked: set[str] | None = None, allowed: set[str] | None = None
) -> PluginHost:
    """Build a fresh plugin host: built-ins, then entry points (sorted by distribution and name).

    ``blocked`` defaults to ``LOGFERRY_DISABLE_PLUGINS`` and ``allowed`` to ``LOGFERRY_LOAD_PLUGINS``
    (comma-separated entry-point or distribution names; set but empty allows no third-party plugin).
    ``blocked`` applies to built-ins too; ``allowed`` only to installed plugins.
    """
    if blocked is None:
        blocked = _names_from_env("LOGFERRY_DISABLE_PLUGINS") or set()
    if allowed is None:
        allowed = _names_from_env("LOGFERRY_LOAD_PLUGINS")
    pm = pluggy.PluginManager("logferry")
    pm.add_hookspecs(hookspecs)
    pm.hook.logferry_addhooks.call_historic(kwargs={"pluginmanager": pm})
    host = PluginHost(pm)
    for name, module_name in BUILTIN_PLUGINS.items():
        info = PluginInfo(name=name, version=__version__, origin="built-in", distribution="logferry")
        if name in blocked:
            host._block(info)
            continue
        host._register(info, lambda name=module_name: importlib.import_module(name))
    if load_entrypoints:
        for ep in _sorted_entry_points():
            dist = ep.dist.name if ep.dist else ""
            info = PluginInfo(
                name=ep.name, version=ep.dist.version if ep.dist else "", origin="entry point", distribution=dist
            )
            if {ep.name, dist} & blocked or (allowed is not None and not {ep.name, dist} & allowed):
                host._block(info)
                continue
            host._register(info, ep.load)
    host.check_hooks()
    return host


def _sorted_entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique = {(ep.dist.name if ep.dist else "", ep.name): ep for ep in eps}
    return [unique[key] for key in sorted(unique)]


class PluginHost:
    """A typed facade over the plugin manager: the rest of logferry never calls ``pm.hook`` itself."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.infos: list[PluginInfo] = []
        self._options: dict[str, dict[str, list[PluginOption]]] = {}  # plugin → its tables' keys

    # -- loading -----------------------------------------------------------

    def _block(self, info: PluginInfo) -> None:
        info.status = "blocked"
        self.pm.set_blocked(info.name)
        self.infos.append(info)

    def _register(self, info: PluginInfo, load: Any) -> None:
        if self.pm.is_blocked(info.name):  # an entry point of the same name was blocked
            self._block(info)
            return
        taken = next((i for i in self.infos if i.name == info.name and i.status == "loaded"), None)
        self.infos.append(info)
        if taken is not None:
            info.status = "failed"
            info.error = f"the plugin name {info.name!r} is already taken by {taken.distribution or taken.origin}"
            return
        try:
            self.pm.register(load(), name=info.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal for the host
            info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        self._inspect(info)

    def _inspect(self, info: PluginInfo) -> None:
        """Fill in the hooks and schemes of a just registered plugin; fail it if they are unusable."""
        plugin = self.pm.get_plugin(info.name)
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        info.schemes = self._declared(info, "logferry_sink_schemes")
        if info.status == "loaded":
            info.processors = self._declared(info, "logferry_processor_types")
        if info.status == "loaded":
            info.tables = self._declared_options(info)

    def _declared_options(self, info: PluginInfo) -> list[str]:
        """The ``[plugins.NAME]`` tables a plugin declares; a malformed declaration fails the plugin."""
        for impl in self.pm.hook.logferry_plugin_options.get_hookimpls():
            if impl.plugin_name == info.name:
                try:
                    declared = impl.function() or {}
                    if not isinstance(declared, Mapping):
                        raise TypeError(f"expected a mapping of table names to options, got {type(declared).__name__}")
                    options = {str(name): list(keys) for name, keys in declared.items()}
                    for keys in options.values():
                        bad = [key for key in keys if not isinstance(key, PluginOption)]
                        if bad:
                            raise TypeError(f"expected logferry.PluginOption objects, got {bad[0]!r}")
                except Exception as exc:  # noqa: BLE001 - reported as the plugin's failure
                    self._unregister_failed(info, f"logferry_plugin_options raised {type(exc).__name__}: {exc}")
                    return []
                self._options[info.name] = options
                return sorted(options)
        return []

    def check_hooks(self) -> None:
        """Fail every loaded plugin that implements a hook no plugin specifies (once all are loaded:
        a plugin may implement a hook another one adds through ``logferry_addhooks``)."""
        for info in self.infos:
            plugin = self.pm.get_plugin(info.name) if info.status == "loaded" else None
            if plugin is None:
                continue
            unknown = sorted(
                caller.name for caller in self.pm.get_hookcallers(plugin) or []
                if not caller.has_spec()
                and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
            )
            if unknown:
                self._unregister_failed(info, f"implements unknown hook {', '.join(unknown)} (misspelled? mark "
                                              "hooks of newer logferry versions @hookimpl(optionalhook=True))")

    def _unregister_failed(self, info: PluginInfo, error: str) -> None:
        """Mark a registered plugin failed and take it out of every hook call."""
        info.status, info.error = "failed", error
        self.pm.unregister(name=info.name)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an extra plugin object or module (for embedding and tests); returns its name.

        It is listed with origin ``registered``; if its hooks are unusable it is listed as failed.
        """
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"plugin {name!r} is blocked")
        info = PluginInfo(name=registered, version="", origin="registered")
        self.infos.append(info)
        self._inspect(info)
        self.check_hooks()
        return registered

    def unregister(self, name: str) -> None:
        """Remove a plugin added with :meth:`register` (its listing row goes too)."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.infos = [info for info in self.infos if not (info.name == name and info.origin == "registered")]

    def _declared(self, info: PluginInfo, hook: str) -> list[str]:
        """The names a plugin declares through ``hook`` (sink schemes, processor types), lower-cased."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == info.name:
                try:
                    declared = cast("Iterable[object] | None", impl.function())
                    return sorted({str(s).lower() for s in declared or ()})
                except Exception as exc:  # noqa: BLE001 - reported as the plugin's failure
                    self._unregister_failed(info, f"{hook} raised {type(exc).__name__}: {exc}")
        return []

    # -- calling -----------------------------------------------------------

    def listing(self) -> list[PluginInfo]:
        """Every plugin the host knows of, loaded or not, in load order."""
        return list(self.infos)

    def schemes(self) -> dict[str, str]:
        """Scheme → name of the plugin serving it. Two plugins claiming one scheme is an error."""
        return self._owners("sink scheme", lambda info: info.schemes)

    def processor_types(self) -> dict[str, str]:
        """Processor type → name of the plugin serving it. Two plugins claiming one type is an error."""
        return self._owners("processor type", lambda info: info.processors)

    def _owners(self, what: str, names: Any) -> dict[str, str]:
        owners: dict[str, str] = {}
        for info in self.infos:
            if info.status != "loaded":
                continue
            for name in names(info):
                if name in owners:
                    raise ConfigError(
                        f"{what} {name!r} is claimed by two plugins: {owners[name]} and {info.name}"
                        " (block one with LOGFERRY_DISABLE_PLUGINS)"
                    )
                owners[name] = info.name
        return owners

    def plugin_options(self) -> dict[str, tuple[str, list[PluginOption]]]:
        """``[plugins.NAME]`` table → (the plugin declaring it, its keys). Two plugins declaring one
        table is an error."""
        owners = self._owners("config table [plugins.*]", lambda info: info.tables)
        return {table: (owner, self._options[owner][table]) for table, owner in owners.items()}

    def configure(self, settings: Settings) -> Settings:
        """``settings`` with each ``[plugins.NAME]`` table checked against its plugin's keys and the
        defaults filled in (``settings.plugins``); a ConfigError names the file and the key."""
        declared = self.plugin_options()
        where = f"{settings.config_file}: " if settings.config_file else ""
        plugins = {}
        for table, given in {**settings.plugins, **settings.plugin_tables}.items():
            if table not in declared:
                raise ConfigError(f"{where}unknown table [plugins.{table}]: no loaded plugin declares it (declared:"
                                  f" {', '.join(sorted(declared)) or 'none'}){self._unloaded_hint()}")
            owner, options = declared[table]
            known = {option.key: option for option in options}
            values = {option.key: option.default for option in options}
            for key, raw in given.items():
                option = known.get(key)
                if option is None:
                    raise ConfigError(f"{where}unknown key {key!r} in [plugins.{table}] (known: {', '.join(known)})")
                try:
                    values[key] = option.type.parse(raw)
                except ValueError as exc:
                    raise ConfigError(f"{where}[plugins.{table}] {key}: {exc}") from None
            plugins[table] = values
        return settings.replace(plugins=plugins)

    def sources(self, settings: Settings) -> list[Source]:
        """What a run of ``settings`` follows: the ``[[sources.files]]`` tables, the sources each
        plugin contributes through ``logferry_sources`` (in load order), then every plain pattern
        (de-duplicated) as one source read in ``[sources] encoding``.

        Each plugin is called on its own: one that raises (or returns something that is neither a
        pattern nor a Source) is logged with its name and contributes nothing, and the others'
        sources are still followed.
        """
        sources: list[Source] = []
        patterns: list[str] = []
        names = dict.fromkeys(impl.plugin_name for impl in self.pm.hook.logferry_sources.get_hookimpls())
        for name in names:  # built-ins first, in registration order
            caller = self.pm.subset_hook_caller("logferry_sources", remove_plugins=self._all_but(name))
            try:
                contributed = [item for found in caller(settings=settings) for item in found or ()]
                wrong = [item for item in contributed if not isinstance(item, str | Source)]
                if wrong:
                    raise TypeError(f"expected patterns (str) or logferry.Source objects, got {wrong[0]!r}")
            except Exception as exc:  # noqa: BLE001 - one broken source plugin must not stop the run
                log.error("plugin %s failed in logferry_sources (%s: %s); its sources are not followed",
                          name, type(exc).__name__, exc)
                continue
            for item in contributed:
                if isinstance(item, Source):
                    if item not in sources:
                        sources.append(item)
                elif item not in patterns:
                    patterns.append(item)
        if patterns:
            sources.append(Source(patterns, encoding=settings.encoding, name=PLAIN))
        return sources

    def _all_but(self, name: str) -> list[object]:
        return [plugin for other, plugin in self.pm.list_name_plugin() if other != name]

    def make_processor(self, spec: ProcessorSpec, settings: Settings) -> Processor:
        """Ask the plugin that owns ``spec.type`` for its processor; a clear ConfigError otherwise."""
        owners = self.processor_types()
        owner = owners.get(spec.type.lower())
        if owner is None:
            raise ConfigError(f"{spec.key}: unknown processor type {spec.type!r}; installed types: "
                              f"{', '.join(sorted(owners)) or 'none'}{self._unloaded_hint()}")
        caller = self.pm.subset_hook_caller("logferry_make_processor", remove_plugins=self._all_but(owner))
        try:
            processor = caller(type=spec.type.lower(), options=dict(spec.options), settings=settings, key=spec.key)
        except ConfigError:
            raise
        except Exception as exc:  # re-raised as one clear line naming the plugin
            raise ConfigError(f"{spec.key}: plugin {owner} could not create it: {type(exc).__name__}: {exc}") from exc
        if not isinstance(processor, Processor):
            raise ConfigError(f"{spec.key}: plugin {owner} declares type {spec.type!r} but returned "
                              f"{type(processor).__name__}, not a logferry.Processor")
        processor.type = spec.type.lower()
        return processor

    def _unloaded_hint(self) -> str:
        failed = [i.name for i in self.infos if i.status == "failed"]
        blocked = [i.name for i in self.infos if i.status == "blocked"]
        hint = f"; plugins that failed to load: {', '.join(failed)}" if failed else ""
        hint += f"; blocked plugins (LOGFERRY_DISABLE_PLUGINS, LOGFERRY_LOAD_PLUGINS, --no-plugins): " \
                f"{', '.join(blocked)}" if blocked else ""
        return hint

    def make_sink(self, url: str, options: dict[str, Any], settings: Settings) -> Sink:
        """Ask the plugin that owns ``url``'s scheme for a sink; a clear ConfigError otherwise."""
        scheme = sink_scheme(url)
        owners = self.schemes()
        owner = owners.get(scheme)
        if owner is None:
            raise ConfigError(
                f"unknown sink scheme {scheme!r} in {url!r}; installed schemes: "
                f"{', '.join(sorted(owners)) or 'none'}{self._unloaded_hint()}"
            )
        caller = self.pm.subset_hook_caller("logferry_make_sink", remove_plugins=self._all_but(owner))
        try:
            sink = caller(url=url, scheme=scheme, options=dict(options), settings=settings)
        except ConfigError:
            raise
        except Exception as exc:  # re-raised as one clear line naming the plugin
            raise ConfigError(
                f"plugin {owner} could not create a sink for {url!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if sink is None:
            raise ConfigError(f"plugin {owner} declares scheme {scheme!r} but returned no sink for {url!r}")
        return sink
