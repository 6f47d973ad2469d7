"""Visa CVV / Mastercard CVC; psec is the oracle, plus Visa's published example."""

import doctest

import psec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hsm_sim.algorithms import cvv as cvv_module
from hsm_sim.algorithms.cvv import SERVICE_CODE_CVV2, SERVICE_CODE_ICVV, cvv, verify_cvv
from tests.oracle import oracle

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec uses the old TripleDES
)

CVK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")

cvks = st.binary(min_size=16, max_size=16)
pans = st.text("0123456789", min_size=13, max_size=19)
expiries = st.text("0123456789", min_size=4, max_size=4)
service_codes = st.text("0123456789", min_size=3, max_size=3)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(cvv_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_matches_visa_published_example() -> None:
    assert cvv(CVK, "4123456789012345", "8701", "101") == "561"


def test_matches_psec_documented_example() -> None:
    assert cvv(CVK, "1234567890123456", "9912", "220") == "170"


def test_cvv2_and_icvv_are_the_same_algorithm_with_fixed_service_codes() -> None:
    assert SERVICE_CODE_CVV2 == "000"
    assert SERVICE_CODE_ICVV == "999"
    assert cvv(CVK, "4123456789012345", "8701", SERVICE_CODE_CVV2) == "636"
    assert cvv(CVK, "4123456789012345", "8701", SERVICE_CODE_ICVV) == "651"


def test_uses_hex_letters_when_the_cipher_has_too_few_decimal_digits() -> None:
    # The result block has only two decimal digits (5, 4); its first letter, D, counts as 3.
    assert psec.cvv.generate_cvv(CVK, "4000000000009232", "2512", "101") == "54"
    assert cvv(CVK, "4000000000009232", "2512", "101") == "543"


@oracle
@given(cvk=cvks, pan=pans, expiry=expiries, service_code=service_codes)
def test_agrees_with_psec(cvk: bytes, pan: str, expiry: str, service_code: str) -> None:
    expected = psec.cvv.generate_cvv(cvk, pan, expiry, service_code)
    assume(len(expected) == 3)  # psec skips the letter fallback, needed once in ~20,000 cards
    assert cvv(cvk, pan, expiry, service_code) == expected


def test_verify_accepts_the_right_value_and_rejects_others() -> None:
    assert verify_cvv(CVK, "4123456789012345", "8701", "101", "561")
    assert not verify_cvv(CVK, "4123456789012345", "8701", "101", "562")
    assert not verify_cvv(CVK, "4123456789012345", "8702", "101", "561")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: cvv(CVK + CVK[:8], "4123456789012345", "8701", "101"),
            "cvk: must be 16 bytes (key A || key B), got 24",
        ),
        (
            lambda: cvv(CVK, "412345678901", "8701", "101"),
            "pan: must be 13 to 19 digits, got 12 characters",
        ),
        (
            lambda: cvv(CVK, "4123456789012345", "87/01", "101"),
            "expiry_yymm: must be 4 digits, got 5 characters",
        ),
        (
            lambda: cvv(CVK, "4123456789012345", "8701", "1O1"),
            "service_code: must be 3 digits, got 3 characters",
        ),
        (
            lambda: verify_cvv(CVK, "4123456789012345", "8701", "101", "56"),
            "value: must be 3 digits, got 2 characters",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message
