"""Config files: every key validated, errors name the file and the key, flags override the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli
from logferry import ConfigError
from logferry.cli import build_parser, settings_from_args
from logferry.settings import OPTIONS, Settings, load_config, parse_duration, parse_size


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "logferry.toml"
    path.write_text(text)
    return path


def test_the_contract_example_config_loads(tmp_path: Path) -> None:
    config = write(tmp_path, """
[sources]
paths = ["/var/log/app/*.log"]
exclude = ["*.gz"]
start = "head"

[[sinks]]
url = "file:/var/log/merged.log"

[[sinks]]
url = "redis://127.0.0.1:6379/0"
stream = "logs"

[state]
dir = "/var/lib/logferry"
""")
    s = load_config(config)
    assert s.paths == ["/var/log/app/*.log"] and s.exclude == ["*.gz"] and s.start == "head"
    assert [k.url for k in s.sinks] == ["file:/var/log/merged.log", "redis://127.0.0.1:6379/0"]
    assert s.sinks[1].options == {"stream": "logs"}
    assert s.state_dir == Path("/var/lib/logferry")


@pytest.mark.parametrize("text,message", [
    ("[sources]\npathz = []\n", "unknown key 'pathz' in [sources]"),
    ("[source]\npaths = []\n", "unknown section or key 'source'"),
    ("[sources]\nstart = 'middle'\n", "[sources] start: expected one of 'head', 'tail'"),
    ("[sources]\npoll_interval = 'soon'\n", "[sources] poll_interval: expected a duration"),
    ("[sources]\nmax_line_bytes = 0\n", "[sources] max_line_bytes: expected a size above 0"),
    ("[[sinks]]\nstream = 'x'\n", "[[sinks]] #1: needs a url string"),
    ("[sources\n", "not valid TOML"),
])
def test_bad_config_is_a_clear_error_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(config) in str(info.value) and message in str(info.value)
    result = cli("run", "-c", str(config))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_missing_config_file_is_exit_code_2(tmp_path: Path) -> None:
    result = cli("run", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, """
[sources]
paths = ["/a/*.log"]
poll_interval = "2s"
start = "tail"
[output]
format = "json"
[[sinks]]
url = "file:/tmp/x"
""")
    args = build_parser().parse_args(["run", "-c", str(config), "/b/*.log", "--from-head", "--poll-interval",
                                      "250ms", "--sink", "-", "--format", "raw", "--once"])
    s = settings_from_args(args)
    assert s.paths == ["/b/*.log"] and s.start == "head" and s.poll_interval == 0.25
    assert [k.url for k in s.sinks] == ["-"] and s.format == "raw" and s.once
    args = build_parser().parse_args(["run", "-c", str(config)])
    s = settings_from_args(args)
    assert s.paths == ["/a/*.log"] and s.start == "tail" and s.poll_interval == 2.0 and s.format == "json"


def test_every_option_has_a_setting_and_a_default() -> None:
    defaults = Settings()
    for option in OPTIONS:
        assert hasattr(defaults, option.attr), option.key
        assert option.help.endswith("."), option.key


def test_durations_and_sizes() -> None:
    assert parse_duration("250ms") == 0.25 and parse_duration(3) == 3.0 and parse_duration("7d") == 7 * 86400
    assert parse_size("1MiB") == 1 << 20 and parse_size(4096) == 4096 and parse_size("64k") == 65536
    for bad in ("-1s", "fast", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
