"""Each body format, as the server receives and parses it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
from json.encoder import encode_basestring

import pytest
from aiohttp import web
from logferry import SinkError
from logferry.formats import iso_ts
from logferry_http.formats import (
    BulkOutcome,
    LokiClock,
    bulk_outcome,
    bulk_stored_all,
    encode_es_bulk,
    encode_loki,
    encode_ndjson,
    es_bulk_documents,
    loki_stream,
)
from logferry_http.retry import retry_after

from lfhttp_support import http_sink, make_batch, send_all, send_many_all

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


def test_es_bulk_only_the_documents_refused_for_now_are_sent_again(server):
    """Items refused with 429, then 503, are sent again alone, in their order; the others once."""
    def status(doc: dict, times: int) -> int:
        return (429, 503, 201)[times] if "busy" in doc["line"] else 201

    server.item_status = status
    app = make_batch("/var/log/app.log", [b"a0", b"a1 busy", b"a2", b"a3 busy", b"a4"], file_id="app")
    web_ = make_batch("/var/log/web.log", [b"w0 busy", b"w1"], file_id="web")
    sink = http_sink(server.url, format="es-bulk", retries=5, max_backoff="50ms")
    asyncio.run(send_many_all(sink, [app, web_]))
    first, second, third = server.requests
    assert len(first.json_lines()) == 2 * 7  # both files' batches in one request
    busy = ["a1 busy", "a3 busy", "w0 busy"]
    assert [doc["line"] for doc in second.json_lines()[1::2]] == busy  # in their order, nothing else
    assert [doc["line"] for doc in third.json_lines()[1::2]] == busy
    ids = [next(iter(row.values()))["_id"] for row in second.json_lines()[0::2]]
    offsets = dict((line, offset) for offset, line in app.records())
    assert ids == [app.line_id(offsets[b"a1 busy"]), app.line_id(offsets[b"a3 busy"]), web_.line_id(0)]
    assert sorted(doc["line"] for doc in server.indexed) == sorted(["a0", "a2", "a4", "w1", *busy])
    assert sink.stats.retries == 2 and sink.stats.rejected == 0


def test_es_bulk_refused_for_now_and_for_good_in_one_answer(server, caplog):
    """A 400 item is counted once and never sent again; the 429 item alone is."""
    server.item_status = lambda doc, times: {"bad": 400, "busy": 429 if times == 0 else 201}.get(doc["line"], 201)
    sink = http_sink(server.url, format="es-bulk", max_backoff="50ms")
    with caplog.at_level(logging.WARNING, "logferry.http"):
        asyncio.run(send_all(sink, make_batch(lines=[b"ok", b"bad", b"busy", b"ok too"])))
    first, second = server.requests
    assert [doc["line"] for doc in second.json_lines()[1::2]] == ["busy"]
    assert sink.stats.rejected == 1 and "refused 1 lines" in caplog.text


def test_es_bulk_documents_refused_every_time_fail_the_call_retryable(server):
    """When the in-sink retries are used up the call fails retryable: the engine sends it all again."""
    server.item_status = lambda doc, times: 503 if doc["line"] == "busy" else 201
    sink = http_sink(server.url, format="es-bulk", retries=2, max_backoff="50ms")
    with pytest.raises(SinkError, match=r"1 documents refused for now \(503 es_rejected_execution_exception: busy\) "
                                        r"\(3 requests\)") as info:
        asyncio.run(send_all(sink, make_batch(lines=[b"ok", b"busy"])))
    assert info.value.retryable
    assert [len(r.json_lines()) for r in server.requests] == [4, 2, 2]


def test_es_bulk_answer_with_items_that_do_not_match_the_documents_stops_the_run(server):
    server.ok_body = _bulk_answer([201, 429])  # two items for four documents: positions mean nothing
    with pytest.raises(SinkError, match="2 items for 4 documents") as info:
        asyncio.run(send_all(http_sink(server.url, format="es-bulk"), make_batch(lines=LINES)))
    assert not info.value.retryable


@pytest.mark.parametrize("answer", [
    b'{"took":30,"errors":false,"items":[]}',
    b'{"errors":false,"took":30,"items":[]}',
    b' {\n  "took" : 30,\n  "ingest_took" : 0,\n  "errors" : false, "items": []}',
])
def test_es_bulk_answers_without_errors_are_read_without_parsing(answer):
    assert bulk_stored_all(answer) and bulk_outcome(answer) == BulkOutcome()


@pytest.mark.parametrize("answer", [
    b'{"items":[{"index":{"status":429,"x":{"errors":false}}}],"errors":true}',  # a nested key
    b'{"took":1,"errors":true,"items":[{"index":{"status":429}}]}',
])
def test_es_bulk_answers_that_may_hold_errors_are_parsed(answer):
    assert not bulk_stored_all(answer)
    assert bulk_outcome(answer).retry == [0]


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


# -- the encoders write, byte for byte, what the per-line encoders of 0.1 wrote ------------------

TRICKY = [b"", b'say "hi"', b"back\\slash", b"tab\t cr\r nul\x00 \x01\x1f del\x7f", b"caf\xc3\xa9 \xf0\x9f\x9a\x80",
          b"\xff invalid \xe2\x82", b"percent %d %s %%", b"\xed\xa0\x80 surrogate"]


def _text(line: bytes) -> str:
    return encode_basestring(line.decode("utf-8", "replace"))


def ndjson_per_line(batch, host):
    head = f'{{"ts":"{iso_ts(batch.read_at)}","host":{encode_basestring(host)},"path":{encode_basestring(batch.path)}'
    ident = encode_basestring(batch.file_id)[:-1]
    return "".join(f'{head},"offset":{o},"id":{ident}:{o}","line":{_text(line)}}}\n'
                   for o, line in batch.records()).encode()


def es_bulk_per_line(batch, host, index, action):
    meta = f'{{"{action}":{{"_index":{encode_basestring(index)},"_id":{encode_basestring(batch.file_id)[:-1]}:'
    doc = (f'{{"@timestamp":"{iso_ts(batch.read_at)}","host":{encode_basestring(host)},'
           f'"path":{encode_basestring(batch.path)}')
    return "".join(f'{meta}{o}"}}}}\n{doc},"offset":{o},"line":{_text(line)}}}\n'
                   for o, line in batch.records()).encode()


def loki_per_line(batch, stream, first_ns):
    values = ",".join(f'["{first_ns + i}",{_text(line)}]' for i, (_o, line) in enumerate(batch.records()))
    return f'{{"streams":[{{"stream":{json.dumps(stream, ensure_ascii=False)},"values":[{values}]}}]}}'.encode()


def test_encoders_write_what_the_per_line_encoders_wrote():
    rng = random.Random(7)
    for _ in range(500):
        lines = [b"".join(rng.choice(TRICKY) for _ in range(rng.randrange(3))) for _ in range(rng.randrange(1, 5))]
        batch = make_batch(rng.choice(["/var/log/a.log", '/var/%d/"q" caf\u00e9.log']), lines,
                           offset=rng.randrange(10**9), file_id="0123456789abcdef")
        host = rng.choice(["web1", 'h%s"\u00e9'])
        assert b"".join(encode_ndjson([batch], host)) == ndjson_per_line(batch, host)
        assert b"".join(encode_es_bulk([batch], host, "i%d", "create")) == es_bulk_per_line(
            batch, host, "i%d", "create")
        stream = loki_stream(batch, host, {"job": "a%sb"})
        assert b"".join(encode_loki([(stream, [(batch, 1_700_000_000_123_456_789)])])) == loki_per_line(
            batch, stream, 1_700_000_000_123_456_789)


def test_several_batches_encode_as_the_concatenation_of_each():
    first = make_batch("/a.log", TRICKY, file_id="aaaa")
    second = make_batch("/b.log", TRICKY[::-1], offset=77, file_id="bbbb")
    assert b"".join(encode_ndjson([first, second], "h")) == ndjson_per_line(first, "h") + ndjson_per_line(second, "h")
    assert b"".join(encode_es_bulk([first, second], "h", "i", "index")) == (
        es_bulk_per_line(first, "h", "i", "index") + es_bulk_per_line(second, "h", "i", "index"))


def test_es_bulk_documents_picks_whole_documents_by_position():
    batch = make_batch(lines=[b"zero", b"one \"\\", b"two"])
    body = b"".join(encode_es_bulk([batch], "h", "i", "index"))
    picked = es_bulk_documents(body, [0, 2])
    rows = [json.loads(row) for row in picked.splitlines()]
    assert [row["line"] for row in rows[1::2]] == ["zero", "two"]
