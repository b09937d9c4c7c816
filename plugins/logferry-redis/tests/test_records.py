"""Records that processors made (``batch.events``): a multiline event is one entry, fields and the
record's own time follow the usual fields, byte for byte what redis-py would send."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from logferry_redis.wire import xadd_payload
from redis.asyncio.connection import Connection

from logferry import Batch, Record
from logferry.formats import iso_ts
from logferry.testing import SAMPLE_LOG, SAMPLE_PROCESSORS, SAMPLE_TRACE, processed_batch

from .conftest import entries, ship
from .servers import RedisServer


def sample() -> list[Record]:
    return [
        Record(0, '{"level":"info","n":3}', {"level": "info", "n": 3}, ts=1_700_000_000.25),
        Record(23, SAMPLE_TRACE),
        Record(130, "GET / 200 100%", {"status": 200, "ok": True, "ctx": {"a": [1, None]}, "caf\u00e9": "\u00fc"}),
        Record(9_999_999_990, "bad \udcff byte", {"raw": "\udcff", "none": None}),
    ]


def redis_py_packing(stream: bytes, batch: Batch, maxlen: int | None, asking: bool) -> bytes:
    """The same commands, packed by redis-py from the records' values."""
    connection = Connection()
    commands = []
    for record in batch.events or ():
        if asking:
            commands.append(("ASKING",))
        extra: list[bytes | str] = []
        if record.ts is not None:
            extra += ["ts", iso_ts(record.ts)]
        for name, value in (record.fields or {}).items():
            as_bytes = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else json.dumps(
                value, separators=(",", ":")).encode()
            extra += [name, as_bytes]
        trim = ("MAXLEN", "~", maxlen) if maxlen else ()
        commands.append(("XADD", stream, *trim, "*", "line", record.line.encode("utf-8", "surrogateescape"),
                         "path", batch.path.encode("utf-8", "surrogateescape"), "offset", record.offset,
                         "id", batch.line_id(record.offset), *extra))
    return b"".join(connection.pack_commands(commands))


@pytest.mark.parametrize("maxlen", [None, 1000])
@pytest.mark.parametrize("asking", [False, True])
def test_records_payload_matches_redis_py_byte_for_byte(maxlen: int | None, asking: bool) -> None:
    """``%`` wherever it could be taken for formatting; offsets of 1 to 10 digits."""
    batch = processed_batch(sample(), path="/var/log/%s \udcff.log", file_id="f%d")
    payload, replies = xadd_payload(b"logs:%s{app}", batch, maxlen, asking)
    assert payload == redis_py_packing(b"logs:%s{app}", batch, maxlen, asking)
    assert replies == 4 * (2 if asking else 1)


def test_records_arrive_with_their_fields_and_own_time_a_multiline_event_as_one_value(
    redis_server: RedisServer,
) -> None:
    ship(f"{redis_server.url}?stream=r", processed_batch(sample()))
    got = entries(redis_server.port, "r")
    assert [e[b"line"] for e in got] == [b'{"level":"info","n":3}', SAMPLE_TRACE.encode(), b"GET / 200 100%",
                                         b"bad \xff byte"]
    assert list(got[0]) == [b"line", b"path", b"offset", b"id", b"ts", b"level", b"n"]
    assert got[0][b"ts"] == b"2023-11-14T22:13:20.250Z" and got[0][b"n"] == b"3"
    assert list(got[1]) == [b"line", b"path", b"offset", b"id"]  # no time of its own: no ts
    assert {k: got[2][k] for k in list(got[2])[4:]} == {b"status": b"200", b"ok": b"true",
                                                       b"ctx": b'{"a":[1,null]}', "café".encode(): "ü".encode()}
    assert (got[3][b"raw"], got[3][b"none"], got[3][b"offset"]) == (b"\xff", b"null", b"9999999990")




def test_processors_fields_and_multiline_events_arrive_end_to_end(redis_server: RedisServer, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(SAMPLE_LOG)
    (tmp_path / "logferry.toml").write_text(SAMPLE_PROCESSORS)
    done = subprocess.run([sys.executable, "-m", "logferry", "run", str(logs / "*.log"), "--once",
                           "-c", str(tmp_path / "logferry.toml"), "--sink", f"{redis_server.url}?stream=e2e",
                           "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    got = entries(redis_server.port, "e2e")
    assert [e[b"line"] for e in got] == [b'{"time":"2024-05-01T10:00:00Z","level":"info","msg":"started"}',
                                         SAMPLE_TRACE.encode(), b'{"level":"error","code":503}']
    assert [e[b"env"] for e in got] == [b"prod"] * 3
    assert (got[0][b"ts"], got[0][b"level"], got[0][b"msg"]) == (b"2024-05-01T10:00:00.000Z", b"info", b"started")
    assert b"ts" not in got[1] and b"ts" not in got[2] and got[2][b"code"] == b"503"
    assert b"time" not in got[0]  # it became the record's time
