"""Routing table, link settings (dialect, stand-in, breaker, wallet), store-and-forward of
advices beside reversals, acquirer hosts, risk rules, outbox, journal stand-in and risk columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import json
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("switch_journal") as b:
        b.add_column(sa.Column("stood_in", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("risk_score", sa.Integer(), nullable=True))
        b.add_column(sa.Column("risk_decision", sa.String(8), nullable=True))
        b.add_column(sa.Column("risk_rules", sa.String(200), nullable=True))
        b.add_column(sa.Column("wallet_provider", sa.String(32), nullable=True))
        b.add_column(sa.Column("provider_reference", sa.String(64), nullable=True))

    with op.batch_alter_table("switch_issuer_links") as b:
        b.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="iso8583"))
        b.add_column(sa.Column("zmk_key_ref", sa.String(64), nullable=True))
        b.add_column(sa.Column("zpk_kcv", sa.String(16), nullable=True))
        b.add_column(sa.Column("key_exchanged_at", TZ, nullable=True))
        for name in ("dialect", "stand_in", "breaker", "wallet"):
            b.add_column(sa.Column(name, sa.Text(), nullable=True))

    op.create_table(
        "switch_saf_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(36), nullable=False),
        sa.Column("mti", sa.String(4), nullable=False),
        sa.Column("issuer_link", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("acknowledged_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transaction_id", "mti", name="uq_saf_transaction_mti"),
    )
    op.create_index("ix_saf_due", "switch_saf_queue", ["acknowledged_at", "next_attempt_at"])
    op.create_index("ix_saf_link", "switch_saf_queue", ["issuer_link", "acknowledged_at", "id"])
    op.execute(
        "INSERT INTO switch_saf_queue (id, transaction_id, mti, issuer_link, reason, attempts, "
        "last_error, next_attempt_at, locked_until, acknowledged_at, created_at) "
        "SELECT id, transaction_id, '0420', issuer_link, reason, attempts, last_error, "
        "next_attempt_at, locked_until, acknowledged_at, created_at FROM switch_reversal_queue")
    op.drop_index("ix_reversal_due", table_name="switch_reversal_queue")
    op.drop_table("switch_reversal_queue")

    routes = op.create_table(
        "switch_routes",
        sa.Column("route_id", sa.String(36), nullable=False),
        sa.Column("description", sa.String(120), nullable=False),
        sa.Column("bin_prefix", sa.String(11), nullable=False),
        sa.Column("brand", sa.String(16), nullable=False),
        sa.Column("currencies", sa.Text(), nullable=False),
        sa.Column("min_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("max_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("mccs", sa.Text(), nullable=False),
        sa.Column("terminal_ids", sa.Text(), nullable=False),
        sa.Column("merchant_ids", sa.Text(), nullable=False),
        sa.Column("wallet_provider", sa.String(32), nullable=False),
        sa.Column("primary_link", sa.String(64), nullable=False),
        sa.Column("secondary_links", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("route_id"),
    )
    old = op.get_bind().execute(sa.text(
        "SELECT route_id, bin_prefix, issuer_link, brand, created_at FROM switch_bin_routes"))
    op.bulk_insert(routes, [
        {"route_id": r[0] or str(uuid.uuid4()), "description": "", "bin_prefix": r[1],
         "brand": "", "currencies": "[]", "min_amount_minor": 0, "max_amount_minor": 0,
         "mccs": "[]", "terminal_ids": "[]", "merchant_ids": "[]", "wallet_provider": "",
         "primary_link": r[2], "secondary_links": json.dumps([]), "priority": 0,
         "created_at": r[4], "updated_at": r[4]} for r in old])
    op.drop_table("switch_bin_routes")

    op.create_table(
        "switch_acquirer_hosts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("dialect", sa.Text(), nullable=True),
        sa.Column("zpk_key_ref", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("port"),
    )
    op.create_table(
        "switch_risk_rules",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "switch_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_type", "switch_outbox", ["type", "id"])
    op.create_index("ix_journal_pan_created", "switch_journal", ["pan_token", "created_at"])


def downgrade() -> None:
    raise NotImplementedError("0002 is not reversible: the routing table replaced BIN routes")
