"""Real stack traces through the multiline presets: a JVM's (tests/data/traces/Traces.java, run here
when ``java`` is on PATH, and its output captured once in java.log), this interpreter's own tracebacks
(made at test time) and Go panics (captured once in go.log from panics.go; see the README there).

Each trace must come out as exactly one record holding its text, every ordinary log line as a record
of its own, in file order, each record's offset and id its first line's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli

DATA = Path(__file__).parent / "data" / "traces"

JAVA_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
PYTHON_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
GO_LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
# Where a trace begins right after another one (no log line between them), given the line and the one
# before it: a JVM's at any unindented line but a cause's; a traceback at its first line unless a
# blank line before it says it is chained to the one before.
Head = Callable[[str, str], bool]


def java_head(before: str, line: str) -> bool:
    return re.match(r"[\t ]|Caused by: ", line) is None


def python_head(before: str, line: str) -> bool:
    return before != "" and re.match(r"Traceback \(most recent call last\):$|  \+ Exception Group Traceback ",
                                     line) is not None


def ship(tmp_path: Path, log: Path, preset: str | None, name: str) -> list[dict]:
    """``log`` shipped by ``logferry run --once`` as JSON records, through the preset (None: no processor)."""
    work = tmp_path / name
    work.mkdir()
    processors = f'[[processors]]\ntype = "multiline"\npreset = "{preset}"\n' if preset else ""
    config = work / "logferry.toml"
    config.write_text(f'[sources]\npaths = ["{log}"]\n[state]\ndir = "{work / "state"}"\n{processors}'
                      f'[[sinks]]\nurl = "file:{work / "out.json"}"\nformat = "json"\n')
    result = cli("run", "-c", str(config), "--once", timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in (work / "out.json").read_text().splitlines()]


def events(log: Path, ordinary: re.Pattern[str], head: Head | None = None) -> list[tuple[int, str]]:
    """What the file should ship as: (offset, text) of each ordinary line, and of each run of the lines
    between them (each trace), split further where ``head`` says a trace begins."""
    out: list[tuple[int, str]] = []
    in_trace = False
    offset, before = 0, ""
    for raw in log.read_bytes().splitlines(keepends=True):
        line = raw.decode().removesuffix("\n")
        if ordinary.match(line):
            out.append((offset, line))
            in_trace = False
        elif in_trace and not (head and head(before, line)):
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        else:
            out.append((offset, line))
            in_trace = True
        offset, before = offset + len(raw), line
    return out


def assert_each_trace_is_one_record(tmp_path: Path, log: Path, preset: str, ordinary: re.Pattern[str],
                                    traces: int, head: Head | None = None) -> None:
    expected = events(log, ordinary, head)
    assert sum(1 for _, text in expected if not ordinary.match(text)) == traces  # the test's own reading
    records = ship(tmp_path, log, preset, "multiline")
    assert [(r["offset"], r["line"]) for r in records] == expected
    ids = {r["offset"]: r["id"] for r in ship(tmp_path, log, None, "lines")}  # each line's id, unjoined
    assert [r["id"] for r in records] == [ids[offset] for offset, _ in expected]


# -- Java -------------------------------------------------------------------------------

JAVA_TRACES = 7  # single, three causes deep, suppressed, no message, circular, two uncaught


def test_java_traces_captured_from_a_real_jvm_are_one_record_each(tmp_path: Path) -> None:
    assert_each_trace_is_one_record(tmp_path, DATA / "java.log", "java", JAVA_LOG_LINE, JAVA_TRACES, java_head)


@pytest.mark.skipif(shutil.which("java") is None, reason="no JDK: java.log holds this program's captured output")
def test_java_traces_from_the_jvm_here_are_one_record_each(tmp_path: Path) -> None:
    log = tmp_path / "java.log"
    with open(log, "wb") as out:
        ran = subprocess.run(["java", str(DATA / "Traces.java")], stdout=out, stderr=subprocess.PIPE,
                             cwd=tmp_path, timeout=180, check=False)
    assert ran.returncode == 1, ran.stderr  # it ends with an uncaught exception
    assert_each_trace_is_one_record(tmp_path, log, "java", JAVA_LOG_LINE, JAVA_TRACES, java_head)


# -- CPython ------------------------------------------------------------------------------

PROLOGUE = """\
import logging, sys
logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
                    level=logging.INFO)
log = logging.getLogger("app")
log.info("starting %s", __file__)
"""

# name: (the program after PROLOGUE, how many tracebacks it prints). Each ends with an uncaught one
# (printed by the interpreter itself) or after logging.exception's (printed by the traceback module).
PYTHON_PROGRAMS = {
    "plain": ("""
def lookup(table, key):
    return table[key]

def handle(request):
    return lookup({"a": 1}, request["key"])

log.info("handling a request")
handle({"key": "missing"})
""", 1),
    "during_handling": ("""
def parse(text):
    try:
        return int(text)
    except ValueError:
        return {"default": 0}[text]

parse("eighty")
""", 1),
    "direct_cause": ("""
class ConfigError(Exception):
    pass

def read(path):
    try:
        open(path)
    except OSError as e:
        raise ConfigError(f"cannot read {path}") from e

def load():
    try:
        read("/nonexistent/app.toml")
    except ConfigError:
        log.warning("no config, trying the default")
        raise RuntimeError("no usable configuration")

load()
""", 1),
    "carets": ("""
totals = {"sum": 10, "count": 0}
log.info("computing the ratio")
ratio = totals["sum"] / totals["count"] + 1
""", 1),
    "dotted": ("""
import json
log.info("parsing the payload")
json.loads('{"a": 1,}')
""", 1),
    "logging_exception": ("""
import json

class Rejected(Exception):
    pass

def handle(item):
    if item == 1:
        return 1 / 0
    if item == 3:
        try:
            json.loads("nope")
        except json.JSONDecodeError as e:
            raise Rejected(f"item {item}") from e
    if item == 4:
        try:
            {}["missing"]
        except KeyError:
            int("four")
    return item

for item in range(6):
    try:
        handle(item)
        log.info("item %d done", item)
    except Exception:
        log.exception("item %d failed", item)
log.info("all items seen")
""", 3),
    "syntax_error": ("""
log.info("compiling the rules")
compile("rule = (1,\\n", "rules.py", "exec")
""", 1),
    "recursion": ("""
def walk(node):
    return walk(node)

log.info("walking the tree")
walk(0)
""", 1),
    "exception_group": ("""
def check(values):
    errors = [ValueError(f"bad value {v}") for v in values if v < 0]
    errors.append(ExceptionGroup("nested", [TypeError("not a number"), KeyError("k")]))
    raise ExceptionGroup("validation failed", errors)

try:
    check([1, -2, -3])
except ExceptionGroup:
    log.exception("validation failed")
log.info("validating again")
try:
    check([-4])
except* ValueError:
    log.exception("bad values")  # the ValueErrors; the rest of the group, uncaught, right after them
""", 3),
    "chain_through_a_group": ("""
def run():
    try:
        raise ValueError("first")
    except ValueError:
        raise ExceptionGroup("while recovering", [OSError("disk"), ExceptionGroup("inner", [KeyError("k")])])

try:
    run()
except ExceptionGroup as e:
    raise RuntimeError("giving up") from e
""", 1),
}


@pytest.fixture(scope="module")
def python_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each program's stderr, one after the other, from this very interpreter."""
    work = tmp_path_factory.mktemp("python")
    log = work / "python.log"
    with open(log, "wb") as out:
        for name, (body, _) in PYTHON_PROGRAMS.items():
            program = work / f"{name}.py"
            program.write_text(PROLOGUE + body)
            subprocess.run([sys.executable, str(program)], stderr=out, stdout=subprocess.DEVNULL, cwd=work,
                           timeout=60, check=False)  # most end with an uncaught exception
    return log


def test_python_tracebacks_are_one_record_each_whole_chains_included(tmp_path: Path, python_log: Path) -> None:
    traces = sum(n for _, n in PYTHON_PROGRAMS.values())
    assert_each_trace_is_one_record(tmp_path, python_log, "python", PYTHON_LOG_LINE, traces, python_head)


def test_the_python_log_holds_the_shapes_this_test_is_about(python_log: Path) -> None:
    text = python_log.read_text()
    for shape in ("During handling of the above exception, another exception occurred:",
                  "The above exception was the direct cause of the following exception:",
                  "json.decoder.JSONDecodeError: ", "^^^^", "  + Exception Group Traceback",
                  "SyntaxError: ", "more times]"):
        assert shape in text, shape


# -- Go -------------------------------------------------------------------------------------

GO_PANICS = 6  # plain, nil pointer (SIGSEGV), re-panic [recovered], several goroutines, stack overflow, deadlock


def test_go_panics_captured_from_real_programs_are_one_record_each(tmp_path: Path) -> None:
    assert_each_trace_is_one_record(tmp_path, DATA / "go.log", "go", GO_LOG_LINE, GO_PANICS)


# -- no ordinary line joins a trace ----------------------------------------------------------

# Log lines of common shapes, some mentioning an exception or a panic; each follows every trace above
# directly. (A blank line is no log line: the Python and Go presets take one after a trace in, as it
# may begin a chained traceback or the next goroutine.)
ORDINARY = [
    "2024-05-01T12:00:00.000Z INFO  request done",
    "2024-05-01 12:00:00,000 WARN app: upstream said Error: timeout",
    "INFO:root:request done",
    "[2024-05-01 12:00:00] production.ERROR: RuntimeException: nope",
    '{"level":"error","msg":"java.lang.IllegalStateException: boom"}',
    'level=error msg="panic: boom" caller=main.go:12',
    "E0501 12:00:00.000000    1 main.go:12] lookup failed",
    "Done.",
]


def traces_of(log: Path, ordinary: re.Pattern[str], head: Head | None = None) -> list[str]:
    return [text for _, text in events(log, ordinary, head) if not ordinary.match(text)]


def test_no_ordinary_line_joins_a_trace_it_follows(tmp_path: Path, python_log: Path) -> None:
    for preset, traces in [("java", traces_of(DATA / "java.log", JAVA_LOG_LINE, java_head)),
                           ("python", traces_of(python_log, PYTHON_LOG_LINE, python_head)),
                           ("go", traces_of(DATA / "go.log", GO_LOG_LINE))]:
        expected = [text for trace in traces for line in ORDINARY for text in (trace, line)]
        log = tmp_path / f"{preset}.log"
        log.write_text("".join(text + "\n" for text in expected))
        assert [r["line"] for r in ship(tmp_path, log, preset, preset)] == expected, preset
