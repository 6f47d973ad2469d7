"""The account's open-to-buy counters: open holds and spending against today's limit.

Each test drives :class:`issuer_sim.processing.Processor` with decoded ISO 8583 requests (the
builders and fake HSM of ``test_issuer_processing``) and checks ``held_minor``,
``spent_today_minor`` and ``spent_on`` on the account row, and that they equal what
:func:`issuer_sim.open_to_buy.recount` sums from the authorisations. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from cardswitch import db
from issuer_sim import open_to_buy
from issuer_sim.models import Account
from issuer_sim.processing import Processor
from tests.conftest import pg_schema
from tests.unit.test_issuer_processing import (
    NOW,
    OTHER_PAN,
    PAN,
    FakeHsm,
    add_account,
    follow_up,
    request,
    send,
)

TODAY = NOW.date()


class Clock:
    """The processor's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'issuer.db'}"
    else:
        yield from pg_schema()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def issuer(database_url: str, clock: Clock) -> Iterator[Processor]:
    db.upgrade(database_url, "issuer_sim")
    add_account(database_url, "acct-ok", PAN, balance_minor=100_000, daily_limit_minor=60_000)
    add_account(database_url, "acct-other", OTHER_PAN, expiry_yymm="2911")
    proc = Processor(database_url, FakeHsm(), clock=clock)
    yield proc
    proc.close()


def counters(issuer: Processor, account_id: str = "acct-ok") -> tuple[int, int, date | None]:
    """(held, spent today, the day it counts for), checked against a recount of the history."""
    with issuer._sessions.begin() as s:
        account = s.get_one(Account, account_id)
        kept = (account.held_minor, account.spent_today_minor, account.spent_on)
        today = account.spent_on or TODAY
        open_to_buy.recount(s, account, today)
        assert (account.held_minor, account.spent_today_minor) == kept[:2], "drifted"
        s.rollback()
    return kept


def preauth(amount: int) -> dict[str, str]:
    return request("0100", amount=amount, **{"25": "06"})


def test_a_new_account_holds_and_spent_nothing(issuer: Processor) -> None:
    assert counters(issuer) == (0, 0, None)


def test_purchase_counts_against_the_day_and_refund_does_not(issuer: Processor) -> None:
    assert send(issuer, request(amount=2_500))["39"] == "00"
    assert send(issuer, request(proc="200000", amount=4_000))["39"] == "00"
    assert counters(issuer) == (0, 2_500, TODAY)


def test_preauth_holds_and_counts_its_amount(issuer: Processor) -> None:
    assert send(issuer, preauth(20_000))["39"] == "00"
    assert counters(issuer) == (20_000, 20_000, TODAY)


def test_capture_releases_the_hold_and_counts_only_the_captured_amount(
        issuer: Processor) -> None:
    auth = preauth(20_000)
    send(issuer, auth)
    assert send(issuer, follow_up("0220", auth, 15_000))["39"] == "00"
    assert counters(issuer) == (0, 15_000, TODAY)
    # What the capture left of the limit: 60 000 - 15 000.
    assert send(issuer, request(amount=45_001))["39"] == "61"
    assert send(issuer, request(amount=45_000))["39"] == "00"


def test_repeated_capture_advice_counts_once(issuer: Processor) -> None:
    auth = preauth(20_000)
    send(issuer, auth)
    capture = follow_up("0220", auth, 5_000)
    assert [send(issuer, capture)["39"] for _ in range(2)] == ["00", "00"]
    assert counters(issuer) == (0, 5_000, TODAY)


def test_void_of_a_purchase_gives_its_spending_back(issuer: Processor) -> None:
    purchase = request(amount=12_345)
    send(issuer, purchase)
    assert send(issuer, follow_up("0400", purchase))["39"] == "00"
    assert send(issuer, follow_up("0400", purchase))["39"] == "00"
    assert counters(issuer) == (0, 0, TODAY)


def test_void_of_a_preauth_releases_its_hold_and_spending(issuer: Processor) -> None:
    auth = preauth(30_000)
    send(issuer, auth)
    assert send(issuer, follow_up("0400", auth))["39"] == "00"
    assert counters(issuer) == (0, 0, TODAY)


def test_timeout_reversal_of_a_captured_preauth_undoes_the_capture(issuer: Processor) -> None:
    auth = preauth(30_000)
    send(issuer, auth)
    send(issuer, follow_up("0220", auth, 25_000))
    assert send(issuer, follow_up("0420", auth))["39"] == "00"
    assert counters(issuer) == (0, 0, TODAY)
    assert send(issuer, request(amount=60_000))["39"] == "00"


def test_reversal_of_a_capture_alone_gives_back_its_spending(issuer: Processor) -> None:
    auth = preauth(30_000)
    send(issuer, auth)
    capture = follow_up("0220", auth, 25_000)
    send(issuer, capture)
    assert send(issuer, follow_up("0400", capture))["39"] == "00"
    assert counters(issuer) == (0, 0, TODAY)


def test_reversal_of_a_refund_is_not_spending(issuer: Processor) -> None:
    refund = request(proc="200000", amount=2_000)
    send(issuer, refund)
    send(issuer, follow_up("0400", refund))
    assert counters(issuer) == (0, 0, None)


def test_declines_count_nothing(issuer: Processor) -> None:
    send(issuer, request(amount=60_000))
    assert send(issuer, request(amount=1))["39"] == "61"
    assert send(issuer, preauth(50_000))["39"] == "51"
    assert counters(issuer) == (0, 60_000, TODAY)


def test_the_daily_limit_starts_again_at_utc_midnight(issuer: Processor, clock: Clock) -> None:
    send(issuer, request(amount=50_000))
    assert send(issuer, request(amount=10_001))["39"] == "61"
    clock.now = datetime.combine(TODAY + timedelta(days=1), datetime.min.time())
    assert counters(issuer) == (0, 50_000, TODAY)  # stale until the next debit
    assert send(issuer, request(amount=10_001))["39"] == "00"
    assert counters(issuer) == (0, 10_001, TODAY + timedelta(days=1))


def test_voiding_yesterdays_purchase_does_not_raise_todays_limit(
        issuer: Processor, clock: Clock) -> None:
    yesterdays = request(amount=30_000)
    send(issuer, yesterdays)
    clock.now = NOW + timedelta(days=1)
    send(issuer, request(amount=20_000))
    assert send(issuer, follow_up("0400", yesterdays))["39"] == "00"
    assert counters(issuer) == (0, 20_000, TODAY + timedelta(days=1))


def test_holds_outlive_the_day_and_a_capture_counts_on_its_own_day(
        issuer: Processor, clock: Clock) -> None:
    auth = preauth(40_000)
    send(issuer, auth)
    clock.now = NOW + timedelta(days=1)
    # Yesterday's hold still takes 400.00 of the 1 000.00 balance, not of today's limit.
    assert send(issuer, request(amount=60_001))["39"] == "51"
    assert send(issuer, request(amount=60_000))["39"] == "00"
    assert counters(issuer) == (40_000, 60_000, TODAY + timedelta(days=1))
    clock.now = NOW + timedelta(days=2)
    assert send(issuer, follow_up("0220", auth, 35_000))["39"] == "00"
    assert counters(issuer) == (0, 35_000, TODAY + timedelta(days=2))


def test_recount_sets_the_counters_from_the_history(issuer: Processor) -> None:
    send(issuer, preauth(10_000))
    send(issuer, request(amount=5_000))
    with issuer._sessions.begin() as s:
        account = s.get_one(Account, "acct-ok")
        account.held_minor, account.spent_today_minor, account.spent_on = 1, 2, None
        open_to_buy.recount(s, account, TODAY)
    assert counters(issuer) == (10_000, 15_000, TODAY)


# ---- concurrency ----------------------------------------------------------------------------

def send_together(messages: list[dict[str, str]], *issuers: Processor) -> list[str]:
    """Sends every message at once, spread over ``issuers``; returns the response codes."""
    async def run() -> list[str]:
        answers = await asyncio.gather(*(issuers[i % len(issuers)].handle(m)
                                         for i, m in enumerate(messages)))
        return [a["39"] if a is not None else "" for a in answers]
    return asyncio.run(run())


def test_concurrent_purchases_never_overspend_the_daily_limit(issuer: Processor,
                                                              database_url: str) -> None:
    # A second processor stands for another issuer process: only the row lock orders the two.
    other = Processor(database_url, FakeHsm(), clock=lambda: NOW)
    try:
        codes = send_together([request(amount=1_700) for _ in range(50)], issuer, other)
    finally:
        other.close()
    assert (codes.count("00"), codes.count("61")) == (35, 15)  # 35 x 17.00 <= 600.00
    assert counters(issuer) == (0, 35 * 1_700, TODAY)
    with issuer._sessions() as s:
        assert s.get_one(Account, "acct-ok").balance_minor == 100_000 - 35 * 1_700


def test_concurrent_debits_never_overdraw_the_balance(issuer: Processor,
                                                      database_url: str) -> None:
    add_account(database_url, "acct-low", "4000000000000002", balance_minor=10_000,
                daily_limit_minor=1_000_000)
    other = Processor(database_url, FakeHsm(), clock=lambda: NOW)
    pan = "4000000000000002"
    messages = [request(amount=300, pan=pan) if i % 2 else
                request("0100", amount=300, pan=pan, **{"25": "06"}) for i in range(40)]
    try:
        codes = send_together(messages, issuer, other)
    finally:
        other.close()
    assert (codes.count("00"), codes.count("51")) == (33, 7)  # 33 x 3.00 <= 100.00
    held, spent, _ = counters(issuer, "acct-low")
    with issuer._sessions() as s:
        ledger = s.get_one(Account, "acct-low").balance_minor
    assert spent == 33 * 300
    assert ledger - held == 10_000 - 33 * 300


def test_a_duplicate_in_a_group_commit_is_declined_94_and_its_neighbours_approved(
        issuer: Processor) -> None:
    twice = request(amount=1_000)
    messages = [request(amount=100), twice, request(amount=200), twice, request(amount=300)]
    codes = send_together(messages, issuer)
    assert codes == ["00", "00", "00", "94", "00"]
    assert counters(issuer) == (0, 1_600, TODAY)
