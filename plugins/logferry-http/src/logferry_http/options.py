"""Sink options: read from the URL's query and the ``[[sinks]]`` table, checked, into one ``HttpConfig``.

Only the standard library and logferry are imported here, so ``logferry plugins`` and configuration
errors never pay for importing the HTTP client.

Precedence: an option may be given in the URL query or in the table; giving it in both with
different values is a :class:`logferry.ConfigError` (a silent winner would hide a typo in one of
them). Header values read from the environment are looked up here, so a missing variable is a
configuration error (exit code 2) before anything is read, and are never put in a message.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from logferry import ConfigError
from logferry.settings import format_duration, format_size, parse_duration, parse_size

FORMATS = ("ndjson", "es-bulk", "loki")
LINE_FORMATS = ("raw", "json")
"""The host's ``--format`` values for line sinks: accepted in ``format`` and ignored (see README)."""
ES_ACTIONS = ("index", "create")

SCALAR_OPTIONS = {
    "format", "gzip", "token_env", "timeout", "retries", "max_backoff", "verify", "ca_file", "index",
    "action", "labels", "structured_metadata", "max_body_bytes", "concurrency", "send_interval",
}
MAPPING_OPTIONS = {"headers", "headers_env", "query"}
"""Options holding name → value tables; in the URL query they are spelled ``PREFIX.NAME=VALUE``."""
QUERY_PREFIXES = {"header": "headers", "headers": "headers", "header_env": "headers_env",
                  "headers_env": "headers_env", "query": "query"}
FORMAT_ONLY = {"index": "es-bulk", "action": "es-bulk", "labels": "loki", "structured_metadata": "loki"}
SECRET_QUERY_PREFIXES = ("header.", "headers.", "query.")
"""URL query options whose values may be credentials: masked by :func:`redact_url`."""

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token


@dataclass(frozen=True)
class HttpConfig:
    """Everything an :class:`~logferry_http.sink.HttpSink` needs, validated."""

    endpoint: str = field(repr=False)
    """The URL requests go to: no userinfo, no sink options, with the ``query.*`` parameters (which
    may hold an API key, hence kept out of ``repr``)."""
    format: str = "ndjson"
    gzip: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Static and environment-provided headers; may hold credentials, so kept out of ``repr``."""
    timeout: float = 10.0
    retries: int = 3
    max_backoff: float = 30.0
    verify: bool = True
    ca_file: str | None = None
    index: str = "logferry"
    action: str = "index"
    labels: dict[str, str] = field(default_factory=dict)
    structured_metadata: bool = False
    """Loki: send records' fields as structured metadata (Loki 3, or 2.9+ with it allowed); older
    Lokis, or one that disallows it, refuse such pushes with a 400."""
    max_body_bytes: int = 4 << 20
    """The largest request body (before gzip); a single record larger than this travels alone."""
    concurrency: int = 2
    """Requests in flight at once (never two holding lines of the same file)."""
    send_interval: float = 0.003
    """Under sustained load, the least time between two requests that are not full: at 20,000
    lines/s, 3 ms cuts the requests (~0.2 ms of CPU each) by more than half for ~2 ms of latency.
    After a quiet spell a line still goes out at once."""

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included, as TOML values (``logferry config show``); the
        headers are left out (they may be credentials), and so are options of other formats."""
        shown: dict[str, Any] = {"format": self.format, "gzip": self.gzip, "timeout": format_duration(self.timeout),
                                 "retries": self.retries, "max_backoff": format_duration(self.max_backoff),
                                 "verify": self.verify, "max_body_bytes": format_size(self.max_body_bytes),
                                 "concurrency": self.concurrency,
                                 "send_interval": format_duration(self.send_interval)}
        if self.ca_file is not None:
            shown["ca_file"] = self.ca_file
        if self.format == "es-bulk":
            shown.update(index=self.index, action=self.action)
        if self.format == "loki":
            shown["labels"] = dict(self.labels)
            shown["structured_metadata"] = self.structured_metadata
        return shown


def parse_config(url: str, options: dict[str, Any]) -> HttpConfig:
    """Merge the URL query with the table ``options`` and validate every value."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"sink {url!r}: expected http://HOST[:PORT]/PATH or https://…")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"sink {url!r}: bad port") from None
    merged = _merge(url, _query_options(url, parts), _table_options(url, options))
    return _build(url, parts, merged)


def _query_options(url: str, parts: SplitResult) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        prefix, dot, name = key.partition(".")
        if dot and prefix in QUERY_PREFIXES:
            table = found.setdefault(QUERY_PREFIXES[prefix], {})
            _put(url, table, name, value, f"{prefix}.{name}")
        elif key in SCALAR_OPTIONS:
            _put(url, found, key, value, key)
        else:
            raise _unknown(url, key)
    return _without_line_format(found)


def _without_line_format(found: dict[str, Any]) -> dict[str, Any]:
    """Drop ``format = "raw"|"json"``: the host's line format for file sinks, not an HTTP body format
    (the host may pass the user's ``--format`` in the options of every sink)."""
    if found.get("format") in LINE_FORMATS:
        del found["format"]
    return found


def _table_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in options.items():
        if key in QUERY_PREFIXES:  # TOML's dotted keys (header.Name = "v") arrive as a table too
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"sink {url!r}: {key} must be a table of strings, e.g. {{Name = \"value\"}}")
            table = found.setdefault(QUERY_PREFIXES[key], {})
            for name, item in value.items():
                _put(url, table, name, item, f"{key}.{name}")
        elif key in SCALAR_OPTIONS:
            found[key] = value
        else:
            raise _unknown(url, key)
    return _without_line_format(found)


def _merge(url: str, query: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    merged = dict(query)
    for key, value in table.items():
        if key in MAPPING_OPTIONS:
            target = merged.setdefault(key, {})
            for name, item in value.items():
                _put(url, target, name, item, f"{key}.{name}")
        elif key in merged and str(merged[key]).lower() != str(value).lower():
            raise ConfigError(f"sink {url!r}: option {key!r} is given twice, in the URL and in the table, "
                              "with different values")
        else:
            merged[key] = value
    return merged


def _put(url: str, target: dict[str, Any], key: str, value: Any, shown: str) -> None:
    if key in target and target[key] != value:
        raise ConfigError(f"sink {url!r}: option {shown!r} is given twice with different values")
    target[key] = value


def _unknown(url: str, key: str) -> ConfigError:
    known = sorted(SCALAR_OPTIONS | MAPPING_OPTIONS) + ["header.NAME", "header_env.NAME", "query.NAME"]
    return ConfigError(f"sink {redact_url(url)!r}: unknown option {key!r} (known: {', '.join(known)})")


def _build(url: str, parts: SplitResult, opts: dict[str, Any]) -> HttpConfig:
    shown = redact_url(url)
    fmt = str(opts.get("format", "ndjson"))
    if fmt not in FORMATS:
        raise ConfigError(f"sink {shown!r}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for key, only in FORMAT_ONLY.items():
        if key in opts and fmt != only:
            raise ConfigError(f"sink {shown!r}: option {key!r} applies only to format={only}")
    headers = _headers(shown, opts)
    if parts.username is not None:  # http://USER:PASSWORD@host/: HTTP basic authentication
        if "authorization" in {name.lower() for name in headers}:
            raise ConfigError(f"sink {shown!r}: credentials in the URL and an Authorization header: give one")
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode("ascii")
    action = str(opts.get("action", "index"))
    if action not in ES_ACTIONS:
        raise ConfigError(f"sink {shown!r}: action must be one of {', '.join(ES_ACTIONS)}, got {action!r}")
    index = str(opts.get("index", "logferry"))
    if not index:
        raise ConfigError(f"sink {shown!r}: index must not be empty")
    ca_file = opts.get("ca_file")
    if ca_file is not None:
        ca_file = os.path.expanduser(str(ca_file))
        if not os.path.isfile(ca_file):
            raise ConfigError(f"sink {shown!r}: ca_file {ca_file!r} is not a readable file")
    return HttpConfig(
        endpoint=_endpoint(parts, opts.get("query", {})),
        format=fmt,
        gzip=_bool(shown, "gzip", opts.get("gzip", False)),
        headers=headers,
        timeout=_duration(shown, "timeout", opts.get("timeout", 10.0), positive=True),
        retries=_count(shown, "retries", opts.get("retries", 3)),
        max_backoff=_duration(shown, "max_backoff", opts.get("max_backoff", 30.0)),
        verify=_bool(shown, "verify", opts.get("verify", True)),
        ca_file=ca_file,
        index=index,
        action=action,
        labels=_labels(shown, opts.get("labels", {})),
        structured_metadata=_bool(shown, "structured_metadata", opts.get("structured_metadata", False)),
        max_body_bytes=_size(shown, "max_body_bytes", opts.get("max_body_bytes", HttpConfig.max_body_bytes)),
        concurrency=_count(shown, "concurrency", opts.get("concurrency", HttpConfig.concurrency), low=1),
        send_interval=_duration(shown, "send_interval", opts.get("send_interval", HttpConfig.send_interval)),
    )


def _headers(shown: str, opts: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in opts.get("headers", {}).items():
        headers[_header_name(shown, name)] = str(value)
    for name, var in opts.get("headers_env", {}).items():
        headers[_header_name(shown, name)] = _from_env(shown, f"headers_env.{name}", str(var))
    token_env = opts.get("token_env")
    if token_env is not None:
        if any(name.lower() == "authorization" for name in headers):
            raise ConfigError(f"sink {shown!r}: token_env and an Authorization header: give one")
        headers["Authorization"] = "Bearer " + _from_env(shown, "token_env", str(token_env))
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ConfigError(f"sink {shown!r}: the value of header {name!r} contains a line break")
    return headers


def _header_name(shown: str, name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise ConfigError(f"sink {shown!r}: {name!r} is not a valid HTTP header name")
    return name


def _from_env(shown: str, option: str, var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"sink {shown!r}: {option}: environment variable {var!r} is not set or empty")
    return value


def _labels(shown: str, value: Any) -> dict[str, str]:
    """``"job:app,env:prod"`` (URL) or a table ``{job = "app"}`` → a dict of Loki labels."""
    if isinstance(value, str):
        pairs = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, label = item.partition(":")
            if not sep:
                raise ConfigError(f"sink {shown!r}: labels: expected NAME:VALUE pairs, got {item!r}")
            pairs.append((name.strip(), label.strip()))
        value = dict(pairs)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"sink {shown!r}: labels must be \"name:value,…\" or a table of strings")
    for name in value:
        if not _LABEL_NAME.match(name):
            raise ConfigError(f"sink {shown!r}: {name!r} is not a valid Loki label name")
    return dict(value)


def _bool(shown: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"sink {shown!r}: {key} must be true or false, got {value!r}")


def _duration(shown: str, key: str, value: Any, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"sink {shown!r}: {key}: {exc}") from None
    if positive and seconds <= 0:
        raise ConfigError(f"sink {shown!r}: {key} must be above 0, got {value!r}")
    return seconds


def _count(shown: str, key: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(str(value).strip()) < low:
        raise ConfigError(f"sink {shown!r}: {key} must be a whole number of {low} or more, got {value!r}")
    return int(str(value).strip())


def _size(shown: str, key: str, value: Any) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ConfigError(f"sink {shown!r}: {key}: {exc}") from None


def _endpoint(parts: SplitResult, query: dict[str, str]) -> str:
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(query), ""))


def redact_url(url: str) -> str:
    """``url`` safe to print: the userinfo and credential-bearing query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:  # the user name may be a token too (https://TOKEN@host): mask all of it
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{quote(key, safe='.-_')}=***" if key.startswith(SECRET_QUERY_PREFIXES) else
        f"{quote(key, safe='.-_')}={quote(value, safe=':,-_.')}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
