"""ISO/IEC 9797-1 padding, the retail MAC (MAC algorithm 3) and CMAC.

Published vectors: NIST SP 800-38B appendix D (AES and TDEA CMAC examples), ICAO Doc 9303
part 11 appendix D (retail MAC with padding method 2 in passport BAC and secure messaging),
Bouncy Castle's ISO9797Alg3MacTest, and psec's own test suite (tests/test_mac.py).
Oracles: psec, pyemv and cryptography's CMAC.
"""

import doctest
import warnings
from collections.abc import Callable

import psec
import pyemv
import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import mac as mac_module
from hsm_sim.algorithms.mac import (
    aes_cmac,
    pad,
    retail_mac,
    tdes_cmac,
    verify_aes_cmac,
    verify_retail_mac,
    verify_tdes_cmac,
)
from tests.oracle import oracle

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43 keeps TripleDES beside AES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec and pyemv use old TripleDES
)

BC_KEY = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
NIST_MESSAGE = bytes.fromhex(
    "6BC1BEE22E409F96E93D7E117393172A"
    "AE2D8A571E03AC9C9EB76FAC45AF8E51"
    "30C81C46A35CE411E5FBC1191A0A52EF"
    "F69F2445DF4F9B17AD2B417BE66C3710"
)
NIST_AES_128_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
NIST_AES_192_KEY = bytes.fromhex("8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B")
NIST_AES_256_KEY = bytes.fromhex(
    "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4"
)
NIST_TDES_3KEY = bytes.fromhex("8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5")
NIST_TDES_2KEY = bytes.fromhex("4CF15134A2850DD58A3D10BA80570D38")

double_keys = st.binary(min_size=16, max_size=16)
tdes_keys = st.one_of(double_keys, st.binary(min_size=24, max_size=24))
aes_keys = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
messages = st.binary(max_size=80)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(mac_module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("data", "method", "block_size", "padded"),
    [
        # psec tests/test_mac.py, the rows with 8-byte blocks
        ("1234", 1, 8, "1234000000000000"),
        ("1234567890123456", 1, 8, "1234567890123456"),
        ("1234", 2, 8, "1234800000000000"),
        ("12345678901234", 2, 8, "1234567890123480"),
        ("1234567890123456", 2, 8, "12345678901234568000000000000000"),
        ("1234", 3, 8, "00000000000000101234000000000000"),
        ("1234567890123456", 3, 8, "00000000000000401234567890123456"),
        # empty data still yields a block; 0x80 for method 2 (ICAO 9303, ISO 7816-4)
        ("", 1, 8, "0000000000000000"),
        ("", 2, 8, "8000000000000000"),
        ("0001020304050607", 2, 16, "00010203040506078000000000000000"),
    ],
)
def test_pads_by_iso_9797_1_methods(data: str, method: int, block_size: int, padded: str) -> None:
    assert pad(bytes.fromhex(data), method, block_size).hex().upper() == padded


@oracle
@given(data=messages, method=st.sampled_from([1, 2, 3]), block_size=st.sampled_from([8, 16]))
def test_padding_agrees_with_psec(data: bytes, method: int, block_size: int) -> None:
    psec_pad = {1: psec.mac.pad_iso_1, 2: psec.mac.pad_iso_2, 3: psec.mac.pad_iso_3}[method]
    assert pad(data, method, block_size) == psec_pad(data, block_size)


def test_retail_mac_matches_bouncy_castle_iso9797alg3mactest() -> None:
    # bc-java crypto/test/ISO9797Alg3MacTest.java: DES engine, no padding needed (16 bytes)
    assert retail_mac(BC_KEY, b"Hello World !!!!", padding=1).hex().upper() == "F09B856213BAB83B"


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        # ICAO Doc 9303 part 11 appendix D.3: BAC mutual authentication, E_IFD and E_IC
        (
            "7962D9ECE03D1ACD4C76089DCE131543",
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2",
            "5F1448EEA8AD90A7",
        ),
        (
            "7962D9ECE03D1ACD4C76089DCE131543",
            "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F",
            "2F2D235D074D7449",
        ),
        # ICAO Doc 9303 part 11 appendix D.4: secure messaging commands and responses
        (
            "F1CB1F1FB5ADF208806B89DC579DC1F8",
            "887022120C06C2270CA4020C800000008709016375432908C044F6",
            "BF8B92D635FF24F8",
        ),
        ("F1CB1F1FB5ADF208806B89DC579DC1F8", "887022120C06C22899029000", "FA855A5D4C50A8ED"),
        (
            "F1CB1F1FB5ADF208806B89DC579DC1F8",
            "887022120C06C2290CB0000080000000970104",
            "ED6705417E96BA55",
        ),
        (
            "F1CB1F1FB5ADF208806B89DC579DC1F8",
            "887022120C06C22A8709019FF0EC34F992265199029000",
            "AD55CC17140B2DED",
        ),
        (
            "F1CB1F1FB5ADF208806B89DC579DC1F8",
            "887022120C06C22C871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A99029000",
            "C8B2787EAEA07D74",
        ),
    ],
)
def test_retail_mac_matches_icao_9303_worked_examples(key: str, data: str, expected: str) -> None:
    mac = retail_mac(bytes.fromhex(key), bytes.fromhex(data), padding=2)
    assert mac.hex().upper() == expected


@pytest.mark.parametrize(
    ("padding", "length", "expected"),
    [
        (1, 8, "3DDE5C5511661CBF"),
        (2, 8, "E16941032C3BC7D4"),
        (3, 8, "BA90F750EF43F668"),
        (1, 4, "3DDE5C55"),
        (2, 4, "E1694103"),
        (3, 4, "BA90F750"),
    ],
)
def test_retail_mac_matches_psec_test_suite(padding: int, length: int, expected: str) -> None:
    # psec passes "AAAAAAAAAAAAAAAA" and "BBBBBBBBBBBBBBBB" as K1=K2 TDES keys, i.e. DES keys
    # "AAAAAAAA" and "BBBBBBBB", which is our double-length key "AAAAAAAABBBBBBBB".
    mac = retail_mac(b"AAAAAAAABBBBBBBB", b"hello world", padding, length)
    assert mac.hex().upper() == expected


def test_retail_mac_default_is_padding_method_2_and_8_bytes() -> None:
    assert retail_mac(BC_KEY, b"Hello World !!!!").hex().upper() == "9C349B19B80451F5"


@oracle
@given(key=double_keys, data=messages, padding=st.sampled_from([1, 2, 3]), length=st.integers(4, 8))
def test_retail_mac_agrees_with_psec(key: bytes, data: bytes, padding: int, length: int) -> None:
    expected = psec.mac.generate_retail_mac(key[:8], key[8:], data, padding, length)
    assert retail_mac(key, data, padding, length) == expected


@oracle
@given(key=double_keys, data=messages, padding=st.sampled_from([1, 2]))
def test_retail_mac_agrees_with_pyemv(key: bytes, data: bytes, padding: int) -> None:
    expected = pyemv.mac.mac_iso9797_3(key[:8], key[8:], data, padding)
    assert retail_mac(key, data, padding) == expected


def test_verify_retail_mac_accepts_the_right_mac_and_rejects_others() -> None:
    assert verify_retail_mac(BC_KEY, b"Hello World !!!!", bytes.fromhex("F09B856213BAB83B"), 1)
    assert verify_retail_mac(BC_KEY, b"Hello World !!!!", bytes.fromhex("F09B8562"), 1)
    assert not verify_retail_mac(BC_KEY, b"Hello World !!!!", bytes.fromhex("F09B856213BAB83C"), 1)
    assert not verify_retail_mac(BC_KEY, b"Hello World !!!!", bytes.fromhex("F09B856213BAB83B"))
    assert not verify_retail_mac(BC_KEY, b"Hello World !!!?", bytes.fromhex("F09B856213BAB83B"), 1)


@pytest.mark.parametrize(
    ("key", "message_length", "expected"),
    [
        # NIST SP 800-38B appendix D.1 (AES-128), D.2 (AES-192), D.3 (AES-256): examples 1 to 4
        (NIST_AES_128_KEY, 0, "BB1D6929E95937287FA37D129B756746"),
        (NIST_AES_128_KEY, 16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (NIST_AES_128_KEY, 40, "DFA66747DE9AE63030CA32611497C827"),
        (NIST_AES_128_KEY, 64, "51F0BEBF7E3B9D92FC49741779363CFE"),
        (NIST_AES_192_KEY, 0, "D17DDF46ADAACDE531CAC483DE7A9367"),
        (NIST_AES_192_KEY, 16, "9E99A7BF31E710900662F65E617C5184"),
        (NIST_AES_192_KEY, 40, "8A1DE5BE2EB31AAD089A82E6EE908B0E"),
        (NIST_AES_192_KEY, 64, "A1D5DF0EED790F794D77589659F39A11"),
        (NIST_AES_256_KEY, 0, "028962F61B7BF89EFC6B551F4667D983"),
        (NIST_AES_256_KEY, 16, "28A7023F452E8F82BD4BF28D8C37C35C"),
        (NIST_AES_256_KEY, 40, "AAF3D8F1DE5640C232F5B169B9C911E6"),
        (NIST_AES_256_KEY, 64, "E1992190549F6ED5696A2C056C315410"),
    ],
)
def test_aes_cmac_matches_nist_sp800_38b(key: bytes, message_length: int, expected: str) -> None:
    assert aes_cmac(key, NIST_MESSAGE[:message_length]).hex().upper() == expected


@oracle
@given(key=aes_keys, data=messages, length=st.integers(4, 16))
def test_aes_cmac_is_cryptography_cmac_truncated(key: bytes, data: bytes, length: int) -> None:
    cmac = CMAC(algorithms.AES(key))
    cmac.update(data)
    assert aes_cmac(key, data, length) == cmac.finalize()[:length]


def test_verify_aes_cmac_accepts_the_right_mac_and_rejects_others() -> None:
    data = NIST_MESSAGE[:16]
    assert verify_aes_cmac(NIST_AES_128_KEY, data, bytes.fromhex("070A16B46B4D4144"))
    assert not verify_aes_cmac(NIST_AES_128_KEY, data, bytes.fromhex("070A16B46B4D4145"))
    assert not verify_aes_cmac(NIST_AES_192_KEY, data, bytes.fromhex("070A16B46B4D4144"))


@pytest.mark.parametrize(
    ("key", "message_length", "expected"),
    [
        # NIST SP 800-38B appendix D, three-key TDEA examples 1 to 4
        (NIST_TDES_3KEY, 0, "B7A688E122FFAF95"),
        (NIST_TDES_3KEY, 8, "8E8F293136283797"),
        (NIST_TDES_3KEY, 20, "743DDBE0CE2DC2ED"),
        (NIST_TDES_3KEY, 32, "33E6B1092400EAE5"),
        # NIST SP 800-38B appendix D, two-key TDEA examples 5 to 8 (Key3 = Key1)
        (NIST_TDES_2KEY, 0, "BD2EBF9A3BA00361"),
        (NIST_TDES_2KEY, 8, "4FF2AB813C53CE83"),
        (NIST_TDES_2KEY, 20, "62DD1B471902BD4E"),
        (NIST_TDES_2KEY, 32, "31B1E431DABC4EB8"),
    ],
)
def test_tdes_cmac_matches_nist_sp800_38b(key: bytes, message_length: int, expected: str) -> None:
    assert tdes_cmac(key, NIST_MESSAGE[:message_length]).hex().upper() == expected


@oracle
@given(key=tdes_keys, data=messages, length=st.integers(4, 8))
def test_tdes_cmac_agrees_with_cryptography(key: bytes, data: bytes, length: int) -> None:
    three_key = key if len(key) == 24 else key + key[:8]
    cmac = CMAC(TripleDES(three_key))
    cmac.update(data)
    assert tdes_cmac(key, data, length) == cmac.finalize()[:length]


def test_verify_tdes_cmac_accepts_the_right_mac_and_rejects_others() -> None:
    data = NIST_MESSAGE[:8]
    assert verify_tdes_cmac(NIST_TDES_3KEY, data, bytes.fromhex("8E8F2931"))
    assert not verify_tdes_cmac(NIST_TDES_3KEY, data, bytes.fromhex("8E8F2930"))
    assert not verify_tdes_cmac(NIST_TDES_2KEY, data, bytes.fromhex("8E8F2931"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: pad(b"1234", 0),
            "method: must be 1, 2 or 3 (ISO/IEC 9797-1 padding), got 0",
        ),
        (lambda: pad(b"1234", 1, 4), "block_size: must be 8 or 16, got 4"),
        (
            lambda: retail_mac(BC_KEY + BC_KEY[:8], b"data"),
            "key: must be 16 bytes (DES key A || DES key B), got 24",
        ),
        (
            lambda: retail_mac(BC_KEY, b"data", padding=4),
            "padding: must be 1, 2 or 3 (ISO/IEC 9797-1 padding), got 4",
        ),
        (lambda: retail_mac(BC_KEY, b"data", length=3), "length: must be 4 to 8, got 3"),
        (lambda: retail_mac(BC_KEY, b"data", length=9), "length: must be 4 to 8, got 9"),
        (
            lambda: verify_retail_mac(BC_KEY, b"data", bytes(3)),
            "mac: must be 4 to 8 bytes, got 3",
        ),
        (
            lambda: aes_cmac(bytes(8), b"data"),
            "key: an AES key must be 16, 24 or 32 bytes, got 8",
        ),
        (lambda: aes_cmac(NIST_AES_128_KEY, b"data", 17), "length: must be 4 to 16, got 17"),
        (
            lambda: verify_aes_cmac(NIST_AES_128_KEY, b"data", bytes(17)),
            "mac: must be 4 to 16 bytes, got 17",
        ),
        (lambda: tdes_cmac(bytes(8), b"data"), "key: a TDES key must be 16 or 24 bytes, got 8"),
        (
            lambda: verify_tdes_cmac(NIST_TDES_2KEY, b"data", bytes(2)),
            "mac: must be 4 to 8 bytes, got 2",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()
    assert str(excinfo.value) == message
