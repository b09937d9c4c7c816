"""Options come from the URL query or the [[sinks]] table; bad ones are ConfigErrors naming them,
and no credential ever appears in a message or in describe()."""

from __future__ import annotations

import pytest
from logferry import ConfigError, Settings, SinkSpec
from logferry.plugins import get_plugin_manager
from logferry_http.options import parse_config, redact_url

from lfhttp_support import http_sink


def test_defaults():
    cfg = parse_config("http://127.0.0.1:9/ingest", {})
    assert (cfg.format, cfg.gzip, cfg.timeout, cfg.retries, cfg.verify, cfg.index) == (
        "ndjson", False, 10.0, 3, True, "logferry")
    assert cfg.endpoint == "http://127.0.0.1:9/ingest"
    assert (cfg.max_body_bytes, cfg.concurrency) == (4 << 20, 2)


def test_body_limit_and_concurrency_become_the_sinks_limits():
    sink = http_sink("http://127.0.0.1:9/x?max_body_bytes=1MiB", concurrency=4)
    assert (sink.config.max_body_bytes, sink.config.concurrency) == (1 << 20, 4)
    assert sink.max_sends_in_flight == 4
    assert 0 < sink.max_bytes_per_send < 1 << 20  # lines grow into records: ask the engine for fewer


def test_query_and_table_options_are_read_and_stripped_from_the_endpoint():
    cfg = parse_config(
        "http://127.0.0.1:9/_bulk?format=es-bulk&gzip=true&timeout=250ms&retries=0&query.refresh=wait_for",
        {"index": "logs", "headers": {"X-Team": "ops"}},
    )
    assert (cfg.format, cfg.gzip, cfg.timeout, cfg.retries, cfg.index) == ("es-bulk", True, 0.25, 0, "logs")
    assert cfg.headers == {"X-Team": "ops"}
    assert cfg.endpoint == "http://127.0.0.1:9/_bulk?refresh=wait_for"


@pytest.mark.parametrize("url, options", [
    ("http://127.0.0.1:9/?colour=blue", {}),
    ("http://127.0.0.1:9/", {"colour": "blue"}),
])
def test_unknown_option_is_a_config_error_naming_it(url, options):
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        parse_config(url, options)


def test_unknown_option_through_the_host_is_a_config_error():
    host = get_plugin_manager()
    with pytest.raises(ConfigError, match="'colour'"):
        host.make_sink("http://127.0.0.1:9/?colour=blue", {}, Settings())
    sink = host.make_sink("https://127.0.0.1:9/x", {"format": "loki"}, Settings())
    assert type(sink).__name__ == "HttpSink"


def test_url_and_table_disagreeing_is_a_config_error():
    with pytest.raises(ConfigError, match="'timeout' is given twice"):
        parse_config("http://127.0.0.1:9/?timeout=5", {"timeout": 6})
    assert parse_config("http://127.0.0.1:9/?timeout=5&gzip=true", {"timeout": 5, "gzip": True}).timeout == 5


def test_the_hosts_line_format_is_ignored():
    """``format = "raw"|"json"`` is the --format of line sinks: it never picks the HTTP body format."""
    assert parse_config("http://127.0.0.1:9/?format=loki", {"format": "json"}).format == "loki"
    assert parse_config("http://127.0.0.1:9/", {"format": "raw"}).format == "ndjson"
    assert parse_config("http://127.0.0.1:9/?format=json", {"format": "es-bulk"}).format == "es-bulk"


@pytest.mark.parametrize("url, options, message", [
    ("http://127.0.0.1:9/?format=xml", {}, "format must be one of"),
    ("http://127.0.0.1:9/?index=logs", {}, "'index' applies only to format=es-bulk"),
    ("http://127.0.0.1:9/?format=ndjson&labels=a:b", {}, "'labels' applies only to format=loki"),
    ("http://127.0.0.1:9/?format=loki&labels=bad-name:x", {}, "not a valid Loki label name"),
    ("http://127.0.0.1:9/?format=loki&labels=novalue", {}, "NAME:VALUE"),
    ("http://127.0.0.1:9/", {"structured_metadata": True}, "'structured_metadata' applies only to format=loki"),
    ("http://127.0.0.1:9/?format=loki&structured_metadata=some", {}, "structured_metadata must be true or false"),
    ("http://127.0.0.1:9/?format=es-bulk&action=delete", {}, "action must be one of"),
    ("http://127.0.0.1:9/?gzip=maybe", {}, "gzip must be true or false"),
    ("http://127.0.0.1:9/?timeout=soon", {}, "timeout"),
    ("http://127.0.0.1:9/?timeout=0", {}, "timeout must be above 0"),
    ("http://127.0.0.1:9/?retries=-1", {}, "retries must be a whole number"),
    ("http://127.0.0.1:9/?concurrency=0", {}, "concurrency must be a whole number of 1 or more"),
    ("http://127.0.0.1:9/?max_body_bytes=lots", {}, "max_body_bytes: expected a size"),
    ("http://127.0.0.1:9/", {"max_body_bytes": 0}, "max_body_bytes: expected a size above 0"),
    ("http://127.0.0.1:9/?ca_file=/nonexistent/ca.pem", {}, "ca_file"),
    ("http://127.0.0.1:9/?header.Bad%20Name=x", {}, "not a valid HTTP header name"),
    ("http://127.0.0.1:9/", {"headers": "X-A: b"}, "headers must be a table"),
    ("http://:9/", {}, "expected http://HOST"),
])
def test_bad_values_are_config_errors(url, options, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(url, options)


def test_loki_labels_from_url_or_table():
    assert parse_config("http://h/?format=loki&labels=job:app,env:prod", {}).labels == {"job": "app", "env": "prod"}
    assert parse_config("http://h/", {"format": "loki", "labels": {"job": "app"}}).labels == {"job": "app"}


def test_headers_from_query_table_and_toml_dotted_keys(monkeypatch):
    monkeypatch.setenv("LF_API_KEY", "k-123")
    cfg = parse_config("http://h/?header.X-One=1&header_env.X-Key=LF_API_KEY",
                       {"header": {"X-Two": "2"}, "headers": {"X-Three": "3"}})
    assert cfg.headers == {"X-One": "1", "X-Two": "2", "X-Three": "3", "X-Key": "k-123"}


def test_token_env_sets_a_bearer_authorization(monkeypatch):
    monkeypatch.setenv("LF_TOKEN", "s3cr3t-token")
    assert parse_config("http://h/?token_env=LF_TOKEN", {}).headers == {"Authorization": "Bearer s3cr3t-token"}


def test_missing_environment_variable_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("LF_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="'LF_NOT_SET' is not set"):
        parse_config("http://h/?token_env=LF_NOT_SET", {})


def test_two_sources_of_authorization_are_refused(monkeypatch):
    monkeypatch.setenv("LF_TOKEN", "t")
    with pytest.raises(ConfigError, match="give one"):
        parse_config("http://user:pw@h/?token_env=LF_TOKEN", {})


def test_describe_hides_userinfo_and_credential_query_values(monkeypatch):
    monkeypatch.setenv("LF_TOKEN", "env-secret")
    basic = http_sink("https://alice:hunter2@example.com:8443/in?query.api_key=q2-secret&format=ndjson")
    bearer = http_sink("https://example.com/in?header.X-Api-Key=qs-secret&token_env=LF_TOKEN")
    shown = " ".join(f"{s.describe()} {s!r} {s.config!r}" for s in (basic, bearer))
    for secret in ("hunter2", "alice", "qs-secret", "q2-secret", "env-secret"):
        assert secret not in shown
    assert basic.describe() == "https://***@example.com:8443/in?query.api_key=***&format=ndjson"
    assert bearer.describe() == "https://example.com/in?header.X-Api-Key=***&token_env=LF_TOKEN"
    assert basic.config.headers == {"Authorization": "Basic YWxpY2U6aHVudGVyMg=="}  # alice:hunter2


def test_config_errors_do_not_show_secrets():
    with pytest.raises(ConfigError) as info:
        parse_config("http://bob:pw-secret@h/?header.X-Key=hdr-secret&nope=1", {})
    assert "pw-secret" not in str(info.value) and "hdr-secret" not in str(info.value)


def test_redact_url_keeps_plain_urls():
    assert redact_url("http://127.0.0.1:8080/ingest?format=loki&labels=job:app") == (
        "http://127.0.0.1:8080/ingest?format=loki&labels=job:app")


def test_settings_sink_spec_options_reach_the_plugin():
    host = get_plugin_manager()
    spec = SinkSpec("http://127.0.0.1:9/", {"format": "es-bulk", "index": "app", "gzip": True})
    sink = host.make_sink(spec.url, spec.options, Settings())
    assert (sink.config.format, sink.config.index, sink.config.gzip) == ("es-bulk", "app", True)


@pytest.mark.parametrize("url,options", [
    ("http://127.0.0.1:9/ingest", {}),
    ("http://127.0.0.1:9/ingest", {"max_body_bytes": "512KiB", "concurrency": 8}),
    ("https://es.example/_bulk", {"format": "es-bulk", "action": "create", "retries": 5}),
    ("http://loki:3100/loki/api/v1/push", {"format": "loki", "labels": {"job": "app"}, "max_backoff": "1m"}),
    ("http://loki:3100/loki/api/v1/push", {"format": "loki", "structured_metadata": True}),
])
def test_options_shows_what_a_run_uses_and_reads_back_the_same(url, options):
    """``logferry config show`` prints these: every one must be an option the sink accepts."""
    from logferry_http.options import SCALAR_OPTIONS

    cfg = parse_config(url, options)
    shown = cfg.options()
    assert set(shown) <= SCALAR_OPTIONS and {"timeout", "retries", "gzip", "verify"} <= set(shown)
    assert {k: v for k, v in shown.items() if k in options} == options
    assert parse_config(url, shown) == cfg
