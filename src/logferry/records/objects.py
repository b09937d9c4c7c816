"""Records with fields as JSON objects, one at a time (what sinks write once processors ran)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from .batch import Batch
from .record import NO_FIELDS, Record
from .times import iso_ts


def event_objects(batch: Batch) -> list[dict[str, Any]]:
    """Each record of ``batch`` as the object ``--format json`` writes: ``ts`` (its parsed time, else
    when it was read), ``path``, ``id``, ``offset``, ``line`` (the order of the whole-batch encoder),
    then its fields (which never use those
    names: a parsed one is kept as ``parsed_<name>``).

    For sinks that write records with fields one at a time (``batch.events`` is set once a processor
    ran); encode each with :func:`json_object`.
    """
    path, base, read_ts = batch.path, batch.file_id, iso_ts(batch.read_at)
    events = batch.events if batch.events is not None else [Record(o, line.decode("utf-8", "surrogateescape"))
                                                            for o, line in batch.records()]
    stamp, none = _iso_record, NO_FIELDS
    return [{"ts": read_ts if r.ts is None else stamp(r.ts), "path": path, "id": f"{base}:{r.offset}",
             "offset": r.offset, "line": r.line, **(r.fields or none)} for r in events]


def json_object(obj: Any) -> bytes:
    """``obj`` as compact JSON, UTF-8: text that is not valid UTF-8 (undecodable bytes of a line, kept
    as surrogate escapes) is written with U+FFFD, as the whole-batch encoders write it; keys that are
    not text are written as text."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # surrogates, or keys that are not strings: rare, so checked only on failure
        return orjson.dumps(valid_text(obj), option=orjson.OPT_NON_STR_KEYS, default=str)


def valid_text(value: Any) -> Any:
    """``value`` with text that is not valid UTF-8 (surrogate escapes) written with U+FFFD, in lists and tables too."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [valid_text(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def _iso_record(ts: float) -> str:
    """:func:`iso_ts` of a record's own time: records of one millisecond (or one timestamp) share it."""
    return iso_ts(ts)
