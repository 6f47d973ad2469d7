"""``cardswitch card``: personalise chip cards and look at them.

``cardswitch card issue`` turns cards of the issuer's card file into chip cards (HSM-derived
ICC keys, test-PKI certificates); ``cardswitch card list`` shows the chip cards and their state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from cardswitch.v1 import hsm_pb2_grpc

DEFAULT_HSM = "127.0.0.1:50052"


def register(sub: Any) -> None:
    p = sub.add_parser("card", help="chip cards: personalise (issue) and list")
    cmds = p.add_subparsers(dest="card_command", metavar="ACTION", required=True)
    issue = cmds.add_parser("issue", help="personalise chip cards for issued accounts")
    which = issue.add_mutually_exclusive_group(required=True)
    which.add_argument("--account", action="append", default=[],
                       help="account id (repeatable); its chip options come from --cards")
    which.add_argument("--all", action="store_true",
                       help="every card with a chip: entry in --cards")
    issue.add_argument("--hsm", default=DEFAULT_HSM, help="HSM gRPC address")
    issue.add_argument("--cards", type=Path, default=None,
                       help="test cards YAML with chip: entries (default: the bundled one)")
    issue.set_defaults(func=cmd_issue)
    listing = cmds.add_parser("list", help="chip cards, their options and state (no PANs)")
    listing.set_defaults(func=cmd_list)


def cmd_issue(args: argparse.Namespace) -> int:
    from terminals.cards import issuance
    from terminals.pos import load_cards

    options = issuance.chip_options(args.cards or issuance.DEFAULT_CARDS)
    wanted = sorted(options) if args.all else args.account
    unknown = [a for a in wanted if a not in options]
    if unknown:
        raise ValueError(f"--account: no chip: entry for {', '.join(unknown)}")
    embossed = load_cards()
    missing = [a for a in wanted if a not in embossed]
    if missing:
        raise ValueError(f"--account: {', '.join(missing)} not issued yet; run "
                         "`cardswitch issuer seed` first")
    try:
        with grpc.insecure_channel(args.hsm) as channel:
            grpc.channel_ready_future(channel).result(timeout=issuance.HSM_TIMEOUT_S)
            stub: Any = hsm_pb2_grpc.HsmServiceStub(channel)
            for account_id in wanted:
                path = issuance.issue(stub, embossed[account_id], options[account_id])
                chip = options[account_id]
                print(f"{account_id}: {embossed[account_id].brand} CVN {chip.cvn or 'default'}"
                      f", ODA {chip.oda}{', contactless' if chip.contactless else ''} -> {path}")
    except grpc.FutureTimeoutError:
        print(f"cardswitch card issue: no HSM answering at {args.hsm}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"cardswitch card issue: {exc.code().name} from the HSM: {exc.details()}",
              file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from terminals.cards import issuance
    from terminals.cards.state import state_path

    for account_id in issuance.issued():
        path = issuance.card_path(account_id)
        info = issuance.summary(path)
        state = state_path(path)
        print(f"{account_id}: {info} state={state.read_text().strip() if state.exists() else '-'}")
    return 0
