"""Offline data authentication PKI (EMV Book 2 sections 5 and 6).

Each signed object is opened here with plain ``pow`` and its block compared with one rebuilt
field by field from the Book 2 table, the SHA-1 computed with hashlib: an independent check of
the layout. Tampered objects are re-signed with the signer's key where a test needs to reach one
particular verification step; the error must name that step.
"""

import doctest
import hashlib
import stat
from pathlib import Path

import pytest

from terminals.emv import pki as pki_module
from terminals.emv.pki import (
    TEST_CA_INDEX,
    RsaPrivate,
    RsaPublic,
    TestPki,
    icc_certificate,
    issuer_certificate,
    recover_icc_key,
    recover_issuer_key,
    sign_dynamic_data,
    sign_static_data,
    verify_dynamic_data,
    verify_static_data,
)

PAN = "4761739001010010"
OTHER_PAN = "4761739001010028"
ISSUER_ID = "476173"
TODAY = "2501"  # YYMM
STATIC = bytes.fromhex("5A084761739001010010 5F2403301231 82021980")
SERIAL = bytes.fromhex("000102")


@pytest.fixture(scope="module")
def ca() -> RsaPrivate:
    return RsaPrivate.generate(1408)  # 176 bytes: room for a 140-byte issuer key


@pytest.fixture(scope="module")
def issuer() -> RsaPrivate:
    return RsaPrivate.generate(1152)  # 144 bytes: 4 of them in the remainder 92


@pytest.fixture(scope="module")
def short_issuer() -> RsaPrivate:
    return RsaPrivate.generate(1024)  # 128 bytes: fits in the certificate, no remainder


@pytest.fixture(scope="module")
def icc() -> RsaPrivate:
    return RsaPrivate.generate(1024)  # 128 bytes: 26 in the remainder 9F48 under `issuer`


@pytest.fixture(scope="module")
def icc_65537() -> RsaPrivate:
    return RsaPrivate.generate(1024, exponent=65537)  # fits under a 1408-bit issuer key


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def open_block(key: RsaPublic, signature: bytes) -> bytes:
    """Raw RSA recovery, independent of the module under test."""
    n = int.from_bytes(key.modulus, "big")
    e = int.from_bytes(key.exponent, "big")
    return pow(int.from_bytes(signature, "big"), e, n).to_bytes(len(key.modulus), "big")


def forge(signer: RsaPrivate, block: bytes) -> bytes:
    """Sign any block with the real key, to reach a chosen verification step."""
    n = int.from_bytes(signer.public.modulus, "big")
    return pow(int.from_bytes(block, "big"), signer.d, n).to_bytes(len(block), "big")


def altered(block: bytes, position: int, value: int) -> bytes:
    return block[:position] + bytes([value]) + block[position + 1 :]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(pki_module).failed == 0


# --- issuer public key certificate (Book 2 Table 6, section 5.3) -----------------------------


def test_issuer_certificate_follows_book_2_table_6(ca: RsaPrivate, issuer: RsaPrivate) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    key = issuer.public
    assert len(certificate) == 176 and remainder == key.modulus[140:] and len(remainder) == 4
    fields = (
        b"\x02" + bytes.fromhex("476173FF") + bytes.fromhex("1230") + SERIAL + b"\x01\x01"
        + bytes([144, 1]) + key.modulus[:140]
    )
    expected_hash = sha1(fields + remainder + key.exponent)
    assert open_block(ca.public, certificate) == b"\x6a" + fields + expected_hash + b"\xbc"


def test_issuer_key_that_fits_is_padded_with_bb_and_has_no_remainder(
    ca: RsaPrivate, short_issuer: RsaPrivate
) -> None:
    certificate, remainder = issuer_certificate(ca, short_issuer.public, "4761", "1230", SERIAL)
    key_field = short_issuer.public.modulus + b"\xbb" * 12
    fields = (
        b"\x02" + bytes.fromhex("4761FFFF") + bytes.fromhex("1230") + SERIAL + b"\x01\x01"
        + bytes([128, 1]) + key_field
    )
    expected_hash = sha1(fields + short_issuer.public.exponent)
    assert remainder == b""
    assert open_block(ca.public, certificate) == b"\x6a" + fields + expected_hash + b"\xbc"
    recovered = recover_issuer_key(ca.public, certificate, b"", b"\x03", PAN, TODAY)
    assert recovered == short_issuer.public


def test_issuer_key_is_recovered_with_its_remainder(ca: RsaPrivate, issuer: RsaPrivate) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    recovered = recover_issuer_key(ca.public, certificate, remainder, b"\x03", PAN, TODAY)
    assert recovered == issuer.public


def test_issuer_certificate_is_valid_through_its_expiry_month(
    ca: RsaPrivate, issuer: RsaPrivate
) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "0125", SERIAL)
    assert recover_issuer_key(ca.public, certificate, remainder, b"\x03", PAN, "2501")
    with pytest.raises(ValueError, match=r"expiry: expired 01/25, today is 2502 \(YYMM\)"):
        recover_issuer_key(ca.public, certificate, remainder, b"\x03", PAN, "2502")


@pytest.mark.parametrize(
    ("position", "value", "step"),
    [
        (-1, 0xBD, "trailer: recovered data ends in BD, not BC"),
        (0, 0x6B, "header: recovered data begins with 6B, not 6A"),
        (1, 0x04, "format: 04, not 02"),
        (11, 0x02, r"hash algorithm: indicator 02, not 01 \(SHA-1\)"),
        (12, 0x02, r"public key algorithm: indicator 02, not 01 \(RSA\)"),
        (-2, 0x00, "hash: the hash result does not match the signed data"),
        (30, 0x00, "hash: the hash result does not match the signed data"),
    ],
)
def test_each_issuer_certificate_check_names_its_step(
    ca: RsaPrivate, issuer: RsaPrivate, position: int, value: int, step: str
) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    block = open_block(ca.public, certificate)
    forged = forge(ca, altered(block, position % len(block), value))
    with pytest.raises(ValueError, match=f"^issuer public key certificate: {step}"):
        recover_issuer_key(ca.public, forged, remainder, b"\x03", PAN, TODAY)


def test_a_flipped_certificate_byte_fails_verification(ca: RsaPrivate, issuer: RsaPrivate) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    for position in (0, 50, 175):
        flipped = altered(certificate, position, certificate[position] ^ 0x01)
        with pytest.raises(ValueError, match=r"^issuer public key certificate: "):
            recover_issuer_key(ca.public, flipped, remainder, b"\x03", PAN, TODAY)


def test_issuer_certificate_of_the_wrong_length_fails_the_length_step(
    ca: RsaPrivate, issuer: RsaPrivate
) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    with pytest.raises(ValueError, match="length: 175 bytes, the signer's modulus is 176"):
        recover_issuer_key(ca.public, certificate[1:], remainder, b"\x03", PAN, TODAY)
    with pytest.raises(ValueError, match="length: the signature is not below the signer's"):
        recover_issuer_key(ca.public, b"\xff" * 176, remainder, b"\x03", PAN, TODAY)


def test_issuer_certificate_for_another_bin_fails_the_issuer_identifier_step(
    ca: RsaPrivate, issuer: RsaPrivate
) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    with pytest.raises(ValueError, match="issuer identifier: 476173 does not begin the PAN") as e:
        recover_issuer_key(ca.public, certificate, remainder, b"\x03", "5413330089010012", TODAY)
    assert "5413330089010012" not in str(e.value)


def test_wrong_issuer_remainder_fails(ca: RsaPrivate, issuer: RsaPrivate) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    wrong = altered(remainder, 0, remainder[0] ^ 0x01)
    with pytest.raises(ValueError, match="issuer public key certificate: hash: "):
        recover_issuer_key(ca.public, certificate, wrong, b"\x03", PAN, TODAY)
    message = "remainder: a 144-byte key needs a 4-byte remainder, got 0 bytes"
    with pytest.raises(ValueError, match=message):
        recover_issuer_key(ca.public, certificate, b"", b"\x03", PAN, TODAY)


def test_remainder_given_for_a_key_that_fits_fails(
    ca: RsaPrivate, short_issuer: RsaPrivate
) -> None:
    certificate, _ = issuer_certificate(ca, short_issuer.public, ISSUER_ID, "1230", SERIAL)
    with pytest.raises(ValueError, match="remainder: a 128-byte key needs a 0-byte remainder"):
        recover_issuer_key(ca.public, certificate, b"\x01", b"\x03", PAN, TODAY)


def test_wrong_issuer_exponent_fails(ca: RsaPrivate, issuer: RsaPrivate) -> None:
    certificate, remainder = issuer_certificate(ca, issuer.public, ISSUER_ID, "1230", SERIAL)
    with pytest.raises(ValueError, match="exponent: certified as 1 bytes, got 010001"):
        recover_issuer_key(ca.public, certificate, remainder, b"\x01\x00\x01", PAN, TODAY)


def test_issuer_key_longer_than_the_ca_key_cannot_be_certified(
    issuer: RsaPrivate, short_issuer: RsaPrivate
) -> None:
    with pytest.raises(ValueError, match="issuer key: 144 bytes cannot be certified by a 128-byte"):
        issuer_certificate(short_issuer, issuer.public, ISSUER_ID, "1230", SERIAL)


@pytest.mark.parametrize(
    ("issuer_id", "expiry", "serial", "message"),
    [
        ("47", "1230", SERIAL, "issuer_id: must be 3 to 8 digits, got 2 characters"),
        ("47617X", "1230", SERIAL, "issuer_id: must be 3 to 8 digits, got 6 characters"),
        (ISSUER_ID, "1330", SERIAL, "expiry_mmyy: month must be 01 to 12, got 13"),
        (ISSUER_ID, "123", SERIAL, "expiry_mmyy: must be 4 digits, got 3 characters"),
        (ISSUER_ID, "1230", b"\x01", "serial: must be 3 bytes, got 1"),
    ],
)
def test_issuer_certificate_refuses_bad_fields(
    ca: RsaPrivate, issuer: RsaPrivate, issuer_id: str, expiry: str, serial: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        issuer_certificate(ca, issuer.public, issuer_id, expiry, serial)


# --- signed static application data (Book 2 Table 7, section 5.4) ----------------------------


def test_signed_static_data_follows_book_2_table_7(issuer: RsaPrivate) -> None:
    ssad = sign_static_data(issuer, STATIC, bytes.fromhex("DAC1"))
    fields = b"\x03\x01" + bytes.fromhex("DAC1") + b"\xbb" * (144 - 26)
    expected = b"\x6a" + fields + sha1(fields + STATIC) + b"\xbc"
    assert open_block(issuer.public, ssad) == expected
    assert verify_static_data(issuer.public, ssad, STATIC) == bytes.fromhex("DAC1")


def test_signed_static_data_over_other_data_fails_the_hash_step(issuer: RsaPrivate) -> None:
    ssad = sign_static_data(issuer, STATIC, bytes.fromhex("DAC1"))
    with pytest.raises(ValueError, match=r"^signed static application data: hash: "):
        verify_static_data(issuer.public, ssad, STATIC[:-1] + b"\x81")


def test_signed_static_data_checks_its_format(issuer: RsaPrivate) -> None:
    block = open_block(issuer.public, sign_static_data(issuer, STATIC, bytes.fromhex("DAC1")))
    with pytest.raises(ValueError, match="signed static application data: format: 05, not 03"):
        verify_static_data(issuer.public, forge(issuer, altered(block, 1, 5)), STATIC)


def test_sign_static_data_needs_a_two_byte_dac(issuer: RsaPrivate) -> None:
    with pytest.raises(ValueError, match="dac: must be 2 bytes, got 3"):
        sign_static_data(issuer, STATIC, bytes(3))


# --- ICC public key certificate (Book 2 Table 14, section 6.4) --------------------------------


def test_icc_certificate_follows_book_2_table_14(issuer: RsaPrivate, icc: RsaPrivate) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1230", SERIAL, STATIC)
    key = icc.public
    assert len(certificate) == 144 and remainder == key.modulus[102:] and len(remainder) == 26
    fields = (
        b"\x04" + bytes.fromhex(PAN + "FFFF") + bytes.fromhex("1230") + SERIAL + b"\x01\x01"
        + bytes([128, 1]) + key.modulus[:102]
    )
    expected_hash = sha1(fields + remainder + key.exponent + STATIC)
    assert open_block(issuer.public, certificate) == b"\x6a" + fields + expected_hash + b"\xbc"
    recovered = recover_icc_key(
        issuer.public, certificate, remainder, b"\x03", PAN, STATIC, TODAY
    )
    assert recovered == icc.public


def test_icc_key_that_fits_has_no_remainder(ca: RsaPrivate, icc_65537: RsaPrivate) -> None:
    big_issuer = ca  # 176 bytes: room for 134, so the 128-byte ICC key fits
    certificate, remainder = icc_certificate(big_issuer, icc_65537.public, PAN, "1230", SERIAL,
                                             STATIC)
    assert remainder == b""
    block = open_block(big_issuer.public, certificate)
    assert block[20] == 3  # exponent length
    assert block[21:155] == icc_65537.public.modulus + b"\xbb" * 6
    recovered = recover_icc_key(
        big_issuer.public, certificate, b"", b"\x01\x00\x01", PAN, STATIC, TODAY
    )
    assert recovered == icc_65537.public


def test_icc_certificate_of_a_19_digit_pan_pads_one_f(issuer: RsaPrivate, icc: RsaPrivate) -> None:
    pan = "4761739001010010123"
    certificate, remainder = icc_certificate(issuer, icc.public, pan, "1230", SERIAL, STATIC)
    assert open_block(issuer.public, certificate)[2:12].hex().upper() == pan + "F"
    assert recover_icc_key(issuer.public, certificate, remainder, b"\x03", pan, STATIC, TODAY)


def test_icc_certificate_for_another_pan_fails_the_pan_step(
    issuer: RsaPrivate, icc: RsaPrivate
) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1230", SERIAL, STATIC)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: PAN: ") as error:
        recover_icc_key(issuer.public, certificate, remainder, b"\x03", OTHER_PAN, STATIC, TODAY)
    assert PAN not in str(error.value) and OTHER_PAN not in str(error.value)


def test_icc_certificate_over_other_static_data_fails_the_hash_step(
    issuer: RsaPrivate, icc: RsaPrivate
) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1230", SERIAL, STATIC)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: hash: "):
        recover_icc_key(
            issuer.public, certificate, remainder, b"\x03", PAN, STATIC + b"\x00", TODAY
        )


def test_icc_certificate_with_a_wrong_remainder_fails(issuer: RsaPrivate, icc: RsaPrivate) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1230", SERIAL, STATIC)
    wrong = altered(remainder, 25, remainder[25] ^ 0x80)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: hash: "):
        recover_icc_key(issuer.public, certificate, wrong, b"\x03", PAN, STATIC, TODAY)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: remainder: "):
        recover_icc_key(issuer.public, certificate, remainder[:-1], b"\x03", PAN, STATIC, TODAY)


def test_expired_icc_certificate_fails_the_expiry_step(issuer: RsaPrivate, icc: RsaPrivate) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1224", SERIAL, STATIC)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: expiry: expired 12/24"):
        recover_icc_key(issuer.public, certificate, remainder, b"\x03", PAN, STATIC, TODAY)


def test_flipped_icc_certificate_byte_fails(issuer: RsaPrivate, icc: RsaPrivate) -> None:
    certificate, remainder = icc_certificate(issuer, icc.public, PAN, "1230", SERIAL, STATIC)
    flipped = altered(certificate, 70, certificate[70] ^ 0x10)
    with pytest.raises(ValueError, match=r"^ICC public key certificate: "):
        recover_icc_key(issuer.public, flipped, remainder, b"\x03", PAN, STATIC, TODAY)


def test_icc_key_longer_than_the_issuer_key_cannot_be_certified(
    short_issuer: RsaPrivate, issuer: RsaPrivate
) -> None:
    with pytest.raises(ValueError, match="ICC key: 144 bytes cannot be certified by a 128-byte"):
        icc_certificate(short_issuer, issuer.public, PAN, "1230", SERIAL, STATIC)


def test_icc_certificate_refuses_a_malformed_pan_without_echoing_it(
    issuer: RsaPrivate, icc: RsaPrivate
) -> None:
    with pytest.raises(ValueError, match="pan: must be 8 to 19 digits, got 16 characters") as e:
        icc_certificate(issuer, icc.public, "476173900101001X", "1230", SERIAL, STATIC)
    assert "476173900101001X" not in str(e.value)


# --- signed dynamic application data (Book 2 Table 17, section 6.5) ---------------------------

TERMINAL_DATA = bytes.fromhex("9F37 CAFEF00D")[2:]


def test_signed_dynamic_data_follows_book_2_table_17(icc: RsaPrivate) -> None:
    number = bytes.fromhex("0102030405060708")
    sdad = sign_dynamic_data(icc, number, TERMINAL_DATA)
    dynamic_data = b"\x08" + number
    fields = b"\x05\x01" + bytes([9]) + dynamic_data + b"\xbb" * (128 - 9 - 25)
    expected = b"\x6a" + fields + sha1(fields + TERMINAL_DATA) + b"\xbc"
    assert open_block(icc.public, sdad) == expected
    assert verify_dynamic_data(icc.public, sdad, TERMINAL_DATA) == number


def test_signed_dynamic_data_over_other_terminal_data_fails(icc: RsaPrivate) -> None:
    sdad = sign_dynamic_data(icc, b"\x00\x01", TERMINAL_DATA)
    with pytest.raises(ValueError, match=r"^signed dynamic application data: hash: "):
        verify_dynamic_data(icc.public, sdad, bytes.fromhex("CAFEF00E"))


def test_signed_dynamic_data_checked_with_another_key_fails(
    icc: RsaPrivate, issuer: RsaPrivate, icc_65537: RsaPrivate
) -> None:
    sdad = sign_dynamic_data(icc, b"\x00\x01", TERMINAL_DATA)
    with pytest.raises(ValueError, match="length: 128 bytes, the signer's modulus is 144"):
        verify_dynamic_data(issuer.public, sdad, TERMINAL_DATA)
    with pytest.raises(ValueError, match=r"^signed dynamic application data: "):
        verify_dynamic_data(icc_65537.public, sdad, TERMINAL_DATA)


def test_signed_dynamic_data_with_a_bad_dynamic_number_length_fails(icc: RsaPrivate) -> None:
    block = open_block(icc.public, sign_dynamic_data(icc, b"\x00\x01", TERMINAL_DATA))
    with pytest.raises(ValueError, match="dynamic data: length 200 overruns the block"):
        verify_dynamic_data(icc.public, forge(icc, altered(block, 3, 200)), TERMINAL_DATA)


def test_sign_dynamic_data_needs_a_2_to_8_byte_number(icc: RsaPrivate) -> None:
    with pytest.raises(ValueError, match="icc_dynamic_number: must be 2 to 8 bytes, got 9"):
        sign_dynamic_data(icc, bytes(9), TERMINAL_DATA)


# --- keys -----------------------------------------------------------------------------------


def test_private_key_survives_pem(issuer: RsaPrivate) -> None:
    pem = issuer.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert RsaPrivate.from_pem(pem) == issuer


def test_private_key_from_numbers(icc_65537: RsaPrivate) -> None:
    again = RsaPrivate.from_numbers(icc_65537.public.n, icc_65537.d, icc_65537.public.e)
    assert again == icc_65537 and again.public.exponent == b"\x01\x00\x01"


def test_private_exponent_is_never_printed(icc: RsaPrivate) -> None:
    assert f"{icc.d}" not in repr(icc) and f"{icc.d:x}" not in repr(icc).lower()


def test_public_key_accepts_only_emv_exponents() -> None:
    with pytest.raises(ValueError, match="rsa: exponent must be 03 or 010001, got 05"):
        RsaPublic(b"\xc0" * 128, b"\x05")


def test_generate_refuses_sizes_emv_cannot_carry() -> None:
    with pytest.raises(ValueError, match="bits: must be a multiple of 8 from 1024 to 1984, got 20"):
        RsaPrivate.generate(2048)
    with pytest.raises(ValueError, match="exponent: must be 3 or 65537, got 5"):
        RsaPrivate.generate(1024, exponent=5)


# --- the test PKI ------------------------------------------------------------------------------

VISA_RID = bytes.fromhex("A000000003")
MASTERCARD_RID = bytes.fromhex("A000000004")


def test_test_pki_chain_verifies(tmp_path: Path) -> None:
    test_pki = TestPki(tmp_path / "pki")
    index, ca = test_pki.ca_public(VISA_RID)
    issuer_key, certificate, remainder, exponent = test_pki.issuer(VISA_RID, ISSUER_ID)
    assert index == TEST_CA_INDEX == 0x92
    assert len(ca.modulus) == 176 and len(issuer_key.public.modulus) == 144
    assert len(remainder) == 4 and exponent == b"\x03"
    recovered = recover_issuer_key(ca, certificate, remainder, exponent, PAN, TODAY)
    assert recovered == issuer_key.public


def test_test_pki_keeps_its_keys_private_and_persistent(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    first = TestPki(directory)
    _, ca = first.ca_public(VISA_RID)
    issuer_key = first.issuer(VISA_RID, ISSUER_ID)[0]
    files = sorted(path.name for path in directory.iterdir())
    assert files == ["ca-A000000003-92.pem", "issuer-A000000003-476173.pem"]
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TestPki(directory)
    assert again.ca_public(VISA_RID) == (0x92, ca)
    assert again.issuer(VISA_RID, ISSUER_ID) == first.issuer(VISA_RID, ISSUER_ID)
    assert again.issuer(VISA_RID, ISSUER_ID)[0] == issuer_key


def test_test_pki_has_one_ca_per_rid(tmp_path: Path) -> None:
    test_pki = TestPki(tmp_path)
    assert test_pki.ca_public(VISA_RID) != test_pki.ca_public(MASTERCARD_RID)


def test_test_pki_refuses_bad_names(tmp_path: Path) -> None:
    test_pki = TestPki(tmp_path)
    with pytest.raises(ValueError, match="rid: must be 5 bytes, got 7"):
        test_pki.ca_public(bytes.fromhex("A0000000031010"))
    with pytest.raises(ValueError, match="issuer_id: must be 3 to 8 digits"):
        test_pki.issuer(VISA_RID, "../../etc")
