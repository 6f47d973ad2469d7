"""``cardswitch terminal ...``: drive the switch as a POS terminal with a DUKPT PIN pad.

Subcommands: provision, purchase, capture, void, refund, balance, get, run (a scenario file) and
load. All take ``--switch HOST:PORT --terminal-id --merchant-id --insecure --certs DIR
--timeout S``; cards are named by account id and read from the issuer's embossing file.
Exit codes: 0 approved / all passed, 1 declined / something failed, 2 the call was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import yaml
from rich.console import Console
from rich.table import Table

from cardswitch import errors
from cardswitch.cards import mask_pans_in
from cardswitch.currency import format_amount
from cardswitch.responses import reason
from terminals import pinpad
from terminals.load import run_load
from terminals.pos import Card, Outcome, Pos, load_cards
from terminals.scenario import load_scenario, parse_amount, run_scenario

DEFAULT_SWITCH = "127.0.0.1:7000"
DEFAULT_TERMINAL_ID = "TERM0001"
DEFAULT_MERCHANT_ID = "MERCHANT000001"
TESTCARDS = Path(__file__).resolve().parent.parent / "cardswitch" / "testcards.yaml"

out = Console()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--switch", default=DEFAULT_SWITCH, metavar="HOST:PORT",
                        help=f"switch address (default {DEFAULT_SWITCH})")
    common.add_argument("--terminal-id", help=f"terminal id, DE 41 (default {DEFAULT_TERMINAL_ID})")
    common.add_argument("--merchant-id", help=f"merchant id, DE 42 (default {DEFAULT_MERCHANT_ID})")
    common.add_argument("--insecure", action="store_true", help="plaintext gRPC instead of mTLS")
    common.add_argument("--certs", type=Path, metavar="DIR",
                        help="ca.pem, client.pem, client.key (default $CARDSWITCH_VAR/certs)")
    common.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="deadline of each call in seconds (default 10)")
    common.add_argument("--cards", type=Path, metavar="FILE",
                        help="embossing file (default $CARDSWITCH_VAR/issuer/cards.json)")

    parser = sub.add_parser("terminal", help="act as a POS terminal: transactions, scenarios, load")
    cmds = parser.add_subparsers(dest="terminal_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
            ) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, parents=[common], help=help_)
        p.set_defaults(func=lambda args: _run(func(args)))
        return p

    add("provision", "load the PIN pad's DUKPT initial key from the switch", _provision)

    p = add("purchase", "a purchase (or --preauth a pre-authorization)", _purchase)
    _card_args(p, pin=True)
    _amount_args(p, required=True)
    p.add_argument("--preauth", action="store_true", help="pre-authorize instead of purchase")

    p = add("capture", "capture an approved pre-authorization", _capture)
    p.add_argument("--ref", required=True, metavar="TXN_ID", help="the pre-authorization")
    _amount_args(p, required=True)
    p.add_argument("--retry-same", action="store_true", help="send the same request twice")

    p = add("void", "void an approved transaction", _void)
    p.add_argument("--ref", required=True, metavar="TXN_ID", help="the transaction to void")
    p.add_argument("--retry-same", action="store_true", help="send the same request twice")

    p = add("refund", "refund to a card, optionally against a purchase", _refund)
    _card_args(p, pin=False)
    _amount_args(p, required=True)
    p.add_argument("--ref", default="", metavar="TXN_ID", help="the purchase being refunded")

    p = add("balance", "balance inquiry", _balance)
    _card_args(p, pin=True)

    p = add("get", "show a transaction from the switch journal", _get)
    p.add_argument("transaction_id", metavar="TXN_ID")

    p = add("run", "run a scenario file and check every response code", _run_scenario)
    p.add_argument("scenario", type=Path, metavar="SCENARIO.yaml")

    p = add("load", "send purchases at a fixed rate and report latency percentiles", _load)
    p.add_argument("--tps", type=float, default=200.0, help="target rate (default 200)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S", help="seconds (default 30)")
    p.add_argument("--concurrency", type=int, default=64, help="in-flight bound (default 64)")
    p.add_argument("--closed", action="store_true",
                   help="closed loop: --concurrency workers as fast as possible; ignores --tps")
    p.add_argument("--card", action="append", metavar="ACCOUNT_ID",
                   help="card to use (repeatable; default the test cards that should approve)")
    p.add_argument("--amount", default="0.10", help="amount of each purchase (default 0.10)")
    p.add_argument("--currency", default="USD")
    p.add_argument("--pin-every", type=int, default=4, metavar="N",
                   help="enter PINs on every Nth round of cards; 0 never (default 4)")
    p.add_argument("--entry", choices=("swipe", "manual"), default="swipe")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _card_args(p: argparse.ArgumentParser, *, pin: bool) -> None:
    p.add_argument("--card", required=True, metavar="ACCOUNT_ID", help="card by account id")
    p.add_argument("--entry", choices=("swipe", "manual"), default="swipe",
                   help="magstripe swipe (track 2) or manual key entry (PAN, expiry, CVV2)")
    if pin:
        p.add_argument("--pin", help="PIN the cardholder enters on the PIN pad")
    p.add_argument("--retry-same", action="store_true", help="send the same request twice")


def _amount_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--amount", required=required, help="decimal amount, e.g. 12.34")
    p.add_argument("--currency", default="USD", help="ISO 4217 code (default USD)")


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coro)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        name = code.name if isinstance(code, grpc.StatusCode) else type(exc).__name__
        print(f"cardswitch terminal: {name}: {mask_pans_in(str(details))}", file=sys.stderr)
        with contextlib.suppress(ValueError):  # details that do not match the status: skip
            for field, problem in errors.field_violations_of(exc):
                print(f"  {field}: {problem}", file=sys.stderr)
        return 2


def _pos(args: argparse.Namespace, terminal_id: str | None = None,
         merchant_id: str | None = None) -> Pos:
    return Pos.connect(
        args.switch,
        args.terminal_id or terminal_id or DEFAULT_TERMINAL_ID,
        args.merchant_id or merchant_id or DEFAULT_MERCHANT_ID,
        insecure=args.insecure, certs_dir=args.certs, timeout_s=args.timeout,
    )


async def _ensure_pinpad(pos: Pos) -> None:
    """Provisions the terminal's PIN pad over ``pos``'s channel if it never was."""
    if pinpad.PinPad.exists(pos.terminal_id):
        return
    pad = await pinpad.provision(pos.channel, pos.terminal_id, timeout_s=pos.timeout_s)
    print(f"provisioned the PIN pad of {pos.terminal_id} (initial KSN {pad.ksn.hex().upper()})",
          file=sys.stderr)


def _card(args: argparse.Namespace) -> Card:
    cards = load_cards(args.cards)
    if args.card not in cards:
        raise ValueError(f"--card: no card with account id {args.card!r} in the embossing file")
    return cards[args.card]


def _print_outcome(outcome: Outcome) -> int:
    grid = Table.grid(padding=(0, 2))
    verdict = "[green]APPROVED" if outcome.approved else "[red]DECLINED"
    grid.add_row(verdict, f"{outcome.response_code} {outcome.reason}")
    grid.add_row("transaction", outcome.transaction_id or "-")
    grid.add_row("stan / time", f"{outcome.key.stan} / {outcome.key.local_date_time}")
    if outcome.approval_code or outcome.rrn:
        grid.add_row("approval / rrn", f"{outcome.approval_code or '-'} / {outcome.rrn or '-'}")
    if outcome.masked_pan:
        grid.add_row("card", outcome.masked_pan)
    for b in outcome.balances:
        grid.add_row(f"{b.type} balance", format_amount(b.amount_minor, b.currency))
    replay = ""
    if outcome.replay_consistent is not None:
        replay = (" (resend replayed the stored outcome)" if outcome.replayed
                  and outcome.replay_consistent else " [red](resend was NOT a replay)")
    grid.add_row("latency", f"{outcome.latency_ms:.1f} ms{replay}")
    out.print(grid)
    return 0 if outcome.approved else 1


async def _provision(args: argparse.Namespace) -> int:
    async with _pos(args) as pos:
        pad = await pinpad.provision(pos.channel, pos.terminal_id, timeout_s=pos.timeout_s)
    out.print(f"{pos.terminal_id}: PIN pad provisioned, key check value verified, "
              f"initial KSN {pad.ksn.hex().upper()}")
    return 0


async def _purchase(args: argparse.Namespace) -> int:
    card = _card(args)
    amount = parse_amount(args.amount, args.currency, "--amount")
    async with _pos(args) as pos:
        if args.pin is not None:
            await _ensure_pinpad(pos)
        send = pos.pre_authorize if args.preauth else pos.purchase
        outcome = await send(card, amount, args.currency, pin=args.pin, entry=args.entry,
                             retry_same=args.retry_same)
    return _print_outcome(outcome)


async def _capture(args: argparse.Namespace) -> int:
    amount = parse_amount(args.amount, args.currency, "--amount")
    async with _pos(args) as pos:
        outcome = await pos.capture(args.ref, amount, args.currency, retry_same=args.retry_same)
    return _print_outcome(outcome)


async def _void(args: argparse.Namespace) -> int:
    async with _pos(args) as pos:
        outcome = await pos.void(args.ref, retry_same=args.retry_same)
    return _print_outcome(outcome)


async def _refund(args: argparse.Namespace) -> int:
    card = _card(args)
    amount = parse_amount(args.amount, args.currency, "--amount")
    async with _pos(args) as pos:
        outcome = await pos.refund(card, amount, args.currency, entry=args.entry,
                                   original_transaction_id=args.ref, retry_same=args.retry_same)
    return _print_outcome(outcome)


async def _balance(args: argparse.Namespace) -> int:
    card = _card(args)
    async with _pos(args) as pos:
        if args.pin is not None:
            await _ensure_pinpad(pos)
        outcome = await pos.balance_inquiry(card, pin=args.pin, entry=args.entry,
                                            retry_same=args.retry_same)
    return _print_outcome(outcome)


async def _get(args: argparse.Namespace) -> int:
    async with _pos(args) as pos:
        txn = await pos.get_transaction(args.transaction_id)
    grid = Table.grid(padding=(0, 2))
    for label, value in (
        ("transaction", txn.transaction_id), ("type", txn.type), ("status", txn.status),
        ("amount", format_amount(txn.amount_minor, txn.currency) if txn.currency else "-"),
        ("card", txn.masked_pan or "-"), ("entry mode", txn.entry_mode),
        ("result", f"{txn.response_code} {txn.reason}"),
        ("approval / rrn", f"{txn.approval_code or '-'} / {txn.rrn or '-'}"),
        ("original", txn.original_transaction_id or "-"),
        ("stan / time", f"{txn.key.stan} / {txn.key.local_date_time}"),
    ):
        grid.add_row(label, value)
    out.print(grid)
    return 0


async def _run_scenario(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    if args.cards:
        scenario = replace(scenario, cards_path=args.cards)
    async with _pos(args, scenario.terminal_id, scenario.merchant_id) as pos:
        if any(t.pin for t in scenario.transactions):
            await _ensure_pinpad(pos)
        results = await run_scenario(pos, scenario)
    table = Table(title=f"{args.scenario} on {pos.terminal_id}")
    for column in ("#", "scenario", "type", "entry mode", "expected", "actual", "reason",
                   "ms", "passed"):
        table.add_column(column, justify="right" if column in ("#", "ms") else "left")
    for r in results:
        table.add_row(
            str(r.index), r.name, r.type, r.entry, r.expected, r.actual, r.reason,
            f"{r.latency_ms:.1f}" if r.latency_ms else "-",
            "[green]yes" if r.passed else "[red]NO",
        )
    out.print(table)
    failed = sum(not r.passed for r in results)
    out.print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def approved_path_accounts(path: Path = TESTCARDS) -> list[str]:
    """Test cards that should approve many small purchases: active, unexpired, with a balance
    and a daily limit of at least 1000.00."""
    data = yaml.safe_load(path.read_text())
    this_month = datetime.now().strftime("%y%m")
    return [
        c["account_id"] for c in data.get("cards", [])
        if c.get("status") == "active" and str(c.get("expiry_yymm", "0000")) >= this_month
        and int(c.get("daily_limit_minor", 0)) >= 100_000
        and int(c.get("balance_minor", 0)) >= 100_000
    ]


async def _load(args: argparse.Namespace) -> int:
    cards = load_cards(args.cards)
    wanted = args.card or [a for a in approved_path_accounts() if a in cards]
    missing = [a for a in wanted if a not in cards]
    if missing or not wanted:
        raise ValueError(f"--card: no such card(s) in the embossing file: {', '.join(missing)}"
                         if missing else "--card: no approved-path cards in the embossing file")
    amount = parse_amount(args.amount, args.currency, "--amount")
    async with _pos(args) as pos:
        if args.pin_every:
            await _ensure_pinpad(pos)
        report = await run_load(
            pos, args.tps, args.duration, [cards[a] for a in wanted], args.concurrency,
            mode="closed" if args.closed else "open", amount_minor=amount,
            currency=args.currency, pin_every=args.pin_every, entry=args.entry,
            progress=not args.no_progress,
        )
    table = Table(title=f"load on {pos.terminal_id}: {report.mode} loop")
    for column in ("sent", "skipped", "answered", "approved", "declined", "errors", "TPS",
                   "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.sent), str(report.skipped), str(report.answered), str(report.approved),
        str(report.declined), str(report.error_count), f"{report.achieved_tps:.1f}",
        f"{report.p50_ms:.2f}", f"{report.p95_ms:.2f}", f"{report.p99_ms:.2f}",
        f"{report.max_ms:.2f}",
    )
    out.print(table)
    for code, count in sorted(report.declines.items()):
        out.print(f"  declined {code} ({reason(code)}): {count}")
    for code, count in sorted(report.errors.items()):
        out.print(f"  error {code}: {count}")
    return 0 if report.answered and not report.errors else 1

