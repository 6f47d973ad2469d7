"""PIN verification values: IBM 3624 natural PIN and offset, and the Visa PVV.

IBM 3624: encrypt 16 hex digits of validation data under the PIN verification key (PVK),
decimalise the result with a 16-digit table, and keep the leftmost ``pin_length`` digits: that
is the natural PIN. The issuer stores the offset, digit by digit ``(pin - natural) mod 10``, so
a customer can choose a PIN without the key changing.

Visa PVV: encrypt the transformed security parameter (11 PAN digits, the PVK index, 4 PIN
digits) and keep its first 4 decimal digits, hex letters minus 10 making up any shortfall.
Issuers store the PVV on the card or in the host.
"""

import hmac
import string

from hsm_sim.algorithms import tdes

DEFAULT_DECIMALIZATION_TABLE = "0123456789012345"


def _digits(value: str, name: str, low: int, high: int) -> None:
    if not (low <= len(value) <= high and value.isascii() and value.isdigit()):
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{name}: must be {wanted} digits, got {len(value)} characters")


def _check_pvk(pvk: bytes) -> None:
    if len(pvk) not in (16, 24):
        raise ValueError(f"pvk: must be 16 or 24 bytes, got {len(pvk)}")


def _check_validation_data(validation_data: str) -> None:
    if len(validation_data) != 16 or not all(c in string.hexdigits for c in validation_data):
        count = len(validation_data)
        raise ValueError(f"validation_data: must be 16 hex digits, got {count} characters")


def validation_data_from_pan(pan: str) -> str:
    """Return IBM 3624 validation data: the first 16 PAN digits, right-padded with F.

    Issuers choose their own validation data; this module uses the common convention above,
    so 16-digit PANs are used whole and longer ones lose their trailing digits.

    >>> validation_data_from_pan("4012345678909")
    '4012345678909FFF'
    """
    _digits(pan, "pan", 13, 19)
    return pan[:16].ljust(16, "F")


def natural_pin(
    pvk: bytes,
    validation_data: str,
    pin_length: int,
    decimalization_table: str = DEFAULT_DECIMALIZATION_TABLE,
) -> str:
    """Derive the IBM 3624 natural PIN of ``pin_length`` (4 to 12) digits.

    >>> pvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> natural_pin(pvk, "1122334455667788", 4, "1234567890123456")
    '4524'
    """
    _check_pvk(pvk)
    _check_validation_data(validation_data)
    if not 4 <= pin_length <= 12:
        raise ValueError(f"pin_length: must be 4 to 12, got {pin_length}")
    _digits(decimalization_table, "decimalization_table", 16, 16)
    intermediate = tdes.encrypt_ecb(pvk, bytes.fromhex(validation_data)).hex().upper()
    decimal = intermediate.translate(str.maketrans("0123456789ABCDEF", decimalization_table))
    return decimal[:pin_length]


def pin_offset(
    pvk: bytes,
    validation_data: str,
    pin: str,
    decimalization_table: str = DEFAULT_DECIMALIZATION_TABLE,
) -> str:
    """Return the IBM 3624 offset that turns the natural PIN into ``pin`` (same length).

    >>> pvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> pin_offset(pvk, "1122334455667788", "1234", "1234567890123456")
    '7710'
    """
    _digits(pin, "pin", 4, 12)
    natural = natural_pin(pvk, validation_data, len(pin), decimalization_table)
    return "".join(str((int(p) - int(n)) % 10) for p, n in zip(pin, natural, strict=True))


def verify_offset(
    pvk: bytes,
    validation_data: str,
    pin: str,
    offset: str,
    decimalization_table: str = DEFAULT_DECIMALIZATION_TABLE,
) -> bool:
    """Check ``pin`` against a stored IBM 3624 offset; a PIN of another length does not match.

    >>> pvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> verify_offset(pvk, "1122334455667788", "1234", "7710", "1234567890123456")
    True
    """
    _digits(pin, "pin", 4, 12)
    _digits(offset, "offset", 4, 12)
    if len(pin) != len(offset):
        return False
    expected = pin_offset(pvk, validation_data, pin, decimalization_table)
    return hmac.compare_digest(expected, offset)


def visa_pvv(pvk: bytes, pan: str, pvki: int, pin: str) -> str:
    """Return the 4-digit Visa PIN verification value; only the PIN's first 4 digits count.

    >>> pvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> visa_pvv(pvk, "1122334455667788", 3, "4524")
    '4021'
    """
    _check_pvk(pvk)
    _digits(pan, "pan", 13, 19)
    if not 0 <= pvki <= 9:
        raise ValueError(f"pvki: must be 0 to 9, got {pvki}")
    _digits(pin, "pin", 4, 12)
    tsp = f"{pan[-12:-1]}{pvki}{pin[:4]}"
    hex_digits = tdes.encrypt_ecb(pvk, bytes.fromhex(tsp)).hex().upper()
    decimals = [c for c in hex_digits if c.isdigit()]
    letters = [str(int(c, 16) - 10) for c in hex_digits if not c.isdigit()]
    return "".join((decimals + letters)[:4])


def verify_visa_pvv(pvk: bytes, pan: str, pvki: int, pin: str, pvv: str) -> bool:
    """Check ``pin`` against a stored Visa PVV.

    >>> pvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> verify_visa_pvv(pvk, "1122334455667788", 3, "4524", "4021")
    True
    """
    _digits(pvv, "pvv", 4, 4)
    return hmac.compare_digest(visa_pvv(pvk, pan, pvki, pin), pvv)
