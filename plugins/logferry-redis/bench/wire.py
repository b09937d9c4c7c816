"""CPU per line of the sink's two hot paths, no server needed: building a batch's XADD payload and
parsing its replies. Thread CPU time, best of several rounds (the machine may be shared).

    python plugins/logferry-redis/bench/wire.py [--lines 10000] [--line-bytes 100]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from logferry import Batch
from logferry_redis.wire import Replies, xadd_payload


def cpu_ns(work: Callable[[], object], per: int, rounds: int = 9, repeat: int = 10) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time_ns()
        for _ in range(repeat):
            work()
        best = min(best, (time.thread_time_ns() - started) / repeat / per)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--line-bytes", type=int, default=100)
    args = parser.parse_args()
    n = args.lines
    lines = [(b"2026-12-01T10:00:00.000 app.log-%06d " % i).ljust(args.line_bytes - 1, b"x") for i in range(n)]
    data = b"".join(line + b"\n" for line in lines)
    batch = Batch("/var/log/app/app3.log", "0123456789abcdef", 2_000_000, 2_000_000 + len(data), data)
    replies = b"".join(b"$15\r\n1764581234%03d-%d\r\n" % (i % 1000, i % 10) for i in range(n))

    def parse() -> None:
        reading = Replies([n])
        for at in range(0, len(replies), 1 << 16):
            reading.feed(replies[at:at + (1 << 16)])

    print(f"payload  {cpu_ns(lambda: xadd_payload(b'logs', batch, None), n):6.0f} ns/line "
          f"({len(xadd_payload(b'logs', batch, None)[0]) / n:.0f} bytes/line)")
    print(f"split    {cpu_ns(batch.split, n):6.0f} ns/line (logferry.Batch.split, part of the payload)")
    print(f"replies  {cpu_ns(parse, n):6.0f} ns/reply")


if __name__ == "__main__":
    main()
