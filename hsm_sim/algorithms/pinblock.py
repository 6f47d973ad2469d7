"""Clear ISO 9564-1 PIN blocks, formats 0, 1 and 3 (8 bytes, 16 nibbles).

The PIN field is ``C L P P P P P/F ... F``: control nibble C (the format), PIN length L (4..C),
the PIN digits, then fill. Format 0 fills with F, format 1 with random or transaction-unique
nibbles, format 3 with random nibbles A..F. Formats 0 and 3 XOR the PIN field with the PAN field
``0000`` + the 12 rightmost PAN digits excluding the check digit, binding the block to a card.

Errors name the field and the rule broken but never echo a PIN, a PAN or a clear block.
"""

import secrets

PIN_BLOCK_LENGTH = 8
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


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


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


def _check_block(block: bytes) -> None:
    if len(block) != PIN_BLOCK_LENGTH:
        raise ValueError(f"block: must be 8 bytes, got {len(block)}")


def encode_iso0(pin: str, pan: str) -> bytes:
    """Build a clear ISO 9564 format 0 (ANSI X9.8) PIN block.

    >>> encode_iso0("1234", "4012345678909").hex().upper()
    '041274EDCBA9876F'
    """
    return _xor(_pin_field(0, pin, "F" * _FILL_NIBBLES), _pan_field(pan))


def decode_iso0(block: bytes, pan: str) -> str:
    """Recover the PIN from a clear format 0 block; ``pan`` must be the card's full PAN.

    >>> decode_iso0(bytes.fromhex("041274EDCBA9876F"), "4012345678909")
    '1234'
    """
    _check_block(block)
    return _read_pin(_xor(block, _pan_field(pan)), 0, "F")


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
    return _xor(_pin_field(3, pin, _fill(random_fill, format3=True)), _pan_field(pan))


def decode_iso3(block: bytes, pan: str) -> str:
    """Recover the PIN from a clear format 3 block; ``pan`` must be the card's full PAN.

    >>> decode_iso3(bytes.fromhex("341274B9F9B9D35D"), "4012345678909")
    '1234'
    """
    _check_block(block)
    return _read_pin(_xor(block, _pan_field(pan)), 3, _FORMAT3_FILL)
