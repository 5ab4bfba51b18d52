"""outbox: who holds a claim, and the waiting rows per address (order per conversation)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WAITING = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_outbox_waiting_address",
            ["address", "channel", "id"],
            unique=False,
            postgresql_where=_WAITING,
            sqlite_where=_WAITING,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_waiting_address")
        batch_op.drop_column("claimed_by")
