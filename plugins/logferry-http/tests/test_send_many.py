"""send_many: one request for everything handed over, from any number of files, cut into several
requests only where the body would pass max_body_bytes; every line arrives, in order per file."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from lfhttp_support import http_sink, make_batch, send_many_all


def _file_batches(path: str, file_id: str, count: int, per_batch: int, width: int = 60) -> list:
    """``count`` lines of ``path`` in consecutive batches of ``per_batch`` lines."""
    batches, offset = [], 0
    for start in range(0, count, per_batch):
        numbers = range(start, min(start + per_batch, count))
        lines = [(f"{path} {i:06d} ".encode() + b"x" * width)[:width] for i in numbers]
        batch = make_batch(path, lines, offset=offset, file_id=file_id)
        batches.append(batch)
        offset = batch.end
    return batches


def _interleaved(*files: list) -> list:
    """Batches of several files in queue order: each file's in file order, the files mixed."""
    return [batch for group in zip(*files) for batch in group]


def test_one_request_for_the_batches_of_several_files(server):
    app = _file_batches("/var/log/app.log", "app", 30, 10)
    web = _file_batches("/var/log/web.log", "web", 20, 10)
    sink = http_sink(server.url)
    asyncio.run(send_many_all(sink, _interleaved(app, web) + app[2:]))
    (request,) = server.requests
    records = request.json_lines()
    assert len(records) == 50
    for path, batches in (("/var/log/app.log", app), ("/var/log/web.log", web)):
        mine = [r for r in records if r["path"] == path]
        assert [r["offset"] for r in mine] == [offset for b in batches for offset, _line in b.records()]
        assert [r["id"] for r in mine] == [b.line_id(offset) for b in batches for offset, _line in b.records()]


@pytest.mark.parametrize("fmt", ["ndjson", "es-bulk"])
def test_bodies_are_cut_at_max_body_bytes_where_a_record_ends(server, fmt):
    server.ok_body = b'{"errors":false,"items":[]}'
    limit = 4096
    app = _file_batches("/var/log/app.log", "app", 200, 50)
    web = _file_batches("/var/log/web.log", "web", 200, 50)
    sink = http_sink(server.url, format=fmt, max_body_bytes=limit)
    asyncio.run(send_many_all(sink, _interleaved(app, web)))
    assert len(server.requests) > 10
    assert all(len(r.body) <= limit for r in server.requests)
    assert all(r.body.endswith(b"\n") for r in server.requests)
    if fmt == "es-bulk":  # documents never split from their action line
        for request in server.requests:
            rows = request.json_lines()
            assert all("index" in action and "line" in doc for action, doc in zip(rows[0::2], rows[1::2]))
            assert len(rows) % 2 == 0
    expected = [line.decode() for b in _interleaved(app, web) for _offset, line in b.records()]
    assert server.stored_lines(fmt) == expected  # in order, each once


def test_a_record_longer_than_max_body_bytes_travels_alone(server):
    long_line = b"L" * 5000
    batch = make_batch(lines=[b"short 1", long_line, b"short 2", b"short 3"])
    asyncio.run(send_many_all(http_sink(server.url, max_body_bytes=1024), [batch]))
    sizes = [len(r.json_lines()) for r in server.requests]
    assert sizes == [1, 1, 2]
    assert server.stored_lines() == ["short 1", long_line.decode(), "short 2", "short 3"]


def test_gzip_applies_to_each_cut_body(server):
    batches = _file_batches("/var/log/app.log", "app", 300, 100)
    asyncio.run(send_many_all(http_sink(server.url, gzip=True, max_body_bytes=8192), batches))
    assert len(server.requests) > 1
    for request in server.requests:
        assert request.raw[:2] == b"\x1f\x8b" and len(gzip.decompress(request.raw)) <= 8192
    assert len(server.stored_lines()) == 300


def test_loki_push_has_a_stream_per_file(server):
    server.ok_status = 204
    app = _file_batches("/var/log/app.log", "app", 6, 3)
    web = _file_batches("/var/log/web.log", "web", 3, 3)
    sink = http_sink(server.url + "?format=loki&labels=job:x")
    asyncio.run(send_many_all(sink, [app[0], web[0], app[1]]))
    (request,) = server.requests
    streams = json.loads(request.body)["streams"]
    assert [s["stream"]["path"] for s in streams] == ["/var/log/app.log", "/var/log/web.log"]
    app_values = streams[0]["values"]
    assert [line for _ts, line in app_values] == [line.decode() for b in app for _o, line in b.records()]
    stamps = [int(ts) for ts, _line in app_values]
    assert stamps == sorted(set(stamps))


def test_loki_bodies_are_cut_at_max_body_bytes_with_growing_timestamps(server):
    server.ok_status = 204
    limit = 2048
    app = _file_batches("/var/log/app.log", "app", 120, 60)
    web = _file_batches("/var/log/web.log", "web", 120, 60)
    sink = http_sink(server.url + f"?format=loki&max_body_bytes={limit}")
    asyncio.run(send_many_all(sink, _interleaved(app, web)))
    assert len(server.requests) > 4 and all(len(r.body) <= limit for r in server.requests)
    values: dict[str, list] = {}
    for request in server.requests:
        for stream in json.loads(request.body)["streams"]:
            values.setdefault(stream["stream"]["path"], []).extend(stream["values"])
    for path, batches in (("/var/log/app.log", app), ("/var/log/web.log", web)):
        assert [line for _ts, line in values[path]] == [line.decode() for b in batches for _o, line in b.records()]
        stamps = [int(ts) for ts, _line in values[path]]
        assert stamps == sorted(set(stamps)), "timestamps must strictly increase within the stream"


def test_a_failed_call_sent_again_carries_the_same_loki_timestamps(server):
    """The engine retries a failed call with the same batches: Loki must see the same entries."""
    server.ok_status = 204
    server.script.append("400")  # refused for good: the call raises, as after the in-sink retries
    batches = _file_batches("/var/log/app.log", "app", 6, 2)
    sink = http_sink(server.url + "?format=loki")

    async def run():
        await sink.start()
        try:
            with pytest.raises(Exception, match="HTTP 400"):
                await sink.send_many(batches)
            await sink.send_many(batches)
        finally:
            await sink.stop()

    asyncio.run(run())
    refused, accepted = (json.loads(r.body)["streams"][0]["values"] for r in server.requests)
    assert refused == accepted
