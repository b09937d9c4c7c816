"""The sink's URL and options, parsed and checked once, before anything connects.

Every option may come as a URL query parameter (a string) or as a key of the ``[[sinks]]`` table
(a TOML value); both spellings go through the same parsers, so ``?replicas=3`` and ``replicas = 3``
mean the same. Any mistake is a :class:`logferry.ConfigError` naming the option.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from logferry import ConfigError
from logferry.settings import format_duration, format_size, parse_duration, parse_size
from logferry.sinks import kit

from .subjects import SubjectTemplate

DEFAULT_PORT = 4222
DEFAULT_STREAM = "logferry"
DEFAULT_SUBJECT = "logferry"
DEFAULT_TIMEOUT = 10.0
DEFAULT_DUPLICATE_WINDOW = 120.0  # JetStream's own default
# Two sends in flight: the server stores one send's messages while the next is encoded.
DEFAULT_SEND_BYTES = 4 << 20
DEFAULT_SENDS_IN_FLIGHT = 2
# Under sustained load, one send every 3 ms: fewer, fuller sends (each costs a thread hop and a
# flush) for ~2 ms more latency, as the redis sink does.
DEFAULT_SEND_INTERVAL = 0.003
SCHEMES = ("nats",)
FORMATS = ("raw", "json")
STORAGE = ("file", "memory")

_BAD_STREAM_NAME = re.compile(r"[\s.*>/\\]")


@dataclass(frozen=True)
class NatsConfig:
    """Everything needed to connect and to build the messages; secrets never appear in ``safe_url``."""

    servers: list[tuple[str, int]]
    safe_url: str
    subject: SubjectTemplate
    stream: str = DEFAULT_STREAM
    format: str = "raw"
    create: bool = True
    replicas: int = 1
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    storage: str = "file"
    timeout: float = DEFAULT_TIMEOUT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    max_bytes_per_send: int = DEFAULT_SEND_BYTES
    max_sends_in_flight: int = DEFAULT_SENDS_IN_FLIGHT
    send_interval: float = DEFAULT_SEND_INTERVAL

    @property
    def urls(self) -> list[str]:
        """The servers as nats-py takes them (credentials are passed apart, never in a URL)."""
        scheme = "tls" if self.tls else "nats"
        return [f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}" for host, port in self.servers]

    def options(self) -> dict[str, Any]:
        """The options in effect, defaults included, as TOML values (``logferry config show``).

        Left out: credentials (``username``, ``password_env`` and ``token_env`` are shown as given)
        and options without a value."""
        shown: dict[str, Any] = {"subject": self.subject.template, "stream": self.stream, "format": self.format,
                                 "create": self.create, "replicas": self.replicas,
                                 "duplicate_window": format_duration(self.duplicate_window),
                                 "storage": self.storage, "timeout": format_duration(self.timeout),
                                 "tls": self.tls, "tls_verify": self.tls_verify,
                                 "max_bytes_per_send": format_size(self.max_bytes_per_send),
                                 "max_sends_in_flight": self.max_sends_in_flight,
                                 "send_interval": format_duration(self.send_interval)}
        optional = {"tls_ca_file": self.tls_ca_file, "tls_cert_file": self.tls_cert_file,
                    "tls_key_file": self.tls_key_file}
        shown.update((key, value) for key, value in optional.items() if value is not None)
        return shown


def _replicas(value: Any) -> int:
    number = kit.positive_int(value)
    if number > 5:
        raise ValueError(f"JetStream keeps 1 to 5 replicas of a stream, got {value!r}")
    return number


_timeout = kit.checked(parse_duration, lambda seconds: seconds > 0, 'a duration above 0 such as 5 or "500ms"')
_interval = kit.checked(parse_duration, lambda seconds: seconds >= 0, 'a duration such as 0 or "5ms"')


def _stream_name(value: Any) -> str:
    name = kit.text(value)
    if _BAD_STREAM_NAME.search(name):
        raise ValueError(f"a stream name holds no space, '.', '*', '>', '/' or '\\', got {value!r}")
    return name


OPTIONS: dict[str, kit.Parser] = {
    "subject": kit.text,
    "stream": _stream_name,
    "format": kit.choice(*FORMATS),
    "create": kit.boolean,
    "replicas": _replicas,
    "duplicate_window": _timeout,
    "storage": kit.choice(*STORAGE),
    "timeout": _timeout,
    "username": kit.text,
    "password_env": kit.text,
    "token_env": kit.text,
    "tls": kit.boolean,
    "tls_ca_file": kit.text,
    "tls_cert_file": kit.text,
    "tls_key_file": kit.text,
    "tls_verify": kit.boolean,
    "max_bytes_per_send": parse_size,
    "max_sends_in_flight": kit.positive_int,
    "send_interval": _interval,
}
"""Every option the sink knows, with its parser (query strings and TOML values alike)."""


def parse_config(url: str, scheme: str, options: dict[str, Any], hostname: str | None = None) -> NatsConfig:
    """Check ``url`` and ``options`` and return the sink's configuration, or raise ConfigError."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"sink URL is not valid: {exc}") from None
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    name = _safe_url(url, parts.netloc, userinfo)  # names the sink in messages: never with a secret
    if scheme not in SCHEMES:
        raise ConfigError(f"sink {name!r}: scheme must be one of {', '.join(SCHEMES)}")
    if parts.path.strip("/"):
        raise ConfigError(f"sink {name!r}: a nats:// URL has no path (give the subject as ?subject=NAME),"
                          f" got {parts.path!r}")
    values = kit.parse_options(name, parts.query, options, OPTIONS)
    servers = kit.parse_hosts(name, hostlist, DEFAULT_PORT, "nats://HOST:PORT[,HOST:PORT…]")
    username, password, token = _credentials(name, userinfo, values)
    try:
        subject = SubjectTemplate(values.get("subject", DEFAULT_SUBJECT), hostname or socket.gethostname())
    except ValueError as exc:
        raise ConfigError(f"sink {name!r}: option 'subject': {exc}") from None
    return NatsConfig(
        servers=servers,
        safe_url=name,
        subject=subject,
        stream=values.get("stream", DEFAULT_STREAM),
        format=values.get("format", "raw"),
        create=values.get("create", True),
        replicas=values.get("replicas", 1),
        duplicate_window=values.get("duplicate_window", DEFAULT_DUPLICATE_WINDOW),
        storage=values.get("storage", "file"),
        timeout=values.get("timeout", DEFAULT_TIMEOUT),
        username=username,
        password=password,
        token=token,
        tls=values.get("tls", False),
        tls_ca_file=values.get("tls_ca_file"),
        tls_cert_file=values.get("tls_cert_file"),
        tls_key_file=values.get("tls_key_file"),
        tls_verify=values.get("tls_verify", True),
        max_bytes_per_send=values.get("max_bytes_per_send", DEFAULT_SEND_BYTES),
        max_sends_in_flight=values.get("max_sends_in_flight", DEFAULT_SENDS_IN_FLIGHT),
        send_interval=values.get("send_interval", DEFAULT_SEND_INTERVAL),
    )


def _credentials(url: str, userinfo: str, values: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """User and password (``user:password@``, percent-encoded), or a token (``token@``), from the
    URL or from the options' environment variables."""
    user, has_password, password = userinfo.partition(":")
    user = unquote(user)
    token = user if user and not has_password else None  # nats://TOKEN@host, as nats-py reads it
    if has_password and user and "username" in values:
        raise ConfigError(f"sink {url!r}: option 'username' is given both in the URL and as an option")
    secret = unquote(password) if has_password and password else None
    username = (user if has_password else None) or values.get("username")
    if "password_env" in values:
        if secret is not None:
            raise ConfigError(f"sink {url!r}: a password is given both in the URL and by 'password_env'")
        secret = kit.from_env(url, "password_env", values["password_env"])
    if "token_env" in values:
        if token is not None:
            raise ConfigError(f"sink {url!r}: a token is given both in the URL and by 'token_env'")
        token = kit.from_env(url, "token_env", values["token_env"])
    if token is not None and (username or secret):
        raise ConfigError(f"sink {url!r}: give either a token or a user and password, not both")
    if secret is not None and not username:
        raise ConfigError(f"sink {url!r}: a password needs a user (nats://USER:PASS@HOST or 'username')")
    return username or None, secret, token


def _safe_url(url: str, netloc: str, userinfo: str) -> str:
    """The URL with its password or token replaced by ``***``, for messages and ``describe()``."""
    if not userinfo:
        return url
    user, has_password, _ = userinfo.partition(":")
    masked = f"{user}:***" if has_password else "***"
    return url.replace(netloc, f"{masked}@{netloc.rpartition('@')[2]}", 1)
