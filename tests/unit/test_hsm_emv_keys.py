"""DeriveIccKeys and GenerateScriptMac, over a real gRPC server on a free port.

A card is personalised with the ICC master keys the HSM derives, so the tests play the card: they
unwrap each key block with the ZMK's clear value (psec, an independent TR-31 implementation),
make cryptograms and script MACs with it as a card would, and hold the HSM to them. ICC keys are
also checked against pyemv's option A derivation, and script MACs against pyemv's command MAC.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psec
import pytest
from pyemv import kd as pyemv_kd
from pyemv import sm as pyemv_sm

from cardswitch.errors import field_violations_of
from cardswitch.v1 import hsm_pb2
from hsm_sim import audit, lmk
from hsm_sim.algorithms import emv, keyblock
from tests.hsm_support import failure

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec and pyemv use TripleDES
)

TDES_2KEY, AES_256 = hsm_pb2.KEY_ALGORITHM_TDES_2KEY, hsm_pb2.KEY_ALGORITHM_AES_256
INVALID_ARGUMENT, FAILED_PRECONDITION = (grpc.StatusCode.INVALID_ARGUMENT,
                                         grpc.StatusCode.FAILED_PRECONDITION)
REQUIRED = "is required (a key id, a label or a key block under the LMK)"

PAN = "4111111111111111"
PSN = "01"
ATC = bytes.fromhex("001C")
ARQC = bytes.fromhex("1234567890ABCDEF")
# 9F02, 9F03, 9F1A, 95, 5F2A, 9A, 9C, 9F37, 82, 9F36 (pyemv's generate_ac example, ATC 001C).
CDOL1 = bytes.fromhex("000000002000" "000000000000" "0124" "0000008000" "0124" "110309" "00"
                      "3804823E" "5800" "001C")
ARC = b"00"
CSU = bytes.fromhex("00820000")

# Clear keys, known to the test so that every result can be checked from outside the HSM.
IMK_AC = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
IMK_SMI = bytes.fromhex("4664942FE615FB02E5D57F292AA2B3B6")
IMK_SMC = bytes.fromhex("0BA4B0D3C2E1F0A1B2C3D4E5F6071829")
ZMK = bytes.fromhex("F1E2D3C4B5A69788796A5B4C3D2E1F01")
AES_ZMK = bytes.fromhex("9F8E7D6C5B4A39281706F5E4D3C2B1A0112233445566778899AABBCCDDEEFF01")
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
TAK = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")

# label: (key type, algorithm, clear key, mode of use); "zmk.unwrap" may only unwrap.
KEYS: dict[str, tuple[hsm_pb2.KeyType, hsm_pb2.KeyAlgorithm, bytes, str]] = {
    "imk.ac": (hsm_pb2.KEY_TYPE_IMK_AC, TDES_2KEY, IMK_AC, ""),
    "imk.smi": (hsm_pb2.KEY_TYPE_IMK_SMI, TDES_2KEY, IMK_SMI, ""),
    "imk.smc": (hsm_pb2.KEY_TYPE_IMK_SMC, TDES_2KEY, IMK_SMC, ""),
    "zmk": (hsm_pb2.KEY_TYPE_ZMK, TDES_2KEY, ZMK, ""),
    "zmk.aes": (hsm_pb2.KEY_TYPE_ZMK, AES_256, AES_ZMK, ""),
    "zmk.unwrap": (hsm_pb2.KEY_TYPE_ZMK, TDES_2KEY, ZMK, "D"),
    "zpk": (hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY, ZPK, ""),
    "tak": (hsm_pb2.KEY_TYPE_TAK, TDES_2KEY, TAK, ""),
}


async def load_keys(stub: Any) -> None:
    """Every key of :data:`KEYS`, from two components each."""
    for label, (key_type, algorithm, clear, mode) in KEYS.items():
        mask = secrets.token_bytes(len(clear))
        components = [mask.hex(), bytes(a ^ b for a, b in zip(clear, mask, strict=True)).hex()]
        await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label=label, key_type=key_type, algorithm=algorithm, components=components,
            mode_of_use=mode))


def derive_request(zmk: str = "zmk", psn: str = PSN, **fields: str,
                   ) -> hsm_pb2.DeriveIccKeysRequest:
    request = hsm_pb2.DeriveIccKeysRequest(
        imk_ac_key_ref="imk.ac", imk_smi_key_ref="imk.smi", imk_smc_key_ref="imk.smc",
        pan=PAN, psn=psn, zmk_key_ref=zmk)
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def script_request(**fields: Any) -> hsm_pb2.GenerateScriptMacRequest:
    request = hsm_pb2.GenerateScriptMacRequest(
        imk_smi_key_ref="imk.smi", pan=PAN, psn=PSN, atc=ATC, arqc=ARQC,
        command_header=bytes.fromhex("84240000"), command_data=bytes(8))
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def tdes_kcv(key: bytes) -> str:
    return psec.des.generate_kcv(key, 3).hex().upper()


def card_script_mac(imk_smi: bytes, header: bytes, data: bytes, mac_length: int,
                    psn: str = PSN, atc: bytes = ATC, arqc: bytes = ARQC) -> bytes:
    """The MAC a card expects, by hand: ICC SMI key (option A), session key with R = ARQC, MAC
    algorithm 3 over CLA INS P1 P2 || Lc || ATC || ARQC || data, Lc counting the MAC."""
    icc_smi = emv.icc_master_key_a(imk_smi, PAN, psn)
    session_key = emv.secure_messaging_keys(icc_smi, icc_smi, arqc).integrity
    lc = bytes([len(data) + mac_length])
    return emv.script_mac(session_key, header + lc + atc + arqc + data, mac_length)


# --- DeriveIccKeys ----------------------------------------------------------------------------


def test_icc_keys_are_the_option_a_keys_of_each_imk_under_the_zmk_with_their_check_values(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request())

        for exported, imk, usage, type_name in (
                (derived.icc_ac, IMK_AC, "E0", "ICC_AC"),
                (derived.icc_smi, IMK_SMI, "E2", "ICC_SMI"),
                (derived.icc_smc, IMK_SMC, "E1", "ICC_SMC")):
            header, clear = psec.tr31.unwrap(ZMK, exported.key_block)
            assert clear == pyemv_kd.derive_icc_mk_a(imk, PAN, PSN)
            assert (header.version_id, header.key_usage, header.algorithm, header.mode_of_use,
                    header.exportability) == ("B", usage, "T", "X", "E")
            assert keyblock.Header.parse(exported.key_block).optional_blocks == (
                ("01", type_name),)
            assert exported.check_value == tdes_kcv(clear)

    hsm(scenario)


def test_under_an_aes_zmk_the_icc_keys_come_as_version_d_blocks(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request(zmk="zmk.aes"))

        header, clear = psec.tr31.unwrap(AES_ZMK, derived.icc_smi.key_block)
        assert (header.version_id, header.key_usage, header.algorithm, header.mode_of_use) == (
            "D", "E2", "T", "X")
        assert clear == pyemv_kd.derive_icc_mk_a(IMK_SMI, PAN, PSN)

    hsm(scenario)


def test_a_card_without_a_psn_gets_the_keys_of_psn_00(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        without = await stub.DeriveIccKeys(derive_request(psn=""))
        with_00 = await stub.DeriveIccKeys(derive_request(psn="00"))

        assert psec.tr31.unwrap(ZMK, without.icc_ac.key_block)[1] == (
            pyemv_kd.derive_icc_mk_a(IMK_AC, PAN, "00"))
        assert [k.check_value for k in (without.icc_ac, without.icc_smi, without.icc_smc)] == [
            k.check_value for k in (with_00.icc_ac, with_00.icc_smi, with_00.icc_smc)]

    hsm(scenario)


def _card_arqc(icc_ac: bytes, version: hsm_pb2.CryptogramVersion) -> tuple[bytes, bytes]:
    """A card's ARQC over CDOL1 and the ARPC it will accept, with hsm_sim.algorithms.emv."""
    if version == hsm_pb2.CRYPTOGRAM_VERSION_VISA_10:
        arqc = emv.ac(icc_ac, CDOL1, padding=1)
        return arqc, emv.arpc1(icc_ac, arqc, ARC)
    session_key = emv.common_session_key(icc_ac, ATC)
    arqc = emv.ac(session_key, CDOL1, padding=2)
    if version == hsm_pb2.CRYPTOGRAM_VERSION_VISA_18:
        return arqc, emv.arpc2(session_key, arqc, CSU)
    return arqc, emv.arpc1(session_key, arqc, ARC)


@pytest.mark.parametrize("version", [
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_VISA_10, id="visa_cvn_10"),
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_VISA_18, id="visa_cvn_18"),
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16, id="mastercard_cvn_16"),
])
def test_a_card_personalised_with_the_derived_ac_key_makes_arqcs_verify_arqc_accepts(
        hsm: Any, version: hsm_pb2.CryptogramVersion) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request())
        icc_ac = psec.tr31.unwrap(ZMK, derived.icc_ac.key_block)[1]  # the card's AC key
        arqc, arpc = _card_arqc(icc_ac, version)

        verified = await stub.VerifyArqc(hsm_pb2.VerifyArqcRequest(
            imk_ac_key_ref="imk.ac", pan=PAN, psn=PSN, cryptogram_version=version, atc=ATC,
            transaction_data=CDOL1, arqc=arqc, arc=ARC, csu=CSU))
        assert (verified.verified, verified.arpc) == (True, arpc)

    hsm(scenario)


def test_an_icc_key_block_does_not_import_back_as_an_issuer_master_key(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request())

        error = await failure(stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="imk.from.card", key_block=derived.icc_ac.key_block, kek_key_ref="zmk")))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == [(
            "key_block", "key usage E0 (EMV issuer master key: application cryptograms) has no "
                         "use in this HSM")]

    hsm(scenario)


# --- GenerateScriptMac ------------------------------------------------------------------------


def test_a_pin_change_script_mac_covers_header_lc_atc_arqc_and_data(hsm: Any) -> None:
    # PIN CHANGE/UNBLOCK with an 8-byte enciphered PIN block: Lc = 8 + 8 = 0x10.
    header, data = bytes.fromhex("84240000"), bytes.fromhex("1122334455667788")
    mac_input = bytes.fromhex("84240000" "10" "001C" "1234567890ABCDEF" "1122334455667788")
    icc_smi = emv.icc_master_key_a(IMK_SMI, PAN, PSN)
    session_key = emv.derive_session_key(icc_smi, ARQC)
    expected = emv.script_mac(session_key, mac_input, 8)
    assert (icc_smi.hex().upper(), session_key.hex().upper(), expected.hex().upper()) == (
        "6EFBD3C72A68F2543E97D9DCE6C71FE3", "151CA86292105DC4528019AEDC1F8FD3", "D8C848A9C4551962")
    pyemv_icc_smi = pyemv_kd.derive_icc_mk_a(IMK_SMI, PAN, PSN)
    assert pyemv_sm.generate_command_mac(pyemv_kd.derive_common_sk(pyemv_icc_smi, ARQC),
                                         mac_input) == expected

    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        response = await stub.GenerateScriptMac(script_request(command_header=header,
                                                               command_data=data))
        assert response.mac == expected

    hsm(scenario)


@pytest.mark.parametrize(("header", "data", "mac_length"), [
    pytest.param("841E0000", "", 4, id="application_block_no_data_4_byte_mac"),
    pytest.param("04DA9F58", "05", 8, id="put_data_consecutive_offline_limit_8_byte_mac"),
    pytest.param("84DC0114", "AB" * 239, 8, id="update_record_239_bytes_lc_247"),
])
def test_script_macs_agree_with_the_card_computed_by_hand(
        hsm: Any, header: str, data: str, mac_length: int) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        response = await stub.GenerateScriptMac(script_request(
            command_header=bytes.fromhex(header), command_data=bytes.fromhex(data),
            mac_length=mac_length))
        assert response.mac == card_script_mac(IMK_SMI, bytes.fromhex(header),
                                               bytes.fromhex(data), mac_length)
        assert len(response.mac) == mac_length

    hsm(scenario)


def test_a_script_mac_is_bound_to_its_transactions_atc_and_arqc_and_to_the_card(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        base = (await stub.GenerateScriptMac(script_request())).mac
        other_atc = (await stub.GenerateScriptMac(script_request(atc=b"\x00\x1d"))).mac
        other_arqc = (await stub.GenerateScriptMac(script_request(arqc=bytes(8)))).mac
        other_card = (await stub.GenerateScriptMac(script_request(psn="02"))).mac

        header, data = bytes.fromhex("84240000"), bytes(8)
        assert (base, other_atc, other_arqc, other_card) == (
            card_script_mac(IMK_SMI, header, data, 8),
            card_script_mac(IMK_SMI, header, data, 8, atc=b"\x00\x1d"),
            card_script_mac(IMK_SMI, header, data, 8, arqc=bytes(8)),
            card_script_mac(IMK_SMI, header, data, 8, psn="02"))
        assert len({base, other_atc, other_arqc, other_card}) == 4

    hsm(scenario)


def test_the_smi_key_of_a_derived_card_checks_the_script_mac(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request())
        card_smi = psec.tr31.unwrap(ZMK, derived.icc_smi.key_block)[1]
        header, data = bytes.fromhex("84240000"), bytes.fromhex("1122334455667788")

        mac = (await stub.GenerateScriptMac(script_request(command_header=header,
                                                           command_data=data))).mac
        session_key = emv.derive_session_key(card_smi, ARQC)
        assert mac == emv.script_mac(session_key, header + b"\x10" + ATC + ARQC + data)

    hsm(scenario)


# --- key usage --------------------------------------------------------------------------------

Request = Callable[[], Any]


def _usage(method: str, request: Request, message: str, case: str) -> Any:
    return pytest.param(method, request, message, id=case)


USAGE_VIOLATIONS = [
    _usage("DeriveIccKeys", lambda: derive_request(imk_ac_key_ref="imk.smi"),
           "imk_ac_key_ref: key 'imk.smi' is a IMK_SMI (E2, EMV issuer master key: secure "
           "messaging for integrity); DeriveIccKeys needs a IMK_AC",
           "an_smi_imk_derives_no_icc_ac_key"),
    _usage("DeriveIccKeys", lambda: derive_request(imk_smi_key_ref="imk.smc"),
           "imk_smi_key_ref: key 'imk.smc' is a IMK_SMC (E1, EMV issuer master key: secure "
           "messaging for confidentiality); DeriveIccKeys needs a IMK_SMI",
           "an_smc_imk_derives_no_icc_smi_key"),
    _usage("DeriveIccKeys", lambda: derive_request(imk_smc_key_ref="imk.ac"),
           "imk_smc_key_ref: key 'imk.ac' is a IMK_AC (E0, EMV issuer master key: application "
           "cryptograms); DeriveIccKeys needs a IMK_SMC", "an_ac_imk_derives_no_icc_smc_key"),
    _usage("DeriveIccKeys", lambda: derive_request(imk_ac_key_ref="zpk"),
           "imk_ac_key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); DeriveIccKeys needs a "
           "IMK_AC", "a_pin_key_is_no_issuer_master_key"),
    _usage("DeriveIccKeys", lambda: derive_request(zmk="imk.ac"),
           "zmk_key_ref: key 'imk.ac' is a IMK_AC (E0, EMV issuer master key: application "
           "cryptograms); DeriveIccKeys needs a ZMK", "an_imk_is_no_transport_key"),
    _usage("DeriveIccKeys", lambda: derive_request(zmk="zpk"),
           "zmk_key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); DeriveIccKeys needs a ZMK",
           "a_zpk_cannot_wrap_card_keys"),
    _usage("DeriveIccKeys", lambda: derive_request(zmk="zmk.unwrap"),
           "zmk_key_ref: key 'zmk.unwrap' has mode of use D (decrypt or unwrap only); "
           "DeriveIccKeys needs mode B or E", "an_unwrap_only_zmk_cannot_wrap_card_keys"),
    _usage("GenerateScriptMac", lambda: script_request(imk_smi_key_ref="imk.ac"),
           "imk_smi_key_ref: key 'imk.ac' is a IMK_AC (E0, EMV issuer master key: application "
           "cryptograms); GenerateScriptMac needs a IMK_SMI", "an_ac_imk_cannot_mac_scripts"),
    _usage("GenerateScriptMac", lambda: script_request(imk_smi_key_ref="imk.smc"),
           "imk_smi_key_ref: key 'imk.smc' is a IMK_SMC (E1, EMV issuer master key: secure "
           "messaging for confidentiality); GenerateScriptMac needs a IMK_SMI",
           "an_smc_imk_cannot_mac_scripts"),
    _usage("GenerateScriptMac", lambda: script_request(imk_smi_key_ref="tak"),
           "imk_smi_key_ref: key 'tak' is a TAK (M3, ISO 9797-1 MAC algorithm 3); "
           "GenerateScriptMac needs a IMK_SMI", "a_mac_key_is_no_issuer_master_key"),
]


@pytest.mark.parametrize(("method", "request_", "message"), USAGE_VIOLATIONS)
def test_a_key_used_against_its_usage_is_failed_precondition_naming_field_key_and_need(
        hsm: Any, method: str, request_: Request, message: str) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(getattr(stub, method)(request_()))
        assert (error.code(), error.details()) == (FAILED_PRECONDITION, message)

    hsm(scenario)


# --- bad input --------------------------------------------------------------------------------


def _bad(method: str, request: Request, violations: list[tuple[str, str]], case: str) -> Any:
    return pytest.param(method, request, violations, id=case)


BAD_INPUT = [
    _bad("DeriveIccKeys", lambda: hsm_pb2.DeriveIccKeysRequest(pan=PAN),
         [("imk_ac_key_ref", REQUIRED), ("imk_smi_key_ref", REQUIRED),
          ("imk_smc_key_ref", REQUIRED), ("zmk_key_ref", REQUIRED)], "derive_without_keys"),
    _bad("DeriveIccKeys", lambda: derive_request(pan="4111111111111112"),
         [("pan", "fails the Luhn check")], "derive_pan_failing_luhn"),
    _bad("DeriveIccKeys", lambda: derive_request(psn="1"),
         [("psn", "must be 2 digits, got 1 characters")], "derive_one_digit_psn"),
    _bad("DeriveIccKeys", lambda: derive_request(psn="0A"),
         [("psn", "must be 2 digits, got 2 characters")], "derive_hex_psn"),
    _bad("GenerateScriptMac", lambda: script_request(imk_smi_key_ref=""),
         [("imk_smi_key_ref", REQUIRED)], "script_without_key"),
    _bad("GenerateScriptMac", lambda: script_request(pan="41111111"),
         [("pan", "must be 13 to 19 digits, got 8")], "script_short_pan"),
    _bad("GenerateScriptMac", lambda: script_request(psn="123"),
         [("psn", "must be 2 digits, got 3 characters")], "script_three_digit_psn"),
    _bad("GenerateScriptMac", lambda: script_request(atc=b"\x1c"),
         [("atc", "must be 2 bytes, got 1")], "script_short_atc"),
    _bad("GenerateScriptMac", lambda: script_request(arqc=bytes(7)),
         [("arqc", "must be 8 bytes, got 7")], "script_short_arqc"),
    _bad("GenerateScriptMac", lambda: script_request(command_header=bytes.fromhex("8424000010")),
         [("command_header", "must be 4 bytes, got 5")], "script_header_with_lc"),
    _bad("GenerateScriptMac", lambda: script_request(command_data=bytes(240)),
         [("command_data", "must be at most 239 bytes, got 240")], "script_data_too_long"),
    _bad("GenerateScriptMac", lambda: script_request(mac_length=6),
         [("mac_length", "must be 4 or 8 bytes, got 6")], "script_mac_of_6_bytes"),
]


@pytest.mark.parametrize(("method", "request_", "violations"), BAD_INPUT)
def test_bad_input_is_invalid_argument_naming_each_bad_field(
        hsm: Any, method: str, request_: Request, violations: list[tuple[str, str]]) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(getattr(stub, method)(request_()))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == violations
        assert PAN not in error.details()

    hsm(scenario)


# --- Execute and audit ------------------------------------------------------------------------


def test_execute_runs_both_commands_as_their_unary_forms(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        stream = [
            hsm_pb2.HsmCommand(id=1, derive_icc_keys=derive_request()),
            hsm_pb2.HsmCommand(id=2, generate_script_mac=script_request()),
            hsm_pb2.HsmCommand(id=3, generate_script_mac=script_request(imk_smi_key_ref="imk.ac")),
        ]
        results = {result.id: result async for result in stub.Execute(iter(stream))}

        derived = results[1].derive_icc_keys
        assert psec.tr31.unwrap(ZMK, derived.icc_smc.key_block)[1] == (
            pyemv_kd.derive_icc_mk_a(IMK_SMC, PAN, PSN))
        assert results[2] == hsm_pb2.HsmResult(
            id=2, generate_script_mac=hsm_pb2.GenerateScriptMacResponse(
                mac=card_script_mac(IMK_SMI, bytes.fromhex("84240000"), bytes(8), 8)))
        assert results[3] == hsm_pb2.HsmResult(id=3, error=hsm_pb2.CommandError(
            code=9, message="imk_smi_key_ref: key 'imk.ac' is a IMK_AC (E0, EMV issuer master "
                            "key: application cryptograms); GenerateScriptMac needs a IMK_SMI"))

    hsm(scenario)


def test_both_commands_are_audited_with_their_keys_and_no_pan_or_card_key(
        hsm: Any, tmp_path: Path) -> None:
    card_keys: list[bytes] = []

    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        derived = await stub.DeriveIccKeys(derive_request())
        card_keys.extend(psec.tr31.unwrap(ZMK, k.key_block)[1]
                         for k in (derived.icc_ac, derived.icc_smi, derived.icc_smc))
        await stub.GenerateScriptMac(script_request())

    hsm(scenario)  # stopping the HSM flushes and closes the log

    log_path = tmp_path / "hsm" / "audit.log"
    assert audit.verify(log_path, audit.audit_key(lmk.load())).ok
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    derive, script = records[-2:]
    assert (derive["command"], derive["result"]) == ("DeriveIccKeys", "ok")
    assert [(k["role"], k["ref"], k["usage"], k["kcv"]) for k in derive["keys"]] == [
        ("imk_ac", "imk.ac", "E0", tdes_kcv(IMK_AC)),
        ("imk_smi", "imk.smi", "E2", tdes_kcv(IMK_SMI)),
        ("imk_smc", "imk.smc", "E1", tdes_kcv(IMK_SMC)),
        ("zmk", "zmk", "K0", tdes_kcv(ZMK))]
    assert (script["command"], [k["role"] for k in script["keys"]]) == (
        "GenerateScriptMac", ["imk_smi"])
    text = log_path.read_text().upper()
    for secret in (PAN, *(key.hex().upper() for key in (*card_keys, IMK_AC, IMK_SMI, ZMK))):
        assert secret not in text
