"""The journal: group commit, idempotent inserts, failure isolation, reversal leasing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from cardswitch import db
from switch import store
from switch.journal import Journal
from switch.models import JournalEntry, utcnow


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
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


def row(stan: str, **extra: Any) -> dict[str, Any]:
    now = utcnow()
    return {"transaction_id": str(uuid.uuid4()), "terminal_id": "TERM0001",
            "merchant_id": "M1", "stan": stan, "local_date_time": "261123101010",
            "type": "purchase", "status": "PENDING", "amount_minor": 100, "currency": "USD",
            "entry_mode": "manual", "mcc": "5411", "created_at": now, "updated_at": now} | extra


def count(j: Journal) -> int:
    with j.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(JournalEntry)).scalar_one())


def test_concurrent_writes_share_commits_and_all_become_durable(journal: Journal) -> None:
    async def many() -> list[int | None]:
        return await asyncio.gather(*(journal.run(store.insert_entry(row(f"{i:06d}")))
                                      for i in range(200)))
    ids = asyncio.run(many())
    assert len(set(ids)) == 200 and None not in ids
    assert count(journal) == 200


def test_the_same_request_key_inserts_once_and_the_second_gets_none(journal: Journal) -> None:
    async def twice() -> list[int | None]:
        return await asyncio.gather(journal.run(store.insert_entry(row("000777"))),
                                    journal.run(store.insert_entry(row("000777"))))
    first, second = sorted(asyncio.run(twice()), key=lambda x: x is None)
    assert first is not None and second is None
    assert count(journal) == 1


def test_a_failing_op_fails_alone_and_its_batch_neighbours_commit(journal: Journal) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(text("SELECT * FROM no_such_table"))

    async def mixed() -> list[Any]:
        return await asyncio.gather(journal.run(store.insert_entry(row("000001"))),
                                    journal.run(broken),
                                    journal.run(store.insert_entry(row("000002"))),
                                    return_exceptions=True)
    results = asyncio.run(mixed())
    assert isinstance(results[1], Exception)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert count(journal) == 2


def test_rrn_is_year_digit_julian_day_and_eight_digits_of_the_id() -> None:
    assert store.rrn_for(42, dt.datetime(2026, 11, 23, tzinfo=dt.UTC)) == "632700000042"
    assert store.rrn_for(123_456_789, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == "600123456789"


def test_a_reversal_is_leased_to_one_node_at_a_time(journal: Journal) -> None:
    r = row("000003")
    asyncio.run(journal.run(store.insert_entry(r)))
    asyncio.run(journal.run(store.enqueue_reversal(
        {"transaction_id": r["transaction_id"], "issuer_link": "issuer-a", "reason": "timeout"})))
    first = asyncio.run(journal.run(store.claim_due("node-a", 10, 30)))
    second = asyncio.run(journal.run(store.claim_due("node-b", 10, 30)))
    assert [e["transaction_id"] for e in first] == [r["transaction_id"]]
    assert second == []
    asyncio.run(journal.run(store.saf_acknowledged(first[0]["id"], r["transaction_id"], "0420")))
    stored = asyncio.run(journal.read(lambda c: store.by_transaction_id(c, r["transaction_id"])))
    assert stored is not None
    assert (stored["status"], stored["reversal_acknowledged"]) == ("REVERSED", True)


def test_a_failed_reversal_backs_off_and_is_claimed_again_later(journal: Journal) -> None:
    r = row("000004")
    asyncio.run(journal.run(store.insert_entry(r)))
    asyncio.run(journal.run(store.enqueue_reversal(
        {"transaction_id": r["transaction_id"], "issuer_link": "issuer-a", "reason": "timeout"})))
    (entry,) = asyncio.run(journal.run(store.claim_due("n", 10, 30)))
    asyncio.run(journal.run(store.saf_failed(entry["id"], 0, "link down")))
    assert asyncio.run(journal.run(store.claim_due("n", 10, 30))) == []


def test_pending_rows_left_by_a_dead_process_become_timed_out_with_a_reversal(
        journal: Journal) -> None:
    old = utcnow() - dt.timedelta(minutes=10)
    r = row("000005", created_at=old, updated_at=old, issuer_link="issuer-a")
    asyncio.run(journal.run(store.insert_entry(r)))
    assert asyncio.run(journal.run(store.stale_pending(utcnow() - dt.timedelta(minutes=2)))) == 1
    stored = asyncio.run(journal.read(lambda c: store.by_transaction_id(c, r["transaction_id"])))
    assert stored is not None and stored["status"] == "TIMED_OUT"
    assert stored["rrn"] == store.rrn_for(stored["id"], old), "the RRN the dead process sent"
    claimed = asyncio.run(journal.run(store.claim_due("n", 10, 30)))
    assert [e["transaction_id"] for e in claimed] == [r["transaction_id"]]


def test_outcomes_written_together_each_land_on_their_own_row(journal: Journal) -> None:
    rows = [row(f"{i:06d}") for i in range(60)]

    async def write() -> None:
        await asyncio.gather(*(journal.run(store.insert_entry(r)) for r in rows))
        await asyncio.gather(*(journal.run(store.complete(
            r["transaction_id"],
            {"status": "APPROVED", "response_code": "00", "approval_code": f"{i:06d}"}
            if i % 2 else {"status": "DECLINED", "response_code": "51"}))
            for i, r in enumerate(rows)))
    asyncio.run(write())
    for i, r in enumerate(rows):
        stored = asyncio.run(journal.read(
            lambda c, tid=r["transaction_id"]: store.by_transaction_id(c, tid)))
        assert stored is not None
        expected = ("APPROVED", "00", f"{i:06d}") if i % 2 else ("DECLINED", "51", None)
        assert (stored["status"], stored["response_code"], stored["approval_code"]) == expected


def test_store_and_forward_keeps_the_order_of_a_link_behind_an_entry_not_due_yet(
        journal: Journal) -> None:
    first, second, other = row("000071"), row("000072"), row("000073")
    for r in (first, second, other):
        asyncio.run(journal.run(store.insert_entry(r)))
    asyncio.run(journal.run(store.enqueue_reversal(
        {"transaction_id": first["transaction_id"], "issuer_link": "issuer-a",
         "reason": "timeout"})))
    asyncio.run(journal.run(store.enqueue_reversal(
        {"transaction_id": second["transaction_id"], "issuer_link": "issuer-a",
         "reason": "timeout"})))
    asyncio.run(journal.run(store.enqueue_reversal(
        {"transaction_id": other["transaction_id"], "issuer_link": "issuer-b",
         "reason": "timeout"})))
    claimed = asyncio.run(journal.run(store.claim_due("n", 10, 30)))
    assert [e["transaction_id"] for e in claimed] == [
        first["transaction_id"], second["transaction_id"], other["transaction_id"]]
    asyncio.run(journal.run(store.saf_failed(claimed[0]["id"], 0, "link down")))
    asyncio.run(journal.run(store.release([claimed[1]["id"]])))
    asyncio.run(journal.run(store.saf_acknowledged(claimed[2]["id"], other["transaction_id"],
                                                   "0420")))
    assert asyncio.run(journal.run(store.claim_due("n", 10, 30))) == [], (
        "the second entry of issuer-a waits behind the first, which backs off")


def test_an_advice_acknowledged_leaves_its_transaction_approved(journal: Journal) -> None:
    r = row("000074")
    asyncio.run(journal.run(store.insert_entry(r)))
    asyncio.run(journal.run(store.complete(
        r["transaction_id"], {"status": "APPROVED", "response_code": "00", "stood_in": True},
        saf={"transaction_id": r["transaction_id"], "mti": "0220", "issuer_link": "issuer-a",
             "reason": "stand_in", "attempts": 0, "created_at": utcnow(),
             "next_attempt_at": utcnow()})))
    (entry,) = asyncio.run(journal.run(store.claim_due("n", 10, 30)))
    assert entry["mti"] == "0220"
    asyncio.run(journal.run(store.saf_acknowledged(entry["id"], r["transaction_id"], "0220")))
    stored = asyncio.run(journal.read(lambda c: store.by_transaction_id(c, r["transaction_id"])))
    assert stored is not None and (stored["status"], stored["stood_in"]) == ("APPROVED", True)
