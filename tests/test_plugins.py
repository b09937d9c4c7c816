"""The plugin host: built-ins first, entry points one at a time, broken plugins reported by name,
blocking and allow-listing by name, scheme ownership."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import logferry
from conftest import cli, lines, run_engine
from distributions import (
    BROKEN,
    CLAIMS_FILE,
    EXTRA_SOURCES,
    MEMORY_SINK,
    MISSPELLED_HOOK,
    NEWER_HOOK,
    SCHEMES_RAISE,
    SOURCES_RAISE,
    make_distribution,
)
from logferry import ConfigError, hookspecs
from logferry.plugins import BUILTIN_PLUGINS, get_plugin_manager, sink_scheme


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of installed distributions on sys.path (and PYTHONPATH for subprocesses)."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("LOGFERRY_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("LOGFERRY_LOAD_PLUGINS", raising=False)
    return root


def by_name(host):
    return {info.name: info for info in host.listing()}


def test_every_hookspec_is_documented() -> None:
    specs = [name for name in dir(hookspecs) if name.startswith("logferry_")]
    assert specs
    for name in specs:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 80, f"{name} needs a docstring: it is the plugin documentation"


def test_builtins_are_registered_and_use_the_public_hooks(site: Path) -> None:
    infos = by_name(get_plugin_manager())
    for name in BUILTIN_PLUGINS:
        assert infos[name].status == "loaded"
        assert infos[name].origin == "built-in"
    assert infos["logferry.sinks.builtin"].schemes == ["file", "null", "stdout"]
    assert "logferry_make_sink" in infos["logferry.sinks.builtin"].hooks


def test_a_broken_plugin_is_reported_by_name_and_the_host_still_works(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "logferry-broken", "broken_plugin", BROKEN)
    infos = by_name(get_plugin_manager())
    assert infos["logferry-broken"].status == "failed"
    assert "broken on purpose" in infos["logferry-broken"].error

    listing = cli("plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["logferry-broken"]["status"] == "failed"
    assert rows["logferry-broken"]["distribution"] == "logferry-broken"

    log = tmp_path / "a.log"
    log.write_bytes(lines("a", 10))
    run = cli("run", str(log), "--once", "--sink", str(tmp_path / "out"), "--state-dir", str(tmp_path / "st"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out").read_bytes() == log.read_bytes()


def test_a_plugin_sink_is_found_through_its_entry_point(site: Path, settings, tmp_path: Path) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK)
    host = get_plugin_manager()
    assert by_name(host)["logferry-memory"].schemes == ["memory"]
    s = settings(sinks=["memory:"], once=True)
    (tmp_path / "in" / "a.log").write_bytes(lines("a", 100))
    run_engine(s, host=host)
    import memory_plugin

    assert b"".join(memory_plugin.RECEIVED) == lines("a", 100)


def test_plugins_are_blocked_by_entry_point_or_distribution_name(site: Path, monkeypatch) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK, entry_name="memory")
    monkeypatch.setenv("LOGFERRY_DISABLE_PLUGINS", "memory")
    assert by_name(get_plugin_manager())["memory"].status == "blocked"
    monkeypatch.setenv("LOGFERRY_DISABLE_PLUGINS", "logferry-memory")
    assert by_name(get_plugin_manager())["memory"].status == "blocked"
    with pytest.raises(ConfigError, match="unknown sink scheme 'memory'"):
        get_plugin_manager().make_sink("memory:", {}, logferry.Settings())


def test_the_allow_list_admits_only_named_plugins(site: Path, monkeypatch) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK)
    make_distribution(site, "logferry-extra", "extra_plugin", EXTRA_SOURCES)
    monkeypatch.setenv("LOGFERRY_LOAD_PLUGINS", "logferry-extra")
    infos = by_name(get_plugin_manager())
    assert infos["logferry-extra"].status == "loaded"
    assert infos["logferry-memory"].status == "blocked"
    assert infos["logferry.sinks.builtin"].status == "loaded"  # built-ins are not third-party
    monkeypatch.setenv("LOGFERRY_LOAD_PLUGINS", "")
    assert by_name(get_plugin_manager())["logferry-extra"].status == "blocked"


def test_entry_points_load_in_a_deterministic_order(site: Path) -> None:
    make_distribution(site, "logferry-zeta", "zeta_plugin", EXTRA_SOURCES)
    make_distribution(site, "logferry-alpha", "alpha_plugin", MEMORY_SINK)
    keys = [(i.distribution, i.name) for i in get_plugin_manager().listing() if i.origin == "entry point"]
    assert keys == sorted(keys)


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "logferry-clash", "clash_plugin", CLAIMS_FILE)
    with pytest.raises(ConfigError, match="claimed by two plugins: logferry.sinks.builtin and logferry-clash"):
        get_plugin_manager().schemes()
    result = cli("run", str(tmp_path / "x.log"), "--once", "--state-dir", str(tmp_path / "st"))
    assert result.returncode == 2
    assert "logferry-clash" in result.stderr and "Traceback" not in result.stderr


def test_source_plugins_contribute_patterns(site: Path, settings, tmp_path: Path) -> None:
    make_distribution(site, "logferry-extra", "extra_plugin", EXTRA_SOURCES)
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "x.log").write_bytes(b"from a plugin\n")
    s = settings(once=True)
    (tmp_path / "in" / "a.log").write_bytes(b"from the command line\n")
    run_engine(s, host=get_plugin_manager())
    assert sorted((tmp_path / "out.log").read_bytes().splitlines()) == [b"from a plugin", b"from the command line"]


def test_unknown_scheme_names_the_installed_schemes(tmp_path: Path) -> None:
    result = cli("run", str(tmp_path / "x.log"), "--sink", "kafka://host", "--state-dir", str(tmp_path / "s"),
                 env={"LOGFERRY_LOAD_PLUGINS": ""})  # only the built-ins, whatever is installed
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "logferry: error: unknown sink scheme 'kafka' in 'kafka://host'; installed schemes: file, null, stdout")


def test_a_scheme_of_a_blocked_plugin_says_the_plugin_is_blocked(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK)
    result = cli("run", str(tmp_path / "x.log"), "--sink", "memory:", "--state-dir", str(tmp_path / "s"),
                 env={"LOGFERRY_DISABLE_PLUGINS": "logferry-memory"})
    assert result.returncode == 2
    assert "blocked plugins" in result.stderr and "logferry-memory" in result.stderr.split("blocked plugins")[1]


@pytest.mark.parametrize("url,scheme", [("-", "stdout"), ("out.log", "file"), ("/var/x", "file"),
                                        ("file:/x", "file"), ("REDIS://h:1/0", "redis"), ("null:", "null")])
def test_sink_schemes_are_read_from_the_url(url: str, scheme: str) -> None:
    assert sink_scheme(url) == scheme


def test_entry_points_load_one_at_a_time_by_distribution_then_name_a_failure_stops_none(site: Path) -> None:
    make_distribution(site, "logferry-c", "c_plugin", EXTRA_SOURCES)
    make_distribution(site, "logferry-b", "b_plugin", BROKEN)
    make_distribution(site, "logferry-a", "a_plugin", MEMORY_SINK, entry_name="zz-memory")
    ours = {"logferry-a", "logferry-b", "logferry-c"}
    rows = [(i.distribution, i.name, i.status) for i in get_plugin_manager().listing() if i.distribution in ours]
    assert rows == [("logferry-a", "zz-memory", "loaded"), ("logferry-b", "logferry-b", "failed"),
                    ("logferry-c", "logferry-c", "loaded")]


def test_plugins_command_shows_name_version_origin_status_schemes_and_hooks(site: Path) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK, version="2.3")
    make_distribution(site, "logferry-broken", "broken_plugin", BROKEN)
    make_distribution(site, "logferry-extra", "extra_plugin", EXTRA_SOURCES)
    result = cli("plugins", env={"LOGFERRY_DISABLE_PLUGINS": "logferry-extra"})
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "ORIGIN", "STATUS", "SCHEMES", "PROCESSORS", "HOOKS"]
    table = {row.split()[0]: row for row in rows}
    assert table["logferry-memory"].split() == ["logferry-memory", "2.3", "entry", "point", "loaded", "memory",
                                                "logferry_make_sink,logferry_sink_schemes"]
    assert "failed: RuntimeError: this plugin is broken on purpose" in table["logferry-broken"]
    assert " blocked " in table["logferry-extra"]
    assert "built-in" in table["logferry.sinks.builtin"] and "file,null,stdout" in table["logferry.sinks.builtin"]

    listing = cli("plugins", "--json", env={"LOGFERRY_DISABLE_PLUGINS": "logferry-extra"})
    rows_json = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows_json["logferry-memory"] == {
        "name": "logferry-memory", "version": "2.3", "origin": "entry point", "distribution": "logferry-memory",
        "status": "loaded", "hooks": ["logferry_make_sink", "logferry_sink_schemes"], "schemes": ["memory"],
        "processors": [], "tables": [], "error": "",
    }
    assert rows_json["logferry-extra"]["status"] == "blocked"


def test_no_plugins_loads_no_installed_plugin_but_the_built_in_sinks_work(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "logferry-memory", "memory_plugin", MEMORY_SINK)
    make_distribution(site, "logferry-broken", "broken_plugin", BROKEN)
    listing = cli("plugins", "--json", "--no-plugins")
    statuses = {(row["origin"], row["name"]): row["status"] for row in json.loads(listing.stdout)}
    assert {("entry point", "logferry-broken"), ("entry point", "logferry-memory")} <= set(statuses)
    assert {status for (origin, _), status in statuses.items() if origin == "entry point"} == {"blocked"}
    assert {status for (origin, _), status in statuses.items() if origin == "built-in"} == {"loaded"}

    log = tmp_path / "a.log"
    log.write_bytes(lines("a", 10))
    state = str(tmp_path / "st")
    unknown = cli("run", str(log), "--once", "--no-plugins", "--sink", "memory:", "--state-dir", state)
    assert unknown.returncode == 2
    assert "unknown sink scheme 'memory'" in unknown.stderr
    run = cli("run", str(log), "--once", "--no-plugins", "--sink", str(tmp_path / "out"), "--state-dir", state)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out").read_bytes() == log.read_bytes()


def test_a_plugin_whose_schemes_hook_raises_is_failed_and_none_of_its_hooks_run(site: Path, settings) -> None:
    make_distribution(site, "logferry-bad-schemes", "bad_schemes_plugin", SCHEMES_RAISE)
    host = get_plugin_manager()
    info = by_name(host)["logferry-bad-schemes"]
    assert info.status == "failed"
    assert info.error == "logferry_sink_schemes raised ValueError: cannot say"
    assert host.pm.get_plugin("logferry-bad-schemes") is None  # its logferry_sources would raise
    assert [p for source in host.sources(settings()) for p in source.paths] == settings().paths


def test_a_misspelled_hook_fails_the_plugin_with_a_clear_error(site: Path) -> None:
    make_distribution(site, "logferry-typo", "typo_plugin", MISSPELLED_HOOK)
    make_distribution(site, "logferry-newer", "newer_plugin", NEWER_HOOK)
    infos = by_name(get_plugin_manager())
    assert infos["logferry-typo"].status == "failed"
    assert "unknown hook logferry_sink_scheme (misspelled?" in infos["logferry-typo"].error
    assert infos["logferry-newer"].status == "loaded"  # optionalhook: a hook of a newer logferry is fine
    assert infos["logferry-newer"].schemes == ["newer"]


def test_a_source_plugin_that_raises_is_named_and_the_run_goes_on(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "logferry-inventory", "inventory_plugin", SOURCES_RAISE)
    log = tmp_path / "a.log"
    log.write_bytes(lines("a", 10))
    run = cli("run", str(log), "--once", "--sink", str(tmp_path / "out"), "--state-dir", str(tmp_path / "st"))
    assert run.returncode == 0, run.stderr
    assert "plugin logferry-inventory failed in logferry_sources (OSError: the inventory service is down)" in run.stderr
    assert (tmp_path / "out").read_bytes() == log.read_bytes()


def test_two_distributions_with_one_entry_point_name_the_second_is_failed_naming_the_first(site: Path) -> None:
    make_distribution(site, "logferry-one", "one_plugin", MEMORY_SINK, entry_name="sink")
    make_distribution(site, "logferry-two", "two_plugin", EXTRA_SOURCES, entry_name="sink")
    rows = [(i.distribution, i.status, i.error) for i in get_plugin_manager().listing() if i.name == "sink"]
    assert rows == [("logferry-one", "loaded", ""),
                    ("logferry-two", "failed", "the plugin name 'sink' is already taken by logferry-one")]
