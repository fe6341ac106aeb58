"""annotator gold record

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:32:57.520531
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("annotator", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_gold", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("n_gold_correct", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("onboarded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("gold_exhausted_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("annotator", schema=None) as batch_op:
        batch_op.drop_column("gold_exhausted_at")
        batch_op.drop_column("onboarded_at")
        batch_op.drop_column("n_gold_correct")
        batch_op.drop_column("n_gold")
