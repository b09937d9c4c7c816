"""The hand-built XADD payload is exactly what redis-py would send for the same commands, and
replies parsed in bulk are counted and attributed to the right batch."""

from __future__ import annotations

import pytest
from redis import exceptions as rex
from redis.asyncio.connection import Connection

from logferry_redis.wire import ASKING, RUN_LINES, Replies, xadd_payload

from .conftest import make_batch


def redis_py_packing(stream: bytes, batch, maxlen: int | None, asking: bool = False) -> bytes:
    connection = Connection()
    commands = []
    for offset, line in batch.records():
        if asking:
            commands.append(("ASKING",))
        trim = ("MAXLEN", "~", maxlen) if maxlen else ()
        commands.append(("XADD", stream, *trim, "*", "line", line, "path", batch.path.encode("utf-8", "surrogateescape"),
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


@pytest.mark.parametrize("offset", [0, 99_990, 999_999_000])
def test_the_payload_matches_across_offsets_of_more_digits_and_long_batches(offset: int) -> None:
    """Offsets that gain a digit inside the batch, more lines than one run of the template, and
    ``%`` everywhere it could be mistaken for formatting (stream, path, file id, lines)."""
    lines = [b"%d %s %%", b"", b"100%"] + [b"line %d of many" % i for i in range(2 * RUN_LINES + 5)]
    batch = make_batch(lines, path="/var/log/%s/\udcff.log", offset=offset, file_id="f%d")
    for maxlen in (None, 5):
        payload, replies = xadd_payload(b"logs:%s", batch, maxlen)
        assert payload == redis_py_packing(b"logs:%s", batch, maxlen)
        assert replies == len(lines)


OK = b"$15\r\n1700000000000-0\r\n"


def test_replies_are_counted_across_chunk_boundaries_and_errors_kept_per_batch() -> None:
    wire = OK * 3 + b"-WRONGTYPE Operation against a key\r\n" + OK + b"-MOVED 12 127.0.0.1:7001\r\n" * 2 + OK
    replies = Replies([2, 3, 2, 1])  # four batches: 2 + 3 + 2 + 1 commands
    for i in range(0, len(wire), 7):  # the bytes arrive in pieces that cut replies anywhere
        assert not replies.complete
        replies.feed(wire[i:i + 7])
    assert replies.complete and replies.received == 8
    first, second, third, fourth = replies.errors
    assert first is None and fourth is None
    assert isinstance(second, rex.ResponseError) and str(second) == "WRONGTYPE Operation against a key"
    assert str(third) == "MOVED 12 127.0.0.1:7001"


def test_more_replies_than_commands_or_bytes_that_are_not_resp_are_an_invalid_response() -> None:
    with pytest.raises(rex.InvalidResponse, match="more than"):
        Replies([1]).feed(OK * 2)
    with pytest.raises(rex.InvalidResponse):
        Replies([1]).feed(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(rex.InvalidResponse, match="unexpected reply"):  # a RESP3 push, or a stray array
        Replies([2]).feed(OK + b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n")
