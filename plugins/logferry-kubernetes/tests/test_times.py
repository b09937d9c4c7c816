"""The runtimes' RFC3339Nano times: every form Go writes, nothing else."""

from __future__ import annotations

import pytest

from logferry_kubernetes.times import parse_time

from .runtimes import rfc3339nano


@pytest.mark.parametrize(("text", "seconds"), [
    ("2024-05-01T10:00:00.123456789Z", 1714557600.123456789),
    ("2024-05-01T10:00:00.1Z", 1714557600.1),
    ("2024-05-01T10:00:00Z", 1714557600.0),
    ("2024-05-01T12:00:00.000001+02:00", 1714557600.000001),
    ("2024-05-01T05:30:00-04:30", 1714557600.0),
    ("2024-05-01t10:00:00.5z", 1714557600.5),
])
def test_go_rfc3339nano_times_are_read_to_well_under_a_microsecond(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds, abs=5e-7)


def test_every_nanosecond_form_rfc3339nano_writes_is_read() -> None:
    base = 1_714_557_600_000_000_000
    for ns in (0, 1, 10, 120, 123_456_789, 999_999_999, 500_000_000):
        for offset in (0, 120, -270):
            assert parse_time(rfc3339nano(base + ns, offset)) == pytest.approx((base + ns) / 1e9, abs=5e-7)


@pytest.mark.parametrize("text", [
    "", "Z", "2024-05-01T10:00:00", "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00.1234567890Z",
    "2024-13-01T10:00:00Z", "2024-05-01T10:00:60Z", "2024-05-01T10:00:00+0200", "2024-05-01T10:00:00.12a4Z",
    "2024-05-01T10:00:00.\uff11Z", "2024-05-01T10:00:00,5Z", "\uff12\uff10\uff12\uff14-05-01T10:00:00Z",
    "2024-05-01 10:00:00Z", "yesterday at noon, or so",
])
def test_anything_else_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)
