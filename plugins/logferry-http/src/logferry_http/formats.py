"""Request bodies for batches (NDJSON, Elasticsearch ``_bulk``, Loki push) and what their responses mean.

The encoders are pure functions of the batches (and, for Loki, of first timestamps chosen on the
loop), so the sink can run them on a worker thread when they are large. They format whole batches
with :func:`logferry.json_chunks`, without Python code per line, and return the body as chunks of
whole records. Lines are decoded as UTF-8 with invalid bytes replaced (U+FFFD), as logferry's own
``--format json`` does.

Batches that processors made records of (``batch.events`` is set: multiline events, parsed and
static fields, parsed times) are encoded a record at a time: each record's own time, then its fields
beside the record's keys. A field named like a key the sink writes itself (``host``, ``@timestamp``)
is kept as ``parsed_<name>``, as logferry keeps ``ts``, ``path``, ``offset``, ``id`` and ``line``.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # the C encoder when available: fast, keeps non-ASCII
from typing import Any

from logferry import Batch, JsonRecords, event_objects, json_chunks, json_object
from logferry.formats import iso_ts

CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "es-bulk": "application/x-ndjson",
    "loki": "application/json",
}


def encode_ndjson(batches: Sequence[Batch], host: str) -> list[bytes]:
    """One JSON object per line: ``ts``, ``host``, ``path``, ``offset``, ``id`` and ``line`` (then a
    record's fields), in chunks of whole records (see :func:`logferry.json_chunks`).

    ``id`` is :meth:`logferry.Batch.line_id`: the same on every re-delivery, so a consumer can drop
    duplicates.
    """
    host_json = encode_basestring(host)
    return json_chunks(
        _ndjson_records(batch, host) if batch.events is not None else JsonRecords(batch, (
            f'{{"ts":"{iso_ts(batch.read_at)}","host":{host_json},"path":{encode_basestring(batch.path)},"offset":',
            f',"id":{encode_basestring(batch.file_id)[:-1]}:',  # the id's closing quote follows the offset
            '","line":"', '"}\n',
        )) for batch in batches
    )


def _ndjson_records(batch: Batch, host: str) -> bytes:
    return b"".join([json_object(doc) + b"\n" for doc in record_documents(batch, host, "ts")])


def encode_es_bulk(batches: Sequence[Batch], host: str, index: str, action: str) -> list[bytes]:
    """An Elasticsearch/OpenSearch ``_bulk`` body: an action line and a document per line (``@timestamp``,
    ``host``, ``path``, ``offset``, ``line``, then a record's fields), in chunks of whole documents.

    The action carries ``_id`` = the line id, so a re-delivered batch overwrites (``index``) or is
    refused as a conflict (``create``) instead of doubling documents.
    """
    meta = f'{{"{action}":{{"_index":{encode_basestring(index)},"_id":'
    host_json = encode_basestring(host)
    return json_chunks(
        _es_bulk_records(batch, host, meta) if batch.events is not None else JsonRecords(batch, (
            f'{meta}{encode_basestring(batch.file_id)[:-1]}:',
            f'"}}}}\n{{"@timestamp":"{iso_ts(batch.read_at)}","host":{host_json},'
            f'"path":{encode_basestring(batch.path)},"offset":',
            ',"line":"', '"}\n',
        )) for batch in batches
    )


def _es_bulk_records(batch: Batch, host: str, meta: str) -> bytes:
    """The action and document lines of records; JSON escapes a multiline event's newlines, so each
    document is still exactly two lines (which :func:`es_bulk_documents` relies on)."""
    action = meta.encode()
    return b"".join([b"%s%s}}\n%s\n" % (action, json_object(doc.pop("id")), json_object(doc))
                     for doc in record_documents(batch, host, "@timestamp")])


def record_documents(batch: Batch, host: str, ts_key: str) -> list[dict[str, Any]]:
    """The records of ``batch`` (``batch.events``) as :func:`logferry.event_objects` makes them, the
    time under ``ts_key`` and ``host`` after it; a field of either name becomes ``parsed_<name>``."""
    own = ("host",) if ts_key == "ts" else (ts_key, "host")  # logferry renamed a "ts" field already
    docs = []
    for obj in event_objects(batch):
        ts = obj.pop("ts")
        for name in own:
            if name in obj:
                obj["parsed_" + name] = obj.pop(name)
        # in the order of this sink's whole-batch encoders: ts, host, path, offset, id, line, fields
        docs.append({ts_key: ts, "host": host, "path": obj.pop("path"), "offset": obj.pop("offset"), **obj})
    return docs


def es_bulk_documents(body: bytes, positions: Iterable[int]) -> bytes:
    """The ``_bulk`` body of just the documents at ``positions`` (0 = the first) of ``body``, in order.

    Each document is two lines, its action and its source; neither holds a raw newline (JSON escapes
    them), so the body's lines pair up exactly."""
    rows = body.split(b"\n")
    return b"".join(rows[2 * i] + b"\n" + rows[2 * i + 1] + b"\n" for i in positions)


def loki_stream(batch: Batch, host: str, labels: dict[str, str]) -> dict[str, str]:
    """The Loki stream labels of a batch: ``path``, ``filename``, ``host``, then the static labels."""
    return {"path": batch.path, "filename": os.path.basename(batch.path), "host": host, **labels}


def encode_loki(streams: Sequence[tuple[dict[str, str], Sequence[tuple[Batch, int]]]],
                metadata: bool = False) -> list[bytes]:
    """A Loki push body, in chunks: for each stream, its labels and its batches' lines, line *i* of a
    batch at that batch's ``first_ns + i`` nanoseconds (strictly increasing, see :class:`LokiClock`)
    unless it is a record with its own time (see :func:`loki_records`); with ``metadata``, records'
    fields as structured metadata."""
    parts: list[bytes | JsonRecords] = [b'{"streams":[']
    for number, (labels, stamped) in enumerate(streams):
        stream = json.dumps(labels, ensure_ascii=False).encode("utf-8", "replace")
        parts.append(b'%s{"stream":%s,"values":[' % (b"," if number else b"", stream))
        for i, (batch, first_ns) in enumerate(stamped):
            if i:
                parts.append(b",")
            if batch.events is not None:
                parts.append(loki_records(batch, first_ns, metadata))
            else:
                parts.append(JsonRecords(batch, ('["', '","', '"]'), count_from=first_ns, sep=","))
        parts.append(b"]}")
    parts.append(b"]}")
    return json_chunks(parts)


def loki_records(batch: Batch, first_ns: int, metadata: bool) -> bytes:
    """The entries of records (``batch.events``), comma-separated: ``["NS","LINE"]``, or with
    ``metadata`` and fields ``["NS","LINE",{"name":"value",…}]`` (Loki 3's structured metadata,
    every value a string: text as it is, anything else as JSON).

    ``NS`` is the record's own time when it has one, else ``first_ns + i`` as for lines. Loki stores
    an entry with the same time and text as one it holds only once, and parsed times are often whole
    seconds: a time already used in this batch moves on by a nanosecond until it is free, so repeated
    lines of one second all stay (and a batch sent again gets the same times, so Loki drops it)."""
    entries = []
    used: set[int] = set()
    for i, record in enumerate(batch.events or ()):
        ns = first_ns + i if record.ts is None else _ns(record.ts)
        while ns in used:
            ns += 1
        used.add(ns)
        line = json_object(record.line)
        if metadata and record.fields:
            entries.append(b'["%d",%s,%s]' % (ns, line, json_object(_metadata(record.fields))))
        else:
            entries.append(b'["%d",%s]' % (ns, line))
    return b",".join(entries)


def _ns(ts: float) -> int:
    """A time in seconds as whole nanoseconds, to the microsecond: all a float of today's seconds
    holds (``ts * 1e9`` would write ``.25`` as ``.249999872``)."""
    seconds, fraction = divmod(ts, 1)
    return int(seconds) * 1_000_000_000 + round(fraction * 1_000_000) * 1000


def _metadata(fields: dict[str, Any]) -> dict[str, str]:
    return {name: value if isinstance(value, str) else json_object(value).decode()
            for name, value in fields.items()}


def request_bodies(chunks: Iterable[bytes], limit: int, record_start: bytes) -> list[list[bytes | memoryview]]:
    """NDJSON or ``_bulk`` chunks (each ending where a record ends) as request bodies of at most
    ``limit`` bytes, a chunk over the limit cut where its records end (see :func:`cut_records`)."""
    bodies: list[list[bytes | memoryview]] = []
    body: list[bytes | memoryview] = []
    size = 0
    for chunk in chunks:
        for piece in cut_records(chunk, limit, record_start) if len(chunk) > limit else (chunk,):
            if body and size + len(piece) > limit:
                bodies.append(body)
                body, size = [], 0
            body.append(piece)
            size += len(piece)
    if body:
        bodies.append(body)
    return bodies


def cut_records(chunk: bytes, limit: int, record_start: bytes) -> list[memoryview]:
    """``chunk`` in pieces of at most ``limit`` bytes, cut where a record ends: before the newline that
    starts ``record_start`` (``b"\\n"`` for NDJSON, ``b'\\n{"index":{'`` for ``_bulk``, whose
    documents are two lines). A record longer than ``limit`` travels alone. Views: no copy."""
    view, pieces, start = memoryview(chunk), [], 0
    while len(chunk) - start > limit:
        newline = chunk.rfind(record_start, start, start + limit - 1 + len(record_start))
        if newline < 0:  # the record at start alone is longer than the limit
            newline = chunk.find(record_start, start)
            if newline < 0:
                break
        pieces.append(view[start:newline + 1])
        start = newline + 1
    pieces.append(view[start:])
    return pieces


def loki_bodies(stamped: Sequence[tuple[dict[str, str], Batch, int]], limit: int,
                metadata: bool = False) -> list[list[bytes]]:
    """Loki push bodies (in chunks) of at most ``limit`` bytes for ``(stream labels, batch, first_ns)``
    in order, one stream per label set in each; a single line longer than ``limit`` travels alone.
    ``metadata``: records' fields as structured metadata (see :func:`loki_records`).

    Over the limit, the batches are halved (a single batch at a line boundary, the second half's
    timestamps following the first's) and each half encoded again: Loki bodies are not lines.
    """
    streams: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[tuple[Batch, int]]]] = {}
    for labels, batch, first_ns in stamped:
        streams.setdefault(tuple(sorted(labels.items())), (labels, []))[1].append((batch, first_ns))
    body = encode_loki(list(streams.values()), metadata)
    if sum(map(len, body)) <= limit:
        return [body]
    if len(stamped) > 1:
        half = len(stamped) // 2
        return loki_bodies(stamped[:half], limit, metadata) + loki_bodies(stamped[half:], limit, metadata)
    labels, batch, first_ns = stamped[0]
    halves = _halves(batch)
    if halves is None:
        return [body]
    first, second = halves
    return (loki_bodies([(labels, first, first_ns)], limit, metadata)
            + loki_bodies([(labels, second, first_ns + first.line_count())], limit, metadata))


def _halves(batch: Batch) -> tuple[Batch, Batch] | None:
    """``batch`` cut in two at the line (or record) boundary nearest its middle; None for a single one."""
    data = bytes(batch.data)
    if batch.events is not None:  # a record's bytes may hold newlines: cut between records
        middle = sum(len(record.raw) for record in batch.events[:len(batch.events) // 2])
    else:
        middle = data.rfind(b"\n", 0, len(data) // 2) + 1 or data.find(b"\n") + 1
    if not 0 < middle < len(data):
        return None
    return batch.slice(0, middle), batch.slice(middle, len(data))


class LokiClock:
    """Chooses each batch's first timestamp so that timestamps only grow within a Loki stream.

    Loki rejects entries older than its stream's newest beyond a window, so ``read_at`` alone is not
    enough (a batch of many lines spans many nanoseconds, and the next batch may have been read within
    them). A batch sent again (the engine's retry of a whole request) gets the same timestamps, so
    Loki treats its lines as duplicates instead of storing them twice: the clock remembers the last
    :attr:`REMEMBERED` batches it stamped, enough for any request still being retried.
    """

    REMEMBERED = 4096

    def __init__(self) -> None:
        self._ends: dict[tuple[tuple[str, str], ...], int] = {}
        """Per stream, the timestamp after its newest batch's last line."""
        self._stamped: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        """(stream, file, offset, lines) of recent batches → their first timestamp."""

    def first_ns(self, stream: dict[str, str], batch: Batch, count: int) -> int:
        key = tuple(sorted(stream.items()))
        batch_key = (key, batch.file_id, batch.offset, count)
        first = self._stamped.get(batch_key)
        if first is not None:
            return first
        first = max(int(batch.read_at * 1_000_000_000), self._ends.get(key, 0))
        self._ends[key] = first + count
        self._stamped[batch_key] = first
        if len(self._stamped) > self.REMEMBERED:
            self._stamped.popitem(last=False)
        return first


@dataclass
class BulkOutcome:
    """What an Elasticsearch ``_bulk`` response says about the documents of one request."""

    retry: list[int] = field(default_factory=list)
    """Positions (0 = the first document of the request) of the documents refused for a reason that
    passes (429, 5xx): send those again (idempotent by ``_id``)."""
    rejected: int = 0
    """Items refused for good (e.g. a 400 mapping error): counted and logged, never retried."""
    reason: str = ""
    """The first refusal's ``status type: reason``, for the log."""
    items: int = 0
    """How many items the answer listed (0 when it said ``"errors":false`` and was not parsed)."""


_NO_ERRORS = re.compile(rb'\s*\{\s*(?:"\w+"\s*:\s*-?\d+\s*,\s*)*"errors"\s*:\s*false\b')
"""The start of a ``_bulk`` answer that stored everything: ``{"took":3,"errors":false,…``. Elasticsearch
and OpenSearch write ``errors`` first or after ``took``; only numbers may come before it, so the match
is a top-level key, never one inside an item. Any other start is parsed in full."""


def bulk_stored_all(payload: bytes) -> bool:
    """True if a ``_bulk`` answer says ``"errors":false`` up front: no need to parse it (for a large
    request, parsing its list of items would cost more than encoding the request did)."""
    return _NO_ERRORS.match(payload) is not None


def bulk_outcome(payload: bytes) -> BulkOutcome:
    """Read an HTTP 2xx ``_bulk`` response. Raises ValueError if it is not one."""
    if bulk_stored_all(payload):
        return BulkOutcome()
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or "errors" not in doc:
        raise ValueError("not an Elasticsearch _bulk response (no 'errors' key)")
    if not doc["errors"]:
        return BulkOutcome()
    try:
        return _item_outcomes(doc.get("items") or ())
    except (AttributeError, TypeError, ValueError, StopIteration) as exc:
        raise ValueError(f"malformed 'items' in the _bulk response: {exc}") from None


def _item_outcomes(items: Iterable[dict[str, Any]]) -> BulkOutcome:
    outcome = BulkOutcome()
    for position, item in enumerate(items):
        outcome.items += 1
        op, result = next(iter(item.items()))
        status = int(result.get("status", 0))
        if 200 <= status < 300 or (status == 409 and op == "create"):
            continue  # a conflict on create: the document is already there (a re-delivery)
        if status == 429 or status >= 500:
            outcome.retry.append(position)
        else:
            outcome.rejected += 1
        if not outcome.reason:
            error = result.get("error") or {}
            if isinstance(error, dict):
                outcome.reason = f"{status} {error.get('type', '')}: {error.get('reason', '')}"
            else:
                outcome.reason = f"{status} {error}"
    return outcome


_LOKI_IGNORED = re.compile(r"total ignored: (\d+) out of (\d+)")


def loki_ignored(body: str) -> int | None:
    """How many entries a Loki 400 says it ignored, or None if the 400 is not that kind of answer.

    Loki answers a push whose entries it refused one by one (too old, out of order) with 400 and
    ``… total ignored: N out of M``; it stored the other entries, and sending the ignored ones
    again would be refused again, so the batch counts as delivered.
    """
    match = _LOKI_IGNORED.search(body)
    return int(match.group(1)) if match else None
