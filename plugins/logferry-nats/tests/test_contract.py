"""logferry's sink contract (logferry.testing.SinkContract) against a real JetStream server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from logferry.testing import SinkCase, SinkContract

from .conftest import make_sink, messages
from .servers import NatsServer


class TestNatsSinkContract(SinkContract):
    @pytest.fixture
    def sink_case(self, nats_server: NatsServer) -> Iterator[SinkCase]:
        url = f"{nats_server.url}?stream=contract&subject=contract&timeout=2"
        yield SinkCase(
            make=lambda: make_sink(url),
            received=lambda: [m.data for m in messages(nats_server.url, "contract")],
            break_destination=nats_server.stop,
            repair_destination=nats_server.start,
            exact_bytes=True,
        )
