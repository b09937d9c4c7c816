"""The sink's URL and options, parsed and checked once, before anything connects.

Every option may come as a URL query parameter (a string) or as a key of the ``[[sinks]]`` table
(a TOML value); both spellings go through the same parsers, so ``?maxlen=1000`` and
``maxlen = 1000`` mean the same. Any mistake is a :class:`logferry.ConfigError` naming the option.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from logferry import ConfigError
from logferry.settings import format_duration, format_size, parse_duration, parse_size

from .streams import StreamTemplate

DEFAULT_PORT = 6379
DEFAULT_STREAM = "logferry"
DEFAULT_TIMEOUT = 10.0
# Two sends in flight: the server works through one pipeline while the next is encoded. 4 MiB of
# 100-byte lines is ~40,000 XADDs, a tenth of a second of a server's work.
DEFAULT_SEND_BYTES = 4 << 20
DEFAULT_SENDS_IN_FLIGHT = 2
# Under sustained load, one send every 3 ms: at 20,000 lines/s that halves the sends (each costs
# ~0.5 ms of CPU across the engine and the sink's thread) for ~2 ms more latency.
DEFAULT_SEND_INTERVAL = 0.003
SCHEMES = ("redis", "rediss", "redis+cluster")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class RedisConfig:
    """Everything needed to build the client and the entries; secrets never appear in ``safe_url``."""

    nodes: list[tuple[str, int]]
    safe_url: str
    stream: StreamTemplate
    db: int = 0
    cluster: bool = False
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    maxlen: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    max_bytes_per_send: int = DEFAULT_SEND_BYTES
    max_sends_in_flight: int = DEFAULT_SENDS_IN_FLIGHT
    send_interval: float = DEFAULT_SEND_INTERVAL

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included, as TOML values (``logferry config show``).

        Left out: credentials (``username``, ``password_env`` are shown as given) and options
        without a value (no ``maxlen``: the stream is never trimmed)."""
        shown: dict[str, Any] = {"stream": self.stream.template, "cluster": self.cluster,
                                 "timeout": format_duration(self.timeout), "tls": self.tls,
                                 "tls_verify": self.tls_verify,
                                 "max_bytes_per_send": format_size(self.max_bytes_per_send),
                                 "max_sends_in_flight": self.max_sends_in_flight,
                                 "send_interval": format_duration(self.send_interval)}
        optional = {"maxlen": self.maxlen, "tls_ca_file": self.tls_ca_file, "tls_cert_file": self.tls_cert_file,
                    "tls_key_file": self.tls_key_file}
        shown.update((key, value) for key, value in optional.items() if value is not None)
        return shown


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = value.lower() if isinstance(value, str) else ""
    if text not in _TRUE | _FALSE:
        raise ValueError(f"expected true or false, got {value!r}")
    return text in _TRUE


def _positive_int(value: Any) -> int:
    # Parsers raise ValueError whatever went wrong: the caller turns it into a ConfigError.
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number <= 0:
        raise ValueError(f"expected a whole number above 0, got {value!r}")
    return number


def _timeout(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration above 0 such as 5 or \"500ms\", got {value!r}")
    return seconds


def _interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"expected a duration such as 0 or \"5ms\", got {value!r}")
    return seconds


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _ignored(value: Any) -> Any:
    """``format`` shapes the bytes of line sinks; a stream entry always carries the raw line."""
    return value


OPTIONS: dict[str, Callable[[Any], Any]] = {
    "stream": _text,
    "maxlen": _positive_int,
    "cluster": _bool,
    "timeout": _timeout,
    "username": _text,
    "password_env": _text,
    "tls": _bool,
    "tls_ca_file": _text,
    "tls_cert_file": _text,
    "tls_key_file": _text,
    "tls_verify": _bool,
    "max_bytes_per_send": parse_size,
    "max_sends_in_flight": _positive_int,
    "send_interval": _interval,
    "format": _ignored,
}
"""Every option the sink knows, with its parser (query strings and TOML values alike)."""


def parse_config(url: str, scheme: str, options: dict[str, Any], hostname: str | None = None) -> RedisConfig:
    """Check ``url`` and ``options`` and return the sink's configuration, or raise ConfigError."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"sink URL is not valid: {exc}") from None
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    name = _safe_url(url, parts.netloc, userinfo)  # names the sink in messages: never with its password
    if scheme not in SCHEMES:
        raise ConfigError(f"sink {name!r}: scheme must be one of {', '.join(SCHEMES)}")
    values = _merged_options(name, parts.query, options)
    cluster = scheme == "redis+cluster" or values.get("cluster", False)
    nodes = _nodes(name, hostlist)
    if len(nodes) > 1 and not cluster:
        raise ConfigError(f"sink {name!r}: several hosts are only allowed for Redis Cluster (redis+cluster://)")
    db = _db(name, parts.path)
    if cluster and db != 0:
        raise ConfigError(f"sink {name!r}: Redis Cluster has only database 0, got /{db}")
    username, password = _credentials(name, userinfo, values)
    try:
        stream = StreamTemplate(values.get("stream", DEFAULT_STREAM), hostname or socket.gethostname())
    except ValueError as exc:
        raise ConfigError(f"sink {name!r}: option 'stream': {exc}") from None
    return RedisConfig(
        nodes=nodes,
        safe_url=name,
        stream=stream,
        db=db,
        cluster=bool(cluster),
        tls=scheme == "rediss" or values.get("tls", False),
        username=username,
        password=password,
        maxlen=values.get("maxlen"),
        timeout=values.get("timeout", DEFAULT_TIMEOUT),
        tls_ca_file=values.get("tls_ca_file"),
        tls_cert_file=values.get("tls_cert_file"),
        tls_key_file=values.get("tls_key_file"),
        tls_verify=values.get("tls_verify", True),
        max_bytes_per_send=values.get("max_bytes_per_send", DEFAULT_SEND_BYTES),
        max_sends_in_flight=values.get("max_sends_in_flight", DEFAULT_SENDS_IN_FLIGHT),
        send_interval=values.get("send_interval", DEFAULT_SEND_INTERVAL),
    )


def _merged_options(url: str, query: str, options: dict[str, Any]) -> dict[str, Any]:
    """Query parameters and table keys, each parsed; one option given twice is an error."""
    raw: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in raw:
            raise ConfigError(f"sink {url!r}: option {key!r} is given twice in the URL")
        raw[key] = value
    for key, value in options.items():
        if key in raw and key != "format":
            raise ConfigError(f"sink {url!r}: option {key!r} is given both in the URL and in the [[sinks]] table")
        raw[key] = value
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        parse = OPTIONS.get(key)
        if parse is None:
            raise ConfigError(f"sink {url!r}: unknown option {key!r} (known: {', '.join(sorted(OPTIONS))})")
        try:
            parsed[key] = parse(value)
        except ValueError as exc:
            raise ConfigError(f"sink {url!r}: option {key!r}: {exc}") from None
    return parsed


def _nodes(url: str, hostlist: str) -> list[tuple[str, int]]:
    """``host[:port]`` items separated by commas; IPv6 addresses in brackets."""
    nodes = []
    for item in hostlist.split(","):
        host, port = item, DEFAULT_PORT
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                port = _port(url, rest.removeprefix(":"))
        elif ":" in item:
            host, _, text = item.rpartition(":")
            port = _port(url, text)
        if not host:
            raise ConfigError(f"sink {url!r}: no host given (use redis://HOST:PORT/DB)")
        nodes.append((host, port))
    return nodes


def _port(url: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"sink {url!r}: bad port {text!r}")
    return int(text)


def _db(url: str, path: str) -> int:
    text = path.strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise ConfigError(f"sink {url!r}: the path must be a database number such as /0, got {path!r}")
    return int(text)


def _credentials(url: str, userinfo: str, values: dict[str, Any]) -> tuple[str | None, str | None]:
    """Username and password from ``user:password@`` (percent-encoded) or the options."""
    user, has_password, password = userinfo.partition(":")
    username = unquote(user) or values.get("username")
    if user and "username" in values:
        raise ConfigError(f"sink {url!r}: option 'username' is given both in the URL and as an option")
    secret = unquote(password) if has_password and password else None
    env = values.get("password_env")
    if env is not None:
        if secret is not None:
            raise ConfigError(f"sink {url!r}: a password is given both in the URL and by 'password_env'")
        secret = os.environ.get(env)
        if secret is None:
            raise ConfigError(f"sink {url!r}: option 'password_env': environment variable {env!r} is not set")
    return username or None, secret


def _safe_url(url: str, netloc: str, userinfo: str) -> str:
    """The URL with its password replaced by ``***``, for messages and ``describe()``."""
    user, has_password, _ = userinfo.partition(":")
    if not has_password:
        return url
    masked = f"{user}:***@{netloc.rpartition('@')[2]}"
    return url.replace(netloc, masked, 1)
