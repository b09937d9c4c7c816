"""NATS on the wire: a batch's lines as one run of ``HPUB`` commands, built without Python code per line.

Each line is one message: ``HPUB SUBJECT REPLY HDRLEN TOTAL`` with the headers ``Nats-Msg-Id``
(the line's id, JetStream's deduplication key), ``Logferry-Path`` and ``Logferry-Offset``, then
the payload (the line's bytes, or its JSON record). As in the redis plugin's wire module, a run of
lines becomes one ``bytes`` by a single ``%`` over a template repeated once per line: the header
block's length only depends on how many digits the offset has, so one template serves every offset
of as many digits, and only the lengths, offsets and payloads vary.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

from logferry import Batch, encode_json

RUN_LINES = 1024
"""Messages formatted by one ``%`` (and written at once): ~170 KiB at 100-byte lines."""

# Printable ASCII but "%": kept as is in Logferry-Path; anything else is percent-encoded, so the
# header is one line of ASCII whatever bytes the path holds.
_PATH_SAFE = bytes(c for c in range(0x20, 0x7F) if c != ord("%"))


class TooLarge(ValueError):
    """A message larger than the server's ``max_payload`` (which would cost the connection)."""

    def __init__(self, batch: Batch, offset: int, size: int, limit: int) -> None:
        super().__init__(f"the line at offset {offset} of {batch.path} makes a message of {size:,} bytes, more than"
                         f" the server's max_payload of {limit:,}: raise max_payload in nats-server's"
                         f" configuration, or lower logferry's [sources] max_line_bytes")
        self.batch, self.offset, self.size, self.limit = batch, offset, size, limit


def path_header(path: str) -> bytes:
    """The ``Logferry-Path`` value: the path's bytes, percent-encoded where not printable ASCII
    (and ``%`` itself): ``urllib.parse.unquote_to_bytes`` gives the exact bytes back."""
    return quote_from_bytes(os.fsencode(path), safe=_PATH_SAFE).encode()


def _literal(value: bytes) -> bytes:
    """``value`` as literal text of a ``%`` template."""
    return value.replace(b"%", b"%%")


def messages(subject: bytes, reply: bytes, batch: Batch, json: bool, max_payload: int,
             first: int = RUN_LINES) -> Iterator[tuple[bytes, int]]:
    """The ``HPUB`` commands for every line of ``batch``, as ``(bytes, number of messages)`` runs of
    at most RUN_LINES messages (the first run: at most ``first``). Raises :class:`TooLarge` before
    yielding anything if one message would exceed ``max_payload``."""
    offsets, payloads = batch.split()
    if json:
        payloads = encode_json(batch).split(b"\n")  # a record holds no raw newline: JSON escapes it
        payloads.pop()
    ident, path = batch.file_id.encode(), path_header(batch.path)
    head = b"NATS/1.0\r\nNats-Msg-Id: %s:\r\nLogferry-Path: %s\r\nLogferry-Offset: \r\n\r\n" % (ident, path)
    if payloads:
        _check_size(batch, offsets, payloads, len(head) + 2 * len(b"%d" % offsets[-1]), max_payload)
    start, limit = 0, first
    while start < len(offsets):
        digits = len(b"%d" % offsets[start])
        end = bisect.bisect_left(offsets, 10 ** digits, start)
        headers = len(head) + 2 * digits
        template = (_literal(b"HPUB %s %s %d " % (subject, reply, headers)) + b"%d\r\n"
                    + _literal(b"NATS/1.0\r\nNats-Msg-Id: " + ident + b":") + b"%d"
                    + _literal(b"\r\nLogferry-Path: " + path + b"\r\nLogferry-Offset: ") + b"%d\r\n\r\n%s\r\n")
        while start < end:
            last = min(start + limit, end)
            run, at = payloads[start:last], offsets[start:last]
            totals = map(headers.__add__, map(len, run))
            yield template * len(run) % tuple(itertools.chain.from_iterable(zip(totals, at, at, run))), len(run)
            start, limit = last, RUN_LINES


def _check_size(batch: Batch, offsets: list[int], payloads: list[bytes], headers: int, limit: int) -> None:
    if max(map(len, payloads)) + headers <= limit:
        return
    index = next(i for i, payload in enumerate(payloads) if len(payload) + headers > limit)
    raise TooLarge(batch, offsets[index], len(payloads[index]) + headers, limit)

