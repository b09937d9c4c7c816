"""``logferry verify``: does OUTPUT hold every line of each INPUT, as often as the input, in order?

The seed's ``confirm_merge`` made general: output lines are attributed to the input that contains
them (a line found in several inputs goes to the first that still lacks it), then, per input,
lines beyond the input's own count are duplicates, lines never seen are missing, and lines out of
order are counted as the fewest that would have to move (length minus longest increasing run).
Lines are compared without their newline; an input's unterminated last line counts as a line.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import Counter
from dataclasses import dataclass, field

from .errors import LogferryError


@dataclass
class InputReport:
    path: str
    expected: int = 0
    received: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_order: int = 0

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
        self.order: list[int] = []
        self.duplicated = 0

    def wants(self, line: bytes | str) -> bool:
        return self.seen[line] < len(self.positions[line])

    def take(self, line: bytes | str) -> None:
        k = self.seen[line]
        self.seen[line] += 1
        if k < len(self.positions[line]):
            self.order.append(self.positions[line][k])
        else:
            self.duplicated += 1


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def read_lines(path: str, fmt: str = "raw") -> list[bytes | str]:
    with open(path, "rb") as f:
        data = f.read()
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
    """Compare ``output`` (raw lines, or JSON records with a ``line`` field) with ``inputs``."""
    report = Report(output)
    expected: list[_Expected] = []
    owners: dict[bytes | str, list[int]] = {}
    for i, path in enumerate(inputs):
        with open(path, "rb") as f:
            lines: list[bytes | str] = list(_lines(f.read()))
        if fmt == "json":  # JSON records carry text: compare with the input decoded the same way
            lines = [line.decode("utf-8", "replace") for line in lines if isinstance(line, bytes)]
        expected.append(_Expected(lines))
        report.inputs.append(InputReport(path, expected=len(lines)))
        for line in expected[-1].positions:
            owners.setdefault(line, []).append(i)
    out_lines = read_lines(output, fmt) if os.path.exists(output) else []
    report.output_lines = len(out_lines)
    for line in out_lines:
        candidates = owners.get(line)
        if not candidates:
            report.foreign += 1
            continue
        owner = next((i for i in candidates if expected[i].wants(line)), candidates[0])
        expected[owner].take(line)
    for exp, rep in zip(expected, report.inputs):
        rep.received = len(exp.order) + exp.duplicated
        rep.duplicated = exp.duplicated
        rep.missing = rep.expected - len(exp.order)
        rep.out_of_order = len(exp.order) - _longest_increasing(exp.order)
    return report


def _longest_increasing(seq: list[int]) -> int:
    tails: list[int] = []
    for x in seq:
        i = bisect.bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(tails)


def print_report(report: Report) -> None:
    print(f"{report.output}: {_count(report.output_lines, 'line')}" +
          (f" ({report.foreign} from no given input)" if report.foreign else ""))
    for r in report.inputs:
        if r.ok:
            print(f"  ok    {r.path}: {_count(r.expected, 'line')}, each once, in order")
        else:
            print(f"  FAIL  {r.path}: {_count(r.expected, 'line')}: {r.missing} missing, {r.duplicated} duplicated, "
                  f"{r.out_of_order} out of order")
    bad = [r for r in report.inputs if not r.ok]
    if bad:
        print(f"verify: FAILED for {len(bad)} of {len(report.inputs)} inputs")
    else:
        total = sum(r.expected for r in report.inputs)
        print(f"verify: ok: all {_count(total, 'line')} of {_count(len(report.inputs), 'input')} arrived once, "
              "in order per input")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
