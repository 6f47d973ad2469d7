"""``./run bench``: bare gRPC echo vs the full Authorize path, same load generator, one run.

Both servers are separate processes of the same flavour (grpc.aio, mTLS); the Authorize path is
switch + HSM + issuer over ISO 8583 with the journal on PostgreSQL. Steps:
  1. closed loop against the echo server            -> echo_rps
  2. closed loop against Authorize                  -> authorize_tps (the peak)
  3. open loop against Authorize at 80% of the peak -> p50_ms, p99_ms at that load
  4. open loop at 25% of the peak                   -> light_p50_ms, light_p99_ms (no queueing)
  5. the switch restarted without its risk step, closed loop again: authorize_tps is that
     peak, authorize_tps_with_risk the peak of step 2 (risk rules of bench/risk_rules.yaml:
     every rule type evaluated, none firing), and risk_cost_pct the difference
While steps 1 and 2 run, the CPU each process spends is read from /proc (bench/cpu.py) and
shown per request: on a box with few cores that, not waiting, bounds the rates.
Writes ``bench/results/latest.json`` and prints both tables. ``./run bench hsm`` measures the
HSM alone (bench/hsm.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import cpu
from cardswitch import bootstrap, certs
from cardswitch.config import ROOT
from cardswitch.launcher import Cluster, free_port
from terminals.load import LoadReport, run_load
from terminals.pinpad import provision
from terminals.pos import Pos, StanCounter, load_cards, open_channel

RESULTS = ROOT / "bench" / "results"
TERMINAL = ("BENCH001", "BENCHMERCHANT01")


def _pg_url(base: str) -> tuple[str, str]:
    import psycopg
    schema = f"cs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base}?options=-csearch_path%3D{schema}", schema


def _drop_schema(base: str, schema: str) -> None:
    import psycopg
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def _echo_load(port: int, certs_dir: Path, duration: float, concurrency: int,
                     console: Console, server_pid: int) -> tuple[LoadReport, cpu.CpuUse]:
    channel = open_channel(f"127.0.0.1:{port}", certs_dir=certs_dir)
    call = channel.unary_unary("/cardswitch.bench.Echo/Echo")
    payload = b"x" * 200  # about the size of an AuthorizeRequest

    async def send(_i: int) -> bool:
        await call(payload, timeout=10)
        return True
    try:
        await send(0)
        with cpu.measure({"echo server": server_pid}) as use:
            report = await run_load(send, 0, duration, concurrency=concurrency, mode="closed",
                                    console=console)
        return report, use
    finally:
        await channel.close()


async def _authorize_loads(cluster: Cluster, duration: float, concurrency: int,
                           console: Console
                           ) -> tuple[LoadReport, LoadReport, LoadReport, cpu.CpuUse]:
    term_dir = cluster.var / "terminals"
    channel = open_channel(cluster.switch, certs_dir=cluster.var / "certs")
    pinpad = await provision(channel, TERMINAL[0], directory=term_dir)
    pos = Pos(channel, *TERMINAL, pinpad=pinpad, owns_channel=True,
              stan=StanCounter.for_terminal(TERMINAL[0], term_dir))
    cards = list(load_cards(cluster.var / "issuer" / "cards.json").values())
    async with pos:
        await run_load(pos, 50, 2, cards, concurrency=16, progress=False)  # warm-up
        pids = {proc.name: proc.popen.pid for proc in cluster.procs}
        with cpu.measure(pids, [cpu.POSTGRES]) as use:
            peak = await run_load(pos, 0, duration, cards, concurrency=concurrency,
                                  mode="closed", console=console)
        target = max(1.0, 0.8 * peak.achieved_tps)
        at80 = await run_load(pos, target, duration, cards, concurrency=concurrency * 4,
                              mode="open", console=console)
        light = await run_load(pos, max(1.0, 0.25 * peak.achieved_tps), duration, cards,
                               concurrency=concurrency * 4, mode="open", console=console)
    return peak, at80, light, use


async def _set_bench_rules(cluster: Cluster) -> None:
    from cardswitch.v1 import admin_pb2, admin_pb2_grpc
    async with bootstrap.switch_channel(cluster) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.SetRiskRules(admin_pb2.SetRiskRulesRequest(
            yaml=(ROOT / "bench" / "risk_rules.yaml").read_text()), timeout=10)
    await asyncio.sleep(6)  # every switch worker reloads its rules


async def _peak_without_risk(cluster: Cluster, duration: float, concurrency: int,
                             console: Console) -> LoadReport:
    """Restarts the switch with its risk step off and measures the closed-loop peak again."""
    cluster.stop("switch")
    os.environ["CARDSWITCH_RISK"] = "off"
    try:
        cluster.start_switch()
    finally:
        os.environ.pop("CARDSWITCH_RISK")
    term_dir = cluster.var / "terminals"
    channel = open_channel(cluster.switch, certs_dir=cluster.var / "certs")
    from terminals.pinpad import PinPad
    pos = Pos(channel, *TERMINAL, pinpad=PinPad.load(TERMINAL[0], term_dir), owns_channel=True,
              stan=StanCounter.for_terminal(TERMINAL[0], term_dir))
    cards = list(load_cards(cluster.var / "issuer" / "cards.json").values())
    async with pos:
        await run_load(pos, 50, 2, cards, concurrency=16, progress=False)  # warm-up
        return await run_load(pos, 0, duration, cards, concurrency=concurrency, mode="closed",
                              console=console)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hsm"]:
        from bench import hsm
        return hsm.main(argv[1:])
    if argv[:1] == ["emv"]:
        from bench import emv
        return emv.main(argv[1:])
    p = argparse.ArgumentParser(prog="./run bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop workers")
    p.add_argument("--workers", type=int, default=1, help="switch processes (SO_REUSEPORT)")
    p.add_argument("--database-url", default=os.environ.get(
        "CARDSWITCH_BENCH_PG", "postgresql+psycopg://127.0.0.1:5432/test"))
    p.add_argument("--output", default=str(RESULTS / "latest.json"))
    args = p.parse_args(argv)
    console = Console()
    var = Path(tempfile.mkdtemp(prefix="cardswitch-bench-"))
    url, schema = _pg_url(args.database_url)
    cluster = Cluster(var=var, database_url=url, switch_workers=args.workers)
    certs_dir = certs.init(var / "certs")
    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "bench.echo", "--port", str(echo_port),
                             "--certs", str(certs_dir)], stdout=subprocess.PIPE, text=True,
                            env=cluster.env())
    try:
        assert echo.stdout is not None
        echo.stdout.readline()
        console.print(f"[bold]1/3[/] bare gRPC echo, closed loop, {args.concurrency} workers")
        echo_report, echo_cpu = asyncio.run(_echo_load(echo_port, certs_dir, args.duration,
                                                       args.concurrency, console, echo.pid))
        echo.terminate()
        echo.wait(10)
        asyncio.run(bootstrap.start_all(cluster, [TERMINAL], issuer_timeout_ms=5000,
                                        seed_args=("--cards", str(ROOT / "bench" / "cards.yaml"))))
        console.print(f"[bold]2/3[/] Authorize closed loop then [bold]3/3[/] open loop at 80% "
                      f"of the peak (switch workers={args.workers}, journal on PostgreSQL)")
        asyncio.run(_set_bench_rules(cluster))
        peak, at80, light, auth_cpu = asyncio.run(_authorize_loads(
            cluster, args.duration, args.concurrency, console))
        console.print("[bold]5[/] the switch again without its risk step, closed loop")
        bare = asyncio.run(_peak_without_risk(cluster, args.duration, args.concurrency,
                                              console))
    finally:
        if echo.poll() is None:
            echo.kill()
        cluster.stop_all()
        _drop_schema(args.database_url, schema)
    result: dict[str, Any] = {
        "authorize_tps": round(bare.achieved_tps, 1),
        "authorize_tps_with_risk": round(peak.achieved_tps, 1),
        "risk_cost_pct": round(100 * (1 - peak.achieved_tps / bare.achieved_tps), 1),
        "echo_rps": round(echo_report.achieved_tps, 1),
        "ratio": round(bare.achieved_tps / echo_report.achieved_tps, 3),
        "ratio_with_risk": round(peak.achieved_tps / echo_report.achieved_tps, 3),
        "p50_ms": round(at80.p50_ms, 2),
        "p99_ms": round(at80.p99_ms, 2),
        "load_at_80pct_tps": round(at80.achieved_tps, 1),
        "light_load_tps": round(light.achieved_tps, 1),
        "light_p50_ms": round(light.p50_ms, 2), "light_p99_ms": round(light.p99_ms, 2),
        "peak_p50_ms": round(peak.p50_ms, 2), "peak_p99_ms": round(peak.p99_ms, 2),
        "echo_p50_ms": round(echo_report.p50_ms, 2), "echo_p99_ms": round(echo_report.p99_ms, 2),
        "cpu_ms_per_request": {
            "echo": echo_cpu.per_request_ms(echo_report.answered),
            "authorize": auth_cpu.per_request_ms(peak.answered)},
        "cpu_ceiling_rps": {
            "echo": round(cpu.ceiling_rps(echo_cpu.total_per_request_ms(echo_report.answered))),
            "authorize": round(cpu.ceiling_rps(auth_cpu.total_per_request_ms(peak.answered)))},
        "authorize_errors": {**peak.errors, **at80.errors, **light.errors},
        "authorize_declined": peak.declined + at80.declined + light.declined,
        "switch_workers": args.workers, "concurrency": args.concurrency,
        "duration_s": args.duration, "cpus": os.cpu_count(),
        "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "reports": {"echo": asdict(echo_report), "authorize_peak_no_risk": asdict(bare),
                    "authorize_peak": asdict(peak),
                    "authorize_80pct": asdict(at80), "authorize_25pct": asdict(light)},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="cardswitch bench (same load generator, same box, one run)")
    for col in ("measure", "rate /s", "p50 ms", "p99 ms"):
        table.add_column(col)
    table.add_row("bare gRPC echo (closed loop)", f"{result['echo_rps']:.0f}",
                  f"{result['echo_p50_ms']}", f"{result['echo_p99_ms']}")
    table.add_row("Authorize peak, no risk step (closed loop)",
                  f"{result['authorize_tps']:.0f}", f"{bare.p50_ms:.2f}", f"{bare.p99_ms:.2f}")
    table.add_row("Authorize peak with risk (closed loop)",
                  f"{result['authorize_tps_with_risk']:.0f}",
                  f"{result['peak_p50_ms']}", f"{result['peak_p99_ms']}")
    table.add_row("Authorize at 80% of peak (open loop)", f"{result['load_at_80pct_tps']:.0f}",
                  f"{result['p50_ms']}", f"{result['p99_ms']}")
    table.add_row("Authorize at 25% of peak (open loop)", f"{result['light_load_tps']:.0f}",
                  f"{result['light_p50_ms']}", f"{result['light_p99_ms']}")
    console.print(table)
    console.print(_cpu_table(result))
    console.print(f"ratio authorize_tps / echo_rps = [bold]{result['ratio']}[/]; risk step "
                  f"costs [bold]{result['risk_cost_pct']}%[/] of throughput; written to {out}")
    return 0


def _cpu_table(result: dict[str, Any]) -> Table:
    """Where each request's CPU goes: what bounds the rates on a box with few cores."""
    per = result["cpu_ms_per_request"]
    table = Table(title=f"CPU ms per request ({result['cpus']} cores; ceiling = cores / total)")
    table.add_column("process")
    table.add_column("echo")
    table.add_column("Authorize")
    names = list(dict.fromkeys([*per["authorize"], *per["echo"]]))
    for name in names:
        table.add_row(name, _ms(per["echo"].get(name)), _ms(per["authorize"].get(name)))
    table.add_row("[bold]total", _ms(sum(per["echo"].values())),
                  _ms(sum(per["authorize"].values())))
    ceiling = result["cpu_ceiling_rps"]
    table.add_row("[bold]ceiling /s", str(ceiling["echo"]), str(ceiling["authorize"]))
    return table


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
