"""Wallet users, payment codes, payments, refunds and notifications.

Revision ID: 0001
Revises:
Create Date: 2025-06-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("single_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("confirm_over_minor", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "wallet_payment_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("last_four", sa.String(4), nullable=False),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("wallet_users.user_id"), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_wallet_payment_codes_user_id", "wallet_payment_codes", ["user_id"])
    op.create_table(
        "wallet_payments",
        sa.Column("trade_no", sa.String(32), primary_key=True),
        sa.Column("merchant_account", sa.String(64), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("wallet_users.user_id"), nullable=True),
        sa.Column("code_last_four", sa.String(4), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("message", sa.String(255), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("notify_url", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("confirm_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("merchant_account", "out_trade_no",
                            name="uq_wallet_payments_out_trade_no"),
    )
    op.create_index("ix_wallet_payments_status", "wallet_payments", ["status"])
    op.create_table(
        "wallet_refunds",
        sa.Column("refund_no", sa.String(32), primary_key=True),
        sa.Column("merchant_account", sa.String(64), nullable=False),
        sa.Column("out_refund_no", sa.String(64), nullable=False),
        sa.Column("trade_no", sa.String(32), sa.ForeignKey("wallet_payments.trade_no"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("merchant_account", "out_refund_no",
                            name="uq_wallet_refunds_out_refund_no"),
    )
    op.create_index("ix_wallet_refunds_trade_no", "wallet_refunds", ["trade_no"])
    op.create_table(
        "wallet_notifications",
        sa.Column("notification_id", sa.String(32), primary_key=True),
        sa.Column("trade_no", sa.String(32), sa.ForeignKey("wallet_payments.trade_no"), nullable=False),
        sa.Column("notify_url", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_wallet_notifications_trade_no", "wallet_notifications", ["trade_no"])
    op.create_index("ix_wallet_notifications_next_attempt_at", "wallet_notifications",
                    ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("wallet_notifications")
    op.drop_table("wallet_refunds")
    op.drop_table("wallet_payments")
    op.drop_table("wallet_payment_codes")
    op.drop_table("wallet_users")
