"""Card verification values: the Visa CVV algorithm (Mastercard calls the result CVC).

One algorithm, three values, told apart by the service code fed in: CVV/CVC1 on the magnetic
stripe uses the card's real service code, CVV2/CVC2 printed on the card uses "000", and iCVV in
the chip's track 2 equivalent data uses "999".

The 16-byte CVK is two DES keys A||B. PAN || expiry (YYMM) || service code, right-padded with
zeros to 32 digits, is split into blocks 1 and 2; DES_A(block 1) XOR block 2 is encrypted under
the TDES key A||B, and the CVV is the first 3 decimal digits of the result (hex digits A..F,
minus 10, are used only if there are fewer than 3 decimal digits).
"""

import hmac

from hsm_sim.algorithms import tdes
from hsm_sim.algorithms.bits import xor

SERVICE_CODE_CVV2 = "000"
SERVICE_CODE_ICVV = "999"


def _digits(value: str, name: str, low: int, high: int) -> None:
    if not (low <= len(value) <= high and value.isascii() and value.isdigit()):
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{name}: must be {wanted} digits, got {len(value)} characters")


def cvv(cvk: bytes, pan: str, expiry_yymm: str, service_code: str) -> str:
    """Return the 3-digit CVV of a card under a 16-byte CVK (A||B).

    >>> cvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> cvv(cvk, "4123456789012345", "8701", "101")
    '561'
    """
    if len(cvk) != 16:
        raise ValueError(f"cvk: must be 16 bytes (key A || key B), got {len(cvk)}")
    _digits(pan, "pan", 13, 19)
    _digits(expiry_yymm, "expiry_yymm", 4, 4)
    _digits(service_code, "service_code", 3, 3)
    data = bytes.fromhex((pan + expiry_yymm + service_code).ljust(32, "0"))
    first = tdes.des_encrypt_block(cvk[:8], data[:8])
    chained = xor(first, data[8:])
    hex_digits = tdes.encrypt_ecb(cvk, chained).hex().upper()
    decimals = [c for c in hex_digits if c.isdigit()]
    letters = [str(int(c, 16) - 10) for c in hex_digits if not c.isdigit()]
    return "".join((decimals + letters)[:3])


def verify_cvv(cvk: bytes, pan: str, expiry_yymm: str, service_code: str, value: str) -> bool:
    """Check a presented CVV in constant time.

    >>> cvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> verify_cvv(cvk, "4123456789012345", "8701", "101", "561")
    True
    """
    _digits(value, "value", 3, 3)
    return hmac.compare_digest(cvv(cvk, pan, expiry_yymm, service_code), value)
