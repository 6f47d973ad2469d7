"""The wallet's money moves: pay, confirm, cancel, refund. Each is one database transaction.

A payment's row and its debit commit together; the unique ``(merchant_account, out_trade_no)``
turns a retried request into a read of the stored answer (and rolls back the retry's debit), so
a payment is charged once however often, and however concurrently, it is sent. A debit is a
conditional ``UPDATE ... WHERE balance_minor >= amount``, so a balance never goes below zero.

Cancelling an ``out_trade_no`` the wallet has never seen records it ``CLOSED``: a payment request
that arrives after its own reversal (delayed in the network) is then refused, not charged.

Database work runs on one thread: SQLite has one writer anyway, and our transactions then never
wait for each other's locks.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cardswitch import db
from issuer_sim.wallet import codes
from issuer_sim.wallet.models import (
    CLOSED,
    FAILED,
    PROCESSING,
    SUCCESS,
    USER_FROZEN,
    Notification,
    Payment,
    PaymentCode,
    Refund,
    WalletUser,
)

Answer = dict[str, Any]
T = TypeVar("T")

#: Notification attempts before giving up; the delay doubles from 0.25 s up to a minute.
MAX_NOTIFY_ATTEMPTS = 20
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 60.0


def utc_now() -> datetime:
    """Naive UTC: what the DateTime columns hold on SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PaymentRequest:
    merchant_account: str
    out_trade_no: str
    amount_minor: int
    currency: str
    payment_code: str
    presentation: str
    notify_url: str
    subject: str


@dataclass(frozen=True)
class PendingNotification:
    notification_id: str
    notify_url: str
    payload: bytes
    attempts: int


def payment_answer(p: Payment) -> Answer:
    return {"out_trade_no": p.out_trade_no, "trade_no": p.trade_no, "status": p.status,
            "code": p.code, "message": p.message, "amount_minor": p.amount_minor,
            "currency": p.currency, "refunded_minor": p.refunded_minor,
            "paid_at": p.paid_at.isoformat() + "Z" if p.paid_at else None}


def failed(code: str, message: str, **fields: Any) -> Answer:
    return {"status": FAILED, "code": code, "message": message, **fields}


def new_reference(now: datetime) -> str:
    """A trade or refund number: the date and 16 random digits, e.g. 202506011234567890123456."""
    return f"{now:%Y%m%d}{secrets.randbelow(10 ** 16):016d}"


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(FIRST_RETRY_S * 2 ** max(attempts - 1, 0), MAX_RETRY_S))


class Ledger:
    """The wallet's tables, behind async methods that return JSON-ready answers."""

    def __init__(self, url: str, *, confirm_delay: timedelta,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = db.make_engine(url)
        self._sessions: sessionmaker[Session] = db.session_factory(self._engine)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wallet-db")
        self._confirm_delay = confirm_delay
        self._clock = clock

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                partial(fn, *args))

    async def pay(self, req: PaymentRequest) -> Answer:
        return await self._run(self._pay, req)

    async def query(self, merchant_account: str, out_trade_no: str) -> Answer | None:
        return await self._run(self._query, merchant_account, out_trade_no)

    async def cancel(self, merchant_account: str, out_trade_no: str) -> Answer:
        return await self._run(self._cancel, merchant_account, out_trade_no)

    async def refund(self, merchant_account: str, out_trade_no: str, out_refund_no: str,
                     amount_minor: int) -> Answer:
        return await self._run(self._refund, merchant_account, out_trade_no, out_refund_no,
                               amount_minor)

    async def balance(self, payment_code: str, presentation: str) -> Answer:
        return await self._run(self._balance, payment_code, presentation)

    async def confirm_due(self, cancel_budget: int) -> int:
        """The simulated customers confirm their due payments (the first ``cancel_budget``
        decline instead); queues their notifications; returns how many declined."""
        return await self._run(self._confirm_due, cancel_budget)

    async def due_notifications(self, limit: int = 20) -> list[PendingNotification]:
        return await self._run(self._due_notifications, limit)

    async def notification_result(self, notification_id: str, acknowledged: bool) -> None:
        await self._run(self._notification_result, notification_id, acknowledged)

    async def next_due(self) -> datetime | None:
        """When a confirmation or a notification attempt is next due."""
        return await self._run(self._next_due)

    async def user(self, user_id: str) -> Answer | None:
        return await self._run(self._user, user_id)

    # The transactions, on the database thread.

    def _pay(self, req: PaymentRequest) -> Answer:
        now = self._clock()
        try:
            with self._sessions.begin() as s:
                existing = _payment(s, req.merchant_account, req.out_trade_no)
                if existing is not None:
                    return payment_answer(existing)
                payment = self._new_payment(s, req, now)
                s.add(payment)
                s.flush()
                return payment_answer(payment)
        except IntegrityError:  # the same out_trade_no committed concurrently: its answer
            with self._sessions() as s:
                stored = _payment(s, req.merchant_account, req.out_trade_no)
                assert stored is not None
                return payment_answer(stored)

    def _new_payment(self, s: Session, req: PaymentRequest, now: datetime) -> Payment:
        code = codes.parse(req.payment_code, req.presentation)
        payment = Payment(
            trade_no=new_reference(now), merchant_account=req.merchant_account,
            out_trade_no=req.out_trade_no, user_id=None,
            code_last_four=(code or req.payment_code)[-4:], amount_minor=req.amount_minor,
            currency=req.currency, status=FAILED, code="", message="", refunded_minor=0,
            notify_url=req.notify_url, subject=req.subject, created_at=now)
        user, refusal = _payer(s, code, now)
        if user is not None:
            payment.user_id = user.user_id
            refusal = refusal or _refusal(user, req.amount_minor, req.currency)
        if refusal is not None:
            payment.code, payment.message = refusal
            return payment
        assert user is not None
        if user.confirm_over_minor is not None and req.amount_minor > user.confirm_over_minor:
            payment.status, payment.code = PROCESSING, "USER_PAYING"
            payment.message = "waiting for the customer to confirm on the phone"
            payment.confirm_at = now + self._confirm_delay
        elif _debit(s, user.user_id, req.amount_minor):
            payment.status, payment.paid_at, payment.message = SUCCESS, now, "paid"
        else:
            payment.code, payment.message = "INSUFFICIENT_BALANCE", "balance too low"
        return payment

    def _query(self, merchant_account: str, out_trade_no: str) -> Answer | None:
        with self._sessions() as s:
            payment = _payment(s, merchant_account, out_trade_no)
            return payment_answer(payment) if payment is not None else None

    def _cancel(self, merchant_account: str, out_trade_no: str) -> Answer:
        now = self._clock()
        try:
            return self._cancel_once(merchant_account, out_trade_no, now)
        except IntegrityError:  # its payment request committed meanwhile: cancel that
            return self._cancel_once(merchant_account, out_trade_no, now)

    def _cancel_once(self, merchant_account: str, out_trade_no: str, now: datetime) -> Answer:
        with self._sessions.begin() as s:
            p = _payment(s, merchant_account, out_trade_no, lock=True)
            if p is None:
                p = Payment(trade_no=new_reference(now), merchant_account=merchant_account,
                            out_trade_no=out_trade_no, user_id=None, code_last_four="",
                            amount_minor=0, currency="", status=CLOSED, code="TRADE_CLOSED",
                            message="closed before the payment arrived", refunded_minor=0,
                            notify_url="", subject="", created_at=now)
                s.add(p)
                s.flush()
                return {**payment_answer(p), "action": "closed"}
            if p.status == SUCCESS:
                assert p.user_id is not None
                _credit(s, p.user_id, p.amount_minor - p.refunded_minor)
                p.refunded_minor = p.amount_minor
                p.status, p.code, p.message = CLOSED, "TRADE_CLOSED", "cancelled: refunded in full"
                return {**payment_answer(p), "action": "refunded"}
            if p.status == PROCESSING:
                p.status, p.code = CLOSED, "TRADE_CLOSED"
                p.message, p.confirm_at = "cancelled before the customer confirmed", None
                return {**payment_answer(p), "action": "closed"}
            return {**payment_answer(p), "action": "none"}

    def _refund(self, merchant_account: str, out_trade_no: str, out_refund_no: str,
                amount_minor: int) -> Answer:
        now = self._clock()
        ids = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no}
        try:
            with self._sessions.begin() as s:
                done = _refund_row(s, merchant_account, out_refund_no)
                if done is not None:
                    return _refund_answer(s, done)
                p = _payment(s, merchant_account, out_trade_no, lock=True)
                if p is None:
                    return failed("TRADE_NOT_EXIST", "no such payment", **ids)
                if p.status != SUCCESS:
                    return failed("TRADE_NOT_PAID", f"the payment is {p.status}", **ids)
                refundable = p.amount_minor - p.refunded_minor
                if amount_minor > refundable:
                    return failed("REFUND_AMOUNT_EXCEEDED",
                                  f"refund of {amount_minor} exceeds the refundable "
                                  f"{refundable}", **ids)
                assert p.user_id is not None
                _credit(s, p.user_id, amount_minor)
                p.refunded_minor += amount_minor
                refund = Refund(refund_no=new_reference(now), merchant_account=merchant_account,
                                out_refund_no=out_refund_no, trade_no=p.trade_no,
                                amount_minor=amount_minor, created_at=now)
                s.add(refund)
                s.flush()
                return _refund_answer(s, refund)
        except IntegrityError:  # the same out_refund_no committed concurrently
            with self._sessions() as s:
                stored = _refund_row(s, merchant_account, out_refund_no)
                assert stored is not None
                return _refund_answer(s, stored)

    def _balance(self, payment_code: str, presentation: str) -> Answer:
        with self._sessions() as s:
            user, refusal = _payer(s, codes.parse(payment_code, presentation), self._clock())
            if refusal is not None:
                return failed(*refusal)
            assert user is not None
            if user.status == USER_FROZEN:
                return failed("USER_FROZEN", "the wallet account is frozen")
            return {"status": SUCCESS, "code": "", "message": "",
                    "balances": [{"type": "available", "currency": user.currency,
                                  "amount_minor": user.balance_minor}]}

    def _confirm_due(self, cancel_budget: int) -> int:
        now, declined = self._clock(), 0
        with self._sessions.begin() as s:
            due = s.scalars(select(Payment).where(Payment.status == PROCESSING,
                                                  Payment.confirm_at <= now)
                            .order_by(Payment.confirm_at).limit(50).with_for_update()).all()
            for p in due:
                p.confirm_at = None
                if declined < cancel_budget:
                    declined += 1
                    p.status, p.code = FAILED, "USER_CANCELLED"
                    p.message = "the customer declined on the phone"
                elif p.user_id is not None and _debit(s, p.user_id, p.amount_minor):
                    p.status, p.code, p.message, p.paid_at = SUCCESS, "", "paid", now
                else:
                    p.status, p.code, p.message = FAILED, "INSUFFICIENT_BALANCE", "balance too low"
                if p.notify_url:
                    s.add(_notification(p, now))
        return declined

    def _due_notifications(self, limit: int) -> list[PendingNotification]:
        with self._sessions() as s:
            rows = s.scalars(select(Notification)
                             .where(Notification.next_attempt_at <= self._clock())
                             .order_by(Notification.next_attempt_at).limit(limit)).all()
            return [PendingNotification(n.notification_id, n.notify_url, n.payload.encode(),
                                        n.attempts) for n in rows]

    def _notification_result(self, notification_id: str, acknowledged: bool) -> None:
        now = self._clock()
        with self._sessions.begin() as s:
            n = s.get(Notification, notification_id, with_for_update=True)
            if n is None:
                return
            n.attempts += 1
            if acknowledged:
                n.acknowledged_at, n.next_attempt_at = now, None
            elif n.attempts >= MAX_NOTIFY_ATTEMPTS:
                n.next_attempt_at = None
            else:
                n.next_attempt_at = now + retry_delay(n.attempts)

    def _next_due(self) -> datetime | None:
        with self._sessions() as s:
            times = [s.scalar(select(Payment.confirm_at).where(Payment.status == PROCESSING)
                              .order_by(Payment.confirm_at).limit(1)),
                     s.scalar(select(Notification.next_attempt_at)
                              .where(Notification.next_attempt_at.is_not(None))
                              .order_by(Notification.next_attempt_at).limit(1))]
            return min((t for t in times if t is not None), default=None)

    def _user(self, user_id: str) -> Answer | None:
        with self._sessions() as s:
            user = s.get(WalletUser, user_id)
            if user is None:
                return None
            return {"user_id": user.user_id, "provider": user.provider, "status": user.status,
                    "currency": user.currency, "balance_minor": user.balance_minor}


def _payment(s: Session, merchant_account: str, out_trade_no: str, *,
             lock: bool = False) -> Payment | None:
    query = select(Payment).where(Payment.merchant_account == merchant_account,
                                  Payment.out_trade_no == out_trade_no)
    return s.scalar(query.with_for_update() if lock else query)


def _refund_row(s: Session, merchant_account: str, out_refund_no: str) -> Refund | None:
    return s.scalar(select(Refund).where(Refund.merchant_account == merchant_account,
                                         Refund.out_refund_no == out_refund_no))


def _refund_answer(s: Session, refund: Refund) -> Answer:
    payment = s.get(Payment, refund.trade_no)
    assert payment is not None
    return {"status": SUCCESS, "code": "", "message": "refunded",
            "out_trade_no": payment.out_trade_no, "trade_no": payment.trade_no,
            "out_refund_no": refund.out_refund_no, "refund_no": refund.refund_no,
            "amount_minor": refund.amount_minor, "currency": payment.currency,
            "refunded_minor": payment.refunded_minor}


def _payer(s: Session, code: str | None,
           now: datetime) -> tuple[WalletUser | None, tuple[str, str] | None]:
    """The user a payment code belongs to, or why it names none."""
    if code is None:
        return None, ("INVALID_PAYMENT_CODE", "not a payment code of this wallet")
    row = s.get(PaymentCode, codes.code_hash(code))
    if row is None:
        return None, ("INVALID_PAYMENT_CODE", "unknown payment code")
    user = s.get(WalletUser, row.user_id)
    if row.expires_at is not None and row.expires_at <= now:
        return user, ("EXPIRED", "payment code expired: refresh it in the app")
    return user, None


def _refusal(user: WalletUser, amount_minor: int, currency: str) -> tuple[str, str] | None:
    if user.status == USER_FROZEN:
        return "USER_FROZEN", "the wallet account is frozen"
    if currency != user.currency:
        return "CURRENCY_NOT_SUPPORTED", f"the wallet pays in {user.currency}, not {currency}"
    if amount_minor > user.single_limit_minor:
        return "LIMIT_EXCEEDED", f"over the single payment limit of {user.single_limit_minor}"
    if amount_minor > user.balance_minor:
        return "INSUFFICIENT_BALANCE", "balance too low"
    return None


def _debit(s: Session, user_id: str, amount_minor: int) -> bool:
    result = s.execute(update(WalletUser)
                       .where(WalletUser.user_id == user_id,
                              WalletUser.balance_minor >= amount_minor)
                       .values(balance_minor=WalletUser.balance_minor - amount_minor))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _credit(s: Session, user_id: str, amount_minor: int) -> None:
    s.execute(update(WalletUser).where(WalletUser.user_id == user_id)
              .values(balance_minor=WalletUser.balance_minor + amount_minor))


def _notification(p: Payment, now: datetime) -> Notification:
    notification_id = secrets.token_hex(16)
    payload = {"notification_id": notification_id, "out_trade_no": p.out_trade_no,
               "trade_no": p.trade_no, "status": p.status, "code": p.code,
               "message": p.message, "amount_minor": p.amount_minor, "currency": p.currency}
    return Notification(notification_id=notification_id, trade_no=p.trade_no,
                        notify_url=p.notify_url, payload=json.dumps(payload), attempts=0,
                        next_attempt_at=now, acknowledged_at=None, created_at=now)
