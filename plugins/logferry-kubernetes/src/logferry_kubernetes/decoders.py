"""The ``cri`` and ``docker`` processors: a container runtime's log lines as records of the messages.

Each line of a container's log is a chunk of what the container wrote on one stream, with the
runtime's time: ``<RFC3339Nano> <stream> <P|F> <message>`` in the CRI format (containerd, CRI-O),
``{"log":"<message>\\n","stream":"stdout","time":"<RFC3339Nano>"}`` in dockerd's json-file. A
runtime cuts a long line into several chunks (16 KiB by default): CRI marks all but the last ``P``,
dockerd leaves the newline off all but the last. The decoders join them again, one record per
message, per stream (stdout and stderr are copied by two goroutines: their chunks interleave).

Records leave in file order (at their first chunk's offset, so with its id): a record that is
complete while a message of the other stream is still open waits behind it. What waits is held
(:meth:`Decoder.held`): the file's checkpoint stays before the open message's first chunk, so a
crash reads it again whole. An open message is released as it is when its file is quiet for
``timeout`` (the stage calls :meth:`Decoder.flush`), when its stream has not gone on for ``timeout``
of the runtime's time while other lines arrived, or, cut, at ``max_bytes``: the rest starts a record
of its own. A line that is not in the runtime's format goes on unchanged, counted as unparsed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from logferry import Processor, Record

from . import PARTIAL_TIMEOUT
from .layout import path_fields
from .times import parse_time

log = logging.getLogger("logferry.kubernetes")

RESERVED = ("ts", "path", "offset", "id", "line")
"""The record's own keys: a field of the same name is kept as ``parsed_<name>`` (as ``Record.set`` does)."""

Parsed = tuple[float, str, bool, str, "dict[str, Any] | None"]
"""A chunk: its time, stream, whether more of its message follows, its text, and docker's attrs."""
FieldsHook = Callable[..., list[Any]]
"""``logferry_kubernetes_fields`` as the plugin host calls it (``hook(path=…, fields=…)``)."""


def parse_cri(line: str) -> Parsed | str:
    """A CRI log line, or why it is not one. Also read: a line without the tag (the format before
    Kubernetes 1.10: its message may not start with ``P `` or ``F ``), tags with ``:``-separated
    extensions (``F:x``), and a docker json-file line (cri-dockerd's pods' logs are Docker's files)."""
    if line[:1] == "{":
        return parse_docker(line)
    first = line.find(" ")
    if first < 0:
        return "cri: no time and stream"
    try:
        ts = parse_time(line[:first])
    except ValueError:
        return "cri: bad time"
    second = line.find(" ", first + 1)
    stream = line[first + 1:] if second < 0 else line[first + 1:second]
    if stream != "stdout" and stream != "stderr":
        return "cri: stream is not stdout or stderr"
    if second < 0:  # nothing after the stream: an empty line of the format without tags
        return ts, stream, False, "", None
    rest = line[second + 1:]
    third = rest.find(" ")
    tag = rest if third < 0 else rest[:third]
    if tag == "F" or tag == "P" or tag[1:2] == ":" and tag[0] in "FP":
        return ts, stream, tag[0] == "P", "" if third < 0 else rest[third + 1:], None
    return ts, stream, False, rest, None  # no tag


def parse_docker(line: str) -> Parsed | str:
    """A line of dockerd's json-file driver, or why it is not one."""
    try:
        obj = orjson.loads(line)
    except ValueError:  # orjson.JSONDecodeError; also text that is not valid UTF-8
        return "docker: not JSON"
    if type(obj) is not dict:
        return "docker: not a JSON object"
    text, stream, when = obj.get("log", ""), obj.get("stream", ""), obj.get("time")  # dockerd omits an empty log
    if type(text) is not str or type(stream) is not str or type(when) is not str:
        return "docker: log, stream or time missing or not text"
    try:
        ts = parse_time(when)
    except ValueError:
        return "docker: bad time"
    attrs = obj.get("attrs")
    attrs = attrs if type(attrs) is dict and attrs else None
    if text.endswith("\n"):
        return ts, stream, False, text[:-1], attrs
    return ts, stream, True, text, attrs


@dataclass(slots=True, eq=False)
class _Open:
    """A message whose chunks are being joined: its first chunk's record, the texts so far."""

    record: Record
    parts: list[str]
    size: int
    last: float
    """The runtime's time of its latest chunk."""
    done: bool = False


class Decoder(Processor):
    """A runtime's lines → one record per message (see the module docstring)."""

    parse: Callable[[str], Parsed | str]
    """The runtime's line → a chunk, or why it is not one (set by the subclasses)."""
    timeout: float

    def __init__(self, max_bytes: int, timeout: float = PARTIAL_TIMEOUT, fields: bool = True,
                 hook: FieldsHook | None = None) -> None:
        super().__init__()
        self.max_bytes, self.timeout, self.fields, self.hook = max_bytes, timeout, fields, hook
        self._known: dict[str, dict[str, Any]] = {}  # path → its fields; shared by the files' copies
        self._path = ""
        self.reset()

    def reset(self) -> None:
        self._base: dict[str, Any] | None = None
        self._templates: dict[str | None, dict[str, Any]] = {}  # per stream: the base fields and the stream
        self._open: dict[str, _Open] = {}
        # Records in file order behind the first open message, each with the bytes it counts in
        # _waiting (what is complete but waits: bounded by max_bytes).
        self._queue: deque[list[Any]] = deque()
        self._waiting = 0

    def for_source(self, path: str) -> Decoder:
        clone = super().for_source(path)
        assert isinstance(clone, Decoder)
        clone._path = path  # its fields are found on the processing thread, at its first batch
        return clone

    def held(self) -> int | None:
        return self._queue[0][0].record.offset if self._queue else None

    def process(self, records: list[Record]) -> Sequence[Record]:
        if self._base is None:
            self._base = self._fields_of(self._path)
        out: list[Record] = []
        parse, opened, queue, tally = self.parse, self._open, self._queue, self.tally
        for record in records:
            got = parse(record.line)
            if isinstance(got, str):
                tally.unparsable(got)
                self._finished(Record(record.offset, record.line, self._fields(record, None, None), record.ts), out)
                continue
            ts, stream, partial, text, attrs = got
            if opened:
                self._expire(ts)
                joining = opened.get(stream)
                if joining is not None:
                    if joining.size + len(text) <= self.max_bytes:
                        joining.parts.append(text)
                        joining.size += len(text)
                        joining.last = ts
                        tally.joined += 1
                        if not partial:
                            self._close(stream)
                            self._release(out)
                        continue
                    tally.cut += 1  # too long: this chunk begins a record of its own
                    self._close(stream)
            made = Record(record.offset, text, self._fields(record, stream, attrs), ts)
            if partial:
                entry = _Open(made, [text], len(text), ts)
                opened[stream] = entry
                queue.append([entry, 0])
            elif queue:
                self._finished(made, out)
            else:
                out.append(made)
            if queue:
                self._release(out)
        return out

    def flush(self) -> Sequence[Record]:
        out: list[Record] = []
        for stream in list(self._open):
            self.tally.flushed += 1
            self._close(stream)
        self._release(out)
        return out

    # -- inside ------------------------------------------------------------------------------

    def _finished(self, record: Record, out: list[Record]) -> None:
        """A complete record: on its way, unless an earlier message is still open."""
        if not self._queue:
            out.append(record)
            return
        self._queue.append([record, len(record.line)])
        self._waiting += len(record.line)

    def _close(self, stream: str) -> None:
        entry = self._open.pop(stream)
        entry.done = True
        if len(entry.parts) > 1:
            entry.record.line = "".join(entry.parts)
        if self._queue[0][0] is not entry:  # it waits behind another open message
            for item in self._queue:
                if item[0] is entry:
                    item[1] = entry.size
                    self._waiting += entry.size
                    break

    def _release(self, out: list[Record]) -> None:
        """Hand on the complete records before the first open message; if too much waits behind
        it, it is cut."""
        queue = self._queue
        while queue:
            head, counted = queue[0]
            if type(head) is _Open:
                if not head.done:
                    if self._waiting <= self.max_bytes:
                        return
                    self.tally.cut += 1
                    self._close(next(s for s, e in self._open.items() if e is head))
                head = head.record
            queue.popleft()
            self._waiting -= counted
            out.append(head)

    def _expire(self, now: float) -> None:
        """Close the messages whose stream has not gone on for ``timeout`` of the runtime's time."""
        for stream, entry in list(self._open.items()):
            if now - entry.last > self.timeout:
                self.tally.flushed += 1
                self._close(stream)

    def _fields(self, record: Record, stream: str | None, attrs: dict[str, Any] | None) -> dict[str, Any] | None:
        """The fields of the record made of ``record`` (a new record: the one given is left as it is)."""
        template = self._templates.get(stream)
        if template is None:
            template = dict(self._base or {})
            if stream is not None:
                template["stream"] = stream
            self._templates[stream] = template
        fields = {**record.fields, **template} if record.fields else dict(template)
        if attrs is not None:
            fields["attrs"] = attrs
        return fields or None

    def _fields_of(self, path: str) -> dict[str, Any]:
        """The fields of every record of the file at ``path``: from the path, and from the
        ``logferry_kubernetes_fields`` hooks (once per path)."""
        if not self.fields:
            return {}
        known = self._known.get(path)
        if known is not None:
            return known
        fields: dict[str, Any] = path_fields(path)
        if self.hook is not None and fields:
            try:
                results = self.hook(path=path, fields=dict(fields))
            except Exception as exc:  # noqa: BLE001 - another plugin's bug must not stop the file's records
                log.error("a logferry_kubernetes_fields hook failed for %s (%s: %s); its records go on "
                          "with the fields of the path only", path, type(exc).__name__, exc)
                results = []
            for extra in reversed(results):  # pluggy answers the last registered first: a later plugin wins
                if isinstance(extra, dict):
                    fields.update(extra)
                else:
                    log.error("a logferry_kubernetes_fields hook returned %s for %s, not a dict of fields: "
                              "ignored", type(extra).__name__, path)
        fields = {("parsed_" + k if k in RESERVED else k): v for k, v in fields.items()}
        if len(self._known) >= 4096:  # rotated and restarted containers' paths pile up
            self._known.clear()
        self._known[path] = fields
        return fields


class Cri(Decoder):
    """``cri``: the CRI log format (containerd, CRI-O; kubelet's ``/var/log/pods``)."""

    parse = staticmethod(parse_cri)


class Docker(Decoder):
    """``docker``: dockerd's json-file driver (``/var/lib/docker/containers``)."""

    parse = staticmethod(parse_docker)
