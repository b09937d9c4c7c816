"""A batch's XADD commands as one RESP payload, built without a Python object per line.

redis-py's pipeline keeps an argument tuple, an options dict and a packed list for every command:
for a 1 MiB batch of short lines that is hundreds of thousands of objects that survive until the
replies arrive, and the garbage collector's full passes over them stop every thread of the process
(logferry's event loop included) for tens of milliseconds. Here each line becomes one ``bytes``
object by ``%``-formatting, which the collector does not track, and the batch one payload.
"""

from __future__ import annotations

import os

from logferry import Batch

ASKING = b"*1\r\n$6\r\nASKING\r\n"
"""Sent before a command to the node named by an ``ASK`` redirection (a slot being migrated)."""


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def xadd_payload(stream: bytes, batch: Batch, maxlen: int | None, asking: bool = False) -> tuple[bytes, int]:
    """``XADD stream [MAXLEN ~ N] * line L path P offset O id I`` for every line of ``batch``.

    Returns the payload and the number of replies it asks for (two per line with ``asking``).
    """
    trim = _bulk(b"MAXLEN") + _bulk(b"~") + _bulk(b"%d" % maxlen) if maxlen else b""
    count = 11 + (3 if maxlen else 0)  # XADD, stream, [MAXLEN ~ N], *, and four field/value pairs
    head = (ASKING if asking else b"") + b"*%d\r\n" % count + _bulk(b"XADD") + _bulk(stream) + trim + _bulk(b"*")
    head += _bulk(b"line")
    path = _bulk(b"path") + _bulk(os.fsencode(batch.path))  # the path's exact bytes, even when not UTF-8
    parts = []
    for offset, line in batch.records():
        number = b"%d" % offset
        line_id = batch.line_id(offset).encode()
        parts.append(b"%s$%d\r\n%s\r\n%s$6\r\noffset\r\n$%d\r\n%s\r\n$2\r\nid\r\n$%d\r\n%s\r\n" % (
            head, len(line), line, path, len(number), number, len(line_id), line_id))
    return b"".join(parts), len(parts) * (2 if asking else 1)
