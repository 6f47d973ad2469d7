"""Looks for clear PANs, PIN blocks and keys in files and PostgreSQL tables."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cardswitch.config import ROOT
from hsm_sim.algorithms import pinblock
from terminals.pinpad import PinPad

Needle = tuple[str, bytes]


def _forms(label: str, raw: bytes) -> list[Needle]:
    return [(label, raw), (label + " (hex)", raw.hex().encode()),
            (label + " (HEX)", raw.hex().upper().encode())]


def needles(var: Path) -> list[Needle]:
    """What must never appear: every test card PAN, each card's clear PIN block, the LMK, the
    terminal's IPEK."""
    cards = yaml.safe_load((ROOT / "cardswitch" / "testcards.yaml").read_text())["cards"]
    out: list[Needle] = []
    for card in cards:
        out.append((f"PAN of {card['account_id']}", card["pan"].encode()))
        clear_block = pinblock.encode_iso0(card["pin"], card["pan"])
        out.extend(_forms(f"clear PIN block of {card['account_id']}", clear_block))
    lmk = var / "hsm" / "lmk.key"
    if lmk.exists():
        out.extend(_forms("LMK", lmk.read_bytes()))
    for state in (var / "terminals").glob("*.pinpad"):
        pad = PinPad.load(state.stem, var / "terminals")
        out.extend(_forms(f"IPEK of {state.stem}", pad._ipek))
    return out


def _pin_pattern() -> re.Pattern[bytes]:
    """A clear PIN written next to the word PIN (e.g. ``pin=1234``, ``PIN: 1234``)."""
    cards = yaml.safe_load((ROOT / "cardswitch" / "testcards.yaml").read_text())["cards"]
    pins = b"|".join(re.escape(c["pin"].encode()) for c in cards)
    return re.compile(rb"pin\W{0,3}(?:" + pins + rb")(?![0-9])", re.IGNORECASE)


def scan_files(files: list[Path], needles: list[Needle]) -> list[str]:
    found = []
    pin_near_word = _pin_pattern()
    for path in files:
        data = path.read_bytes()
        for label, needle in needles:
            if needle in data:
                found.append(f"{label} in {path.name}")
        if path.suffix in (".log", ".out") and pin_near_word.search(data):
            found.append(f"a clear PIN next to the word PIN in {path.name}")
    return found


def scan_postgres(url: str, needles: list[Needle]) -> list[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    schema = u.query["options"].split("=", 1)[1]
    found = []
    with psycopg.connect(f"host={u.host} port={u.port} dbname={u.database}") as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))]
        assert tables, f"no tables in schema {schema}"
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            for row in rows:
                blob = b"|".join(bytes(v) if isinstance(v, bytes | memoryview)
                                 else str(v).encode() for v in row)
                for label, needle in needles:
                    if needle in blob:
                        found.append(f"{label} in PostgreSQL table {table}")
    return found
