"""Fixtures: a recording HTTP server, an HTTPS one with a self-signed certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfhttp_support import Server, make_self_signed

pytest_plugins = ["logferry.testing"]  # logferry's sink contract and helpers for plugin authors


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: (cert.pem, key.pem)."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(self_signed) -> Iterator[Server]:
    cert_file, key_file = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    srv = Server(ssl_context=context).start()
    yield srv
    srv.stop()
