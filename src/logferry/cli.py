"""The ``logferry`` command: a thin argparse shell over :class:`logferry.engine.Engine`.

Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error. Errors are one line on
stderr; ``--debug`` adds tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .commands.config import effective_sinks, mask_url, reference_markdown, show_toml
from .commands.logs import LOG_FORMATS, setup_logging
from .errors import ConfigError, LogferryError
from .plugins import get_plugin_manager
from .settings import Settings, SinkSpec, default_state_dir, format_duration, load_config, parse_duration

if TYPE_CHECKING:
    from .commands.exporter import EngineCollector
    from .engine import Engine

log = logging.getLogger("logferry")

SLOW_CALLBACK = 0.05  # seconds: under --debug, asyncio reports a callback that held the loop longer
STATS_INTERVAL = 5.0
SLOW_STOP = 3.0  # seconds: a stop still running this long after the signal says what it waits for

_RUN_EPILOG = """\
examples:
  logferry run '/var/log/app/*.log'                      follow; lines go to stdout
  logferry run '/var/log/app/*.log' --sink file:/var/log/merged.log
  logferry run '/var/log/**/*.log' --once --sink 'redis://127.0.0.1:6379/0?stream=logs'
                                                         catch up, save checkpoints, exit
  logferry run -c /etc/logferry/config.toml --stats      settings from a file; report progress
  logferry config show -c /etc/logferry/config.toml      what that run would use, every default filled in

With no --sink (and no [[sinks]] in the file), lines go to stdout. Checkpoints live in
{state_dir} unless --state-dir or [state] dir says otherwise
($XDG_STATE_HOME/logferry, else ~/.local/state/logferry). Every setting: logferry config reference.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where the help is, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"logferry: error: {message.removeprefix('argument ')}; see '{self.prog} --help'\n")

    def flags(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings]

    def commands(self) -> list[_Parser]:
        """This parser and those of its commands, depth first."""
        found = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command in dict.fromkeys(action.choices.values()):
                    found += command.commands()
        return found

    def unrecognized(self, extras: list[str], top: _Parser) -> NoReturn:
        """Fail on arguments no flag of this command took: for each, the command it belongs to
        (``--stats`` given to ``config show``), else the closest flag of this command."""
        import difflib  # only on this error path: every start is faster without it

        owners: dict[str, str] = {}
        for command in top.commands():
            for flag in command.flags():
                owners.setdefault(flag, command.prog)
        named = []
        for extra in extras:
            flag = extra.partition("=")[0]
            close = difflib.get_close_matches(flag, self.flags(), n=1) if extra.startswith("-") else []
            if flag in owners:
                named.append(f"{extra} (a flag of '{owners[flag]}')")
            else:
                named.append(f"{extra} (did you mean {close[0]}?)" if close else extra)
        self.error(f"unrecognized argument{'s' if len(extras) > 1 else ''}: {', '.join(named)}")


def build_parser() -> _Parser:
    parser = _Parser(
        prog="logferry",
        description="Follow many growing log files and ship every complete line, in order and at least once.",
    )
    parser.set_defaults(parser=parser)  # each command sets its own: errors name the command's --help
    parser.add_argument("--version", action="version", version=f"logferry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = _command(commands, "run", help="follow files and ship their lines to sinks",
                   description="Follow files and ship every complete line to the sinks, in order per file, at "
                               "least once; until SIGINT/SIGTERM, or with --once until every file is read.",
                   epilog=_RUN_EPILOG.format(state_dir=default_state_dir()),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_settings_flags(run)
    run.add_argument("--reset-unreadable-checkpoints", action="store_true",
                     help="if the checkpoint database is unreadable or empty, set it aside as "
                          "checkpoints.db.corrupt-<time> and start without checkpoints (files start by the start "
                          "policy); without it such a database stops the run (exit code 2). A readable one is kept")
    _add_operability_flags(run)
    _add_common(run)
    run.set_defaults(func=cmd_run)

    sources = _command(
        commands, "sources", help="what a run with these settings would follow now, from which offset, and what it leaves out",
        description="Show what 'logferry run' with the same settings would follow right now: each file with its "
                    "identity, its log, the saved offset and the bytes not yet shipped; the paths a pattern matched "
                    "that are left out, and why; the patterns that match nothing. Read-only: safe beside a running "
                    "logferry on the same state directory.")
    sources.add_argument("patterns", nargs="*", metavar="PATTERN", help="path or glob, as for run")
    sources.add_argument("-c", "--config", metavar="CONFIG.toml", help="read settings from this TOML file")
    sources.add_argument("--state-dir", metavar="DIR", help="where checkpoints live (read, never written)")
    sources.add_argument("--exclude", action="append", metavar="PATTERN", help="glob of paths never to follow")
    sources.add_argument("--sink", action="append", metavar="URL",
                         help="the run's sinks: a file sink's own output is never followed")
    sources.add_argument("--json", action="store_true", help="print a JSON document")
    sources.add_argument("--debug", action="store_true", help="errors show their traceback")
    _add_logging(sources)
    sources.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")
    sources.set_defaults(func=cmd_sources, start=None, once=None, poll_interval=None, watch=None, format=None)

    plugins = _command(commands, "plugins", help="list the plugins and the sink schemes they serve")
    plugins.add_argument("--json", action="store_true", help="print a JSON list")
    plugins.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")
    _add_logging(plugins)
    plugins.set_defaults(func=cmd_plugins)

    verify = _command(commands, "verify", help="check that OUTPUT holds every line of each INPUT, once, in order",
                      description="Check that OUTPUT holds every line of each INPUT as many times as the INPUT has "
                                  "it, in the INPUT's order (lines of several inputs may interleave). Exit 0 if "
                                  "so; 1 if lines are missing, doubled or out of order (counts per INPUT and the "
                                  "first few lines of each kind, with their byte offsets in the INPUT); 2 if a "
                                  "file cannot be read.")
    verify.add_argument("output", metavar="OUTPUT",
                        help="the file logferry shipped to (a file: sink's path): raw lines, or with --format json "
                             "JSON records whose 'line' is compared")
    verify.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="the log files logferry followed; OUTPUT lines found in no INPUT are counted, "
                             "not an error")
    verify.add_argument("--format", choices=("raw", "json"), default="raw", help="format of OUTPUT")
    _add_logging(verify)
    verify.set_defaults(func=cmd_verify)

    demo = _command(commands, "demo", help="watch logferry follow live writers, merge and verify (no setup)")
    demo.add_argument("--files", type=int, default=5, metavar="N", help="number of writers and files (default 5)")
    demo.add_argument("--lines", type=int, default=200, metavar="N", help="lines each writer writes (default 200)")
    demo.add_argument("--sink", metavar="URL", help="ship to this sink instead of a merged file in the demo dir")
    demo.add_argument("--keep", action="store_true",
                      help="keep the demo directory (its files, merged output and state) instead of deleting it")
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    config = _command(commands, "config", help="check a config file, show the effective configuration")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = _command(actions, "check", help="validate a config file (every key and sink) without running")
    check.add_argument("-c", "--config", required=True, metavar="CONFIG.toml", help="the TOML file to check")
    _add_common(check)
    check.set_defaults(func=cmd_config_check)
    show = _command(actions, "show", help="print the effective configuration (defaults + file + flags) as TOML")
    _add_settings_flags(show)
    _add_common(show)
    show.set_defaults(func=cmd_config_show)
    reference = _command(actions, "reference", help="print the configuration reference (Markdown)")
    _add_logging(reference)
    reference.add_argument("--no-plugins", action="store_true",
                           help="without the [plugins.NAME] tables of installed plugins (docs/configuration.md)")
    reference.set_defaults(func=cmd_config_reference)
    return parser


def _command(commands: Any, name: str, **kwargs: Any) -> _Parser:
    """A (sub)command's parser, which its own errors name (``see 'logferry run --help'``)."""
    parser: _Parser = commands.add_parser(name, **kwargs)
    parser.set_defaults(parser=parser)
    return parser


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``run`` that set :class:`Settings` (``config show`` takes them too)."""
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="path or glob (** allowed) of files to follow")
    parser.add_argument("-c", "--config", metavar="CONFIG.toml", help="read settings from this TOML file")
    parser.add_argument("--sink", action="append", metavar="URL",
                        help="where lines go (repeatable): file:PATH, PATH, - (stdout), null:, or a plugin's scheme "
                             "(see logferry plugins); default: stdout")
    parser.add_argument("--state-dir", metavar="DIR",
                        help=f"where checkpoints live (default: {_escape(default_state_dir())})")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-head", dest="start", action="store_const", const="head",
                       help="files found at the first scan with no checkpoint start at their head (default)")
    start.add_argument("--from-tail", dest="start", action="store_const", const="tail",
                       help="files found at the first scan with no checkpoint start at their end")
    parser.add_argument("--exclude", action="append", metavar="PATTERN", help="glob of paths never to follow")
    parser.add_argument("--poll-interval", metavar="SECONDS", type=_duration,
                        help="longest wait before an idle file is checked again")
    parser.add_argument("--no-watch", dest="watch", action="store_false", default=None,
                        help="do not use file-system events as wake-up hints")
    parser.add_argument("--format", choices=("raw", "json"), help="line format of the file and stdout sinks")


def _add_operability_flags(parser: argparse.ArgumentParser) -> None:
    """``run``'s flags that are not settings (``config show`` lacks them): ``--once`` and what shows progress."""
    parser.add_argument("--once", action="store_true", default=None,
                        help="read every file to its end, ship, save checkpoints and exit (with stderr on a "
                             "terminal, a progress bar there: bytes shipped of bytes to ship, rate, ETA)")
    parser.add_argument("--stats", action="store_true",
                        help="every --stats-interval, report on stderr: files followed, lines/s and MB/s read and "
                             "shipped per sink, sink backlog, retries and errors, age of the oldest unshipped line, "
                             "checkpoint lag, event-loop lag p99; a summary at exit. On a terminal: a table redrawn "
                             "in place; otherwise one log line per report")
    parser.add_argument("--stats-interval", metavar="SECONDS", type=_duration, default=None,
                        help=f"seconds between --stats reports (default {STATS_INTERVAL:g}; implies --stats)")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus metrics (names start with logferry_) at http://HOST:PORT/metrics: "
                             "bytes and lines read, per file for the 100 busiest files; per sink shipped lines, "
                             "bytes, errors, retries and backlog; checkpoint lag; open and followed files; the age "
                             "of the oldest unshipped line; an event-loop lag histogram. :PORT listens on every "
                             "interface. Needs pip install 'logferry[metrics]'")


def _add_common(parser: argparse.ArgumentParser) -> None:
    """``--debug``, the logging flags and ``--no-plugins``."""
    parser.add_argument("--debug", action="store_true",
                        help=f"asyncio debug mode: every callback or task step that holds the event loop over "
                             f"{SLOW_CALLBACK * 1000:g} ms is reported on stderr, one line each (asyncio's "
                             f"'Executing <Task ... coro=<COROUTINE running at FILE:LINE>> took N seconds'); "
                             f"errors show their traceback; the log level defaults to debug")
    _add_logging(parser)
    parser.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")


def _add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                        help="least severe messages to show on stderr (default: warning)")
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="text (default) or json: one JSON object per log line on stderr")


def _escape(value: object) -> str:
    """``value`` for an argparse help string, which is %-formatted."""
    return str(value).replace("%", "%%")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``logferry`` command; returns the exit code."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        args.parser.unrecognized(extras, parser)
    debug = getattr(args, "debug", False)
    log_format = getattr(args, "log_format", "text")
    setup_logging(getattr(args, "log_level", None) or ("debug" if debug else "warning"), log_format)
    try:
        return int(args.func(args) or 0)
    except LogferryError as exc:
        _report(f"error: {exc}", log_format, debug)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `logferry sources | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # as a program killed by SIGPIPE
    except Exception as exc:  # a bug: still one line unless --debug
        hint = "run with --debug for the traceback" if hasattr(args, "debug") else "a bug: please report it"
        _report(f"internal error: {type(exc).__name__}: {exc} ({hint})", log_format, debug)
        return 1


def _report(message: str, log_format: str, debug: bool) -> None:
    """The one line a failed command ends with (in JSON with ``--log-format json``); with ``--debug``
    the traceback of the exception being handled too."""
    if log_format == "json":
        log.error("%s", message, exc_info=debug)
        return
    if debug:
        traceback.print_exc()
    print(f"logferry: {message}", file=sys.stderr)


def _host(args: argparse.Namespace) -> Any:
    return get_plugin_manager(allowed=set() if args.no_plugins else None)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The config file (if any), then every flag that was given on top of it."""
    settings = load_config(args.config) if args.config else Settings()
    return settings.replace(**_flag_changes(args, settings))


def _flag_changes(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The settings the flags in ``args`` change, on top of ``settings`` (from the file)."""
    changes: dict[str, Any] = {}
    if args.patterns:
        changes["paths"] = list(args.patterns)
    if args.sink:
        changes["sinks"] = [SinkSpec(url) for url in args.sink]
    if args.exclude:
        changes["exclude"] = settings.exclude + list(args.exclude)
    for name in ("start", "once", "poll_interval", "watch", "format"):
        value = getattr(args, name, None)  # config show has no --once
        if value is not None:
            changes[name] = value
    if args.state_dir:
        changes["state_dir"] = Path(args.state_dir)
    return changes


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args).replace(reset_unreadable_checkpoints=args.reset_unreadable_checkpoints)
    host = _host(args)  # plugins import before the loop runs
    for info in host.listing():
        if info.status == "failed":
            log.warning("plugin %s failed to load (%s); see logferry plugins", info.name, info.error)
    stats_interval = args.stats_interval if args.stats_interval is not None else STATS_INTERVAL if args.stats else None
    if stats_interval is not None and stats_interval <= 0:
        raise ConfigError("--stats-interval must be more than 0 seconds")
    collector = server = None
    if args.metrics:
        from .commands.exporter import EngineCollector, start_server

        collector = EngineCollector()
        server = start_server(args.metrics, collector)  # before the loop: its thread serves, never the loop
    from .engine import Engine

    engine = Engine(settings, host)  # sink plugins may import their clients here: before the loop runs
    try:
        return asyncio.run(_run(engine, stats_interval, collector), debug=args.debug)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


async def _run(engine: Engine, stats_interval: float | None = None, collector: EngineCollector | None = None) -> int:
    from .commands.status import ProgressBar, StatusReport, log_summary

    settings = engine.settings
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = SLOW_CALLBACK
    stopper = _Stopper(engine)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopper, sig)
    terminal = sys.stderr.isatty()
    helpers: list[asyncio.Task[None]] = []
    report = bar = None
    summary = stats_interval is not None or (settings.once and terminal)  # a one-line summary at exit
    if summary:
        logging.getLogger("logferry.stats").setLevel(logging.INFO)  # its reports show at any --log-level
    if stats_interval is not None:
        report = StatusReport(engine, sys.stderr, live=terminal)
        helpers.append(asyncio.create_task(report.run(stats_interval)))
    elif settings.once and terminal:
        bar = ProgressBar(engine, sys.stderr)
        helpers.append(asyncio.create_task(bar.run()))
    if collector is not None:
        helpers.append(asyncio.create_task(collector.refresh(engine)))
    try:
        await engine.run()
    finally:
        stopper.done()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if bar is not None:
            bar.clear()
    lost = engine.losses.by_reason()
    if summary:
        log_summary(engine)  # it names the bytes lost too
    elif lost:
        log.warning("bytes lost this run, by reason: %s", ", ".join(f"{k}={v}" for k, v in lost.items()))
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from .commands.sources import print_human, print_json, survey_sources

    view = survey_sources(settings_from_args(args), _host(args))
    (print_json if args.json else print_human)(view)
    return 0


class _Stopper:
    """What SIGINT and SIGTERM do: the first stops the engine (the sinks get ``shutdown_timeout`` to
    acknowledge what is in flight) and says so at once if anything is in flight, or after
    :data:`SLOW_STOP` if the stop is still waiting; the second stops without waiting."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.signals = 0
        self._later: asyncio.TimerHandle | None = None

    def __call__(self, sig: int) -> None:
        self.signals += 1
        self.engine.stop()  # a second call forces the stop
        if self.signals == 1 and not self._say_what_it_waits_for(sig, only_if_in_flight=True):
            self._later = asyncio.get_running_loop().call_later(SLOW_STOP, self._say_what_it_waits_for, sig)
        elif self.signals > 1:
            self.done()

    def done(self) -> None:
        """The run ended: nothing more to say."""
        if self._later is not None:
            self._later.cancel()
            self._later = None

    def _say_what_it_waits_for(self, sig: int, only_if_in_flight: bool = False) -> bool:
        stats = self.engine.stats()
        inflight = stats["inflight_bytes"]
        if only_if_in_flight and not inflight:
            return False
        again = "press Ctrl-C again" if sig == signal.SIGINT else "send SIGTERM again"
        timeout = format_duration(self.engine.settings.shutdown_timeout)
        if inflight:
            from .commands.status import human_bytes

            waiting = [mask_url(name) for name, sink in stats["sinks"].items() if sink["backlog_bytes"]]
            log.warning("stopping: waiting up to %s for %s to acknowledge %s; %s to stop now (unacknowledged "
                        "lines are read again next run)", timeout, " and ".join(waiting or ["the sinks"]),
                        human_bytes(inflight), again)
        else:
            log.warning("stopping: waiting up to %s for the sinks to finish; %s to stop now", timeout, again)
        return True


def cmd_plugins(args: argparse.Namespace) -> int:
    host = _host(args)
    rows = host.listing()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    table = [("NAME", "VERSION", "ORIGIN", "STATUS", "SCHEMES", "PROCESSORS", "HOOKS")]
    for row in rows:
        status = row.status if not row.error else f"{row.status}: {row.error}"
        table.append((row.name, row.version, row.origin, status, ",".join(row.schemes), ",".join(row.processors),
                      ",".join(row.hooks)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .commands.verify import print_report, verify_files

    report = verify_files(args.output, args.inputs, args.format)
    print_report(report)
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .commands.demo import run_demo

    if args.files < 1 or args.lines < 1:
        raise ConfigError("--files and --lines must be at least 1")
    host = _host(args)

    async def demo() -> int:
        asyncio.get_running_loop().slow_callback_duration = SLOW_CALLBACK  # the --debug threshold
        return await run_demo(args.files, args.lines, args.sink, args.keep, host)

    return asyncio.run(demo(), debug=args.debug)


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a config file as a run would (every key, every sink through its plugin, some paths)
    without starting anything; one ``FILE: ok (…)`` line, or a ConfigError naming the file."""
    path = args.config
    host = _host(args)
    settings = host.configure(load_config(path))
    patterns = [pattern for source in host.sources(settings) for pattern in source.paths]
    if not patterns:
        raise ConfigError(f"{path}: [sources] paths: expected at least one path or glob pattern, got none"
                          " (or a [[sources.files]] table, or a plugin's table that contributes files)")
    names = []
    for n, spec in enumerate(effective_sinks(settings), 1):
        try:
            sink = host.make_sink(spec.url, spec.options, settings)  # checks the options; start() is never called
        except ConfigError as exc:
            raise ConfigError(f"{path}: [[sinks]] #{n}: {exc}") from None
        names.append(mask_url(sink.describe()))
        if spec.match is not None:
            from .processors.routing import compile_route  # RE2 is imported by configs that use it only

            compile_route(spec.key, spec.match)
    for processor in [*settings.processors, *(spec for source in settings.files for spec in source.processors)]:
        host.make_processor(processor, settings)
    shaped = f", {_plural(len(settings.processors), 'processor')}" if settings.processors else ""
    print(f"{path}: ok ({_plural(len(patterns), 'path')}, {_plural(len(names), 'sink')}: {', '.join(names)}{shaped})")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults, the file, the flags) as TOML, secrets masked;
    each sink with its defaults, as its plugin reports them (the sink is made, never started)."""
    settings = load_config(args.config) if args.config else Settings()
    changes = _flag_changes(args, settings)
    sources = ([args.config] if args.config else []) + (["command-line flags"] if changes else [])
    host = _host(args)
    settings = host.configure(settings.replace(**changes))
    sink_options, notes = [], []
    for n, spec in enumerate(effective_sinks(settings), 1):
        try:
            sink_options.append(host.make_sink(spec.url, spec.options, settings).options())
        except ConfigError:  # show the rest; the reason is config check's (a plugin's message may hold secrets)
            sink_options.append({})
            notes.append(f"[[sinks]] #{n} is not valid (logferry config check says why): shown as given, "
                         "without its defaults")
    declared = {table: options for table, (_, options) in host.plugin_options().items()}
    print(show_toml(settings, sources, sink_options, notes, declared), end="")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    """Print the configuration reference (``docs/configuration.md``), generated from the schema."""
    print(reference_markdown(_host(args).plugin_options()), end="")
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
