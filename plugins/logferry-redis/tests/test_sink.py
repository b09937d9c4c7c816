"""The sink against a real redis-server: fields and exact bytes, stream names, trimming, errors,
outages and reconnection."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest
import redis
from logferry import SinkError

from logferry_redis import client, wire

from .conftest import count_exchanges, entries, make_batch, make_sink, run_debug, ship, skip_without_redis_server
from .servers import RedisServer


def test_each_line_is_one_entry_with_exact_bytes_path_offset_and_a_stable_id(redis_server: RedisServer) -> None:
    odd = [b"plain", b"", b"nul\x00inside", b"bad utf-8 \xff\xfe", b"tab\tand \r carriage", "é ü 漢".encode()]
    batch = make_batch(odd, path="/var/log/app.log", offset=100, file_id="abc")
    ship(f"{redis_server.url}?stream=s", batch)
    got = entries(redis_server.port, "s")
    assert [e[b"line"] for e in got] == odd
    assert {e[b"path"] for e in got} == {b"/var/log/app.log"}
    offsets = [100]
    for line in odd[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    assert [int(e[b"offset"]) for e in got] == offsets
    assert [e[b"id"].decode() for e in got] == [batch.line_id(o) for o in offsets]
    assert list(got[0]) == [b"line", b"path", b"offset", b"id"]


def test_a_batch_is_one_pipelined_round_trip(redis_server: RedisServer) -> None:
    with redis.Redis(port=redis_server.port) as client:
        before = int(client.info("stats")["total_net_input_bytes"])
        calls = client.info("commandstats").get("cmdstat_xadd", {}).get("calls", 0)
    batch = make_batch([f"line {i}".encode() for i in range(2000)])
    ship(f"{redis_server.url}?stream=rt", batch)
    with redis.Redis(port=redis_server.port) as client:
        assert client.info("commandstats")["cmdstat_xadd"]["calls"] - calls == 2000
        assert client.xlen("rt") == 2000
        assert int(client.info("stats")["total_net_input_bytes"]) > before
        # one connection did all of it: a pipeline, not a connection per line
        clients = [c for c in client.client_list() if c.get("name") == "logferry"]
        assert not clients  # and stop() closed it


def test_templated_streams_follow_the_source_file(redis_server: RedisServer) -> None:
    ship(f"{redis_server.url}?stream=logs:{{stem}}",
         make_batch([b"a1", b"a2"], path="/in/app.log"),
         make_batch([b"w1"], path="/in/web.log"),
         make_batch([b"a3"], path="/in/app.log.1"))
    assert [e[b"line"] for e in entries(redis_server.port, "logs:app")] == [b"a1", b"a2", b"a3"]
    assert [e[b"line"] for e in entries(redis_server.port, "logs:web")] == [b"w1"]


def test_maxlen_trims_the_stream_approximately(redis_server: RedisServer) -> None:
    batches = [make_batch([f"{b}-{i}".encode() for i in range(500)], offset=b * 10_000) for b in range(10)]
    ship(redis_server.url, *batches, stream="trimmed", maxlen=100)
    with redis.Redis(port=redis_server.port) as client:
        length = client.xlen("trimmed")
        last = client.xrevrange("trimmed", count=1)[0][1][b"line"]
    assert 100 <= length < 1000, length  # "~": whole macro nodes are dropped, never below maxlen
    assert last == b"9-499"


def test_a_key_of_the_wrong_type_is_not_retryable(redis_server: RedisServer) -> None:
    with redis.Redis(port=redis_server.port) as client:
        client.set("taken", "a string")
    with pytest.raises(SinkError, match="WRONGTYPE") as caught:
        ship(f"{redis_server.url}?stream=taken", make_batch([b"x"]))
    assert caught.value.retryable is False


def test_a_send_while_the_server_is_down_raises_within_the_timeout(redis_server: RedisServer) -> None:
    sink = make_sink(f"{redis_server.url}?stream=down&timeout=1")

    async def main() -> list[tuple[bool, float]]:
        await sink.start()
        outcomes = []
        try:
            await asyncio.to_thread(redis_server.stop)  # refused: fails fast
            outcomes.append(await timed_failure(sink.send(make_batch([b"x"]))))
            await asyncio.to_thread(redis_server.start)
            redis_server.pause()  # accepted but never answered: the timeout must end the wait
            try:
                outcomes.append(await timed_failure(sink.send(make_batch([b"y"]))))
            finally:
                redis_server.resume()
        finally:
            await sink.stop()
        return outcomes

    for retryable, seconds in run_debug(main):
        assert retryable, "an outage must be retried by the engine"
        assert seconds < 3.0, f"send hung for {seconds:.1f} s with timeout=1"


async def timed_failure(send) -> tuple[bool, float]:
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        await send
    return caught.value.retryable, time.monotonic() - started


def test_after_a_server_restart_the_next_send_succeeds(redis_server: RedisServer) -> None:
    sink = make_sink(f"{redis_server.url}?stream=restart&timeout=2")

    async def main() -> None:
        await sink.start()
        try:
            await sink.send(make_batch([b"before"]))
            await asyncio.to_thread(redis_server.stop)
            await asyncio.to_thread(redis_server.start)  # same port, same AOF: the pooled connection is dead
            await sink.send(make_batch([b"after"], offset=7))
        finally:
            await sink.stop()

    run_debug(main)
    assert [e[b"line"] for e in entries(redis_server.port, "restart")] == [b"before", b"after"]


def test_start_pings_and_fails_clearly_when_nothing_listens() -> None:
    from .servers import free_port

    sink = make_sink(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5")

    async def main() -> float:
        started = time.monotonic()
        try:
            with pytest.raises(SinkError, match="unreachable"):
                await sink.start()
        finally:
            await sink.stop()
        return time.monotonic() - started

    assert run_debug(main) < 3.0


def test_passwords_from_userinfo_or_environment_and_a_wrong_one_stops_at_start(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_without_redis_server()  # a server of its own: it needs a password
    server = RedisServer(tmp_path / "auth", extra=("--requirepass", "s3cret")).start()
    try:
        ship(f"redis://:s3cret@127.0.0.1:{server.port}/0?stream=a", make_batch([b"by url"]))
        monkeypatch.setenv("LOGFERRY_TEST_PW", "s3cret")
        ship(f"redis://127.0.0.1:{server.port}/0?stream=a&password_env=LOGFERRY_TEST_PW", make_batch([b"by env"]))
        sink = make_sink(f"redis://:wrong@127.0.0.1:{server.port}/0")
        assert "wrong" not in sink.describe() and "***" in sink.describe()

        async def main() -> None:
            try:
                with pytest.raises(SinkError, match="credentials") as caught:
                    await sink.start()
                assert "wrong" not in str(caught.value)
            finally:
                await sink.stop()

        run_debug(main)
        with redis.Redis(port=server.port, password="s3cret") as client:
            assert [f[b"line"] for _, f in client.xrange("a")] == [b"by url", b"by env"]
    finally:
        server.stop()


def test_stop_is_safe_without_start_and_twice(redis_server: RedisServer) -> None:
    sink = make_sink(redis_server.url)

    async def main() -> None:
        await sink.stop()
        await sink.start()
        await sink.stop()
        await sink.stop()

    run_debug(main)


def test_a_large_batch_is_encoded_and_parsed_on_the_sink_thread_not_the_loop(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 MiB of 20-byte lines is 50,000 XADDs: encoding them and parsing the replies is CPU work
    that belongs on the sink's own thread, never on the engine's loop."""
    batch = make_batch([f"short line {i:08d}".encode() for i in range(50_000)])
    threads: set[str] = set()
    for module, name in ((client, "xadd_payload"), (wire.Replies, "feed")):
        monkeypatch.setattr(module, name, on_thread(getattr(module, name), threads))
    ship(f"{redis_server.url}?stream=big", batch)  # fails if the loop was held (logferry.testing's detector)
    assert len(threads) == 1 and next(iter(threads)).startswith("logferry-redis"), threads
    with redis.Redis(port=redis_server.port) as client_:
        assert client_.xlen("big") == 50_000


def on_thread(function, threads: set[str]):
    """``function``, noting the name of each thread that calls it."""

    def spy(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return function(*args, **kwargs)

    return spy


def test_batches_handed_over_together_are_one_pipelined_exchange(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchanges = count_exchanges(monkeypatch)
    batches = [make_batch([f"{name} {round_} {i}".encode() for i in range(300)], path=f"/in/{name}.log",
                          offset=round_ * 10_000, file_id=name) for round_ in range(3) for name in ("app", "web")]
    ship(f"{redis_server.url}?stream=one:{{stem}}", *batches, together=True)
    assert len(exchanges) == 1 and exchanges[0] == len(batches)
    for name in ("app", "web"):
        got = entries(redis_server.port, f"one:{name}")
        assert [e[b"line"] for e in got] == [f"{name} {r} {i}".encode() for r in range(3) for i in range(300)]


def test_an_error_reply_inside_a_big_pipeline_names_its_stream_and_the_connection_stays_in_use(
    redis_server: RedisServer,
) -> None:
    """A stream key that holds a string answers WRONGTYPE to each of its XADDs, between thousands
    of replies to other streams: the send fails for good, naming it; the other batches' entries
    are in; the connection was read to its end and serves the next send."""
    with redis.Redis(port=redis_server.port) as c:
        c.set("e:taken", "a string")
    lines = [f"line {i}".encode() for i in range(5000)]
    batches = [make_batch(lines, path=f"/in/{name}.log", file_id=name) for name in ("before", "taken", "after")]
    sink = make_sink(f"{redis_server.url}?stream=e:{{stem}}")

    async def main() -> tuple[SinkError, int, int]:
        await sink.start()
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send_many(batches)
            before = await asyncio.to_thread(connections_received, redis_server.port)
            await sink.send(make_batch([b"next"], path="/in/after.log", offset=100_000, file_id="after"))
            after = await asyncio.to_thread(connections_received, redis_server.port)
            # RESP2, where nothing but answers arrives (no pushes): the pipeline's replies count true
            assert {c["resp"] for c in await asyncio.to_thread(sink_clients, redis_server.port)} == {"2"}
            return caught.value, before, after
        finally:
            await sink.stop()

    error, before, after = run_debug(main)
    assert "XADD to 'e:taken'" in str(error) and "WRONGTYPE" in str(error), error
    assert error.retryable is False
    assert after == before + 1  # only our own INFO connection: the sink reused its pooled one
    assert [e[b"line"] for e in entries(redis_server.port, "e:before")] == lines
    assert [e[b"line"] for e in entries(redis_server.port, "e:after")] == [*lines, b"next"]


def sink_clients(port: int) -> list[dict]:
    with redis.Redis(port=port) as c:
        return [client for client in c.client_list() if client.get("name") == "logferry"]


def test_a_send_cut_short_by_its_timeout_never_leaves_its_half_read_connection_in_use(
    redis_server: RedisServer,
) -> None:
    """The server freezes while a pipeline is in flight: the send times out, its connection is
    closed (its late replies must never be read as the next send's), the next send gets a new one."""
    sink = make_sink(f"{redis_server.url}?stream=cut&timeout=0.5")
    big = make_batch([b"big %d" % i for i in range(20_000)], offset=10)

    async def main() -> tuple[SinkError, int, int]:
        await sink.start()
        try:
            await sink.send(make_batch([b"a"]))
            before = await asyncio.to_thread(connections_received, redis_server.port)
            redis_server.pause()
            try:
                with pytest.raises(SinkError) as caught:
                    await sink.send(big)
            finally:
                redis_server.resume()
            await sink.send(make_batch([b"c"], offset=big.end))
            return caught.value, before, await asyncio.to_thread(connections_received, redis_server.port)
        finally:
            await sink.stop()

    error, before, after = run_debug(main)
    assert error.retryable and "did not answer in time" in str(error), error
    assert after == before + 2  # our INFO connection, and the sink's new one
    got = [e[b"line"] for e in entries(redis_server.port, "cut")]
    assert got[0] == b"a" and got[-1] == b"c" and got.count(b"c") == 1


def connections_received(port: int) -> int:
    with redis.Redis(port=port) as c:
        return int(c.info("stats")["total_connections_received"])


def test_a_server_killed_in_the_middle_of_a_send_loses_nothing_once_the_send_is_retried(
    redis_server: RedisServer,
) -> None:
    """SIGKILL while a pipeline of 4 x 25,000 XADDs is being answered (appendfsync always: an
    answered XADD survives). The send fails as retryable; sent again, as the engine does, every
    line is in its stream in order, repeats only as re-delivered ids."""
    expected = {name: [f"{name} line {i}".encode() for i in range(25_000)] for name in ("a", "b", "c", "d")}
    batches = [make_batch(lines, path=f"/in/{name}.log", file_id=name) for name, lines in expected.items()]
    sink = make_sink(f"{redis_server.url}?stream=k:{{stem}}&timeout=30")

    async def main() -> tuple[int, SinkError]:
        await sink.start()
        try:
            send = asyncio.ensure_future(sink.send_many(batches))
            while not (arrived := await asyncio.to_thread(total_entries, redis_server.port, expected)):
                assert not send.done(), "the send finished before the server could be killed"
                await asyncio.sleep(0.005)
            await asyncio.to_thread(redis_server.stop, signal.SIGKILL)
            with pytest.raises(SinkError) as caught:
                await send
            await asyncio.to_thread(redis_server.start)
            await sink.send_many(batches)
            return arrived, caught.value
        finally:
            await sink.stop()

    arrived, error = run_debug(main)
    assert error.retryable, error
    assert 0 < arrived < 100_000, arrived
    for name, lines in expected.items():
        got = [e[b"line"] for e in entries(redis_server.port, f"k:{name}")]
        killed, retried = got[:-len(lines)], got[-len(lines):]
        assert retried == lines  # the retried send: whole, in order
        assert killed == lines[:len(killed)]  # what the killed one delivered: a beginning, in order


def total_entries(port: int, streams) -> int:
    with redis.Redis(port=port) as c:
        return sum(c.xlen(f"k:{name}") for name in streams)
