"""The switch's tables: the journal (source of truth), the reversal queue, and configuration.

PANs are never stored in clear: ``pan_token`` (keyed hash, for lookups), ``last_four``, ``bin``
and ``encrypted_pan`` (under the HSM's data key) only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JournalEntry(Base):
    """One financial request and its outcome. Idempotency: (terminal_id, stan, local_date_time)."""

    __tablename__ = "switch_journal"
    __table_args__ = (
        UniqueConstraint("terminal_id", "stan", "local_date_time", name="uq_journal_request_key"),
        UniqueConstraint("request_id", name="uq_journal_request_id"),
        Index("ix_journal_status_created", "status", "created_at"),
        Index("ix_journal_original", "original_transaction_id"),
        Index("ix_journal_rrn", "rrn"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    terminal_id: Mapped[str] = mapped_column(String(8))
    merchant_id: Mapped[str] = mapped_column(String(15))
    stan: Mapped[str] = mapped_column(String(6))
    local_date_time: Mapped[str] = mapped_column(String(12))
    type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    entry_mode: Mapped[str] = mapped_column(String(16))
    mcc: Mapped[str] = mapped_column(String(4))
    pan_token: Mapped[str | None] = mapped_column(String(64), index=True)
    last_four: Mapped[str | None] = mapped_column(String(4))
    bin: Mapped[str | None] = mapped_column(String(6))
    encrypted_pan: Mapped[bytes | None] = mapped_column(LargeBinary)
    issuer_link: Mapped[str | None] = mapped_column(String(64))
    rrn: Mapped[str | None] = mapped_column(String(12))
    transmission_dt: Mapped[str | None] = mapped_column(String(10))
    response_code: Mapped[str | None] = mapped_column(String(2))
    reason: Mapped[str | None] = mapped_column(String(120))
    approval_code: Mapped[str | None] = mapped_column(String(6))
    approved_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    balances: Mapped[str | None] = mapped_column(Text)
    issuer_emv_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    original_transaction_id: Mapped[str | None] = mapped_column(String(36))
    reversal_acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReversalQueueEntry(Base):
    """Store-and-forward: a reversal advice (0420) repeated until the issuer acknowledges it."""

    __tablename__ = "switch_reversal_queue"
    __table_args__ = (Index("ix_reversal_due", "acknowledged_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(36), unique=True)
    issuer_link: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Terminal(Base):
    __tablename__ = "switch_terminals"

    terminal_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(15))
    mcc: Mapped[str] = mapped_column(String(4))
    name_location: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    bdk_key_ref: Mapped[str] = mapped_column(String(64))
    initial_ksn: Mapped[str | None] = mapped_column(String(20))
    device_number: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IssuerLink(Base):
    __tablename__ = "switch_issuer_links"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    zpk_key_ref: Mapped[str] = mapped_column(String(64))
    timeout_ms: Mapped[int] = mapped_column(Integer)
    acquirer_id: Mapped[str] = mapped_column(String(11))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BinRoute(Base):
    __tablename__ = "switch_bin_routes"

    route_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bin_prefix: Mapped[str] = mapped_column(String(11), unique=True)
    issuer_link: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
