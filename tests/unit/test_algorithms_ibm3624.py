"""IBM 3624 natural PIN and offset, and the Visa PVV; psec is the oracle for all three."""

import doctest

import psec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import ibm3624
from hsm_sim.algorithms.ibm3624 import (
    natural_pin,
    pin_offset,
    validation_data_from_pan,
    verify_offset,
    verify_visa_pvv,
    visa_pvv,
)
from tests.oracle import oracle

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec uses the old TripleDES
)

PVK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TABLE = "1234567890123456"

pvks = st.binary(min_size=16, max_size=16)
pans = st.text("0123456789", min_size=13, max_size=19)
pins = st.text("0123456789", min_size=4, max_size=12)
tables = st.text("0123456789", min_size=16, max_size=16)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(ibm3624)
    assert result.attempted > 0
    assert result.failed == 0


def test_validation_data_is_the_first_16_pan_digits_padded_with_f() -> None:
    assert validation_data_from_pan("4012345678909") == "4012345678909FFF"
    assert validation_data_from_pan("4000123456789010") == "4000123456789010"
    assert validation_data_from_pan("4000123456789010123") == "4000123456789010"


def test_natural_pin_and_offset_match_psec_documented_example() -> None:
    assert natural_pin(PVK, "1122334455667788", 4, TABLE) == "4524"
    assert pin_offset(PVK, "1122334455667788", "4524", TABLE) == "0000"


@oracle
@given(pvk=pvks, pan=pans, pin=pins, table=tables)
def test_natural_pin_and_offset_agree_with_psec(pvk: bytes, pan: str, pin: str, table: str) -> None:
    validation_data = validation_data_from_pan(pan)
    verify_length = min(len(pan), 16)
    psec_natural = psec.pin.generate_ibm3624_pin(
        pvk, table, "0" * len(pin), pan, 0, verify_length, "F"
    )
    psec_offset = psec.pin.generate_ibm3624_offset(pvk, table, pin, pan, 0, verify_length, "F")
    assert natural_pin(pvk, validation_data, len(pin), table) == psec_natural
    assert pin_offset(pvk, validation_data, pin, table) == psec_offset


@given(pvk=pvks, pan=pans, pin=pins)
def test_offset_generated_for_a_pin_verifies_that_pin(pvk: bytes, pan: str, pin: str) -> None:
    validation_data = validation_data_from_pan(pan)
    offset = pin_offset(pvk, validation_data, pin)
    assert verify_offset(pvk, validation_data, pin, offset)


@given(pvk=pvks, pan=pans, pin=pins, position=st.integers(min_value=0, max_value=11))
def test_offset_rejects_a_pin_with_one_digit_changed(
    pvk: bytes, pan: str, pin: str, position: int
) -> None:
    validation_data = validation_data_from_pan(pan)
    offset = pin_offset(pvk, validation_data, pin)
    i = position % len(pin)
    wrong = pin[:i] + str((int(pin[i]) + 1) % 10) + pin[i + 1 :]
    assert not verify_offset(pvk, validation_data, wrong, offset)


def test_offset_does_not_match_a_pin_of_another_length() -> None:
    assert not verify_offset(PVK, "1122334455667788", "45240", "0000", TABLE)


def test_visa_pvv_matches_psec_documented_example() -> None:
    assert visa_pvv(PVK, "1122334455667788", 3, "4524") == "4021"


def test_visa_pvv_uses_hex_letters_when_the_cipher_has_too_few_decimal_digits() -> None:
    # TDES(PVK, "00000002755" "1" "1234") = ABD3FDFE2CF4DEFB: decimals 3, 2, 4, then A -> 0
    assert visa_pvv(PVK, "4000000000027550", 1, "1234") == "3240"


def test_visa_pvv_reads_only_the_first_four_pin_digits() -> None:
    assert visa_pvv(PVK, "1122334455667788", 3, "452499") == "4021"


@oracle
@given(pvk=pvks, pan=pans, pvki=st.integers(min_value=0, max_value=9), pin=pins)
def test_visa_pvv_agrees_with_psec(pvk: bytes, pan: str, pvki: int, pin: str) -> None:
    assert visa_pvv(pvk, pan, pvki, pin) == psec.pin.generate_visa_pvv(pvk, str(pvki), pin[:4], pan)


def test_visa_pvv_verification() -> None:
    assert verify_visa_pvv(PVK, "1122334455667788", 3, "4524", "4021")
    assert not verify_visa_pvv(PVK, "1122334455667788", 3, "4525", "4021")
    assert not verify_visa_pvv(PVK, "1122334455667788", 4, "4524", "4021")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: natural_pin(PVK[:8], "1122334455667788", 4), "pvk: must be 16 or 24 bytes, got 8"),
        (
            lambda: natural_pin(PVK, "11223344556677", 4),
            "validation_data: must be 16 hex digits, got 14 characters",
        ),
        (
            lambda: natural_pin(PVK, "112233445566778G", 4),
            "validation_data: must be 16 hex digits, got 16 characters",
        ),
        (lambda: natural_pin(PVK, "1122334455667788", 3), "pin_length: must be 4 to 12, got 3"),
        (
            lambda: natural_pin(PVK, "1122334455667788", 4, "0123456789ABCDEF"),
            "decimalization_table: must be 16 digits, got 16 characters",
        ),
        (
            lambda: pin_offset(PVK, "1122334455667788", "123"),
            "pin: must be 4 to 12 digits, got 3 characters",
        ),
        (
            lambda: verify_offset(PVK, "1122334455667788", "1234", "12a4"),
            "offset: must be 4 to 12 digits, got 4 characters",
        ),
        (
            lambda: validation_data_from_pan("123456789012"),
            "pan: must be 13 to 19 digits, got 12 characters",
        ),
        (lambda: visa_pvv(PVK, "1122334455667788", 10, "1234"), "pvki: must be 0 to 9, got 10"),
        (
            lambda: verify_visa_pvv(PVK, "1122334455667788", 3, "1234", "40211"),
            "pvv: must be 4 digits, got 5 characters",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message
