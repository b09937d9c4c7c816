"""The plugin host: built-ins first, entry points one at a time, broken plugins reported by name,
blocking and allow-listing by name, scheme ownership."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import cli, lines, run_engine
from distributions import BROKEN, CLAIMS_FILE, EXTRA_SOURCES, MEMORY_SINK, make_distribution

import logferry
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
    names = [i.name for i in get_plugin_manager().listing() if i.origin == "entry point"]
    assert names == sorted(names)


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
    result = cli("run", str(tmp_path / "x.log"), "--sink", "kafka://host", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "logferry: error: unknown sink scheme 'kafka' in 'kafka://host'; installed schemes: file, null, stdout"
    ]


@pytest.mark.parametrize("url,scheme", [("-", "stdout"), ("out.log", "file"), ("/var/x", "file"),
                                        ("file:/x", "file"), ("REDIS://h:1/0", "redis"), ("null:", "null")])
def test_sink_schemes_are_read_from_the_url(url: str, scheme: str) -> None:
    assert sink_scheme(url) == scheme
