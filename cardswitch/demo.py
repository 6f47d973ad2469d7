"""``cardswitch demo``: starts HSM, issuer and switch, drives real transactions, reports.

Every scenario goes terminal -> gRPC/mTLS -> switch -> HSM -> ISO 8583/TCP -> issuer and back.
The table and ``var/demo/report.json`` list scenario, entry mode, expected and actual response
code and reason; the exit code is 0 only if every scenario passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
from rich.console import Console
from rich.table import Table

from cardswitch import bootstrap
from cardswitch.config import var_dir
from cardswitch.launcher import Cluster
from cardswitch.v1 import admin_pb2, admin_pb2_grpc, issuer_pb2, issuer_pb2_grpc
from terminals.pinpad import PinPad, provision
from terminals.pos import Card, Outcome, Pos, StanCounter, load_cards, open_channel

TERMINAL = ("TERM0001", "MERCHANT000001")
#: Amount the issuer is told to sit on (longer than the link timeout) for the timeout scenario.
SLOW_AMOUNT = 777
ISSUER_TIMEOUT_MS = 1500
#: A per-card velocity rule the demo adds for one scenario, then takes away.
DEMO_VELOCITY_RULE = """
  - id: demo.card.count_1m
    type: velocity
    key: card
    window: 1m
    max_count: 2
    action: decline
"""
#: Longer than the registry's reload period, so the new rules are in force everywhere.
RULES_SETTLE_S = 5.5


@dataclass(frozen=True)
class ChipScenario:
    name: str
    account: str
    amount_minor: int
    contactless: bool
    pin: str | None
    cvm: Literal["online_pin", "offline_pin", "any"]
    expected: str
    #: The kernel's outcome (terminals.emv.kernel.Outcome).
    outcome: str

    @property
    def entry_mode(self) -> str:
        return "contactless" if self.contactless else "chip"


CHIP_SCENARIOS = (
    ChipScenario("chip, online PIN (Visa CVN 10, DDA)", "acct-visa-ok", 2500, False, "1234",
                 "online_pin", "00", "approved"),
    ChipScenario("chip, offline PIN (Mastercard CVN 17, DDA)", "acct-mc-limit", 1500, False,
                 "1357", "offline_pin", "00", "approved"),
    ChipScenario("chip, UnionPay CVN 01", "acct-upi-ok", 2000, False, "8642", "any", "00",
                 "approved"),
    ChipScenario("contactless under the CVM limit (Mastercard CVN 16, SDA)", "acct-mc-ok",
                 1200, True, None, "any", "00", "approved"),
    ChipScenario("contactless over the CVM limit, online PIN (Visa)", "acct-visa-ok", 7500,
                 True, "1234", "any", "00", "approved"),
    ChipScenario("chip, insufficient funds: ARPC, card AAC (Visa CVN 18, SDA)",
                 "acct-visa-low", 9000, False, "2468", "offline_pin", "51", "declined"),
    ChipScenario("chip, blocked account: declined, application block script",
                 "acct-visa-blocked", 1000, False, "6666", "any", "62", "declined"),
    ChipScenario("chip, blocked application: no application to select", "acct-visa-blocked",
                 1000, False, "6666", "any", "--", "aborted"),
)


@dataclass
class Row:
    scenario: str
    entry_mode: str
    expected_code: str
    response_code: str
    passed: bool
    reason: str
    transaction_id: str = ""
    detail: str = ""


class Demo:
    def __init__(self, cluster: Cluster, pos: Pos, cards: dict[str, Card]) -> None:
        self.cluster, self.pos, self.cards = cluster, pos, cards
        self.rows: list[Row] = []

    def add(self, scenario: str, expected: str, outcome: Outcome, *, ok: bool = True,
            detail: str = "") -> Outcome:
        entry = {"swipe": "magstripe", "manual": "manual"}.get(outcome.entry, outcome.entry)
        self.rows.append(Row(scenario, entry or "n/a", expected, outcome.response_code,
                             ok and outcome.response_code == expected, outcome.reason,
                             outcome.transaction_id, detail))
        return outcome

    async def run(self) -> list[Row]:
        c, pos = self.cards, self.pos
        self.add("approved purchase with PIN", "00",
                 await pos.purchase(c["acct-visa-ok"], 2599, pin=c["acct-visa-ok"].pin))
        self.add("wrong PIN", "55", await pos.purchase(c["acct-mc-ok"], 1000, pin="0000"))
        self.add("insufficient funds", "51", await pos.purchase(c["acct-visa-low"], 10000))
        self.add("expired card", "54", await pos.purchase(c["acct-visa-expired"], 1000))
        self.add("lost card", "41", await pos.purchase(c["acct-visa-lost"], 1000))
        self.add("stolen card", "43", await pos.purchase(c["acct-visa-stolen"], 1000))
        self.add("manual entry with CVV2", "00",
                 await pos.purchase(c["acct-mc-ok"], 4250, entry="manual"))
        self.add("UnionPay card", "00",
                 await pos.purchase(c["acct-upi-ok"], 1800, pin=c["acct-upi-ok"].pin))
        self.add("daily limit exceeded", "61", await pos.purchase(c["acct-mc-limit"], 25000))
        pre = self.add("pre-authorization", "00",
                       await pos.pre_authorize(c["acct-visa-ok"], 12000))
        self.add("capture of the pre-authorization", "00",
                 await pos.capture(pre.transaction_id, 10500))
        self.add("refund", "00", await pos.refund(c["acct-visa-ok"], 1500))
        bought = await pos.purchase(c["acct-mc-ok"], 3300)
        self.add("void of a purchase", "00", await pos.void(bought.transaction_id))
        self.add("balance inquiry", "00",
                 await pos.balance_inquiry(c["acct-visa-ok"], pin=c["acct-visa-ok"].pin))
        retried = await pos.purchase(c["acct-visa-ok"], 1234, retry_same=True)
        self.add("retried request returns the stored result", "00", retried,
                 ok=bool(retried.replay_consistent),
                 detail=f"replayed={retried.replayed} same_answer={retried.replay_consistent}")
        await self.timeout_scenario()
        await self.wallet_scenarios()
        await self.network_scenarios()
        await self.chip_scenarios()
        return self.rows

    async def wallet_scenarios(self) -> None:
        """Customer-presented wallet codes, through the wallet provider over signed HTTPS."""
        codes = {(c["user_id"], c["expired"]): c for c in json.loads(
            (self.cluster.var / "wallet" / "codes.json").read_text())}
        pos = self.pos
        cases = (("wallet QR code (alipay)", "alipay-alice", 1999, True, "00"),
                 ("wallet token (wechatpay)", "wechat-erin", 880, False, "00"),
                 ("wallet, customer confirms on the phone (notification)", "alipay-dave", 6500,
                  False, "00"),
                 ("wallet, insufficient balance", "alipay-bob", 90000, False, "51"),
                 ("wallet, frozen wallet account", "alipay-carol", 1000, False, "62"))
        for scenario, user, amount, qr, expected in cases:
            code = codes[(user, False)]
            self.add(scenario, expected, await pos.wallet_purchase(
                code["provider"], code["qr_payload"] if qr else code["payment_code"], amount,
                qr=qr, name=scenario))
        expired = codes[("alipay-alice", True)]
        self.add("wallet, expired payment code", "14", await pos.wallet_purchase(
            expired["provider"], expired["payment_code"], 500))

    async def network_scenarios(self) -> None:
        """Routing failover, stand-in with its advice, and a velocity decline by a risk rule."""
        async with bootstrap.switch_channel(self.cluster) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            card = self.cards["acct-mc-ok"]
            await _link(admin, bootstrap.ISSUER_LINK, admin_pb2.LINK_ACTION_SIGN_OFF)
            moved = await self.pos.purchase(card, 1100, name="failover")
            view = await self.pos.get_transaction(moved.transaction_id)
            self.add("routing failover: primary link signed off", "00", moved,
                     ok=view.issuer_link == bootstrap.BACKUP_LINK,
                     detail=f"decided on {view.issuer_link}")
            await _link(admin, bootstrap.BACKUP_LINK, admin_pb2.LINK_ACTION_SIGN_OFF)
            stood = await self.pos.purchase(card, 2000, name="stand-in")
            await _link(admin, bootstrap.ISSUER_LINK, admin_pb2.LINK_ACTION_SIGN_ON)
            await _link(admin, bootstrap.BACKUP_LINK, admin_pb2.LINK_ACTION_SIGN_ON)
            advised = await _eventually(lambda: _advice_acknowledged(admin, stood.transaction_id),
                                        20)
            self.add("stand-in: every link down, within the stand-in limits", "00", stood,
                     ok=advised and "stand-in" in stood.reason,
                     detail=f"advice acknowledged by the issuer={advised}")
            await self.velocity_scenario(admin)

    async def velocity_scenario(self, admin: Any) -> None:
        before = await admin.GetRiskRules(admin_pb2.GetRiskRulesRequest(), timeout=5)
        tight = before.yaml + DEMO_VELOCITY_RULE
        changed = await admin.SetRiskRules(admin_pb2.SetRiskRulesRequest(yaml=tight), timeout=5)
        card = self.cards["acct-upi-ok"]
        try:
            await asyncio.sleep(RULES_SETTLE_S)  # every switch node picks the change up
            for _ in range(2):
                await self.pos.purchase(card, 150, name="velocity")
            third = await self.pos.purchase(card, 150, name="velocity")
            self.add("velocity: third purchase on one card within a minute", "65", third,
                     ok="demo.card.count_1m" in third.reason,
                     detail=f"risk rules version {changed.version}")
        finally:
            await admin.SetRiskRules(admin_pb2.SetRiskRulesRequest(yaml=before.yaml), timeout=5)

    async def chip_scenarios(self) -> None:
        """Chip and contactless purchases: virtual cards in pcscd readers, the EMV kernel."""
        from terminals import chip, pcsc

        try:
            await asyncio.to_thread(pcsc.ensure_daemon)
        except pcsc.PcscUnavailable as exc:
            self.rows.append(Row("chip and contactless", "chip", "00", "--", False, str(exc)))
            return
        for spec in CHIP_SCENARIOS:
            try:
                result = await chip.run(self.pos, spec.account, spec.amount_minor, "USD",
                                        contactless=spec.contactless, pin=spec.pin,
                                        cvm=spec.cvm, var=self.cluster.var)
            except Exception as exc:  # a row says what broke, and the rest go on
                self.rows.append(Row(spec.name, spec.entry_mode, spec.expected, "--", False,
                                     f"{type(exc).__name__}: {exc}"))
                continue
            code = chip.response_code(result)
            self.rows.append(Row(
                spec.name, spec.entry_mode, spec.expected, code,
                code == spec.expected and result.outcome == spec.outcome, result.reason,
                result.online.transaction_id if result.online else "",
                f"{result.brand} {result.outcome}, TVR {result.tvr.hex().upper()}, "
                f"CVM {result.cvm_results.hex().upper()}"))

    async def timeout_scenario(self) -> None:
        """The issuer sits on one purchase past the link timeout: 91, then a 0420 reversal."""
        async with grpc.aio.insecure_channel(self.cluster.issuer_control) as channel:
            control = issuer_pb2_grpc.IssuerSimServiceStub(channel)
            await control.SetFaults(issuer_pb2.SetFaultsRequest(faults=[issuer_pb2.Fault(
                kind=issuer_pb2.FAULT_KIND_DELAY, latency_ms=ISSUER_TIMEOUT_MS + 1500,
                match_amount_minor=SLOW_AMOUNT, count=1)]), timeout=5)
            before = (await control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5)).received
            outcome = await self.pos.purchase(self.cards["acct-visa-ok"], SLOW_AMOUNT)
            acknowledged = await _eventually(lambda: self._reversed(outcome.transaction_id), 20)
            after = (await control.GetStats(issuer_pb2.GetStatsRequest(), timeout=5)).received
            await control.SetFaults(issuer_pb2.SetFaultsRequest(), timeout=5)
        advices = after.get("0420", 0) - before.get("0420", 0)
        self.add("issuer timeout ends in an automatic reversal", "91", outcome,
                 ok=acknowledged and advices >= 1,
                 detail=f"reversal acknowledged={acknowledged}, 0420 sent to issuer={advices}")

    async def _reversed(self, transaction_id: str) -> bool:
        view = await self.pos.get_transaction(transaction_id)
        return view.reversal_acknowledged and view.status == "reversed"


async def _link(admin: Any, name: str, action: Any) -> None:
    await admin.ControlLink(admin_pb2.ControlLinkRequest(name=name, action=action), timeout=10)


async def _advice_acknowledged(admin: Any, transaction_id: str) -> bool:
    entries = (await admin.ListStoreAndForward(admin_pb2.ListStoreAndForwardRequest(
        include_acknowledged=True, limit=1000), timeout=5)).entries
    return any(e.transaction_id == transaction_id and e.mti == "0220"
               and e.acknowledged_at.seconds for e in entries)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def run_demo(cluster: Cluster) -> list[Row]:
    """Starts and configures ``cluster``, drives every scenario, returns the rows."""
    await bootstrap.start_all(cluster, [TERMINAL], issuer_timeout_ms=ISSUER_TIMEOUT_MS)
    term_dir = cluster.var / "terminals"
    channel = open_channel(cluster.switch, insecure=cluster.insecure,
                           certs_dir=cluster.var / "certs")
    if PinPad.exists(TERMINAL[0], term_dir):
        pinpad = PinPad.load(TERMINAL[0], term_dir)
    else:
        pinpad = await provision(channel, TERMINAL[0], directory=term_dir)
    pos = Pos(channel, *TERMINAL, pinpad=pinpad, owns_channel=True,
              stan=StanCounter.for_terminal(TERMINAL[0], term_dir))
    async with pos:
        cards = load_cards(cluster.var / "issuer" / "cards.json")
        return await Demo(cluster, pos, cards).run()


def print_rows(rows: list[Row], console: Console) -> None:
    table = Table(title="cardswitch demo")
    for col in ("scenario", "entry mode", "expected", "actual", "reason", "result"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.scenario, r.entry_mode, r.expected_code, r.response_code,
                      r.reason + (f" ({r.detail})" if r.detail else ""),
                      "[green]pass[/]" if r.passed else "[red]FAIL[/]")
    console.print(table)


def write_report(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


def _cmd(args: argparse.Namespace) -> int:
    console = Console(width=max(140, Console().width))
    if args.var:
        var = Path(args.var)
    else:  # a fresh cluster every run, so repeated demos start from the same balances
        var = var_dir() / "demo" / "run"
        shutil.rmtree(var, ignore_errors=True)
    cluster = Cluster(var=var, database_url=args.database_url)
    console.print(f"[bold]cardswitch demo[/] var={var} database="
                  f"{'PostgreSQL' if args.database_url else 'SQLite (embedded)'}")
    try:
        rows = asyncio.run(run_demo(cluster))
        console.print(f"HSM {cluster.hsm}  issuer 127.0.0.1:{cluster.issuer_port}  "
                      f"switch {cluster.switch} (mTLS)")
        if args.keep_running:
            console.print("services keep running; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        cluster.stop_all()
    print_rows(rows, console)
    report = (var if args.var else var_dir()) / "demo" / "report.json"
    write_report(rows, report)
    passed = sum(r.passed for r in rows)
    console.print(f"{passed}/{len(rows)} scenarios passed; report: {report}")
    return 0 if passed == len(rows) else 1


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="start every service, drive real transactions, report")
    p.add_argument("--var", help="runtime directory to use and keep (default: a fresh "
                   "./var/demo/run each time)")
    p.add_argument("--database-url", help="PostgreSQL URL instead of the embedded SQLite")
    p.add_argument("--keep-running", action="store_true",
                   help="leave the services up after the scenarios")
    p.set_defaults(func=_cmd)
