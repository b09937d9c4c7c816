"""send() returns only after a 2xx; what may pass is retried, what cannot is a non-retryable SinkError;
credentials reach the server and nothing else; the event loop never blocks."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from aiohttp import web
from logferry import SinkError
from logferry.testing import run_without_blocking

from lfhttp_support import http_sink, make_batch, send_all


def test_500_then_success_is_retried_inside_the_sink(server):
    server.script.extend(["500", "503"])
    sink = http_sink(server.url)
    asyncio.run(send_all(sink, make_batch()))
    assert [r.answer for r in server.requests] == ["500", "503", "ok"]
    assert sink.stats.retries == 2


def test_429_retry_after_is_honoured(server):
    server.script.append("429")
    server.retry_after = "1"
    asyncio.run(send_all(http_sink(server.url), make_batch()))
    refused, accepted = server.requests
    assert refused.answer == "429" and accepted.answer == "ok"
    assert accepted.at - refused.at >= 1.0


def test_retry_after_is_capped_by_max_backoff(server):
    server.script.append("429")
    server.retry_after = "3600"
    started = time.monotonic()
    asyncio.run(send_all(http_sink(server.url + "?max_backoff=200ms"), make_batch()))
    assert time.monotonic() - started < 2 and len(server.requests) == 2


def test_slow_response_times_out_and_raises_retryable(server):
    server.default = "slow"
    server.slow_seconds = 5
    sink = http_sink(server.url + "?timeout=300ms&retries=0")
    started = time.monotonic()
    with pytest.raises(SinkError, match="no answer within 0.3s") as info:
        asyncio.run(send_all(sink, make_batch()))
    assert info.value.retryable
    assert time.monotonic() - started < 2


def test_dropped_connection_is_retried(server):
    server.script.extend(["drop", "stored-then-drop"])
    sink = http_sink(server.url)
    asyncio.run(send_all(sink, make_batch()))
    assert [r.answer for r in server.requests] == ["drop", "stored-then-drop", "ok"]
    # the server stored the batch once without answering: at least once means it arrives again
    assert len(server.stored) == 2 and server.stored[0].body == server.stored[1].body


@pytest.mark.parametrize("status", ["400", "401", "403", "404", "413"])
def test_client_errors_are_not_retryable(server, status):
    server.script.append(status)
    with pytest.raises(SinkError, match=f"HTTP {status}") as info:
        asyncio.run(send_all(http_sink(server.url), make_batch()))
    assert not info.value.retryable
    assert len(server.requests) == 1
    assert f"refused with {status}" in str(info.value)  # the server's reason is shown


def test_redirect_is_not_followed_and_not_retryable(server):
    server.script.append(lambda: web.Response(status=307, headers={"Location": "http://elsewhere/"}))
    with pytest.raises(SinkError, match="redirected to 'http://elsewhere/'") as info:
        asyncio.run(send_all(http_sink(server.url), make_batch()))
    assert not info.value.retryable


def test_persistent_5xx_raises_retryable_after_the_in_sink_retries(server):
    server.default = "500"
    sink = http_sink(server.url + "?retries=2&max_backoff=50ms")
    with pytest.raises(SinkError, match=r"HTTP 500 .*\(3 requests\)") as info:
        asyncio.run(send_all(sink, make_batch()))
    assert info.value.retryable and len(server.requests) == 3


def test_connection_refused_raises_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    sink = http_sink(f"http://127.0.0.1:{port}/x?retries=1&max_backoff=50ms")
    with pytest.raises(SinkError, match=r"\(2 requests\)") as info:
        asyncio.run(send_all(sink, make_batch()))
    assert info.value.retryable


def test_headers_and_token_from_env_reach_the_server_but_never_logs_or_describe(server, monkeypatch, caplog):
    monkeypatch.setenv("LF_TEST_TOKEN", "tok-SECRET-1")
    monkeypatch.setenv("LF_TEST_KEY", "key-SECRET-2")
    server.script.extend(["500", "drop"])  # failures make the sink log
    url = server.url + "?token_env=LF_TEST_TOKEN&header_env.X-Api-Key=LF_TEST_KEY&header.X-Static=hdr-SECRET-3"
    sink = http_sink(url, headers={"X-Team": "ops"})
    with caplog.at_level(logging.DEBUG):
        asyncio.run(send_all(sink, make_batch()))
    for request in server.requests:
        assert request.headers["Authorization"] == "Bearer tok-SECRET-1"
        assert request.headers["X-Api-Key"] == "key-SECRET-2"
        assert request.headers["X-Static"] == "hdr-SECRET-3" and request.headers["X-Team"] == "ops"
    shown = caplog.text + sink.describe() + repr(sink) + repr(sink.config)
    assert "retry" in caplog.text  # the sink did log its retries
    assert "SECRET" not in shown


def test_basic_auth_from_url_userinfo(server):
    host_port = server.url.removeprefix("http://")
    sink = http_sink(f"http://ann:p%40ss@{host_port}")
    asyncio.run(send_all(sink, make_batch()))
    assert server.requests[0].headers["Authorization"] == "Basic YW5uOnBAc3M="  # ann:p@ss
    assert "p%40ss" not in sink.describe() and "ann" not in sink.describe()


def test_stop_is_idempotent_and_safe_without_start(server):
    sink = http_sink(server.url)

    async def run():
        await sink.stop()
        await sink.start()
        await sink.stop()
        await sink.stop()
        with pytest.raises(SinkError, match="not started"):
            await sink.send(make_batch())

    asyncio.run(run())


def test_large_gzipped_batch_never_blocks_the_loop(server):
    """A 12 MiB batch is encoded and compressed off the loop: no callback runs over 100 ms.

    Done on the loop, encoding and compressing it takes about 250 ms; the threshold is above the
    project's usual 50 ms because a busy encoder thread makes the loop thread wait for the GIL.
    """
    lines = [b"%08d " % i + b"x" * 90 for i in range(120_000)]
    batch = make_batch(lines=lines)

    async def run():
        await send_all(http_sink(server.url + "?gzip=true&format=es-bulk"), batch)

    server.ok_body = b'{"errors":false,"items":[]}'
    run_without_blocking(run, slow_callback=0.1)
    assert len(server.requests) > 1  # 30 MiB of _bulk body: cut at max_body_bytes (4 MiB)
    assert server.stored_lines("es-bulk") == [line.decode() for line in lines]
