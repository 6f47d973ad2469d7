"""ISO 9564-1 PIN blocks: clear formats 0, 1 and 3 (8 bytes), and AES format 4 (16 bytes).

The PIN field is ``C L P P P P P/F ... F``: control nibble C (the format), PIN length L (4..C),
the PIN digits, then fill. Format 0 fills with F, format 1 with random or transaction-unique
nibbles, format 3 with random nibbles A..F. Formats 0 and 3 XOR the PIN field with the PAN field
``0000`` + the 12 rightmost PAN digits excluding the check digit, binding the block to a card.

Format 4 exists only enciphered under an AES key: its 16-byte PIN field (``4 L PIN A..A``, then
8 random bytes) is enciphered, XORed with a 16-byte PAN field holding the whole PAN, and
enciphered again, so the block is bound to the card by the cipher itself.

Errors name the field and the rule broken but never echo a PIN, a PAN or a clear block.
"""

import secrets
from collections.abc import Mapping
from typing import Final, Literal

from hsm_sim.algorithms import aes
from hsm_sim.algorithms.bits import xor

PIN_BLOCK_LENGTH = 8
ISO4_BLOCK_LENGTH = 16
_ISO4_RANDOM_LENGTH = 8
_FILL_NIBBLES = 14
_FORMAT3_FILL = "ABCDEF"


def _check_pin(pin: str) -> None:
    if not (4 <= len(pin) <= 12 and pin.isascii() and pin.isdigit()):
        raise ValueError(f"pin: must be 4 to 12 digits, got {len(pin)} characters")


def account_number_12(pan: str) -> str:
    """Return the 12 rightmost PAN digits excluding the check digit (ISO 9564 PAN field).

    >>> account_number_12("4012345678909")
    '401234567890'
    """
    if not (13 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise ValueError(f"pan: must be 13 to 19 digits, got {len(pan)} characters")
    return pan[-13:-1]


def _pan_field(pan: str) -> bytes:
    return bytes.fromhex("0000" + account_number_12(pan))


def _pin_field(control: int, pin: str, fill: str) -> bytes:
    _check_pin(pin)
    return bytes.fromhex(f"{control:X}{len(pin):X}{pin}{fill[: _FILL_NIBBLES - len(pin)]}")


def _fill(random_fill: bytes | None, format3: bool) -> str:
    if random_fill is None:
        if format3:
            return "".join(secrets.choice(_FORMAT3_FILL) for _ in range(_FILL_NIBBLES))
        return secrets.token_hex(_FILL_NIBBLES // 2).upper()
    if len(random_fill) != _FILL_NIBBLES // 2:
        raise ValueError(f"random_fill: must be 7 bytes, got {len(random_fill)}")
    fill = random_fill.hex().upper()
    if format3 and not all(nibble in _FORMAT3_FILL for nibble in fill):
        raise ValueError("random_fill: format 3 fill nibbles must each be A to F")
    return fill


def _read_pin(field: bytes, control: int, fill_ok: str) -> str:
    digits = field.hex().upper()
    if digits[0] != f"{control:X}":
        raise ValueError(f"block: control field must be {control}, got {digits[0]}")
    length = int(digits[1], 16)
    if not 4 <= length <= 12:
        raise ValueError(f"block: PIN length must be 4 to 12, got {length}")
    pin = digits[2 : 2 + length]
    if not pin.isdigit():
        raise ValueError("block: PIN digits must be 0 to 9")
    if not all(nibble in fill_ok for nibble in digits[2 + length :]):
        raise ValueError(
            f"block: fill nibbles are invalid for format {control} (wrong PAN or key?)"
        )
    return pin


def _check_block(block: bytes, length: int = PIN_BLOCK_LENGTH) -> None:
    if len(block) != length:
        raise ValueError(f"block: must be {length} bytes, got {len(block)}")


def encode_iso0(pin: str, pan: str) -> bytes:
    """Build a clear ISO 9564 format 0 (ANSI X9.8) PIN block.

    >>> encode_iso0("1234", "4012345678909").hex().upper()
    '041274EDCBA9876F'
    """
    return xor(_pin_field(0, pin, "F" * _FILL_NIBBLES), _pan_field(pan))


def decode_iso0(block: bytes, pan: str) -> str:
    """Recover the PIN from a clear format 0 block; ``pan`` must be the card's full PAN.

    >>> decode_iso0(bytes.fromhex("041274EDCBA9876F"), "4012345678909")
    '1234'
    """
    _check_block(block)
    return _read_pin(xor(block, _pan_field(pan)), 0, "F")


def encode_iso1(pin: str, random_fill: bytes | None = None) -> bytes:
    """Build a clear format 1 block; fill nibbles come from 7-byte ``random_fill`` or at random.

    The PIN digits are followed by the first ``14 - len(pin)`` nibbles of ``random_fill``.

    >>> encode_iso1("1234", bytes.fromhex("5A4C8D2F016E93")).hex().upper()
    '1412345A4C8D2F01'
    """
    return _pin_field(1, pin, _fill(random_fill, format3=False))


def decode_iso1(block: bytes) -> str:
    """Recover the PIN from a clear format 1 block.

    >>> decode_iso1(bytes.fromhex("1412345A4C8D2F01"))
    '1234'
    """
    _check_block(block)
    return _read_pin(block, 1, "0123456789ABCDEF")


def encode_iso3(pin: str, pan: str, random_fill: bytes | None = None) -> bytes:
    """Build a clear format 3 block; fill is 7-byte ``random_fill`` (all nibbles A..F) or random.

    The PIN digits are followed by the first ``14 - len(pin)`` nibbles of ``random_fill``.

    >>> encode_iso3("1234", "4012345678909", bytes.fromhex("ABCDEFABCDEFAB")).hex().upper()
    '341274B9F9B9D35D'
    """
    return xor(_pin_field(3, pin, _fill(random_fill, format3=True)), _pan_field(pan))


def decode_iso3(block: bytes, pan: str) -> str:
    """Recover the PIN from a clear format 3 block; ``pan`` must be the card's full PAN.

    >>> decode_iso3(bytes.fromhex("341274B9F9B9D35D"), "4012345678909")
    '1234'
    """
    _check_block(block)
    return _read_pin(xor(block, _pan_field(pan)), 3, _FORMAT3_FILL)


def encode_pin_field_iso4(pin: str, random_fill: bytes | None = None) -> bytes:
    """Build the 16-byte plain-text PIN field of format 4: ``4 L PIN A..A`` then 8 random bytes.

    Fill A pads the first 16 nibbles; the last 8 bytes are ``random_fill``, or fresh random
    bytes when it is not given.

    >>> encode_pin_field_iso4("1234", bytes.fromhex("2F69ADDE2E9E7ACE")).hex().upper()
    '441234AAAAAAAAAA2F69ADDE2E9E7ACE'
    """
    field = _pin_field(4, pin, "A" * _FILL_NIBBLES)
    if random_fill is None:
        return field + secrets.token_bytes(_ISO4_RANDOM_LENGTH)
    if len(random_fill) != _ISO4_RANDOM_LENGTH:
        raise ValueError(f"random_fill: must be 8 bytes, got {len(random_fill)}")
    return field + random_fill


def encode_pan_field_iso4(pan: str) -> bytes:
    """Build the 16-byte plain-text PAN field of format 4: ``M``, the PAN, then zero nibbles.

    M is the PAN length minus 12 (0 to 7). A PAN of fewer than 12 digits is right-justified in
    12 digits with leading zeros, and M is 0.

    >>> encode_pan_field_iso4("4111111111111111").hex().upper()
    '44111111111111111000000000000000'
    >>> encode_pan_field_iso4("123456789").hex().upper()
    '00001234567890000000000000000000'
    """
    if not (1 <= len(pan) <= 19 and pan.isascii() and pan.isdigit()):
        raise ValueError(f"pan: must be 1 to 19 digits, got {len(pan)} characters")
    return bytes.fromhex(f"{max(len(pan) - 12, 0)}{pan:0>12}".ljust(2 * ISO4_BLOCK_LENGTH, "0"))


def encrypt_iso4(key: bytes, pin: str, pan: str, random_fill: bytes | None = None) -> bytes:
    """Encipher a format 4 PIN block under AES ``key``: E(E(PIN field) XOR PAN field).

    ``random_fill`` is the PIN field's 8 random bytes; fresh random bytes when not given.

    >>> key = bytes.fromhex("AF8CB133A78F8DC2D1359F18527593FB")
    >>> fill = bytes.fromhex("2F69ADDE2E9E7ACE")
    >>> encrypt_iso4(key, "1234", "4111111111111111", fill).hex().upper()
    'A912150391AB65A67E52883D81CE2D15'
    """
    intermediate_a = aes.encrypt_ecb(key, encode_pin_field_iso4(pin, random_fill))
    return aes.encrypt_ecb(key, xor(intermediate_a, encode_pan_field_iso4(pan)))


def decrypt_iso4(key: bytes, block: bytes, pan: str) -> str:
    """Recover the PIN from an enciphered format 4 block; ``pan`` must be the card's full PAN.

    >>> key = bytes.fromhex("AF8CB133A78F8DC2D1359F18527593FB")
    >>> block = bytes.fromhex("A912150391AB65A67E52883D81CE2D15")
    >>> decrypt_iso4(key, block, "4111111111111111")
    '1234'
    """
    _check_block(block, ISO4_BLOCK_LENGTH)
    intermediate_b = aes.decrypt_ecb(key, block)
    pin_field = aes.decrypt_ecb(key, xor(intermediate_b, encode_pan_field_iso4(pan)))
    return _read_pin(pin_field[:PIN_BLOCK_LENGTH], 4, "A")


TranslationRule = Literal["permitted", "needs the PAN", "forbidden"]

# PCI PIN Security Requirements v3.1, requirement 3-3, for the ISO 9564-1 formats here, keyed by
# (source format, target format). Formats 0, 3 and 4 bind the PIN to the PAN and must keep it;
# format 1 carries no PAN, so binding it to a card needs the PAN from elsewhere in the message.
TRANSLATION_RULES: Final[Mapping[tuple[int, int], TranslationRule]] = {
    **{(source, target): "permitted" for source in (0, 3, 4) for target in (0, 3, 4)},
    **{(source, 1): "forbidden" for source in (0, 3, 4)},
    **{(1, target): "needs the PAN" for target in (0, 3, 4)},
    (1, 1): "permitted",
}


def _translation_rule(source_format: int, target_format: int) -> TranslationRule:
    for name, value in (("source_format", source_format), ("target_format", target_format)):
        if (value, value) not in TRANSLATION_RULES:
            raise ValueError(f"{name}: must be ISO format 0, 1, 3 or 4, got {value}")
    return TRANSLATION_RULES[source_format, target_format]


def translation_allowed(source_format: int, target_format: int, *, pan_supplied: bool) -> bool:
    """Whether a PIN block may be translated from one ISO 9564-1 format to another.

    The rule is PCI PIN Security Requirements v3.1, requirement 3-3 (ISO 9564-1 defines the
    formats): a PIN block bound to a PAN (formats 0, 3 and 4) may be translated among 0, 3 and
    4 but never into format 1, which would drop the binding; format 1 may be translated into
    format 1, and into 0, 3 or 4 only when the card's PAN is supplied. Between PAN-bound
    formats the PAN must not change, so the caller uses one PAN for both blocks.

    >>> translation_allowed(0, 4, pan_supplied=True)
    True
    >>> translation_allowed(4, 1, pan_supplied=True)
    False
    >>> translation_allowed(1, 4, pan_supplied=False)
    False
    """
    rule = _translation_rule(source_format, target_format)
    return rule == "permitted" or (rule == "needs the PAN" and pan_supplied)


def check_translation(source_format: int, target_format: int, *, pan_supplied: bool) -> None:
    """Raise ``ValueError`` naming both formats unless ``translation_allowed`` says yes.

    >>> check_translation(3, 1, pan_supplied=True)
    Traceback (most recent call last):
    ...
    ValueError: translation: ISO format 3 to format 1 is forbidden (PCI PIN 3-3)
    """
    if translation_allowed(source_format, target_format, pan_supplied=pan_supplied):
        return
    forbidden = _translation_rule(source_format, target_format) == "forbidden"
    why = "is forbidden" if forbidden else "needs the card's PAN"
    raise ValueError(
        f"translation: ISO format {source_format} to format {target_format} {why} (PCI PIN 3-3)"
    )
