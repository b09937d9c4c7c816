"""Both decoders pass logferry's processor contract: order, positions, batch boundaries, counts,
held lines named and released."""

from __future__ import annotations

import pytest
from logferry.testing import ProcessorCase, ProcessorContract

from logferry_kubernetes.decoders import Cri, Docker

from .runtimes import Clock, cri, docker


def _cri_lines() -> list[bytes]:
    clock = Clock()
    data = (cri(b"started\n", "stdout", clock)
            + cri(b"a" * 40 + b"\n", "stdout", clock, max_line=16)  # P P F
            + cri(b"warning: disk\n", "stderr", clock)
            # interleaved: stdout P, stderr P, stdout F, stderr F
            + cri(b"o" * 20 + b"\n", "stdout", clock, max_line=16).split(b"\n")[0] + b"\n"
            + cri(b"e" * 20 + b"\n", "stderr", clock, max_line=16).split(b"\n")[0] + b"\n"
            + cri(b"o" * 4 + b"\n", "stdout", clock)
            + cri(b"e" * 4 + b"\n", "stderr", clock)
            + b"not a cri line\n"
            + b"2024-05-01T10:00:00.5Z stdout the format before tags\n"
            + cri(b"\n", "stdout", clock)  # an empty line
            + cri(b"tail without newline", "stdout", clock, eof=True))  # P, never finished: flushed
    return data.splitlines()


def _docker_lines() -> list[bytes]:
    clock = Clock()
    data = (docker(b"started\n", "stdout", clock)
            + docker(b"b" * 40 + b"\n", "stdout", clock, chunk=16)
            + docker(b"o" * 20 + b"\n", "stdout", clock, chunk=16).splitlines(keepends=True)[0]
            + docker(b"e" * 20 + b"\n", "stderr", clock, chunk=16)
            + docker(b"o" * 4 + b"\n", "stdout", clock)
            + b'{"log":"no time\\n","stream":"stdout"}\n'
            + b"plain text\n"
            + docker(b"x" * 20 + b"\n", "stderr", clock, chunk=16).splitlines(keepends=True)[0])  # never finished
    return data.splitlines()


class TestCriContract(ProcessorContract):
    @pytest.fixture
    def processor_case(self) -> ProcessorCase:
        return ProcessorCase(make=lambda: Cri(max_bytes=1 << 20), lines=_cri_lines())


class TestCriContractSmallMax(ProcessorContract):
    """Cut at max_bytes, and records waiting behind an open message bounded by it."""

    @pytest.fixture
    def processor_case(self) -> ProcessorCase:
        return ProcessorCase(make=lambda: Cri(max_bytes=24), lines=_cri_lines())


class TestDockerContract(ProcessorContract):
    @pytest.fixture
    def processor_case(self) -> ProcessorCase:
        return ProcessorCase(make=lambda: Docker(max_bytes=1 << 20), lines=_docker_lines())
