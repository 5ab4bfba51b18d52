"""Migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from core import migrate
from core.db import Database
from core.models import Base


def test_schema_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert not migrate.pending(db.engine)


def test_sqlite_pragmas(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_fresh_database_reports_pending(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fresh = Database(f"sqlite:///{tmp_path}/fresh.db")
    assert migrate.pending(fresh.engine)
    migrate.upgrade(fresh.engine)
    assert not migrate.pending(fresh.engine)
    fresh.dispose()
