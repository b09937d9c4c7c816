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
from typing import Any

from . import __version__
from .errors import ConfigError, LogferryError
from .plugins import get_plugin_manager
from .settings import Settings, SinkSpec, load_config, parse_duration

log = logging.getLogger("logferry")

SLOW_CALLBACK = 0.05


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logferry",
        description="Follow many growing log files and ship every complete line, in order and at least once.",
    )
    parser.add_argument("--version", action="version", version=f"logferry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="follow files and ship their lines to sinks")
    run.add_argument("patterns", nargs="*", metavar="PATTERN", help="path or glob (** allowed) of files to follow")
    run.add_argument("-c", "--config", metavar="CONFIG.toml", help="read settings from this TOML file")
    run.add_argument("--sink", action="append", metavar="URL",
                     help="where lines go (repeatable): file:PATH, PATH, - (stdout), null:, or a plugin's scheme")
    run.add_argument("--state-dir", metavar="DIR", help="where checkpoints live")
    start = run.add_mutually_exclusive_group()
    start.add_argument("--from-head", dest="start", action="store_const", const="head",
                       help="files found at the first scan with no checkpoint start at their head (default)")
    start.add_argument("--from-tail", dest="start", action="store_const", const="tail",
                       help="files found at the first scan with no checkpoint start at their end")
    run.add_argument("--once", action="store_true", default=None,
                     help="read every file to its end, ship, save checkpoints and exit")
    run.add_argument("--exclude", action="append", metavar="PATTERN", help="glob of paths never to follow")
    run.add_argument("--poll-interval", metavar="SECONDS", type=_duration,
                     help="longest wait before an idle file is checked again")
    run.add_argument("--no-watch", dest="watch", action="store_false", default=None,
                     help="do not use file-system events as wake-up hints")
    run.add_argument("--format", choices=("raw", "json"), help="line format of the file and stdout sinks")
    _add_common(run)
    run.set_defaults(func=cmd_run)

    plugins = commands.add_parser("plugins", help="list the plugins and the sink schemes they serve")
    plugins.add_argument("--json", action="store_true", help="print a JSON list")
    plugins.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")
    plugins.set_defaults(func=cmd_plugins)

    verify = commands.add_parser("verify", help="check that OUTPUT holds every line of each INPUT, once, in order")
    verify.add_argument("output", metavar="OUTPUT")
    verify.add_argument("inputs", nargs="+", metavar="INPUT")
    verify.add_argument("--format", choices=("raw", "json"), default="raw", help="format of OUTPUT")
    verify.set_defaults(func=cmd_verify)

    demo = commands.add_parser("demo", help="watch logferry follow live writers, merge and verify (no setup)")
    demo.add_argument("--files", type=int, default=5, metavar="N", help="number of writers and files (default 5)")
    demo.add_argument("--lines", type=int, default=200, metavar="N", help="lines each writer writes (default 200)")
    demo.add_argument("--sink", metavar="URL", help="ship to this sink instead of a merged file in the demo dir")
    demo.add_argument("--keep", action="store_true", help="keep the demo directory")
    _add_common(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="asyncio debug mode: report loop-blocking callbacks; show tracebacks")
    parser.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                        help="least severe messages to show on stderr (default: warning)")
    parser.add_argument("--no-plugins", action="store_true", help="load no installed (third-party) plugin")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    _setup_logging(getattr(args, "log_level", None) or ("debug" if debug else "warning"))
    try:
        return int(args.func(args) or 0)
    except LogferryError as exc:
        if debug:
            traceback.print_exc()
        print(f"logferry: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"logferry: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("logferry: %(levelname)s: %(message)s"))
    root = logging.getLogger("logferry")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("asyncio").addHandler(handler)


def _host(args: argparse.Namespace) -> Any:
    return get_plugin_manager(allowed=set() if args.no_plugins else None)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The config file (if any), then every flag that was given on top of it."""
    settings = load_config(args.config) if args.config else Settings()
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
        from pathlib import Path

        changes["state_dir"] = Path(args.state_dir)
    return settings.replace(**changes)


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    return asyncio.run(_run(settings, args), debug=args.debug)


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from .engine import Engine

    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = SLOW_CALLBACK
    engine = Engine(settings, _host(args))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    await engine.run()
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
    return asyncio.run(run_demo(args.files, args.lines, args.sink, args.keep, _host(args)), debug=args.debug)
