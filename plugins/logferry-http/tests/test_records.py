"""Records that processors made (``batch.events``): their fields, their own times and multiline
events reach each body format whole, as the server parses them."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from lfhttp_support import Server, http_sink, logferry, make_batch, send_all
from logferry_http.formats import encode_es_bulk, encode_ndjson, es_bulk_documents

from logferry import Record
from logferry.formats import iso_ts
from logferry.testing import SAMPLE_PROCESSORS, SAMPLE_TRACE, processed_batch

READ_AT = 1_800_000_000.5


def sample() -> list[Record]:
    return [
        Record(0, '{"level":"info","msg":"started"}', {"level": "info", "msg": "started", "n": 3}, ts=1_700_000_000.25),
        Record(33, SAMPLE_TRACE),  # a multiline event: no fields, read time
        Record(140, "GET / 200", {"host": "req.example", "env": "prod", "ctx": {"a": [1, True]}}),
        Record(150, "bad \udcff byte", {"raw": "\udcff"}, ts=1_700_000_001.0),
    ]


def test_ndjson_records_carry_their_fields_and_their_own_time(server: Server) -> None:
    batch = processed_batch(sample())
    sink = http_sink(server.url)
    asyncio.run(send_all(sink, batch))
    got = server.stored_records()
    own = {"host": sink.host, "path": "/var/log/app.log"}
    assert got == [
        {"ts": iso_ts(1_700_000_000.25), **own, "offset": 0, "id": "f1:0", "line": '{"level":"info","msg":"started"}',
         "level": "info", "msg": "started", "n": 3},
        {"ts": iso_ts(READ_AT), **own, "offset": 33, "id": "f1:33", "line": SAMPLE_TRACE},
        {"ts": iso_ts(READ_AT), **own, "offset": 140, "id": "f1:140", "line": "GET / 200",
         "parsed_host": "req.example", "env": "prod", "ctx": {"a": [1, True]}},
        {"ts": iso_ts(1_700_000_001.0), **own, "offset": 150, "id": "f1:150", "line": "bad \ufffd byte",
         "raw": "\ufffd"},
    ]
    assert list(got[0]) == ["ts", "host", "path", "offset", "id", "line", "level", "msg", "n"]


def test_records_without_fields_encode_as_the_lines_do() -> None:
    """The record path writes the same objects as the whole-batch path for plain lines."""
    rng = random.Random(3)
    pieces = ["", 'say "hi"', "back\\slash", "tab\t cr\r nul\x00 \x1f", "caf\u00e9 \U0001f680", "\udcff", "100%d"]
    for _ in range(200):
        lines = ["".join(rng.choice(pieces) for _ in range(3)) for _ in range(rng.randrange(1, 5))]
        plain = make_batch("/a.log", [line.encode("utf-8", "surrogateescape") for line in lines],
                           offset=rng.randrange(10**6), read_at=READ_AT)
        events = plain.with_records([Record(offset, line.decode("utf-8", "surrogateescape"))
                                     for offset, line in plain.records()])
        for encode in (lambda b: encode_ndjson([b], "h"), lambda b: encode_es_bulk([b], "h", "i", "create")):
            expected = [json.loads(row) for row in b"".join(encode(plain)).splitlines()]
            got = [json.loads(row) for row in b"".join(encode(events)).splitlines()]
            assert [list(o.items()) for o in got] == [list(o.items()) for o in expected]


def test_es_bulk_documents_have_the_records_time_and_fields_never_in_the_action(server: Server) -> None:
    server.ok_body = b'{"took":1,"errors":false,"items":[]}'
    records = sample()
    records[0].fields["@timestamp"] = "from the app"  # a logstash-style field: kept, renamed
    asyncio.run(send_all(http_sink(server.url, format="es-bulk", index="app"), processed_batch(records)))
    rows = server.requests[0].json_lines()
    actions, docs = rows[0::2], rows[1::2]
    assert actions == [{"index": {"_index": "app", "_id": f"f1:{r.offset}"}} for r in records]
    assert [d["@timestamp"] for d in docs] == [iso_ts(1_700_000_000.25), iso_ts(READ_AT), iso_ts(READ_AT),
                                               iso_ts(1_700_000_001.0)]
    assert docs[0]["parsed_@timestamp"] == "from the app" and docs[0]["n"] == 3
    assert docs[1]["line"] == SAMPLE_TRACE
    assert (docs[2]["host"], docs[2]["parsed_host"], docs[2]["env"]) == (docs[0]["host"], "req.example", "prod")
    assert list(docs[1]) == ["@timestamp", "host", "path", "offset", "line"]


def test_es_bulk_sends_a_refused_multiline_document_again_alone_and_whole(server: Server) -> None:
    """Partial failures pick documents by position, two lines each: a multiline event is still two."""
    server.item_status = lambda doc, times: 429 if "Exception" in doc["line"] and times == 0 else 201
    sink = http_sink(server.url, format="es-bulk", max_backoff="50ms")
    asyncio.run(send_all(sink, processed_batch(sample())))
    first, second = server.requests
    assert len(first.json_lines()) == 8
    (action, doc), = [second.json_lines()]
    assert action["index"]["_id"] == "f1:33" and doc["line"] == SAMPLE_TRACE
    assert sorted(d["offset"] for d in server.indexed) == [0, 33, 140, 150]


def test_es_bulk_documents_picks_multiline_records_by_position() -> None:
    body = b"".join(encode_es_bulk([processed_batch(sample())], "h", "i", "index"))
    rows = [json.loads(row) for row in es_bulk_documents(body, [1, 3]).splitlines()]
    assert [row["line"] for row in rows[1::2]] == [SAMPLE_TRACE, "bad \ufffd byte"]


def test_ndjson_bodies_over_the_limit_are_cut_between_records(server: Server) -> None:
    records = [Record(i * 100, f"event {i}\n\tat frame {i}", {"i": i}) for i in range(200)]
    asyncio.run(send_all(http_sink(server.url, max_body_bytes="2KiB"), processed_batch(records)))
    assert len(server.requests) > 5
    assert all(len(r.body) <= 2048 for r in server.requests)
    assert [(r["line"], r["i"]) for r in server.stored_records()] == [(r.line, r.fields["i"]) for r in records]


def loki_values(server: Server) -> list[list]:
    return [entry for seen in server.requests for entry in server.loki_entries(seen)]


def test_loki_entries_take_the_records_time_and_keep_repeats_of_one_second(server: Server) -> None:
    records = sample() + [Record(170 + i, "tick", ts=1_700_000_005.0) for i in range(3)]
    asyncio.run(send_all(http_sink(server.url, format="loki"), processed_batch(records)))
    values = loki_values(server)
    assert [len(v) for v in values] == [2] * 7  # fields are not sent unless asked
    assert [v[1] for v in values] == [r.line.replace("\udcff", "\ufffd") for r in records]
    stamps = [int(v[0]) for v in values]
    second = 1_700_000_005_000_000_000
    assert stamps[0] == 1_700_000_000_250_000_000 and stamps[3] == 1_700_000_001_000_000_000
    assert stamps[1] == int(READ_AT * 1e9) + 1 and stamps[2] == int(READ_AT * 1e9) + 2  # read time, line i
    assert stamps[4:] == [second, second + 1, second + 2]  # Loki would store one "tick" of three


def test_loki_structured_metadata_has_every_field_as_a_string(server: Server) -> None:
    asyncio.run(send_all(http_sink(server.url, format="loki", structured_metadata=True), processed_batch(sample())))
    values = loki_values(server)
    assert values[0][2] == {"level": "info", "msg": "started", "n": "3"}
    assert len(values[1]) == 2 and values[1][1] == SAMPLE_TRACE  # no fields: no metadata
    assert values[2][2] == {"host": "req.example", "env": "prod", "ctx": '{"a":[1,true]}'}
    assert values[3][2] == {"raw": "\ufffd"}


def test_loki_halves_a_batch_of_records_between_records(server: Server) -> None:
    records = [Record(i * 100, f"event {i}\n\tat frame {i}\n\tat caller {i}") for i in range(100)]
    records[10].ts = 1_700_000_000.0
    asyncio.run(send_all(http_sink(server.url, format="loki", max_body_bytes="1KiB"), processed_batch(records)))
    assert len(server.requests) > 4
    values = loki_values(server)
    assert [v[1] for v in values] == [r.line for r in records]  # each once, whole, in order
    stamps = [int(v[0]) for i, v in enumerate(values) if i != 10]
    assert stamps == list(range(int(READ_AT * 1e9), int(READ_AT * 1e9) + 100))[:10] + list(
        range(int(READ_AT * 1e9) + 11, int(READ_AT * 1e9) + 100))
    assert int(values[10][0]) == 1_700_000_000_000_000_000


# -- end to end: the real command, processors configured, the real server -------------------------

APP_LOG = (
    '{"time":"2024-05-01T10:00:00Z","level":"info","msg":"started","host":"req.example"}\n'
    f"{SAMPLE_TRACE}\n"
    '{"time":"2024-05-01T10:00:02.5Z","level":"error","msg":"failed","code":503}\n'
    "plain text line\n"
)


@pytest.mark.parametrize("fmt", ["ndjson", "es-bulk", "loki"])
def test_processors_fields_and_multiline_events_arrive_end_to_end(tmp_path, fmt: str) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text(APP_LOG)
    (tmp_path / "logferry.toml").write_text(SAMPLE_PROCESSORS)
    server = Server(item_status=(lambda doc, times: 201) if fmt == "es-bulk" else None).start()
    try:
        url = f"{server.url}?format={fmt}" + ("&structured_metadata=true" if fmt == "loki" else "")
        done = logferry("run", str(tmp_path / "logs" / "*.log"), "--once", "-c", str(tmp_path / "logferry.toml"),
                        "--sink", url, "--state-dir", str(tmp_path / "state"))
        assert done.returncode == 0, done.stderr
        lines = [line for line in APP_LOG.splitlines() if not line.startswith("\tat ")]
        lines[1] = SAMPLE_TRACE
        assert server.stored_lines(fmt) == lines  # the stack trace is one record, whole
        if fmt == "loki":
            values = [entry for seen in server.stored for entry in server.loki_entries(seen)]
            assert values[0][0] == "1714557600000000000" and values[2][0] == "1714557602500000000"
            assert values[0][2] == {"level": "info", "msg": "started", "host": "req.example", "env": "prod"}
            assert values[1][2] == {"env": "prod"} and values[2][2]["code"] == "503"
            return
        docs = server.indexed if fmt == "es-bulk" else server.stored_records()
        ts = "@timestamp" if fmt == "es-bulk" else "ts"
        assert [d[ts] for d in docs][::2] == ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:02.500Z"]
        assert [d["env"] for d in docs] == ["prod"] * 4
        assert (docs[0]["level"], docs[0]["parsed_host"], docs[2]["code"]) == ("info", "req.example", 503)
        assert "level" not in docs[1] and "level" not in docs[3]
    finally:
        server.stop()
