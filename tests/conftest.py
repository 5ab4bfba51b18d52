"""Shared fixtures: a real, migrated database per test.

SQLite always; PostgreSQL too when TELEMED_TEST_POSTGRES_URL is set (CI sets
it). Tests that take the ``db`` fixture run once per backend.

Under pytest-xdist (``-n 2``) each worker gets its own databases: SQLite files
live under the worker's own temporary folder, and PostgreSQL tests use the
database ``<name>_<worker>`` (say ``test_gw0``) next to the one in the URL,
created on first use, so one worker's TRUNCATE never wipes another's rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from core import migrate
from core.clock import FixedClock
from core.db import Database, make_engine
from core.models import Base

PG_URL = os.environ.get("TELEMED_TEST_POSTGRES_URL")

# tests/rasa needs the rasa extra, which lives in its own environment
# (.venv-rasa, `make test`); the main environment does not collect it.
try:
    import rasa_sdk  # noqa: F401
except ImportError:
    collect_ignore = ["rasa"]
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


# SQLSTATEs of a CREATE DATABASE that lost a race: another session created the
# same name first (duplicate_database), or committed the pg_database row as we
# inserted ours (unique_violation).
_ALREADY_THERE = {"42P04", "23505"}


def _worker_database(url: str, worker: str) -> str:
    """The URL of this xdist worker's own database, created if missing.

    A leftover from an earlier run is reused: ``pg_migrated`` rebuilds its schema."""
    base = make_url(url)
    name = f"{base.database}_{worker}"
    quoted = '"' + name.replace('"', '""') + '"'
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not found:
                try:
                    conn.execute(text(f"CREATE DATABASE {quoted}"))
                except DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) not in _ALREADY_THERE:
                        raise
    finally:
        admin.engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_migrated() -> str | None:
    if not PG_URL:
        return None
    # gw0, gw1, ... under xdist; TELEMED_TEST_DB_SUFFIX for a run beside it
    # (`make test` runs tests/rasa in its own environment at the same time).
    worker = os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TELEMED_TEST_DB_SUFFIX")
    url = _worker_database(PG_URL, worker) if worker else PG_URL
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(engine)
    engine.dispose()
    return url


# The audit log refuses DELETE (a trigger keeps it append-only); TRUNCATE it.
_APPEND_ONLY = {"audit_log"}
_EMPTY_PG = [
    text(f"TRUNCATE {t.name}" if t.name in _APPEND_ONLY else f"DELETE FROM {t.name}")
    for t in reversed(Base.metadata.sorted_tables)
]
# Ids start at 1 again in every test, as after TRUNCATE ... RESTART IDENTITY.
_RESTART_IDS = text(
    "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false)"
    " FROM pg_sequences WHERE schemaname = current_schema()"
)


def _truncate_pg(database: Database) -> None:
    """Empty every table before a PostgreSQL test. DELETE, children first, not
    TRUNCATE: a test leaves a few rows, and TRUNCATE's new files for 26 tables
    and their indexes cost 60-90 ms a test (minutes of CI) where this costs 5."""
    with database.engine.begin() as conn:
        for statement in _EMPTY_PG:
            conn.execute(statement)
        conn.execute(_RESTART_IDS)


@pytest.fixture(params=BACKENDS)
def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_migrated: str | None
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "telemed.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
    else:
        assert pg_migrated is not None
        database = Database(pg_migrated)
        _truncate_pg(database)
    yield database
    database.dispose()


@pytest.fixture(params=["postgres"] if PG_URL else [])
def postgres_db(pg_migrated: str | None) -> Iterator[Database]:
    """PostgreSQL only, for what exists only there (CI always has it)."""
    assert pg_migrated is not None
    database = Database(pg_migrated)
    _truncate_pg(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    path = tmp_path / "telemed.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    # A Tuesday morning in New York, well away from DST changes.
    return FixedClock(datetime(2026, 4, 14, 13, 0, tzinfo=UTC))
