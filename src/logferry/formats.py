"""The JSON record encoders at their old path, for plugins that import ``logferry.formats``.

They live in :mod:`logferry.records.formats`; new code imports them from ``logferry``.
"""

from .records.formats import JsonRecords, encode_json, iso_ts, json_body, json_chunks

__all__ = ["JsonRecords", "encode_json", "iso_ts", "json_body", "json_chunks"]
