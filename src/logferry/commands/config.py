"""Configuration as people read it: the effective settings as TOML (``logferry config show``), with
secrets masked, and the configuration reference (``docs/configuration.md``), both generated from
the schema :data:`logferry.settings.OPTIONS` so they cannot drift from what the loader accepts.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from ..settings import OPTIONS, SECTIONS, Option, PluginOption, ProcessorSpec, Settings, SinkSpec, Source

MASK = "***"

# -- the effective configuration ------------------------------------------------------------------


def effective_sinks(settings: Settings) -> list[SinkSpec]:
    """The sinks a run of ``settings`` ships to: stdout when none is configured (as the engine does)."""
    return settings.sinks or [SinkSpec("-")]


def config_dict(settings: Settings, *, mask: bool = True, sink_options: Sequence[dict[str, Any]] = (),
                plugin_options: Mapping[str, Sequence[PluginOption]] | None = None) -> dict[str, Any]:
    """Every key of the schema with its value in ``settings``, as a TOML document (a dict).

    Durations and sizes are in readable units; ``[[sinks]]`` are the sinks the run would use, each
    with the options given and, from ``sink_options`` (each sink's :meth:`~logferry.Sink.options`,
    in order), those it takes from their defaults. With ``mask``, URL passwords and sink options
    that look like secrets are replaced by ``"***"``. ``[plugins.NAME]`` tables are the checked ones
    (``settings.plugins``), each key written as its plugin declared it in ``plugin_options``.
    """
    data: dict[str, Any] = {section: {} for section in SECTIONS}
    for option in OPTIONS:
        data[option.section][option.key] = option.type.dump(getattr(settings, option.attr))
    if settings.files:
        data["sources"]["files"] = [source_table(source, mask=mask) for source in settings.files]
    specs = effective_sinks(settings)
    data["sinks"] = [sink_table(spec, effective, mask=mask)
                     for spec, effective in zip(specs, [*sink_options, *[{}] * (len(specs) - len(sink_options))])]
    if settings.processors:
        data["processors"] = [processor_table(spec, mask=mask) for spec in settings.processors]
    if settings.plugins:
        types = {table: {o.key: o.type for o in options} for table, options in (plugin_options or {}).items()}
        data["plugins"] = {}
        for table, values in settings.plugins.items():
            dumped = {key: types[table][key].dump(value) if key in types.get(table, {}) else value
                      for key, value in values.items() if value is not None}
            data["plugins"][table] = mask_options(dumped) if mask else dumped
    return data


def source_table(source: Source, *, mask: bool = True) -> dict[str, Any]:
    """One ``[[sources.files]]`` table."""
    table: dict[str, Any] = {"name": source.name, "paths": list(source.paths)}
    if source.exclude:
        table["exclude"] = list(source.exclude)
    table["encoding"] = source.encoding
    if source.fields:
        table["fields"] = dict(source.fields)
    if source.processors:
        table["processors"] = [processor_table(spec, mask=mask) for spec in source.processors]
    return table


_FIELD_OPTIONS = frozenset({"timestamp_key", "field", "error_field"})


def processor_table(spec: ProcessorSpec, *, mask: bool = True) -> dict[str, Any]:
    """One ``[[processors]]`` table as given: its type, its paths, its options (a secret-looking one
    masked, except the built-ins' options that name a field, such as ``timestamp_key``)."""
    options = {**mask_options(spec.options), **{k: v for k, v in spec.options.items() if k in _FIELD_OPTIONS}} \
        if mask else spec.options
    return {"type": spec.type, **({"paths": spec.paths} if spec.paths else {}), **options}


def sink_table(spec: SinkSpec, effective: dict[str, Any], *, mask: bool = True) -> dict[str, Any]:
    """One ``[[sinks]]`` table: the url, the options given, then those of ``effective`` given
    neither in the table nor in the URL's query (one option in both would be an error for some
    plugins, so what the URL says stays in the URL)."""
    in_url = {key.partition(".")[0] for key, _ in parse_qsl(urlsplit(spec.url).query, keep_blank_values=True)}
    options = {**spec.options, **{key: value for key, value in effective.items()
                                  if key not in spec.options and key not in in_url}}
    if spec.match is not None:
        options["match"] = spec.match
    return {"url": mask_url(spec.url), **mask_options(options)} if mask else {"url": spec.url, **options}


def show_toml(settings: Settings, sources: Iterable[str] = (), sink_options: Sequence[dict[str, Any]] = (),
              notes: Iterable[str] = (), plugin_options: Mapping[str, Sequence[PluginOption]] | None = None) -> str:
    """``logferry config show``: the effective configuration as TOML, secrets masked; ``notes``
    become comment lines at the top."""
    origin = ", then ".join(["defaults", *sources])
    header = (f"# logferry's effective configuration: {origin} (environment variables expanded).\n"
              f"# Secrets are shown as \"{MASK}\". Check a file with: logferry config check -c FILE\n")
    header += "".join(f"# {note}\n" for note in notes)
    return header + "\n" + dumps_toml(config_dict(settings, sink_options=sink_options, plugin_options=plugin_options))


# -- secrets ----------------------------------------------------------------------------------

_SECRET_WORDS = ("password", "passwd", "secret", "token", "authorization", "credential", "apikey", "api_key",
                 "api-key", "private_key", "cookie")
_SECRET_PARTS = {"key", "auth", "pass", "pwd"}
_REFERENCE_SUFFIXES = ("_env", "_file", "_path")
"""``token_env``, ``tls_key_file``: where a secret is found, not the secret; shown as they are."""
_SECRET_TABLES = {"headers", "header", "query"}
"""Tables whose every value is masked: HTTP headers and pass-through query parameters carry keys."""
_SECRET_QUERY_PREFIXES = tuple(f"{name}." for name in _SECRET_TABLES)


def is_secret_name(name: str) -> bool:
    """Whether an option or parameter named ``name`` probably holds a secret (password, token, key…)."""
    lowered = name.lower()
    if lowered.endswith(_REFERENCE_SUFFIXES):
        return False
    parts = set(re.split(r"[^a-z0-9]+", lowered))
    return any(word in lowered for word in _SECRET_WORDS) or bool(parts & _SECRET_PARTS)


def mask_options(options: dict[str, Any]) -> dict[str, Any]:
    """A sink table's options with the values of secret-looking keys (and of header tables) masked."""
    return {key: _masked(value) if is_secret_name(key) or key in _SECRET_TABLES else _mask_nested(value)
            for key, value in options.items()}


def _mask_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return mask_options(value)
    if isinstance(value, list):
        return [_mask_nested(item) for item in value]
    return value


def _masked(value: Any) -> Any:
    """``value`` with every leaf replaced by the mask, its shape kept (a table stays a table)."""
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return MASK


def mask_url(url: str) -> str:
    """``url`` safe to print: the userinfo password (or a lone user name, often a token) and
    secret-looking query values replaced by ``***``; everything else kept as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else f"{MASK}@{hosts}"
    query = "&".join(_mask_param(param) for param in parts.query.split("&")) if parts.query else ""
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_param(param: str) -> str:
    name, eq, _value = param.partition("=")
    decoded = unquote(name)
    if eq and (is_secret_name(decoded) or decoded.lower().startswith(_SECRET_QUERY_PREFIXES)):
        return f"{name}={MASK}"
    return param


# -- a small TOML writer (tomllib only reads) -------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML: top-level scalars, then one ``[table]`` per dict (``[name.sub]`` for a dict of
    dicts, such as ``[plugins.NAME]``), one ``[[name]]`` per element of a list of dicts; deeper
    tables are written inline."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not _is_table(v) and not _is_table_array(v)]
    for name, value in data.items():
        if _is_table(value) and value and all(_is_table(v) for v in value.values()):
            for sub, table in value.items():
                lines += ["", f"[{_key(name)}.{_key(sub)}]", *(f"{_key(k)} = {_value(v)}" for k, v in table.items())]
        elif _is_table(value):
            lines += ["", f"[{_key(name)}]", *(f"{_key(k)} = {_value(v)}" for k, v in value.items())]
        elif _is_table_array(value):
            for table in value:
                lines += ["", f"[[{_key(name)}]]", *(f"{_key(k)} = {_value(v)}" for k, v in table.items())]
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# -- the reference ----------------------------------------------------------------------------

_SECTION_INTRO = {
    "sources": "Which files are followed, and how they are read.",
    "output": "How lines are shaped and how much may be in flight.",
    "state": "Where and how often checkpoints are saved.",
}

_EXAMPLE = Settings(
    paths=["/var/log/app/*.log", "/var/log/nginx/**/*.log"],
    exclude=["*.gz"],
    state_dir=Path("/var/lib/logferry"),
    sinks=[SinkSpec("file:/var/log/logferry/merged.log", {"fsync": True, "mode": "0640"}),
           SinkSpec("redis://127.0.0.1:6379/0", {"stream": "logs"})],
)
"""The full example of the reference: the defaults, some paths, two sinks."""

_SMALL_EXAMPLE: dict[str, Any] = {
    "sources": {"paths": ["/var/log/app/*.log"], "exclude": ["*.gz"], "poll_interval": "500ms"},
    "output": {"format": "json"},
    "sinks": [{"url": "file:/var/log/logferry/merged.log"}],
    "state": {"dir": "/var/lib/logferry"},
}
"""The small example of the reference (the tests load both examples)."""

EXAMPLES = (_SMALL_EXAMPLE, config_dict(_EXAMPLE))


def reference_markdown(plugin_options: Mapping[str, tuple[str, Sequence[PluginOption]]] | None = None) -> str:
    """The configuration reference, ``docs/configuration.md``, generated from :data:`OPTIONS`, and
    the keys of the ``[plugins.NAME]`` tables in ``plugin_options`` (table → (plugin, keys)).

    ``logferry config reference --no-plugins > docs/configuration.md`` writes it; a test fails when
    the file and this function differ.
    """
    parts = [_REFERENCE_HEAD]
    for section in SECTIONS:
        parts.append(f"## `[{section}]`\n\n{_SECTION_INTRO[section]}\n\n"
                     "| key | type | default | flag | meaning |\n|---|---|---|---|---|\n")
        parts.append("".join(_reference_row(option) for option in OPTIONS if option.section == section))
        parts.append("\n")
    parts.append(_REFERENCE_FILES)
    parts.append(_REFERENCE_SINKS)
    parts.append(_REFERENCE_PROCESSORS)
    parts.append(_REFERENCE_PLUGINS)
    for table, (plugin, options) in sorted((plugin_options or {}).items()):
        parts.append(f"### `[plugins.{table}]` (plugin {plugin})\n\n| key | type | default | meaning |\n|---|---|---|---|\n")
        parts.extend(f"| `{o.key}` | {o.type.name} | "
                     f"{'' if o.default is None else f'`{_value(o.type.dump(o.default))}`'} | {o.help} |\n"
                     for o in options)
        parts.append("\n")
    parts.append(f"## Examples\n\nA small file: the rest is defaults.\n\n```toml\n{dumps_toml(_SMALL_EXAMPLE)}```\n\n"
                 "Every key, as `logferry config show` prints it for a file with some paths and two sinks "
                 "(here without the options each sink takes from its defaults, which it adds too):\n\n"
                 f"```toml\n{dumps_toml(config_dict(_EXAMPLE))}```\n\n")
    parts.append(_REFERENCE_TAIL)
    return "".join(parts)


def _reference_row(option: Option) -> str:
    default = option.default_doc or f"`{_value(option.type.dump(getattr(Settings(), option.attr)))}`"
    return f"| `{option.key}` | {option.type.name} | {default} | {_flag_doc(option.flag)} | {option.help} |\n"


def _flag_doc(flag: str) -> str:
    if not flag:
        return ""
    if flag == "PATTERN":
        return "`run PATTERN…` (replaces the file's)"
    note = " (adds to the file's)" if flag == "--exclude" else ""
    return " / ".join(f"`{name}`" for name in flag.split("/")) + note


_REFERENCE_HEAD = """\
# Configuration reference

<!-- Generated from logferry.settings.OPTIONS: do not edit by hand, run
     `logferry config reference --no-plugins > docs/configuration.md`. A test fails when they differ. -->

logferry reads its settings from a TOML file given with `-c FILE` (`logferry run -c FILE`).
Every key has a default, so a file holds only what differs; command-line flags override the file.
An unknown section or key, or a bad value, is an error naming the file and the key (exit code 2).

```sh
logferry config check -c /etc/logferry/config.toml    # validate every key and sink, without running
logferry config show -c /etc/logferry/config.toml     # the effective settings (defaults + file + flags)
```

`logferry config check` validates every key, asks the plugin that owns each sink's scheme to check
the sink's options (without connecting), and checks that at least one path is given; it prints
`FILE: ok (N paths, M sinks: …)` or one error line. `logferry config show` accepts the settings
flags of `logferry run` too (`PATTERN…`, `--sink`, `--state-dir`, `--exclude`, …; not `--once`,
`--stats` or `--metrics`) and prints every key as the run would use it, each sink with its options
and the defaults of those not given (as the sink's plugin reports them), as TOML that
`config check` accepts; sink URL passwords and sink options that look like secrets (`password`,
`token`, `secret`, `key`, `authorization`, HTTP `headers`) are shown as `"***"`.
`logferry config reference` prints this page, with the keys of the `[plugins.NAME]` tables of the
plugins installed (`--no-plugins`: without them).

## Values

* **duration**: seconds as a number (`5`, `0.25`) or a string with a unit: `"250ms"`, `"5s"`,
  `"10m"`, `"2h"`, `"7d"`.
* **size**: bytes as a number (`1048576`) or a string with a unit: `"64KiB"`, `"1MiB"`, `"1GiB"`
  (binary, also `k`, `m`, `g`), `"1MB"` (decimal: 10⁶ bytes).
* A value that can be switched off (`ignore_older`, `max_open_files`) also takes `0`, `false` or
  the word its default shows (`"off"`, `"auto"`).
* **path**: `~` is expanded.
* **Environment variables**, in any string of the file (in lists and `[[sinks]]` tables too):
  `${NAME}` is the variable's value, `${NAME:-default}` the default when it is unset or empty;
  `$${` is a literal `${`. A `$` not followed by `{` stays as it is. A variable that is unset,
  without a default, is an error naming the key and the variable (exit code 2). Values stay strings
  (`poll_interval = "${POLL:-2s}"` works; a boolean cannot come from a variable). `config show`
  prints the values after expansion, secrets masked.

  ```toml
  [sources]
  paths = ["${LOG_DIR:-/var/log/app}/*.log"]

  [[sinks]]
  url = "http://${INGEST_HOST}:8080/ingest"
  headers = { Authorization = "Bearer ${INGEST_TOKEN}" }
  ```

"""

_REFERENCE_FILES = """\
## `[[sources.files]]`

Groups of files with settings of their own, beside (and before) `[sources] paths`: a file that
several tables (or a table and `paths`) match belongs to the first table. Each table takes:

| key | type | default | meaning |
|---|---|---|---|
| `paths` | list of strings | (required) | Paths or glob patterns (`**` allowed) of its files. |
| `exclude` | list of strings | `[]` | Glob patterns it leaves out (`[sources] exclude` applies too). |
| `encoding` | encoding | `[sources] encoding` | How its files' bytes are text. |
| `fields` | table | `{}` | Static fields on each of its records (as the `fields` processor adds). |
| `processors` | array of tables | `[]` | Processors (as `[[processors]]`) its records go through first, before the `[[processors]]`. |
| `name` | string | `"[[sources.files]] #N"` | How logs and `logferry sources` name it. |

**Encodings**: any text encoding of Python's codecs: `"utf-8"` (the default), `"utf-16"` (its byte
order from the byte-order mark, little-endian without one), `"utf-16-le"`, `"utf-16-be"`,
`"utf-32"`, `"latin-1"`, `"cp1252"`, `"shift_jis"`, `"cp932"`, `"euc-jp"`, `"gbk"`, `"big5"`,
`"euc-kr"`… Lines end at `"\\n"` in the file's encoding (`0A 00` in UTF-16LE, found only at even
offsets); offsets and line ids stay byte offsets in the file; a byte-order mark at the head of a file
is never shipped (a UTF-8 one neither, whatever the encoding says); output (raw or JSON) is UTF-8; a
byte sequence the encoding cannot read becomes U+FFFD in its line. Files in an encoding other than
UTF-8 go through the processing stage, where each line is decoded.

```toml
[[sources.files]]
paths = ["/srv/legacy/*.log"]
encoding = "latin-1"
fields = { app = "legacy" }

[[sources.files.processors]]
type = "logfmt"
```

"""

_REFERENCE_SINKS = """\
## `[[sinks]]`

Where lines go. Each `[[sinks]]` table is one sink: every line goes to every sink. A table has a
`url` and the options of the plugin that owns the URL's scheme; the plugin checks them (an
unknown option is an error). The `--sink URL` flag (repeatable) replaces the file's sinks. With no
sink at all, lines go to stdout.

| URL | sink | options |
|---|---|---|
| `-` | stdout | `format` (`"raw"` or `"json"`, default: `[output] format`) |
| `file:PATH` or `PATH` | append to a file, parents created, from a writer thread | `format`; `fsync` (boolean, default `false`: `true` syncs every batch, to survive a machine crash); `mode` (octal string such as `"0640"`, or `0o640`: the permission bits of an output file the sink creates, whatever the umask; default: `0666` minus the umask; an existing file keeps its mode) |
| `null:` | discard (for benchmarks) | `format` (ignored) |
| `http://…`, `https://…` | the `logferry-http` plugin | see [its README](../plugins/logferry-http/README.md) |
| `redis://…`, `rediss://…`, `redis+cluster://…` | the `logferry-redis` plugin | see [its README](../plugins/logferry-redis/README.md) |

Plugin options may also be given as URL query parameters (`redis://127.0.0.1:6379/0?stream=logs`);
the file sink's only as keys of its table (its URL is a path, taken as written).
`logferry plugins` lists the installed plugins and the schemes they serve.

"""

_REFERENCE_PROCESSORS = """\
## `[[processors]]` and `match`

What happens to records on the way, in the order of the tables, for every file (or, with
`paths = ["GLOB", …]`, only for the files whose path matches one of the globs; `*` spans `/`).
Processors run on a thread of their own, never on the event loop. Without any, lines go from the
files to the sinks untouched.

| `type` | does | options |
|---|---|---|
| `multiline` | joins the lines of one event (a stack trace) into one record: its `line` the lines joined by `\\n`, its `offset` and `id` its first line's | `preset` (`"java"`, `"python"`, `"go"`), or `start` and/or `continue` (patterns: a line matching `start` begins an event; one matching `continue` joins it; with `start` alone every line up to the next start joins, with `continue` alone every other line begins one); `max_lines` (default 1100: a JVM prints at most 1024 frames) and `max_bytes` (default `[sources] max_line_bytes`): an event reaching either is ended and the rest begins another; `timeout` (default `2s`): an event is released when its file has been quiet that long |
| `json` | a JSON object per line: its members become fields | `field` (parse this field instead of the line), `timestamp_key` (this member becomes the record's `ts`), `timestamp_format` (`iso8601` (default), `unix`, `unix_ms`, `unix_us`, `unix_ns`, or a `strptime` format; a time without a zone is UTC), `error_field` (put why a line was not parsed in this field) |
| `logfmt` | `key=value key2="quoted value" flag` pairs become fields | as `json` |
| `regex` | the named groups of `pattern` (`(?P<level>\\w+)`) become fields | `pattern`, and as `json` |
| `drop` | drops the records `pattern` is found in | `pattern`; `field` (look in this field instead of the line; a record without it is kept) |
| `keep` | drops the others | as `drop` (a record without the field is dropped) |
| `fields` | adds static fields | `fields` (a table, e.g. `{ env = "prod" }`) |
| `redact` | replaces what `pattern` finds in the line and in text fields | `pattern`; `replace` (default `"***"`, `\\1` is group 1); `fields` (default `true`) |

Parsed and static fields are written at the top level of JSON records, beside `ts`, `path`,
`offset`, `id` and `line`; a parsed field named like one of those is written as `parsed_NAME`
(`fields` refuses such names). Raw output writes each record's text: an event's original lines, a
redacted line as redacted. A line a parser cannot parse goes on unchanged and is counted (`--stats`,
`logferry_processor_unparsed_records`), with the reason. Dropped records count as delivered.

Patterns are RE2 (`google-re2`): matching takes time linear in the line whatever the pattern, so no
line can hang the shipper; backreferences and lookaround are not available (an error naming the key).

A `[[sinks]]` table may have `match = { path = "GLOB" or ["GLOB", …], FIELD = "PATTERN", … }`: only the
records of files matching a `path` glob and whose every other field matches its pattern (`line` is
the record's text) go to that sink. A record no sink takes counts as delivered and is counted
(`unrouted`); one that several take moves its file's checkpoint once every one of them has it.
Plugins add processor types (`logferry plugins` lists them).

```toml
[[processors]]
type = "multiline"
preset = "java"
paths = ["/var/log/app/*.log"]

[[processors]]
type = "json"
timestamp_key = "ts"

[[processors]]
type = "drop"
field = "level"
pattern = "^debug$"

[[sinks]]
url = "file:/var/log/errors.log"
match = { level = "^(error|fatal)$" }
```

"""

_REFERENCE_PLUGINS = """\
## `[plugins.NAME]`

A plugin's own settings: the keys of a `[plugins.NAME]` table are the ones its plugin declares, and
they are checked as the core's are (an unknown key, a bad value, or a table no installed plugin
declares is an error naming the file and the key). A plugin may be active only when its table is
there: `[plugins.kubernetes]` (the `logferry-kubernetes` distribution) follows the containers' logs
of a node, with no `[sources] paths` needed. `logferry config reference` lists the keys of the
plugins installed; `logferry config show` prints each table with its defaults.

"""

_REFERENCE_TAIL = """\
## Not in the file

These are flags only: `run --once` (catch up and exit), `run --reset-unreadable-checkpoints` (set an
unreadable or empty checkpoint database aside and start without checkpoints: see
[running.md](running.md#an-unreadable-checkpoint-database)), `--debug` (asyncio debug mode and
tracebacks), `--log-level debug|info|warning|error` (default `warning`), `--log-format text|json`
(`json`: one JSON object per log line on stderr, with `ts`, `level`, `logger`, `message` and
`exception`), `--no-plugins`; and the environment variables `LOGFERRY_DISABLE_PLUGINS` and
`LOGFERRY_LOAD_PLUGINS` (see [Plugins](../README.md#plugins) in the README). Running logferry as a
service: [running.md](running.md).
"""
