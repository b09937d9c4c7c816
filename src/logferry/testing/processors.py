"""The processor contract: the tests every processor passes (see :class:`ProcessorContract`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from ..processors.base import Processor
from ..records.batch import Batch
from ..records.record import Record

__all__ = ["SAMPLE_LOG", "SAMPLE_PROCESSORS", "SAMPLE_TRACE", "ProcessorCase", "ProcessorContract", "processed_batch"]

Seen = tuple[int, str, dict | None, float | None]  # what a record is, for comparing outputs


@dataclass
class ProcessorCase:
    """How :class:`ProcessorContract` drives one processor."""

    make: Callable[[], Processor]
    """A fresh processor, as its ``logferry_make_processor`` hook makes it from a table's options."""
    lines: Sequence[bytes]
    """A file's lines (without their newlines) that exercise it: lines it changes, drops, joins or
    holds back, among others it lets through. The contract adds lines of any bytes of its own."""
    path: str = "/var/log/app/app.log"


class ProcessorContract:
    """The tests every processor passes. Subclass it and define the ``processor_case`` fixture::

        class TestMyProcessor(ProcessorContract):
            @pytest.fixture
            def processor_case(self) -> ProcessorCase:
                return ProcessorCase(make=lambda: MyProcessor(...), lines=[b"...", b"..."])

    What logferry relies on: records leave in file order, each at the position (so with the id)
    of its first line; the output does not depend on where batches end; each line goes on, is
    joined into the record before it, or is dropped, and what is not passed on is counted
    (``tally.dropped``, ``tally.joined``); :meth:`~logferry.Processor.held` names the first line
    held back, and :meth:`~logferry.Processor.flush` releases it; each file has its own state.
    """

    @pytest.fixture
    def processor_case(self) -> ProcessorCase:
        """Override in the subclass: return the :class:`ProcessorCase` of the processor under test."""
        pytest.fail(f"{type(self).__name__} must define a `processor_case` fixture returning a "
                    "logferry.testing.ProcessorCase")

    def test_records_leave_in_file_order_at_their_first_lines_position(self, processor_case: ProcessorCase) -> None:
        records = _records(processor_case.lines)
        out = _run(processor_case, [records])
        offsets = [r[0] for r in out]
        assert offsets == sorted(set(offsets)), "records must leave in file order, one per position"
        assert set(offsets) <= {r.offset for r in records}, "a record's offset must be its first line's"

    def test_the_output_does_not_depend_on_where_batches_end(self, processor_case: ProcessorCase) -> None:
        whole = _run(processor_case, [_records(processor_case.lines)])
        rng = random.Random(11)
        for size in (1, 2, 3, 7, None):
            records = _records(processor_case.lines)
            batches: list[list[Record]] = []
            while records:
                n = size or rng.randint(1, 9)
                batches.append(records[:n])
                records = records[n:]
            assert _run(processor_case, batches) == whole, f"batches of {size or 'random sizes'} lines"

    def test_the_same_lines_give_the_same_records_every_time(self, processor_case: ProcessorCase) -> None:
        first = _run(processor_case, [_records(processor_case.lines)])
        assert _run(processor_case, [_records(processor_case.lines)]) == first

    def test_every_line_goes_on_is_joined_or_is_counted_as_dropped(self, processor_case: ProcessorCase) -> None:
        processor = processor_case.make().for_source(processor_case.path)
        records = _records(processor_case.lines)
        before = processor.tally.dropped + processor.tally.joined
        out = [*processor.process(list(records)), *processor.flush()]
        counted = processor.tally.dropped + processor.tally.joined - before
        assert len(out) + counted == len(records), (
            f"{len(records)} lines in, {len(out)} records out, {counted} counted as dropped or joined")

    def test_held_names_the_first_line_held_back_and_flush_releases_it(self, processor_case: ProcessorCase) -> None:
        processor = processor_case.make().for_source(processor_case.path)
        released: list[int] = []
        for record in _records(processor_case.lines):
            out = processor.process([record])
            released.extend(r.offset for r in out)
            held = processor.held()
            if held is not None:
                assert held <= record.offset, "held() must name a line already given"
                assert all(o < held for o in released), "a record at or after the held line left before it"
        released.extend(r.offset for r in processor.flush())
        assert processor.held() is None, "after flush() nothing may be held"
        assert released == sorted(released)

    def test_each_file_has_its_own_state(self, processor_case: ProcessorCase) -> None:
        alone = _run(processor_case, [_records(processor_case.lines)])
        processor = processor_case.make()
        a, b = processor.for_source("/a.log"), processor.for_source("/b.log")
        out_a: list[Record] = []
        out_b: list[Record] = []
        for record in _records(processor_case.lines):  # the two files' lines interleaved
            twin = _copy(record)  # before a sees it: a processor may change its records in place
            out_a.extend(a.process([record]))
            out_b.extend(b.process([twin]))
        out_a.extend(a.flush())
        out_b.extend(b.flush())
        assert [_seen(r) for r in out_a] == alone == [_seen(r) for r in out_b]

    def test_any_text_goes_through_without_an_error(self, processor_case: ProcessorCase) -> None:
        odd = [b"\xff\xfe invalid utf-8 \xc3", b"nul \x00 inside", b"", b"cr at the end\r", b"x" * 200_000,
               "non-ascii: ünïcödé 日本語".encode()]
        lines = [*processor_case.lines, *odd, *processor_case.lines]
        out = _run(processor_case, [_records(lines)])
        assert out, "every record vanished"


# -- for sink authors: records as the processors hand them on --------------------------------------

SAMPLE_TRACE = ("java.lang.IllegalStateException: boom\n\tat com.example.Foo.bar(Foo.java:10)\n"
                "\tat com.example.Main.main(Main.java:3)")
"""A Java stack trace: what ``SAMPLE_PROCESSORS`` ships as one record."""

SAMPLE_LOG = ('{"time":"2024-05-01T10:00:00Z","level":"info","msg":"started"}\n'
              f"{SAMPLE_TRACE}\n"
              '{"level":"error","code":503}\n')
"""A log for ``SAMPLE_PROCESSORS``: a JSON line with its own time, a trace, a JSON line without one."""

SAMPLE_PROCESSORS = """
[[processors]]
type = "multiline"
preset = "java"

[[processors]]
type = "json"
timestamp_key = "time"

[[processors]]
type = "fields"
fields = { env = "prod" }
"""
"""``[[processors]]`` tables for a sink's end-to-end test: multiline events (``SAMPLE_TRACE``), JSON
fields with the record's own time (``time``), and a static field (``env = "prod"``)."""


def processed_batch(records: Sequence[Record], path: str = "/var/log/app.log", file_id: str = "f1",
                    read_at: float = 1_800_000_000.5) -> Batch:
    """A batch as the processors hand it to the sinks (``batch.events`` set): ``records`` of the
    file at ``path``, whose lines' ids are ``FILE_ID:OFFSET``."""
    end = records[-1].offset + len(records[-1].raw) if records else 0
    return Batch(path, file_id, records[0].offset if records else 0, end, b"", read_at, 0).with_records(records)


def _records(lines: Sequence[bytes], start: int = 0) -> list[Record]:
    """``lines`` as a file's records, each at its byte offset."""
    records, offset = [], start
    for line in lines:
        records.append(Record(offset, line.decode("utf-8", "surrogateescape")))
        offset += len(line) + 1
    return records


def _run(case: ProcessorCase, batches: list[list[Record]]) -> list[Seen]:
    processor = case.make().for_source(case.path)
    out: list[Record] = []
    for batch in batches:
        if batch:
            out.extend(processor.process(list(batch)))
    out.extend(processor.flush())
    return [_seen(r) for r in out]


def _seen(record: Record) -> Seen:
    return record.offset, record.line, record.fields, record.ts


def _copy(record: Record) -> Record:
    return Record(record.offset, record.line, dict(record.fields) if record.fields else None, record.ts)

