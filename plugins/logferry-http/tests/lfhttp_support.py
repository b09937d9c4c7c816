"""Test helpers: a real aiohttp.web server on 127.0.0.1 (its own thread and loop) that records what
reaches it and misbehaves on cue; batches; sinks made through the plugin's hook; the ``logferry``
command. (A module of its own, not conftest, so its name cannot clash with another suite's.)"""

from __future__ import annotations

import asyncio
import datetime
import functools
import gzip
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from logferry import Batch


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes
    """The body as sent (still gzipped if it was)."""
    body: bytes
    """The body decoded (gunzipped when Content-Encoding says so)."""
    at: float
    answer: str
    """What the server did: "ok", "500", "429", "400", "drop", "slow", "stored-then-drop"…"""
    item_statuses: list[int] | None = None
    """For a ``_bulk`` request answered by ``Server.item_status``: the status of each document."""

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.body.splitlines()]


@dataclass
class Server:
    """Answers every POST according to ``script`` (one action per request, then ``default``: an
    action is a name below or a function returning the ``web.Response`` to answer), or at
    random with ``fail_rate``/``drop_rate``. ``stored`` holds the requests it acknowledged or
    stored (a "stored-then-drop" request is stored but never answered: the client cannot know).

    With ``item_status``, an acknowledged request is read as a ``_bulk`` body and answered as
    Elasticsearch does, an item per document with the status ``item_status(document, times)`` gives
    (``times``: how often a document with that ``_id`` arrived before); ``indexed`` holds the
    documents answered 2xx, in arrival order."""

    ssl_context: ssl.SSLContext | None = None
    script: deque = field(default_factory=deque)
    default: str = "ok"
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    slow_seconds: float = 3.0
    retry_after: str = "1"
    ok_body: bytes = b""
    ok_status: int = 200
    seed: int = 1234
    requests: list[Received] = field(default_factory=list)
    stored: list[Received] = field(default_factory=list)
    port: int = 0
    item_status: Callable[[dict, int], int] | None = None
    indexed: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/ingest"

    def start(self, port: int = 0) -> Server:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve(port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _serve(self, port: int) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        # auto_decompress=False: the tests see the bytes as sent, to prove gzip really happened
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _next_action(self) -> str | Callable[[], web.Response]:
        with self.lock:
            if self.script:
                return self.script.popleft()
            roll = self._rng.random()
        if roll < self.drop_rate:
            return self._rng.choice(["drop", "stored-then-drop"])
        if roll < self.drop_rate + self.fail_rate:
            return self._rng.choice(["500", "stored-then-500"])
        return self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
        action = self._next_action()
        answer = action() if callable(action) else None  # a scripted answer of the test's own
        seen = Received(request.path_qs, dict(request.headers), raw, body, time.monotonic(),
                        str(answer.status) if answer else action)
        with self.lock:
            self.requests.append(seen)
            if action in ("ok", "stored-then-drop", "stored-then-500", "slow") or (answer and answer.status < 300):
                self.stored.append(seen)
        if answer is not None:
            return answer
        if action in ("drop", "stored-then-drop"):
            request.transport.abort()  # close the socket without an answer
            raise asyncio.CancelledError
        if action in ("500", "stored-then-500"):
            return web.Response(status=500, text="try again")
        if action == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": self.retry_after})
        if action == "slow":
            await asyncio.sleep(self.slow_seconds)
        if action.isdigit():
            return web.Response(status=int(action), text=f"refused with {action}")
        if self.item_status is not None:
            return self._bulk_answer(seen)
        return web.Response(status=self.ok_status, body=self.ok_body)

    def _bulk_answer(self, seen: Received) -> web.Response:
        rows = seen.json_lines()
        items = []
        with self.lock:
            for action, doc in zip(rows[0::2], rows[1::2]):
                (op, meta), = action.items()
                times = sum(1 for r in self.requests[:-1] for a in r.json_lines()[0::2]
                            if next(iter(a.values()))["_id"] == meta["_id"])
                status = self.item_status(doc, times)
                items.append({op: {"_id": meta["_id"], "status": status,
                                   **({"error": {"type": "es_rejected_execution_exception", "reason": "busy"}}
                                      if status >= 300 else {})}})
                if status < 300:
                    self.indexed.append(doc)
            seen.item_statuses = [next(iter(item.values()))["status"] for item in items]
        return web.json_response({"errors": any(s >= 300 for s in seen.item_statuses), "took": 1, "items": items})

    def stored_lines(self, fmt: str = "ndjson") -> list[str]:
        """The ``line`` of every line of every stored request, in arrival order, for any body format."""
        with self.lock:
            stored = list(self.stored)
        lines: list[str] = []
        for seen in stored:
            if fmt == "loki":
                lines += [entry[1] for entry in self.loki_entries(seen)]
            elif fmt == "es-bulk":
                lines += [doc["line"] for doc in seen.json_lines()[1::2]]
            else:
                lines += [record["line"] for record in seen.json_lines()]
        return lines

    @staticmethod
    def loki_entries(seen: Received) -> list[list]:
        """Every entry of a Loki push, stream after stream: ``[ns, line]`` or ``[ns, line, metadata]``."""
        return [entry for stream in json.loads(seen.body)["streams"] for entry in stream["values"]]

    def stored_records(self) -> list[dict]:
        """Every NDJSON record of every stored request, in arrival order."""
        with self.lock:
            return [record for seen in self.stored for record in seen.json_lines()]


def make_batch(path: str = "/var/log/app.log", lines: list[bytes] | None = None, offset: int = 0,
               file_id: str = "dev:ino:fp", read_at: float | None = None) -> Batch:
    """A batch of complete lines, as a tailer would submit it."""
    lines = lines if lines is not None else [b"first line", b"second \xff line", b'{"quoted": "json"}']
    data = b"".join(line + b"\n" for line in lines)
    return Batch(path, file_id, offset, offset + len(data), data, read_at if read_at is not None else time.time())


def http_sink(url: str, **options):
    """A sink exactly as the host makes it, through the plugin's hook."""
    import logferry_http
    from logferry import Settings

    return logferry_http.logferry_make_sink(url=url, scheme=url.split(":")[0], options=options,
                                            settings=Settings())


async def send_all(sink, *batches: Batch) -> None:
    """Start the sink, ``send`` each batch in turn, stop it."""
    await _started(sink, [functools.partial(sink.send, batch) for batch in batches])


async def send_many_all(sink, *calls: list[Batch]) -> None:
    """One ``send_many`` call per list, as the engine makes them when batches queue for the sink."""
    await _started(sink, [functools.partial(sink.send_many, batches) for batches in calls])


async def _started(sink, calls: list[Callable]) -> None:
    await sink.start()
    try:
        for call in calls:
            await call()
    finally:
        await sink.stop()


# -- the logferry command ------------------------------------------------------


def logferry(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``python -m logferry ARGS`` to its end."""
    return subprocess.run([sys.executable, "-m", "logferry", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, **(env or {})})


def logferry_live(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "logferry", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sigterm(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for(condition, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def make_self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: (cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "logferry-http test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file
