"""logferry: follow many growing log files and ship every complete line, in order and at least once.

The public API for plugins and embedding programs::

    import logferry

    @logferry.hookimpl
    def logferry_sink_schemes():
        return ["mine"]
"""

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, LogferryError, NotAcknowledged, SinkError
from .hookspecs import hookimpl, hookspec
from .processors.base import Processor, Tally
from .records.batch import Batch
from .records.formats import JsonRecords, encode_json, json_body, json_chunks
from .records.record import Record
from .settings import PluginOption, ProcessorSpec, Settings, SinkSpec, Source
from .sinks.base import Sink, ThreadedSink

if TYPE_CHECKING:
    from .processors.patterns import compile_pattern
    from .records.objects import event_objects, json_object

_LAZY = {"compile_pattern": "processors.patterns", "event_objects": "records.objects", "json_object": "records.objects"}
"""What only runs with processors imports RE2 or orjson: looked up on first use, not by every ``import logferry``."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'logferry' has no attribute {name!r}")

__all__ = [
    "Batch",
    "ConfigError",
    "JsonRecords",
    "LogferryError",
    "NotAcknowledged",
    "PluginOption",
    "Processor",
    "ProcessorSpec",
    "Record",
    "Settings",
    "Sink",
    "SinkError",
    "SinkSpec",
    "Source",
    "Tally",
    "ThreadedSink",
    "__version__",
    "compile_pattern",
    "encode_json",
    "event_objects",
    "hookimpl",
    "hookspec",
    "json_body",
    "json_chunks",
    "json_object",
]
