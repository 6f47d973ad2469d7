"""``./run bench emv``: APDU round trips and whole contact transactions through real pcscd.

A Visa DDA card (CVN 10) personalised from bench issuer keys sits in a vpcd reader; the
terminal talks to it through pyscard and pcscd exactly as in the demo.

  1. APDU round trip: SELECT of the application, terminal -> pcscd -> vpcd -> card and back
     -> apdu_rtt_p50_ms / p99
  2. a contact transaction with the card already inserted, SELECT PSE to the second GENERATE
     AC: ODA (DDA), offline PIN, ARQC, an issuer answering in process
     (:class:`terminals.emv.local.LocalIssuer`: ARQC checked, ARPC made with the algorithms, no
     network), EXTERNAL AUTHENTICATE, TC -> contact_txn_p50_ms / p99

Writes ``bench/results/emv.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cardswitch.config import ROOT
from terminals import pcsc
from terminals.cards import EmvCard
from terminals.cards.vicc import VirtualCardSocket
from terminals.emv import local, pki
from terminals.emv.config import TerminalConfig, ca_keys_from
from terminals.emv.kernel import Kernel

SELECT_VISA = bytes.fromhex("00A4040007A000000003101000")


class Cardholder:
    def offline_pin(self) -> str:
        return local.PIN

    def online_pin(self, pan: str) -> None:
        return None


def bench_card(directory: Path) -> tuple[EmvCard, TerminalConfig]:
    """A Visa DDA card from the development issuer keys, and a terminal that trusts its CA."""
    test_pki = pki.TestPki(directory / "pki")
    profile, secrets = local.personalise(test_pki, oda="dda")
    card = EmvCard(profile, secrets, directory / "bench.card.state.json", "contact")
    config = dataclasses.replace(TerminalConfig(), ca_keys=ca_keys_from(test_pki),
                                 unattended=True)
    return card, config


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./run bench emv", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apdus", type=int, default=2000, help="SELECT round trips to time")
    p.add_argument("--transactions", type=int, default=100, help="contact transactions")
    p.add_argument("--output", default=str(ROOT / "bench" / "results" / "emv.json"))
    args = p.parse_args(argv)
    console = Console()
    pcsc.ensure_daemon()
    reader = pcsc.reader("contact", slot=1)
    directory = Path(tempfile.mkdtemp(prefix="cardswitch-bench-emv-"))
    card, config = bench_card(directory)
    rtts: list[float] = []
    txns: list[float] = []
    apdus_per_txn = 0
    pcsc.wait_for_card(reader.name, present=False)
    with VirtualCardSocket(card, reader.port) as socket:
        pcsc.wait_for_card(reader.name, present=True)
        with pcsc.PcscLink(reader.name) as link:
            console.print(f"[bold]1/2[/] {args.apdus} SELECT round trips on {reader.name!r}")
            for _ in range(args.apdus):
                start = time.perf_counter()
                link.transmit(SELECT_VISA)
                rtts.append((time.perf_counter() - start) * 1000)
            console.print(f"[bold]2/2[/] {args.transactions} contact transactions, "
                          "SELECT to second GENERATE AC")
            issuer = local.LocalIssuer()
            for _ in range(args.transactions):
                before = link.apdus
                start = time.perf_counter()
                result = Kernel(config, link, Cardholder(), issuer).run(1000)
                txns.append((time.perf_counter() - start) * 1000)
                apdus_per_txn = link.apdus - before
                if result.outcome != "approved" or not all(issuer.arqc_valid):
                    raise RuntimeError(f"bench transaction {result.outcome}: {result.reason}")
        card_side_ms = 1000 * statistics.median(socket.apdu_seconds) if socket.apdu_seconds \
            else 0.0
    out: dict[str, Any] = {
        "apdu_rtt_p50_ms": round(_percentile(rtts, 0.5), 3),
        "apdu_rtt_p99_ms": round(_percentile(rtts, 0.99), 3),
        "apdu_card_side_p50_ms": round(card_side_ms, 3),
        "contact_txn_p50_ms": round(_percentile(txns, 0.5), 2),
        "contact_txn_p99_ms": round(_percentile(txns, 0.99), 2),
        "apdus_per_contact_txn": apdus_per_txn,
        "apdus": args.apdus, "transactions": args.transactions,
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    table = Table(title="cardswitch EMV bench: through pcscd and vpcd")
    for column in ("measure", "p50 ms", "p99 ms", "target p50"):
        table.add_column(column)
    table.add_row("APDU round trip", f"{out['apdu_rtt_p50_ms']}", f"{out['apdu_rtt_p99_ms']}",
                  "<= 0.3")
    table.add_row(f"contact transaction ({apdus_per_txn} APDUs, DDA, offline PIN)",
                  f"{out['contact_txn_p50_ms']}", f"{out['contact_txn_p99_ms']}", "<= 50")
    console.print(table)
    console.print(f"card side per APDU (p50): {card_side_ms:.3f} ms; written to {path}")
    return 0
