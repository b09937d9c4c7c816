"""The hand-built XADD payload is exactly what redis-py would send for the same commands."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from logferry_redis.wire import ASKING, xadd_payload

from .conftest import make_batch


def redis_py_packing(stream: bytes, batch, maxlen: int | None, asking: bool = False) -> bytes:
    connection = Connection()
    commands = []
    for offset, line in batch.records():
        if asking:
            commands.append(("ASKING",))
        trim = ("MAXLEN", "~", maxlen) if maxlen else ()
        commands.append(("XADD", stream, *trim, "*", "line", line, "path", batch.path.encode(),
                         "offset", offset, "id", batch.line_id(offset)))
    return b"".join(connection.pack_commands(commands))


@pytest.mark.parametrize("maxlen", [None, 1000])
@pytest.mark.parametrize("asking", [False, True])
def test_the_payload_matches_redis_py_byte_for_byte(maxlen: int | None, asking: bool) -> None:
    batch = make_batch([b"one", b"", b"nul\x00 \xff\r", b"x" * 70_000], path="/var/log/a b.log", offset=12345)
    payload, replies = xadd_payload(b"logs:{app}", batch, maxlen, asking)
    assert payload == redis_py_packing(b"logs:{app}", batch, maxlen, asking)
    assert replies == 4 * (2 if asking else 1)
    assert payload.startswith(ASKING) == asking
