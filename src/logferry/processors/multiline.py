"""Multiline: the lines of one event (a stack trace, a wrapped message) joined into one record.

Events are recognised by a small state machine, as Fluent Bit's multiline parsers do: a line
matching a rule of the start state begins an event and moves to that rule's state; while an event
is open, a line matching a rule of the current state joins it (and moves on); any other line ends
it and is looked at afresh. The open event is held back until a line that cannot join it arrives,
its file is quiet for ``timeout``, or the file ends; its file's checkpoint stays before its first
line meanwhile (see :meth:`Processor.held`), so a crash assembles it again whole.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..records.record import Record
from .base import Processor
from .options import PATTERN, choice, duration, parse, positive_int, size
from .patterns import Pattern, compile_pattern

START = "start"
# A state whose name starts with "?" is tentative: the lines that lead to it (a blank line after a
# traceback, which a chained one may follow) join the event only if a line after them does too;
# otherwise they go on as lines of their own.
EXCEPTION_LINE = r"^(?:[^\s.():]+\.)*[^\s.():]+(?::|$)"  # KeyError / json.decoder.JSONDecodeError: …
PY_TRACEBACK = r"^Traceback \(most recent call last\):$"
PY_GROUP = r"^  \+ Exception Group Traceback \(most recent call last\):$"  # a top-level ExceptionGroup's
# An indented line (a frame, its source, carets, a group's lines) but "  + ...": a new ExceptionGroup's
# first line, printed right after another traceback (RE2 has no lookahead).
PY_INDENTED = r"^(?:\t| [^ ]|  [^ +]|   |  \+[^ ])"

MAX_LINES = 1100
"""An event's most lines by default: a JVM prints at most 1024 frames of a trace (a StackOverflowError)."""

PRESETS: dict[str, dict[str, list[tuple[str, str]]]] = {
    # A JVM's stack trace: the exception's line, its frames, causes, suppressed and "... N more".
    "java": {
        START: [(r"(?:Exception|Error|Throwable)(?::|$)", "frames"),
                # the default handler's uncaught one, whatever its class is called (Traces$Fatal: ...)
                (r'^Exception in thread ".*" \S', "frames")],
        "frames": [
            (r"^[\t ]+(?:eval )?at ", "frames"),
            (r"^[\t ]*(?:Caused by|Suppressed):", "frames"),
            (r"^[\t ]*\.\.\. \d+ (?:more|common frames omitted)$", "frames"),
            (r"^[\t ]*nested exception is:", "frames"),
            (r"^[\t ]+--- End of inner exception stack trace ---$", "frames"),
            (r"^--- End of stack trace from previous location", "frames"),
        ],
    },
    # A CPython traceback, chained ones ("During handling of the above exception...") and
    # ExceptionGroups (each line indented, the last "+-----...") included.
    "python": {
        START: [(PY_TRACEBACK, "frames"), (PY_GROUP, "frames")],
        "frames": [(r"^[\t ]+\+-+$", "grouped"), (PY_INDENTED, "frames"), (EXCEPTION_LINE, "raised")],
        "grouped": [(r"^[\t ]+\+-+$", "grouped"), (PY_INDENTED, "frames"), (r"^$", "?gap")],
        "raised": [(r"^$", "?gap")],
        "?gap": [((r"^(?:During handling of the above exception, another exception occurred|"
                  r"The above exception was the direct cause of the following exception):$"), "chained")],
        "chained": [(r"^$", "next")],
        "next": [(PY_TRACEBACK, "frames"), (PY_GROUP, "frames")],
    },
    # A Go panic (or fatal error: the runtime's own lines may come first, its stack may too) and the
    # goroutine dump after it.
    "go": {
        START: [(r"^(?:panic|fatal error): ", "head"), (r"^runtime: ", "runtime")],
        "runtime": [(r"^runtime: ", "runtime"), (r"^fatal error: ", "head")],
        "head": [(r"^[\t ]+panic: ", "head"), (r"^\[signal ", "head"), (r"^$", "?blank")],
        "?blank": [(r"^goroutine \d+ \[[^\]]*\]:$", "frames"), (r"^runtime stack:$", "frames")],
        "frames": [(r"^[\t ]", "frames"), (r"^created by ", "frames"), (r"^\S+\(.*\)$", "frames"),
                   (r"^\.\.\.additional frames elided\.\.\.$", "frames"), (r"^$", "?blank")],
    },
}


@dataclass(frozen=True, slots=True)
class Rule:
    """A line matching ``pattern`` (or not matching it, with ``negate``; any line when None) goes to ``next``."""

    pattern: Pattern | None
    next: str
    negate: bool = False

    @property
    def tentative(self) -> bool:
        return self.next.startswith("?")

    def matches(self, line: str) -> bool:
        if self.pattern is None:
            return True
        return self.pattern.found(line) is not self.negate

    def matching(self, lines: list[str]) -> set[int] | None:
        """The indices of ``lines`` this rule takes, found in one pass (None: all of them)."""
        if self.pattern is None:
            return None
        hits = set(self.pattern.lines(lines))
        return set(range(len(lines))) - hits if self.negate else hits


class Multiline(Processor):
    """Joins each event's lines into one record: its ``line`` the lines joined by ``"\\n"``, its
    ``offset`` (so its id), fields and time the first line's."""

    def __init__(self, states: dict[str, list[Rule]], max_lines: int, max_bytes: int, timeout: float) -> None:
        super().__init__()
        self.states, self.max_lines, self.max_bytes, self.timeout = states, max_lines, max_bytes, timeout
        self.reset()

    def reset(self) -> None:
        self._event: list[Record] = []
        self._size = 0
        self._state = START
        self._maybe = 0  # the event's last lines that joined it only tentatively

    def held(self) -> int | None:
        return self._event[0].offset if self._event else None

    def process(self, records: list[Record]) -> Sequence[Record]:
        out: list[Record] = []
        lines = [record.line for record in records]
        # Which lines would begin an event, found for the whole batch at once (one pass per start
        # rule); the lines between events then go on in bulk, and only an event's lines one by one.
        begins: dict[int, Rule] = {}
        anyone: Rule | None = None
        for first in self.states[START]:
            hits = first.matching(lines)
            if hits is None:
                anyone = first
                break
            for i in hits:
                begins.setdefault(i, first)
        firsts = sorted(begins)
        i, n = 0, len(records)
        while i < n:
            if self._event:
                line = lines[i]
                joins = next((r for r in self.states[self._state] if r.matches(line)), None)
                if joins is None:
                    out.extend(self._ended())  # this line is not part of it: looked at afresh
                    continue
                if len(self._event) >= self.max_lines or self._size + len(line) >= self.max_bytes:
                    self.tally.cut += 1  # too long: what follows starts an event of its own, in the same state
                    out.append(self._joined())
                self._event.append(records[i])
                self._size += len(line) + 1
                self._state = joins.next
                self._maybe = self._maybe + 1 if joins.tentative else 0
                i += 1
                continue
            starts = anyone or begins.get(i)
            if starts is None:  # up to the next line that begins an event, each line is a record of its own
                j = firsts[bisect.bisect_left(firsts, i)] if firsts and firsts[-1] > i else n
                out.extend(records[i:j])
                i = j
                continue
            self._event, self._size, self._state = [records[i]], len(lines[i]) + 1, starts.next
            i += 1
        return out

    def flush(self) -> Sequence[Record]:
        if not self._event:
            return ()
        self.tally.flushed += 1
        out = self._ended()
        return [*out, *self.flush()]  # the tentative lines may have begun an event of their own

    def _ended(self) -> list[Record]:
        """The open event, ended: without the lines that joined it only tentatively, which are
        looked at afresh after it."""
        maybe = self._maybe
        if not maybe:
            return [self._joined()]
        leftover = self._event[-maybe:]
        del self._event[-maybe:]
        return [self._joined(), *self.process(leftover)]

    def _joined(self) -> Record:
        event, self._event, self._size, self._state, self._maybe = self._event, [], 0, START, 0
        if len(event) == 1:
            return event[0]
        self.tally.joined += len(event) - 1
        first = event[0]
        return Record(first.offset, "\n".join([r.line for r in event]), first.fields, first.ts)


def make_multiline(key: str, options: dict[str, Any], max_bytes: int) -> Multiline:
    """A multiline processor from its table's options (``key`` names the table in errors)."""
    given = parse(key, options, {"preset": choice(*PRESETS), "start": PATTERN, "continue": PATTERN,
                                 "max_lines": positive_int, "max_bytes": size, "timeout": duration})
    preset, start, joins = given.get("preset"), given.get("start"), given.get("continue")
    if preset is not None:
        if start is not None or joins is not None:
            raise ConfigError(f"{key}: give preset, or start/continue, not both")
        states = {state: [Rule(compile_pattern(f"{key} preset", p), nxt) for p, nxt in rules]
                  for state, rules in PRESETS[preset].items()}
    elif start is None and joins is None:
        raise ConfigError(f"{key}: needs preset ({', '.join(PRESETS)}), or start and/or continue patterns")
    else:
        states = {START: [Rule(start, "event")],
                  # with start alone, every line up to the next start joins the event
                  "event": [Rule(joins, "event")] if joins is not None else [Rule(start, "event", negate=True)]}
    return Multiline(states, max(2, given.get("max_lines", MAX_LINES)), given.get("max_bytes", max_bytes),
                     given.get("timeout", 2.0))
