"""``logferry verify``: does OUTPUT hold every line of each INPUT, as often as the input, in order?

The seed's ``confirm_merge`` made general: output lines are attributed to the input that contains
them (a line found in several inputs goes to the first that still lacks it), then, per input,
lines beyond the input's own count are duplicates, lines never seen are missing, and lines out of
order are counted as the fewest that would have to move (length minus longest increasing run).
Lines are compared without their newline; an input's unterminated last line counts as a line.
The first few lines of each kind are kept as examples, with their byte offsets in the input.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

from ..errors import ConfigError, LogferryError

EXAMPLES = 3  # lines of each kind shown per input
SHOWN_CHARS = 60  # a longer line is shown cut, ending in "…"


@dataclass
class Example:
    """A line that is missing, doubled or out of order."""

    offset: int
    """Its byte offset in the input."""
    line: bytes | str
    output_line: int | None = None
    """Where it is in OUTPUT (1-based): the extra copy, or the misplaced line; None when missing."""


@dataclass
class InputReport:
    path: str
    expected: int = 0
    received: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    missing_examples: list[Example] = field(default_factory=list)
    duplicated_examples: list[Example] = field(default_factory=list)
    out_of_order_examples: list[Example] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.out_of_order)


@dataclass
class Report:
    output: str
    output_lines: int = 0
    foreign: int = 0  # output lines found in no input (not an error)
    inputs: list[InputReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.inputs)


class _Expected:
    """One input's lines: where each occurrence of each line is, and how many arrived so far."""

    def __init__(self, lines: list[bytes | str]) -> None:
        self.positions: dict[bytes | str, list[int]] = {}
        for n, line in enumerate(lines):
            self.positions.setdefault(line, []).append(n)
        self.seen: Counter[bytes | str] = Counter()
        self.order: list[int] = []  # input position of each line taken, in output order
        self.at: list[int] = []  # and its output index
        self.duplicated = 0
        self.duplicates: list[tuple[int, int]] = []  # (input position, output index): the first few

    def wants(self, line: bytes | str) -> bool:
        return self.seen[line] < len(self.positions[line])

    def take(self, line: bytes | str, out_index: int) -> None:
        k = self.seen[line]
        self.seen[line] += 1
        if k < len(self.positions[line]):
            self.order.append(self.positions[line][k])
            self.at.append(out_index)
        else:
            self.duplicated += 1
            if len(self.duplicates) < EXAMPLES:
                self.duplicates.append((self.positions[line][0], out_index))


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _read(path: str, role: str) -> bytes:
    """The bytes of ``path``; a file that cannot be read is a one-line error (exit code 2)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"{role} {path}: no such file") from None
    except IsADirectoryError:
        fix = f"give its files, e.g. {path.rstrip('/')}/*.log" if role == "INPUT" else "give the file shipped to"
        raise ConfigError(f"{role} {path} is a directory: {fix}") from None
    except OSError as exc:
        raise ConfigError(f"{role} {path}: cannot read it: {exc.strerror}") from None


def read_lines(path: str, fmt: str = "raw") -> list[bytes | str]:
    """The lines of OUTPUT ``path``: raw, or the ``line`` field of each JSON record."""
    data = _read(path, "OUTPUT")
    if fmt == "raw":
        return list(_lines(data))
    records = []
    for n, line in enumerate(_lines(data), 1):
        try:
            records.append(json.loads(line)["line"])
        except (ValueError, KeyError, TypeError):
            raise LogferryError(f"{path}: line {n} is not a JSON record with a 'line' field") from None
    return records


def verify_files(output: str, inputs: list[str], fmt: str = "raw") -> Report:
    """Compare ``output`` (raw lines, or JSON records with a ``line`` field) with ``inputs``.

    A file that cannot be read (missing, a directory) raises :class:`~logferry.ConfigError`.
    """
    report = Report(output)
    expected: list[_Expected] = []
    raw_inputs: list[list[bytes]] = []
    owners: dict[bytes | str, list[int]] = {}
    for i, path in enumerate(inputs):
        raw = _lines(_read(path, "INPUT"))
        raw_inputs.append(raw)
        lines: list[bytes | str] = list(raw)
        if fmt == "json":  # JSON records carry text: compare with the input decoded the same way
            lines = [line.decode("utf-8", "replace") for line in raw]
        expected.append(_Expected(lines))
        report.inputs.append(InputReport(path, expected=len(lines)))
        for line in expected[-1].positions:
            owners.setdefault(line, []).append(i)
    out_lines = read_lines(output, fmt)
    report.output_lines = len(out_lines)
    for n, line in enumerate(out_lines):
        candidates = owners.get(line)
        if not candidates:
            report.foreign += 1
            continue
        owner = next((i for i in candidates if expected[i].wants(line)), candidates[0])
        expected[owner].take(line, n)
    for exp, rep, raw in zip(expected, report.inputs, raw_inputs):
        rep.received = len(exp.order) + exp.duplicated
        rep.duplicated = exp.duplicated
        rep.missing = rep.expected - len(exp.order)
        rep.out_of_order = len(exp.order) - _longest_increasing(exp.order)
        _add_examples(rep, exp, raw)
    return report


def _add_examples(rep: InputReport, exp: _Expected, raw: list[bytes]) -> None:
    """The first few missing, doubled and misplaced lines of one input (only computed for a failure)."""
    found: list[tuple[list[Example], int, int | None]] = []  # (where, input position, output index)
    if rep.missing:
        taken = bytearray(rep.expected)
        for position in exp.order:
            taken[position] = 1
        start = 0
        for _ in range(min(EXAMPLES, rep.missing)):
            start = taken.index(0, start) + 1
            found.append((rep.missing_examples, start - 1, None))
    found += [(rep.duplicated_examples, position, at) for position, at in exp.duplicates]
    if rep.out_of_order:
        found += [(rep.out_of_order_examples, exp.order[i], exp.at[i]) for i in _misplaced(exp.order, EXAMPLES)]
    if not found:
        return
    last = max(position for _, position, _ in found)
    offsets = [0, *itertools.accumulate(len(line) + 1 for line in itertools.islice(raw, last))]
    for where, position, at in found:
        where.append(Example(offsets[position], raw[position], None if at is None else at + 1))


def _longest_increasing(seq: list[int]) -> int:
    tails: list[int] = []
    for x in seq:
        i = bisect.bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(tails)


def _misplaced(seq: list[int], limit: int) -> list[int]:
    """Indices (the first ``limit``) of the elements of ``seq`` outside one longest increasing
    subsequence: the fewest that would have to move for ``seq`` to be in order."""
    tails: list[int] = []
    tail_at: list[int] = []  # index in seq of each tail
    parent = [-1] * len(seq)
    for i, x in enumerate(seq):
        k = bisect.bisect_left(tails, x)
        if k:
            parent[i] = tail_at[k - 1]
        if k == len(tails):
            tails.append(x)
            tail_at.append(i)
        else:
            tails[k] = x
            tail_at[k] = i
    kept = bytearray(len(seq))
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        kept[i] = 1
        i = parent[i]
    found: list[int] = []
    start = 0
    while len(found) < limit and (start := kept.find(0, start)) >= 0:
        found.append(start)
        start += 1
    return found


def print_report(report: Report) -> None:
    print(f"{report.output}: {_count(report.output_lines, 'line')}" +
          (f" ({report.foreign} from no given input)" if report.foreign else ""))
    for r in report.inputs:
        if r.ok:
            print(f"  ok    {r.path}: {_count(r.expected, 'line')}, each once, in order")
        else:
            print(f"  FAIL  {r.path}: {_count(r.expected, 'line')}: {r.missing} missing, {r.duplicated} duplicated, "
                  f"{r.out_of_order} out of order")
            for kind, count, examples in (("missing", r.missing, r.missing_examples),
                                          ("duplicated", r.duplicated, r.duplicated_examples),
                                          ("out of order", r.out_of_order, r.out_of_order_examples)):
                for example in examples:
                    print(f"          {kind:<12}  {_example(example, kind)}")
                if count > len(examples):
                    print(f"          {kind:<12}  … and {count - len(examples)} more")
    bad = [r for r in report.inputs if not r.ok]
    if bad:
        print(f"verify: FAILED for {len(bad)} of {len(report.inputs)} inputs")
    else:
        total = sum(r.expected for r in report.inputs)
        print(f"verify: ok: all {_count(total, 'line')} of {_count(len(report.inputs), 'input')} arrived once, "
              "in order per input")


def _example(example: Example, kind: str) -> str:
    line = example.line.decode("utf-8", "replace") if isinstance(example.line, bytes) else example.line
    shown = repr(line if len(line) <= SHOWN_CHARS else line[:SHOWN_CHARS - 1] + "…")
    where = {"missing": "", "duplicated": f" (again at OUTPUT line {example.output_line})",
             "out of order": f" (at OUTPUT line {example.output_line})"}[kind]
    return f"input offset {example.offset}: {shown}{where}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
