"""What a processor is: the class plugins subclass, and what each one counts."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..records.record import Record


@dataclass
class Tally:
    """What one ``[[processors]]`` table did since the start, over every file it shaped."""

    records_in: int = 0
    records_out: int = 0
    dropped: int = 0
    """Records it removed on purpose (drop/keep): counted as delivered."""
    unparsed: int = 0
    """Records it could not parse and passed on unchanged."""
    last_error: str = ""
    """Why the last unparsed record was not parsed."""
    joined: int = 0
    """Lines it joined into the record before them (multiline)."""
    flushed: int = 0
    """Records it released because their file went quiet (``timeout``) or ended."""
    cut: int = 0
    """Events it ended early at ``max_lines``/``max_bytes`` (the rest starts a record of its own)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Unparsed records by reason."""
    failures: int = 0
    """Batches on which it raised an exception: their records went on as it was given them."""
    last_failure: str = ""

    def unparsable(self, reason: str) -> None:
        self.unparsed += 1
        self.last_error = reason
        self.errors[reason] = self.errors.get(reason, 0) + 1


class Processor:
    """Shapes the records of one file, in order: one object per ``[[processors]]`` table.

    Subclass it and return an instance from :func:`~logferry.hookspecs.logferry_make_processor`.
    :meth:`process` gets each batch of a file's records in file order and returns what goes on (it
    may change, drop, add fields to or join records). It runs on logferry's processing thread,
    never on the event loop, so it may use CPU but must not block on I/O. A processor that keeps
    state between batches (multiline) returns a fresh copy of itself from :meth:`for_source`, and
    says in :meth:`held` what it holds back: the checkpoint of the file never passes that line.
    """

    type = ""
    """The ``type`` of its table (set by logferry when it makes it)."""
    timeout: float | None = None
    """Seconds after a file's last line at which what it holds is released (:meth:`flush`); None:
    it never holds anything."""

    def __init__(self) -> None:
        self.tally = Tally()

    def for_source(self, path: str) -> Processor:
        """The processor for one file (``path`` as first seen): a copy of this one sharing its
        :attr:`tally` for a processor with state; ``self`` for one without (the default).

        It is called on the event loop, when a batch of a file arrives that nothing is held for
        (a file that holds nothing is not remembered between batches): keep it cheap, and leave
        work that takes time (I/O, a lookup) to the first :meth:`process` call."""
        if type(self).held is Processor.held:
            return self
        clone = copy.copy(self)
        clone.reset()
        return clone

    def reset(self) -> None:
        """Forget the per-file state (called on the copies :meth:`for_source` makes)."""

    def process(self, records: list[Record]) -> Sequence[Record]:
        """What goes on of ``records``, the next records of one file (never empty), in order.

        Keep each record's ``offset`` (its id): a record made of several joins them and has the
        first one's. Count what it removed in ``self.tally.dropped`` and what it could not parse
        with ``self.tally.unparsable(reason)``."""
        raise NotImplementedError

    def flush(self) -> Sequence[Record]:
        """Release what is held back: its file went quiet for :attr:`timeout` or ended."""
        return ()

    def held(self) -> int | None:
        """The ``offset`` of the first line held back (not yet returned by :meth:`process`), or
        None when nothing is. Its file's checkpoint stays before it until it is released."""
        return None

    def describe(self) -> str:
        """How ``logferry`` names it in logs and stats."""
        return self.type or type(self).__name__
