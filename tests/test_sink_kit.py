"""The plugin authors' kit: option parsers, one error line naming the option, host lists, secrets from
the environment, destination names templated from the source file."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from logferry import ConfigError
from logferry.sinks import kit

SINK = "demo://h/"
PARSERS: dict[str, kit.Parser] = {"count": kit.positive_int, "on": kit.boolean, "name": kit.text,
                                  "format": kit.text}


def options(query: str = "", **table: Any) -> dict[str, Any]:
    return kit.parse_options(SINK, query, table, PARSERS, overridable={"format"})


def test_the_kit_imports_only_the_standard_library_and_logferry_errors() -> None:
    """Plugins' config modules import it on every ``logferry`` command: it must stay light and below
    every stage."""
    tree = ast.parse(Path(kit.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            imported.add("." * node.level + (module if node.level else module.split(".")[0]))
    assert {name for name in imported if not name.startswith(".")} <= set(sys.stdlib_module_names) | {"__future__"}
    assert {name for name in imported if name.startswith(".")} <= {"..errors"}


@pytest.mark.parametrize(("raw", "parsed"), [(True, True), (False, False), ("TRUE", True), ("on", True),
                                             ("yes", True), ("1", True), ("Off", False), ("no", False),
                                             ("0", False), ("false", False)])
def test_boolean_takes_toml_booleans_and_the_usual_words(raw: Any, parsed: bool) -> None:
    assert kit.boolean(raw) is parsed


@pytest.mark.parametrize("raw", ["maybe", "", 1, None])
def test_boolean_refuses_anything_else(raw: Any) -> None:
    with pytest.raises(ValueError, match=f"expected true or false, got {raw!r}"):
        kit.boolean(raw)


@pytest.mark.parametrize(("raw", "parsed"), [(1, 1), (5000, 5000), ("12", 12), (" 7 ", 7)])
def test_positive_int_takes_toml_integers_and_digit_strings(raw: Any, parsed: int) -> None:
    assert kit.positive_int(raw) == parsed


@pytest.mark.parametrize("raw", [0, -1, "0", "-3", "x", "", 1.5, True, None])
def test_positive_int_refuses_zero_negatives_fractions_and_booleans(raw: Any) -> None:
    with pytest.raises(ValueError, match="expected a whole number above 0"):
        kit.positive_int(raw)


def test_text_is_a_non_empty_string() -> None:
    assert kit.text("logs") == "logs"
    for raw in ("", 5, None):
        with pytest.raises(ValueError, match="expected a non-empty string"):
            kit.text(raw)


def test_checked_refuses_what_the_test_says_no_to_and_passes_parse_errors_through() -> None:
    above_one = kit.checked(float, lambda number: number > 1, "a number above 1")
    assert above_one("2.5") == 2.5
    with pytest.raises(ValueError, match=r"expected a number above 1, got '0.5'"):
        above_one("0.5")
    with pytest.raises(ValueError, match="could not convert"):
        above_one("x")


def test_query_strings_and_table_values_go_through_the_same_parsers() -> None:
    assert options("count=3&on=yes") == options(count=3, on=True) == {"count": 3, "on": True}
    assert options("count=3", name="n") == {"count": 3, "name": "n"}
    assert options() == {}  # defaults are the plugin's own


def test_a_bad_value_is_one_config_error_naming_the_sink_and_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        options("count=0")
    assert str(caught.value) == "sink 'demo://h/': option 'count': expected a whole number above 0, got '0'"
    with pytest.raises(ConfigError, match=r"option 'name': expected a non-empty string, got ''"):
        options("name=")  # a blank value is given, not left out


def test_an_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        options(cuont=1)
    assert str(caught.value) == "sink 'demo://h/': unknown option 'cuont' (known: count, format, name, on)"


def test_an_option_given_twice_is_an_error_unless_the_table_may_override_it() -> None:
    with pytest.raises(ConfigError, match="option 'count' is given twice in the URL"):
        options("count=1&count=2")
    with pytest.raises(ConfigError, match=r"option 'count' is given both in the URL and in the \[\[sinks\]\] table"):
        options("count=1", count=1)
    assert options("format=raw", format="json") == {"format": "json"}


@pytest.mark.parametrize(("hostlist", "hosts"), [
    ("h", [("h", 4000)]),
    ("h:1", [("h", 1)]),
    ("a:1,b,c:65535", [("a", 1), ("b", 4000), ("c", 65535)]),
    ("[::1]", [("::1", 4000)]),
    ("[::1]:7000,10.0.0.1:7001", [("::1", 7000), ("10.0.0.1", 7001)]),
])
def test_host_lists_take_default_ports_and_bracketed_ipv6(hostlist: str, hosts: list[tuple[str, int]]) -> None:
    assert kit.parse_hosts(SINK, hostlist, 4000, "demo://HOST:PORT") == hosts


@pytest.mark.parametrize(("hostlist", "message"), [
    ("", r"no host given \(use demo://HOST:PORT\)"),
    ("a,,b", r"no host given \(use demo://HOST:PORT\)"),
    (":1", "no host given"),
    ("h:0", "bad port '0'"),
    ("h:65536", "bad port '65536'"),
    ("h:x", "bad port 'x'"),
    ("[::1]:", "bad port ''"),
])
def test_a_bad_host_list_names_what_is_wrong(hostlist: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^sink 'demo://h/': {message}"):
        kit.parse_hosts(SINK, hostlist, 4000, "demo://HOST:PORT")


def test_from_env_reads_the_variable_and_an_unset_one_names_option_and_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_SECRET", "hunter2")
    monkeypatch.setenv("KIT_EMPTY", "")
    monkeypatch.delenv("KIT_UNSET", raising=False)
    assert kit.from_env(SINK, "password_env", "KIT_SECRET") == "hunter2"
    assert kit.from_env(SINK, "password_env", "KIT_EMPTY") == ""
    with pytest.raises(ConfigError) as caught:
        kit.from_env(SINK, "password_env", "KIT_UNSET")
    assert str(caught.value) == ("sink 'demo://h/': option 'password_env': environment variable 'KIT_UNSET'"
                                 " is not set")


def render(template: str, path: str, host: str = "web1") -> bytes:
    return kit.SourceTemplate(template, host).render(path)


@pytest.mark.parametrize(("template", "name"), [
    ("fixed", b"fixed"),
    ("{path}", b"/var/log/nginx/app.log.1"),
    ("{name}", b"app.log.1"),
    ("logs:{stem}", b"logs:app"),
    ("{dir}/{host}", b"nginx/web1"),
    ("logs:{{{stem}}}", b"logs:{app}"),
])
def test_templates_render_the_fields_of_the_source_path(template: str, name: bytes) -> None:
    assert render(template, "/var/log/nginx/app.log.1") == name


@pytest.mark.parametrize(("base", "stem"), [("app.log", "app"), ("app.log-2026", "app"), (".bashrc", "bashrc"),
                                            ("noext", "noext"), ("...", "...")])
def test_the_stem_is_the_name_up_to_its_first_dot(base: str, stem: str) -> None:
    assert kit.SourceTemplate("x", "h").fields(f"/d/{base}")["stem"] == stem


def test_a_path_that_is_not_utf8_renders_to_its_own_bytes() -> None:
    path = os.fsdecode(b"/var/log/caf\xe9.log")
    assert render("{name}", path) == b"caf\xe9.log"


@pytest.mark.parametrize(("template", "message"), [
    ("{nope}", r"unknown field \{nope\} in '\{nope\}' \(known: \{path\}, \{name\}, \{stem\}, \{dir\}, \{host\}\)"),
    ("{name:>9}", r"\{name\} takes no format spec or conversion"),
    ("{name!r}", r"\{name\} takes no format spec or conversion"),
    ("logs{", r"in 'logs\{' \(write \{\{ and \}\} for literal braces\)"),
    ("logs}", r"write \{\{ and \}\} for literal braces"),
])
def test_a_bad_template_fails_when_it_is_made(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kit.SourceTemplate(template, "h")


def test_pieces_and_fixed_describe_the_parsed_template() -> None:
    template = kit.SourceTemplate("a.{stem}.b", "h")
    assert template.pieces == (("a.", "stem"), (".b", None))
    assert not template.fixed
    assert kit.SourceTemplate("a.b", "h").fixed


def test_a_subclass_shapes_each_field_value_but_not_the_literal_text() -> None:
    class Upper(kit.SourceTemplate):
        def field_text(self, value: str) -> str:
            return value.upper()

    assert Upper("logs.{stem}", "h").render("/d/app.log") == b"logs.APP"


def test_renders_are_cached_within_a_bound() -> None:
    template = kit.SourceTemplate("{name}", "h")
    for i in range(kit._CACHE_MAX + 10):
        assert template.render(f"/d/{i}.log") == f"{i}.log".encode()
    assert len(template._cache) <= kit._CACHE_MAX
    assert template.render("/d/0.log") is template.render("/d/0.log")


def test_a_choice_names_what_it_allows():
    assert kit.choice("raw", "json")("json") == "json"
    with pytest.raises(ValueError, match="expected one of 'raw', 'json', got 'xml'"):
        kit.choice("raw", "json")("xml")
