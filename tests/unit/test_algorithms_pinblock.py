"""ISO 9564-1 clear PIN blocks, formats 0, 1 and 3; psec is the oracle for formats 0 and 3."""

import doctest

import psec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import pinblock
from hsm_sim.algorithms.pinblock import (
    account_number_12,
    decode_iso0,
    decode_iso1,
    decode_iso3,
    encode_iso0,
    encode_iso1,
    encode_iso3,
)
from tests.oracle import oracle

pins = st.text("0123456789", min_size=4, max_size=12)
pans = st.text("0123456789", min_size=13, max_size=19)
fills = st.binary(min_size=7, max_size=7)
format3_fills = st.lists(st.sampled_from("ABCDEF"), min_size=14, max_size=14).map(
    lambda nibbles: bytes.fromhex("".join(nibbles))
)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(pinblock)
    assert result.attempted > 0
    assert result.failed == 0


def test_account_number_is_the_12_digits_before_the_check_digit() -> None:
    assert account_number_12("4012345678909") == "401234567890"
    assert account_number_12("5544332211009966") == "433221100996"


def test_format0_matches_x9_24_annex_a_clear_pin_block() -> None:
    assert encode_iso0("1234", "4012345678909").hex().upper() == "041274EDCBA9876F"


def test_format0_matches_psec_documented_example() -> None:
    assert encode_iso0("1234", "5544332211009966").hex().upper() == "041277CDDEEFF669"


def test_format0_with_a_12_digit_pin_keeps_two_fill_nibbles() -> None:
    block = encode_iso0("123456789012", "4012345678909")
    assert block.hex().upper() == "0C1274444CC66A6F"  # 0C123456789012FF XOR 0000401234567890
    assert decode_iso0(block, "4012345678909") == "123456789012"


@oracle
@given(pin=pins, pan=pans)
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_format0_agrees_with_psec_both_ways(pin: str, pan: str) -> None:
    block = encode_iso0(pin, pan)
    assert block == psec.pinblock.encode_pinblock_iso_0(pin, pan)
    assert decode_iso0(block, pan) == pin
    assert psec.pinblock.decode_pinblock_iso_0(block, pan) == pin


def test_format1_layout_is_control_length_pin_then_fill() -> None:
    block = encode_iso1("98765", bytes.fromhex("0123456789ABCD"))
    assert block.hex().upper() == "1598765012345678"


@given(pin=pins, fill=fills)
def test_format1_round_trips(pin: str, fill: bytes) -> None:
    assert decode_iso1(encode_iso1(pin, fill)) == pin


def test_format1_without_fill_draws_fresh_random_fill() -> None:
    first, second = encode_iso1("1234"), encode_iso1("1234")
    assert first[:3] == second[:3] == bytes.fromhex("141234")
    assert first[3:] != second[3:]  # 40 random bits; equal once in 2**40 runs


def test_format3_with_given_fill_is_exact() -> None:
    block = encode_iso3("1234", "4012345678909", bytes.fromhex("ABCDEFABCDEFAB"))
    assert block.hex().upper() == "341274B9F9B9D35D"


@oracle
@given(pin=pins, pan=pans, fill=format3_fills)
@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_format3_agrees_with_psec_both_ways(pin: str, pan: str, fill: bytes) -> None:
    assert psec.pinblock.decode_pinblock_iso_3(encode_iso3(pin, pan, fill), pan) == pin
    assert decode_iso3(psec.pinblock.encode_pinblock_iso_3(pin, pan), pan) == pin


@given(pin=pins, pan=pans)
def test_format3_random_fill_is_always_a_to_f(pin: str, pan: str) -> None:
    block = encode_iso3(pin, pan)
    pin_field = bytes(
        a ^ b for a, b in zip(block, bytes.fromhex("0000" + pan[-13:-1]), strict=True)
    )
    assert all(nibble in "ABCDEF" for nibble in pin_field.hex().upper()[2 + len(pin) :])
    assert decode_iso3(block, pan) == pin


def test_format0_block_read_with_another_pan_is_rejected() -> None:
    block = encode_iso0("1234", "4012345678909")
    with pytest.raises(ValueError) as excinfo:
        decode_iso0(block, "4111111111111111")
    assert str(excinfo.value) == "block: fill nibbles are invalid for format 0 (wrong PAN or key?)"


def test_decoding_checks_the_control_field() -> None:
    with pytest.raises(ValueError) as excinfo:
        decode_iso1(encode_iso0("1234", "4012345678909"))
    assert str(excinfo.value) == "block: control field must be 1, got 0"


def test_decoding_checks_the_pin_length() -> None:
    with pytest.raises(ValueError) as excinfo:
        decode_iso1(bytes.fromhex("1312300000000000"))
    assert str(excinfo.value) == "block: PIN length must be 4 to 12, got 3"


def test_decoding_checks_the_pin_digits() -> None:
    with pytest.raises(ValueError) as excinfo:
        decode_iso1(bytes.fromhex("14123A0000000000"))
    assert str(excinfo.value) == "block: PIN digits must be 0 to 9"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: encode_iso0("123", "4012345678909"),
            "pin: must be 4 to 12 digits, got 3 characters",
        ),
        (lambda: encode_iso1("1234567890123"), "pin: must be 4 to 12 digits, got 13 characters"),
        (lambda: encode_iso1("12a4"), "pin: must be 4 to 12 digits, got 4 characters"),
        (
            lambda: encode_iso0("1234", "401234567890"),
            "pan: must be 13 to 19 digits, got 12 characters",
        ),
        (
            lambda: account_number_12("4012-3456-7890"),
            "pan: must be 13 to 19 digits, got 14 characters",
        ),
        (lambda: encode_iso1("1234", bytes(8)), "random_fill: must be 7 bytes, got 8"),
        (
            lambda: encode_iso3("1234", "4012345678909", bytes(7)),
            "random_fill: format 3 fill nibbles must each be A to F",
        ),
        (lambda: decode_iso0(bytes(16), "4012345678909"), "block: must be 8 bytes, got 16"),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message


def test_errors_never_echo_the_pin_or_the_pan() -> None:
    secrets_in_play = ["98765", "4012345678909", "401234567890"]
    calls = [
        lambda: encode_iso0("98765", "40123456789"),
        lambda: encode_iso0("98765x", "4012345678909"),
        lambda: decode_iso0(encode_iso0("98765", "4012345678909"), "5544332211009966"),
        lambda: decode_iso3(encode_iso0("98765", "4012345678909"), "4012345678909"),
    ]
    for call in calls:
        with pytest.raises(ValueError) as excinfo:
            call()
        assert not any(secret in str(excinfo.value) for secret in secrets_in_play)
