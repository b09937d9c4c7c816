"""RESP on the wire: a batch's XADD commands as one payload, and their replies counted in bulk.

Commands: redis-py's pipeline keeps an argument tuple, an options dict and a packed list for every
command; for a 1 MiB batch of short lines that is hundreds of thousands of objects that survive
until the replies arrive, and the garbage collector's full passes over them stop every thread of
the process (logferry's event loop included) for tens of milliseconds. Here a run of lines becomes
one ``bytes`` by a single ``%`` over a template repeated once per line: CPython copies the literal
parts with ``memcpy`` and no object is made per line (beyond :meth:`logferry.Batch.split`'s).

Replies: hiredis parses whatever bytes have arrived in one C call per reply, and only a batch
that holds an error reply costs Python code per reply.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os

import hiredis
from logferry import Batch, json_object
from logferry.formats import iso_ts
from redis import exceptions as rex

ASKING = b"*1\r\n$6\r\nASKING\r\n"
"""Sent before a command to the node named by an ``ASK`` redirection (a slot being migrated)."""

RUN_LINES = 1024
"""Lines formatted by one ``%``: the template repeated this often is ~250 KiB at 100-byte lines."""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _literal(value: bytes) -> bytes:
    """``value`` as literal text of a ``%`` template."""
    return value.replace(b"%", b"%%")


def xadd_payload(stream: bytes, batch: Batch, maxlen: int | None, asking: bool = False) -> tuple[bytes, int]:
    """``XADD stream [MAXLEN ~ N] * line L path P offset O id I`` for every line of ``batch`` (for
    records processors made, then ``ts`` and their fields: see :func:`_xadd_records`).

    Returns the payload and the number of replies it asks for (two per line with ``asking``).
    """
    if batch.events is not None:
        return _xadd_records(stream, batch, maxlen, asking)
    offsets, lines = batch.split()
    parts = []
    start = 0
    while start < len(offsets):
        # The lengths of the offset and of the id are the same for every offset of as many digits.
        digits = len(b"%d" % offsets[start])
        end = bisect.bisect_left(offsets, 10 ** digits, start)
        line = _template(stream, batch.path, batch.file_id, maxlen, asking, digits)
        for first in range(start, end, RUN_LINES):
            last = min(first + RUN_LINES, end)
            run, at = lines[first:last], offsets[first:last]
            parts.append(line * len(run) % tuple(itertools.chain.from_iterable(zip(map(len, run), run, at, at))))
        start = end
    return b"".join(parts), len(lines) * (2 if asking else 1)


def _xadd_records(stream: bytes, batch: Batch, maxlen: int | None, asking: bool) -> tuple[bytes, int]:
    """:func:`xadd_payload` of records (``batch.events``), a command at a time: after ``line`` (a
    multiline event's lines joined by ``\\n``, one value), ``path``, ``offset`` and ``id``, a
    ``ts`` (ISO 8601, as logferry's JSON records write it) when the record has its own time, then
    each field: text as its UTF-8 bytes (those of the file, for text parsed out of invalid UTF-8),
    anything else as JSON."""
    words = 11 + (3 if maxlen else 0)  # as in _template, before ts and the fields
    ident = batch.file_id.encode()
    # A command's template: its word count, the line's length and bytes, the offset's length and
    # digits, the id's length and offset, then a length and a value for each extra word.
    fixed = (_literal((ASKING if asking else b"") + b"*") + b"%d\r\n" + _literal(_xadd_start(stream, maxlen))
             + b"$4\r\nline\r\n$%d\r\n%s\r\n" + _literal(_bulk(b"path") + _bulk(os.fsencode(batch.path)))
             + b"$6\r\noffset\r\n$%d\r\n%d\r\n$2\r\nid\r\n$%d\r\n" + _literal(ident) + b":%d\r\n")
    templates: dict[int, bytes] = {}  # by the number of extra words
    commands = []
    for record in batch.events or ():
        extra: list[bytes] = []
        if record.ts is not None:
            extra += [b"ts", iso_ts(record.ts).encode()]
        if record.fields:
            for name, value in record.fields.items():
                extra += [_text(name), _text(value) if isinstance(value, str) else json_object(value)]
        template = templates.get(len(extra))
        if template is None:
            template = templates[len(extra)] = fixed + b"$%d\r\n%s\r\n" * len(extra)
        line, digits = _text(record.line), len(b"%d" % record.offset)
        commands.append(template % (words + len(extra), len(line), line, digits, record.offset,
                                    len(ident) + 1 + digits, record.offset,
                                    *itertools.chain.from_iterable(zip(map(len, extra), extra))))
    return b"".join(commands), len(commands) * (2 if asking else 1)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _xadd_start(stream: bytes, maxlen: int | None) -> bytes:
    """``XADD stream [MAXLEN ~ N] *``: every command's first words (after its ``*COUNT`` header)."""
    trim = _bulk(b"MAXLEN") + _bulk(b"~") + _bulk(b"%d" % maxlen) if maxlen else b""
    return _bulk(b"XADD") + _bulk(stream) + trim + _bulk(b"*")


@functools.lru_cache(maxsize=1024)  # the same few files, batch after batch
def _template(stream: bytes, path: str, file_id: str, maxlen: int | None, asking: bool, digits: int) -> bytes:
    """One line's command as a ``%`` template of its length, its bytes and its offset (twice: the
    field, and the id's tail), for offsets of ``digits`` digits."""
    count = 11 + (3 if maxlen else 0)  # XADD, stream, [MAXLEN ~ N], *, and four field/value pairs
    head = (ASKING if asking else b"") + b"*%d\r\n" % count + _xadd_start(stream, maxlen)
    fields = _bulk(b"path") + _bulk(os.fsencode(path))  # the path's exact bytes, even when not UTF-8
    ident = file_id.encode()
    return (_literal(head + _bulk(b"line")) + b"$%d\r\n%s\r\n" + _literal(fields) + b"$6\r\noffset\r\n"
            + b"$%d\r\n%%d\r\n$2\r\nid\r\n$%d\r\n%s:%%d\r\n" % (digits, len(ident) + 1 + digits, _literal(ident)))


_INCOMPLETE = object()  # what hiredis returns while a reply is still partly on its way


class Replies:
    """The replies to a pipeline of commands sent as consecutive groups (one group a batch).

    Feed it the reply bytes as they arrive; it counts the replies and keeps each group's first
    error reply (``-WRONGTYPE …``, ``-MOVED …``) as a :class:`redis.exceptions.ResponseError`
    carrying the server's whole message.
    """

    def __init__(self, counts: list[int]) -> None:
        self._reader = hiredis.Reader(protocolError=rex.InvalidResponse, replyError=rex.ResponseError,
                                      notEnoughData=_INCOMPLETE)
        self._ends = list(itertools.accumulate(counts))
        self.expected = self._ends[-1] if self._ends else 0
        self.received = 0
        self.errors: list[rex.ResponseError | None] = [None] * len(counts)
        """The first error reply of each group, or None."""

    @property
    def complete(self) -> bool:
        return self.received == self.expected

    def feed(self, data: bytes) -> None:
        """Take the next bytes from the connection; raise InvalidResponse if they are not RESP, or
        hold more replies than were asked for or one that answers neither XADD nor ASKING (the
        connection is then out of step)."""
        self._reader.feed(data)
        replies = list(iter(self._reader.gets, _INCOMPLETE))
        if len(replies) > self.expected - self.received:
            raise rex.InvalidResponse(f"{len(replies) - (self.expected - self.received)} replies more than"
                                      f" the {self.expected} commands sent")
        if not all(map(bytes.__instancecheck__, replies)):  # entry ids and OK are bytes; errors are not
            self._note_errors(replies)
        self.received += len(replies)

    def _note_errors(self, replies: list[object]) -> None:
        for index, reply in enumerate(replies, self.received):
            if isinstance(reply, rex.ResponseError):
                group = bisect.bisect_right(self._ends, index)
                if self.errors[group] is None:
                    self.errors[group] = reply
            elif not isinstance(reply, bytes):  # not an answer to XADD or ASKING: out of step
                raise rex.InvalidResponse(f"unexpected reply {reply!r:.100} to command {index + 1}")
