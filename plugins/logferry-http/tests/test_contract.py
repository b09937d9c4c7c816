"""logferry's sink contract (``logferry.testing.SinkContract``) run against the HTTP sink, in each
body format: ordering, acknowledgement, any bytes, errors that surface, stop, a loop that never blocks."""

from __future__ import annotations

import pytest
from logferry.testing import SinkCase, SinkContract

from lfhttp_support import Server, http_sink


class TestHttpSinkContract(SinkContract):
    @pytest.fixture(params=["ndjson", "es-bulk", "loki"])
    def sink_case(self, request: pytest.FixtureRequest, server: Server) -> SinkCase:
        fmt = request.param
        if fmt == "es-bulk":
            server.ok_body = b'{"errors":false,"items":[]}'

        def received() -> list[bytes]:
            # every format carries text (invalid UTF-8 replaced): hence exact_bytes=False
            return [line.encode() for line in server.stored_lines(fmt)]

        def break_destination() -> None:
            server.default = "500"  # refuse and store nothing

        def repair_destination() -> None:
            server.default = "ok"

        return SinkCase(
            make=lambda: http_sink(f"{server.url}?retries=0&format={fmt}"),
            received=received,
            break_destination=break_destination,
            repair_destination=repair_destination,
            exact_bytes=False,
        )
