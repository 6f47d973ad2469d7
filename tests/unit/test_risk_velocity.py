"""Velocity counters: sliding windows, provisional counting, the journal as the shared truth."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardswitch import db
from switch import store
from switch.context import TerminalConfig, TxnContext
from switch.journal import Journal
from switch.risk import rules
from switch.risk.rules import VelocityRule, Window
from switch.risk.velocity import AMOUNT_STATUSES, VelocityStore
from tests.unit.test_risk_engine import TOKEN_A, TOKEN_B, Clock, txn

BOTH = frozenset({"purchase", "preauth"})
CARD_1M = Window("card", 60, BOTH, None)
CARD_USD_1H = Window("card", 3600, BOTH, "USD")


def row_of(ctx: TxnContext, at: float, status: str = "PENDING", **extra: Any) -> dict[str, Any]:
    """The journal row the pipeline writes for ``ctx``, created at epoch ``at``."""
    created = dt.datetime.fromtimestamp(at, dt.UTC)
    return {"transaction_id": str(uuid.uuid4()), "terminal_id": ctx.terminal.terminal_id,
            "merchant_id": ctx.terminal.merchant_id, "stan": ctx.stan,
            "local_date_time": ctx.local_date_time, "type": ctx.kind, "status": status,
            "amount_minor": ctx.amount_minor, "currency": ctx.currency, "entry_mode": "manual",
            "mcc": ctx.mcc, "pan_token": ctx.pan_token, "last_four": ctx.last_four,
            "bin": ctx.bin, "created_at": created, "updated_at": created} | extra


def store_for(*windows: Window, clock: Clock, journal: Journal | None = None) -> VelocityStore:
    velocity = VelocityStore(journal, clock=clock)
    velocity.use(windows)
    return velocity


# -- in memory -------------------------------------------------------------------------------

def test_a_window_counts_what_is_newer_than_its_length_and_forgets_the_rest() -> None:
    clock = Clock()
    velocity = store_for(CARD_1M, CARD_USD_1H, clock=clock)
    velocity.admit(txn(amount_minor=500))
    clock.now += 30
    velocity.admit(txn(amount_minor=700))
    velocity.admit(txn(amount_minor=900, currency="EUR"))
    clock.now += 29.999
    assert velocity.totals(CARD_1M, TOKEN_A) == (3, 0)
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (3, 1200)
    clock.now += 0.001  # the first is exactly 60 s old: out
    assert velocity.totals(CARD_1M, TOKEN_A) == (2, 0)
    clock.now += 30
    assert velocity.totals(CARD_1M, TOKEN_A) == (0, 0)
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (3, 1200)
    assert velocity.totals(CARD_USD_1H, TOKEN_B) == (0, 0)


def test_a_late_row_from_another_node_counts_from_when_it_was_created() -> None:
    clock = Clock()
    velocity = store_for(CARD_1M, clock=clock)
    velocity.admit(txn())
    velocity.apply_rows([row_of(txn(), clock.now - 50) | {"id": 7}])
    clock.now += 10  # the late row is 60 s old
    assert velocity.totals(CARD_1M, TOKEN_A) == (1, 0)


def test_check_counts_the_request_itself_once_even_if_its_row_was_polled_first() -> None:
    clock = Clock()
    rule = rules.load("rules: [{id: v, type: velocity, key: card, window: 1m, max_count: 2, "
                      "action: decline}]").rules[0]
    assert isinstance(rule, VelocityRule)
    velocity = store_for(rule.counter, clock=clock)
    velocity.admit(txn())
    ctx = txn()
    velocity.apply_rows([row_of(ctx, clock.now) | {"id": 1}])  # its own PENDING row
    assert velocity.check([rule], ctx) == []
    third = velocity.check([rule], txn())
    assert [(b.rule.id, b.measure, b.observed, b.limit) for b in third] == [("v", "count", 3, 2)]


def test_reject_uncounts_a_request_whose_row_was_polled_before_risk_declined_it() -> None:
    clock = Clock()
    velocity = store_for(CARD_USD_1H, clock=clock)
    ctx = txn()
    velocity.apply_rows([row_of(ctx, clock.now) | {"id": 1}])
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (1, 1000)
    velocity.reject(ctx)
    velocity.apply_rows([row_of(ctx, clock.now, "DECLINED") | {"id": 1}])
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (0, 0)


def test_an_admission_whose_row_never_comes_stops_counting_after_two_minutes() -> None:
    clock = Clock()
    velocity = store_for(CARD_USD_1H, clock=clock)
    velocity.admit(txn())  # e.g. a retry answered from the journal by idempotency
    clock.now += 119
    velocity.sweep()
    assert (velocity.totals(CARD_USD_1H, TOKEN_A), velocity.in_flight) == ((1, 1000), 1)
    clock.now += 1
    velocity.sweep()
    assert (velocity.totals(CARD_USD_1H, TOKEN_A), velocity.in_flight) == ((0, 0), 0)


def test_refunds_and_rows_of_uncounted_kinds_are_ignored() -> None:
    clock = Clock()
    velocity = store_for(Window("card", 60, frozenset({"preauth"}), None), clock=clock)
    velocity.apply_rows([row_of(txn(kind="refund"), clock.now) | {"id": 1},
                         row_of(txn(kind="purchase"), clock.now) | {"id": 2},
                         row_of(txn(kind="preauth"), clock.now) | {"id": 3}])
    assert velocity.totals(Window("card", 60, frozenset({"preauth"}), None), TOKEN_A) == (1, 0)


# -- against the journal ----------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = f"sqlite:///{tmp_path / 'switch.db'}"
    db.upgrade(url, "switch")
    engine = db.make_engine(url)
    j = Journal(engine)
    yield j
    j.close()
    engine.dispose()


def write(journal: Journal, *rows: dict[str, Any]) -> None:
    async def go() -> None:
        for row in rows:
            assert await journal.run(store.insert_entry(row)) is not None
    asyncio.run(go())


def complete(journal: Journal, row: dict[str, Any], status: str, **values: Any) -> None:
    asyncio.run(journal.run(store.complete(row["transaction_id"], {"status": status} | values)))


def test_an_admitted_request_counts_at_once_and_once_more_never_when_its_row_arrives(
        journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_USD_1H, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    ctx = txn()
    velocity.admit(ctx)
    assert (velocity.totals(CARD_USD_1H, TOKEN_A), velocity.in_flight) == ((1, 1000), 1)
    write(journal, row_of(ctx, clock.now + 0.003))
    assert asyncio.run(velocity.poll_once()) == 1
    assert (velocity.totals(CARD_USD_1H, TOKEN_A), velocity.in_flight) == ((1, 1000), 0)
    assert asyncio.run(velocity.poll_once()) == 0
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (1, 1000)


def test_another_node_counts_the_same_request_from_the_journal(journal: Journal) -> None:
    clock = Clock(time.time())
    here = store_for(CARD_USD_1H, clock=clock, journal=journal)
    there = store_for(CARD_USD_1H, clock=clock, journal=journal)
    asyncio.run(here.load())
    asyncio.run(there.load())
    ctx = txn()
    here.admit(ctx)
    assert there.totals(CARD_USD_1H, TOKEN_A) == (0, 0)
    write(journal, row_of(ctx, clock.now))
    asyncio.run(there.poll_once())
    asyncio.run(here.poll_once())
    assert here.totals(CARD_USD_1H, TOKEN_A) == there.totals(CARD_USD_1H, TOKEN_A) == (1, 1000)


def test_load_reads_the_rows_of_the_longest_window_with_their_outcomes(
        journal: Journal) -> None:
    clock = Clock(time.time())
    write(journal,
          row_of(txn(), clock.now - 3601, "APPROVED"),   # older than every window
          row_of(txn(), clock.now - 600, "APPROVED"),
          row_of(txn(), clock.now - 30, "DECLINED"),      # issuer declined: count only
          row_of(txn(), clock.now - 20, "DECLINED", risk_decision="decline"),  # not at all
          row_of(txn(), clock.now - 10))                  # still PENDING
    velocity = store_for(CARD_1M, CARD_USD_1H, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (3, 2000)
    assert velocity.totals(CARD_1M, TOKEN_A) == (2, 0)


def test_an_issuer_decline_stops_counting_the_amount_but_the_attempt_still_counts(
        journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_USD_1H, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    approved, declined = row_of(txn(), clock.now), row_of(txn(amount_minor=5000), clock.now)
    write(journal, approved, declined)
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (2, 6000)
    complete(journal, approved, "APPROVED", response_code="00")
    complete(journal, declined, "DECLINED", response_code="51")
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (2, 1000)


def test_a_row_risk_declined_on_another_node_stops_counting(journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_USD_1H, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    row = row_of(txn(), clock.now)
    write(journal, row)
    asyncio.run(velocity.poll_once())
    complete(journal, row, "DECLINED", response_code="65", risk_decision="decline")
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (0, 0)


def test_a_request_risk_declined_here_stays_uncounted_while_its_row_reads_pending(
        journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_1M, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    ctx = txn()
    velocity.reject(ctx)
    write(journal, row_of(ctx, clock.now))  # the decline is not recorded on it yet
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_1M, TOKEN_A) == (0, 0)
    velocity.use([CARD_1M, CARD_USD_1H])
    asyncio.run(velocity.poll_once())  # rebuilds every window from the journal
    assert velocity.totals(CARD_1M, TOKEN_A) == velocity.totals(CARD_USD_1H, TOKEN_A) == (0, 0)


def test_a_row_committed_after_a_higher_id_is_still_counted(journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_1M, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    write(journal, row_of(txn(), clock.now) | {"id": 101}, row_of(txn(), clock.now) | {"id": 103})
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_1M, TOKEN_A) == (2, 0)
    write(journal, row_of(txn(), clock.now) | {"id": 102})  # its transaction was still open
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_1M, TOKEN_A) == (3, 0)


def test_a_window_added_by_new_rules_is_filled_from_the_journal(journal: Journal) -> None:
    clock = Clock(time.time())
    write(journal, row_of(txn(), clock.now - 100, "APPROVED"))
    velocity = store_for(CARD_1M, clock=clock, journal=journal)
    asyncio.run(velocity.load())
    in_flight = txn()
    velocity.admit(in_flight)
    velocity.use([CARD_1M, CARD_USD_1H])
    asyncio.run(velocity.poll_once())
    assert velocity.totals(CARD_USD_1H, TOKEN_A) == (2, 2000)
    assert (velocity.totals(CARD_1M, TOKEN_A), velocity.in_flight) == ((1, 0), 1)


def test_memory_is_released_once_entries_leave_every_window(journal: Journal) -> None:
    clock = Clock(time.time())
    velocity = store_for(CARD_1M, Window("terminal", 60, BOTH, None), clock=clock,
                         journal=journal)
    asyncio.run(velocity.load())
    contexts = [txn(pan_token=f"{i:064x}") for i in range(50)]
    for ctx in contexts:
        velocity.admit(ctx)
    write(journal, *(row_of(ctx, clock.now, "APPROVED") for ctx in contexts))
    asyncio.run(velocity.poll_once())
    assert (velocity.held, velocity.in_flight) == (100, 0)
    clock.now += 60
    asyncio.run(velocity.poll_once())
    assert velocity.held == 0


def test_start_loads_then_polls_in_the_background(journal: Journal) -> None:
    velocity = VelocityStore(journal, poll_interval_s=0.01)
    velocity.use([CARD_1M])
    write(journal, row_of(txn(), time.time()))

    async def run() -> tuple[int, int]:
        await velocity.start()
        loaded = velocity.totals(CARD_1M, TOKEN_A)[0]
        await journal.run(store.insert_entry(row_of(txn(), time.time())))
        for _ in range(200):
            if velocity.totals(CARD_1M, TOKEN_A)[0] == 2:
                break
            await asyncio.sleep(0.01)
        await velocity.stop()
        return loaded, velocity.totals(CARD_1M, TOKEN_A)[0]
    assert asyncio.run(run()) == (1, 2)


# -- the property: counts equal a brute-force count over the window -----------------------------

WINDOWS = (Window("card", 60, BOTH, None), Window("terminal", 300, BOTH, "USD"),
           Window("merchant", 30, frozenset({"purchase"}), "EUR"))


@dataclass
class Model:
    """One transaction as the oracle sees it."""

    ctx: TxnContext
    ts: float
    counted: int
    amount: int


@st.composite
def traffic(draw: st.DrawFn) -> list[dict[str, Any]]:
    return draw(st.lists(st.fixed_dictionaries({
        "after_ms": st.integers(0, 100_000),
        "card": st.integers(0, 2), "terminal": st.integers(0, 1), "merchant": st.integers(0, 1),
        "kind": st.sampled_from(["purchase", "preauth"]),
        "amount": st.integers(1, 10_000), "currency": st.sampled_from(["USD", "EUR"]),
        "path": st.sampled_from(["admitted here", "journal only"]),
        "outcome": st.sampled_from(["APPROVED", "DECLINED", "TIMED_OUT", "PENDING",
                                    "risk declined"]),
        "lag_ms": st.integers(0, 3_000),
        "outcome_steps_later": st.integers(1, 3),
    }), max_size=40))


@settings(max_examples=150, deadline=None)
@given(traffic())
def test_counts_equal_a_brute_force_count_over_the_window(steps: list[dict[str, Any]]) -> None:
    clock = Clock()
    velocity = VelocityStore(clock=clock, dedup_s=1e9)  # bookkeeping expiry: tested apart
    velocity.use(WINDOWS)
    models: list[Model] = []
    finals: list[tuple[int, Model, dict[str, Any]]] = []
    for i, step in enumerate(steps):
        clock.now += step["after_ms"] / 1000
        for _, model, row in [f for f in finals if f[0] == i]:  # outcomes arrive
            velocity.apply_rows([row])
            model.counted = 0 if row.get("risk_decision") else model.counted
            model.amount = model.amount if row["status"] in AMOUNT_STATUSES and model.counted \
                else 0
        terminal = TerminalConfig(f"T{step['terminal']}", f"M{step['merchant']}", "5411",
                                  "SHOP US", "USD", "bdk")
        ctx = txn(f"{i:06d}", kind=step["kind"], terminal=terminal,
                  pan_token=f"{step['card']:064x}", amount_minor=step["amount"],
                  currency=step["currency"])
        risk_declined = step["outcome"] == "risk declined"
        model = Model(ctx, clock.now, 1, step["amount"])
        if step["path"] == "admitted here":
            if risk_declined:
                velocity.reject(ctx)
                model.counted = model.amount = 0
            else:
                velocity.admit(ctx)
            pending = row_of(ctx, clock.now + 0.002)
        else:
            model.ts = clock.now - step["lag_ms"] / 1000
            pending = row_of(ctx, model.ts)
        velocity.apply_rows([pending | {"id": i + 1}])
        models.append(model)
        if step["outcome"] != "PENDING":
            final = pending | {"id": i + 1, "status": "DECLINED" if risk_declined
                               else step["outcome"]}
            finals.append((i + step["outcome_steps_later"], model,
                           final | ({"risk_decision": "decline"} if risk_declined else {})))
        velocity.sweep()
        for window in WINDOWS:
            for key in {getattr(m.ctx.terminal, f"{window.key}_id") if window.key != "card"
                        else m.ctx.pan_token for m in models}:
                assert key is not None
                assert velocity.totals(window, key) == brute_force(models, window, key,
                                                                   clock.now)


def brute_force(models: list[Model], window: Window, key: str, now: float) -> tuple[int, int]:
    inside = [m for m in models
              if m.ctx.kind in window.kinds and m.ts > now - window.seconds
              and key == (m.ctx.pan_token if window.key == "card"
                          else getattr(m.ctx.terminal, f"{window.key}_id"))]
    return (sum(m.counted for m in inside),
            sum(m.amount for m in inside if m.ctx.currency == window.currency))
