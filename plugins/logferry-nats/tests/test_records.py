"""Records that processors made (``batch.events``): one message each, a multiline event whole;
raw payloads are the record's text, JSON payloads logferry's records with their fields and time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from logferry_nats import wire

from logferry import Record
from logferry.formats import iso_ts
from logferry.testing import SAMPLE_LOG, SAMPLE_PROCESSORS, SAMPLE_TRACE, processed_batch

from .conftest import messages, ship
from .live import LOGFERRY
from .servers import NatsServer


def sample() -> list[Record]:
    return [
        Record(0, '{"level":"info","n":3}', {"level": "info", "n": 3}, ts=1_700_000_000.25),
        Record(23, SAMPLE_TRACE),
        Record(99_990, "bad \udcff byte", {"env": "prod"}),
    ]


def test_a_multiline_record_is_one_message_of_its_exact_bytes(nats_server: NatsServer) -> None:
    batch = processed_batch(sample())
    ship(f"{nats_server.url}?stream=r&subject=r", batch)
    got = messages(nats_server.url, "r")
    assert [m.data for m in got] == [b'{"level":"info","n":3}', SAMPLE_TRACE.encode(), b"bad \xff byte"]
    assert [m.id for m in got] == ["f1:0", "f1:23", "f1:99990"]
    assert [int(m.headers["Logferry-Offset"]) for m in got] == [0, 23, 99_990]
    assert {unquote_to_bytes(m.headers["Logferry-Path"]) for m in got} == {b"/var/log/app.log"}


def test_json_payloads_carry_the_records_fields_and_own_time(nats_server: NatsServer) -> None:
    batch = processed_batch(sample())
    ship(f"{nats_server.url}?stream=j&subject=j&format=json", batch)
    records = [json.loads(m.data) for m in messages(nats_server.url, "j")]
    read = iso_ts(batch.read_at)
    assert records == [
        {"ts": iso_ts(1_700_000_000.25), "path": "/var/log/app.log", "offset": 0, "id": "f1:0",
         "line": '{"level":"info","n":3}', "level": "info", "n": 3},
        {"ts": read, "path": "/var/log/app.log", "offset": 23, "id": "f1:23", "line": SAMPLE_TRACE},
        {"ts": read, "path": "/var/log/app.log", "offset": 99_990, "id": "f1:99990", "line": "bad \ufffd byte",
         "env": "prod"},
    ]


def test_a_multiline_record_over_max_payload_is_named_before_anything_is_sent() -> None:
    batch = processed_batch([Record(0, "short"), Record(6, "x" * 600 + "\n\tat " + "y" * 600)])
    with pytest.raises(wire.TooLarge) as info:
        next(wire.messages(b"s", b"_INBOX.x", batch, json=False, max_payload=1024))
    assert info.value.offset == 6 and info.value.size > 1024




def test_processors_fields_and_multiline_events_arrive_end_to_end(nats_server: NatsServer, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(SAMPLE_LOG)
    (tmp_path / "logferry.toml").write_text(SAMPLE_PROCESSORS)
    for stream, fmt in (("e2ejson", "json"), ("e2eraw", "raw")):
        done = subprocess.run([*LOGFERRY, "run", str(logs / "*.log"), "--once", "-c", str(tmp_path / "logferry.toml"),
                               "--sink", f"{nats_server.url}?stream={stream}&subject={stream}&format={fmt}",
                               "--state-dir", str(tmp_path / stream)],
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
    raw = messages(nats_server.url, "e2eraw")
    assert [m.data for m in raw] == [b'{"time":"2024-05-01T10:00:00Z","level":"info","msg":"started"}',
                                     SAMPLE_TRACE.encode(), b'{"level":"error","code":503}']
    records = [json.loads(m.data) for m in messages(nats_server.url, "e2ejson")]
    assert [r["line"] for r in records] == [m.data.decode() for m in raw]
    assert [r["env"] for r in records] == ["prod"] * 3
    assert (records[0]["ts"], records[0]["level"], records[2]["code"]) == ("2024-05-01T10:00:00.000Z", "info", 503)
    assert "level" not in records[1] and "time" not in records[0]
    assert [m.id for m in raw] == [r["id"] for r in records]
