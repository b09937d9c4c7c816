"""Request bodies for a batch (NDJSON, Elasticsearch ``_bulk``, Loki push) and what their responses mean.

The encoders are pure functions of the batch (and, for Loki, of a first timestamp chosen on the
loop), so the sink can run them on a worker thread when a batch is large. Lines are decoded as
UTF-8 with invalid bytes replaced (U+FFFD), as logferry's own ``--format json`` does.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from json.encoder import encode_basestring  # the C encoder when available: fast, keeps non-ASCII

from logferry import Batch

CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "es-bulk": "application/x-ndjson",
    "loki": "application/json",
}


def iso_ts(read_at: float) -> str:
    """``2026-01-02T03:04:05.678Z``: the time the batch was read, as logferry's JSON records have it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(read_at)) + f".{int(read_at % 1 * 1000):03d}Z"


def _text(line: bytes) -> str:
    return encode_basestring(line.decode("utf-8", "replace"))


def encode_ndjson(batch: Batch, host: str) -> bytes:
    """One JSON object per line: ``ts``, ``host``, ``path``, ``offset``, ``id`` and ``line``.

    ``id`` is :meth:`logferry.Batch.line_id`: the same on every re-delivery, so a consumer can drop
    duplicates.
    """
    head = f'{{"ts":"{iso_ts(batch.read_at)}","host":{encode_basestring(host)},"path":{encode_basestring(batch.path)}'
    ident = encode_basestring(batch.file_id)[:-1]  # without the closing quote: the offset follows
    return "".join(
        f'{head},"offset":{offset},"id":{ident}:{offset}","line":{_text(line)}}}\n'
        for offset, line in batch.records()
    ).encode()


def encode_es_bulk(batch: Batch, host: str, index: str, action: str) -> bytes:
    """An Elasticsearch/OpenSearch ``_bulk`` body: an action line and a document per line.

    The action carries ``_id`` = the line id, so a re-delivered batch overwrites (``index``) or is
    refused as a conflict (``create``) instead of doubling documents.
    """
    meta = f'{{"{action}":{{"_index":{encode_basestring(index)},"_id":{encode_basestring(batch.file_id)[:-1]}:'
    doc = f'{{"@timestamp":"{iso_ts(batch.read_at)}","host":{encode_basestring(host)},"path":{encode_basestring(batch.path)}'
    return "".join(
        f'{meta}{offset}"}}}}\n{doc},"offset":{offset},"line":{_text(line)}}}\n'
        for offset, line in batch.records()
    ).encode()


def loki_stream(batch: Batch, host: str, labels: dict[str, str]) -> dict[str, str]:
    """The Loki stream labels of a batch: ``path``, ``filename``, ``host``, then the static labels."""
    return {"path": batch.path, "filename": os.path.basename(batch.path), "host": host, **labels}


def encode_loki(batch: Batch, stream: dict[str, str], first_ns: int) -> bytes:
    """A Loki push body: one stream, line *i* at ``first_ns + i`` nanoseconds (strictly increasing)."""
    values = ",".join(
        f'["{first_ns + i}",{_text(line)}]' for i, (_offset, line) in enumerate(batch.records())
    )
    return f'{{"streams":[{{"stream":{json.dumps(stream, ensure_ascii=False)},"values":[{values}]}}]}}'.encode()


class LokiClock:
    """Chooses each batch's first timestamp so that timestamps only grow within a Loki stream.

    Loki rejects entries older than its stream's newest beyond a window, so ``read_at`` alone is not
    enough (a batch of many lines spans many nanoseconds, and the next batch may have been read within
    them). The same batch sent again (the engine's retry) gets the same timestamps, so Loki treats its
    lines as duplicates instead of storing them twice.
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[tuple[str, str], ...], tuple[tuple[str, int], int, int]] = {}

    def first_ns(self, stream: dict[str, str], batch: Batch, count: int) -> int:
        key = tuple(sorted(stream.items()))
        batch_key = (batch.file_id, batch.offset)
        previous = self._streams.get(key)
        if previous is not None and previous[0] == batch_key:
            return previous[1]
        floor = previous[1] + previous[2] if previous is not None else 0
        first = max(int(batch.read_at * 1_000_000_000), floor)
        self._streams[key] = (batch_key, first, count)
        return first


@dataclass
class BulkOutcome:
    """What an Elasticsearch ``_bulk`` response says about the documents of one request."""

    retryable: int = 0
    """Items refused for a reason that passes (429, 5xx): send the batch again (idempotent by ``_id``)."""
    rejected: int = 0
    """Items refused for good (e.g. a 400 mapping error): counted and logged, never retried."""
    reason: str = ""
    """The first refusal's ``type: reason``, for the log."""


def bulk_outcome(payload: bytes) -> BulkOutcome:
    """Read an HTTP 200 ``_bulk`` response. Raises ValueError if it is not one."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or "errors" not in doc:
        raise ValueError("not an Elasticsearch _bulk response (no 'errors' key)")
    if not doc["errors"]:
        return BulkOutcome()
    try:
        return _item_outcomes(doc.get("items") or ())
    except (AttributeError, TypeError, StopIteration) as exc:
        raise ValueError(f"malformed 'items' in the _bulk response: {exc}") from None


def _item_outcomes(items: Iterable[dict[str, Any]]) -> BulkOutcome:
    outcome = BulkOutcome()
    for item in items:
        op, result = next(iter(item.items()))
        status = int(result.get("status", 0))
        if 200 <= status < 300 or (status == 409 and op == "create"):
            continue  # a conflict on create: the document is already there (a re-delivery)
        if status == 429 or status >= 500:
            outcome.retryable += 1
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
