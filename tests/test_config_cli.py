"""``logferry config check`` / ``config show`` and ``--log-format``, through the real command."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import tomllib
from pathlib import Path

import pytest

from conftest import cli
from logferry.cli import build_parser
from logferry.commands.config import dumps_toml, is_secret_name, mask_options, mask_url
from logferry.commands.logs import JsonFormatter, setup_logging
from logferry.settings import OPTIONS, SECTIONS, format_duration, format_size, load_config, parse_duration, parse_size

_UMASK = os.umask(0o022)
os.umask(_UMASK)
NEW_FILE_MODE = f"{0o666 & ~_UMASK:04o}"  # what config show says a new output gets (the CLI runs under our umask)


def write(tmp_path: Path, text: str, name: str = "logferry.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- config check ------------------------------------------------------------------------------


def test_check_accepts_a_good_file_in_one_line_without_starting_its_sinks(tmp_path: Path) -> None:
    out = tmp_path / "not" / "yet" / "merged.log"
    config = write(tmp_path, f"""
[sources]
paths = ["/var/log/app/*.log", "/var/log/db/*.log"]
poll_interval = "2s"
[[sinks]]
url = "file:{out}"
fsync = true
[[sinks]]
url = "null:"
""")
    result = cli("config", "check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: ok (2 paths, 2 sinks: file:{out}, null:)\n"
    assert not out.parent.exists()  # validated by its plugin, never started


def test_check_without_sinks_reports_stdout_as_the_run_would(tmp_path: Path) -> None:
    config = write(tmp_path, '[sources]\npaths = ["/a/*.log"]\n')
    result = cli("config", "check", "-c", str(config))
    assert result.returncode == 0 and result.stdout == f"{config}: ok (1 path, 1 sink: stdout)\n"


@pytest.mark.parametrize("text,message", [
    ('[sources]\npaths = ["/a"]\npoll_interval = "soon"\n', "[sources] poll_interval: expected a duration"),
    ('[sources]\npathz = ["/a"]\n', "unknown key 'pathz' in [sources]"),
    ('[sources]\npaths = []\n', "[sources] paths: expected at least one path or glob pattern"),
    ('[output]\nformat = "json"\n', "[sources] paths: expected at least one path"),
    ('[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "file:/tmp/x"\nfsynk = true\n',
     "[[sinks]] #1: sink 'file:/tmp/x': unknown option 'fsynk' (known: format, fsync, mode)"),
    *[(f'[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "file:/tmp/x"\nmode = {mode}\n',
       "[[sinks]] #1: sink 'file:/tmp/x': mode must be permission bits in octal") for mode in
      ('"0980"', '"rw-r-----"', '"01777"', "640", "true", '""')],  # 640: decimal, not 0o640
    ('[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "null:"\n[[sinks]]\nurl = "file:/tmp/x"\nfsync = "yes"\n',
     "[[sinks]] #2: sink 'file:/tmp/x': fsync must be true or false"),
    ('[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "nosuch://x"\n', "[[sinks]] #1: unknown sink scheme 'nosuch'"),
    ("[sources\n", "not valid TOML"),
])
def test_check_names_the_file_the_key_and_what_was_expected(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path, text)
    result = cli("config", "check", "-c", str(config))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"logferry: error: {config}: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_check_of_a_missing_file_and_without_c_is_exit_code_2(tmp_path: Path) -> None:
    result = cli("config", "check", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "config file not found" in result.stderr
    assert cli("config", "check").returncode == 2


def test_check_validates_plugin_sinks_through_their_plugin(tmp_path: Path) -> None:
    pytest.importorskip("logferry_redis")
    config = write(tmp_path, '[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "redis://127.0.0.1:1/0"\nstreem = "x"\n')
    result = cli("config", "check", "-c", str(config))
    assert result.returncode == 2 and "[[sinks]] #1" in result.stderr and "'streem'" in result.stderr


# -- config show -------------------------------------------------------------------------------


def test_show_prints_every_key_of_the_schema_in_readable_units(tmp_path: Path) -> None:
    result = cli("config", "show")
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert set(shown) == {*SECTIONS, "sinks"}
    for option in OPTIONS:
        assert option.key in shown[option.section], option.key
    assert shown["sources"]["poll_interval"] == "250ms" and shown["output"]["max_inflight_bytes"] == "16MiB"
    assert shown["state"]["forget_after"] == "7d" and shown["sinks"] == [{"url": "-", "format": "raw", "fsync": False}]


def test_show_applies_flags_over_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[sources]\npaths = ["/a/*.log"]\npoll_interval = "2s"\nexclude = ["*.gz"]\n'
                             '[[sinks]]\nurl = "file:/tmp/merged.log"\n')
    result = cli("config", "show", "-c", str(config), "--poll-interval", "1", "--exclude", "*.old",
                 "--from-tail", "--state-dir", str(tmp_path / "state"), "--format", "json")
    shown = tomllib.loads(result.stdout)
    assert shown["sources"]["poll_interval"] == "1s" and shown["sources"]["start"] == "tail"
    assert shown["sources"]["paths"] == ["/a/*.log"] and shown["sources"]["exclude"] == ["*.gz", "*.old"]
    assert shown["state"]["dir"] == str(tmp_path / "state")
    assert shown["sinks"] == [{"url": "file:/tmp/merged.log", "format": "json", "fsync": False, "mode": NEW_FILE_MODE}]
    shown = tomllib.loads(cli("config", "show", "-c", str(config), "/b/*.log", "--sink", "null:").stdout)
    assert shown["sources"]["paths"] == ["/b/*.log"] and shown["sinks"] == [{"url": "null:"}]


@pytest.mark.parametrize("command,flag", [
    (("config", "show"), "--once"), (("config", "show"), "--stats"), (("config", "show"), "--metrics=:9108"),
    (("config", "check"), "--sink=null:"), (("config", "check"), "--once"),
])
def test_config_commands_refuse_the_flags_that_mean_nothing_to_them(tmp_path: Path, command: tuple[str, ...],
                                                                   flag: str) -> None:
    config = write(tmp_path, '[sources]\npaths = ["/a/*.log"]\n')
    result = cli(*command, "-c", str(config), flag)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"logferry: error: unrecognized argument: {flag} (a flag of 'logferry run'); "
                             f"see 'logferry {' '.join(command)} --help'\n")


# -- each sink's defaults --------------------------------------------------------------------------


def test_show_fills_in_the_defaults_of_every_sink(tmp_path: Path) -> None:
    pytest.importorskip("logferry_redis")
    pytest.importorskip("logferry_http")
    out = tmp_path / "merged.log"
    config = write(tmp_path, f"""
[sources]
paths = ["/a/*.log"]
[[sinks]]
url = "file:{out}"
fsync = true
[[sinks]]
url = "redis://127.0.0.1:6379/0?stream=logs"
maxlen = 1000
[[sinks]]
url = "https://es.example/_bulk?format=es-bulk"
timeout = "5s"
[[sinks]]
url = "null:"
""")
    result = cli("config", "show", "-c", str(config))
    assert result.returncode == 0, result.stderr
    file, redis, http, null = tomllib.loads(result.stdout)["sinks"]
    assert file == {"url": f"file:{out}", "fsync": True, "format": "raw", "mode": NEW_FILE_MODE}
    # What the URL says stays in the URL (stream, format): given twice would be an error for a plugin.
    assert redis == {"url": "redis://127.0.0.1:6379/0?stream=logs", "maxlen": 1000, "cluster": False,
                     "timeout": "10s", "tls": False, "tls_verify": True, "max_bytes_per_send": "4MiB",
                     "max_sends_in_flight": 2, "send_interval": "3ms"}
    assert http == {"url": "https://es.example/_bulk?format=es-bulk", "timeout": "5s", "gzip": False, "retries": 3,
                    "max_backoff": "30s", "verify": True, "max_body_bytes": "4MiB", "concurrency": 2,
                    "send_interval": "3ms", "index": "logferry", "action": "index"}
    assert null == {"url": "null:"}
    shown = write(tmp_path, result.stdout, "shown.toml")
    checked = cli("config", "check", "-c", str(shown))
    assert checked.returncode == 0, checked.stderr


def test_the_file_sink_shows_every_option_it_accepts() -> None:
    """A new option of the file sink is one entry in FileSink.options(), or config show misses it."""
    from logferry.plugins import get_plugin_manager
    from logferry.settings import Settings
    from logferry.sinks.builtin import _FILE_OPTIONS

    sink = get_plugin_manager(load_entrypoints=False).make_sink("file:/tmp/x.log", {}, Settings())
    assert set(sink.options()) == _FILE_OPTIONS


def test_show_of_a_sink_its_plugin_refuses_says_so_and_shows_it_as_given(tmp_path: Path) -> None:
    config = write(tmp_path, '[[sinks]]\nurl = "file:/tmp/x.log"\nfsynk = true\n')
    result = cli("config", "show", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert ("# [[sinks]] #1 is not valid (logferry config check says why): shown as given, without its defaults\n"
            in result.stdout)
    assert tomllib.loads(result.stdout)["sinks"] == [{"url": "file:/tmp/x.log", "fsynk": True}]


# -- environment variables in the file ---------------------------------------------------------


def test_environment_variables_are_expanded_in_every_string_of_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, """
[sources]
paths = ["${LF_LOGS}/*.log", "${LF_UNSET:-/srv/default}/*.log", "/literal/$${LF_LOGS}/*.log"]
poll_interval = "${LF_POLL:-2s}"
[[sinks]]
url = "http://${LF_HOST}:9200/_bulk?format=es-bulk"
headers = { Authorization = "Bearer ${LF_TOKEN}", "X-Env" = "${LF_EMPTY:-fallback}" }
[state]
dir = "${LF_STATE}"
""")
    env = {"LF_LOGS": "/var/log/app", "LF_HOST": "es.internal", "LF_TOKEN": "s3cret", "LF_EMPTY": "",
           "LF_STATE": str(tmp_path / "state")}
    result = cli("config", "show", "-c", str(config), env=env)
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["sources"]["paths"] == ["/var/log/app/*.log", "/srv/default/*.log", "/literal/${LF_LOGS}/*.log"]
    assert shown["sources"]["poll_interval"] == "2s" and shown["state"]["dir"] == str(tmp_path / "state")
    assert shown["sinks"][0]["url"] == "http://es.internal:9200/_bulk?format=es-bulk"
    assert shown["sinks"][0]["headers"] == {"Authorization": "***", "X-Env": "***"}
    assert "s3cret" not in result.stdout


@pytest.mark.parametrize("text,key,variable", [
    ('[sources]\npaths = ["/a/*.log", "${LF_NOPE}/*.log"]\n', "[sources] paths", "LF_NOPE"),
    ('[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "null:"\n[[sinks]]\nurl = "redis://${LF_HOST}:6379"\n',
     "[[sinks]] #2 url", "LF_HOST"),
    ('[sources]\npaths = ["/a"]\n[[sinks]]\nurl = "http://h/"\nheaders = { X-Key = "${LF_KEY}" }\n',
     "[[sinks]] #1 headers.X-Key", "LF_KEY"),
])
def test_an_unset_variable_without_a_default_names_the_key_and_the_variable(
        tmp_path: Path, text: str, key: str, variable: str) -> None:
    config = write(tmp_path, text)
    for command in (("config", "check"), ("config", "show"), ("run", "--once")):
        result = cli(*command, "-c", str(config))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == (f"logferry: error: {config}: {key}: environment variable {variable!r} is not set "
                                 f"(give it a default: ${{{variable}:-VALUE}})\n")


def test_a_malformed_variable_reference_is_an_error_naming_the_key(tmp_path: Path) -> None:
    config = write(tmp_path, '[sources]\npaths = ["${LF_LOGS/*.log"]\n')
    result = cli("config", "check", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr == (f"logferry: error: {config}: [sources] paths: a '${{' that is not ${{NAME}} or "
                             "${NAME:-default} (write $${ for a literal '${')\n")


def test_show_masks_secrets(tmp_path: Path) -> None:
    config = write(tmp_path, """
[[sinks]]
url = "redis://app:hunter2@127.0.0.1:6379/0?stream=logs"
password = "hunter3"
password_env = "REDIS_PASSWORD"
[[sinks]]
url = "https://tok123@es.example/_bulk?format=es-bulk&header.Authorization=Bearer%20s3cret&api_key=k3y"
headers = { Authorization = "Bearer s3cret2", "X-Request-Source" = "logferry" }
token = "t0ken"
tls_key_file = "/etc/ssl/private/client.key"
timeout = "5s"
""")
    result = cli("config", "show", "-c", str(config))
    assert result.returncode == 0, result.stderr
    for secret in ("hunter2", "hunter3", "tok123", "s3cret", "k3y", "t0ken"):
        assert secret not in result.stdout
    redis, http = tomllib.loads(result.stdout)["sinks"]
    assert redis == {"url": "redis://app:***@127.0.0.1:6379/0?stream=logs", "password": "***",
                     "password_env": "REDIS_PASSWORD"}
    assert http["url"] == "https://***@es.example/_bulk?format=es-bulk&header.Authorization=***&api_key=***"
    assert http["headers"] == {"Authorization": "***", "X-Request-Source": "***"}
    assert http["token"] == "***" and http["timeout"] == "5s"
    assert http["tls_key_file"] == "/etc/ssl/private/client.key"  # where the key is, not the key


def test_what_show_prints_check_accepts_with_the_same_settings(tmp_path: Path) -> None:
    config = write(tmp_path, f"""
[sources]
paths = ["/var/log/app/*.log", "/var/log/weird \\"quoted\\" dir/*.log"]
exclude = ["*.gz"]
start = "tail"
poll_interval = 0.1
ignore_older = "36h"
max_open_files = 512
max_line_bytes = 100000
long_lines = "truncate"
watch = false
[output]
format = "json"
max_inflight_bytes = "1MB"
[state]
dir = "{tmp_path / 'state'}"
[[sinks]]
url = "file:{tmp_path / 'out.log'}"
fsync = true
[[sinks]]
url = "null:"
""")
    shown = write(tmp_path, cli("config", "show", "-c", str(config)).stdout, "shown.toml")
    result = cli("config", "check", "-c", str(shown))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{shown}: ok (2 paths, 2 sinks: file:")
    before, after = load_config(config), load_config(shown)
    assert after.replace(sinks=[]) == before.replace(sinks=[])
    assert [s.url for s in after.sinks] == [s.url for s in before.sinks]
    assert after.sinks[0].options == {"fsync": True, "format": "json", "mode": NEW_FILE_MODE}  # given, then defaults


def test_show_of_plugin_sinks_with_masked_secrets_passes_check(tmp_path: Path) -> None:
    pytest.importorskip("logferry_redis")
    pytest.importorskip("logferry_http")
    config = write(tmp_path, """
[sources]
paths = ["/a/*.log"]
[[sinks]]
url = "redis://app:hunter2@127.0.0.1:6379/0"
stream = "logs"
[[sinks]]
url = "https://es.example/_bulk?format=es-bulk"
headers = { Authorization = "Bearer s3cret" }
""")
    shown = write(tmp_path, cli("config", "show", "-c", str(config)).stdout, "shown.toml")
    assert "hunter2" not in shown.read_text() and "s3cret" not in shown.read_text()
    result = cli("config", "check", "-c", str(shown))
    assert result.returncode == 0, result.stderr
    assert "redis://app:***@127.0.0.1:6379/0" in result.stdout and "hunter2" not in result.stdout


def test_a_bad_file_is_a_clear_error_for_show_too(tmp_path: Path) -> None:
    result = cli("config", "show", "-c", str(write(tmp_path, "[sources]\nstart = 'middle'\n")))
    assert result.returncode == 2 and "[sources] start: expected one of 'head', 'tail'" in result.stderr


# -- values written back -----------------------------------------------------------------------


@pytest.mark.parametrize("seconds,text", [
    (0.25, "250ms"), (1.0, "1s"), (90.0, "90s"), (300.0, "5m"), (7200.0, "2h"), (604800.0, "7d"), (0.0, "0s"),
    (1.5, "1500ms"), (0.0005, 0.0005),
])
def test_durations_are_written_in_the_largest_exact_unit(seconds: float, text: str | float) -> None:
    assert format_duration(seconds) == text and parse_duration(text) == seconds


@pytest.mark.parametrize("size,text", [(1 << 20, "1MiB"), (32 << 20, "32MiB"), (65536, "64KiB"), (1000, 1000),
                                       (3 << 30, "3GiB"), (1 << 20 | 1, (1 << 20) + 1)])
def test_sizes_are_written_in_the_largest_exact_binary_unit(size: int, text: str | int) -> None:
    assert format_size(size) == text and parse_size(text) == size


def test_the_toml_writer_round_trips_awkward_values() -> None:
    data = {"a": {"s": 'quote " backslash \\ tab \t nl \n del \x7f é 🙂', "n": -3, "f": 0.1, "inf": float("inf"),
                  "b": False, "l": [1, "x", [True]], "t": {"k y": {"z": 1}}, "e": {}, "el": []},
            "sinks": [{"url": "-"}, {"url": "null:", "opts": [{"a": 1}]}]}
    assert tomllib.loads(dumps_toml(data)) == data


@pytest.mark.parametrize("name,secret", [
    ("password", True), ("redis_password", True), ("token", True), ("accessToken", True), ("api_key", True),
    ("X-Api-Key", True), ("Authorization", True), ("client_secret", True), ("key", True),
    ("password_env", False), ("token_env", False), ("tls_key_file", False), ("stream", False),
    ("maxlen", False), ("index", False), ("format", False), ("headers_env", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_masking_keeps_what_is_not_secret() -> None:
    assert mask_url("file:/var/log/x.log") == "file:/var/log/x.log"
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("http://h/p?format=loki&labels=a:b&token=x") == "http://h/p?format=loki&labels=a:b&token=***"
    assert mask_options({"query": {"apikey": "x"}, "labels": {"job": "a"}, "nested": {"secret": ["a", "b"]}}) == \
        {"query": {"apikey": "***"}, "labels": {"job": "a"}, "nested": {"secret": ["***", "***"]}}


# -- the flags of the schema -------------------------------------------------------------------


def _subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("command", [("run",), ("config", "show")])
def test_every_flag_the_schema_names_exists(command: tuple[str, ...]) -> None:
    parser = _subcommand(build_parser(), *command)
    options = {s for a in parser._actions for s in a.option_strings}
    positionals = {a.metavar for a in parser._actions if not a.option_strings}
    flagged = [o for o in OPTIONS if o.flag]
    assert flagged
    for option in flagged:
        for flag in option.flag.split("/"):
            assert flag in (options if flag.startswith("-") else positionals), (option.key, flag)


# -- --log-format ------------------------------------------------------------------------------


def test_log_format_json_prints_one_object_per_log_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"short\n" + b"x" * 100 + b"\n")
    config = write(tmp_path, "[sources]\nmax_line_bytes = 16\n")
    result = cli("run", str(log), "-c", str(config), "--once", "--sink", "null:", "--state-dir",
                 str(tmp_path / "state"), "--log-level", "info", "--log-format", "json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["logger"].startswith("logferry") and r["ts"].endswith("Z") for r in records)
    assert any(r["level"] == "info" for r in records)
    assert any(r["level"] == "warning" and "over the maximum line size" in r["message"] for r in records)


def test_log_format_json_errors_are_json_too_with_the_traceback_under_debug(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    result = cli("run", "-c", missing, "--log-format", "json")
    assert result.returncode == 2
    (record,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert record["level"] == "error" and "config file not found" in record["message"]
    assert "exception" not in record
    result = cli("config", "check", "-c", missing, "--log-format", "json", "--debug")
    (record,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert result.returncode == 2 and "Traceback" in record["exception"] and "ConfigError" in record["exception"]


def test_log_format_text_stays_as_it_was(tmp_path: Path) -> None:
    result = cli("run", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr == f"logferry: error: {tmp_path / 'nope.toml'}: config file not found\n"
    assert cli("verify", "--log-format", "yaml", "a", "b").returncode == 2


def test_every_command_takes_log_format() -> None:
    parser = build_parser()
    for command in (("run",), ("plugins",), ("verify",), ("demo",), ("config", "check"), ("config", "show"),
                    ("config", "reference")):
        flags = {s for a in _subcommand(parser, *command)._actions for s in a.option_strings}
        assert "--log-format" in flags, command


@pytest.fixture
def restore_logging():
    """setup_logging changes the process's ``logferry`` and ``asyncio`` loggers: put them back."""
    saved = [(log, log.handlers[:], log.level, log.propagate)
             for log in (logging.getLogger("logferry"), logging.getLogger("asyncio"))]
    yield
    for log, handlers, level, propagate in saved:
        log.handlers[:], log.level, log.propagate = handlers, level, propagate


def test_the_json_formatter_carries_the_exception_text(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("logferry.test").exception("it failed: %s", "badly")
    setup_logging("info", "json", stream)  # again: still one handler, no doubled lines
    logging.getLogger("logferry.test").info("é")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "it failed: badly" and first["level"] == "error"
    assert first["logger"] == "logferry.test" and "ValueError: boom" in first["exception"]
    assert second["message"] == "é" and "exception" not in second
    assert len([h for h in logging.getLogger("asyncio").handlers if h.get_name() == "logferry-cli"]) == 1
    assert isinstance(logging.getLogger("logferry").handlers[0].formatter, JsonFormatter)
