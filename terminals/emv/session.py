"""One card session as the kernel's steps share it: the link, the data dictionary, TVR, TSI, log.

Every step of the kernel (selection, reading, ODA, CVM, risk management, completion) reads and
writes a :class:`Session` and nothing else, and stops the transaction by raising :class:`Abort`
with the reason the cardholder or merchant is told.

The data dictionary is two maps of tag to value: what the card gave (FCI, GPO, records, GENERATE
AC answers) and what the terminal knows (its configuration, the amount, date, unpredictable
number, TVR, TSI, CVM results). A DOL is answered from both, the terminal's data winning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cardswitch.cards import mask_pan
from cardswitch.tlv import build_dol, flatten
from terminals.emv import apdu
from terminals.emv.apdu import CardLink, Response
from terminals.emv.config import ApplicationConfig, TerminalConfig
from terminals.emv.tags import FORMATS
from terminals.emv.tvr import Bits


class Abort(Exception):
    """Ends the transaction without a card decision; ``reason`` is for the receipt and the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TryAnotherApplication(Exception):
    """The card refused GET PROCESSING OPTIONS for this application (SW 6985, Book 3 10.1)."""


@dataclass
class Session:
    """The state of one transaction with one card."""

    config: TerminalConfig
    link: CardLink
    steps: list[tuple[str, str]] = field(default_factory=list)
    tvr: Bits = field(default_factory=Bits.tvr)
    tsi: Bits = field(default_factory=Bits.tsi)
    card: dict[int, bytes] = field(default_factory=dict)
    terminal: dict[int, bytes] = field(default_factory=dict)
    application: ApplicationConfig | None = None
    #: The records the AFL marks for ODA, as Book 3 10.3 concatenates them.
    static_data: bytearray = field(default_factory=bytearray)
    #: A record marked for ODA was not a 70 template (SFI 11-30): ODA must fail (Book 3 10.3).
    static_data_invalid: bool = False
    #: Terminal data as the card received it in a DOL for a cryptogram, for DE 55.
    sent: dict[int, bytes] = field(default_factory=dict)
    #: Tags the GPO answer and the records gave, each allowed once.
    read_tags: set[int] = field(default_factory=set)

    def log(self, step: str, detail: str = "") -> None:
        self.steps.append((step, detail))

    def send(self, step: str, command: bytes) -> Response:
        """Transmits ``command`` and logs ``step`` with the status word; CardRemoved propagates."""
        answer = self.link.transmit(command)
        try:
            response = Response.parse(answer)
        except ValueError as exc:
            raise Abort(f"card error at {step}: {exc}") from None
        self.log(step, response.sw_hex())
        return response

    def values(self) -> dict[int, bytes]:
        """The whole data dictionary, the terminal's objects over the card's."""
        return {**self.card, **self.terminal, 0x95: self.tvr.value, 0x9B: self.tsi.value}

    def dol_data(self, dol: bytes) -> bytes:
        """The terminal's answer to a data object list (PDOL, CDOL1/2, DDOL)."""
        try:
            return build_dol(dol, self.values(), FORMATS)
        except ValueError as exc:
            raise Abort(f"card data error: {exc}") from None

    def add_card_data(self, data: bytes, source: str, *, unique: bool = False) -> None:
        """Adds every primitive object of BER-TLV ``data``; ``unique`` refuses a tag seen before
        (redundant data in records or GPO terminates the transaction, Book 3 10.2)."""
        objects = parse_card_data(data, source)
        if unique:
            repeated = sorted(f"{tag:X}" for tag in objects if tag in self.read_tags)
            if repeated:
                raise Abort(f"card data error: {source} repeats tag {', '.join(repeated)}")
            self.read_tags.update(objects)
        self.card.update(objects)

    def require(self, *tags: int) -> None:
        """Aborts naming the mandatory card data objects that are missing (Book 3 7.2)."""
        missing = [f"{tag:X}" for tag in tags if tag not in self.card]
        if missing:
            self.tvr.set("ICC data missing")
            raise Abort(f"card data missing: {', '.join(missing)}")

    @property
    def pan(self) -> str:
        """The PAN from 5A (F padding dropped), or from track 2 57; empty when neither."""
        if 0x5A in self.card:
            return self.card[0x5A].hex().upper().rstrip("F")
        if 0x57 in self.card:
            return self.card[0x57].hex().upper().split("D")[0]
        return ""

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan) if self.pan else ""

    @property
    def aip(self) -> bytes:
        return self.card.get(0x82, bytes(2))

    @property
    def aid(self) -> bytes:
        return self.card.get(0x84, self.card.get(0x4F, b""))


def parse_card_data(data: bytes, source: str) -> Mapping[int, bytes]:
    """Every primitive object in ``data``; malformed data aborts naming where it came from."""
    try:
        return flatten(data)
    except ValueError as exc:
        raise Abort(f"card data error in {source}: {exc}") from None


def require_ok(response: Response, what: str) -> None:
    """Aborts unless the card answered 9000."""
    if response.sw != apdu.SW_OK:
        raise Abort(f"card refused {what}: SW {response.sw_hex()}")
