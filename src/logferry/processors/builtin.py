"""The built-in processor types, served through the same hooks as a third-party plugin's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..markers import hookimpl
from .base import Processor

if TYPE_CHECKING:
    from ..settings import Settings

TYPES = ("multiline", "json", "logfmt", "regex", "drop", "keep", "fields", "redact")


@hookimpl
def logferry_processor_types() -> Iterable[str]:
    return TYPES


@hookimpl
def logferry_make_processor(type: str, options: dict[str, Any], settings: Settings, key: str) -> Processor | None:
    # Imported here: a run without processors never loads RE2 or orjson.
    from .filters import make_fields, make_redact, make_select
    from .multiline import make_multiline
    from .parsers import make_parser

    if type == "multiline":
        return make_multiline(key, options, settings.max_line_bytes)
    if type in ("json", "logfmt", "regex"):
        return make_parser(type, key, options)
    if type in ("drop", "keep"):
        return make_select(type, key, options)
    if type == "fields":
        return make_fields(key, options)
    if type == "redact":
        return make_redact(key, options)
    return None
