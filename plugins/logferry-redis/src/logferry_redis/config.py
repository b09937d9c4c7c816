"""The sink's URL and options, parsed and checked once, before anything connects.

Every option may come as a URL query parameter (a string) or as a key of the ``[[sinks]]`` table
(a TOML value); both spellings go through the same parsers, so ``?maxlen=1000`` and
``maxlen = 1000`` mean the same. Any mistake is a :class:`logferry.ConfigError` naming the option.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from logferry import ConfigError
from logferry.settings import format_duration, format_size, parse_duration, parse_size
from logferry.sinks import kit

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


_timeout = kit.checked(parse_duration, lambda seconds: seconds > 0, 'a duration above 0 such as 5 or "500ms"')
_interval = kit.checked(parse_duration, lambda seconds: seconds >= 0, 'a duration such as 0 or "5ms"')


def _ignored(value: Any) -> Any:
    """``format`` shapes the bytes of line sinks; a stream entry always carries the raw line."""
    return value


OPTIONS: dict[str, kit.Parser] = {
    "stream": kit.text,
    "maxlen": kit.positive_int,
    "cluster": kit.boolean,
    "timeout": _timeout,
    "username": kit.text,
    "password_env": kit.text,
    "tls": kit.boolean,
    "tls_ca_file": kit.text,
    "tls_cert_file": kit.text,
    "tls_key_file": kit.text,
    "tls_verify": kit.boolean,
    "max_bytes_per_send": parse_size,
    "max_sends_in_flight": kit.positive_int,
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
    values = kit.parse_options(name, parts.query, options, OPTIONS, overridable={"format"})
    cluster = scheme == "redis+cluster" or values.get("cluster", False)
    nodes = kit.parse_hosts(name, hostlist, DEFAULT_PORT, "redis://HOST:PORT/DB")
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
        secret = kit.from_env(url, "password_env", env)
    return username or None, secret


def _safe_url(url: str, netloc: str, userinfo: str) -> str:
    """The URL with its password replaced by ``***``, for messages and ``describe()``."""
    user, has_password, _ = userinfo.partition(":")
    if not has_password:
        return url
    masked = f"{user}:***@{netloc.rpartition('@')[2]}"
    return url.replace(netloc, masked, 1)
