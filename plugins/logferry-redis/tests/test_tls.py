"""rediss:// against a real redis-server with TLS, its certificate signed by a throwaway CA."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from logferry import SinkError

from .conftest import entries, make_batch, make_sink, run_debug
from .servers import REDIS_SERVER, RedisServer, free_port

OPENSSL = shutil.which("openssl")


def make_certificates(directory: Path) -> None:
    """ca.crt, and server.crt/server.key for 127.0.0.1 signed by it."""
    def openssl(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=directory, timeout=30)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "1", "-subj", "/CN=logferry test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.cnf")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RedisServer, int, Path]]:
    """A server with a plain port (to check what arrived) and a TLS port; yields (server, tls port, ca file)."""
    if not REDIS_SERVER or not OPENSSL:
        pytest.skip("redis-server or openssl not found on PATH")
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    tls_port = free_port()
    server = RedisServer(tmp_path / "redis", extra=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.crt"),
        "--tls-auth-clients", "no"))
    try:
        server.start()
    except RuntimeError as exc:
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    try:
        yield server, tls_port, certs / "ca.crt"
    finally:
        server.stop()


def ship(url: str, lines: list[bytes]) -> None:
    sink = make_sink(url)

    async def main() -> None:
        try:
            await sink.start()
            await sink.send(make_batch(lines))
        finally:
            await sink.stop()

    run_debug(main)


def test_rediss_verifies_the_server_certificate_and_ships(tls_server: tuple[RedisServer, int, Path]) -> None:
    server, tls_port, ca = tls_server
    ship(f"rediss://127.0.0.1:{tls_port}/0?stream=tls&tls_ca_file={ca}", [b"over tls \x00\xff"])
    assert [e[b"line"] for e in entries(server.port, "tls")] == [b"over tls \x00\xff"]


def test_rediss_refuses_a_certificate_it_cannot_verify_unless_told_not_to(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    server, tls_port, _ = tls_server
    with pytest.raises(SinkError, match="(?i)certificate|unreachable"):  # redis-py < 5.1 hides the reason
        ship(f"rediss://127.0.0.1:{tls_port}/0?stream=tls&timeout=1", [b"never"])
    ship(f"rediss://127.0.0.1:{tls_port}/0?stream=tls&tls_verify=false", [b"unverified"])
    assert [e[b"line"] for e in entries(server.port, "tls")] == [b"unverified"]
