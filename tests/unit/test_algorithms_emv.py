"""EMV issuer cryptography: ICC master keys, session keys, ARQC, ARPC and issuer script MACs.

Published vectors come from pyemv (github.com/knovichikhin/pyemv): the worked examples in its
docstrings, and its HSM test suite, tests/test_kd_hsm.py, tests/test_ac_hsm.py and
tests/test_cvn_hsm.py, where key check values pin down every intermediate key. pyemv's functions
are also the oracle for random keys, PANs and transaction data.
"""

import doctest
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyemv import ac as pyemv_ac
from pyemv import kd as pyemv_kd
from pyemv import sm as pyemv_sm

from hsm_sim.algorithms import emv as emv_module
from hsm_sim.algorithms.emv import (
    ac,
    arpc1,
    arpc2,
    common_session_key,
    derive_session_key,
    icc_master_key_a,
    script_mac,
    secure_messaging_keys,
    verify_ac,
)
from hsm_sim.algorithms.kcv import kcv
from tests.oracle import oracle

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # pyemv uses the old TripleDES
)

# The issuer master keys of pyemv's HSM tests (AC, secure messaging integrity, confidentiality).
IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
IMK_SMI = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
IMK_SMC = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
R_HSM = bytes.fromhex("1234567890123456")  # the diversification value pyemv's HSM tests use
SK = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
ARQC = bytes.fromhex("1234567890ABCDEF")

# Visa CDOL1 data of pyemv's CVN 10 and CVN 18 HSM tests, 9F02 || 9F03 || 9F1A || 95 || 5F2A ||
# 9A || 9C || 9F37 || 82 || 9F36, to which each CVN appends its issuer application data.
VISA_CDOL1 = bytes.fromhex(
    "000000004000" "000000000000" "0124" "8000048000" "0124" "191105" "01" "52BF4585" "1800" "001C"
)

keys = st.binary(min_size=16, max_size=16)
pans = st.text("0123456789", min_size=12, max_size=19)
psns = st.text("0123456789", min_size=2, max_size=2)
cdol_data = st.binary(max_size=64)


def check_value(key: bytes) -> str:
    """The 2-byte KCV pyemv's HSM tests quote for each key."""
    return kcv(key, 2).hex().upper()


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(emv_module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("pan", "psn", "expected"),
    [
        # pyemv kd.derive_icc_mk_a docstring, and pyemv.kd module docstring
        ("12345678901234567", "01", "73AD54688CEF2934B0979857E3C719F1"),
        ("99012345678901234", "45", "67F8292358083E5EA7AB7FDA58D53B6B"),
    ],
)
def test_icc_master_key_a_matches_pyemv_examples(pan: str, psn: str, expected: str) -> None:
    assert icc_master_key_a(IMK_AC, pan, psn).hex().upper() == expected


def test_icc_master_key_a_keeps_the_rightmost_16_digits_of_pan_and_psn() -> None:
    # "12345678901234567" + "01" -> "4567890123456701"
    assert icc_master_key_a(IMK_AC, "12345678901234567", "01") == icc_master_key_a(
        IMK_AC, "45678901234567", "01"
    )


def test_icc_master_key_a_left_pads_short_pan_and_psn_with_zeros() -> None:
    # "123456789012" + "00" -> "0012345678901200"
    assert icc_master_key_a(IMK_AC, "123456789012", "00") == icc_master_key_a(
        IMK_AC, "00123456789012", "00"
    )


@oracle
@given(imk=keys, pan=pans, psn=psns)
def test_icc_master_key_a_agrees_with_pyemv(imk: bytes, pan: str, psn: str) -> None:
    key = icc_master_key_a(imk, pan, psn)
    assert key == pyemv_kd.derive_icc_mk_a(imk, pan, psn)
    assert all(byte.bit_count() % 2 == 1 for byte in key)  # odd parity, as an HSM stores it


def test_common_session_key_matches_pyemv_example() -> None:
    # pyemv kd.derive_common_sk docstring: R = ATC 001C || 00 x 6
    sk = common_session_key(IMK_AC, bytes.fromhex("001C"))
    assert sk.hex().upper() == "E9FB384AF807B940FEDCEA613461B0C4"


@oracle
@given(icc_master_key=keys, atc=st.binary(min_size=2, max_size=2))
def test_common_session_key_agrees_with_pyemv(icc_master_key: bytes, atc: bytes) -> None:
    expected = pyemv_kd.derive_common_sk(icc_master_key, atc + bytes(6))
    assert common_session_key(icc_master_key, atc) == expected


@oracle
@given(icc_master_key=keys, r=st.binary(min_size=8, max_size=8))
def test_derive_session_key_agrees_with_pyemv(icc_master_key: bytes, r: bytes) -> None:
    assert derive_session_key(icc_master_key, r) == pyemv_kd.derive_common_sk(icc_master_key, r)


def test_option_a_with_psn_matches_pyemv_hsm_vector() -> None:
    # pyemv tests/test_kd_hsm.py: test_derive_icc_mk_a_psn and test_derive_common_sk
    icc_mk = icc_master_key_a(IMK_AC, "12345678901234567", "45")
    assert check_value(icc_mk) == "FF08"
    sk = derive_session_key(icc_mk, R_HSM)
    assert check_value(sk) == "DF82"
    arqc = ac(sk, bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"), padding=2)
    assert arqc.hex().upper() == "19C1FBC83EBDC0D5"
    assert arpc1(icc_mk, arqc, bytes.fromhex("0000")).hex().upper() == "78A372523FA35A03"
    assert arpc1(sk, arqc, bytes.fromhex("0000")).hex().upper() == "C3620580668E5B65"


def test_option_a_with_psn_00_matches_pyemv_hsm_vector() -> None:
    # pyemv tests/test_kd_hsm.py: test_derive_icc_mk_a_no_psn (pyemv's default PSN is "00")
    icc_mk = icc_master_key_a(IMK_AC, "12345678901234567", "00")
    sk = derive_session_key(icc_mk, R_HSM)
    assert check_value(sk) == "3F4F"
    arqc = ac(sk, bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"), padding=2)
    assert arqc.hex().upper() == "8698A7319324FD93"
    assert arpc1(icc_mk, arqc, bytes.fromhex("0000")).hex().upper() == "BEA11C8F4A47EF6F"


def test_16_digit_pan_matches_pyemv_option_b_hsm_vector() -> None:
    # pyemv tests/test_kd_hsm.py: test_derive_icc_mk_b_pan16; option B is option A up to 16 digits
    icc_mk = icc_master_key_a(IMK_AC, "1234567890123456", "00")
    assert check_value(icc_mk) == "BAB0"
    sk = derive_session_key(icc_mk, R_HSM)
    assert check_value(sk) == "BC19"
    arqc = ac(sk, bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"), padding=2)
    assert arqc.hex().upper() == "0CE77D211CB5459A"
    assert arpc2(sk, arqc, bytes.fromhex("00000000")).hex().upper() == "8CD9AA5D"


@pytest.mark.parametrize(
    ("data", "padding", "arqc", "arpc"),
    [
        # pyemv tests/test_ac_hsm.py: EMV padding, then Visa padding with and without pad bytes
        ("0123456789ABCDEF0123456789ABCDEF", 2, "4B46013359B7A58B", "F8C9CECAABD55AD1"),
        ("0123456789ABCDEF0123456789ABCDEF01", 1, "2E141C6BC4A20DA8", "16A49AAB314B9262"),
        ("0123456789ABCDEF0123456789ABCDEF", 1, "922F3E83125EB46B", "8AE6E836084B0E80"),
    ],
)
def test_ac_and_arpc1_match_pyemv_hsm_vectors(
    data: str, padding: int, arqc: str, arpc: str
) -> None:
    icc_mk = icc_master_key_a(IMK_AC, "9901234567890123", "45")
    assert check_value(icc_mk) == "1DA5"
    sk = derive_session_key(icc_mk, R_HSM)
    assert check_value(sk) == "0995"
    cryptogram = ac(sk, bytes.fromhex(data), padding)
    assert cryptogram.hex().upper() == arqc
    assert arpc1(icc_mk, cryptogram, bytes.fromhex("0000")).hex().upper() == arpc


@pytest.mark.parametrize(
    ("proprietary", "arpc"),
    [
        # pyemv tests/test_ac_hsm.py: test_generate_arpc2 and test_generate_arpc2_no_prop_auth_data
        ("1234567890ABCDEF", "4962B76C"),
        ("", "7DFB1188"),
    ],
)
def test_arpc2_matches_pyemv_hsm_vectors(proprietary: str, arpc: str) -> None:
    sk = derive_session_key(icc_master_key_a(IMK_AC, "9901234567890123", "45"), R_HSM)
    arqc = bytes.fromhex("4B46013359B7A58B")
    csu = bytes.fromhex("00000000")
    assert arpc2(sk, arqc, csu, bytes.fromhex(proprietary)).hex().upper() == arpc


def test_visa_cvn10_matches_pyemv_hsm_vector() -> None:
    # pyemv tests/test_cvn_hsm.py: test_visa_cvn10. CVN 10 MACs under the ICC master key itself,
    # with padding method 1, over CDOL1 data plus the 4-byte CVR.
    icc_mk = icc_master_key_a(IMK_AC, "1234567890123456", "00")
    assert check_value(icc_mk) == "BAB0"
    arqc = ac(icc_mk, VISA_CDOL1 + bytes.fromhex("03A06010"), padding=1)
    assert arqc.hex().upper() == "29CCA15AE665FA2E"
    assert arpc1(icc_mk, arqc, bytes.fromhex("3030")).hex().upper() == "28993816AFAE4AEB"


def test_visa_cvn18_matches_pyemv_hsm_vector() -> None:
    # pyemv tests/test_cvn_hsm.py: test_visa_cvn18. Common session key from the ATC, padding
    # method 2 over CDOL1 data plus the whole issuer application data (9F10), ARPC method 2.
    icc_mk = icc_master_key_a(IMK_AC, "1234567890123456", "00")
    sk = common_session_key(icc_mk, bytes.fromhex("001C"))
    assert check_value(sk) == "22C8"
    arqc = ac(sk, VISA_CDOL1 + bytes.fromhex("06011203A0B800"), padding=2)
    assert arqc.hex().upper() == "7A788EA6B8A3E733"
    assert arpc2(sk, arqc, bytes.fromhex("00000000")).hex().upper() == "9AF514C1"


def test_visa_cvn18_matches_pyemv_cvn_module_example() -> None:
    # pyemv.cvn module docstring, VisaCVN18 with ATC 0FFF
    imk = bytes.fromhex("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    sk = common_session_key(icc_master_key_a(imk, "1234567890123456", "00"), bytes.fromhex("0FFF"))
    data = bytes.fromhex(
        "000000009999" "000000000000" "0840" "8000048000" "0840" "991231" "01" "52BF4585"
        "1800" "0FFF" "06011203A0B800"
    )
    arqc = ac(sk, data, padding=2)
    assert arqc.hex().upper() == "769577B5ABE9FE62"
    assert arpc2(sk, arqc, bytes.fromhex("00000000")).hex().upper() == "76503F48"


def test_interac_cvn133_matches_pyemv_hsm_vector() -> None:
    # pyemv tests/test_cvn_hsm.py: test_interac_cvn133. Session key R = ATC || 00 00 || UN
    # (as Mastercard CVN 16/17), secure-messaging keys with R = ARQC, ARPC method 1.
    atc, un = bytes.fromhex("001C"), bytes.fromhex("ABCDEF12")
    icc_mk = icc_master_key_a(IMK_AC, "1234567890123456", "00")
    sk = derive_session_key(icc_mk, atc + bytes(2) + un)
    assert check_value(sk) == "2FD5"
    data = bytes.fromhex(
        "000000009999" "000000000000" "0124" "8000000000" "0124" "209906" "00" "ABCDEF12"
        "1800" "001C" "1501850440B100000000B00000000000000000000000"
    )
    arqc = ac(sk, data, padding=2)
    assert arqc.hex().upper() == "18932FECA2D84326"
    assert arpc1(sk, arqc, bytes.fromhex("0000")).hex().upper() == "4DF171A49396C363"

    script_keys = secure_messaging_keys(
        icc_master_key_a(IMK_SMI, "1234567890123456", "00"),
        icc_master_key_a(IMK_SMC, "1234567890123456", "00"),
        arqc,
    )
    assert check_value(script_keys.integrity) == "08DF"
    assert check_value(script_keys.confidentiality) == "748D"
    pin_unblock = bytes.fromhex("8424000008")
    assert script_mac(script_keys.integrity, pin_unblock).hex().upper() == "B574ABB0A485A330"
    # The PIN change command 8424000210 || enciphered PIN block || MAC from the same test.
    pin_change = bytes.fromhex("8424000210" "382F36D5920D2391")
    assert script_mac(script_keys.integrity, pin_change).hex().upper() == "5CC7573F770298C9"


@pytest.mark.parametrize(
    ("session_key", "data", "padding", "expected"),
    [
        # pyemv ac.generate_ac docstring (EMV padding), pyemv.ac module docstring
        (
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB",
            "000000002000000000000000012400000080000124110309003804823E58000001",
            2,
            "3B76CF10FECD8789",
        ),
        (
            "29B33180E567CE38EA4CBC9D753B0E61",
            "0123456789ABCDEF0123456789ABCDEF",
            2,
            "FA624250B008B59A",
        ),
    ],
)
def test_ac_matches_pyemv_examples(
    session_key: str, data: str, padding: int, expected: str
) -> None:
    cryptogram = ac(bytes.fromhex(session_key), bytes.fromhex(data), padding)
    assert cryptogram.hex().upper() == expected


def test_arpcs_match_pyemv_examples() -> None:
    # pyemv ac.generate_arpc_1 / generate_arpc_2 docstrings, and the pyemv.ac module docstring
    assert arpc1(SK, ARQC, bytes.fromhex("0000")).hex().upper() == "F5E6F44147E2F1B0"
    assert arpc2(SK, ARQC, bytes.fromhex("00000000")).hex().upper() == "9308BEBC"
    module_sk = bytes.fromhex("29B33180E567CE38EA4CBC9D753B0E61")
    module_arqc = bytes.fromhex("FA624250B008B59A")
    assert arpc1(module_sk, module_arqc, bytes.fromhex("0000")).hex().upper() == "45D4255EEF10C920"
    assert arpc2(module_sk, module_arqc, bytes.fromhex("00000000")).hex().upper() == "CB56FA40"


def test_script_mac_matches_pyemv_examples() -> None:
    # pyemv.sm module docstring, and sm.generate_command_mac with ATC and ARQC appended
    sk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert script_mac(sk, bytes.fromhex("8424000008")).hex().upper() == "0BFFF5DF3FAA24E1"
    command = bytes.fromhex("8424000008" "FFFF" "1234567890123456")
    assert script_mac(sk, command).hex().upper() == "E07B8DF1B4184282"


@oracle
@given(session_key=keys, data=cdol_data, padding=st.sampled_from([1, 2]))
def test_ac_agrees_with_pyemv(session_key: bytes, data: bytes, padding: int) -> None:
    expected = pyemv_ac.generate_ac(session_key, data, pyemv_ac.PaddingType(padding))
    assert ac(session_key, data, padding) == expected


@oracle
@given(
    session_key=keys,
    arqc=st.binary(min_size=8, max_size=8),
    arc=st.binary(min_size=2, max_size=2),
)
def test_arpc1_agrees_with_pyemv(session_key: bytes, arqc: bytes, arc: bytes) -> None:
    assert arpc1(session_key, arqc, arc) == pyemv_ac.generate_arpc_1(session_key, arqc, arc)


@oracle
@given(
    session_key=keys,
    arqc=st.binary(min_size=8, max_size=8),
    csu=st.binary(min_size=4, max_size=4),
    proprietary=st.binary(max_size=8),
)
def test_arpc2_agrees_with_pyemv(
    session_key: bytes, arqc: bytes, csu: bytes, proprietary: bytes
) -> None:
    expected = pyemv_ac.generate_arpc_2(session_key, arqc, csu, proprietary)
    assert arpc2(session_key, arqc, csu, proprietary) == expected


@oracle
@given(smi=keys, smc=keys, arqc=st.binary(min_size=8, max_size=8))
def test_secure_messaging_keys_agree_with_pyemv(smi: bytes, smc: bytes, arqc: bytes) -> None:
    script_keys = secure_messaging_keys(smi, smc, arqc)
    assert script_keys.integrity == pyemv_kd.derive_common_sk(smi, arqc)
    assert script_keys.confidentiality == pyemv_kd.derive_common_sk(smc, arqc)


@oracle
@given(session_key=keys, command=st.binary(max_size=40), length=st.integers(4, 8))
def test_script_mac_agrees_with_pyemv(session_key: bytes, command: bytes, length: int) -> None:
    expected = pyemv_sm.generate_command_mac(session_key, command, length)
    assert script_mac(session_key, command, length) == expected


def test_verify_ac_accepts_the_right_cryptogram_and_rejects_others() -> None:
    sk = bytes.fromhex("29B33180E567CE38EA4CBC9D753B0E61")
    data = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
    assert verify_ac(sk, data, bytes.fromhex("FA624250B008B59A"), padding=2)
    assert not verify_ac(sk, data, bytes.fromhex("FA624250B008B59B"), padding=2)
    assert not verify_ac(sk, data, bytes.fromhex("FA624250B008B59A"), padding=1)
    assert not verify_ac(sk, data + b"\x00", bytes.fromhex("FA624250B008B59A"), padding=2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: icc_master_key_a(IMK_AC[:8], "1234567890123456", "00"),
            "imk: must be 16 bytes, got 8",
        ),
        (
            lambda: icc_master_key_a(IMK_AC, "12345678901", "00"),
            "pan: must be 12 to 19 digits, got 11 characters",
        ),
        (
            lambda: icc_master_key_a(IMK_AC, "12345678901234567890", "00"),
            "pan: must be 12 to 19 digits, got 20 characters",
        ),
        (
            lambda: icc_master_key_a(IMK_AC, "1234 5678 9012 3456", "00"),
            "pan: must be 12 to 19 digits, got 19 characters",
        ),
        (
            lambda: icc_master_key_a(IMK_AC, "1234567890123456", "1"),
            "psn: must be 2 digits, got 1 characters",
        ),
        (
            lambda: icc_master_key_a(IMK_AC, "1234567890123456", "0A"),
            "psn: must be 2 digits, got 2 characters",
        ),
        (
            lambda: derive_session_key(IMK_AC + IMK_AC[:8], R_HSM),
            "icc_master_key: must be 16 bytes, got 24",
        ),
        (lambda: derive_session_key(IMK_AC, R_HSM[:7]), "r: must be 8 bytes, got 7"),
        (
            lambda: common_session_key(IMK_AC, bytes.fromhex("00001C")),
            "atc: must be 2 bytes, got 3",
        ),
        (lambda: ac(SK[:5], b"data"), "session_key: must be 16 bytes, got 5"),
        (
            lambda: ac(SK, b"data", padding=3),
            "padding: must be 1 or 2 (ISO/IEC 9797-1 method), got 3",
        ),
        (lambda: verify_ac(SK, b"data", ARQC[:4]), "cryptogram: must be 8 bytes, got 4"),
        (lambda: arpc1(SK, ARQC[:7], bytes(2)), "arqc: must be 8 bytes, got 7"),
        (lambda: arpc1(SK, ARQC, bytes(1)), "arc: must be 2 bytes, got 1"),
        (lambda: arpc1(SK, ARQC, b"000"), "arc: must be 2 bytes, got 3"),
        (lambda: arpc2(SK, ARQC, bytes(3)), "csu: must be 4 bytes, got 3"),
        (
            lambda: arpc2(SK, ARQC, bytes(4), bytes(9)),
            "proprietary: must be 0 to 8 bytes, got 9",
        ),
        (
            lambda: secure_messaging_keys(IMK_SMI, IMK_SMC, ARQC[:4]),
            "arqc: must be 8 bytes, got 4",
        ),
        (
            lambda: script_mac(SK[:8], b"\x84\x24\x00\x00\x08"),
            "smi_session_key: must be 16 bytes, got 8",
        ),
        (
            lambda: script_mac(SK, b"\x84\x24\x00\x00\x08", length=9),
            "length: must be 4 to 8, got 9",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()
    assert str(excinfo.value) == message
