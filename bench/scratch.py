"""Throwaway databases for benchmarks: a migrated SQLite file in a temporary
folder, or a PostgreSQL database of our own on a given server, dropped after.

Nothing in the given server's database is read or changed (a schema of our
own would not do: Alembic finds the version table of ``public`` through the
search path).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from core import migrate
from core.db import Database, make_engine


@contextlib.contextmanager
def _migrated(url: str) -> Iterator[Database]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()


@contextlib.contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp, _migrated(f"sqlite:///{tmp}/bench.db") as db:
        yield db


@contextlib.contextmanager
def postgres_database(url: str, prefix: str = "bench") -> Iterator[Database]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    scratch = make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        with _migrated(scratch) as db:
            yield db
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        admin.engine.dispose()
