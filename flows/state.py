"""Conversation state, read and written with plain SQL statements.

Every inbound message loads and saves its conversation, so this path skips
the ORM's unit of work (several times the cost of a Core statement here) and
keeps the state in a small dataclass the steps change freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.models import Conversation, table_of

_TABLE = table_of(Conversation)


@dataclass
class ConversationState:
    id: int
    flow: str | None
    step: str | None
    data: dict[str, Any]
    language: str | None
    updated_at: datetime
    new: bool = False  # created by this message: nothing was said in it before


@cache
def _statements(dialect: str) -> tuple[Select[Any], Insert, Update]:
    """Built once: a reused statement also reuses its compiled form and cache
    key, which here costs more than running it."""
    select_row = select(_TABLE).where(
        _TABLE.c.channel == bindparam("channel"), _TABLE.c.address == bindparam("address")
    )
    if dialect == "postgresql":
        select_row = select_row.with_for_update()
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    create = (
        insert(_TABLE)
        .values(
            channel=bindparam("channel"),
            address=bindparam("address"),
            data={},
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["channel", "address"])
    )
    save_row = (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("row_id"))
        .values(
            flow=bindparam("flow"),
            step=bindparam("step"),
            data=bindparam("data"),
            language=bindparam("language"),
            updated_at=bindparam("now"),
        )
    )
    return select_row, create, save_row


def lock(session: Session, channel: str, address: str, now: datetime) -> ConversationState:
    """The conversation of (channel, address), created if new and locked for
    this transaction (PostgreSQL: the row; SQLite: the whole database, as
    every transaction begins IMMEDIATE)."""
    select_row, create, _save = _statements(session.get_bind().dialect.name)
    key = {"channel": channel, "address": address}
    row = session.execute(select_row, key).first()
    new = row is None
    if row is None:
        session.execute(create, {**key, "now": now})
        row = session.execute(select_row, key).one()
    return ConversationState(
        id=row.id,
        flow=row.flow,
        step=row.step,
        data=dict(row.data or {}),
        language=row.language,
        updated_at=row.updated_at,
        new=new,
    )


def save(session: Session, state: ConversationState, now: datetime) -> None:
    state.updated_at = now
    _select, _create, save_row = _statements(session.get_bind().dialect.name)
    session.execute(
        save_row,
        {
            "row_id": state.id,
            "flow": state.flow,
            "step": state.step,
            "data": state.data,
            "language": state.language,
            "now": now,
        },
    )
