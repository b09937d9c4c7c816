"""Options: URL query parameters and [[sinks]] keys, checked before anything connects."""

from __future__ import annotations

from typing import Any

import pytest
from logferry import ConfigError

from logferry_nats.config import OPTIONS, parse_config
from logferry_nats.subjects import SubjectTemplate, covers


def config(url: str, **options: Any):
    return parse_config(url, "nats", options, hostname="web1")


def test_defaults_subject_and_stream_logferry_port_4222() -> None:
    c = config("nats://example.com")
    assert c.servers == [("example.com", 4222)] and c.urls == ["nats://example.com:4222"]
    assert (c.stream, c.format, c.create, c.replicas, c.duplicate_window, c.timeout) == (
        "logferry", "raw", True, 1, 120.0, 10.0)
    assert c.subject.render("/var/log/a.log") == b"logferry"


def test_url_query_and_table_keys_mean_the_same() -> None:
    from_url = config("nats://h:1,[::1]:2?subject=logs.{stem}&replicas=3&duplicate_window=10m&timeout=500ms")
    from_table = config("nats://h:1,[::1]:2", subject="logs.{stem}", replicas=3, duplicate_window="10m",
                        timeout="500ms")
    for c in (from_url, from_table):
        assert (c.servers, c.replicas, c.duplicate_window, c.timeout) == ([("h", 1), ("::1", 2)], 3, 600.0, 0.5)
        assert c.urls == ["nats://h:1", "nats://[::1]:2"]
        assert c.subject.render("/x/app.log.1") == b"logs.app"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("nats://h?subjet=x", {}, "unknown option 'subjet'"),
        ("nats://h", {"batch_size": 10}, "unknown option 'batch_size'"),
        ("nats://h?replicas=0", {}, "option 'replicas'"),
        ("nats://h?replicas=6", {}, "option 'replicas'"),
        ("nats://h?duplicate_window=soon", {}, "option 'duplicate_window'"),
        ("nats://h?timeout=0", {}, "option 'timeout'"),
        ("nats://h?create=maybe", {}, "option 'create'"),
        ("nats://h?storage=disk", {}, "option 'storage'"),
        ("nats://h?format=xml", {}, "option 'format'"),
        ("nats://h?stream=a.b", {}, "option 'stream'"),
        ("nats://h?subject=", {}, "option 'subject'"),
        ("nats://h?subject=logs.*", {}, "option 'subject'"),
        ("nats://h?subject=logs..x", {}, "option 'subject'"),
        ("nats://h?subject=logs.{file}", {}, r"unknown field \{file\}"),
        ("nats://h?subject=a&subject=b", {}, "'subject' is given twice"),
        ("nats://h?subject=a", {"subject": "b"}, "'subject' is given both"),
        ("nats://h/logs", {}, "has no path"),
        ("nats://h:99999", {}, "bad port"),
        ("nats://", {}, "no host"),
        ("nats://tok@h", {"username": "bob", "password_env": "HOME"}, "either a token or a user"),
    ],
)
def test_bad_values_are_config_errors_naming_the_option(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(url, **options)


def test_credentials_from_userinfo_or_the_environment_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    c = config("nats://alice:p%40ss@h:4222?subject=s")
    assert (c.username, c.password, c.token) == ("alice", "p@ss", None)
    assert c.safe_url == "nats://alice:***@h:4222?subject=s"
    token = config("nats://s3cret@h")
    assert (token.username, token.token) == (None, "s3cret") and "s3cret" not in token.safe_url
    monkeypatch.setenv("NATS_PW", "pw")
    monkeypatch.setenv("NATS_TOKEN", "tk")
    assert config("nats://h", username="bob", password_env="NATS_PW").password == "pw"
    assert config("nats://h", token_env="NATS_TOKEN").token == "tk"
    monkeypatch.delenv("NATS_PW")
    with pytest.raises(ConfigError, match="'NATS_PW' is not set"):
        config("nats://h", username="bob", password_env="NATS_PW")


@pytest.mark.parametrize("bad", ["?replicas=x", "?nope=1", "/x", "?subject={bad}"])
def test_config_errors_never_show_the_password(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(f"nats://alice:hunter2@h:4222{bad}")
    assert "hunter2" not in str(caught.value) and "alice:***@h" in str(caught.value)


def test_subject_templates_give_one_token_per_field_and_their_wildcard() -> None:
    def render(template: str, path: str) -> bytes:
        return SubjectTemplate(template, "web1").render(path)

    assert render("logs.{stem}", "/var/log/app.log.1") == b"logs.app"
    assert render("logs.{name}", "/var/log/app.log") == b"logs.app_log"
    assert render("{host}.{dir}.{stem}", "/var/log/nginx/access.log") == b"web1.nginx.access"
    assert render("logs.{name}", "/in/a b*>.log") == b"logs.a_b___log"
    assert render("logs.{name}", "/in/caf\udce9.log") == "logs.caf\ufffd_log".encode()
    assert render("logs.x{stem}", "/in/a.log") == b"logs.xa"
    assert SubjectTemplate("logs.{stem}", "h").wildcard == "logs.*"
    assert SubjectTemplate("a.x{stem}.b", "h").wildcard == "a.*.b"
    assert SubjectTemplate("fixed.name", "h").wildcard == "fixed.name"


@pytest.mark.parametrize(("filter_", "subject", "expected"), [
    ("logs.*", "logs.*", True), ("logs.>", "logs.*", True), (">", "a.b.c", True), ("logs.*", "logs.app", True),
    ("logs.app", "logs.*", False), ("logs.*", "logs.a.b", False), ("logs", "logs.*", False),
    ("logs.>", "logs", False),
])
def test_a_streams_subjects_cover_the_template_or_not(filter_: str, subject: str, expected: bool) -> None:
    assert covers(filter_, subject) is expected


def test_options_shows_what_a_run_uses_and_reads_back_the_same() -> None:
    c = config("nats://h", subject="logs.{stem}", replicas=3, tls=True, tls_ca_file="/ca.pem")
    shown = c.options()
    assert shown == {"subject": "logs.{stem}", "stream": "logferry", "format": "raw", "create": True, "replicas": 3,
                     "duplicate_window": "2m", "storage": "file", "timeout": "10s", "tls": True, "tls_verify": True,
                     "tls_ca_file": "/ca.pem", "max_bytes_per_send": "4MiB", "max_sends_in_flight": 2,
                     "send_interval": "3ms"}
    assert set(shown) <= set(OPTIONS)
    assert config("nats://h", **shown).options() == shown
    assert config("nats://h", tls=True).urls == ["tls://h:4222"]


def test_send_limits_are_options_the_sink_declares_to_the_engine() -> None:
    from .conftest import make_sink

    sink = make_sink("nats://h", max_bytes_per_send="1MiB", max_sends_in_flight=1, send_interval="10ms")
    assert (sink.max_bytes_per_send, sink.max_sends_in_flight, sink.send_interval) == (1 << 20, 1, 0.01)
    for bad in ("max_sends_in_flight=0", "max_bytes_per_send=0", "send_interval=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            config(f"nats://h?{bad}")
