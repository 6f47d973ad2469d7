"""hsm_keys: every key wrapped under the LMK.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hsm_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("kcv", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exportable", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("label", name="uq_hsm_keys_label"),
    )


def downgrade() -> None:
    op.drop_table("hsm_keys")
