"""Stand-in advices on authorisations, one row per transaction, the acquirers' zone PIN keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONE_PER_TRANSACTION = sa.text("original_id IS NULL AND rrn <> ''")


def upgrade() -> None:
    op.add_column("issuer_authorizations", sa.Column("stood_in", sa.Boolean(), nullable=False,
                                                     server_default=sa.false()))
    op.add_column("issuer_authorizations", sa.Column("exception_code", sa.String(2),
                                                     nullable=True))
    op.add_column("issuer_authorizations", sa.Column("exception_reason", sa.String(25),
                                                     nullable=True))
    op.create_index("uq_issuer_authorizations_transaction", "issuer_authorizations",
                    ["acquirer_id", "stan", "rrn"], unique=True,
                    sqlite_where=_ONE_PER_TRANSACTION, postgresql_where=_ONE_PER_TRANSACTION)
    op.create_table(
        "issuer_zone_keys",
        sa.Column("acquirer_id", sa.String(11), primary_key=True),
        sa.Column("key_ref", sa.String(64), nullable=False),
        sa.Column("kcv", sa.String(16), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.Column("previous_key_ref", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("issuer_zone_keys")
    op.drop_index("uq_issuer_authorizations_transaction", "issuer_authorizations")
    op.drop_column("issuer_authorizations", "exception_reason")
    op.drop_column("issuer_authorizations", "exception_code")
    op.drop_column("issuer_authorizations", "stood_in")
