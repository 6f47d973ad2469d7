"""``cardswitch issuer``: run the issuer host, and issue the test cards through the HSM."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from cardswitch.iso8583 import Dialect
from issuer_sim.seed import DEFAULT_CARDS

DEFAULT_HSM = "127.0.0.1:7100"
#: The dialect ``issuer serve`` speaks without --dialect, in Dialect.parse's text form.
DIALECT_ENV = "CARDSWITCH_ISSUER_DIALECT"


def register(sub: Any) -> None:
    """Adds ``cardswitch issuer {serve,seed}`` to the umbrella parser's subparsers."""
    issuer = sub.add_parser("issuer", help="the issuer simulator: ISO 8583 host, test cards")
    commands = issuer.add_subparsers(dest="issuer_command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the issuer host (ISO 8583 over TCP)")
    serve.add_argument("--port", type=int, default=7200, help="ISO 8583 port")
    serve.add_argument("--control-port", type=int, default=7201,
                       help="gRPC control port (IssuerSimService: faults, accounts, stats)")
    serve.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    serve.add_argument("--metrics-port", type=int, default=0)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--dialect", type=_dialect, metavar="SPEC",
                       help="ISO 8583 dialect: numeric,bitmap,charset,length_header[,tpdu=HEX], "
                            "e.g. bcd,hex,ebcdic,ascii4,tpdu=6000030000 "
                            f"(default: ${DIALECT_ENV}, else ascii,binary,ascii,binary2)")
    serve.set_defaults(func=cmd_serve)

    seed = commands.add_parser("seed", help="issue the test cards: HSM keys, accounts, card file")
    seed.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    seed.add_argument("--cards", type=Path, default=DEFAULT_CARDS, help="test cards YAML")
    seed.add_argument("--reset", action="store_true",
                      help="put balances, status and PIN tries back to the file's values")
    seed.set_defaults(func=cmd_seed)


def _dialect(text: str) -> Dialect:
    try:
        return Dialect.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def serve_dialect(args: argparse.Namespace) -> Dialect:
    """The dialect to serve: --dialect, else $CARDSWITCH_ISSUER_DIALECT, else the default."""
    given: Dialect | None = args.dialect
    if given is not None:
        return given
    try:
        return Dialect.parse(os.environ.get(DIALECT_ENV, ""))
    except ValueError as exc:
        raise ValueError(f"{DIALECT_ENV}: {exc}") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    from issuer_sim import server  # the server stack is imported for this command only

    try:
        dialect = serve_dialect(args)
    except ValueError as exc:
        print(f"cardswitch issuer serve: {exc}", file=sys.stderr)
        return 2
    asyncio.run(server.serve(args.port, args.control_port, args.hsm, args.metrics_port,
                             args.host, dialect))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from issuer_sim import seed

    try:
        result = seed.seed(args.hsm, args.cards, reset=args.reset)
    except grpc.FutureTimeoutError:
        print(f"cardswitch issuer seed: no HSM answering at {args.hsm}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"cardswitch issuer seed: {exc.code().name} from the HSM at {args.hsm}: "
              f"{exc.details()}", file=sys.stderr)
        return 1
    if result.keys_generated:
        print("generated HSM keys: " + ", ".join(result.keys_generated))
    total = sum(len(ids) for ids in (result.created, result.reset, result.refreshed,
                                     result.unchanged))
    print(f"issued {total} cards: {len(result.created)} created, {len(result.reset)} reset, "
          f"{len(result.refreshed)} refreshed, {len(result.unchanged)} unchanged")
    print(f"card file: {result.card_file}")
    return 0
