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
from .records.batch import Batch
from .records.formats import JsonRecords, encode_json, json_body, json_chunks
from .settings import Settings, SinkSpec
from .sinks.base import Sink, ThreadedSink

__all__ = [
    "Batch",
    "ConfigError",
    "JsonRecords",
    "LogferryError",
    "NotAcknowledged",
    "Settings",
    "Sink",
    "SinkError",
    "SinkSpec",
    "ThreadedSink",
    "__version__",
    "encode_json",
    "hookimpl",
    "json_body",
    "json_chunks",
]
