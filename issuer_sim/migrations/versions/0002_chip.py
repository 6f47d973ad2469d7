"""Chip cards: the last application transaction counter seen per card, and a queued script.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("issuer_accounts", sa.Column("last_atc", sa.Integer(), nullable=True))
    op.add_column("issuer_accounts", sa.Column("pending_script", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("issuer_accounts", "pending_script")
    op.drop_column("issuer_accounts", "last_atc")
