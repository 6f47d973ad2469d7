"""What changes on a virtual EMV card between transactions, kept in ``<card>.state.json``.

A real card keeps its counters in EEPROM and updates them before it answers; so does this one:
:meth:`CardState.save` replaces the file atomically and fsyncs it, and the applet calls it before
the response to any command that changed the state leaves the card (the ATC is counted and
stored before a cryptogram goes out). A card pulled out mid-transaction therefore never reuses
an ATC, and the flags below tell the next transaction what happened to the last one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from terminals.cards.profile import CardProfile
from terminals.pinpad import write_private_file

MAX_ATC = 0xFFFF


def state_path(card_path: Path) -> Path:
    """Where a card file's state lives: ``visa.card.json`` keeps ``visa.card.state.json``."""
    return card_path.with_suffix(".state.json")


@dataclass
class CardState:
    """The card's persistent counters and flags (EMV Book 3 and the VIS CVR's "last
    transaction" indicators)."""

    path: Path = field(repr=False, compare=False)
    #: Application transaction counter 9F36, counted once per transaction.
    atc: int = 0
    #: PIN try counter 9F17: offline PIN tries left.
    pin_try_counter: int = 3
    #: Last online ATC register 9F13: the ATC of the last transaction the issuer answered.
    last_online_atc: int = 0
    #: Application blocked (by an issuer script): SELECT answers 6283, cryptograms are AACs.
    app_blocked: bool = False
    #: The ATC of the last ARQC the card produced (0: none yet).
    last_arqc_atc: int = 0
    #: An ARQC left the card and no second GENERATE AC followed (card pulled, link lost).
    online_pending: bool = False
    #: Issuer authentication of the last online transaction failed (wrong ARPC).
    issuer_auth_failed: bool = False
    #: Issuer script commands received in the last transaction (0 to 15).
    script_count: int = 0
    #: One of those script commands failed (wrong MAC or could not be done).
    script_failed: bool = False

    @classmethod
    def load(cls, path: Path, profile: CardProfile) -> CardState:
        """The state stored at ``path``, or a fresh card's (ATC 0, PIN tries at the limit)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path, pin_try_counter=profile.pin_try_limit)
        try:
            data: dict[str, Any] = json.loads(raw)
            known = {f.name for f in fields(cls)} - {"path"}
            state = cls(path=path, **{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"card state {path}: not a card state file ({exc})") from None
        if not 0 <= state.atc <= MAX_ATC:
            raise ValueError(f"card state {path}: atc must be 0 to {MAX_ATC}, got {state.atc}")
        if not 0 <= state.pin_try_counter <= profile.pin_try_limit:
            raise ValueError(f"card state {path}: pin_try_counter must be 0 to "
                             f"{profile.pin_try_limit}, got {state.pin_try_counter}")
        return state

    def save(self) -> None:
        """Replace the state file atomically and flush it to disk before returning."""
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        write_private_file(self.path, (json.dumps(data, indent=2) + "\n").encode())
