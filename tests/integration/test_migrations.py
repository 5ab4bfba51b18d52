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


def test_behind_is_pending_and_ahead_is_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A rolling upgrade: the new release migrates first, and the old processes,
    which do not know the new revision, must stay ready until replaced."""
    database = Database(f"sqlite:///{tmp_path}/roll.db")
    migrate.upgrade(database.engine, "0005")
    assert migrate.pending(database.engine)  # behind this code
    migrate.upgrade(database.engine)
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    assert not migrate.pending(database.engine)
    database.dispose()
