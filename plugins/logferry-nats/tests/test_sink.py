"""The sink against a real nats-server: messages, headers and ids, subjects, the stream, errors,
outages and reconnection."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

import nats
import pytest
from logferry import SinkError

from logferry_nats import wire

from .conftest import make_batch, make_sink, messages, run_debug, ship, skip_without_nats_server
from .servers import NatsServer, free_port


def test_each_line_is_one_message_with_exact_bytes_and_its_id_as_nats_msg_id(nats_server: NatsServer) -> None:
    odd = [b"plain", b"", b"nul\x00inside", b"bad utf-8 \xff\xfe", b"tab\tand \r carriage", "é ü 漢".encode()]
    batch = make_batch(odd, path="/var/log/caf\udce9 100%.log", offset=100, file_id="abc")
    ship(f"{nats_server.url}?stream=s&subject=logs", batch)
    got = messages(nats_server.url, "s")
    assert [m.data for m in got] == odd
    offsets = [100]
    for line in odd[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    assert [m.id for m in got] == [batch.line_id(o) for o in offsets]
    assert [int(m.headers["Logferry-Offset"]) for m in got] == offsets
    assert {unquote_to_bytes(m.headers["Logferry-Path"]) for m in got} == {b"/var/log/caf\xe9 100%.log"}
    assert {m.subject for m in got} == {"logs"}


def test_json_format_publishes_logferrys_records(nats_server: NatsServer) -> None:
    batch = make_batch([b"hello", b"bad \xff"], path="/in/app.log", offset=7, file_id="f")
    ship(f"{nats_server.url}?stream=j&subject=j&format=json", batch)
    records = [json.loads(m.data) for m in messages(nats_server.url, "j")]
    assert [(r["line"], r["offset"], r["id"], r["path"]) for r in records] == [
        ("hello", 7, "f:7", "/in/app.log"), ("bad \ufffd", 13, "f:13", "/in/app.log")]
    assert all(r["ts"].endswith("Z") for r in records)


def test_subjects_follow_the_source_file_and_a_created_stream_captures_their_wildcard(
    nats_server: NatsServer,
) -> None:
    ship(f"{nats_server.url}?stream=t&subject=logs.{{stem}}",
         make_batch([b"a1", b"a2"], path="/in/app.log"),
         make_batch([b"w1"], path="/in/web.log", file_id="w"),
         make_batch([b"a3"], path="/in/app.log.1", offset=6),
         make_batch([b"d1"], path="/in/my.dotted name.log", file_id="d"))
    got = messages(nats_server.url, "t")
    assert [(m.subject, m.data) for m in got] == [("logs.app", b"a1"), ("logs.app", b"a2"), ("logs.web", b"w1"),
                                                  ("logs.app", b"a3"), ("logs.my", b"d1")]
    assert stream_config(nats_server, "t")["subjects"] == ["logs.*"]


def test_a_batch_sent_again_is_dropped_by_jetstream_as_duplicates(nats_server: NatsServer) -> None:
    batch = make_batch([b"line %d" % i for i in range(3000)])
    sink = ship(f"{nats_server.url}?stream=d&subject=d", batch, batch, batch)
    assert len(messages(nats_server.url, "d")) == 3000
    assert sink.duplicates == 6000


def test_batches_handed_over_together_keep_each_files_order(nats_server: NatsServer) -> None:
    batches = [make_batch([f"{name} {round_} {i}".encode() for i in range(700)], path=f"/in/{name}.log",
                          offset=round_ * 100_000, file_id=name) for round_ in range(3) for name in ("app", "web")]
    ship(f"{nats_server.url}?stream=o&subject=o.{{stem}}", *batches, together=True)
    got = messages(nats_server.url, "o")
    for name in ("app", "web"):
        assert [m.data for m in got if m.subject == f"o.{name}"] == [
            f"{name} {r} {i}".encode() for r in range(3) for i in range(700)]


def test_a_missing_stream_with_create_false_stops_the_start_clearly(nats_server: NatsServer) -> None:
    with pytest.raises(SinkError, match="stream 'absent' does not exist") as caught:
        start_and_stop(f"{nats_server.url}?stream=absent&create=false")
    assert caught.value.retryable is False


def test_a_stream_that_does_not_capture_the_subject_stops_the_start_clearly(nats_server: NatsServer) -> None:
    ship(f"{nats_server.url}?stream=other&subject=other.{{stem}}", make_batch([b"x"]))
    with pytest.raises(SinkError, match="captures other.\\*, not 'logs'") as caught:
        start_and_stop(f"{nats_server.url}?stream=other&subject=logs")
    assert caught.value.retryable is False


def test_a_server_without_jetstream_is_a_clear_error(tmp_path: Path) -> None:
    skip_without_nats_server()
    server = NatsServer(tmp_path / "nojs", jetstream=False).start()
    try:
        with pytest.raises(SinkError, match="JetStream does not answer") as caught:
            start_and_stop(f"{server.url}?timeout=1")
        assert caught.value.retryable is False
    finally:
        server.stop()


def test_credentials_from_the_url_or_the_environment_and_a_wrong_one_stops_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_without_nats_server()
    server = NatsServer(tmp_path / "auth", extra=("--user", "alice", "--pass", "s3cret")).start()
    try:
        ship(f"nats://alice:s3cret@127.0.0.1:{server.port}?stream=a&subject=a", make_batch([b"by url"]))
        monkeypatch.setenv("LOGFERRY_TEST_PW", "s3cret")
        ship(f"nats://127.0.0.1:{server.port}?stream=a&subject=a&username=alice&password_env=LOGFERRY_TEST_PW",
             make_batch([b"by env"], offset=7))
        url = f"nats://alice:wrong@127.0.0.1:{server.port}?stream=a&subject=a"
        assert "wrong" not in make_sink(url).describe() and "***" in make_sink(url).describe()
        with pytest.raises(SinkError, match="refused the credentials") as caught:
            start_and_stop(url)
        assert caught.value.retryable is False and "wrong" not in str(caught.value)
        assert [m.data for m in messages(server.url, "a", user="alice", password="s3cret")] == [b"by url", b"by env"]
    finally:
        server.stop()


def test_a_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skip_without_nats_server()
    server = NatsServer(tmp_path / "token", extra=("--auth", "t0ken")).start()
    try:
        monkeypatch.setenv("LOGFERRY_TEST_TOKEN", "t0ken")
        ship(f"{server.url}?stream=k&subject=k&token_env=LOGFERRY_TEST_TOKEN", make_batch([b"with a token"]))
        with pytest.raises(SinkError, match="refused the credentials"):
            start_and_stop(f"nats://wrong@127.0.0.1:{server.port}")
        assert [m.data for m in messages(server.url, "k", token="t0ken")] == [b"with a token"]
    finally:
        server.stop()


def test_a_server_down_at_start_is_retried_until_it_is_up_and_nothing_is_lost(tmp_path: Path) -> None:
    """start gives up waiting after ``timeout`` without failing; each send then tries to connect,
    failing as retryable (the engine retries with backoff) until the server answers."""
    skip_without_nats_server()
    server = NatsServer(tmp_path / "late")
    sink = make_sink(f"{server.url}?stream=late&subject=late&timeout=0.5")
    batch = make_batch([b"first %d" % i for i in range(100)])

    async def main() -> int:
        await sink.start()
        failures = 0
        try:
            while True:
                try:
                    await sink.send(batch)
                    return failures
                except SinkError as exc:
                    assert exc.retryable, exc
                    failures += 1
                    if failures == 2:
                        await asyncio.to_thread(server.start)
                    await asyncio.sleep(0.05)
        finally:
            await sink.stop()

    try:
        assert run_debug(main) >= 2
        assert [m.data for m in messages(server.url, "late")] == [b"first %d" % i for i in range(100)]
    finally:
        server.stop()


def test_after_a_server_restart_the_next_send_succeeds_and_a_frozen_one_times_out(
    nats_server: NatsServer,
) -> None:
    sink = make_sink(f"{nats_server.url}?stream=r&subject=r&timeout=1")

    async def main() -> list[tuple[bool, float]]:
        await sink.start()
        outcomes = []
        try:
            await sink.send(make_batch([b"before"]))
            await asyncio.to_thread(nats_server.stop)
            outcomes.append(await timed_failure(sink.send(make_batch([b"while down"], offset=7))))
            await asyncio.to_thread(nats_server.start)
            await send_until_accepted(sink, make_batch([b"after"], offset=7))
            nats_server.pause()  # accepted but never answered: the timeout must end the wait
            try:
                outcomes.append(await timed_failure(sink.send(make_batch([b"frozen"], offset=13))))
            finally:
                nats_server.resume()
            await send_until_accepted(sink, make_batch([b"frozen"], offset=13))
        finally:
            await sink.stop()
        return outcomes

    for retryable, seconds in run_debug(main):
        assert retryable, "an outage must be retried by the engine"
        assert seconds < 5.0, f"send hung for {seconds:.1f} s with timeout=1"
    assert [m.data for m in messages(nats_server.url, "r")] == [b"before", b"after", b"frozen"]


async def timed_failure(send) -> tuple[bool, float]:
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        await send
    return caught.value.retryable, time.monotonic() - started


async def send_until_accepted(sink, batch, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await sink.send(batch)
            return
        except SinkError as exc:
            assert exc.retryable and time.monotonic() < deadline, exc
            await asyncio.sleep(0.1)


def test_a_line_larger_than_the_servers_max_payload_is_a_clear_error_and_the_connection_stays(
    tmp_path: Path,
) -> None:
    skip_without_nats_server()
    server = NatsServer(tmp_path / "small", config="max_payload: 4096\n").start()
    sink = make_sink(f"{server.url}?stream=m&subject=m")

    async def main() -> SinkError:
        await sink.start()
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send(make_batch([b"ok", b"x" * 5000], offset=0))
            await sink.send(make_batch([b"next"], offset=100))
            return caught.value
        finally:
            await sink.stop()

    try:
        error = run_debug(main)
        assert not error.retryable and "max_payload" in str(error) and "offset 3" in str(error), error
        assert [m.data for m in messages(server.url, "m")] == [b"next"]  # nothing of the refused batch
    finally:
        server.stop()


def test_stop_is_safe_without_start_and_twice(nats_server: NatsServer) -> None:
    sink = make_sink(nats_server.url)

    async def main() -> None:
        await sink.stop()
        await sink.start()
        await sink.stop()
        await sink.stop()

    run_debug(main)


def test_a_large_batch_is_encoded_and_acknowledged_on_the_sink_thread_not_the_loop(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 MiB of 20-byte lines is 50,000 messages: encoding them and counting their PubAcks is CPU
    work that belongs on the sink's own thread, never on the engine's loop."""
    from logferry_nats import client

    batch = make_batch([f"short line {i:08d}".encode() for i in range(50_000)])
    threads: set[str] = set()
    monkeypatch.setattr(client, "messages", on_thread(wire.messages, threads))
    monkeypatch.setattr(client._Acks, "take", on_thread(client._Acks.take, threads))
    ship(f"{nats_server.url}?stream=big&subject=big", batch)  # fails if the loop was held
    assert len(threads) == 1 and next(iter(threads)).startswith("logferry-nats"), threads
    assert len(messages(nats_server.url, "big")) == 50_000


def on_thread(function, threads: set[str]):
    def spy(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return function(*args, **kwargs)

    return spy


def test_a_server_killed_in_the_middle_of_a_send_loses_nothing_once_the_send_is_retried(
    nats_server: NatsServer,
) -> None:
    """SIGKILL while 4 x 25,000 messages are being stored. The send fails as retryable; sent
    again, as the engine does, every line is in the stream once, in order per file."""
    import signal

    expected = {name: [f"{name} line {i}".encode() for i in range(25_000)] for name in ("a", "b", "c", "d")}
    batches = [make_batch(lines, path=f"/in/{name}.log", file_id=name) for name, lines in expected.items()]
    sink = make_sink(f"{nats_server.url}?stream=k&subject=k.{{stem}}&timeout=30")

    async def main() -> int:
        await sink.start()
        try:
            send = asyncio.ensure_future(sink.send_many(batches))
            while not (stored := await stream_length(nats_server, "k")):
                assert not send.done(), "the send finished before the server could be killed"
                await asyncio.sleep(0.005)
            await asyncio.to_thread(nats_server.stop, signal.SIGKILL)
            with pytest.raises(SinkError) as caught:
                await send
            assert caught.value.retryable, caught.value
            await asyncio.to_thread(nats_server.start)
            await send_until_accepted(sink, batches[0])
            await sink.send_many(batches)
            return stored
        finally:
            await sink.stop()

    stored = run_debug(main)
    assert 0 < stored < 100_000, stored
    got = messages(nats_server.url, "k")
    for name, lines in expected.items():
        assert [m.data for m in got if m.subject == f"k.{name}"] == lines, name


async def stream_length(server: NatsServer, stream: str) -> int:
    nc = await nats.connect(server.url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


def stream_config(server: NatsServer, stream: str) -> dict:
    async def read() -> dict:
        nc = await nats.connect(server.url)
        try:
            return (await nc.jetstream().stream_info(stream)).config.as_dict()
        finally:
            await nc.close()

    return asyncio.run(read())


def start_and_stop(url: str) -> None:
    sink = make_sink(url)

    async def main() -> None:
        try:
            await sink.start()
        finally:
            await sink.stop()

    run_debug(main)


def test_start_against_nothing_listening_returns_after_the_timeout_and_sends_fail_as_retryable() -> None:
    sink = make_sink(f"nats://127.0.0.1:{free_port()}?timeout=0.5")

    async def main() -> SinkError:
        try:
            await sink.start()
            with pytest.raises(SinkError) as caught:
                await sink.send(make_batch([b"x"]))
            return caught.value
        finally:
            await sink.stop()

    error = run_debug(main)
    assert error.retryable and "unreachable" in str(error), error
