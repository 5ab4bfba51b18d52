"""Shared fixtures: a real, migrated database per test.

SQLite always; PostgreSQL too when TELEMED_TEST_POSTGRES_URL is set (CI sets
it). Tests that take the ``db`` fixture run once per backend.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from core import migrate
from core.clock import FixedClock
from core.db import Database, make_engine
from core.models import Base

PG_URL = os.environ.get("TELEMED_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str | None:
    if not PG_URL:
        return None
    engine = make_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(engine)
    engine.dispose()
    return PG_URL


def _truncate_pg(database: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


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
