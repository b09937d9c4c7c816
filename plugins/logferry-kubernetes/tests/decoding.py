"""Run a decoder over a log file's bytes, as the processing stage does."""

from __future__ import annotations

from logferry import Processor, Record

POD_LOG = "/var/log/pods/shop_web-7d4b9c-x2x9q_0b1e5c7a-8a33-4f6e-9d5e-2f1c0a9b7e11/web/0.log"
CONTAINER_ID = "3f4e" * 16
DOCKER_LOG = f"/var/lib/docker/containers/{CONTAINER_ID}/{CONTAINER_ID}-json.log"


def records_of(data: bytes, start: int = 0) -> list[Record]:
    """The file's lines as the stage hands them over: text (invalid UTF-8 kept as surrogate
    escapes), each at its byte offset."""
    records, offset = [], start
    for line in data.split(b"\n")[:-1]:
        records.append(Record(offset, line.decode("utf-8", "surrogateescape")))
        offset += len(line) + 1
    return records


def decode(processor: Processor, data: bytes, path: str = POD_LOG, batch: int = 0, flush: bool = True
           ) -> list[Record]:
    """What ``processor`` makes of a file holding ``data`` (in batches of ``batch`` lines; 0: one)."""
    one = processor.for_source(path)
    records = records_of(data)
    size = batch or len(records) or 1
    out: list[Record] = []
    for i in range(0, len(records), size):
        out.extend(one.process(records[i:i + size]))
    if flush:
        out.extend(one.flush())
    return out


def raw(record: Record) -> bytes:
    """The bytes raw output writes for it (without the newline)."""
    return record.line.encode("utf-8", "surrogateescape")
