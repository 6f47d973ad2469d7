"""Command APDUs the terminal kernel sends, the link to the card, and status words (EMV Book 1 11,
Book 3 6).

A command APDU is ``CLA INS P1 P2 [Lc data] [Le]``; the answer is ``data || SW1 SW2``. The link
(:class:`CardLink`) is the terminal's transport layer: it follows the T=0 procedure bytes itself
(61xx: GET RESPONSE, 6Cxx: resend with Le = xx, as :class:`terminals.pcsc.PcscLink` does), so
every answer the kernel sees is final.

>>> select(bytes.fromhex("A0000000031010")).hex().upper()
'00A4040007A000000003101000'
>>> read_record(sfi=2, record=1).hex().upper()
'00B2011400'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cardswitch.tlv import encode

SW_OK = 0x9000
#: SELECT answered for an application the card has blocked (Book 1 12.3.2).
SW_SELECTED_FILE_INVALIDATED = 0x6283
#: SELECT of the PSE: the card is blocked or does not do SELECT (Book 1 12.3.2).
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
#: GET PROCESSING OPTIONS refused for this transaction: choose another application (Book 3 10.1).
SW_CONDITIONS_NOT_SATISFIED = 0x6985
#: VERIFY: the PIN is blocked (6983) or the reference data unusable (6984) (Book 3 6.5.12).
SW_AUTH_METHOD_BLOCKED = 0x6983
SW_REFERENCE_DATA_INVALIDATED = 0x6984

#: VERIFY P2: plaintext PIN checked by the ICC (Book 3 6.5.12).
VERIFY_PLAINTEXT_PIN = 0x80
#: GENERATE AC P1 bit 5: ask for a CDA signature (Book 3 6.5.5).
GENERATE_AC_CDA = 0x10


class CardRemoved(Exception):
    """The card left the reader (or the field) while the terminal talked to it."""


class CardLink(Protocol):
    """The terminal's connection to one card."""

    def transmit(self, apdu: bytes) -> bytes:
        """Sends one command APDU, returns the final ``data || SW1 SW2``.

        Raises :class:`CardRemoved` when the card is gone.
        """
        ...


@dataclass(frozen=True)
class Response:
    """One answer from the card, split into data and status word."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise ValueError(f"card answer: must end in SW1 SW2, got {len(raw)} bytes")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    @property
    def warning(self) -> bool:
        """SW 62xx or 63xx: processed with a warning (Book 3 6.3.5)."""
        return self.sw >> 8 in (0x62, 0x63)

    def sw_hex(self) -> str:
        return f"{self.sw:04X}"


def _command(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: bool = True) -> bytes:
    if len(data) > 255:
        raise ValueError(f"command data: at most 255 bytes in a short APDU, got {len(data)}")
    header = bytes([cla, ins, p1, p2])
    body = bytes([len(data)]) + data if data else b""
    return header + body + (b"\x00" if le else b"")


def select(name: bytes, *, next_occurrence: bool = False) -> bytes:
    """SELECT by DF name (AID or PSE name), first or next occurrence (Book 1 11.3)."""
    return _command(0x00, 0xA4, 0x04, 0x02 if next_occurrence else 0x00, name)


def read_record(sfi: int, record: int) -> bytes:
    """READ RECORD ``record`` of short file ``sfi`` (Book 1 11.2)."""
    if not 1 <= sfi <= 30:
        raise ValueError(f"sfi: must be 1 to 30, got {sfi}")
    if not 1 <= record <= 255:
        raise ValueError(f"record: must be 1 to 255, got {record}")
    return _command(0x00, 0xB2, record, (sfi << 3) | 0x04)


def get_processing_options(pdol_data: bytes) -> bytes:
    """GET PROCESSING OPTIONS with the PDOL data in template 83 (Book 3 6.5.8).

    >>> get_processing_options(b"").hex().upper()
    '80A8000002830000'
    """
    return _command(0x80, 0xA8, 0x00, 0x00, encode(0x83, pdol_data))


def generate_ac(cryptogram_type: int, cdol_data: bytes, *, cda: bool = False) -> bytes:
    """GENERATE AC asking for an AAC, TC or ARQC (``cardswitch.emv`` constants) (Book 3 6.5.5)."""
    return _command(0x80, 0xAE, cryptogram_type | (GENERATE_AC_CDA if cda else 0), 0x00,
                    cdol_data)


def internal_authenticate(ddol_data: bytes) -> bytes:
    """INTERNAL AUTHENTICATE for DDA with the DDOL data (Book 3 6.5.9)."""
    return _command(0x00, 0x88, 0x00, 0x00, ddol_data)


def external_authenticate(issuer_authentication_data: bytes) -> bytes:
    """EXTERNAL AUTHENTICATE with the issuer's tag 91 (Book 3 6.5.4); no Le."""
    return _command(0x00, 0x82, 0x00, 0x00, issuer_authentication_data, le=False)


def verify_plaintext_pin(pin_block: bytes) -> bytes:
    """VERIFY a plaintext offline PIN block (Book 3 6.5.12); no Le."""
    return _command(0x00, 0x20, 0x00, VERIFY_PLAINTEXT_PIN, pin_block, le=False)


def get_data(tag: int) -> bytes:
    """GET DATA of one card data object: ATC 9F36, last online ATC 9F13, PIN try counter 9F17."""
    if not 0 <= tag <= 0xFFFF:
        raise ValueError(f"tag: GET DATA takes a tag of at most two bytes, got {tag:#x}")
    return _command(0x80, 0xCA, tag >> 8, tag & 0xFF)


def plaintext_pin_block(pin: str) -> bytes:
    """The ISO 9564 format 2 block VERIFY carries: ``2N`` then the digits, F-filled to 8 bytes.

    >>> plaintext_pin_block("1234").hex().upper()
    '241234FFFFFFFFFF'
    """
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError(f"pin: must be 4 to 12 digits, got {len(pin)} characters")
    return bytes.fromhex(f"2{len(pin):X}{pin}".ljust(16, "F"))
