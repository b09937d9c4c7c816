"""logferry's sink contract (logferry.testing.SinkContract) against a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from logferry.testing import SinkCase, SinkContract

from .conftest import entries, make_sink
from .servers import RedisServer


class TestRedisSinkContract(SinkContract):
    @pytest.fixture
    def sink_case(self, redis_server: RedisServer) -> Iterator[SinkCase]:
        url = f"{redis_server.url}?stream=contract&timeout=2"
        yield SinkCase(
            make=lambda: make_sink(url),
            received=lambda: [fields[b"line"] for fields in entries(redis_server.port, "contract")],
            break_destination=redis_server.stop,
            repair_destination=redis_server.start,
            exact_bytes=True,
        )
