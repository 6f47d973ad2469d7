"""Scheme rules that both ends of a chip transaction share: AIDs, cryptogram versions, AC data.

A card computes its application cryptogram over data the scheme fixes; the issuer must rebuild
the same bytes from the DE 55 it receives to verify it. Both sides take the rules from here,
and nothing else: the virtual cards (``terminals/cards``), the issuer simulator and the tests.

The terminal data each cryptogram covers, in order (EMV Book 2 8.1.1, the schemes' minimum):
amount authorised 9F02, amount other 9F03, terminal country 9F1A, TVR 95, transaction currency
5F2A, transaction date 9A, transaction type 9C, unpredictable number 9F37; then the card's own
AIP 82 and ATC 9F36, then what the cryptogram version adds from the issuer application data
9F10 (the CVR, or all of it).

Issuer application data layouts (9F10), as these cards write them:

- Visa CVN 10 and 18, UnionPay CVN 01: ``06 DKI CVN 03 CVR1 CVR2 CVR3`` (7 bytes; the "03" is
  the CVR's own length byte). CVN 10 and 01 MAC the 4 bytes ``03 CVR1 CVR2 CVR3``; CVN 18
  MACs the whole 9F10.
- Mastercard CVN 16 and 17 (M/Chip): ``DKI CVN CVR(6) DAC(2) counters(8)`` (18 bytes); the AC
  covers the 6-byte CVR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Application identifiers the cards carry and the kernel accepts (RID || PIX).
AIDS: dict[str, bytes] = {
    "visa": bytes.fromhex("A0000000031010"),
    "mastercard": bytes.fromhex("A0000000041010"),
    "unionpay": bytes.fromhex("A000000333010101"),
}
#: The payment system environment names (SELECT by name): contact PSE, contactless PPSE.
PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"

#: Terminal data every cryptogram covers, in this order (tag, length).
TERMINAL_AC_DATA: tuple[tuple[int, int], ...] = (
    (0x9F02, 6), (0x9F03, 6), (0x9F1A, 2), (0x95, 5), (0x5F2A, 2), (0x9A, 3), (0x9C, 1),
    (0x9F37, 4),
)

#: Cryptogram types in GENERATE AC P1 (bits 8-7) and in the CID 9F27.
AAC, TC, ARQC = 0x00, 0x40, 0x80


@dataclass(frozen=True)
class CryptogramVersion:
    """How one cryptogram version derives its key, pads, and answers (ARPC)."""

    brand: str
    cvn: int
    #: The HSM's name for the algorithm (``hsm.proto`` CryptogramVersion without its prefix).
    hsm_version: str
    #: True: EMV common session key from the ATC; False: the ICC master key itself.
    session_key: bool
    #: ISO 9797-1 padding method, 1 or 2.
    padding: int
    #: ARPC method 1 (ARQC XOR ARC, 8 bytes) or 2 (MAC over ARQC || CSU, 4 bytes).
    arpc_method: int
    #: Length of 9F10 as these cards write it.
    iad_length: int

    def cvn_of(self, iad: bytes) -> int:
        """The CVN byte inside issuer application data of this layout."""
        return iad[2] if self.brand != "mastercard" else iad[1]

    def iad(self, dki: int, cvr: bytes) -> bytes:
        """Issuer application data for a cryptogram with card verification results ``cvr``."""
        if self.brand == "mastercard":
            if len(cvr) != 6:
                raise ValueError(f"cvr: must be 6 bytes for Mastercard, got {len(cvr)}")
            return bytes([dki, self.cvn]) + cvr + bytes(10)
        if len(cvr) != 3:
            raise ValueError(f"cvr: must be 3 bytes for {self.brand}, got {len(cvr)}")
        return bytes([6, dki, self.cvn, 3]) + cvr

    def card_data(self, iad: bytes) -> bytes:
        """The part of 9F10 the cryptogram covers."""
        if len(iad) != self.iad_length:
            raise ValueError(f"9F10: must be {self.iad_length} bytes for {self.brand} CVN "
                             f"{self.cvn}, got {len(iad)}")
        if self.brand == "mastercard":
            return iad[2:8]
        return iad if self.hsm_version == "VISA_18" else iad[3:7]

    def ac_data(self, values: Mapping[int, bytes]) -> bytes:
        """The bytes the cryptogram is a MAC of, before padding, from tag values.

        ``values`` must hold every tag of :data:`TERMINAL_AC_DATA`, 82, 9F36 and 9F10; a missing
        or wrongly sized one raises ``ValueError`` naming the tag.
        """
        out = bytearray()
        for tag, length in (*TERMINAL_AC_DATA, (0x82, 2), (0x9F36, 2)):
            value = values.get(tag)
            if value is None:
                raise ValueError(f"tag {tag:X}: required for the {self.brand} cryptogram, missing")
            if len(value) != length:
                raise ValueError(f"tag {tag:X}: must be {length} bytes, got {len(value)}")
            out += value
        iad = values.get(0x9F10)
        if iad is None:
            raise ValueError("tag 9F10: required for the cryptogram, missing")
        return bytes(out + self.card_data(iad))


VERSIONS: tuple[CryptogramVersion, ...] = (
    CryptogramVersion("visa", 0x0A, "VISA_10", session_key=False, padding=1, arpc_method=1,
                      iad_length=7),
    CryptogramVersion("visa", 0x12, "VISA_18", session_key=True, padding=2, arpc_method=2,
                      iad_length=7),
    CryptogramVersion("mastercard", 0x10, "MASTERCARD_16", session_key=True, padding=2,
                      arpc_method=1, iad_length=18),
    CryptogramVersion("mastercard", 0x11, "MASTERCARD_17", session_key=True, padding=2,
                      arpc_method=1, iad_length=18),
    # UnionPay (PBOC 3.0) CVN 01 computes its AC as Visa CVN 10 does.
    CryptogramVersion("unionpay", 0x01, "VISA_10", session_key=False, padding=1, arpc_method=1,
                      iad_length=7),
)


def version(brand: str, cvn: int) -> CryptogramVersion:
    """The rules for ``brand``'s cryptogram version ``cvn``; ``ValueError`` when unknown."""
    for v in VERSIONS:
        if v.brand == brand and v.cvn == cvn:
            return v
    known = ", ".join(f"{v.brand} {v.cvn:02X}" for v in VERSIONS)
    raise ValueError(f"cvn: {brand} CVN {cvn:02X} is not supported (known: {known})")


def version_of(brand: str, iad: bytes) -> CryptogramVersion:
    """The cryptogram version a card announced in its issuer application data 9F10."""
    position = 1 if brand == "mastercard" else 2
    if len(iad) <= position:
        raise ValueError(f"9F10: {len(iad)} bytes is too short to hold a CVN")
    return version(brand, iad[position])
