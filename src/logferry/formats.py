"""How lines are written by the sinks that write lines: raw bytes, or one JSON record a line."""

from __future__ import annotations

import time
from json.encoder import encode_basestring  # the C encoder when available; keeps non-ASCII as is

from .batch import Batch

FORMATS = ("raw", "json")


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
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(batch.read_at)) + f".{int(batch.read_at % 1 * 1000):03d}Z"
    head = f'{{"ts":"{ts}","path":{encode_basestring(batch.path)},"id":"{batch.file_id}:'
    out = [
        f'{head}{offset}","offset":{offset},"line":{encode_basestring(line.decode("utf-8", "replace"))}}}\n'
        for offset, line in batch.records()
    ]
    return "".join(out).encode()
