"""The service as a cluster of real processes on one PostgreSQL database,
for the system tests and ``bench/cluster.py``.

``Cluster`` starts ``telemed serve --role web|worker|scheduler`` processes
(``python -m bots.cli``), each with its own log file, and a fake Twilio in a
process of its own (``tests.fakes.twilio_proc``). ``Patients`` posts signed
Twilio SMS webhooks to the web processes, many at once, each delivered twice
when asked (a provider's retry). Nothing here asserts: the tests do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from core.db import Database
from core.models import InboundLog, OutboxMessage
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://clinic.example"
SMS_FROM = "+15005550006"
TZ = "America/New_York"


# The system tests' volumes, as a fraction of issue 8's acceptance numbers
# (10,000 messages, 5,000 reminders, 5,000 sends through crashing workers).
# `make test` runs them at SYSTEM_TEST_SCALE=0.3 so CI fits in 15 minutes on
# 2 cores; SYSTEM_TEST_SCALE=1 (the default here) runs the full numbers.
SCALE = float(os.environ.get("SYSTEM_TEST_SCALE", "1"))


def scaled(count: int) -> int:
    return max(1, round(count * SCALE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout:g} s")


@dataclass
class Node:
    """One process of the cluster."""

    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        try:
            return _cpu_seconds(Path(f"/proc/{self.pid}/stat").read_text())
        except OSError:
            return 0.0

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class FakeTwilioProcess:
    """``tests.fakes.twilio_proc`` in its own process."""

    def __init__(self, workdir: Path, latency_ms: float = 0.0) -> None:
        self.log = workdir / "fake-twilio.log"
        argv = [sys.executable, "-m", "tests.fakes.twilio_proc", "--latency-ms", str(latency_ms)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log.open("wb")
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"fake Twilio did not start: {line!r} {self.log.read_text()}")
        self.base_url = line.removeprefix("listening ")
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        _wait_for(lambda: self.http.get("/_fake/stats").status_code == 200, 15, "fake Twilio")

    def env(self) -> dict[str, str]:
        return {
            "TELEMED_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TELEMED_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TELEMED_TWILIO_API_BASE_URL": self.base_url,
            "TELEMED_TWILIO_SMS_FROM": SMS_FROM,
        }

    def messages(self) -> list[dict[str, str]]:
        answer: list[dict[str, str]] = self.http.get("/_fake/messages").json()
        return answer

    def stats(self) -> dict[str, int]:
        answer: dict[str, int] = self.http.get("/_fake/stats").json()
        return answer

    def outage(self, mode: str) -> None:
        self.http.post("/_fake/outage", params={"mode": mode}).raise_for_status()

    def clear(self) -> None:
        self.http.post("/_fake/clear").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Cluster:
    """``telemed serve`` processes of each role against ``database_url``."""

    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    _count: Counter[str] = field(default_factory=Counter)

    def base_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
        return {
            **keep,
            "PYTHONPATH": str(ROOT),
            "TELEMED_DATABASE_URL": self.database_url,
            "TELEMED_PUBLIC_URL": PUBLIC_URL,
            "TELEMED_CLINIC_TIMEZONE": TZ,
            "TELEMED_SECRET_KEY": "system-test-secret-key-0123456789",
            "TELEMED_LOG_FORMAT": "json",
            # Warnings and errors only: a line per request for 20,000 requests costs
            # CPU the load test needs (tests/integration/test_phi_logs.py covers info).
            "TELEMED_LOG_LEVEL": "warning",
            # Up to 9 processes and the other test worker under PostgreSQL's default
            # max_connections of 100.
            "TELEMED_DB_POOL_SIZE": "5",
            "TELEMED_DB_MAX_OVERFLOW": "5",
            **self.env,
        }

    def start(self, role: str, *, wait: bool = True) -> Node:
        self._count[role] += 1
        log = self.workdir / f"{role}-{self._count[role]}.log"
        argv = [sys.executable, "-m", "bots.cli", "serve", "--role", role, "--no-migrate"]
        port = None
        if role in ("web", "all"):
            port = free_port()
            argv += ["--port", str(port)]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.base_env(), stdout=out, stderr=subprocess.STDOUT
            )
        node = Node(role, proc, log, port)
        self.nodes.append(node)
        if wait:
            self.wait_ready(node)
        return node

    def wait_ready(self, node: Node, timeout: float = 60) -> None:
        def ready() -> bool:
            if not node.alive():
                raise RuntimeError(f"{node.role} exited:\n{node.tail()}")
            if node.port is not None:
                return httpx.get(node.url + "/readyz", timeout=2).status_code == 200
            return f"role {node.role} running" in node.log.read_text(errors="replace")

        _wait_for(ready, timeout, f"{node.role} {node.pid} ready")

    def of(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role and n.alive()]

    @property
    def web_urls(self) -> list[str]:
        return [n.url for n in self.of("web")]

    def kill(self, node: Node) -> None:
        with contextlib.suppress(ProcessLookupError):
            node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)

    def stop(self) -> dict[int, int | None]:
        """SIGTERM everyone (graceful), then SIGKILL what is left; exit codes by pid."""
        for node in self.nodes:
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for node in self.nodes:
            try:
                codes[node.pid] = node.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                codes[node.pid] = node.proc.wait()
        return codes

    def cpu_by_role(self) -> dict[str, float]:
        used: Counter[str] = Counter()
        for node in self.nodes:
            used[node.role] += node.cpu_seconds()
        return dict(used)

    def logs(self) -> str:
        return "\n".join(n.log.read_text(errors="replace") for n in self.nodes if n.log.exists())


@contextlib.contextmanager
def running_cluster(
    database_url: str, workdir: Path, env: dict[str, str], roles: dict[str, int]
) -> Iterator[Cluster]:
    cluster = Cluster(database_url, workdir, env)
    try:
        for role, count in roles.items():
            for _ in range(count):
                cluster.start(role, wait=False)
        for node in cluster.nodes:
            cluster.wait_ready(node)
        yield cluster
    finally:
        cluster.stop()


# -- patients ---------------------------------------------------------------------


def phone(n: int) -> str:
    return f"+1555{n:07d}"


@dataclass
class Delivery:
    """What the load client saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0  # distinct messages (each may be delivered twice)
    seconds: float = 0.0


class Patients:
    """Signed Twilio SMS webhooks from ``count`` numbers to the web processes."""

    def __init__(self, urls: Sequence[str], count: int, *, first: int = 0) -> None:
        self.urls = list(urls)
        self.numbers = [phone(first + n) for n in range(count)]
        self.validator = RequestValidator(AUTH_TOKEN)

    def form(self, number: str, text: str) -> dict[str, str]:
        return {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "SmsMessageSid": "",
            "AccountSid": ACCOUNT_SID,
            "MessagingServiceSid": "",
            "From": number,
            "To": SMS_FROM,
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
            "FromCountry": "US",
            "ToCountry": "US",
        }

    async def converse(
        self,
        script: Sequence[str],
        *,
        concurrency: int = 64,
        twice: bool = True,
        pause_s: float = 0.0,
    ) -> Delivery:
        """Each patient sends ``script`` in order, one message after the other
        answered; with ``twice`` each webhook is delivered again, at the same
        time as the first for half the patients and right after it for the rest
        (on the other web process: a retry may land anywhere)."""
        result = Delivery()
        path = "/webhooks/twilio/sms"
        pools = [_Pool(url, max(1, concurrency // len(self.urls))) for url in self.urls]

        async def post(pool: _Pool, body: bytes, signature: str) -> None:
            try:
                status, seconds = await pool.post(path, body, signature)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors[type(exc).__name__] += 1
                return
            result.latencies_ms.append(seconds * 1000)
            result.statuses[status] += 1

        async def patient(n: int, number: str) -> None:
            first, retry = pools[n % len(pools)], pools[(n + 1) % len(pools)]
            for text in script:
                form = self.form(number, text)
                signature = self.validator.compute_signature(PUBLIC_URL + path, form)
                body = urlencode(form).encode()
                result.sent += 1
                if not twice:
                    await post(first, body, signature)
                elif n % 2:
                    await asyncio.gather(post(first, body, signature), post(retry, body, signature))
                else:
                    await post(first, body, signature)
                    await post(retry, body, signature)
                if pause_s:
                    await asyncio.sleep(pause_s * (0.5 + random.random()))

        started = time.perf_counter()
        try:
            await asyncio.gather(*(patient(n, number) for n, number in enumerate(self.numbers)))
        finally:
            for pool in pools:
                pool.close()
        result.seconds = time.perf_counter() - started
        return result


class _Pool:
    """Kept-alive HTTP/1.1 connections to one server, at most ``size`` at once.

    A few lines of asyncio streams rather than an HTTP client library: the
    load generator shares the machine with the cluster it measures, and
    httpx spent about 6 ms of CPU per request here, as much as the service.
    """

    def __init__(self, url: str, size: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(size):
            self.idle.put_nowait(None)  # a slot; connected on first use
        self.open: list[asyncio.StreamWriter] = []

    async def post(self, path: str, body: bytes, signature: str) -> tuple[int, float]:
        """The answer's status and the seconds from sending to the whole answer
        (not counting the wait for a free connection)."""
        conn = await self.idle.get()
        started = time.perf_counter()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
                self.open.append(conn[1])
            reader, writer = conn
            writer.write(
                (
                    f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n\r\n"
                ).encode()
                + body
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
        except BaseException:
            if conn is not None:
                conn[1].close()
            self.idle.put_nowait(None)
            raise
        self.idle.put_nowait(conn)
        return status, time.perf_counter() - started

    def close(self) -> None:
        for writer in self.open:
            writer.close()


# -- the database's view ----------------------------------------------------------


def counts(db: Database) -> dict[str, int]:
    with db.transaction() as session:
        by_status = dict(
            session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
        inbound = session.scalar(select(func.count()).select_from(InboundLog)) or 0
    return {"inbound": int(inbound), **{str(k): int(v) for k, v in by_status.items()}}


def wait_drained(db: Database, timeout: float) -> float:
    """Wait until no outbox row is pending or sending; the seconds it took."""
    started = time.monotonic()

    def drained() -> bool:
        c = counts(db)
        return c.get("pending", 0) == 0 and c.get("sending", 0) == 0

    _wait_for(drained, timeout, "outbox drained")
    return time.monotonic() - started


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on this machine (Linux)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            if name.startswith("postgres"):
                total += _cpu_seconds(text)
    return total


def _cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds (the fields after the name)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]
