"""Start-up figures of the `telemed` command: what a user waits for.

Prints `telemed --help` and `telemed appointments` wall times (median of
several runs), `telemed serve` time to ready (polling /readyz) and its idle
resident memory (VmRSS), each with its target; asserts nothing.

    .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def telemed() -> list[str]:
    script = Path(sys.executable).parent / "telemed"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bots.cli"]


def wall(args: list[str], env: dict[str, str], cwd: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(args, env=env, cwd=cwd, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "ABOVE TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cmd = telemed()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
        env["TELEMED_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'startup.db'}"
        subprocess.run([*cmd, "demo"], env=env, cwd=tmp, capture_output=True, check=True)

        help_s = wall([*cmd, "--help"], env, tmp, args.runs)
        list_s = wall([*cmd, "appointments"], env, tmp, args.runs)

        port = free_port()
        began = time.perf_counter()
        server = subprocess.Popen(
            [*cmd, "serve", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready_s = float("nan")
            while time.perf_counter() - began < 30 and server.poll() is None:
                if ready(f"http://127.0.0.1:{port}/readyz"):
                    ready_s = time.perf_counter() - began
                    break
                time.sleep(0.02)
            time.sleep(2.0)  # let the dispatcher and the scheduler settle
            rss = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"telemed start-up ({' '.join(Path(c).name for c in cmd)}; median of {args.runs})")
    print(f"  telemed --help          {help_s:6.2f} s   target <= 1 s    {verdict(help_s, 1.0)}")
    print(f"  telemed appointments    {list_s:6.2f} s   target <= 1 s    {verdict(list_s, 1.0)}")
    print(f"  telemed serve ready     {ready_s:6.2f} s   target <= 2 s    {verdict(ready_s, 2.0)}")
    print(f"  telemed serve idle RSS  {rss:6.0f} MB  target <= 150 MB {verdict(rss, 150.0)}")


if __name__ == "__main__":
    main()
