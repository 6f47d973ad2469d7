"""Key check values, and the TDES primitives they (and every other algorithm here) rest on.

Oracles: FIPS 81 / NIST SP 800-38B published values, and psec's own TDES and AES code.
"""

import doctest

import psec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import kcv as kcv_module
from hsm_sim.algorithms import tdes
from hsm_sim.algorithms.kcv import kcv
from tests.oracle import oracle

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec uses the old TripleDES
)

TEST_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
FIPS81_KEY = bytes.fromhex("0123456789ABCDEF")
FIPS81_PLAINTEXT = b"Now is the time for all "
NIST_AES_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")

tdes_keys = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=24, max_size=24))
blocks = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.binary(min_size=8 * n, max_size=8 * n)
)


def test_docstring_examples_hold() -> None:
    for module in (tdes, kcv_module):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


def test_single_des_matches_fips81_ecb_example() -> None:
    ciphertext = b"".join(
        tdes.des_encrypt_block(FIPS81_KEY, FIPS81_PLAINTEXT[i : i + 8]) for i in range(0, 24, 8)
    )
    assert ciphertext.hex().upper() == "3FA40E8A984D48156A271787AB8883F9893D51EC4B563B53"


def test_tdes_with_three_equal_keys_matches_fips81_cbc_example() -> None:
    ciphertext = tdes.encrypt_cbc(
        FIPS81_KEY * 3, FIPS81_PLAINTEXT, bytes.fromhex("1234567890ABCDEF")
    )
    assert ciphertext.hex().upper() == "E5C7CDDE872BF27C43E934008C389C0F683788499A7C05F6"


def test_double_length_key_is_run_as_k1_k2_k1() -> None:
    assert tdes.encrypt_ecb(TEST_KEY, bytes(8)) == tdes.encrypt_ecb(
        TEST_KEY + TEST_KEY[:8], bytes(8)
    )


@oracle
@given(key=tdes_keys, data=blocks)
def test_ecb_agrees_with_psec_and_decrypts_back(key: bytes, data: bytes) -> None:
    ciphertext = tdes.encrypt_ecb(key, data)
    assert ciphertext == psec.des.encrypt_tdes_ecb(key, data)
    assert tdes.decrypt_ecb(key, ciphertext) == data


@oracle
@given(key=tdes_keys, data=blocks, iv=st.binary(min_size=8, max_size=8))
def test_cbc_agrees_with_psec_and_decrypts_back(key: bytes, data: bytes, iv: bytes) -> None:
    ciphertext = tdes.encrypt_cbc(key, data, iv)
    assert ciphertext == psec.des.encrypt_tdes_cbc(key, iv, data)
    assert tdes.decrypt_cbc(key, ciphertext, iv) == data


@oracle
@given(key8=st.binary(min_size=8, max_size=8), block8=st.binary(min_size=8, max_size=8))
def test_single_des_agrees_with_psec_and_decrypts_back(key8: bytes, block8: bytes) -> None:
    ciphertext = tdes.des_encrypt_block(key8, block8)
    assert ciphertext == psec.des.encrypt_tdes_ecb(key8, block8)
    assert tdes.des_decrypt_block(key8, ciphertext) == block8


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tdes.encrypt_ecb(bytes(8), bytes(8)), "key: must be 16 or 24 bytes, got 8"),
        (
            lambda: tdes.decrypt_ecb(TEST_KEY, bytes(7)),
            "data: must be a non-empty multiple of 8 bytes, got 7",
        ),
        (
            lambda: tdes.encrypt_cbc(TEST_KEY, b""),
            "data: must be a non-empty multiple of 8 bytes, got 0",
        ),
        (lambda: tdes.encrypt_cbc(TEST_KEY, bytes(8), bytes(16)), "iv: must be 8 bytes, got 16"),
        (lambda: tdes.des_encrypt_block(TEST_KEY, bytes(8)), "key8: must be 8 bytes, got 16"),
        (lambda: tdes.des_decrypt_block(FIPS81_KEY, bytes(9)), "block8: must be 8 bytes, got 9"),
    ],
)
def test_tdes_rejects_bad_lengths_naming_the_argument(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message


def test_tdes_kcv_of_the_standard_test_key() -> None:
    assert kcv(TEST_KEY).hex().upper() == "08D7B4"
    assert kcv(TEST_KEY, 8).hex().upper() == "08D7B4FB629D0885"


@oracle
@given(key=tdes_keys, length=st.integers(min_value=1, max_value=8))
def test_tdes_kcv_agrees_with_psec(key: bytes, length: int) -> None:
    assert kcv(key, length) == psec.des.generate_kcv(key, length)


def _aes_cmac_of_zero_block(key: bytes) -> bytes:
    """SP 800-38B for one complete zero block: AES_K(0 XOR K1), with K1 = dbl(AES_K(0))."""
    l_value = int.from_bytes(psec.aes.encrypt_aes_ecb(key, bytes(16)), "big")
    k1 = ((l_value << 1) & ((1 << 128) - 1)) ^ (0x87 if l_value >> 127 else 0)
    return psec.aes.encrypt_aes_ecb(key, k1.to_bytes(16, "big"))


def test_cmac_subkey_route_reproduces_nist_sp800_38b_subkey() -> None:
    l_value = int.from_bytes(psec.aes.encrypt_aes_ecb(NIST_AES_KEY, bytes(16)), "big")
    k1 = ((l_value << 1) & ((1 << 128) - 1)) ^ (0x87 if l_value >> 127 else 0)
    assert f"{k1:032x}" == "fbeed618357133667c85e08f7236a8de"


def test_aes_kcv_is_cmac_of_a_zero_block() -> None:
    assert kcv(NIST_AES_KEY, algorithm="aes").hex().upper() == "7AD386"
    assert kcv(NIST_AES_KEY, 16, algorithm="aes") == _aes_cmac_of_zero_block(NIST_AES_KEY)


@oracle
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    length=st.integers(min_value=1, max_value=16),
)
def test_aes_kcv_agrees_with_an_independent_cmac(key: bytes, length: int) -> None:
    assert kcv(key, length, algorithm="aes") == _aes_cmac_of_zero_block(key)[:length]


def test_same_16_bytes_give_different_kcvs_as_tdes_and_as_aes() -> None:
    assert kcv(TEST_KEY, algorithm="tdes") != kcv(TEST_KEY, algorithm="aes")


@pytest.mark.parametrize(
    ("key", "length", "algorithm", "message"),
    [
        (bytes(32), 3, "tdes", "key: a TDES key must be 16 or 24 bytes, got 32"),
        (bytes(8), 3, "aes", "key: an AES key must be 16, 24 or 32 bytes, got 8"),
        (TEST_KEY, 9, "tdes", "length: must be 1 to 8 for tdes, got 9"),
        (TEST_KEY, 0, "aes", "length: must be 1 to 16 for aes, got 0"),
        (TEST_KEY, 3, "des", "algorithm: must be 'tdes' or 'aes', got 'des'"),
    ],
)
def test_kcv_rejects_bad_arguments_naming_them(
    key: bytes, length: int, algorithm: str, message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        kcv(key, length, algorithm=algorithm)  # type: ignore[arg-type]
    assert str(excinfo.value) == message
