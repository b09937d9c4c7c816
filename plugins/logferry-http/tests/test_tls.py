"""TLS is verified by default: a self-signed server is refused unless trusted with ca_file (or verify=false)."""

from __future__ import annotations

import asyncio

import pytest
from logferry import SinkError

from lfhttp_support import http_sink, make_batch, send_all


def test_self_signed_certificate_is_refused_by_default(tls_server):
    with pytest.raises(SinkError, match="TLS") as info:
        asyncio.run(send_all(http_sink(tls_server.url), make_batch()))
    assert not info.value.retryable  # a refused certificate stays refused: stop with the reason
    assert tls_server.requests == []


def test_self_signed_certificate_is_accepted_with_ca_file(tls_server, self_signed):
    cert_file, _key = self_signed
    sink = http_sink(tls_server.url, ca_file=str(cert_file))
    asyncio.run(send_all(sink, make_batch()))
    assert [r["line"] for r in tls_server.stored_records()] == ["first line", "second \ufffd line", '{"quoted": "json"}']


def test_verify_false_accepts_any_certificate(tls_server):
    asyncio.run(send_all(http_sink(tls_server.url + "?verify=false"), make_batch()))
    assert len(tls_server.stored) == 1
