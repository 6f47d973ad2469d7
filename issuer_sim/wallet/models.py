"""The wallet provider's tables: users, their payment codes, payments, refunds, notifications.

Money is integer minor units of the user's currency. A payment is keyed for the merchant by
``(merchant_account, out_trade_no)`` — the merchant's own transaction id — and that unique
constraint is what makes a retried payment request charge once. A refund is keyed the same way
by ``out_refund_no``. Payment codes are stored as their hash (:mod:`issuer_sim.wallet.codes`).

Payment statuses: ``PROCESSING`` (waiting for the customer to confirm on the phone),
``SUCCESS`` (paid; ``refunded_minor`` of it refunded so far), ``FAILED`` (``code`` says why),
``CLOSED`` (cancelled by the merchant: refunded in full if it was paid; or closed before the
payment request arrived, so a late one is refused).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PROCESSING = "PROCESSING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
CLOSED = "CLOSED"

USER_ACTIVE = "active"
USER_FROZEN = "frozen"


class Base(DeclarativeBase):
    pass


class WalletUser(Base):
    __tablename__ = "wallet_users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: "alipay" or "wechatpay": which wallet app the user has.
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    #: ISO 4217 alphabetic code of the balance.
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    #: The most one payment may take.
    single_limit_minor: Mapped[int] = mapped_column(BigInteger)
    #: Payments above this need the user's confirmation on the phone; None: never.
    confirm_over_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class PaymentCode(Base):
    __tablename__ = "wallet_payment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_four: Mapped[str] = mapped_column(String(4))
    user_id: Mapped[str] = mapped_column(ForeignKey("wallet_users.user_id"), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Payment(Base):
    __tablename__ = "wallet_payments"
    __table_args__ = (UniqueConstraint("merchant_account", "out_trade_no",
                                       name="uq_wallet_payments_out_trade_no"),)

    #: The provider's reference for the payment.
    trade_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_account: Mapped[str] = mapped_column(String(64))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    #: None when the payment code named no user.
    user_id: Mapped[str | None] = mapped_column(ForeignKey("wallet_users.user_id"),
                                                nullable=True)
    code_last_four: Mapped[str] = mapped_column(String(4))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: Why it failed or was closed (INSUFFICIENT_BALANCE, USER_FROZEN...); "" otherwise.
    code: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(255))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    notify_url: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: PROCESSING: when the simulated customer confirms on the phone.
    confirm_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Refund(Base):
    __tablename__ = "wallet_refunds"
    __table_args__ = (UniqueConstraint("merchant_account", "out_refund_no",
                                       name="uq_wallet_refunds_out_refund_no"),)

    refund_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_account: Mapped[str] = mapped_column(String(64))
    out_refund_no: Mapped[str] = mapped_column(String(64))
    trade_no: Mapped[str] = mapped_column(ForeignKey("wallet_payments.trade_no"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Notification(Base):
    """A payment outcome to tell the merchant, sent until it answers 200 (at least once)."""

    __tablename__ = "wallet_notifications"

    notification_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    trade_no: Mapped[str] = mapped_column(ForeignKey("wallet_payments.trade_no"), index=True)
    notify_url: Mapped[str] = mapped_column(Text)
    #: The JSON body, the same on every attempt (each attempt is signed afresh).
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: None once acknowledged or given up.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True,
                                                             index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
