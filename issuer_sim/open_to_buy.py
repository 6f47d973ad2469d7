"""An account's open-to-buy counters: its open holds and what it spent against today's limit.

Each approved authorisation holds ``hold_minor`` of the available balance (a pre-authorisation
until it is captured or reversed), and each approved or captured one counts
``max(ledger_minor, 0) + hold_minor`` against the daily limit of the UTC day it was created on.
``Account.held_minor`` and ``Account.spent_today_minor`` (for the day ``Account.spent_on``) are
those sums. They are kept by :func:`count` when an authorisation is approved and :func:`uncount`
just before a capture or reversal changes one, always in the transaction holding the account's
row lock, so they equal what :func:`recount` sums from the history.

Example, on one day: a pre-auth of 200.00 holds 200.00 and counts 200.00; capturing 150.00 of
it uncounts the pre-auth (0 held, 0 spent) and counts the completion (150.00 spent); reversing
the capture uncounts the completion (0 spent).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from issuer_sim.models import AUTH_APPROVED, AUTH_CAPTURED, Account, Authorization


def counted(auth: Authorization) -> int:
    """What an approved or captured ``auth`` counts against the limit of its day."""
    return max(auth.ledger_minor, 0) + auth.hold_minor


def spent_today(account: Account, today: date) -> int:
    """What counts against ``today``'s limit: nothing once the counters' day has passed."""
    return account.spent_today_minor if account.spent_on == today else 0


def count(account: Account, auth: Authorization, today: date) -> None:
    """Adds ``auth``, approved just now (on ``today``), to the counters."""
    account.held_minor += auth.hold_minor
    amount = counted(auth)
    if amount:
        account.spent_today_minor = spent_today(account, today) + amount
        account.spent_on = today


def uncount(account: Account, auth: Authorization, today: date) -> None:
    """Takes ``auth`` out of the counters, before a capture or reversal changes it.

    Its hold is released whenever it was made; its spending only comes back if it counted
    today: yesterday's purchase voided today does not raise today's limit.
    """
    account.held_minor -= auth.hold_minor
    if auth.created_at.date() == today and account.spent_on == today:
        account.spent_today_minor -= counted(auth)


def recount(s: Session, account: Account, today: date) -> None:
    """Sets the counters from the account's authorisations (after editing them in bulk)."""
    held = s.scalar(select(func.coalesce(func.sum(Authorization.hold_minor), 0)).where(
        Authorization.account_id == account.account_id, Authorization.hold_minor > 0,
        Authorization.status == AUTH_APPROVED))
    midnight = datetime.combine(today, time())
    debit = case((Authorization.ledger_minor > 0, Authorization.ledger_minor), else_=0)
    spent = s.scalar(select(func.coalesce(func.sum(debit + Authorization.hold_minor), 0)).where(
        Authorization.account_id == account.account_id,
        Authorization.created_at >= midnight,
        Authorization.created_at < midnight + timedelta(days=1),
        Authorization.status.in_((AUTH_APPROVED, AUTH_CAPTURED))))
    account.held_minor = int(held or 0)
    account.spent_today_minor = int(spent or 0)
    account.spent_on = today
