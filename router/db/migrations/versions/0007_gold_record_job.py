"""gold labels counted by a job; audit log paged by (created_at, id)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gold_recorded_at", sa.DateTime(timezone=True), nullable=True)
        )
    # Gold labels stored before this revision were counted by their request already.
    op.execute(
        "UPDATE label SET gold_recorded_at = created_at"
        " WHERE item_id IN (SELECT id FROM item WHERE is_gold)"
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_created", ["created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_created")
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_column("gold_recorded_at")
