"""The ``logferry`` command: a thin argparse shell over :class:`logferry.engine.Engine`.

Exit codes: 0 success; 1 runtime failure; 2 usage or configuration error. Errors are one line on
stderr; ``--debug`` adds tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .configview import effective_sinks, mask_url, reference_markdown, show_toml
from .errors import ConfigError, LogferryError
from .logfmt import LOG_FORMATS, setup_logging
from .plugins import get_plugin_manager
from .settings import Settings, SinkSpec, load_config, parse_duration

if TYPE_CHECKING:
    from .engine import Engine
    from .exporter import EngineCollector

log = logging.getLogger("logferry")

SLOW_CALLBACK = 0.05  # seconds: under --debug, asyncio reports a callback that held the loop longer
STATS_INTERVAL = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logferry",
        description="Follow many growing log files and ship every complete line, in order and at least once.",
    )
    parser.add_argument("--version", action="version", version=f"logferry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="follow files and ship their lines to sinks")
    _add_settings_flags(run)
    run.add_argument("--reset-unreadable-checkpoints", action="store_true",
                     help="if the checkpoint database is unreadable or empty, set it aside as "
                          "checkpoints.db.corrupt-<time> and start without checkpoints (files start by the start "
                          "policy); without it such a database stops the run (exit code 2). A readable one is kept")
    _add_operability_flags(run)
    _add_common(run)
    run.set_defaults(func=cmd_run)

    plugins = commands.add_parser("plugins", help="list the plugins and the sink schemes they serve")
    plugins.add_argument("--json", action="store_true", help="print a JSON list")
    plugins.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")
    _add_logging(plugins)
    plugins.set_defaults(func=cmd_plugins)

    verify = commands.add_parser("verify", help="check that OUTPUT holds every line of each INPUT, once, in order")
    verify.add_argument("output", metavar="OUTPUT")
    verify.add_argument("inputs", nargs="+", metavar="INPUT")
    verify.add_argument("--format", choices=("raw", "json"), default="raw", help="format of OUTPUT")
    _add_logging(verify)
    verify.set_defaults(func=cmd_verify)

    demo = commands.add_parser("demo", help="watch logferry follow live writers, merge and verify (no setup)")
    demo.add_argument("--files", type=int, default=5, metavar="N", help="number of writers and files (default 5)")
    demo.add_argument("--lines", type=int, default=200, metavar="N", help="lines each writer writes (default 200)")
    demo.add_argument("--sink", metavar="URL", help="ship to this sink instead of a merged file in the demo dir")
    demo.add_argument("--keep", action="store_true", help="keep the demo directory")
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)

    config = commands.add_parser("config", help="check a config file, show the effective configuration")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a config file (every key and sink) without running")
    check.add_argument("-c", "--config", required=True, metavar="CONFIG.toml", help="the TOML file to check")
    _add_common(check)
    check.set_defaults(func=cmd_config_check)
    show = actions.add_parser("show", help="print the effective configuration (defaults + file + flags) as TOML")
    _add_settings_flags(show)
    _add_common(show)
    show.set_defaults(func=cmd_config_show)
    reference = actions.add_parser("reference", help="print the configuration reference (Markdown)")
    _add_logging(reference)
    reference.set_defaults(func=cmd_config_reference)
    return parser


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``run`` that set :class:`Settings` (``config show`` takes them too)."""
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="path or glob (** allowed) of files to follow")
    parser.add_argument("-c", "--config", metavar="CONFIG.toml", help="read settings from this TOML file")
    parser.add_argument("--sink", action="append", metavar="URL",
                        help="where lines go (repeatable): file:PATH, PATH, - (stdout), null:, or a plugin's scheme")
    parser.add_argument("--state-dir", metavar="DIR", help="where checkpoints live")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-head", dest="start", action="store_const", const="head",
                       help="files found at the first scan with no checkpoint start at their head (default)")
    start.add_argument("--from-tail", dest="start", action="store_const", const="tail",
                       help="files found at the first scan with no checkpoint start at their end")
    parser.add_argument("--once", action="store_true", default=None,
                        help="read every file to its end, ship, save checkpoints and exit (with stderr on a "
                             "terminal, a progress bar there: bytes shipped of bytes to ship, rate, ETA)")
    parser.add_argument("--exclude", action="append", metavar="PATTERN", help="glob of paths never to follow")
    parser.add_argument("--poll-interval", metavar="SECONDS", type=_duration,
                        help="longest wait before an idle file is checked again")
    parser.add_argument("--no-watch", dest="watch", action="store_false", default=None,
                        help="do not use file-system events as wake-up hints")
    parser.add_argument("--format", choices=("raw", "json"), help="line format of the file and stdout sinks")


def _add_operability_flags(parser: argparse.ArgumentParser) -> None:
    """``run``'s flags that show what it is doing (they are not settings: ``config show`` lacks them)."""
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


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``logferry`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
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
    except Exception as exc:  # a bug: still one line unless --debug
        _report(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", log_format, debug)
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
        value = getattr(args, name)
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
        from .exporter import EngineCollector, start_server

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
    from .status import ProgressBar, StatusReport

    settings = engine.settings
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = SLOW_CALLBACK
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    terminal = sys.stderr.isatty()
    helpers: list[asyncio.Task[None]] = []
    report = bar = None
    if stats_interval is not None:
        logging.getLogger("logferry.stats").setLevel(logging.INFO)  # its reports show at any --log-level
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
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if bar is not None:
            bar.clear()
    if report is not None:
        report.summary()
    lost = engine.losses.by_reason()
    if lost:
        log.warning("bytes lost this run, by reason: %s", ", ".join(f"{k}={v}" for k, v in lost.items()))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    host = _host(args)
    rows = host.listing()
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    table = [("NAME", "VERSION", "ORIGIN", "STATUS", "SCHEMES", "HOOKS")]
    for row in rows:
        status = row.status if not row.error else f"{row.status}: {row.error}"
        table.append((row.name, row.version, row.origin, status, ",".join(row.schemes), ",".join(row.hooks)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import print_report, verify_files

    report = verify_files(args.output, args.inputs, args.format)
    print_report(report)
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

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
    settings = load_config(path)
    host = _host(args)
    patterns = host.sources(settings)
    if not patterns:
        raise ConfigError(f"{path}: [sources] paths: expected at least one path or glob pattern, got none")
    names = []
    for n, spec in enumerate(effective_sinks(settings), 1):
        try:
            sink = host.make_sink(spec.url, spec.options, settings)  # checks the options; start() is never called
        except ConfigError as exc:
            raise ConfigError(f"{path}: [[sinks]] #{n}: {exc}") from None
        names.append(mask_url(sink.describe()))
    print(f"{path}: ok ({_plural(len(patterns), 'path')}, {_plural(len(names), 'sink')}: {', '.join(names)})")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults, the file, the flags) as TOML, secrets masked."""
    settings = load_config(args.config) if args.config else Settings()
    changes = _flag_changes(args, settings)
    changes.pop("once", None)  # not a config key
    sources = ([args.config] if args.config else []) + (["command-line flags"] if changes else [])
    print(show_toml(settings.replace(**changes), sources), end="")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    """Print the configuration reference (``docs/configuration.md``), generated from the schema."""
    print(reference_markdown(), end="")
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
