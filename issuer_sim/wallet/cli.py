"""``cardswitch wallet``: run the wallet provider simulator, and seed its demo users."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

DEFAULT_HSM = "127.0.0.1:7100"


def register(sub: Any) -> None:
    """Adds ``cardswitch wallet {serve,seed}`` to the umbrella parser's subparsers."""
    wallet = sub.add_parser("wallet", help="the wallet provider simulator: signed HTTPS, QR codes")
    commands = wallet.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the provider's HTTPS API")
    serve.add_argument("--port", type=int, default=7300, help="HTTPS port")
    serve.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--notify-delay-ms", type=int, default=2000,
                       help="how long a customer takes to confirm on the phone (default 2000)")
    serve.add_argument("--switch-public-key", type=Path,
                       help="PEM file of the switch's public key (default: fetched from the "
                            "HSM, label wallet-switch-signing)")
    serve.set_defaults(func=cmd_serve)

    seed = commands.add_parser("seed", help="provider key pair, demo users, payment codes")
    seed.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    seed.add_argument("--algorithm", choices=("ed25519", "rsa-sha256"), default="ed25519",
                      help="the provider's key pair, if it is made now (default ed25519)")
    seed.add_argument("--reset", action="store_true",
                      help="put balances and status back to the demo values")
    seed.set_defaults(func=cmd_seed)


def cmd_serve(args: argparse.Namespace) -> int:
    from issuer_sim.wallet import server

    if args.notify_delay_ms < 0:
        raise ValueError("--notify-delay-ms: must be >= 0")
    pem = args.switch_public_key.read_text() if args.switch_public_key else ""
    asyncio.run(server.serve(args.port, args.hsm, host=args.host,
                             notify_delay_ms=args.notify_delay_ms, switch_public_key_pem=pem))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from cardswitch.v1 import hsm_pb2_grpc
    from issuer_sim.wallet import seed

    async def run() -> seed.SeedResult:
        async with grpc.aio.insecure_channel(args.hsm) as channel:
            stub: Any = hsm_pb2_grpc.HsmServiceStub(channel)
            return await seed.seed(stub, algorithm=args.algorithm, reset=args.reset)

    try:
        result = asyncio.run(run())
    except grpc.aio.AioRpcError as exc:
        print(f"cardswitch wallet seed: {exc.code().name} from the HSM at {args.hsm}: "
              f"{exc.details()}", file=sys.stderr)
        return 1
    if result.keys_generated:
        print("generated HSM key pairs: " + ", ".join(result.keys_generated))
    print(f"{len(seed.DEMO_USERS)} wallet users ({len(result.users_created)} created), "
          f"{len(result.codes)} payment codes")
    print(f"payment codes: {result.codes_file}")
    return 0
