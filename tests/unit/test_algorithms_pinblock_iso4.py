"""ISO 9564-1 format 4 (AES) PIN blocks, and the rule for translating between formats.

psec is the independent oracle: its ``encipher_pinblock_iso_4`` draws the 8 random bytes from
``psec.pinblock._urandom``, which the tests pin so that both sides build the same block. Fixed
vectors come from the X9.24-3 supplement's format 4 example (via teamforage/forage-android-sdk
PinBlockIso4Test.kt), psec's docstring and 5n00py/paysec's format 4 tests
(crates/paysec-pinblock/src/iso_9564/tests/test_format_4.rs).
"""

from collections.abc import Callable
from unittest import mock

import psec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms.pinblock import (
    check_translation,
    decrypt_iso4,
    encode_iso0,
    encode_pan_field_iso4,
    encode_pin_field_iso4,
    encrypt_iso4,
    translation_allowed,
)
from tests.oracle import oracle

SUPPLEMENT_PIN_KEY = bytes.fromhex("AF8CB133A78F8DC2D1359F18527593FB")
SUPPLEMENT_FILL = bytes.fromhex("2F69ADDE2E9E7ACE")
SUPPLEMENT_PAN = "4111111111111111"
SUPPLEMENT_BLOCK = bytes.fromhex("A912150391AB65A67E52883D81CE2D15")

pins = st.text("0123456789", min_size=4, max_size=12)
pans = st.text("0123456789", min_size=1, max_size=19)
aes_keys = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
fills = st.binary(min_size=8, max_size=8)


def test_supplement_example_encrypts_to_the_published_block() -> None:
    block = encrypt_iso4(SUPPLEMENT_PIN_KEY, "1234", SUPPLEMENT_PAN, SUPPLEMENT_FILL)
    assert block == SUPPLEMENT_BLOCK


def test_supplement_example_fields_are_the_published_plain_text_fields() -> None:
    pin_field = encode_pin_field_iso4("1234", SUPPLEMENT_FILL)
    assert pin_field.hex().upper() == "441234AAAAAAAAAA2F69ADDE2E9E7ACE"
    assert encode_pan_field_iso4(SUPPLEMENT_PAN).hex().upper() == (
        "44111111111111111000000000000000"
    )


def test_supplement_block_decrypts_to_its_pin() -> None:
    assert decrypt_iso4(SUPPLEMENT_PIN_KEY, SUPPLEMENT_BLOCK, SUPPLEMENT_PAN) == "1234"


# 5n00py/paysec test_format_4.rs, test_encode_pin_field_iso_4_various_pins.
@pytest.mark.parametrize(
    ("pin", "pin_field"),
    [
        ("12345", "4512345AAAAAAAAA517F9481BA5275FA"),
        ("1234567", "471234567AAAAAAACAF92E156B7D4489"),
        ("12345678", "4812345678AAAAAA424D0369B23E2B4C"),
        ("12345678901", "4B12345678901AAA9B263A096EA64687"),
        ("123456789012", "4C123456789012AA8A268C65E92C3B39"),
    ],
)
def test_pin_field_is_control_length_pin_fill_a_then_random_bytes(pin: str, pin_field: str) -> None:
    random_fill = bytes.fromhex(pin_field[16:])
    assert encode_pin_field_iso4(pin, random_fill).hex().upper() == pin_field


# 5n00py/paysec test_format_4.rs, test_encode_pan_field_iso_4_various_pans.
@pytest.mark.parametrize(
    ("pan", "pan_field"),
    [
        ("1", "00000000000010000000000000000000"),
        ("1234567890", "00012345678900000000000000000000"),
        ("123456789012", "01234567890120000000000000000000"),
        ("1234567890123", "11234567890123000000000000000000"),
        ("1234567890123456", "41234567890123456000000000000000"),
        ("1234567890123456789", "71234567890123456789000000000000"),
    ],
)
def test_pan_field_is_length_minus_12_then_the_whole_pan(pan: str, pan_field: str) -> None:
    assert encode_pan_field_iso4(pan).hex().upper() == pan_field


def test_paysec_published_block_with_all_ff_random_bytes() -> None:
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    block = encrypt_iso4(key, "1234", "1234567890123456789", b"\xff" * 8)
    assert block.hex().upper() == "28B41FDDD29B743E93124BD8E32D921E"


@pytest.mark.parametrize(
    ("pin", "pan", "block"),
    [
        ("1234", "1234567890123456", "E4BE5B623AF7E006AC319E5B93544564"),  # psec docstring
        ("1234", "1234567890123456", "52DB178C6EDCE52E3A70F7FBC8E9C758"),  # paysec
        ("123456", "123456789012345678", "847A0209C659E4C4A79CA6A2A2217D31"),  # paysec
        ("12345678", "1234567890123456789", "018BFEC8B5EF60181A327AD8325A2BA4"),  # paysec
    ],
)
def test_published_blocks_decrypt_to_their_pins(pin: str, pan: str, block: str) -> None:
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert decrypt_iso4(key, bytes.fromhex(block), pan) == pin


@oracle
@given(key=aes_keys, pin=pins, pan=pans, fill=fills)
def test_encryption_equals_psec_given_the_same_random_bytes(
    key: bytes, pin: str, pan: str, fill: bytes
) -> None:
    with mock.patch.object(psec.pinblock, "_urandom", lambda _: fill):
        expected = psec.pinblock.encipher_pinblock_iso_4(key, pin, pan)
    assert encrypt_iso4(key, pin, pan, fill) == expected


@oracle
@given(key=aes_keys, pin=pins, pan=pans)
def test_psec_and_this_module_decrypt_each_others_blocks(key: bytes, pin: str, pan: str) -> None:
    assert decrypt_iso4(key, psec.pinblock.encipher_pinblock_iso_4(key, pin, pan), pan) == pin
    assert psec.pinblock.decipher_pinblock_iso_4(key, encrypt_iso4(key, pin, pan), pan) == pin


def test_without_random_fill_each_block_is_fresh_and_decrypts() -> None:
    first = encrypt_iso4(SUPPLEMENT_PIN_KEY, "1234", SUPPLEMENT_PAN)
    second = encrypt_iso4(SUPPLEMENT_PIN_KEY, "1234", SUPPLEMENT_PAN)
    assert first != second  # 64 random bits; equal once in 2**64 runs
    assert decrypt_iso4(SUPPLEMENT_PIN_KEY, first, SUPPLEMENT_PAN) == "1234"
    assert decrypt_iso4(SUPPLEMENT_PIN_KEY, second, SUPPLEMENT_PAN) == "1234"


@pytest.mark.parametrize(
    ("key", "pan", "message"),
    [
        (SUPPLEMENT_PIN_KEY, "4111111111111112", "block: control field must be 4, got E"),
        (SUPPLEMENT_PIN_KEY, "5544332211009966", "block: control field must be 4, got F"),
        (
            bytes.fromhex("D30BDC73EC9714B000BEC66BDB7B6D09"),
            SUPPLEMENT_PAN,
            "block: control field must be 4, got D",
        ),
    ],
)
def test_block_read_with_another_pan_or_key_is_rejected(key: bytes, pan: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        decrypt_iso4(key, SUPPLEMENT_BLOCK, pan)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: encrypt_iso4(SUPPLEMENT_PIN_KEY, "123", SUPPLEMENT_PAN),
            "pin: must be 4 to 12 digits, got 3 characters",
        ),
        (
            lambda: encrypt_iso4(SUPPLEMENT_PIN_KEY, "1234567890123", SUPPLEMENT_PAN),
            "pin: must be 4 to 12 digits, got 13 characters",
        ),
        (
            lambda: encode_pin_field_iso4("12a4"),
            "pin: must be 4 to 12 digits, got 4 characters",
        ),
        (
            lambda: encode_pin_field_iso4("1234", bytes(7)),
            "random_fill: must be 8 bytes, got 7",
        ),
        (lambda: encode_pan_field_iso4(""), "pan: must be 1 to 19 digits, got 0 characters"),
        (
            lambda: encode_pan_field_iso4("12345678901234567890"),
            "pan: must be 1 to 19 digits, got 20 characters",
        ),
        (
            lambda: encrypt_iso4(SUPPLEMENT_PIN_KEY, "1234", "4111-1111-1111-1111"),
            "pan: must be 1 to 19 digits, got 19 characters",
        ),
        (
            lambda: encrypt_iso4(bytes(8), "1234", SUPPLEMENT_PAN),
            "key: must be a 16-, 24- or 32-byte AES key, got 8 bytes",
        ),
        (
            lambda: decrypt_iso4(SUPPLEMENT_PIN_KEY, SUPPLEMENT_BLOCK[:8], SUPPLEMENT_PAN),
            "block: must be 16 bytes, got 8",
        ),
        (
            lambda: decrypt_iso4(SUPPLEMENT_PIN_KEY, encode_iso0("1234", SUPPLEMENT_PAN), "4"),
            "block: must be 16 bytes, got 8",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message


def test_errors_never_echo_the_pin_or_the_pan() -> None:
    secrets_in_play = ["98765", SUPPLEMENT_PAN]
    calls: list[Callable[[], object]] = [
        lambda: encrypt_iso4(SUPPLEMENT_PIN_KEY, "98765x", SUPPLEMENT_PAN),
        lambda: encrypt_iso4(SUPPLEMENT_PIN_KEY, "98765", SUPPLEMENT_PAN + "0000"),
        lambda: decrypt_iso4(
            SUPPLEMENT_PIN_KEY,
            encrypt_iso4(SUPPLEMENT_PIN_KEY, "98765", SUPPLEMENT_PAN),
            "5544332211009966",
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError) as excinfo:
            call()
        assert not any(secret in str(excinfo.value) for secret in secrets_in_play)


# PCI PIN Security Requirements v3.1, requirement 3-3, as (source, target): allowed with the
# PAN supplied, allowed without it.
TRANSLATIONS = {
    (0, 0): (True, True),
    (0, 3): (True, True),
    (0, 4): (True, True),
    (3, 0): (True, True),
    (3, 3): (True, True),
    (3, 4): (True, True),
    (4, 0): (True, True),
    (4, 3): (True, True),
    (4, 4): (True, True),
    (0, 1): (False, False),
    (3, 1): (False, False),
    (4, 1): (False, False),
    (1, 0): (True, False),
    (1, 3): (True, False),
    (1, 4): (True, False),
    (1, 1): (True, True),
}


@pytest.mark.parametrize(("formats", "allowed"), TRANSLATIONS.items())
def test_translation_follows_pci_pin_requirement_3_3(
    formats: tuple[int, int], allowed: tuple[bool, bool]
) -> None:
    source, target = formats
    assert translation_allowed(source, target, pan_supplied=True) is allowed[0]
    assert translation_allowed(source, target, pan_supplied=False) is allowed[1]


def test_pan_bound_block_may_not_become_format_1() -> None:
    with pytest.raises(ValueError) as excinfo:
        check_translation(4, 1, pan_supplied=True)
    assert str(excinfo.value) == "translation: ISO format 4 to format 1 is forbidden (PCI PIN 3-3)"


def test_format_1_becomes_pan_bound_only_with_the_pan() -> None:
    check_translation(1, 4, pan_supplied=True)
    with pytest.raises(ValueError) as excinfo:
        check_translation(1, 0, pan_supplied=False)
    assert str(excinfo.value) == (
        "translation: ISO format 1 to format 0 needs the card's PAN (PCI PIN 3-3)"
    )


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (2, 0, "source_format: must be ISO format 0, 1, 3 or 4, got 2"),
        (0, 5, "target_format: must be ISO format 0, 1, 3 or 4, got 5"),
    ],
)
def test_translation_rejects_formats_it_does_not_know(
    source: int, target: int, message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        translation_allowed(source, target, pan_supplied=True)
    assert str(excinfo.value) == message
