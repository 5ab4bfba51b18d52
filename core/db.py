"""Engine and transactions.

SQLite runs in WAL mode with foreign keys on, and every transaction begins
with ``BEGIN IMMEDIATE``: one writer at a time, so a check-then-insert inside
a transaction (no double booking, one conversation step at a time) is safe
without PostgreSQL's row locks and exclusion constraint.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker


class DatabaseConfigError(Exception):
    """The database URL cannot be used; the message is one line for the operator."""


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseConfigError(f"TELEMED_DATABASE_URL is not a database URL: {url!r}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(url, parsed.database)
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size * 2 if max_overflow is None else max_overflow,
        )
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseConfigError(f"TELEMED_DATABASE_URL: unsupported driver ({exc})") from None


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """An engine and its sessions; ``transaction()`` is the unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer. Threads of this process queue here instead of
        # in SQLite's busy handler, whose sleeps would make waits long and
        # uneven; other processes are still handled by the busy timeout.
        self._writer: threading.RLock | contextlib.nullcontext[None] = (
            threading.RLock() if is_sqlite(self.engine) else contextlib.nullcontext()
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._writer, self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
