"""How lines are written by the sinks that write lines: raw bytes, or one JSON record a line.

:func:`json_body` is the machinery behind ``--format json`` and the HTTP plugin's bodies: it turns
whole batches into JSON records without Python code per line (a few C-level passes over the batch's
bytes, then one ``%`` format of the whole body), several times faster than formatting each line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from itertools import accumulate, chain, repeat, tee
from json.encoder import encode_basestring  # the C encoder when available; keeps non-ASCII as is

from .batch import Batch
from .times import iso_ts

FORMATS = ("raw", "json")

_ESCAPES = {  # what encode_basestring escapes; the backslash first, since the others add backslashes
    b"\\": b"\\\\", b'"': b'\\"', b"\t": b"\\t", b"\r": b"\\r", b"\b": b"\\b", b"\f": b"\\f",
    **{bytes([c]): b"\\u%04x" % c for c in range(32) if c not in b"\t\n\r\b\f"},
}
_ESCAPED = b"".join(_ESCAPES)


def encode(batch: Batch, fmt: str) -> bytes | memoryview:
    """The bytes a line-writing sink writes for ``batch``."""
    if fmt == "raw":
        return batch.data  # whole chunks of complete lines: no per-line work
    return encode_json(batch)


def encode_json(batch: Batch) -> bytes:
    """One JSON object per line: ``ts``, ``path``, ``offset``, ``id`` and ``line``.

    ``line`` is the line without its newline, decoded as UTF-8 with invalid bytes replaced (U+FFFD);
    NUL and control characters are escaped. ``id`` is ``Batch.line_id``: the same on every
    re-delivery, from any state directory.
    """
    if batch.events is not None:  # records with fields: one at a time (orjson is imported by runs that make them)
        from .objects import event_objects, json_object

        return b"".join([json_object(obj) + b"\n" for obj in event_objects(batch)])
    head = f'{{"ts":"{iso_ts(batch.read_at)}","path":{encode_basestring(batch.path)},"id":"{batch.file_id}:'
    return json_body([JsonRecords(batch, (head, '","offset":', ',"line":"', '"}\n'))])


@dataclass(frozen=True, slots=True)
class JsonRecords:
    """The lines of ``batch`` as JSON records, one per line, for :func:`json_body`.

    Each record is ``pieces[0] N pieces[1] N … pieces[-2] TEXT pieces[-1]``: literal text (JSON the
    caller has escaped, e.g. with ``json.encoder.encode_basestring``) around ``len(pieces) - 2``
    numbers and the line's text. ``N`` is the line's offset in the file, or ``count_from + i`` for
    line ``i`` when ``count_from`` is given. ``TEXT`` is the line without its newline, decoded as
    UTF-8 with invalid bytes replaced by U+FFFD and escaped as the inside of a JSON string (as
    ``encode_basestring`` does: non-ASCII kept, ``\\u00XX`` for control characters), so the last
    pieces around it usually end and start with ``"``. Records are joined by ``sep``.
    """

    batch: Batch
    pieces: Sequence[str]
    count_from: int | None = None
    sep: str = ""


def json_body(parts: Iterable[bytes | JsonRecords]) -> bytes:
    """Literal ``bytes`` and batches' :class:`JsonRecords`, concatenated in order, UTF-8."""
    return b"".join(json_chunks(parts))


def json_chunks(parts: Iterable[bytes | JsonRecords]) -> list[bytes]:
    """:func:`json_body` as consecutive chunks, for writers that take several buffers (``writelines``,
    an HTTP body written a chunk at a time): no buffer of the body's size is ever made. Each chunk
    holds whole records of one batch, or one literal.

    CPU work proportional to the bytes, not to Python code per line: a few passes over each piece
    of a batch (:data:`PIECE_BYTES` of lines): ``bytes.replace`` for each character JSON escapes
    that it holds (usually none, or only quotes), one that turns each newline into the text between
    two records, and one ``%`` format that writes every number.
    """
    chunks: list[bytes] = []
    for part in parts:
        if isinstance(part, JsonRecords):
            _add_records(part, chunks)
        elif part:
            chunks.append(part)
    return chunks


PIECE_BYTES = 32 * 1024
"""Lines formatted at once. Each buffer of a piece stays small enough for malloc to reuse it: fresh
pages for megabyte-sized buffers cost more CPU than formatting them (page faults)."""


def _add_records(records: JsonRecords, chunks: list[bytes]) -> None:
    batch = records.batch
    if batch.events is not None:
        _add_events(records, chunks)
        return
    view = memoryview(batch.data)  # often a view of a read buffer: copied a piece at a time
    # Paths may hold lone surrogates (undecodable file names): "?" rather than an error.
    *fixed, last = (piece.encode("utf-8", "replace").replace(b"%", b"%%") for piece in records.pieces)
    head = b"%d".join(fixed)  # everything before the text, a %d for each number
    per_record = len(fixed) - 1
    sep = records.sep.encode()
    between = last + sep.replace(b"%", b"%%") + head  # what replaces each newline
    start = line = 0
    while start < len(view):
        piece = _lines_from(view, start)
        if not piece:
            break
        # Each line's offset, from the lines' lengths: BytesIO yields them without keeping them.
        offsets = list(accumulate(map(len, BytesIO(piece)), initial=batch.offset + start))
        offsets.pop()  # the end of the piece's last line
        text = _json_text(piece)
        if b"%" in text:
            text = text.replace(b"%", b"%%")
        template = b"".join((head, text[:-1].replace(b"\n", between), last))
        numbers: Iterable[int] = offsets
        if records.count_from is not None:
            numbers = range(records.count_from + line, records.count_from + line + len(offsets))
        if per_record > 1:
            numbers = chain.from_iterable(zip(*tee(numbers, per_record)))
        if start and sep:
            chunks.append(sep)
        chunks.append(template % tuple(numbers))
        start += len(piece)
        line += len(offsets)


def _add_events(records: JsonRecords, chunks: list[bytes]) -> None:
    """:func:`_add_records` for records processors made (whose text may hold newlines): one at a time.
    A record's fields go before the closing brace when its text is the object's last member (the
    last piece starts with ``"}``)."""
    from .objects import json_object, valid_text

    *fixed, last = records.pieces
    fields_at = 1 if last.startswith('"}') else -1
    sep = records.sep
    out = []
    for i, record in enumerate(records.batch.events or ()):
        number = record.offset if records.count_from is None else records.count_from + i
        text = encode_basestring(valid_text(record.line))[1:-1]
        tail = last
        if record.fields and fields_at > 0:
            tail = last[:1] + "," + json_object(record.fields).decode()[1:-1] + last[1:]
        out.append((sep if i else "") + f"{number}".join(fixed) + text + tail)
    if out:
        if chunks and sep:
            chunks.append(sep.encode())
        chunks.append("".join(out).encode("utf-8", "replace"))


def _lines_from(view: memoryview, start: int) -> bytes:
    """The complete lines of ``view`` from ``start`` on: about :data:`PIECE_BYTES` of them, at least
    one line however long."""
    window = bytes(view[start:start + PIECE_BYTES])
    end = window.rfind(b"\n") + 1
    if end == len(window):
        return window
    if end:
        return window[:end]
    rest = bytes(view[start:])  # one line longer than a piece: alone
    return rest[:rest.find(b"\n") + 1]  # nothing if unterminated (never, batches end with a newline)


def _json_text(data: bytes) -> bytes:
    """``data`` (lines each ending in a newline) with each line escaped as the inside of a JSON
    string, the newlines kept: what ``encode_basestring(line.decode("utf-8", "replace"))`` gives,
    without the quotes, line by line."""
    if data.isascii() or _is_utf8(data):
        return _escaped_whole(data)
    return _escaped_per_line(data)  # invalid UTF-8 somewhere: the replacement needs each line alone


def _escaped_whole(data: bytes) -> bytes:
    """:func:`_json_text` of valid UTF-8: a ``bytes.replace`` over the whole batch for each character
    JSON escapes that it holds (most batches hold none, or only quotes)."""
    if len(data) < 8192 and len(data.translate(None, _ESCAPED)) == len(data):
        return data  # one pass over short data; 33 searches cost more than it (6 us) below 8 KiB
    for raw in list(filter(data.__contains__, _ESCAPES)):  # the searches at C speed: most find nothing
        data = data.replace(raw, _ESCAPES[raw])
    return data


def _escaped_per_line(data: bytes) -> bytes:
    """:func:`_json_text` of any bytes: each line decoded and escaped on its own (C-level ``map``)."""
    lines = data.split(b"\n")
    lines.pop()  # data ends with a newline: the last piece is empty
    quoted = "\n".join(map(encode_basestring, map(bytes.decode, lines, repeat("utf-8"), repeat("replace"))))
    # Each line became "…" with no raw newline inside: drop the quotes next to the newlines and ends.
    return quoted[1:-1].replace('"\n"', "\n").encode() + b"\n"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
