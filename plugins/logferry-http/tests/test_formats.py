"""Each body format, as the server receives and parses it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging

import pytest
from aiohttp import web
from logferry import SinkError
from logferry_http.formats import LokiClock
from logferry_http.retry import retry_after

from lfhttp_support import http_sink, make_batch, send_all

LINES = [b"first line", b"second \xff line", b'{"quoted": "json"}', b"tab\tand \x00 nul"]
TEXT = ["first line", "second \ufffd line", '{"quoted": "json"}', "tab\tand \x00 nul"]


def test_ndjson_sends_one_record_per_line_with_a_stable_id(server):
    batch = make_batch("/var/log/app.log", LINES, offset=1000)
    asyncio.run(send_all(http_sink(server.url), batch))
    (request,) = server.requests
    assert request.headers["Content-Type"] == "application/x-ndjson"
    records = request.json_lines()
    assert [r["line"] for r in records] == TEXT
    offsets = [offset for offset, _line in batch.records()]
    assert [r["offset"] for r in records] == offsets
    assert [r["id"] for r in records] == [batch.line_id(o) for o in offsets]
    assert {r["path"] for r in records} == {"/var/log/app.log"}
    assert all(r["host"] and r["ts"].endswith("Z") for r in records)


def test_redelivered_batch_carries_the_same_ids(server):
    batch = make_batch(lines=LINES)
    asyncio.run(send_all(http_sink(server.url), batch, batch))
    first, again = (r.json_lines() for r in server.requests)
    assert [r["id"] for r in first] == [r["id"] for r in again]


def test_gzip_body_is_compressed_and_decodes_to_the_same_records(server):
    batch = make_batch(lines=LINES)
    asyncio.run(send_all(http_sink(server.url + "?gzip=true"), batch))
    (request,) = server.requests
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.raw[:2] == b"\x1f\x8b" and gzip.decompress(request.raw) == request.body
    assert [r["line"] for r in request.json_lines()] == TEXT


def test_es_bulk_sends_action_and_document_pairs_with_the_line_id(server):
    server.ok_body = b'{"took":1,"errors":false,"items":[]}'
    batch = make_batch("/var/log/app.log", LINES)
    asyncio.run(send_all(http_sink(server.url, format="es-bulk", index="app-logs"), batch))
    (request,) = server.requests
    rows = request.json_lines()
    actions, docs = rows[0::2], rows[1::2]
    assert len(actions) == len(docs) == len(LINES)
    offsets = [offset for offset, _line in batch.records()]
    assert actions == [{"index": {"_index": "app-logs", "_id": batch.line_id(o)}} for o in offsets]
    assert [d["line"] for d in docs] == TEXT
    assert all(d["path"] == "/var/log/app.log" and d["@timestamp"].endswith("Z") for d in docs)
    assert request.body.endswith(b"\n")  # _bulk requires the final newline


def _bulk_answer(statuses: list[int], op: str = "index") -> bytes:
    items = [{op: {"_id": str(i), "status": s, **({"error": {"type": "mapper_parsing_exception",
                                                            "reason": "failed to parse"}} if s >= 300 else {})}}
             for i, s in enumerate(statuses)]
    return json.dumps({"errors": any(s >= 300 for s in statuses), "items": items}).encode()


def test_es_bulk_mapping_errors_are_counted_and_not_retried(server, caplog):
    server.ok_body = _bulk_answer([201, 400, 201, 201])
    sink = http_sink(server.url, format="es-bulk")
    with caplog.at_level(logging.WARNING, "logferry.http"):
        asyncio.run(send_all(sink, make_batch(lines=LINES)))
    assert len(server.requests) == 1
    assert sink.stats.rejected == 1
    assert "refused 1 lines" in caplog.text and "mapper_parsing_exception" in caplog.text


def test_es_bulk_items_refused_with_429_are_sent_again(server):
    # refuse one document with 429, then with 503, then accept everything
    for statuses in ([201, 429, 201, 201], [200, 503, 200, 200], [200, 201, 200, 200]):
        server.script.append(lambda statuses=statuses: web.Response(body=_bulk_answer(statuses)))
    sink = http_sink(server.url, format="es-bulk", retries=5)
    asyncio.run(send_all(sink, make_batch(lines=LINES)))
    assert len(server.requests) == 3
    ids = [[row["index"]["_id"] for row in r.json_lines()[0::2]] for r in server.requests]
    assert ids[0] == ids[1] == ids[2]  # the same _ids: the retry overwrites, never doubles
    assert sink.stats.rejected == 0 and sink.stats.retries == 2


def test_es_bulk_create_conflicts_are_re_deliveries_not_errors(server):
    server.ok_body = _bulk_answer([409, 201, 409, 201], op="create")
    sink = http_sink(server.url, format="es-bulk", action="create")
    asyncio.run(send_all(sink, make_batch(lines=LINES)))
    assert server.requests[0].json_lines()[0] == {"create": {"_index": "logferry", "_id": "dev:ino:fp:0"}}
    assert len(server.requests) == 1 and sink.stats.rejected == 0


def test_es_bulk_answer_that_is_not_a_bulk_answer_stops_the_run(server):
    server.ok_body = b"<html>proxy says hello</html>"
    with pytest.raises(SinkError, match="unexpected answer to a _bulk request") as info:
        asyncio.run(send_all(http_sink(server.url, format="es-bulk"), make_batch()))
    assert not info.value.retryable


def test_loki_push_has_labels_and_strictly_increasing_timestamps(server):
    server.ok_status = 204
    same_time = 1_700_000_000.5
    first = make_batch("/var/log/app.log", LINES, offset=0, read_at=same_time)
    second = make_batch("/var/log/app.log", [b"later"] * 3, offset=first.end, read_at=same_time)
    sink = http_sink(server.url + "?format=loki&labels=job:app,env:prod")
    asyncio.run(send_all(sink, first, second))
    assert server.requests[0].headers["Content-Type"] == "application/json"
    stamps = []
    for request in server.requests:
        (stream,) = json.loads(request.body)["streams"]
        assert stream["stream"] == {"path": "/var/log/app.log", "filename": "app.log", "host": sink.host,
                                    "job": "app", "env": "prod"}
        assert all(isinstance(ts, str) and ts.isdigit() and isinstance(line, str) for ts, line in stream["values"])
        stamps += [int(ts) for ts, _line in stream["values"]]
    assert [line for r in server.requests for _ts, line in json.loads(r.body)["streams"][0]["values"]] == (
        TEXT + ["later"] * 3)
    assert stamps == sorted(set(stamps)), "timestamps must strictly increase within the stream"
    assert stamps[0] == int(same_time * 1e9)


def test_loki_gives_a_batch_sent_again_the_same_timestamps():
    clock = LokiClock()
    stream = {"path": "/a"}
    batch = make_batch(lines=LINES, read_at=100.0)
    first = clock.first_ns(stream, batch, 4)
    assert clock.first_ns(stream, batch, 4) == first
    later = make_batch(lines=LINES, offset=batch.end, read_at=100.0)
    assert clock.first_ns(stream, later, 4) == first + 4


def test_loki_partial_refusal_counts_the_ignored_entries(server, caplog):
    server.script.append(lambda: web.Response(status=400, text=(
        "entry with timestamp 2026-01-01 ignored, reason: 'entry too far behind, oldest acceptable "
        "timestamp is: 2026-01-02T00:00:00Z',\nuser 'fake', total ignored: 2 out of 4 for stream: {}")))
    sink = http_sink(server.url + "?format=loki")
    with caplog.at_level(logging.WARNING, "logferry.http"):
        asyncio.run(send_all(sink, make_batch(lines=LINES)))
    assert len(server.requests) == 1  # Loki stored the rest: the batch counts as delivered
    assert sink.stats.rejected == 2 and "refused 2 lines" in caplog.text


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after("3", 30) == 3.0
    assert retry_after("120", 30) == 30.0  # capped
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 30, now=1445412480.0) == 10.0
    assert retry_after("yesterday", 30) is None and retry_after(None, 30) is None
