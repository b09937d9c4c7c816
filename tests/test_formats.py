"""JSON records without per-line Python: byte for byte what a per-line encoder writes, for any bytes."""

from __future__ import annotations

import json
import random
from json.encoder import encode_basestring

import pytest

from logferry import Batch, JsonRecords, json_body
from logferry.records.formats import (
    PIECE_BYTES,
    _escaped_per_line,
    _escaped_whole,
    _is_utf8,
    _json_text,
    encode_json,
    iso_ts,
)

TRICKY = [
    b"", b"plain", b'say "hi"', b"back\\slash", b'\\"', b"tab\there", b"cr\rhere", b"nul\x00byte",
    b"\x01\x02\x07\x08\x0b\x0c\x0e\x1b\x1f", b"del\x7f", b"caf\xc3\xa9", b"rocket \xf0\x9f\x9a\x80",
    b"\xe2\x80\xa8 line separator", b"percent %d %s %% %", b"{\"json\": [1, 2]}", b"\\u0041 not an escape",
]
INVALID = [b"\xff", b"half \xe2\x82", b"\xe2\x82 then ascii", b"surrogate \xed\xa0\x80", b"\x80\x80",
           b"overlong \xc0\xaf", b"caf\xc3\xa9 \xff mixed", b"\xf0\x9f\x9a"]


def batch_of(lines: list[bytes], path: str = "/var/log/app.log", offset: int = 1000) -> Batch:
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path, "0123456789abcdef", offset, offset + len(data), data, 1_767_225_845.678)


def per_line_json(batch: Batch) -> bytes:
    """The per-line encoder ``--format json`` used before: the reference."""
    head = f'{{"ts":"{iso_ts(batch.read_at)}","path":{encode_basestring(batch.path)},"id":"{batch.file_id}:'
    return "".join(
        f'{head}{offset}","offset":{offset},"line":{encode_basestring(line.decode("utf-8", "replace"))}}}\n'
        for offset, line in batch.records()
    ).encode()


def random_lines(rng: random.Random) -> list[bytes]:
    alphabet = TRICKY + INVALID + [b"a", b" ", b'"', b"\\", b"\t", b"\x00", b"%"]
    return [b"".join(rng.choice(alphabet) for _ in range(rng.randrange(4))) for _ in range(rng.randrange(1, 6))]


@pytest.mark.parametrize("lines", [TRICKY, INVALID, TRICKY + INVALID, [b""] * 3, [b"x" * 100_000]])
def test_encode_json_writes_what_a_per_line_encoder_writes(lines):
    batch = batch_of(lines)
    assert encode_json(batch) == per_line_json(batch)
    assert [json.loads(row)["line"] for row in encode_json(batch).splitlines()] == [
        line.decode("utf-8", "replace") for line in lines]


def test_encode_json_matches_the_per_line_encoder_on_random_bytes():
    rng = random.Random(12)
    for _ in range(2000):
        batch = batch_of(random_lines(rng), path=rng.choice(["/a.log", '/d%d/"q".log', "/caf\u00e9/x\\y"]),
                         offset=rng.randrange(10**12))
        assert encode_json(batch) == per_line_json(batch), batch.data


def test_a_batch_of_many_pieces_is_encoded_as_one():
    """Batches are formatted a piece at a time (PIECE_BYTES): the seams must not show."""
    rng = random.Random(5)
    lines = [line for _ in range(3000) for line in random_lines(rng)] + [b"y" * (3 * PIECE_BYTES)] + TRICKY * 300
    for valid in (lines, [line for line in lines if _is_utf8(line)]):
        batch = batch_of(valid)
        assert len(batch.data) > 5 * PIECE_BYTES
        assert encode_json(batch) == per_line_json(batch)
        loki = json_body([JsonRecords(batch, ('["', '","', '"]'), count_from=10**18, sep=",")])
        assert loki == ",".join(f'["{10**18 + i}",{encode_basestring(line.decode("utf-8", "replace"))}]'
                                for i, line in enumerate(valid)).encode()


def test_a_view_of_a_read_buffer_encodes_as_its_bytes():
    batch = batch_of(TRICKY * 3000)
    viewed = Batch(batch.path, batch.file_id, batch.offset, batch.end, memoryview(bytearray(batch.data)),
                   batch.read_at)
    assert encode_json(viewed) == encode_json(batch)


def test_the_whole_batch_path_and_the_per_line_path_agree_on_valid_utf8():
    data = b"".join(line + b"\n" for line in TRICKY)
    assert _escaped_whole(data) == _escaped_per_line(data)
    for line in TRICKY:  # one by one too, so a difference names its input
        assert _escaped_whole(line + b"\n") == _escaped_per_line(line + b"\n"), line


def test_invalid_utf8_takes_the_per_line_path_and_is_replaced_line_by_line():
    data = b"".join(line + b"\n" for line in INVALID)
    assert _json_text(data) == _escaped_per_line(data)
    assert _json_text(data).decode().count("\ufffd") == sum(line.decode("utf-8", "replace").count("\ufffd")
                                                           for line in INVALID)


def test_every_byte_value_is_escaped_as_encode_basestring_does():
    for value in range(256):
        line = bytes([value]) if value != 0x0A else b""
        data = line + b"\n"
        expected = encode_basestring(line.decode("utf-8", "replace"))[1:-1].encode() + b"\n"
        assert _json_text(data) == expected, value


def test_json_body_joins_literals_and_records_with_numbers_counted_from_a_start():
    batch = batch_of([b'a"1', b"b%d"])
    body = json_body([b'{"100%":[', JsonRecords(batch, ('["', '","', '"]'), count_from=7, sep=","), b"]}"])
    assert json.loads(body) == {"100%": [["7", 'a"1'], ["8", "b%d"]]}


def test_json_body_of_several_batches_keeps_their_order_and_skips_empty_ones():
    first, empty, second = batch_of([b"1", b"2"]), batch_of([]), batch_of([b"3"], offset=0)
    pieces = ('{"o":', ',"l":"', '"}\n')
    body = json_body([JsonRecords(b, pieces) for b in (first, empty, second)])
    assert [json.loads(row) for row in body.splitlines()] == [
        {"o": 1000, "l": "1"}, {"o": 1002, "l": "2"}, {"o": 0, "l": "3"}]


def test_an_undecodable_file_name_is_written_not_raised():
    batch = batch_of([b"line"], path="/var/log/\udcff.log")  # os.fsdecode of b"\xff"
    assert json.loads(encode_json(batch))["path"] == "/var/log/?.log"



# -- a line's position travels with it: a stage may change its bytes, never its id ---------------

def changed(batch: Batch) -> Batch:
    """What a stage that rewrites lines hands on: other bytes (shorter and longer), the same positions."""
    offsets, lines = batch.split()
    return batch.with_lines([b"<%d>" % i * (i % 3) for i, _ in enumerate(lines)], offsets)


def test_a_line_whose_bytes_a_stage_changed_keeps_its_position_and_id():
    original = batch_of([b"first line", b"second", b"x" * 300, b"", b"last"])
    rewritten = changed(original)
    assert rewritten.split()[0] == original.split()[0]
    assert [o for o, _ in rewritten.records()] == [o for o, _ in original.records()]
    assert (rewritten.offset, rewritten.end, rewritten.line_count()) == (original.offset, original.end, 5)
    assert encode_json(rewritten) == per_line_json(rewritten)  # the whole-batch encoder uses the positions
    ids = [json.loads(record)["id"] for record in encode_json(rewritten).splitlines()]
    assert ids == [original.line_id(o) for o, _ in original.records()]


@pytest.mark.parametrize("max_bytes, max_lines", [(8, 0), (1, 0), (1000, 2), (12, 1)])
def test_cutting_a_changed_batch_keeps_each_lines_position(max_bytes, max_lines):
    original = batch_of([b"a" * n for n in range(1, 12)])
    rewritten = changed(original)
    pieces = rewritten.cut(max_bytes, max_lines)
    assert len(pieces) > 1
    assert [r for p in pieces for r in p.records()] == list(rewritten.records())
    assert pieces[-1].end == original.end
    for before, after in zip(pieces, pieces[1:]):  # each piece ends where the next one's first line starts
        assert before.end == after.offset
    middle = len(rewritten.data) // 2
    middle = bytes(rewritten.data).rfind(b"\n", 0, middle) + 1
    halves = rewritten.slice(0, middle), rewritten.slice(middle, len(rewritten.data))
    assert [r for h in halves for r in h.records()] == list(rewritten.records())


def test_lines_and_positions_must_pair_up():
    with pytest.raises(ValueError, match="2 lines for 1 offsets"):
        batch_of([b"a"]).with_lines([b"x", b"y"], [1000])
