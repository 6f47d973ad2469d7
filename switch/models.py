"""The switch's tables: the journal (source of truth), the store-and-forward queue, the outbox of
events, and configuration (terminals, links, routes, acquirer hosts, risk rules).

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
        Index("ix_journal_pan_created", "pan_token", "created_at"),
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
    #: The switch decided in the issuer's place; an advice is queued in store-and-forward.
    stood_in: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_score: Mapped[int | None] = mapped_column(Integer)
    risk_decision: Mapped[str | None] = mapped_column(String(8))
    #: Ids of the risk rules that fired, comma-separated.
    risk_rules: Mapped[str | None] = mapped_column(String(200))
    #: Wallet payments: the provider and its transaction reference.
    wallet_provider: Mapped[str | None] = mapped_column(String(32))
    provider_reference: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SafEntry(Base):
    """Store-and-forward: an advice (0120/0220 of a stood-in authorisation) or a reversal advice
    (0420), repeated in order per link until the issuer acknowledges it."""

    __tablename__ = "switch_saf_queue"
    __table_args__ = (
        UniqueConstraint("transaction_id", "mti", name="uq_saf_transaction_mti"),
        Index("ix_saf_due", "acknowledged_at", "next_attempt_at"),
        Index("ix_saf_link", "issuer_link", "acknowledged_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(36))
    mti: Mapped[str] = mapped_column(String(4), default="0420")
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
    """A link to an authoriser. Nested settings (dialect, stand-in, breaker, wallet) are JSON."""

    __tablename__ = "switch_issuer_links"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="iso8583")
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    zpk_key_ref: Mapped[str] = mapped_column(String(64))
    zmk_key_ref: Mapped[str | None] = mapped_column(String(64))
    zpk_kcv: Mapped[str | None] = mapped_column(String(16))
    key_exchanged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    timeout_ms: Mapped[int] = mapped_column(Integer)
    acquirer_id: Mapped[str] = mapped_column(String(11))
    dialect: Mapped[str | None] = mapped_column(Text)
    stand_in: Mapped[str | None] = mapped_column(Text)
    breaker: Mapped[str | None] = mapped_column(Text)
    wallet: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Route(Base):
    """One row of the routing table; list criteria are JSON arrays (empty: match all)."""

    __tablename__ = "switch_routes"

    route_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    description: Mapped[str] = mapped_column(String(120), default="")
    bin_prefix: Mapped[str] = mapped_column(String(11), default="")
    brand: Mapped[str] = mapped_column(String(16), default="")
    currencies: Mapped[str] = mapped_column(Text, default="[]")
    min_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    max_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    mccs: Mapped[str] = mapped_column(Text, default="[]")
    terminal_ids: Mapped[str] = mapped_column(Text, default="[]")
    merchant_ids: Mapped[str] = mapped_column(Text, default="[]")
    wallet_provider: Mapped[str] = mapped_column(String(32), default="")
    primary_link: Mapped[str] = mapped_column(String(64))
    secondary_links: Mapped[str] = mapped_column(Text, default="[]")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AcquirerHost(Base):
    """An ISO 8583 listener for an acquirer host or ATM driver."""

    __tablename__ = "switch_acquirer_hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, unique=True)
    dialect: Mapped[str | None] = mapped_column(Text)
    zpk_key_ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RiskRuleSet(Base):
    """Every accepted version of the risk rules; the highest version is in force."""

    __tablename__ = "switch_risk_rules"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    yaml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxEvent(Base):
    """An event written in the same transaction as the state change it reports (outbox)."""

    __tablename__ = "switch_outbox"
    __table_args__ = (Index("ix_outbox_type", "type", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(48))
    #: The transaction (or link) the event is about.
    subject: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
