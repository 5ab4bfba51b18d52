"""The fake Twilio API in a process of its own, for the system tests and
benchmarks that start the service as several processes.

    python -m tests.fakes.twilio_proc [--latency-ms N]

It prints ``listening http://127.0.0.1:PORT`` once it serves. Besides
Twilio's API (``tests.fakes.twilio_server``) it answers:

* ``GET /_fake/messages``: the accepted messages, oldest first, as JSON
  (``sid``, ``to``, ``body``);
* ``GET /_fake/stats``: requests by answer status;
* ``POST /_fake/outage?mode=503|hang|off``: start or end an outage;
* ``POST /_fake/clear``: forget everything.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections import Counter
from typing import Any

import uvicorn
from fastapi.responses import JSONResponse

from tests.fakes.twilio_server import FakeTwilio


def build(latency_ms: float = 0.0) -> FakeTwilio:
    fake = FakeTwilio()
    fake.latency_s = latency_ms / 1000
    app = fake.app

    @app.get("/_fake/messages")
    def messages() -> JSONResponse:
        rows: list[dict[str, Any]] = [
            {"sid": m["sid"], "to": m["to"], "body": m["body"]} for m in fake.messages
        ]
        return JSONResponse(rows)

    @app.get("/_fake/stats")
    def stats() -> JSONResponse:
        return JSONResponse(dict(Counter(str(r["status"]) for r in fake.requests)))

    @app.post("/_fake/outage")
    def outage(mode: str) -> JSONResponse:
        fake.outage = None if mode == "off" else mode
        return JSONResponse({"outage": fake.outage})

    @app.post("/_fake/clear")
    def clear() -> JSONResponse:
        latency = fake.latency_s
        fake.clear()
        fake.latency_s = latency
        return JSONResponse({})

    return fake


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = build(args.latency_ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake.base_url = url
    config = uvicorn.Config(
        fake.app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=600
    )
    server = uvicorn.Server(config)
    print(f"listening {url}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
