"""``cardswitch hsm``: make the LMK, run the HSM, and generate and list keys through it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

import grpc

from cardswitch.errors import field_violations_of
from cardswitch.v1 import hsm_pb2, hsm_pb2_grpc
from hsm_sim import audit, lmk

DEFAULT_HSM = "127.0.0.1:7100"

KEY_TYPES = {
    "zpk": hsm_pb2.KEY_TYPE_ZPK, "bdk": hsm_pb2.KEY_TYPE_BDK, "pvk": hsm_pb2.KEY_TYPE_PVK,
    "cvk": hsm_pb2.KEY_TYPE_CVK, "zmk": hsm_pb2.KEY_TYPE_ZMK, "dek": hsm_pb2.KEY_TYPE_DEK,
    "hmac": hsm_pb2.KEY_TYPE_HMAC, "tpk": hsm_pb2.KEY_TYPE_TPK, "tak": hsm_pb2.KEY_TYPE_TAK,
    "imk-ac": hsm_pb2.KEY_TYPE_IMK_AC, "imk-smi": hsm_pb2.KEY_TYPE_IMK_SMI,
    "imk-smc": hsm_pb2.KEY_TYPE_IMK_SMC,
}
ALGORITHMS = {
    "tdes2": hsm_pb2.KEY_ALGORITHM_TDES_2KEY, "tdes3": hsm_pb2.KEY_ALGORITHM_TDES_3KEY,
    "aes128": hsm_pb2.KEY_ALGORITHM_AES_128, "aes192": hsm_pb2.KEY_ALGORITHM_AES_192,
    "aes256": hsm_pb2.KEY_ALGORITHM_AES_256, "hmac-sha256": hsm_pb2.KEY_ALGORITHM_HMAC_SHA256,
}


def register(sub: Any) -> None:
    """Adds ``cardswitch hsm {init,serve,key}`` to the umbrella parser's subparsers."""
    hsm = sub.add_parser("hsm", help="the software HSM: LMK, server, keys")
    commands = hsm.add_subparsers(dest="hsm_command", metavar="COMMAND", required=True)

    init = commands.add_parser("init", help="create a development LMK from random components")
    init.add_argument("--components", type=int, choices=(2, 3), default=2)
    init.add_argument("--force", action="store_true", help="replace an existing LMK")
    init.add_argument("--show-components", action="store_true",
                      help="print each clear component (for a key ceremony drill only)")
    init.set_defaults(func=cmd_init)

    enter = commands.add_parser(
        "lmk-load", help="form the LMK from components its custodians enter one after another")
    enter.add_argument("--components", type=int, choices=(2, 3), default=2)
    enter.add_argument("--force", action="store_true", help="replace an existing LMK")
    enter.set_defaults(func=cmd_lmk_load)

    serve = commands.add_parser("serve", help="run the HSM gRPC service")
    serve.add_argument("--port", type=int, default=7100)
    serve.add_argument("--metrics-port", type=int, default=0)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--host-port", type=int, default=None,
                       help="also serve the payShield-style host interface on this TCP port "
                            "(0 picks a free one; see docs/hsm-host-interface.md)")
    serve.set_defaults(func=cmd_serve)

    audit.register(commands)

    key = commands.add_parser("key", help="manage keys in a running HSM")
    key_commands = key.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
    generate = key_commands.add_parser("generate", help="generate a random key in the HSM")
    generate.add_argument("--label", required=True)
    generate.add_argument("--type", required=True, choices=sorted(KEY_TYPES), dest="key_type")
    generate.add_argument("--algorithm", required=True, choices=list(ALGORITHMS))
    generate.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    generate.set_defaults(func=cmd_key_generate)
    listing = key_commands.add_parser("list", help="list the HSM's keys (never their values)")
    listing.add_argument("--type", choices=sorted(KEY_TYPES), dest="key_type")
    listing.add_argument("--hsm", default=DEFAULT_HSM, help="HSM address, host:port")
    listing.set_defaults(func=cmd_key_list)


def cmd_init(args: argparse.Namespace) -> int:
    try:
        made = lmk.create(args.components, force=args.force)
    except lmk.LmkError as exc:
        print(f"cardswitch hsm init: {exc}", file=sys.stderr)
        return 1
    for i, (check, component) in enumerate(zip(made.component_kcvs, made.components,
                                               strict=True), start=1):
        shown = f"  {component.hex().upper()}" if args.show_components else ""
        print(f"component {i} KCV {check}{shown}")
    print(f"LMK written to {made.path} (mode 600), KCV {made.kcv}")
    return 0


def _read_component(number: int, total: int) -> bytes:
    """One custodian's component: typed without echo at a terminal, else a line of stdin."""
    prompt = f"component {number} of {total} (64 hex digits): "
    if sys.stdin.isatty():
        text = getpass.getpass(prompt)
    else:
        print(prompt, end="", file=sys.stderr, flush=True)
        text = sys.stdin.readline()
    text = text.strip()
    if len(text) != 2 * lmk.LMK_LENGTH or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"component {number}: must be {2 * lmk.LMK_LENGTH} hex digits, got "
                         f"{len(text)} characters")
    return bytes.fromhex(text)


def cmd_lmk_load(args: argparse.Namespace) -> int:
    components = []
    for number in range(1, args.components + 1):
        part = _read_component(number, args.components)
        print(f"component {number} KCV {lmk.check_value(part)}", file=sys.stderr)
        components.append(part)
    try:
        made = lmk.from_components(components, force=args.force)
    except lmk.LmkError as exc:
        print(f"cardswitch hsm lmk-load: {exc}", file=sys.stderr)
        return 1
    print(f"LMK written to {made.path} (mode 600), KCV {made.kcv}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from hsm_sim import server  # imports the gRPC server stack only for this command

    try:
        asyncio.run(server.serve(args.port, args.metrics_port, args.host, args.host_port))
    except lmk.LmkError as exc:
        print(f"cardswitch hsm serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _call(address: str, method: str, request: Any) -> Any:
    with grpc.insecure_channel(address) as channel:
        stub_class: Any = hsm_pb2_grpc.HsmServiceStub  # generated code has no annotations
        stub = stub_class(channel)
        return getattr(stub, method)(request, timeout=10)


def _failed(command: str, address: str, exc: grpc.RpcError) -> int:
    violations = field_violations_of(exc)
    reason = "invalid request" if violations else exc.details()
    print(f"cardswitch hsm {command}: {exc.code().name} from {address}: {reason}",
          file=sys.stderr)
    for field, problem in violations:
        print(f"  {field}: {problem}", file=sys.stderr)
    return 1


def _print_key(key: hsm_pb2.KeyInfo) -> None:
    key_type = str(hsm_pb2.KeyType.Name(key.key_type)).removeprefix("KEY_TYPE_")
    algorithm = str(hsm_pb2.KeyAlgorithm.Name(key.algorithm)).removeprefix("KEY_ALGORITHM_")
    created = key.created_at.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{key.label:<24} {key_type:<5} {algorithm:<11} KCV {key.kcv}  {key.key_id}  {created}")


def cmd_key_generate(args: argparse.Namespace) -> int:
    request = hsm_pb2.GenerateKeyRequest(label=args.label, key_type=KEY_TYPES[args.key_type],
                                         algorithm=ALGORITHMS[args.algorithm])
    try:
        response = _call(args.hsm, "GenerateKey", request)
    except grpc.RpcError as exc:
        return _failed("key generate", args.hsm, exc)
    _print_key(response.key)
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    key_type = KEY_TYPES[args.key_type] if args.key_type else hsm_pb2.KEY_TYPE_UNSPECIFIED
    try:
        response = _call(args.hsm, "ListKeys", hsm_pb2.ListKeysRequest(key_type=key_type))
    except grpc.RpcError as exc:
        return _failed("key list", args.hsm, exc)
    for key in response.keys:
        _print_key(key)
    if not response.keys:
        print("no keys", file=sys.stderr)
    return 0
