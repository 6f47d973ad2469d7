"""Issuer accounts, authorisations and orphan reversals.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "issuer_accounts",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("pan_token", sa.String(64), nullable=False),
        sa.Column("last_four", sa.String(4), nullable=False),
        sa.Column("encrypted_pan", sa.LargeBinary(), nullable=False),
        sa.Column("expiry_yymm", sa.String(4), nullable=False),
        sa.Column("service_code", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("daily_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("spent_today_minor", sa.BigInteger(), nullable=False),
        sa.Column("spent_on", sa.Date(), nullable=True),
        sa.Column("pin_offset", sa.String(12), nullable=False),
        sa.Column("pin_tries", sa.Integer(), nullable=False),
        sa.Column("blocked_mccs", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("pan_token", name="uq_issuer_accounts_pan_token"),
    )
    op.create_table(
        "issuer_authorizations",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("issuer_accounts.account_id"),
                  nullable=False),
        sa.Column("mti", sa.String(4), nullable=False),
        sa.Column("processing_code", sa.String(6), nullable=False),
        sa.Column("rrn", sa.String(12), nullable=False),
        sa.Column("acquirer_id", sa.String(11), nullable=False),
        sa.Column("stan", sa.String(6), nullable=False),
        sa.Column("transmission_dt", sa.String(10), nullable=False),
        sa.Column("terminal_id", sa.String(8), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("hold_minor", sa.BigInteger(), nullable=False),
        sa.Column("ledger_minor", sa.BigInteger(), nullable=False),
        sa.Column("original_id", _ID, sa.ForeignKey("issuer_authorizations.id"), nullable=True),
        sa.Column("approval_code", sa.String(6), nullable=True),
        sa.Column("response_code", sa.String(2), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("acquirer_id", "terminal_id", "stan", "transmission_dt",
                            name="uq_issuer_authorizations_request"),
    )
    op.create_index("ix_issuer_authorizations_rrn", "issuer_authorizations", ["rrn"])
    op.create_index("ix_issuer_authorizations_account_created", "issuer_authorizations",
                    ["account_id", "created_at"])
    # Reversing a captured pre-auth finds its completions without scanning the history.
    op.create_index("ix_issuer_authorizations_original", "issuer_authorizations",
                    ["original_id"])
    op.create_table(
        "issuer_orphan_reversals",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("rrn", sa.String(12), nullable=False),
        sa.Column("acquirer_id", sa.String(11), nullable=False),
        sa.Column("original_mti", sa.String(4), nullable=False),
        sa.Column("original_stan", sa.String(6), nullable=False),
        sa.Column("original_transmission_dt", sa.String(10), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("matched_authorization_id", _ID,
                  sa.ForeignKey("issuer_authorizations.id"), nullable=True),
        sa.UniqueConstraint("rrn", "acquirer_id", "original_stan", "original_transmission_dt",
                            name="uq_issuer_orphan_reversals_original"),
    )


def downgrade() -> None:
    op.drop_table("issuer_orphan_reversals")
    op.drop_index("ix_issuer_authorizations_original", "issuer_authorizations")
    op.drop_index("ix_issuer_authorizations_account_created", "issuer_authorizations")
    op.drop_index("ix_issuer_authorizations_rrn", "issuer_authorizations")
    op.drop_table("issuer_authorizations")
    op.drop_table("issuer_accounts")
