"""What the kernel sends the issuer and gets back: the online host interface and DE 55.

The authorisation request carries the card's identity (PAN, PAN sequence number, expiry, track 2
equivalent data) and the chip data (ISO 8583 DE 55): the ARQC and everything the issuer needs
to rebuild the data it covers (:func:`cardswitch.emv.CryptogramVersion.ac_data`). The terminal
values in DE 55 are exactly the ones the card received in its DOL, so the issuer's MAC matches.

>>> track2_equivalent(bytes.fromhex("4761739001010010D29122011234567800000F"))
'4761739001010010=29122011234567800000'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cardswitch.cards import mask_pan
from cardswitch.tlv import encode_all

#: DE 55 for an ARQC, in this order, each when known (EMV and scheme minimum data sets).
DE55_TAGS: tuple[int, ...] = (
    0x82, 0x9F36, 0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x9F1A,
    0x9F03, 0x9F33, 0x9F34, 0x9F35, 0x84, 0x5F34, 0x9F09, 0x9F1E, 0x9F41,
)
#: Added for a contactless transaction: the TTQ and the card transaction qualifiers.
DE55_CONTACTLESS_TAGS: tuple[int, ...] = (0x9F66, 0x9F6C, 0x9F6E)

EntryMode = Literal["chip", "contactless"]


@dataclass
class OnlineRequest:
    """An authorisation request built from the card and the terminal.

    ``psn`` is the 2-digit PAN sequence number (5F34), empty when the card has none (the issuer
    then derives keys with "00"); ``track2`` is the track 2 equivalent data 57 as ``PAN=YYMMSSS``
    with F padding dropped, empty when the card has none; ``icc_data`` is DE 55 as BER-TLV;
    ``pin`` the online PIN block from :class:`terminals.emv.cvm.PinEntry` or None.
    """

    pan: str
    psn: str
    expiry_yymm: str
    track2: str
    icc_data: bytes
    amount_minor: int
    currency_numeric: str
    entry_mode: EntryMode
    pin: Any | None = None

    def __repr__(self) -> str:
        return (f"OnlineRequest(pan={mask_pan(self.pan)!r}, psn={self.psn!r}, "
                f"amount_minor={self.amount_minor}, currency_numeric={self.currency_numeric!r}, "
                f"entry_mode={self.entry_mode!r}, pin={'yes' if self.pin is not None else 'no'})")


@dataclass
class OnlineResponse:
    """The issuer's answer. ``issuer_emv_data`` is its DE 55: issuer authentication data 91,
    scripts 71 (before the second GENERATE AC) and 72 (after)."""

    approved: bool
    response_code: str
    issuer_emv_data: bytes = b""
    transaction_id: str = ""
    unable_to_go_online: bool = False


class OnlineHost(Protocol):
    """The acquirer link the kernel authorises through."""

    def authorize(self, request: OnlineRequest) -> OnlineResponse:
        """Sends the authorisation; returns ``unable_to_go_online=True`` when there is no answer."""
        ...

    def reverse(self, request: OnlineRequest, response: OnlineResponse, reason: str) -> None:
        """Reverses an approved authorisation: the card declined after the issuer approved, or
        was removed after approval."""
        ...


def icc_data(values: Mapping[int, bytes], tags: tuple[int, ...] = DE55_TAGS) -> bytes:
    """DE 55: each of ``tags`` present in ``values``, as BER-TLV, in order."""
    return encode_all((tag, values[tag]) for tag in tags if tag in values)


def track2_equivalent(value: bytes) -> str:
    """Tag 57 as text: separator D as ``=``, trailing F padding dropped."""
    return value.hex().upper().rstrip("F").replace("D", "=", 1)


def expiry_yymm(values: Mapping[int, bytes]) -> str:
    """YYMM from the expiry date 5F24, else from track 2 equivalent data 57; empty if neither."""
    if 0x5F24 in values:
        return values[0x5F24].hex()[:4]
    track2 = track2_equivalent(values.get(0x57, b""))
    return track2.split("=")[1][:4] if "=" in track2 else ""


def pan_sequence_number(values: Mapping[int, bytes]) -> str:
    """5F34 as two digits, or empty."""
    value = values.get(0x5F34)
    return value.hex()[-2:] if value else ""
