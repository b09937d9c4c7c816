"""Options: URL query parameters and [[sinks]] keys, checked before anything connects."""

from __future__ import annotations

from typing import Any

import pytest
from logferry import ConfigError

from logferry_redis.config import parse_config
from logferry_redis.streams import StreamTemplate


def config(url: str, **options: Any):
    scheme = url.split(":", 1)[0]
    return parse_config(url, scheme, options, hostname="web1")


def test_defaults_stream_logferry_db_0_port_6379() -> None:
    c = config("redis://example.com")
    assert c.nodes == [("example.com", 6379)]
    assert (c.db, c.cluster, c.tls, c.maxlen, c.timeout) == (0, False, False, None, 10.0)
    assert c.stream.render("/var/log/a.log") == b"logferry"


def test_url_query_and_table_keys_mean_the_same() -> None:
    from_url = config("redis://h:7000/3?stream=logs&maxlen=1000&timeout=500ms&cluster=false")
    from_table = config("redis://h:7000/3", stream="logs", maxlen=1000, timeout="500ms", cluster=False)
    for c in (from_url, from_table):
        assert (c.nodes, c.db, c.maxlen, c.timeout) == ([("h", 7000)], 3, 1000, 0.5)
        assert c.stream.render("/x.log") == b"logs"


def test_an_unknown_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="unknown option 'strem'"):
        config("redis://h?strem=x")
    with pytest.raises(ConfigError, match="unknown option 'batch_size'"):
        config("redis://h", batch_size=10)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://h?maxlen=0", {}, "option 'maxlen'"),
        ("redis://h?maxlen=lots", {}, "option 'maxlen'"),
        ("redis://h", {"maxlen": True}, "option 'maxlen'"),
        ("redis://h?timeout=0", {}, "option 'timeout'"),
        ("redis://h?timeout=soon", {}, "option 'timeout'"),
        ("redis://h?cluster=maybe", {}, "option 'cluster'"),
        ("redis://h?stream=", {}, "option 'stream'"),
        ("redis://h?stream=a&stream=b", {}, "'stream' is given twice"),
        ("redis://h?stream=a", {"stream": "b"}, "'stream' is given both"),
        ("redis://h/abc", {}, "database number"),
        ("redis://h:99999", {}, "bad port"),
        ("redis://", {}, "no host"),
        ("redis://a:1,b:2", {}, "only allowed for Redis Cluster"),
        ("redis+cluster://h/2", {}, "only database 0"),
        ("redis://h?stream=logs:{file}", {}, r"unknown field \{file\}"),
        ("redis://h?stream=logs:{name!r}", {}, "no format spec"),
        ("redis://h?stream=logs:{name", {}, "literal braces"),
    ],
)
def test_bad_values_are_config_errors_naming_the_option(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(url, **options)


def test_format_is_accepted_and_ignored_entries_always_carry_the_raw_line() -> None:
    assert config("redis://h", format="json").stream.render("/a.log") == b"logferry"


def test_cluster_by_scheme_or_option_with_several_seed_nodes() -> None:
    assert config("redis+cluster://a:7000,b:7001,[::1]:7002").nodes == [("a", 7000), ("b", 7001), ("::1", 7002)]
    assert config("redis+cluster://a:7000").cluster
    assert config("redis://a:7000", cluster=True).cluster
    assert config("redis://a?cluster=true").cluster


def test_rediss_means_tls() -> None:
    c = config("rediss://h:6380?tls_ca_file=/ca.pem&tls_verify=false")
    assert c.tls and c.tls_ca_file == "/ca.pem" and not c.tls_verify
    assert config("redis+cluster://h", tls=True).tls


def test_credentials_from_userinfo_percent_decoded_and_hidden_from_describe() -> None:
    c = config("redis://alice:p%40ss%3Aword@h:6379/0?stream=s")
    assert (c.username, c.password) == ("alice", "p@ss:word")
    assert "p%40ss" not in c.safe_url and c.safe_url == "redis://alice:***@h:6379/0?stream=s"
    only_password = config("redis://:secret@h")
    assert (only_password.username, only_password.password) == (None, "secret")
    assert "secret" not in only_password.safe_url


def test_password_env_reads_the_variable_and_fails_clearly_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PW", "s3cret")
    c = config("redis://h", password_env="REDIS_PW", username="bob")
    assert (c.username, c.password) == ("bob", "s3cret")
    assert "s3cret" not in c.safe_url
    monkeypatch.delenv("REDIS_PW")
    with pytest.raises(ConfigError, match="'REDIS_PW' is not set"):
        config("redis://h", password_env="REDIS_PW")
    with pytest.raises(ConfigError, match="both in the URL and by 'password_env'"):
        config("redis://:x@h", password_env="HOME")


def test_stream_templates_render_from_the_source_path() -> None:
    def render(template: str, path: str) -> bytes:
        return StreamTemplate(template, "web1").render(path)

    assert render("logs:{name}", "/var/log/app.log") == b"logs:app.log"
    assert render("logs:{stem}", "/var/log/app.log.1") == b"logs:app"
    assert render("logs:{stem}", "/var/log/app.log-20260101") == b"logs:app"
    assert render("{host}:{dir}:{stem}", "/var/log/nginx/access.log") == b"web1:nginx:access"
    assert render("p:{path}", "/in/x.log") == b"p:/in/x.log"
    assert render("logs:{{app}}:{stem}", "/in/x.log") == b"logs:{app}:x"  # a cluster hash tag
    assert render("logs:{name}", "/in/caf\udce9.log") == b"logs:caf\xe9.log"  # non-UTF-8 name, exact bytes
    assert StreamTemplate("fixed", "h").fixed and not StreamTemplate("{name}", "h").fixed


@pytest.mark.parametrize("bad", ["?maxlen=x", "?nope=1", "/x", "?stream={bad}"])
def test_config_errors_never_show_the_password(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(f"redis://alice:hunter2@h:6379{bad}")
    assert "hunter2" not in str(caught.value) and "alice:***@h" in str(caught.value)


def test_options_shows_what_a_run_uses_and_reads_back_the_same() -> None:
    """``logferry config show`` prints these: every one must be an option the sink accepts."""
    from logferry_redis.config import OPTIONS

    c = config("rediss://h:7000/3", maxlen=1000, timeout="500ms", tls_ca_file="/etc/ca.pem")
    shown = c.options()
    assert shown == {"stream": "logferry", "cluster": False, "timeout": "500ms", "tls": True, "tls_verify": True,
                     "maxlen": 1000, "tls_ca_file": "/etc/ca.pem", "max_bytes_per_send": "4MiB",
                     "max_sends_in_flight": 2, "send_interval": "3ms"}
    assert set(shown) <= set(OPTIONS)
    assert config("rediss://h:7000/3", **shown).options() == shown


def test_send_limits_are_options_the_sink_declares_to_the_engine() -> None:
    from .conftest import make_sink

    c = config("redis://h?max_bytes_per_send=256KiB&max_sends_in_flight=4&send_interval=0")
    assert (c.max_bytes_per_send, c.max_sends_in_flight, c.send_interval) == (256 << 10, 4, 0.0)
    sink = make_sink("redis://h", max_bytes_per_send=1 << 20, max_sends_in_flight=1, send_interval="10ms")
    assert (sink.max_bytes_per_send, sink.max_sends_in_flight, sink.send_interval) == (1 << 20, 1, 0.01)
    for bad in ("max_sends_in_flight=0", "max_bytes_per_send=0", "max_bytes_per_send=lots", "send_interval=-1",
                "send_interval=soon"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            config(f"redis://h?{bad}")
