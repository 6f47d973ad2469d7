"""TDES DUKPT (ANSI X9.24-1:2009) against the standard's Annex A test vectors.

The Annex uses BDK 0123456789ABCDEFFEDCBA9876543210 and the device with initial KSN
FFFF9876543210E00000, and lists per KSN the current key and the PIN block that the PIN pad sends
for PIN 1234 on PAN 4012345678909 (ISO format 0, encrypted under the PIN key). The encrypted
PIN blocks check the derivation by a second route: PIN block encoding plus TDES, against an
independently published column.
"""

import doctest
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import dukpt, pinblock, tdes
from hsm_sim.algorithms.dukpt import (
    ksn_counter,
    make_ksn,
    next_ksn,
    tdes_derive_key,
    tdes_ipek,
    tdes_pin_key,
)

BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
INITIAL_KSN = bytes.fromhex("FFFF9876543210E00000")
IPEK = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
KEY_SET_ID = bytes.fromhex("FFFF987654")
DEVICE_ID = 0x19087


def ksn(tail: str) -> bytes:
    """The Annex device's KSN whose last 6 hex digits are ``tail``."""
    return bytes.fromhex("FFFF9876543210" + tail)


valid_counters = st.integers(min_value=1, max_value=dukpt.COUNTER_MASK).filter(
    lambda c: c.bit_count() <= 10
)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(dukpt)
    assert result.attempted > 0
    assert result.failed == 0


def test_ipek_matches_annex_a() -> None:
    assert tdes_ipek(BDK, INITIAL_KSN) == IPEK


@given(counter=valid_counters)
def test_ipek_ignores_the_transaction_counter(counter: int) -> None:
    assert tdes_ipek(BDK, make_ksn(KEY_SET_ID, DEVICE_ID, counter)) == IPEK


@pytest.mark.parametrize(
    ("tail", "current_key"),
    [
        ("E00001", "042666B49184CFA368DE9628D0397BC9"),
        ("E00002", "C46551CEF9FD24B0AA9AD834130D3BC7"),
        ("E00003", "0DF3D9422ACA56E547676D07AD6BADFA"),
        ("E00004", "279C0F6AEED0BE652B2C733E1383AE91"),
        ("E00005", "5F8DC6D2C845C125508DDC048093B83F"),
        ("EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176"),
    ],
)
def test_current_key_matches_annex_a(tail: str, current_key: str) -> None:
    assert tdes_derive_key(IPEK, ksn(tail)).hex().upper() == current_key


@pytest.mark.parametrize(
    ("tail", "pin_key"),
    [
        ("E00001", "042666B49184CF5C68DE9628D0397B36"),
        ("E00002", "C46551CEF9FD244FAA9AD834130D3B38"),
        ("E00003", "0DF3D9422ACA561A47676D07AD6BAD05"),
        ("E00004", "279C0F6AEED0BE9A2B2C733E1383AE6E"),
        ("E00005", "5F8DC6D2C845C1DA508DDC048093B8C0"),
        ("E00006", "5E415CB0BAF9F0C3D0C14B63FB62FFBC"),
        ("E00007", "0C8F780B7C8B492FAE84A9EB2A6CE69F"),
        ("E00008", "27F66D5244FF621EAA6F6120EDEB427F"),
    ],
)
def test_pin_key_is_current_key_with_pin_variant(tail: str, pin_key: str) -> None:
    assert tdes_pin_key(IPEK, ksn(tail)).hex().upper() == pin_key


ANNEX_A_ENCRYPTED_PIN_BLOCKS = {
    "E00001": "1B9C1845EB993A7A",
    "E00002": "10A01C8D02C69107",
    "E00003": "18DC07B94797B466",
    "E00004": "0BC79509D5645DF7",
    "E00005": "5BC0AF22AD87B327",
    "E00006": "A16DF70AE36158D8",
    "E00007": "27711C16CB257F8E",
    "E00008": "50E55547A5027551",
    "E00009": "536CF7F678ACFC8D",
    "E0000A": "EDABBA23221833FE",
    "E0000B": "2328981C57B4BDBA",
    "E0000C": "038D03CC926CF286",
    "E0000D": "6C8AA97088B62C68",
    "E0000E": "F17C9E1D72CD4950",
    "E0000F": "B170F6E7F7F2F64A",
    "E00010": "D5D9638559EF53D6",
    "E00011": "D544F8CDD292C863",
    "E00012": "7A21BD10F36DC41D",
    "E00013": "78649BD17D0DFA60",
    "E00014": "7E7E16EA0C31AD56",
    "E00015": "72105C22EBC791E6",
    "EFF800": "33365F5CC6F23C35",
    "EFF801": "3A86BF003F835C9D",
    "EFF802": "3DB977D05C36DF3F",
    "EFF804": "BA83243305712099",
    "EFF808": "B0DA04AC90A36D85",
    "EFF810": "2CF02BD9C309EEDA",
    "EFF820": "9D1E2F77AEEE81C6",
    "EFF840": "40870B0F8BA2011C",
    "EFF880": "22E340D6ABB40981",
    "EFF900": "1A4C10AFBA03A430",
    "EFFA00": "849763B43E5F9CFF",
    "EFFC00": "DEFC6F09F8927B71",
    "F00000": "73EC88AD0AC5830E",
}


@pytest.mark.parametrize(("tail", "encrypted"), ANNEX_A_ENCRYPTED_PIN_BLOCKS.items())
def test_pin_block_under_pin_key_matches_annex_a(tail: str, encrypted: str) -> None:
    clear = pinblock.encode_iso0("1234", "4012345678909")
    pin_key = tdes_pin_key(tdes_ipek(BDK, ksn(tail)), ksn(tail))
    assert tdes.encrypt_ecb(pin_key, clear).hex().upper() == encrypted


def test_next_ksn_walks_the_annex_a_sequences() -> None:
    start = ["E00000", "E00001", "E00002", "E00003", "E00004", "E00005"]
    tail_end = ["EFF800", "EFF801", "EFF802", "EFF804", "EFF808", "EFF810", "EFF820"]
    tail_end += ["EFF840", "EFF880", "EFF900", "EFFA00", "EFFC00", "F00000"]
    for sequence in (start, tail_end):
        for current, following in itertools.pairwise(sequence):
            assert next_ksn(ksn(current)) == ksn(following)


def test_next_ksn_is_exhausted_after_the_last_counter_with_ten_one_bits() -> None:
    last = make_ksn(KEY_SET_ID, DEVICE_ID, 0x1FF800)
    with pytest.raises(ValueError) as excinfo:
        next_ksn(last)
    assert str(excinfo.value) == "ksn: transaction counter exhausted, the device needs a new IPEK"


def test_next_ksn_visits_every_counter_with_at_most_ten_one_bits_exactly_once() -> None:
    current, visited = make_ksn(KEY_SET_ID, DEVICE_ID), 0
    with pytest.raises(ValueError, match="exhausted"):
        while True:
            current = next_ksn(current)
            visited += 1
    # Half of all 21-bit numbers have at most 10 one-bits; zero is the IPEK's slot.
    assert visited == 2**20 - 1
    assert ksn_counter(current) == 0x1FF800


@given(counter=st.integers(min_value=0, max_value=0x1FF7FF).filter(lambda c: c.bit_count() <= 10))
def test_next_ksn_never_exceeds_ten_one_bits_and_keeps_the_device(counter: int) -> None:
    following = next_ksn(make_ksn(KEY_SET_ID, DEVICE_ID, counter))
    assert ksn_counter(following) > counter
    assert ksn_counter(following).bit_count() <= 10
    assert following[:5] == KEY_SET_ID
    assert following == make_ksn(KEY_SET_ID, DEVICE_ID, ksn_counter(following))


@given(
    key_set_id=st.binary(min_size=5, max_size=5),
    device_id=st.integers(min_value=0, max_value=2**19 - 1),
    counter=valid_counters,
)
def test_make_ksn_packs_fields_that_ksn_counter_reads_back(
    key_set_id: bytes, device_id: int, counter: int
) -> None:
    value = make_ksn(key_set_id, device_id, counter)
    assert len(value) == 10
    assert value[:5] == key_set_id
    assert int.from_bytes(value[5:], "big") >> 21 == device_id
    assert ksn_counter(value) == counter


@given(counter=valid_counters)
def test_every_transaction_gets_a_key_different_from_the_ipek(counter: int) -> None:
    assert tdes_derive_key(IPEK, make_ksn(KEY_SET_ID, DEVICE_ID, counter)) != IPEK


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tdes_ipek(BDK, bytes(8)), "ksn: must be 10 bytes, got 8"),
        (
            lambda: tdes_ipek(BDK[:8], INITIAL_KSN),
            "bdk: must be a 16-byte double-length TDES key, got 8 bytes",
        ),
        (
            lambda: tdes_derive_key(IPEK + IPEK[:8], ksn("E00001")),
            "ipek: must be a 16-byte double-length TDES key, got 24 bytes",
        ),
        (
            lambda: tdes_derive_key(IPEK, INITIAL_KSN),
            "ksn: counter 0 is the IPEK's own slot and never a transaction key",
        ),
        (
            lambda: tdes_pin_key(IPEK, ksn("E007FF")),
            "ksn: counter 0x7ff has 11 one-bits, X9.24 allows at most 10",
        ),
        (lambda: ksn_counter(bytes(11)), "ksn: must be 10 bytes, got 11"),
        (
            lambda: next_ksn(ksn("E007FF")),
            "ksn: counter 0x7ff has 11 one-bits, X9.24 allows at most 10",
        ),
        (lambda: make_ksn(bytes(4), 1), "key_set_id: must be 5 bytes, got 4"),
        (lambda: make_ksn(KEY_SET_ID, 2**19), "device_id: must be 0 to 524287, got 524288"),
        (lambda: make_ksn(KEY_SET_ID, 1, 2**21), "counter: must be 0 to 2097151, got 2097152"),
        (
            lambda: make_ksn(KEY_SET_ID, 1, 0x7FF),
            "counter: 0x7ff has 11 one-bits, X9.24 allows at most 10",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message
