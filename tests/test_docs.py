"""The documentation cannot drift from the code: the configuration reference is generated from the
schema, its examples load, and the systemd unit's command line is one logferry accepts."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

from logferry.cli import build_parser
from logferry.commands.config import EXAMPLES, reference_markdown
from logferry.settings import OPTIONS, settings_from_dict

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_configuration_reference_is_generated_from_the_schema() -> None:
    written = (DOCS / "configuration.md").read_text()
    assert written == reference_markdown(), (
        "docs/configuration.md differs from the schema: run `logferry config reference > docs/configuration.md`")


def test_the_reference_documents_every_key_with_its_flag() -> None:
    text = reference_markdown()
    for option in OPTIONS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{option.key}` |"))
        assert option.help in row
        for flag in option.flag.split("/") if option.flag and option.flag != "PATTERN" else ():
            assert f"`{flag}`" in row, option.key


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_reference_examples_load(example: dict) -> None:
    settings = settings_from_dict(example, "example")
    assert settings.paths and settings.sinks


def test_relative_links_in_the_docs_point_to_files() -> None:
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string((DOCS / "logferry.service").read_text())
    return unit


def test_the_systemd_unit_has_the_expected_sections_and_settings() -> None:
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["Type"] == "simple" and service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root") and service["StateDirectory"] == "logferry"
    assert service["NoNewPrivileges"] == "true" and service["ProtectSystem"] == "strict"
    assert "/var/lib/logferry" in service["ReadWritePaths"].split()
    assert "/var/log" in service["ReadOnlyPaths"].split()
    assert service["RestartPreventExitStatus"] == "2"  # a config error is not fixed by restarting
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_systemd_unit_command_line_is_one_logferry_accepts() -> None:
    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/logferry")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/logferry/config.toml"
    assert args.state_dir == "/var/lib/logferry" and not args.once
