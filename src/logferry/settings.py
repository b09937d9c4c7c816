"""The settings of a run: one schema for the TOML file, the flags and the documentation.

``OPTIONS`` is the schema: every key of the config file, its section, type, default and help. The
``Settings`` dataclass holds the values; ``load_config`` reads a TOML file into it with errors that
name the file and the key, after replacing ``${VAR}`` and ``${VAR:-default}`` in its strings with
environment variables; command-line flags are applied on top (flags override the file).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_REFERENCE = re.compile(r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?")
"""``$${`` (a literal ``${``), ``${NAME}``, ``${NAME:-default}``, or a ``${`` that is neither (an error)."""
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20,
               "g": 1 << 30, "gb": 10**9, "gib": 1 << 30}


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/logferry``, else ``~/.local/state/logferry``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "logferry"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"250ms"``, ``"5s"``, ``"10m"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5, \"250ms\" or \"10m\"")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 5, \"250ms\" or \"10m\", got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"expected a duration of 0 or more, got {value!r}")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string such as ``"64KiB"`` or ``"1MiB"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1048576 or \"1MiB\"")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 1048576 or \"1MiB\", got {value!r}")
        size = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if size <= 0:
        raise ValueError(f"expected a size above 0, got {value!r}")
    return size


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return str(value)

    return parse


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return list(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def parse_encoding(value: Any) -> str:
    """A text encoding Python's codecs provide, by its canonical name (``"latin-1"`` → ``"iso8859-1"``)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an encoding name such as \"utf-8\", \"utf-16\", \"latin-1\" or \"shift_jis\", got {value!r}")
    try:
        name = codecs.lookup(value).name
        newline = "\n".encode(name)
    except (LookupError, TypeError, ValueError):
        raise ValueError(f"{value!r} is not a text encoding Python knows (e.g. \"utf-8\", \"utf-16\", \"latin-1\","
                         " \"cp1252\", \"shift_jis\", \"euc-jp\", \"gbk\", \"big5\")") from None
    if not newline:
        raise ValueError(f"{value!r} has no newline character, so its text cannot be cut into lines")
    return name


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _path(value: Any) -> Path:
    if isinstance(value, os.PathLike):  # a setting made in Python (or checked before)
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a path, got {value!r}")
    return Path(os.path.expanduser(value))


def _optional(parse: Callable[[Any], Any], unset: str) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        return None if value in (0, "0", "", "off", unset, False) else parse(value)

    return parse_optional


def format_duration(seconds: float) -> str | float:
    """The most readable spelling :func:`parse_duration` reads back: ``"250ms"``, ``"5m"``, ``"7d"``.

    A duration that is not a whole number of milliseconds stays a number of seconds.
    """
    millis = round(seconds * 1000, 6)
    if millis != int(millis):
        return seconds
    millis = int(millis)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms" if millis else "0s"


def format_size(size: int) -> str | int:
    """The most readable spelling :func:`parse_size` reads back: ``"64KiB"``, ``"1MiB"``, or bytes."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return size


@dataclass(frozen=True)
class ValueType:
    """How one kind of value is read (from TOML or a flag), written back as TOML, and documented."""

    name: str
    """How the configuration reference names the type."""
    parse: Callable[[Any], Any]
    """TOML or flag value → setting; raises ValueError saying what was expected."""
    dump: Callable[[Any], Any]
    """Setting → the TOML value ``parse`` reads back (readable units for durations and sizes)."""


def _choice_type(*allowed: str) -> ValueType:
    names = [f'`"{a}"`' for a in allowed]
    return ValueType(", ".join(names[:-1]) + " or " + names[-1], _choice(*allowed), str)


def _optional_type(kind: ValueType, unset: str) -> ValueType:
    """A value that may be left unset: ``0``, ``false`` or ``"off"`` (or ``unset``) mean none."""
    return ValueType(f'{kind.name} or `"{unset}"`', _optional(kind.parse, unset),
                     lambda value: unset if value is None else kind.dump(value))


def choice(*allowed: str) -> ValueType:
    """The type of a value that is one of ``allowed`` strings (for plugins' options too)."""
    return _choice_type(*allowed)


STR = ValueType("string", _str, str)
STR_LIST = ValueType("list of strings", _str_list, list)
DURATION = ValueType("duration", parse_duration, format_duration)
SIZE = ValueType("size", parse_size, format_size)
COUNT = ValueType("number", parse_size, int)
BOOL = ValueType("boolean", _bool, bool)
PATH = ValueType("path", _path, str)
ENCODING = ValueType("encoding", parse_encoding, str)


@dataclass
class Settings:
    """Everything a run needs. Build one with ``Settings(paths=[...])`` or :func:`load_config`."""

    paths: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    files: list[Source] = field(default_factory=list)
    """The ``[[sources.files]]`` tables: groups of files with their own encoding, fields, processors."""
    encoding: str = "utf-8"
    start: str = "head"
    poll_interval: float = 0.25
    scan_interval: float = 1.0
    rotate_wait: float = 5.0
    ignore_older: float | None = None
    close_inactive: float = 300.0
    max_open_files: int | None = None
    max_line_bytes: int = 1 << 20
    long_lines: str = "split"
    watch: bool = True
    format: str = "raw"
    max_inflight_bytes: int = 16 << 20
    shutdown_timeout: float = 10.0
    sinks: list[SinkSpec] = field(default_factory=list)
    processors: list[ProcessorSpec] = field(default_factory=list)
    plugin_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The ``[plugins.NAME]`` tables as the file gives them (the plugins declare their keys)."""
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each present ``[plugins.NAME]`` table checked against the keys its plugin declares, with the
    defaults of the keys not given: filled by ``PluginHost.configure`` (from ``plugin_tables``, and
    from tables a program embedding logferry put here). A table not in the file is not here, so a
    plugin can tell whether it was asked for."""
    config_file: str = field(default="", compare=False)
    """The config file the settings were read from (for messages), or ""."""
    state_dir: Path = field(default_factory=default_state_dir)
    commit_interval: float = 1.0
    forget_after: float = 7 * 86400.0
    once: bool = False
    reset_unreadable_checkpoints: bool = False
    """Set an unreadable or empty checkpoint database aside and start without checkpoints, instead of
    refusing to start (``--reset-unreadable-checkpoints``; like ``once``, not a config-file key)."""

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)


PLAIN = "[sources] paths"
"""The name of the source the plain patterns make (``[sources] paths``, the command line, plugins' patterns)."""


@dataclass(frozen=True)
class Source:
    """Files to follow and how to read them: what ``logferry_sources`` may return instead of a
    pattern, and what a ``[[sources.files]]`` table is.

    A file several sources match belongs to the first (the config's tables, then the plugins',
    then the plain patterns).
    """

    paths: Sequence[str]
    """Paths or glob patterns (``**`` allowed)."""
    exclude: Sequence[str] = ()
    """Glob patterns of paths this source leaves out (``[sources] exclude`` applies as well)."""
    encoding: str = "utf-8"
    """How its bytes are text: a codec name (``"utf-16"``, ``"latin-1"``, ``"shift_jis"``…). Lines end
    at ``"\n"`` in that encoding (``0A 00`` in UTF-16LE); offsets stay byte offsets; a byte-order mark
    at the head is not shipped; output is UTF-8."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Static fields on each of its records."""
    processors: Sequence[ProcessorSpec] = ()
    """Processors its records go through first, before the ``[[processors]]`` of the config (a
    runtime's format decoder, such as CRI or docker's json-file, goes first here)."""
    name: str = ""
    """How messages and ``logferry sources`` name it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoding", parse_encoding(self.encoding))

    @property
    def shaped(self) -> bool:
        """Whether its records need the processing stage (a decoding, fields or processors)."""
        return self.encoding != "utf-8" or bool(self.fields) or bool(self.processors)


@dataclass(frozen=True)
class PluginOption:
    """One key a plugin declares for its ``[plugins.NAME]`` table (see ``logferry_plugin_options``)."""

    key: str
    type: ValueType
    """How it is read: :data:`STR`, :data:`PATH`, :data:`BOOL`, :data:`DURATION`, :func:`choice`…"""
    default: Any
    """Its value when the table does not give it (already parsed), or None."""
    help: str


@dataclass
class SinkSpec:
    """One sink: its URL and the options of its ``[[sinks]]`` table (validated by its plugin)."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    match: dict[str, Any] | None = None
    """Its ``match`` table: only the records it selects go to this sink (see ``processors.routing``)."""
    key: str = "--sink"
    """How it is named in messages: ``[[sinks]] #2`` for a table of the config file."""


@dataclass
class ProcessorSpec:
    """One ``[[processors]]`` table: its type, the files it applies to, its options (checked by its plugin)."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    key: str = "[[processors]]"
    """How it is named in messages, e.g. ``config.toml: [[processors]] #2 (drop)``."""


@dataclass(frozen=True)
class Option:
    """One key of the config file."""

    section: str
    key: str
    type: ValueType
    help: str
    flag: str = ""
    """The command-line flag(s) that set it (``PATTERN``: the positional arguments of ``run``)."""
    default_doc: str = ""
    """The default as the reference shows it, where it depends on the environment."""

    @property
    def attr(self) -> str:
        """The :class:`Settings` attribute that holds the value."""
        return {"dir": "state_dir"}.get(self.key, self.key)

    @property
    def parse(self) -> Callable[[Any], Any]:
        """Check a TOML or flag value and return the setting (raises ValueError)."""
        return self.type.parse


OPTIONS: tuple[Option, ...] = (
    Option("sources", "paths", STR_LIST, "Paths or glob patterns (`**` allowed) of the files to follow.", "PATTERN"),
    Option("sources", "exclude", STR_LIST, "Glob patterns of paths never to follow.", "--exclude"),
    Option("sources", "encoding", ENCODING,
           "How the files' bytes are text (`\"utf-16\"`, `\"latin-1\"`, `\"shift_jis\"`…); output is UTF-8."),
    Option("sources", "start", _choice_type("head", "tail"),
           "Where a file present at the first scan with no checkpoint starts.", "--from-head/--from-tail"),
    Option("sources", "poll_interval", DURATION,
           "Longest time an idle file waits before it is checked again.", "--poll-interval"),
    Option("sources", "scan_interval", DURATION, "How often the patterns are expanded again."),
    Option("sources", "rotate_wait", DURATION,
           "How long a rotated-away or deleted file must stay quiet before it is closed."),
    Option("sources", "ignore_older", _optional_type(DURATION, "off"),
           "Do not start following files not modified for this long (`\"off\"`: follow them all)."),
    Option("sources", "close_inactive", DURATION,
           "Close a file that has not grown for this long; it is reopened when it grows."),
    Option("sources", "max_open_files", _optional_type(COUNT, "auto"),
           "Most files held open at once (`\"auto\"`: from the process's open-file limit)."),
    Option("sources", "max_line_bytes", SIZE, "Longest line kept whole."),
    Option("sources", "long_lines", _choice_type("split", "truncate", "skip"),
           "What happens to a longer line: split into pieces, truncate, or skip it."),
    Option("sources", "watch", BOOL, "Use file-system events as wake-up hints (polling works without).",
           "--no-watch"),
    Option("output", "format", _choice_type("raw", "json"),
           "Line format of the file and stdout sinks: raw bytes or JSON records.", "--format"),
    Option("output", "max_inflight_bytes", SIZE,
           "Bytes read but not yet acknowledged by every sink; readers wait beyond it."),
    Option("output", "shutdown_timeout", DURATION,
           "On SIGTERM/SIGINT, how long to wait for the sinks to take in-flight batches."),
    Option("state", "dir", PATH, "Where checkpoints live.", "--state-dir",
           default_doc="`$XDG_STATE_HOME/logferry`, else `~/.local/state/logferry`"),
    Option("state", "commit_interval", DURATION, "How often acknowledged offsets are saved."),
    Option("state", "forget_after", DURATION, "Forget checkpoints of files gone for this long."),
)

SECTIONS = ("sources", "output", "state")


def load_config(path: str | os.PathLike[str], base: Settings | None = None) -> Settings:
    """Read a TOML config file into settings. Errors name the file and the key (ConfigError)."""
    import tomllib  # here, not at the top: most runs read no file, and every run starts faster without it

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(_interpolate(data, str(path), ()), str(path), base)


def expand_variables(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """``text`` with ``${NAME}`` replaced by the environment variable NAME, ``${NAME:-default}`` by
    NAME or, when it is unset or empty, by ``default``, and ``$${`` by a literal ``${``.

    Raises ValueError naming the variable when NAME is unset and there is no default, or when a
    ``${`` is not one of these forms.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group("name"), match.group("default")
        if name is None:
            raise ValueError("a '${' that is not ${NAME} or ${NAME:-default} (write $${ for a literal '${')")
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise ValueError(f"environment variable {name!r} is not set (give it a default: ${{{name}:-VALUE}})")
        return value

    return _REFERENCE.sub(substitute, text) if "${" in text else text


def _interpolate(value: Any, source: str, where: tuple[str | int, ...]) -> Any:
    """Every string in a parsed TOML document with its environment variables expanded (keys are left
    as written); an error names the file and the key: ``[sources] paths``, ``[[sinks]] #2 url``."""
    if isinstance(value, str):
        try:
            return expand_variables(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: {_key_name(where)}: {exc}") from None
    if isinstance(value, dict):
        return {key: _interpolate(item, source, (*where, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, source, (*where, n)) for n, item in enumerate(value, 1)]
    return value


def _key_name(where: tuple[str | int, ...]) -> str:
    """``("sinks", 2, "headers", "X")`` → ``[[sinks]] #2 headers.X``; ``("sources", "paths", 3)`` →
    ``[sources] paths`` (a list's items are named by the list)."""
    if len(where) > 1 and isinstance(where[1], int):
        head, rest = f"[[{where[0]}]] #{where[1]}", where[2:]
    else:
        head, rest = f"[{where[0]}]", where[1:]
    keys = [str(part) for part in rest if isinstance(part, str)]
    return f"{head} {'.'.join(keys)}" if keys else head


def settings_from_dict(data: dict[str, Any], source: str = "config", base: Settings | None = None) -> Settings:
    """Validate a parsed config (as from TOML) and return settings; unknown keys are errors."""
    values: dict[str, Any] = {}
    files = None
    known = {(o.section, o.key): o for o in OPTIONS}
    for section, table in data.items():
        if section == "sinks":
            values["sinks"] = _sink_specs(table, source)
            continue
        if section == "processors":
            values["processors"] = _processor_specs(table, source)
            continue
        if section == "plugins":
            values["plugin_tables"] = _plugin_tables(table, source)
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section or key {section!r} (known: {', '.join(SECTIONS)}, sinks,"
                              " processors, plugins)")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, raw in table.items():
            if (section, key) == ("sources", "files"):
                files = raw
                continue
            option = known.get((section, key))
            if option is None:
                keys = ", ".join(o.key for o in OPTIONS if o.section == section)
                raise ConfigError(f"{source}: unknown key {key!r} in [{section}] (known: {keys})")
            try:
                values[option.attr] = option.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: [{section}] {key}: {exc}") from None
    base = base or Settings()
    if files is not None:  # after the loop: a table's encoding defaults to [sources] encoding
        values["files"] = _source_tables(files, source, values.get("encoding", base.encoding))
    return replace(base, **values, config_file=source)


_SOURCE_KEYS = ("paths", "exclude", "encoding", "fields", "processors", "name")


def _source_tables(table: Any, source: str, encoding: str) -> list[Source]:
    if not isinstance(table, list) or not all(isinstance(entry, dict) for entry in table):
        raise ConfigError(f"{source}: sources.files must be an array of tables ([[sources.files]])")
    sources = []
    for n, entry in enumerate(table, 1):
        key = f"{source}: [[sources.files]] #{n}"
        unknown = sorted(set(entry) - set(_SOURCE_KEYS))
        if unknown:
            raise ConfigError(f"{key}: unknown key {unknown[0]!r} (known: {', '.join(_SOURCE_KEYS)})")
        try:
            paths = _str_list(entry.get("paths", []))
            exclude = _str_list(entry.get("exclude", []))
            name = _str(entry.get("name", f"[[sources.files]] #{n}"))
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
        if not paths:
            raise ConfigError(f"{key} paths: expected at least one path or glob pattern")
        fields = entry.get("fields", {})
        if not isinstance(fields, dict):
            raise ConfigError(f"{key} fields: expected a table such as {{ app = \"web\" }}")
        try:
            own = parse_encoding(entry.get("encoding", encoding))
        except ValueError as exc:
            raise ConfigError(f"{key} encoding: {exc}") from None
        processors = _processor_specs(entry.get("processors", []), source, f"[[sources.files]] #{n} processors")
        sources.append(Source(paths, exclude, own, fields, processors, name))
    return sources


def _plugin_tables(table: Any, source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict) or not all(isinstance(entry, dict) for entry in table.values()):
        raise ConfigError(f"{source}: [plugins] must hold one table per plugin: [plugins.NAME]")
    return {name: dict(entry) for name, entry in table.items()}


def _sink_specs(table: Any, source: str) -> list[SinkSpec]:
    if not isinstance(table, list):
        raise ConfigError(f"{source}: sinks must be an array of tables ([[sinks]])")
    specs = []
    for n, entry in enumerate(table, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(f"{source}: [[sinks]] #{n}: needs a url string")
        options = {k: v for k, v in entry.items() if k not in ("url", "match")}
        specs.append(SinkSpec(entry["url"], options, entry.get("match"), f"{source}: [[sinks]] #{n} match"))
    return specs


def _processor_specs(table: Any, source: str, name: str = "[[processors]]") -> list[ProcessorSpec]:
    if not isinstance(table, list):
        raise ConfigError(f"{source}: processors must be an array of tables ([[processors]])" if name == "[[processors]]"
                          else f"{source}: {name}: must be an array of tables")
    specs = []
    for n, entry in enumerate(table, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not entry["type"]:
            raise ConfigError(f"{source}: {name} #{n}: needs a type string (multiline, json, drop, ...)")
        key = f"{source}: {name} #{n} ({entry['type']})"
        paths = entry.get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise ConfigError(f"{key} paths: needs a list of globs")
        options = {k: v for k, v in entry.items() if k not in ("type", "paths")}
        specs.append(ProcessorSpec(entry["type"], options, paths, key))
    return specs
