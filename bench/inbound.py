"""In-process throughput of FlowEngine.handle on SQLite.

A temporary database is migrated and seeded with the demo clinic; then
N messages spread over M conversations ("hi", "menu", "book", "1",
"my appointments", "help") are handled from a few threads. Prints messages/s
and p50/p99 latency against the targets; asserts nothing.

Then the same over HTTP (skip with --no-http): one ``telemed serve`` process on
a temporary SQLite file, its Twilio pointed at the fake Twilio server started
here, seeded with ``telemed demo``; 32 concurrent senders post signed Twilio SMS
webhooks from many numbers for --seconds; in the same run a bare FastAPI
form-echo endpoint under uvicorn (another process) is hit the same way. Prints
both throughputs, the webhook's p50/p99 and the ratio. Loopback only.

    .venv/bin/python bench/inbound.py [--messages 5000] [--conversations 500] [--threads 4]
    .venv/bin/python bench/inbound.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/inbound.py --http-only [--senders 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode
from uuid import uuid4

import httpx
from twilio.request_validator import RequestValidator

from core import migrate
from core.clock import SystemClock
from core.db import Database
from core.demo import seed_demo
from core.messages import InboundMessage
from core.settings import Settings
from flows.engine import FlowEngine

TARGET_RATE = 2000.0  # messages per second
TARGET_P99_MS = 20.0
HTTP_TARGET_RATIO = 0.25  # webhook throughput / bare form-echo throughput
HTTP_COMPASS_RATIO = 0.5
HTTP_TARGET_P99_MS = 50.0
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMS_FROM = "+15005550006"
ECHO_APP = """
from urllib.parse import parse_qsl
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
import uvicorn

app = FastAPI()

@app.post("/echo")
async def echo(request: Request) -> PlainTextResponse:
    form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    return PlainTextResponse("&".join(f"{k}={v}" for k, v in form))

uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""
MIX = ("hi", "menu", "book", "1", "my appointments", "help")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--no-http", action="store_true", help="in-process part only")
    parser.add_argument("--http-only", action="store_true", help="HTTP part only")
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    if not args.http_only:
        in_process(args)
    if not args.no_http:
        over_http(args.senders, args.seconds)


def in_process(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        with db.transaction() as session:
            seed_demo(session, "America/New_York", reset=True)
        engine = FlowEngine(db, Settings(database_url=url), SystemClock())

        # Conversation k gets messages k, k+M, k+2M...; each thread owns whole conversations,
        # so the messages of one conversation keep their order.
        per_thread: list[list[InboundMessage]] = [[] for _ in range(args.threads)]
        for n in range(args.messages):
            conversation = n % args.conversations
            message = InboundMessage(
                channel="sms",
                address=f"+1555{conversation:07d}",
                text=MIX[(n // args.conversations + conversation) % len(MIX)],
                provider_message_id=uuid4().hex,
            )
            per_thread[conversation % args.threads].append(message)

        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(messages: list[InboundMessage]) -> None:
            mine: list[float] = []
            for message in messages:
                started = time.perf_counter()
                try:
                    engine.handle(message)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(exc)
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=work, args=(batch,)) for batch in per_thread]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        db.dispose()

    rate = len(latencies) / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    backend = "sqlite (temporary file)" if not args.database_url else db.dialect
    print(f"FlowEngine.handle on {backend}: {len(latencies)} messages, ")
    print(f"  {args.conversations} conversations, {args.threads} threads, {elapsed:.2f} s")
    print(f"  throughput  {rate:8.0f} msg/s   target >= {TARGET_RATE:.0f}  ", end="")
    print("ok" if rate >= TARGET_RATE else "BELOW TARGET")
    print(f"  latency p50 {p50:8.2f} ms")
    print(f"  latency p99 {p99:8.2f} ms      target <= {TARGET_P99_MS:.0f}    ", end="")
    print("ok" if p99 <= TARGET_P99_MS else "ABOVE TARGET")
    if errors:
        kinds = sorted({type(e).__name__ for e in errors})
        print(f"  errors      {len(errors)} ({', '.join(kinds)})")


# -- over HTTP ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    """A server subprocess, up once its port answers HTTP; terminated on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[:3]} exited early:\n{log.read_text()[-2000:]}")
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{argv[:3]} did not start in 60 s") from None
                    time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def drive(
    url: str, make_body: Callable[[int], tuple[bytes, dict[str, str]]], senders: int, seconds: float
) -> tuple[int, float, list[float], dict[int, int]]:
    """``senders`` concurrent clients posting for ``seconds`` (after a 1 s warm-up).

    Returns (requests counted, elapsed s, latencies in s, status code counts)."""

    async def run() -> tuple[int, float, list[float], dict[int, int]]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        counter = iter(range(10**9))
        limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            warm_until = time.perf_counter() + 1.0
            stop_at = warm_until + seconds

            async def sender() -> None:
                while (now := time.perf_counter()) < stop_at:
                    body, headers = make_body(next(counter))
                    started = time.perf_counter()
                    try:
                        response = await client.post(url, content=body, headers=headers)
                        code = response.status_code
                    except httpx.HTTPError:
                        code = 0
                    ended = time.perf_counter()
                    if now >= warm_until and ended <= stop_at:
                        latencies.append(ended - started)
                        statuses[code] = statuses.get(code, 0) + 1

            await asyncio.gather(*(sender() for _ in range(senders)))
        return len(latencies), seconds, latencies, statuses

    return asyncio.run(run())


def over_http(senders: int, seconds: float) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # tests/ is not installed: the fakes come from the repo
    from tests.fakes.twilio_server import running_fake_twilio

    with tempfile.TemporaryDirectory() as tmp, running_fake_twilio() as fake:
        app_port, echo_port = free_port(), free_port()
        public_url = f"http://127.0.0.1:{app_port}"
        env = {
            **os.environ,
            "TELEMED_DATABASE_URL": f"sqlite:///{Path(tmp) / 'serve.db'}",
            "TELEMED_PUBLIC_URL": public_url,
            "TELEMED_TWILIO_ACCOUNT_SID": fake.account_sid,
            "TELEMED_TWILIO_AUTH_TOKEN": fake.auth_token,
            "TELEMED_TWILIO_API_BASE_URL": fake.base_url,
            "TELEMED_TWILIO_SMS_FROM": SMS_FROM,
        }
        env.pop("TELEMED_TWILIO_WHATSAPP_FROM", None)
        env.pop("TELEMED_TWILIO_MESSAGING_SERVICE_SID", None)
        telemed = str(VENV_BIN / "telemed")
        subprocess.run(
            [telemed, "demo"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120
        )

        path = "/webhooks/twilio/sms"
        validator = RequestValidator(fake.auth_token)
        run_id = uuid4().hex[:8]

        def webhook_body(n: int) -> tuple[bytes, dict[str, str]]:
            # 5,000 numbers, round robin: a few messages each, far below the abuse limit.
            params = {
                "MessageSid": f"SM{run_id}{n:024d}",
                "AccountSid": fake.account_sid,
                "From": f"+1555{n % 5000:07d}",
                "To": SMS_FROM,
                "Body": MIX[n % len(MIX)],
                "NumMedia": "0",
                "NumSegments": "1",
                "ApiVersion": "2010-04-01",
            }
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": validator.compute_signature(public_url + path, params),
            }
            return urlencode(params).encode(), headers

        def echo_body(n: int) -> tuple[bytes, dict[str, str]]:
            body, headers = webhook_body(n)
            return body, {"Content-Type": headers["Content-Type"]}

        serve = [telemed, "serve", "--port", str(app_port)]
        with process(serve, env, app_port, Path(tmp) / "serve.log"):
            hook = drive(public_url + path, webhook_body, senders, seconds)
        echo_argv = [sys.executable, "-c", ECHO_APP.replace("{port}", str(echo_port))]
        with process(echo_argv, env, echo_port, Path(tmp) / "echo.log"):
            echo = drive(f"http://127.0.0.1:{echo_port}/echo", echo_body, senders, seconds)
        sent = len(fake.messages)

    hook_rate = hook[0] / hook[1]
    echo_rate = echo[0] / echo[1]
    ratio = hook_rate / echo_rate if echo_rate else 0.0
    p50 = statistics.median(hook[2]) * 1000 if hook[2] else float("nan")
    p99 = percentile(hook[2], 0.99) * 1000 if hook[2] else float("nan")
    echo_p50 = statistics.median(echo[2]) * 1000 if echo[2] else float("nan")
    echo_p99 = percentile(echo[2], 0.99) * 1000 if echo[2] else float("nan")
    print(f"HTTP, {senders} concurrent senders, {seconds:.0f} s each (after 1 s warm-up):")
    print(f"  signed Twilio SMS webhook (telemed serve, sqlite)  {hook_rate:8.0f} req/s")
    print(f"    status codes {dict(sorted(hook[3].items()))}; replies sent to fake: {sent}")
    print(f"    latency p50 {p50:8.2f} ms")
    print(f"    latency p99 {p99:8.2f} ms      target <= {HTTP_TARGET_P99_MS:.0f}    ", end="")
    print("ok" if p99 <= HTTP_TARGET_P99_MS else "ABOVE TARGET")
    print(f"  bare FastAPI form echo (uvicorn)                 {echo_rate:8.0f} req/s")
    print(f"    status codes {dict(sorted(echo[3].items()))}")
    print(f"    latency p50 {echo_p50:8.2f} ms, p99 {echo_p99:.2f} ms")
    print(
        f"  ratio webhook/echo {ratio:6.2f}   target >= {HTTP_TARGET_RATIO}  "
        f"(compass {HTTP_COMPASS_RATIO})  ",
        end="",
    )
    print("ok" if ratio >= HTTP_TARGET_RATIO else "BELOW TARGET")


if __name__ == "__main__":
    main()
