"""Serving a fake provider's ASGI app on a free loopback port, in a daemon thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar, cast

import uvicorn


class LoopbackServer:
    """uvicorn serving ``app`` on 127.0.0.1 at a port the OS picks."""

    def __init__(self, app: Any, name: str) -> None:
        self.name = name
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only
        # then, which spares each request on a kept-alive connection a 40 ms stall.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        # Idle keep-alive connections stay open for the whole test: with uvicorn's 5 s
        # default, a client could reuse one just as the server closes it (a lost send).
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            timeout_keep_alive=600,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class Fake(Protocol):
    """What a fake provider offers the runner: its ASGI app, and where it is served."""

    app: Any
    base_url: str


F = TypeVar("F", bound=Fake)


@contextlib.contextmanager
def running(fake: F, name: str) -> Iterator[F]:
    """Serve ``fake`` on its own server, stopped on exit."""
    server = LoopbackServer(fake.app, name)
    fake.base_url = server.base_url
    server.start()
    try:
        yield fake
    finally:
        server.stop()


_shared: dict[Callable[[], Any], Any] = {}
_shared_lock = threading.Lock()


def shared(make: Callable[[], F], name: str) -> F:
    """One server per kind of fake and test process, started on first use (a
    daemon thread that ends with the process)."""
    with _shared_lock:
        if make not in _shared:
            fake = make()
            server = LoopbackServer(fake.app, name)
            fake.base_url = server.base_url
            server.start()
            _shared[make] = fake
        return cast(F, _shared[make])
