"""logferry: follow many growing log files and ship every complete line, in order and at least once.

The public API for plugins and embedding programs::

    import logferry

    @logferry.hookimpl
    def logferry_sink_schemes():
        return ["mine"]
"""

__version__ = "0.1.0"

from .errors import ConfigError, LogferryError, NotAcknowledged, SinkError
from .hookspecs import hookimpl
from .processors.base import Processor, Tally
from .processors.patterns import compile_pattern
from .records.batch import Batch
from .records.formats import JsonRecords, encode_json, event_objects, json_body, json_chunks, json_object
from .records.record import Record
from .settings import Settings, SinkSpec
from .sinks.base import Sink, ThreadedSink

__all__ = [
    "Batch",
    "ConfigError",
    "JsonRecords",
    "LogferryError",
    "NotAcknowledged",
    "Processor",
    "Record",
    "Settings",
    "Sink",
    "SinkError",
    "SinkSpec",
    "Tally",
    "ThreadedSink",
    "__version__",
    "compile_pattern",
    "encode_json",
    "event_objects",
    "hookimpl",
    "json_body",
    "json_chunks",
    "json_object",
]
