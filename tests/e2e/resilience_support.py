"""Load from POS terminals and the reconciliation the resilience tests share.

:class:`Terminals` drives purchases through :class:`terminals.pos.Pos` from a few concurrent
workers and remembers every request it sent (its request key, card account and amount) with
the answer the terminal was given, or the gRPC error it got instead. A request that got no
answer is resent unchanged, same key, once the fault is over -- what a real terminal does --
until it is answered, so every request ends with an answer.

:func:`reconcile` then proves that nothing was lost and nothing posted twice: once the
store-and-forward queue is empty and no journal row is PENDING or TIMED_OUT, each request key
is in the journal with the code its terminal was told, and each issuer account's ledger moved
by exactly the approved purchases of the test, stood-in ones included, to the cent.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from cardswitch import bootstrap
from cardswitch.demo import RULES_SETTLE_S, TERMINAL
from cardswitch.launcher import Cluster
from cardswitch.v1 import (
    acquiring_pb2,
    acquiring_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    issuer_pb2,
    issuer_pb2_grpc,
)
from terminals.pos import Card, Pos, StanCounter, card_input, load_cards, open_channel

#: Cards with room for a few hundred small purchases a day (cardswitch/testcards.yaml).
ACCOUNTS = ("acct-visa-ok", "acct-mc-ok", "acct-upi-ok")
#: Thresholds only, no rules: a load of hundreds of purchases per card is never declined by
#: velocity (the default set stops a card after 30 attempts in 10 minutes).
PERMISSIVE_RULES = "thresholds: {review: 1000, decline: 1000}\nrules: []\n"
APPROVED = acquiring_pb2.TRANSACTION_STATUS_APPROVED
DECLINED = acquiring_pb2.TRANSACTION_STATUS_DECLINED
REVERSED = acquiring_pb2.TRANSACTION_STATUS_REVERSED
UNSETTLED = (acquiring_pb2.TRANSACTION_STATUS_PENDING, acquiring_pb2.TRANSACTION_STATUS_TIMED_OUT)
TERMINAL_TIMEOUT_S = 10.0


def small_amount(seq: int) -> int:
    """100 to 160 minor units: hundreds of these stay within every card's daily limit."""
    return 100 + (seq * 7) % 61


@dataclass
class Purchase:
    """One request a terminal sent, and what it was told (the answer, or the gRPC error)."""

    request: acquiring_pb2.AuthorizeRequest
    account_id: str
    answer: acquiring_pb2.AuthorizeResponse | None = None
    #: Status codes of the attempts that got no answer (UNAVAILABLE while the switch is dead).
    errors: list[grpc.StatusCode] = field(default_factory=list)

    @property
    def amount_minor(self) -> int:
        return int(self.request.amount.amount_minor)

    @property
    def code(self) -> str:
        assert self.answer is not None, "not answered"
        return str(self.answer.result.response_code)

    @property
    def stood_in(self) -> bool:
        return self.answer is not None and self.answer.stood_in

    @property
    def approved(self) -> bool:
        return self.answer is not None and self.answer.result.approved


class Terminals:
    """Concurrent purchases from one terminal id, each with a fresh request key (STAN)."""

    def __init__(self, cluster: Cluster, amount: Callable[[int], int] = small_amount,
                 accounts: Sequence[str] = ACCOUNTS) -> None:
        self.cluster = cluster
        self.amount = amount
        cards = load_cards(cluster.var / "issuer" / "cards.json")
        self.cards: list[Card] = [cards[a] for a in accounts]
        self.sent: list[Purchase] = []
        self._seq = itertools.count()
        self._stan = StanCounter.for_terminal(TERMINAL[0], cluster.var / "terminals")
        self.pos = self._connect()

    def _connect(self) -> Pos:
        channel = open_channel(self.cluster.switch, insecure=False,
                               certs_dir=self.cluster.var / "certs")
        return Pos(channel, *TERMINAL, stan=self._stan, timeout_s=TERMINAL_TIMEOUT_S,
                   owns_channel=True)

    async def reconnect(self) -> None:
        """A fresh channel: after a switch restart, not the old one's reconnect backoff."""
        await self.pos.close()
        self.pos = self._connect()

    async def close(self) -> None:
        await self.pos.close()

    def new_purchase(self, amount_minor: int | None = None, card: Card | None = None) -> Purchase:
        seq = next(self._seq)
        card = card or self.cards[seq % len(self.cards)]
        source, entry_mode = card_input(card, "swipe")
        request = acquiring_pb2.AuthorizeRequest(
            key=self.pos.new_key(), type=acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE,
            amount=common_pb2.Money(amount_minor=self.amount(seq) if amount_minor is None
                                    else amount_minor, currency="USD"),
            card=source, entry_mode=entry_mode)  # type: ignore[arg-type]
        purchase = Purchase(request, card.account_id)
        self.sent.append(purchase)
        return purchase

    async def send(self, purchase: Purchase) -> bool:
        """One attempt; True when answered."""
        try:
            purchase.answer = await self.pos.stub.Authorize(purchase.request,
                                                            timeout=TERMINAL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            purchase.errors.append(exc.code())
            return False
        return True

    async def buy(self, amount_minor: int | None = None) -> Purchase:
        purchase = self.new_purchase(amount_minor)
        await self.send(purchase)
        return purchase

    async def load(self, stop: asyncio.Event, workers: int = 6, pause_s: float = 0.12) -> None:
        """``workers`` terminals buying until ``stop`` is set; a worker whose request failed
        waits a little longer, as a terminal showing "try again" would."""
        async def worker() -> None:
            while not stop.is_set():
                answered = await self.send(self.new_purchase())
                await asyncio.sleep(pause_s if answered else 0.3)
        await asyncio.gather(*(worker() for _ in range(workers)))

    def unanswered(self) -> list[Purchase]:
        return [p for p in self.sent if p.answer is None]

    async def retry_unanswered(self, timeout_s: float = 60.0) -> int:
        """Resends each unanswered request, same key, until answered; returns how many."""
        retried = self.unanswered()
        deadline = time.monotonic() + timeout_s
        for purchase in retried:
            while not await self.send(purchase):
                assert time.monotonic() < deadline, (
                    f"request STAN {purchase.request.key.stan} still unanswered after "
                    f"{timeout_s:.0f}s: {purchase.errors[-3:]}")
                await asyncio.sleep(0.5)
        return len(retried)


# --- the switch's and the issuer's APIs ----------------------------------------------------

def admin(channel: grpc.aio.Channel) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(channel)


async def set_permissive_rules(cluster: Cluster) -> None:
    """Replaces the risk rules, then waits until every switch node reloaded them."""
    async with bootstrap.switch_channel(cluster) as channel:
        await admin(channel).SetRiskRules(admin_pb2.SetRiskRulesRequest(yaml=PERMISSIVE_RULES),
                                          timeout=10)
    await asyncio.sleep(RULES_SETTLE_S + 0.5)


async def start_cluster(cluster: Cluster, issuer_timeout_ms: int) -> None:
    await bootstrap.start_all(cluster, [TERMINAL], issuer_timeout_ms=issuer_timeout_ms)
    await set_permissive_rules(cluster)


async def control_link(cluster: Cluster, action: int, *names: str) -> None:
    async with bootstrap.switch_channel(cluster) as channel:
        for name in names:
            await admin(channel).ControlLink(admin_pb2.ControlLinkRequest(
                name=name, action=action), timeout=10)  # type: ignore[arg-type]


async def issuer_link(cluster: Cluster, name: str) -> admin_pb2.IssuerLink:
    async with bootstrap.switch_channel(cluster) as channel:
        link: admin_pb2.IssuerLink = await admin(channel).GetIssuerLink(
            admin_pb2.GetIssuerLinkRequest(name=name), timeout=5)
    return link


async def saf_entries(cluster: Cluster, *, include_acknowledged: bool
                      ) -> list[admin_pb2.StoreAndForwardEntry]:
    async with bootstrap.switch_channel(cluster) as channel:
        answer = await admin(channel).ListStoreAndForward(admin_pb2.ListStoreAndForwardRequest(
            include_acknowledged=include_acknowledged, limit=100_000), timeout=10)
    return list(answer.entries)


async def issuer_call(cluster: Cluster, call: Callable[[Any], Awaitable[Any]]) -> Any:
    async with grpc.aio.insecure_channel(cluster.issuer_control) as channel:
        return await call(issuer_pb2_grpc.IssuerSimServiceStub(channel))


async def set_issuer_faults(cluster: Cluster, *faults: issuer_pb2.Fault) -> None:
    await issuer_call(cluster, lambda stub: stub.SetFaults(
        issuer_pb2.SetFaultsRequest(faults=faults), timeout=5))


async def issuer_stats(cluster: Cluster) -> tuple[Counter[str], Counter[str]]:
    """Messages the issuer received and sent per MTI since it (re)started."""
    stats = await issuer_call(cluster, lambda stub: stub.GetStats(issuer_pb2.GetStatsRequest(),
                                                                  timeout=5))
    return Counter(dict(stats.received)), Counter(dict(stats.sent))


async def issuer_received(cluster: Cluster) -> Counter[str]:
    return (await issuer_stats(cluster))[0]


@dataclass(frozen=True)
class Balances:
    ledger_minor: int
    available_minor: int
    holds_minor: int


async def balances(cluster: Cluster, accounts: Sequence[str] = ACCOUNTS) -> dict[str, Balances]:
    async def one(stub: issuer_pb2_grpc.IssuerSimServiceStub) -> dict[str, Balances]:
        out = {}
        for account_id in accounts:
            account = await stub.GetAccount(issuer_pb2.GetAccountRequest(account_id=account_id),
                                            timeout=5)
            by_type = {b.type: b.amount.amount_minor for b in account.balances}
            out[account_id] = Balances(by_type[common_pb2.BALANCE_TYPE_LEDGER],
                                       by_type[common_pb2.BALANCE_TYPE_AVAILABLE],
                                       account.holds.amount_minor)
        return out
    result: dict[str, Balances] = await issuer_call(cluster, one)
    return result


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float,
                     interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


# --- reconciliation ------------------------------------------------------------------------

@dataclass
class Reconciliation:
    """What one test's load came to, once every fault is over and every queue is drained."""

    requests: int
    retried: int
    stood_in: int
    approved: int
    reversed: int
    declined: Counter[str]
    #: Per account: how much the issuer's ledger went down, all equal to the approved amounts.
    ledger_deltas: dict[str, int]
    #: Journal rows by transaction id.
    journal: dict[str, acquiring_pb2.Transaction]

    def summary(self, name: str) -> str:
        return (f"{name}: {self.requests} requests ({self.retried} retried), "
                f"{self.approved} approved ({self.stood_in} stood in), {self.reversed} reversed, "
                f"declined {dict(self.declined)}, ledger deltas {self.ledger_deltas}")


async def wait_saf_drained(cluster: Cluster, timeout_s: float = 60.0) -> None:
    async def drained() -> bool:
        return not await saf_entries(cluster, include_acknowledged=False)
    if await eventually(drained, timeout_s, 0.5):
        return
    left = [(e.mti, e.reason, e.attempts, e.last_error)
            for e in await saf_entries(cluster, include_acknowledged=False)]
    raise AssertionError(f"store-and-forward entries unacknowledged after {timeout_s:.0f}s: "
                         f"{left}")


async def journal_rows(cluster: Cluster, sent: Sequence[Purchase]
                       ) -> list[acquiring_pb2.Transaction]:
    """Every request's journal row, looked up by its request key (NOT_FOUND fails the test)."""
    async with bootstrap.switch_channel(cluster) as channel:
        stub = acquiring_pb2_grpc.AcquiringServiceStub(channel)
        rows = []
        for purchase in sent:
            rows.append(await stub.GetTransaction(
                acquiring_pb2.GetTransactionRequest(key=purchase.request.key), timeout=5))
        return rows


async def reconcile(cluster: Cluster, terminals: Terminals, before: dict[str, Balances],
                    *, settle_timeout_s: float = 60.0) -> Reconciliation:
    """Asserts that every request was answered, journaled with its answer and posted at most
    once: the issuer's ledger moved by exactly the approved purchases. See the module doc."""
    sent = terminals.sent
    assert not terminals.unanswered(), "every request must end with an answer"
    await wait_saf_drained(cluster, settle_timeout_s)

    async def settled() -> bool:
        return all(r.status not in UNSETTLED for r in await journal_rows(cluster, sent))
    assert await eventually(settled, settle_timeout_s, 0.5), "journal rows left PENDING/TIMED_OUT"
    rows = await journal_rows(cluster, sent)

    spent: Counter[str] = Counter()
    declined: Counter[str] = Counter()
    for purchase, row in zip(sent, rows, strict=True):
        stan = purchase.request.key.stan
        assert row.result.response_code == purchase.code, (
            f"STAN {stan}: journal says {row.result.response_code}, terminal was told "
            f"{purchase.code}")
        assert row.amount.amount_minor == purchase.amount_minor, stan
        assert row.transaction_id == purchase.answer.transaction_id, stan  # type: ignore[union-attr]
        if purchase.approved:
            assert row.status == APPROVED, (stan, acquiring_pb2.TransactionStatus.Name(row.status))
            assert row.stood_in == purchase.stood_in, stan
            spent[purchase.account_id] += purchase.amount_minor
        else:
            assert row.status in (DECLINED, REVERSED), (
                stan, acquiring_pb2.TransactionStatus.Name(row.status))
            declined[purchase.code] += 1
        if row.status == REVERSED:
            assert row.reversal_acknowledged, stan

    after = await balances(cluster, list(before))
    for account_id, was in before.items():
        now = after[account_id]
        assert now.ledger_minor == was.ledger_minor - spent[account_id], (
            f"{account_id}: ledger {now.ledger_minor}, expected {was.ledger_minor} - "
            f"{spent[account_id]} approved = {was.ledger_minor - spent[account_id]}")
        assert now.holds_minor == 0, f"{account_id}: purchases leave no hold, got {now.holds_minor}"
        assert now.available_minor == now.ledger_minor, account_id
    return Reconciliation(
        requests=len(sent), retried=sum(1 for p in sent if p.errors),
        stood_in=sum(1 for p in sent if p.approved and p.stood_in),
        approved=sum(1 for p in sent if p.approved),
        reversed=sum(1 for r in rows if r.status == REVERSED), declined=declined,
        ledger_deltas={a: before[a].ledger_minor - after[a].ledger_minor for a in before},
        journal={r.transaction_id: r for r in rows})
