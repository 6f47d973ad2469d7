"""``cardswitch``: the one command line. Each service package adds its own subcommands.

Every module in :data:`COMMAND_MODULES` has ``register(subparsers)`` that adds a subcommand whose
parser sets ``func`` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "hsm_sim.cli",        # cardswitch hsm ...
    "issuer_sim.cli",     # cardswitch issuer ...
    "issuer_sim.wallet.cli",  # cardswitch wallet serve | seed
    "switch.cli",         # cardswitch switch ..., cardswitch admin ...
    "terminals.cli",      # cardswitch terminal ...
    "terminals.cards.cli",  # cardswitch card issue | list
    "cardswitch.certs",   # cardswitch certs init
    "cardswitch.demo",    # cardswitch demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardswitch",
        description="A card payment switch: gRPC acquiring, software HSM, ISO 8583 issuers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        print(f"cardswitch {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
