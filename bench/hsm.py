"""``./run bench hsm``: PIN translations per second, over gRPC and in process, one run.

The command measured is the switch's hot one: a PIN block under a terminal's TDES DUKPT key
(ISO 0) translated to a zone PIN key (ISO 0), each request with its own KSN counter.

  1. gRPC unary, closed loop                      -> pin_translate_per_s_grpc_unary
  2. gRPC Execute streams, many in flight         -> pin_translate_per_s_grpc (batching)
  3. in process, the servicer's own method        -> pin_translate_per_s_inprocess
     (validation, key lookup, usage check, audit record, DUKPT, TDES: all but the network)
  4. in process, the algorithms alone             -> pin_translate_per_s_algorithms

The HSM runs as its own process, audit log on; 1 to 3 include auditing every command. Writes
``bench/results/hsm.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from bench import cpu
from cardswitch.config import ROOT
from cardswitch.launcher import Cluster
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc
from hsm_sim.algorithms import dukpt, pinblock, tdes

BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # X9.24-1 test BDK
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
PAN = "4111111111111111"
ISO_0 = common_pb2.PIN_BLOCK_FORMAT_ISO_0


def requests(count: int) -> list[hsm_pb2.TranslatePinRequest]:
    """``count`` translations from one PIN pad, each under its own DUKPT transaction key."""
    out = []
    ksn = dukpt.make_ksn(bytes.fromhex("FFFF987654"), 0x19087, 0)
    ipek = dukpt.tdes_ipek(BDK, ksn)
    for _ in range(count):
        ksn = dukpt.next_ksn(ksn)
        block = tdes.encrypt_ecb(dukpt.tdes_pin_key(ipek, ksn), pinblock.encode_iso0("1234", PAN))
        out.append(hsm_pb2.TranslatePinRequest(
            source_bdk_key_ref="bench-bdk", ksn=ksn, destination_zpk_key_ref="bench-zpk",
            pin_block=block, pan=PAN, source_format=ISO_0, destination_format=ISO_0))
    return out


async def _keys(stub: Any) -> None:
    for label, key_type, clear in (("bench-bdk", hsm_pb2.KEY_TYPE_BDK, BDK),
                                   ("bench-zpk", hsm_pb2.KEY_TYPE_ZPK, ZPK)):
        await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label=label, key_type=key_type, algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY,
            components=[clear.hex()]))


async def _closed_loop(call: Callable[[int], Awaitable[int]], duration: float,
                       workers: int) -> float:
    """Runs ``workers`` loops of ``call(i)`` (which returns how many it completed)."""
    done = 0
    stop = time.perf_counter() + duration

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop:
            completed = await call(i)  # not `done += await ...`: that reads done before awaiting
            done += completed
            i += workers
    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - start)


async def grpc_rates(address: str, reqs: list[hsm_pb2.TranslatePinRequest], duration: float,
                     streams: int, window: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = hsm_pb2_grpc.HsmServiceStub(channel)
        await _keys(stub)

        async def unary(i: int) -> int:
            await stub.TranslatePin(reqs[i % len(reqs)], timeout=10)
            return 1
        unary_rate = await _closed_loop(unary, duration, 64)

        async def batch(i: int) -> int:
            commands = [hsm_pb2.HsmCommand(id=j, translate_pin=reqs[(i * window + j) % len(reqs)])
                        for j in range(window)]
            count = 0
            async for result in stub.Execute(iter(commands), timeout=30):
                if result.WhichOneof("result") != "translate_pin":
                    raise RuntimeError(f"command {result.id} failed: {result.error.message}")
                count += 1
            return count
        stream_rate = await _closed_loop(batch, duration, streams)
    return unary_rate, stream_rate


async def inprocess_rate(reqs: list[hsm_pb2.TranslatePinRequest], duration: float,
                         var: Path) -> float:
    """The servicer's TranslatePin called directly, with its own store and audit log."""
    from hsm_sim import audit, server
    from hsm_sim.service import HsmServicer
    os.environ["CARDSWITCH_HSM_AUDIT_FILE"] = str(var / "hsm" / "audit-inprocess.log")
    store, engine = server.open_store()
    servicer = HsmServicer(store, server.open_audit())
    try:
        async def one(i: int) -> int:
            await servicer.TranslatePin(reqs[i % len(reqs)], None)
            return 1
        return await _closed_loop(one, duration, 1)
    finally:
        assert isinstance(servicer.audit, audit.AuditWriter)
        servicer.audit.close()
        engine.dispose()


def algorithms_rate(reqs: list[hsm_pb2.TranslatePinRequest], duration: float) -> float:
    """DUKPT key, decrypt, decode, encode, encrypt: the arithmetic alone (IPEK cached)."""
    ipek = dukpt.tdes_ipek(BDK, reqs[0].ksn)
    done, stop = 0, time.perf_counter() + duration
    start = time.perf_counter()
    while time.perf_counter() < stop:
        r = reqs[done % len(reqs)]
        pin = pinblock.decode_iso0(tdes.decrypt_ecb(dukpt.tdes_pin_key(ipek, r.ksn), r.pin_block),
                                   PAN)
        tdes.encrypt_ecb(ZPK, pinblock.encode_iso0(pin, PAN))
        done += 1
    return done / (time.perf_counter() - start)


def cipher_setup_us(count: int = 20_000) -> tuple[float, float]:
    """Microseconds per one-block TDES encryption under a fresh key, and under a cached one.

    A DUKPT translation meets three keys it has never seen (two single-DES halves of the
    non-reversible step, then the PIN key); OpenSSL's per-key context setup is the floor.
    """
    keys = [os.urandom(16) for _ in range(count)]
    start = time.perf_counter()
    for key in keys:
        tdes.encrypt_ecb(key, bytes(8))
    fresh = (time.perf_counter() - start) / count * 1e6
    start = time.perf_counter()
    for _ in keys:
        tdes.encrypt_ecb(ZPK, bytes(8))
    return fresh, (time.perf_counter() - start) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./run bench hsm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--streams", type=int, default=4, help="concurrent Execute streams")
    p.add_argument("--window", type=int, default=500, help="commands per Execute stream call")
    p.add_argument("--requests", type=int, default=50_000, help="distinct KSNs to cycle through")
    p.add_argument("--output", default=str(ROOT / "bench" / "results" / "hsm.json"))
    args = p.parse_args(argv)
    console = Console()
    var = Path(tempfile.mkdtemp(prefix="cardswitch-bench-hsm-"))
    cluster = Cluster(var=var)
    cluster.cli("hsm", "init")
    # More KSNs than the HSM's DUKPT step cache holds: each request's last step is new, as on a
    # live host where every transaction brings a new counter.
    reqs = requests(args.requests)
    try:
        hsm = cluster.start_hsm()
        console.print("[bold]1-2/4[/] TranslatePin over gRPC: unary, then Execute streams")
        with cpu.measure({"hsm": hsm.popen.pid}) as use:
            unary, streamed = asyncio.run(grpc_rates(cluster.hsm, reqs, args.duration,
                                                     args.streams, args.window))
        cluster.stop_all()
        console.print("[bold]3/4[/] TranslatePin in process (servicer method)")
        os.environ["CARDSWITCH_VAR"] = str(var)
        dukpt.forget_derivations()  # making the requests above derived every key already
        inprocess = asyncio.run(inprocess_rate(reqs, args.duration, var))
        console.print("[bold]4/4[/] the algorithms alone")
        dukpt.forget_derivations()
        algorithms = algorithms_rate(reqs, args.duration)
        fresh_us, cached_us = cipher_setup_us()
    finally:
        cluster.stop_all()
    seconds = use.seconds
    result: dict[str, Any] = {
        "pin_translate_per_s_grpc": round(streamed),
        "pin_translate_per_s_grpc_unary": round(unary),
        "pin_translate_per_s_inprocess": round(inprocess),
        "pin_translate_per_s_algorithms": round(algorithms),
        "tdes_block_fresh_key_us": round(fresh_us, 2),
        "tdes_block_cached_key_us": round(cached_us, 2),
        "grpc_cpu_s": {name: round(s, 2) for name, s in seconds.items()},
        "hsm_cpu_ms_per_command_grpc": round(
            1000 * seconds.get("hsm", 0.0) / max(1.0, (unary + streamed) * args.duration), 3),
        "requests": args.requests, "streams": args.streams, "window": args.window,
        "duration_s": args.duration,
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="cardswitch HSM bench: TDES DUKPT -> ZPK PIN translation")
    table.add_column("path")
    table.add_column("per second")
    for label, key in (("gRPC Execute streams (batched)", "pin_translate_per_s_grpc"),
                       ("gRPC unary, 64 in flight", "pin_translate_per_s_grpc_unary"),
                       ("in process, servicer method", "pin_translate_per_s_inprocess"),
                       ("in process, algorithms only", "pin_translate_per_s_algorithms")):
        table.add_row(label, f"{result[key]:,}")
    console.print(table)
    console.print(f"One TDES block under a fresh key: {fresh_us:.1f} us, under a cached one: "
                  f"{cached_us:.1f} us. Three fresh keys per DUKPT translation cap one core at "
                  f"{1e6 / (3 * fresh_us):,.0f}/s before any other work.")
    console.print(f"HSM process CPU per command over gRPC: "
                  f"{result['hsm_cpu_ms_per_command_grpc']} ms (one Python process, one core at "
                  f"most: that, not the cryptography, bounds the gRPC figures); written to {out}")
    return 0
