"""``[plugins.NAME]`` tables whose keys a plugin declares, sources a plugin contributes as objects,
and hooks a plugin adds for other plugins (``logferry_addhooks``): through the real command, with
the plugins installed as distributions are (entry points on PYTHONPATH)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli
from distributions import make_distribution

INVENTORY = '''
import logferry
from logferry.settings import BOOL, PATH, STR, choice


class Hooks:
    @logferry.hookspec
    def inventory_fields(path):
        """Fields for one file of the inventory."""


RELAY = []


@logferry.hookimpl
def logferry_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(Hooks)
    RELAY.append(pluginmanager.hook)


@logferry.hookimpl
def logferry_plugin_options():
    return {"inventory": [
        logferry.PluginOption("root", PATH, None, "Where the inventory's logs are."),
        logferry.PluginOption("team", STR, "ops", "The team field of every record."),
        logferry.PluginOption("legacy", BOOL, False, "Read the logs as latin-1."),
        logferry.PluginOption("level", choice("info", "debug"), "info", "Which lines."),
    ]}


class Tag(logferry.Processor):
    def for_source(self, path):
        clone = Tag()
        clone.tally = self.tally
        clone.extra = {}
        for found in RELAY[0].inventory_fields(path=path):
            clone.extra.update(found)
        return clone

    def process(self, records):
        for record in records:
            for name, value in self.extra.items():
                record.set(name, value)
        return records


@logferry.hookimpl
def logferry_processor_types():
    return ["inventory-tag"]


@logferry.hookimpl
def logferry_make_processor(type, options, settings, key):
    return Tag()


@logferry.hookimpl
def logferry_sources(settings):
    table = settings.plugins.get("inventory")
    if table is None:
        return None  # not asked for: contributes nothing
    return [logferry.Source([str(table["root"] / "*.log")], encoding="latin-1" if table["legacy"] else "utf-8",
                            fields={"team": table["team"]},
                            processors=[logferry.ProcessorSpec("inventory-tag", key="[plugins.inventory]")],
                            name="inventory")]
'''

LABELS = '''
import logferry


@logferry.hookimpl
def inventory_fields(path):
    return {"label": path.rsplit("/", 1)[-1].split(".")[0]}
'''


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    lib = tmp_path / "lib"
    make_distribution(lib, "logferry-inventory", "logferry_inventory", INVENTORY, entry_name="inventory")
    make_distribution(lib, "logferry-labels", "logferry_labels", LABELS, entry_name="labels")
    return {"PYTHONPATH": str(lib)}


def write_config(tmp_path: Path, table: str) -> Path:
    (tmp_path / "logs").mkdir(exist_ok=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'{table}\n[output]\nformat = "json"\n[[sinks]]\nurl = "file:{tmp_path / "out.log"}"\n'
                   f'[state]\ndir = "{tmp_path / "state"}"\n')
    return cfg


def test_a_plugin_table_alone_is_a_complete_config_and_its_values_reach_the_plugin(tmp_path: Path,
                                                                                  env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, f'[plugins.inventory]\nroot = "{tmp_path / "logs"}"\nteam = "web"\nlegacy = true\n')
    (tmp_path / "logs" / "api.log").write_bytes("démarré\n".encode("latin-1"))
    checked = cli("config", "check", "-c", str(cfg), env=env)
    assert checked.returncode == 0, checked.stderr
    result = cli("run", "-c", str(cfg), "--once", env=env)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "out.log").read_text().splitlines()]
    # the table's values, the source's encoding and fields, its processor, another plugin's hook
    assert (record["line"], record["team"], record["label"]) == ("démarré", "web", "api")


def test_without_its_table_the_plugin_contributes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, "")
    result = cli("config", "check", "-c", str(cfg), env=env)
    assert result.returncode == 2 and "expected at least one path" in result.stderr, result.stderr


@pytest.mark.parametrize(("table", "message"), [
    ('[plugins.inventory]\nroot = "/x"\ntaem = "web"\n',
     "unknown key 'taem' in [plugins.inventory] (known: root, team, legacy, level)"),
    ('[plugins.inventory]\nroot = "/x"\nlegacy = "yes"\n', "[plugins.inventory] legacy: expected true or false"),
    ('[plugins.inventory]\nroot = "/x"\nlevel = "trace"\n', "[plugins.inventory] level: expected one of"),
    ('[plugins.invetnory]\nroot = "/x"\n', "unknown table [plugins.invetnory]: no loaded plugin declares it"
                                           " (declared: inventory"),  # (and those of the plugins installed)
    ('[plugins]\ninventory = 3\n', "[plugins] must hold one table per plugin"),
])
def test_a_bad_plugin_table_is_an_error_naming_the_file_and_the_key(tmp_path: Path, env: dict[str, str],
                                                                  table: str, message: str) -> None:
    cfg = write_config(tmp_path, table)
    for command in (("config", "check", "-c", str(cfg)), ("run", "-c", str(cfg), "--once"),
                    ("sources", "-c", str(cfg)), ("config", "show", "-c", str(cfg))):
        result = cli(*command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert message in result.stderr and str(cfg) in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr


def test_config_show_prints_the_table_with_its_defaults_and_check_accepts_it(tmp_path: Path,
                                                                           env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, f'[plugins.inventory]\nroot = "{tmp_path / "logs"}"\n')
    shown = cli("config", "show", "-c", str(cfg), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f'[plugins.inventory]\nroot = "{tmp_path / "logs"}"\nteam = "ops"\nlegacy = false\nlevel = "info"\n' \
        in shown.stdout, shown.stdout
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    assert cli("config", "check", "-c", str(again), env=env).returncode == 0


def test_config_reference_lists_the_installed_plugins_tables(tmp_path: Path, env: dict[str, str]) -> None:
    text = cli("config", "reference", env=env).stdout
    assert "### `[plugins.inventory]` (plugin inventory)" in text
    assert "| `team` | string | `\"ops\"` | The team field of every record. |" in text
    assert "[plugins.inventory]" not in cli("config", "reference", "--no-plugins", env=env).stdout


def test_logferry_plugins_lists_the_tables_a_plugin_declares(tmp_path: Path, env: dict[str, str]) -> None:
    listing = json.loads(cli("plugins", "--json", env=env).stdout)
    assert next(p for p in listing if p["name"] == "inventory")["tables"] == ["inventory"]


def test_a_plugin_whose_options_hook_is_malformed_is_failed_not_fatal(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    make_distribution(lib, "logferry-odd", "logferry_odd", '''
import logferry

@logferry.hookimpl
def logferry_plugin_options():
    return {"odd": ["not an option"]}
''', entry_name="odd")
    listing = json.loads(cli("plugins", "--json", env={"PYTHONPATH": str(lib)}).stdout)
    odd = next(p for p in listing if p["name"] == "odd")
    assert odd["status"] == "failed" and "expected logferry.PluginOption objects" in odd["error"]
    (tmp_path / "a.log").write_bytes(b"x\n")
    result = cli("run", str(tmp_path / "a.log"), "--once", "--state-dir", str(tmp_path / "s"),
                 env={"PYTHONPATH": str(lib)})
    assert result.returncode == 0 and result.stdout == "x\n", result.stderr


def test_a_program_embedding_logferry_gives_a_table_in_settings_and_checking_it_twice_changes_nothing(
    plugin_manager,
) -> None:
    import logferry
    from logferry.settings import DURATION, PATH

    class Declares:
        @logferry.hookimpl
        def logferry_plugin_options(self):
            return {"mine": [logferry.PluginOption("root", PATH, Path("/var/log"), "Where."),
                             logferry.PluginOption("wait", DURATION, 5.0, "How long.")]}

    plugin_manager.register(Declares(), name="mine")
    given = logferry.Settings(plugins={"mine": {"wait": "250ms"}})
    checked = plugin_manager.configure(given)
    assert checked.plugins == {"mine": {"root": Path("/var/log"), "wait": 0.25}}
    assert plugin_manager.configure(checked) == checked
    with pytest.raises(logferry.ConfigError, match="unknown key 'wiat' in \\[plugins.mine\\]"):
        plugin_manager.configure(logferry.Settings(plugins={"mine": {"wiat": 1}}))
