"""the committee's predictions as a column of the item (the prediction table goes)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each item's predictions as one JSON list, in the order they were stored (prediction.id; on
# SQLite the item_id index lists an item's rows in rowid order, which json_group_array keeps).
_PG_FILL = """
UPDATE item SET committee = c.committee
FROM (
    SELECT item_id,
           json_agg(json_build_object('model', model, 'model_version', model_version,
                                      'probs', probs) ORDER BY id) AS committee
    FROM prediction GROUP BY item_id
) AS c
WHERE item.id = c.item_id
"""
_SQLITE_FILL = """
UPDATE item SET committee = (
    SELECT json_group_array(json_object('model', p.model, 'model_version', p.model_version,
                                        'probs', json(p.probs)))
    FROM prediction AS p INDEXED BY ix_prediction_item_id WHERE p.item_id = item.id
)
WHERE id IN (SELECT item_id FROM prediction)
"""
# And back: one prediction row per member, in the list's order.
_PG_SPLIT = """
INSERT INTO prediction (item_id, model, model_version, probs)
SELECT item.id, m.value ->> 'model', m.value ->> 'model_version', m.value -> 'probs'
FROM item, json_array_elements(item.committee) WITH ORDINALITY AS m(value, n)
WHERE item.committee IS NOT NULL
ORDER BY item.id, m.n
"""
_SQLITE_SPLIT = """
INSERT INTO prediction (item_id, model, model_version, probs)
SELECT item.id, json_extract(m.value, '$.model'), json_extract(m.value, '$.model_version'),
       json_extract(m.value, '$.probs')
FROM item, json_each(item.committee) AS m
WHERE item.committee IS NOT NULL
ORDER BY item.id, m.key
"""


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("committee", sa.JSON(), nullable=True))
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(_SQLITE_FILL if sqlite else _PG_FILL)
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_item_id"))
    op.drop_table("prediction")


def downgrade() -> None:
    op.create_table(
        "prediction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("probs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prediction_item_id"), ["item_id"], unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(_SQLITE_SPLIT if sqlite else _PG_SPLIT)
    # SQLite's own DROP COLUMN (3.35+): a batch copy of the table would drop the item table,
    # which the rows referencing it forbid.
    op.execute("ALTER TABLE item DROP COLUMN committee")
