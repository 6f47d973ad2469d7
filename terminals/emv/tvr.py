"""Terminal verification results 95 and transaction status information 9B, bit by name.

The TVR (5 bytes) records every check that went wrong, for the terminal's and the issuer's
action codes to act on; the TSI (2 bytes) records which functions were performed (EMV Book 3
Annex C5 and C6). Bits are named here once, as (byte, mask) with bytes counted from 1.

>>> tvr = Bits.tvr()
>>> tvr.set("offline data authentication was not performed")
>>> tvr.set("transaction exceeds floor limit")
>>> tvr.value.hex().upper(), tvr.names()
('8000008000', ['offline data authentication was not performed', \
'transaction exceeds floor limit'])
"""

from __future__ import annotations

from collections.abc import Mapping

TVR: Mapping[str, tuple[int, int]] = {
    "offline data authentication was not performed": (1, 0x80),
    "SDA failed": (1, 0x40),
    "ICC data missing": (1, 0x20),
    "card appears on terminal exception file": (1, 0x10),
    "DDA failed": (1, 0x08),
    "CDA failed": (1, 0x04),
    "SDA selected": (1, 0x02),
    "ICC and terminal have different application versions": (2, 0x80),
    "expired application": (2, 0x40),
    "application not yet effective": (2, 0x20),
    "requested service not allowed for card product": (2, 0x10),
    "new card": (2, 0x08),
    "cardholder verification was not successful": (3, 0x80),
    "unrecognised CVM": (3, 0x40),
    "PIN try limit exceeded": (3, 0x20),
    "PIN entry required and PIN pad not present or not working": (3, 0x10),
    "PIN entry required, PIN pad present, but PIN was not entered": (3, 0x08),
    "online PIN entered": (3, 0x04),
    "transaction exceeds floor limit": (4, 0x80),
    "lower consecutive offline limit exceeded": (4, 0x40),
    "upper consecutive offline limit exceeded": (4, 0x20),
    "transaction selected randomly for online processing": (4, 0x10),
    "merchant forced transaction online": (4, 0x08),
    "default TDOL used": (5, 0x80),
    "issuer authentication failed": (5, 0x40),
    "script processing failed before final GENERATE AC": (5, 0x20),
    "script processing failed after final GENERATE AC": (5, 0x10),
}

TSI: Mapping[str, tuple[int, int]] = {
    "offline data authentication was performed": (1, 0x80),
    "cardholder verification was performed": (1, 0x40),
    "card risk management was performed": (1, 0x20),
    "issuer authentication was performed": (1, 0x10),
    "terminal risk management was performed": (1, 0x08),
    "script processing was performed": (1, 0x04),
}


class Bits:
    """A TVR or TSI being filled in during one transaction."""

    def __init__(self, names: Mapping[str, tuple[int, int]], length: int) -> None:
        self._names = names
        self._value = bytearray(length)

    @classmethod
    def tvr(cls) -> Bits:
        return cls(TVR, 5)

    @classmethod
    def tsi(cls) -> Bits:
        return cls(TSI, 2)

    def _bit(self, name: str) -> tuple[int, int]:
        try:
            return self._names[name]
        except KeyError:
            raise ValueError(f"bit name: {name!r} is not a bit of this field") from None

    def set(self, name: str) -> None:
        index, mask = self._bit(name)
        self._value[index - 1] |= mask

    def is_set(self, name: str) -> bool:
        index, mask = self._bit(name)
        return bool(self._value[index - 1] & mask)

    def names(self) -> list[str]:
        """Names of the bits set, in field order."""
        return [name for name in self._names if self.is_set(name)]

    @property
    def value(self) -> bytes:
        return bytes(self._value)
