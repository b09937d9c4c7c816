"""nginx under wrk load, its access log rotated by the real logrotate, followed by logferry.

A reliability scenario rather than a speed race (issue 10, item 1): nginx (Debian's nginx-light)
serves 127.0.0.1 under `wrk` load and logs every request with its unique `$request_id`;
`logrotate -f` rotates `access.log` every `--every` seconds (`copytruncate`, or `create` with
nginx told to reopen its log), `rotate 1000`; logferry follows `access.log*` into a file sink.
At the end it prints, for each mode: requests logged on disk (every generation), lines shipped,
lines on disk that were not shipped (missing), lines shipped twice (doubled), and shipped lines that
are on no disk (logrotate's copytruncate race: read from the original before its truncation, in no
copy).

    python bench/rotation_nginx.py [--seconds 15] [--every 1.5] [--modes copytruncate,create]

Needs nginx, wrk and logrotate (`apt-get install nginx-light wrk logrotate`); loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format ids '$request_id $msec "$request" $status';
    access_log {dir}/logs/access.log ids;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 204; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def run_mode(mode: str, seconds: float, every: float, keep: bool) -> dict[str, int | str]:
    work = Path(tempfile.mkdtemp(prefix=f"lf-nginx-{mode}-"))
    (work / "logs").mkdir()
    port = free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, port=port))
    action = "copytruncate" if mode == "copytruncate" else (
        f"create\n    postrotate\n        kill -USR1 $(cat {work}/nginx.pid)\n    endscript")
    conf = work / "logrotate.conf"
    conf.write_text(f"{work}/logs/access.log {{\n    rotate 1000\n    missingok\n    {action}\n}}\n")
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                             stderr=subprocess.DEVNULL, start_new_session=True)  # a group: its workers too
    out = work / "out.log"
    logferry = subprocess.Popen([sys.executable, "-m", "logferry", "run", f"{work}/logs/access.log*",
                                 "--sink", f"file:{out}", "--state-dir", str(work / "state")],
                                stderr=open(work / "logferry.log", "w"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            if time.monotonic() > deadline:
                raise SystemExit("nginx did not start: see " + str(work / "nginx-error.log"))
            time.sleep(0.05)
        wrk = subprocess.Popen(["wrk", "-t1", "-c32", f"-d{round(seconds)}s", f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, text=True)
        rotations = 0
        while wrk.poll() is None:
            time.sleep(every)
            if wrk.poll() is None:
                subprocess.run(["logrotate", "-f", "-s", str(work / "logrotate.state"), str(conf)], check=True)
                rotations += 1
        wrk.communicate()
        time.sleep(0.5)
        nginx.send_signal(signal.SIGQUIT)  # graceful: every request logged
        nginx.wait(timeout=30)
        disk: list[bytes] = []
        for path in (work / "logs").iterdir():
            disk += path.read_bytes().splitlines()
        expected = sum(len(line) + 1 for line in disk)
        deadline = time.monotonic() + 120
        while (not out.exists() or out.stat().st_size < expected) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # anything shipped twice has time to arrive
    finally:
        logferry.send_signal(signal.SIGTERM)
        logferry.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(nginx.pid, signal.SIGKILL)  # whatever is left of it, workers included
    shipped = out.read_bytes().splitlines() if out.exists() else []
    counts: dict[bytes, int] = {}
    for line in shipped:
        counts[line] = counts.get(line, 0) + 1
    on_disk = set(disk)
    result: dict[str, int | str] = {
        "mode": mode, "rotations": rotations, "on disk": len(disk), "shipped": len(shipped),
        "missing": len(on_disk - counts.keys()), "doubled": sum(n - 1 for n in counts.values() if n > 1),
        "on no disk (race window)": len(counts.keys() - on_disk), "logferry exit": logferry.returncode,
    }
    if keep:
        result["dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="wrk's run time (default 15)")
    parser.add_argument("--every", type=float, default=1.5, help="seconds between rotations (default 1.5)")
    parser.add_argument("--modes", default="copytruncate,create")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "logrotate"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed (apt-get install nginx-light wrk logrotate)")
    rows = [run_mode(mode, args.seconds, args.every, args.keep) for mode in args.modes.split(",")]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:,}" if isinstance(row[k], int) else str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
