"""project snapshot: the history behind the ops dashboard's charts

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23 22:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items_queued", sa.Integer(), nullable=False),
        sa.Column("items_routed", sa.Integer(), nullable=False),
        sa.Column("items_done", sa.Integer(), nullable=False),
        sa.Column("queue_crowd", sa.Integer(), nullable=False),
        sa.Column("queue_expert", sa.Integer(), nullable=False),
        sa.Column("expert_open", sa.Integer(), nullable=False),
        sa.Column("expert_capacity", sa.Integer(), nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("agreement_alpha", sa.Float(), nullable=True),
        sa.Column("agreement_alpha_lo", sa.Float(), nullable=True),
        sa.Column("agreement_alpha_hi", sa.Float(), nullable=True),
        sa.Column("agreement_items", sa.Integer(), nullable=False),
        sa.Column("agreement_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agreement_labels", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("project_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            "ix_project_snapshot_project_taken", ["project_id", "taken_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_project_snapshot_taken_at"), ["taken_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("project_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_snapshot_taken_at"))
        batch_op.drop_index("ix_project_snapshot_project_taken")
    op.drop_table("project_snapshot")
