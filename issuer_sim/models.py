"""The issuer's tables: accounts, the authorisations decided on them, orphan reversals, and the
acquirers' zone PIN keys.

A PAN is never stored in clear: ``pan_token`` is the HSM's keyed hash (for lookups),
``encrypted_pan`` its ciphertext under the issuer's data key, ``last_four`` for display.
Money is integer minor units of the account's currency.

An authorisation row records what it did to the account so a reversal can undo exactly that:
``ledger_minor`` is what it debited from the ledger (negative for a credit) and ``hold_minor``
the part of the available balance it still holds.

The account row carries the open-to-buy as running counters, so deciding a request reads one
row instead of summing the account's history: ``held_minor`` is the sum of ``hold_minor`` over
its approved authorisations, ``spent_today_minor`` what its approved and captured
authorisations created on ``spent_on`` count against the daily limit (``max(ledger_minor, 0) +
hold_minor`` each). Only a transaction holding the account's row lock changes them.

A transaction is recorded once, as the request (0100/0200) or the stand-in advice (0120/0220)
that came first: the acquirer (DE 32), STAN (DE 11) and RRN (DE 37) name it whatever DE 7 a
repeat carries. Completions carry their pre-authorisation's RRN and are told apart by
``original_id``; a request without an RRN only by its DE 7.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_ID = BigInteger().with_variant(Integer, "sqlite")

STATUS_ACTIVE = "active"
ACCOUNT_STATUSES = ("active", "lost", "stolen", "blocked", "suspended")

AUTH_APPROVED = "approved"
AUTH_DECLINED = "declined"
AUTH_REVERSED = "reversed"
AUTH_CAPTURED = "captured"

#: The rows a transaction (DE 32, DE 11, DE 37) has at most one of: its request or advice.
_ONE_PER_TRANSACTION = text("original_id IS NULL AND rrn <> ''")


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "issuer_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pan_token: Mapped[str] = mapped_column(String(64), unique=True)
    last_four: Mapped[str] = mapped_column(String(4))
    encrypted_pan: Mapped[bytes] = mapped_column(LargeBinary)
    expiry_yymm: Mapped[str] = mapped_column(String(4))
    service_code: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    #: ISO 4217 alphabetic code, e.g. "USD".
    currency: Mapped[str] = mapped_column(String(3))
    #: Ledger balance; the available balance is this minus open holds.
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    #: Open holds: the sum of the approved pre-authorisations' ``hold_minor``.
    held_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    daily_limit_minor: Mapped[int] = mapped_column(BigInteger)
    #: Debits counted against the daily limit on ``spent_on``; none on any other day.
    spent_today_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The UTC date ``spent_today_minor`` counts for; None before the account's first debit.
    spent_on: Mapped[date | None] = mapped_column(Date, nullable=True, default=None)
    #: IBM 3624 PIN offset (as many digits as the PIN).
    pin_offset: Mapped[str] = mapped_column(String(12))
    pin_tries: Mapped[int] = mapped_column(Integer, default=0)
    #: Merchant category codes the card may not be used at, comma separated.
    blocked_mccs: Mapped[str] = mapped_column(String(255), default="")
    #: The highest chip application transaction counter (9F36) this card sent with a verified
    #: ARQC; a cryptogram whose ATC is not above it is a replay.
    last_atc: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    #: An issuer script to send with the card's next online chip transaction (see chip.SCRIPTS).
    pending_script: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Authorization(Base):
    """One financial request the issuer decided (0100, 0200 or a 0220 completion), approved or
    declined, or a stand-in advice it posted (0120, 0220)."""

    __tablename__ = "issuer_authorizations"
    __table_args__ = (
        # The same request sent twice: acquirer, terminal, STAN and transmission time.
        UniqueConstraint("acquirer_id", "terminal_id", "stan", "transmission_dt",
                         name="uq_issuer_authorizations_request"),
        # The same transaction again: a late original after its advice, an advice repeated.
        Index("uq_issuer_authorizations_transaction", "acquirer_id", "stan", "rrn", unique=True,
              sqlite_where=_ONE_PER_TRANSACTION, postgresql_where=_ONE_PER_TRANSACTION),
        Index("ix_issuer_authorizations_rrn", "rrn"),
        Index("ix_issuer_authorizations_account_created", "account_id", "created_at"),
        Index("ix_issuer_authorizations_original", "original_id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("issuer_accounts.account_id"))
    mti: Mapped[str] = mapped_column(String(4))
    processing_code: Mapped[str] = mapped_column(String(6))
    rrn: Mapped[str] = mapped_column(String(12))
    acquirer_id: Mapped[str] = mapped_column(String(11))
    stan: Mapped[str] = mapped_column(String(6))
    #: DE 7, MMDDhhmmss.
    transmission_dt: Mapped[str] = mapped_column(String(10))
    terminal_id: Mapped[str] = mapped_column(String(8))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    #: Open hold (pre-authorisation not yet captured or reversed).
    hold_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Amount this request debited from the ledger; negative for a credit (refund).
    ledger_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: For a completion (0220): the pre-authorisation it captured.
    original_id: Mapped[int | None] = mapped_column(
        ForeignKey("issuer_authorizations.id"), nullable=True)
    approval_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    response_code: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: Posted from a stand-in advice: the switch decided in the issuer's place (approval code
    #: its own, "S..."), and the issuer could not decline.
    stood_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: For a stood-in advice the issuer would not have approved: the code it would have
    #: answered (51 over the balance, 61 over the daily limit, 41 lost card...) and why, in at
    #: most 25 characters. The advice was posted all the same.
    exception_code: Mapped[str | None] = mapped_column(String(2), nullable=True, default=None)
    exception_reason: Mapped[str | None] = mapped_column(String(25), nullable=True,
                                                         default=None)


class OrphanReversal(Base):
    """A reversal advice (0420) for an original the issuer has not seen (yet).

    If the original arrives later it is declined (94) instead of approved: the acquirer has
    already told the cardholder it did not happen.
    """

    __tablename__ = "issuer_orphan_reversals"
    __table_args__ = (
        UniqueConstraint("rrn", "acquirer_id", "original_stan", "original_transmission_dt",
                         name="uq_issuer_orphan_reversals_original"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    rrn: Mapped[str] = mapped_column(String(12))
    acquirer_id: Mapped[str] = mapped_column(String(11))
    #: From DE 90 (empty when the advice carried none): the original's MTI, STAN, DE 7.
    original_mti: Mapped[str] = mapped_column(String(4))
    original_stan: Mapped[str] = mapped_column(String(6))
    original_transmission_dt: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    #: The late original this advice made us decline.
    matched_authorization_id: Mapped[int | None] = mapped_column(
        ForeignKey("issuer_authorizations.id"), nullable=True)


class ZoneKey(Base):
    """The zone PIN key an acquirer's PIN blocks are under, since its last key exchange
    (0800/161; see :mod:`issuer_sim.zone_keys`). No row: the initial key, ``zpk-issuer``."""

    __tablename__ = "issuer_zone_keys"

    #: DE 32 without leading zeros.
    acquirer_id: Mapped[str] = mapped_column(String(11), primary_key=True)
    #: The key's label in the HSM.
    key_ref: Mapped[str] = mapped_column(String(64))
    #: Its key check value, hex, as the HSM computed it.
    kcv: Mapped[str] = mapped_column(String(16))
    activated_at: Mapped[datetime] = mapped_column(DateTime)
    #: The key before: requests in flight during the exchange were encrypted under it.
    previous_key_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
