"""Card number helpers every service needs: Luhn, masking, track 2, brand.

A PAN (primary account number) is 13 to 19 digits whose last digit is a Luhn check digit.
Never log or raise with a clear PAN: use :func:`mask_pan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = re.compile(r"^[0-9]+$")
#: A Luhn-doubled digit's contribution: 2d, less 9 when that has two digits.
_DOUBLED = {str(d): d * 2 - 9 if d > 4 else d * 2 for d in range(10)}


def luhn_valid(pan: str) -> bool:
    """True when ``pan`` is all digits and its Luhn check digit is right.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    if not pan or not _DIGITS.fullmatch(pan):
        return False
    backwards = pan[::-1]
    total = sum(map(int, backwards[::2])) + sum(_DOUBLED[c] for c in backwards[1::2])
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass Luhn."""
    for d in "0123456789":
        if luhn_valid(partial + d):
            return d
    raise ValueError("partial: must be digits")


def mask_pan(pan: str) -> str:
    """First six and last four digits, the rest as ``*``.

    >>> mask_pan("4111111111111111")
    '411111******1111'
    """
    if len(pan) < 10:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def validate_pan(pan: str, field: str = "pan") -> str | None:
    """A description of what is wrong with ``pan``, naming ``field``, or None. Never echoes it."""
    if not _DIGITS.fullmatch(pan or ""):
        return f"{field}: must be digits only"
    if not 13 <= len(pan) <= 19:
        return f"{field}: must be 13 to 19 digits, got {len(pan)}"
    if not luhn_valid(pan):
        return f"{field}: fails the Luhn check"
    return None


@dataclass(frozen=True)
class Track2:
    pan: str
    expiry_yymm: str
    service_code: str
    discretionary: str


_TRACK2 = re.compile(r"^;?([0-9]{12,19})[=D]([0-9]{4})([0-9]{3})([0-9A-F]*)\??$")


def parse_track2(data: str) -> Track2:
    """Splits track 2 equivalent data ``PAN=YYMMSSS...``.

    >>> parse_track2("4111111111111111=29122010000012300000").service_code
    '201'
    """
    m = _TRACK2.match(data.strip())
    if not m:
        raise ValueError("track2: not PAN=YYMMSSS... (separator, 4-digit expiry, service code)")
    return Track2(m.group(1), m.group(2), m.group(3), m.group(4))


_BRANDS: tuple[tuple[str, str], ...] = (
    ("4", "visa"),
    ("51", "mastercard"), ("52", "mastercard"), ("53", "mastercard"),
    ("54", "mastercard"), ("55", "mastercard"), ("2", "mastercard"),
    ("62", "unionpay"), ("34", "amex"), ("37", "amex"), ("6011", "discover"),
)


def brand_of(pan: str) -> str:
    """Card brand by leading digits, longest prefix first; ``unknown`` otherwise."""
    for prefix, brand in sorted(_BRANDS, key=lambda p: -len(p[0])):
        if pan.startswith(prefix):
            return brand
    return "unknown"


_PAN_RUN = re.compile(r"(?<![0-9])([0-9]{13,19})(?![0-9])")


def mask_pans_in(text: str) -> str:
    """Masks every 13 to 19 digit run in ``text`` that passes Luhn (for logs and error text)."""
    return _PAN_RUN.sub(lambda m: mask_pan(m.group(1)) if luhn_valid(m.group(1)) else m.group(1),
                        text)
