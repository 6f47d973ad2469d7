"""Faults on real processes under load: every request answered, nothing lost, nothing posted twice.

Each test drives purchases from six concurrent terminals (:mod:`tests.e2e.resilience_support`)
while a fault hits the issuer, the switch or the wallet provider, lets the fault heal, resends
what got no answer with the same request key, and reconciles the journal, the issuer's ledger
and the store-and-forward queue to the cent.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cardswitch import bootstrap
from cardswitch.launcher import Cluster
from cardswitch.v1 import acquiring_pb2, acquiring_pb2_grpc, admin_pb2, issuer_pb2
from tests.e2e.resilience_support import (
    REVERSED,
    Purchase,
    Reconciliation,
    Terminals,
    balances,
    control_link,
    eventually,
    issuer_link,
    issuer_received,
    issuer_stats,
    reconcile,
    saf_entries,
    set_issuer_faults,
    small_amount,
    start_cluster,
)

pytestmark = pytest.mark.e2e

ISSUER_TIMEOUT_MS = 1500
#: Amounts the issuer is told to misbehave on; the load's other amounts are 100 to 160.
SLOW_AMOUNT = 233
DUPLICATED_AMOUNT = 244
HUNG_AMOUNT = 255
#: Over the stand-in per-transaction limit (bootstrap.STAND_IN: 100.00).
OVER_STAND_IN_LIMIT = (10001, 12500, 15000)
STAND_IN = bootstrap.STAND_IN


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(var=tmp_path_factory.mktemp("resilience"))
    try:
        asyncio.run(start_cluster(cluster, ISSUER_TIMEOUT_MS))
        yield cluster
    finally:
        cluster.stop_all()


def every(period: int, phase: int, amount: int) -> Callable[[int], int]:
    """Amounts for the load: ``amount`` for one request in ``period``, small ones otherwise."""
    return lambda seq: amount if seq % period == phase else small_amount(seq)


async def run_load(terminals: Terminals, seconds: float, calm_s: float = 2.0) -> None:
    """Load for ``seconds``, then ``calm_s`` more of small amounts only: the faulty requests
    still in flight then time out among successes, so the breakers end closed (timeouts with
    nothing between them would open them, and the next test would start in stand-in)."""
    stop = asyncio.Event()
    load = asyncio.create_task(terminals.load(stop))
    await asyncio.sleep(seconds)
    terminals.amount = small_amount
    await asyncio.sleep(calm_s)
    stop.set()
    await load


async def links_healthy(cluster: Cluster) -> None:
    """Where every test starts: both issuer links connected and signed on, the primary's
    breaker closed. (The backup's may still be open from an earlier outage: an open breaker
    moves only when a request probes it, and requests go to the primary.)"""
    async def healthy() -> bool:
        primary = await issuer_link(cluster, bootstrap.ISSUER_LINK)
        backup = await issuer_link(cluster, bootstrap.BACKUP_LINK)
        return (primary.state == backup.state == admin_pb2.LINK_STATE_UP
                and primary.breaker.state == admin_pb2.BREAKER_STATE_CLOSED)
    assert await eventually(healthy, 20), "issuer links not up, or the primary's breaker open"


async def wait_issuer_answered(cluster: Cluster, received_before: Counter[str],
                               sent_before: Counter[str], extra_copies: int = 0) -> None:
    """Until the issuer has answered every 0200 it received (the late ones it sat on too), so
    the ledger is read after the issuer decided on each of them."""
    async def done() -> bool:
        received, sent = await issuer_stats(cluster)
        return (sent["0210"] - sent_before["0210"]
                >= received["0200"] - received_before["0200"] + extra_copies)
    assert await eventually(done, 30), "the issuer never answered some 0200s"


def report(result: Reconciliation, name: str, **extra: object) -> None:
    print(result.summary(name), *(f"{k}={v}" for k, v in extra.items()))


def assert_within_stand_in_limits(stood_in: list[Purchase]) -> None:
    per_card: dict[str, list[int]] = {}
    for purchase in stood_in:
        assert purchase.code == "00" and purchase.amount_minor <= STAND_IN.max_amount_minor
        per_card.setdefault(purchase.account_id, []).append(purchase.amount_minor)
    for account_id, amounts in per_card.items():
        assert len(amounts) <= STAND_IN.max_daily_count_per_card, (account_id, amounts)
        assert sum(amounts) <= STAND_IN.max_daily_amount_per_card_minor, (account_id, amounts)


def test_issuer_killed_mid_load_breaker_opens_stand_in_answers_and_advices_post_once(
        cluster: Cluster) -> None:
    async def scenario() -> None:
        await links_healthy(cluster)
        before = await balances(cluster)
        terminals = Terminals(cluster)
        stop = asyncio.Event()
        load = asyncio.create_task(terminals.load(stop))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(cluster.stop, "issuer", signal.SIGKILL)
        killed_at = time.monotonic()

        async def breaker_open() -> bool:
            link = await issuer_link(cluster, bootstrap.ISSUER_LINK)
            return link.breaker.state == admin_pb2.BREAKER_STATE_OPEN
        assert await eventually(breaker_open, 10, 0.05), "the breaker never opened"
        over_limit = [await terminals.buy(amount) for amount in OVER_STAND_IN_LIMIT]
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - killed_at)))
        await asyncio.to_thread(cluster.start_issuer)

        async def breaker_closed() -> bool:
            link = await issuer_link(cluster, bootstrap.ISSUER_LINK)
            return (link.breaker.state == admin_pb2.BREAKER_STATE_CLOSED
                    and link.state == admin_pb2.LINK_STATE_UP)
        assert await eventually(breaker_closed, 20, 0.1), "the breaker never closed again"
        recovered_from = len(terminals.sent)
        await asyncio.sleep(1.5)
        stop.set()
        await load
        await terminals.close()
        after_recovery = terminals.sent[recovered_from:]
        assert after_recovery and all(p.approved and not p.stood_in for p in after_recovery), \
            "once the breaker closed, the issuer decides again"

        assert [p.errors for p in terminals.sent if p.errors] == [], \
            "the switch stayed up: it answers every request itself"
        for purchase in over_limit:
            assert purchase.code == "61", purchase.answer
            assert "per-transaction limit" in purchase.answer.result.reason  # type: ignore[union-attr]
        stood_in = [p for p in terminals.sent if p.stood_in]
        assert stood_in, "no purchase was stood in while the issuer was down"
        assert_within_stand_in_limits(stood_in)

        result = await reconcile(cluster, terminals, before)
        received = await issuer_received(cluster)
        advices = received["0220"] + received["0221"]
        assert advices >= len(stood_in), (received, len(stood_in))
        report(result, "issuer killed", advices_after_restart=advices,
               received_after_restart=dict(received))

    asyncio.run(scenario())


def test_issuer_slower_than_the_deadline_timeouts_become_reversals_repeated_until_acknowledged(
        cluster: Cluster) -> None:
    async def scenario() -> None:
        await links_healthy(cluster)
        before = await balances(cluster)
        received_before, sent_before = await issuer_stats(cluster)
        await set_issuer_faults(cluster, issuer_pb2.Fault(
            kind=issuer_pb2.FAULT_KIND_DELAY, latency_ms=ISSUER_TIMEOUT_MS + 1000,
            match_amount_minor=SLOW_AMOUNT, mtis=["0200"]))
        terminals = Terminals(cluster, amount=every(9, 4, SLOW_AMOUNT))
        try:
            await run_load(terminals, 6.0)
            await wait_issuer_answered(cluster, received_before, sent_before)
        finally:
            await set_issuer_faults(cluster)
            await terminals.close()

        slow = [p for p in terminals.sent if p.amount_minor == SLOW_AMOUNT]
        others = [p for p in terminals.sent if p.amount_minor != SLOW_AMOUNT]
        assert slow
        for purchase in slow:
            assert purchase.code == "91", purchase.answer
            assert "automatic reversal" in purchase.answer.result.reason  # type: ignore[union-attr]
        assert {p.code for p in others} == {"00"}
        result = await reconcile(cluster, terminals, before)
        for purchase in slow:
            row = result.journal[purchase.answer.transaction_id]  # type: ignore[union-attr]
            assert row.status == REVERSED and row.reversal_acknowledged
        received, _ = await issuer_stats(cluster)
        reversals = (received["0420"] + received["0421"]
                     - received_before["0420"] - received_before["0421"])
        assert reversals >= len(slow)
        report(result, "issuer slower than the deadline", slow=len(slow), reversals=reversals)

    asyncio.run(scenario())


def test_issuer_answering_twice_or_after_the_reversal_posts_nothing_twice(
        cluster: Cluster) -> None:
    async def scenario() -> None:
        await links_healthy(cluster)
        before = await balances(cluster)
        received_before, sent_before = await issuer_stats(cluster)
        await set_issuer_faults(
            cluster,
            issuer_pb2.Fault(kind=issuer_pb2.FAULT_KIND_DUPLICATE_ANSWER,
                             match_amount_minor=DUPLICATED_AMOUNT),
            issuer_pb2.Fault(kind=issuer_pb2.FAULT_KIND_DELAY,
                             latency_ms=ISSUER_TIMEOUT_MS + 1000,
                             match_amount_minor=SLOW_AMOUNT, mtis=["0200"]))

        def amount(seq: int) -> int:
            return {4: SLOW_AMOUNT, 7: DUPLICATED_AMOUNT}.get(seq % 9, small_amount(seq))
        terminals = Terminals(cluster, amount=amount)
        try:
            await run_load(terminals, 6.0)
            duplicated = [p for p in terminals.sent if p.amount_minor == DUPLICATED_AMOUNT]
            await wait_issuer_answered(cluster, received_before, sent_before,
                                       extra_copies=len(duplicated))
        finally:
            await set_issuer_faults(cluster)
            await terminals.close()

        slow = [p for p in terminals.sent if p.amount_minor == SLOW_AMOUNT]
        assert duplicated and slow
        assert {p.code for p in duplicated} == {"00"}, "the second answer is ignored"
        assert {p.code for p in slow} == {"91"}
        result = await reconcile(cluster, terminals, before)
        for purchase in slow:
            row = result.journal[purchase.answer.transaction_id]  # type: ignore[union-attr]
            assert row.status == REVERSED and row.reversal_acknowledged
        report(result, "issuer answering twice or late", duplicated=len(duplicated),
               slow=len(slow))

    asyncio.run(scenario())


def test_switch_killed_mid_load_resumes_pending_reversals_and_advices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSWITCH_STALE_PENDING_S", "2")
    cluster = Cluster(var=tmp_path)

    async def scenario() -> None:
        await start_cluster(cluster, issuer_timeout_ms=20000)
        before = await balances(cluster)
        # the issuer sits on these longer than the switch lives: PENDING when it dies
        await set_issuer_faults(cluster, issuer_pb2.Fault(
            kind=issuer_pb2.FAULT_KIND_DELAY, latency_ms=3000, match_amount_minor=HUNG_AMOUNT,
            mtis=["0200"]))
        terminals = Terminals(cluster, amount=every(7, 0, HUNG_AMOUNT))
        stop = asyncio.Event()
        load = asyncio.create_task(terminals.load(stop))
        await asyncio.sleep(0.8)
        await control_link(cluster, admin_pb2.LINK_ACTION_SIGN_OFF, bootstrap.ISSUER_LINK,
                           bootstrap.BACKUP_LINK)

        async def advices_queued() -> bool:
            return any(e.mti == "0220" for e in
                       await saf_entries(cluster, include_acknowledged=False))
        assert await eventually(advices_queued, 5, 0.05), "no stand-in advice was queued"
        queued = await saf_entries(cluster, include_acknowledged=False)
        hung = [p for p in terminals.sent if p.amount_minor == HUNG_AMOUNT and p.answer is None]
        await asyncio.to_thread(cluster.stop, "switch", signal.SIGKILL)
        await asyncio.sleep(2.5)  # the PENDING rows are now older than the stale threshold
        await asyncio.to_thread(cluster.start_switch)
        await asyncio.sleep(2.0)
        stop.set()
        await load
        await terminals.reconnect()
        retried = await terminals.retry_unanswered()
        await terminals.close()

        assert {e.reason for e in queued} >= {"stand_in"}
        assert hung, "no request was at the issuer when the switch died"
        stood_in = [p for p in terminals.sent if p.stood_in]
        assert_within_stand_in_limits(stood_in)
        result = await reconcile(cluster, terminals, before)
        recovered = [p for p in hung if p.errors]
        assert recovered, "no request was left PENDING by the dead switch"
        for purchase in recovered:
            row = result.journal[purchase.answer.transaction_id]  # type: ignore[union-attr]
            assert purchase.code == "91" and purchase.answer.replayed  # type: ignore[union-attr]
            assert row.status == REVERSED and row.reversal_acknowledged
            assert "switch restarted" in row.result.reason

        entries = await saf_entries(cluster, include_acknowledged=True)
        advices = Counter(e.transaction_id for e in entries if e.mti == "0220")
        assert advices == Counter(p.answer.transaction_id for p in stood_in)  # type: ignore[union-attr]
        recoveries = {e.transaction_id for e in entries if e.reason == "recovery"}
        assert {p.answer.transaction_id for p in recovered} <= recoveries  # type: ignore[union-attr]
        received = await issuer_received(cluster)
        assert received["0220"] + received["0221"] >= len(stood_in)
        report(result, "switch killed", queued_before_kill=len(queued), hung=len(hung),
               recovered=len(recovered), recovery_reversals=len(recoveries),
               retried_by_terminal=retried, received=dict(received))

    try:
        asyncio.run(scenario())
    finally:
        cluster.stop_all()


def _wallet_control(cluster: Cluster, path: str, body: dict[str, Any] | None = None) -> Any:
    context = ssl.create_default_context(cafile=str(cluster.var / "certs" / "ca.pem"))
    request = urllib.request.Request(
        f"https://127.0.0.1:{cluster.wallet_port}/control/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"}, method="POST" if body else "GET")
    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
        return json.loads(answer.read())


def _rejected_notifications(cluster: Cluster) -> float:
    with urllib.request.urlopen(
            f"http://127.0.0.1:{cluster.switch_metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    pattern = (r'^cardswitch_wallet_notifications_total\{(?=[^}]*link="wallet-sim")'
               r'(?=[^}]*outcome="rejected")[^}]*\} (\S+)$')
    return sum(float(m) for m in re.findall(pattern, text, re.MULTILINE))


def test_wallet_provider_forged_notification_is_rejected_and_logged(cluster: Cluster) -> None:
    codes = {(c["user_id"], c["expired"]): c for c in json.loads(
        (cluster.var / "wallet" / "codes.json").read_text())}
    code = codes[("alipay-dave", False)]
    switch_log = cluster.var / "logs" / "switch.out"
    log_offset = switch_log.stat().st_size
    balance_before = _wallet_control(cluster, "users/alipay-dave")["balance_minor"]
    payments_before = _wallet_control(cluster, "stats")["requests"].get("POST /v1/payments", 0)
    _wallet_control(cluster, "faults", {"forge_notification_signature": True})
    try:
        async def pay() -> tuple[Any, acquiring_pb2.Transaction]:
            terminals = Terminals(cluster)
            try:
                outcome = await terminals.pos.wallet_purchase(code["provider"],
                                                              code["payment_code"], 6500)
            finally:
                await terminals.close()
            async with bootstrap.switch_channel(cluster) as channel:
                txn = await acquiring_pb2_grpc.AcquiringServiceStub(channel).GetTransaction(
                    acquiring_pb2.GetTransactionRequest(transaction_id=outcome.transaction_id),
                    timeout=5)
            return outcome, txn
        outcome, txn = asyncio.run(pay())

        def logged() -> bool:
            text = switch_log.read_bytes()[log_offset:].decode(errors="replace")
            return "rejected wallet notification for link wallet-sim" in text
        deadline = time.monotonic() + 20
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _wallet_control(cluster, "faults", {"forge_notification_signature": False})

    assert logged(), "the forged notification was not rejected"
    assert _rejected_notifications(cluster) >= 1
    assert outcome.response_code == "00", outcome
    assert txn.status == acquiring_pb2.TRANSACTION_STATUS_APPROVED and txn.provider_reference
    balance_after = _wallet_control(cluster, "users/alipay-dave")["balance_minor"]
    assert balance_before - balance_after == 6500, "charged exactly once"
    payments = _wallet_control(cluster, "stats")["requests"].get("POST /v1/payments", 0)
    assert payments - payments_before == 1
    print(f"wallet: {outcome.response_code} {outcome.reason!r}, charged "
          f"{balance_before - balance_after}, rejected notifications "
          f"{_rejected_notifications(cluster):.0f}")
