"""HsmService over a real gRPC server on a free port, called through the generated stub.

Terminal-side and issuer-side values come from psec (an independent implementation), so these
tests do not grade the HSM's algorithms with themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import psec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardswitch.config import ROOT
from cardswitch.errors import field_violations_of
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc
from hsm_sim import audit, lmk
from hsm_sim.algorithms import dukpt, tdes
from tests.hsm_support import failure

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec uses the old TripleDES
)

TEST_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
PAN = "4111111111111111"
KSN = dukpt.make_ksn(bytes.fromhex("FFFF987654"), 0x19087, 1)
ISO_0, ISO_1, ISO_3 = (common_pb2.PIN_BLOCK_FORMAT_ISO_0, common_pb2.PIN_BLOCK_FORMAT_ISO_1,
                       common_pb2.PIN_BLOCK_FORMAT_ISO_3)



async def import_key(stub: Any, label: str, key_type: hsm_pb2.KeyType,
                     algorithm: hsm_pb2.KeyAlgorithm, clear: bytes) -> Any:
    mask = secrets.token_bytes(len(clear))
    components = [mask.hex(), bytes(a ^ b for a, b in zip(clear, mask, strict=True)).hex()]
    response = await stub.ImportKey(hsm_pb2.ImportKeyRequest(
        label=label, key_type=key_type, algorithm=algorithm, components=components))
    return response.key


async def standard_keys(stub: Any) -> None:
    """bdk (the X9.24 test BDK), zpk (ZPK above), pvk and cvk (the test key), hmac and dek."""
    tdes2 = hsm_pb2.KEY_ALGORITHM_TDES_2KEY
    await import_key(stub, "bdk", hsm_pb2.KEY_TYPE_BDK, tdes2, TEST_KEY)
    await import_key(stub, "zpk", hsm_pb2.KEY_TYPE_ZPK, tdes2, ZPK)
    await import_key(stub, "pvk", hsm_pb2.KEY_TYPE_PVK, tdes2, TEST_KEY)
    await import_key(stub, "cvk", hsm_pb2.KEY_TYPE_CVK, tdes2, TEST_KEY)
    await import_key(stub, "hmac", hsm_pb2.KEY_TYPE_HMAC, hsm_pb2.KEY_ALGORITHM_HMAC_SHA256,
                     bytes(range(32)))
    await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
        label="dek", key_type=hsm_pb2.KEY_TYPE_DEK, algorithm=hsm_pb2.KEY_ALGORITHM_AES_256))


def under_zpk(pin: str, pan: str = PAN) -> bytes:
    return psec.des.encrypt_tdes_ecb(ZPK, psec.pinblock.encode_pinblock_iso_0(pin, pan))


# --- key management ---------------------------------------------------------------------------


def test_imported_components_combine_to_the_test_key_with_kcv_08d7b4(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        mask = bytes.fromhex("1111111111111111EEEEEEEEEEEEEEEE")
        other = bytes(a ^ b for a, b in zip(TEST_KEY, mask, strict=True))
        response = await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.test", key_type=hsm_pb2.KEY_TYPE_ZPK,
            algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY,
            components=[mask.hex(), other.hex().upper()], expected_kcv="08d7b4"))
        assert response.key.kcv == "08D7B4"
        assert tdes.encrypt_ecb(TEST_KEY, bytes(8))[:3].hex().upper() == "08D7B4"
        by_id = await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref=response.key.key_id))
        assert by_id == response.key
        assert by_id.label == "zpk.test" and by_id.key_type == hsm_pb2.KEY_TYPE_ZPK

    hsm(scenario)


def test_import_with_a_wrong_expected_kcv_names_expected_kcv(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.test", key_type=hsm_pb2.KEY_TYPE_ZPK,
            algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY, components=[TEST_KEY.hex()],
            expected_kcv="123456")))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(error) == [
            ("expected_kcv", "does not match the check value of the combined key (08D7B4)")]
        assert TEST_KEY.hex() not in (error.details() or "").lower()

    hsm(scenario)


def test_import_components_must_fit_the_algorithm(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.test", key_type=hsm_pb2.KEY_TYPE_ZPK,
            algorithm=hsm_pb2.KEY_ALGORITHM_TDES_3KEY, components=[TEST_KEY.hex(), "zz"])))
        assert field_violations_of(error) == [
            ("components[0]", "must be 48 hex digits for TDES_3KEY, got 32"),
            ("components[1]", "must be an even number of hex digits"),
        ]

    hsm(scenario)


def test_generated_keys_are_listed_and_a_taken_label_is_already_exists(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        request = hsm_pb2.GenerateKeyRequest(label="zpk.acq", key_type=hsm_pb2.KEY_TYPE_ZPK,
                                             algorithm=hsm_pb2.KEY_ALGORITHM_TDES_3KEY)
        key = (await stub.GenerateKey(request)).key
        assert len(key.kcv) == 6 and key.kcv == key.kcv.upper()
        assert key.created_at.seconds > 0
        await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="h", key_type=hsm_pb2.KEY_TYPE_HMAC,
            algorithm=hsm_pb2.KEY_ALGORITHM_HMAC_SHA256))

        error = await failure(stub.GenerateKey(request))
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "zpk.acq" in (error.details() or "")
        listed = await stub.ListKeys(hsm_pb2.ListKeysRequest(key_type=hsm_pb2.KEY_TYPE_ZPK))
        assert list(listed.keys) == [key]
        assert len((await stub.ListKeys(hsm_pb2.ListKeysRequest())).keys) == 2

    hsm(scenario)


def test_generate_key_needs_an_algorithm_the_key_type_can_use(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="dek", key_type=hsm_pb2.KEY_TYPE_DEK,
            algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY)))
        assert field_violations_of(error) == [
            ("algorithm", "a DEK key must be one of AES_256, not TDES_2KEY")]

    hsm(scenario)


def test_unknown_key_is_not_found(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.GetKey(hsm_pb2.GetKeyRequest(key_ref="zpk.nobody")))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == "key_ref: no key with id or label 'zpk.nobody'"

    hsm(scenario)


# --- DUKPT and PINs ---------------------------------------------------------------------------


def test_dukpt_pin_block_translates_to_the_zone_pin_key(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        device = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = device.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        loaded = await stub.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref="bdk", ksn=KSN, device_public_key_pem=pem))
        ipek = device.decrypt(loaded.encrypted_initial_key, padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        assert ipek.hex().upper() == "6AC292FAA1315B4D858AB3A3D7D5933A"  # X9.24-1 test vector
        assert loaded.kcv == psec.des.generate_kcv(ipek, 3).hex().upper()

        # The PIN pad: its PIN key for this KSN encrypts an ISO 0 block for PIN 1234.
        pin_key = dukpt.tdes_pin_key(ipek, KSN)
        block = psec.des.encrypt_tdes_ecb(pin_key, psec.pinblock.encode_pinblock_iso_0("1234", PAN))
        translated = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_bdk_key_ref="bdk", ksn=KSN, destination_zpk_key_ref="zpk",
            pin_block=block, pan=PAN))

        assert translated.format == ISO_0
        clear = psec.des.decrypt_tdes_ecb(ZPK, translated.pin_block)
        assert psec.pinblock.decode_pinblock_iso_0(clear, PAN) == "1234"

    hsm(scenario)


def test_translate_between_zone_keys_changes_format_0_to_3(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        translated = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk", pin_block=under_zpk("98765"),
            pan=PAN, destination_format=ISO_3))
        assert translated.format == ISO_3
        clear = psec.des.decrypt_tdes_ecb(ZPK, translated.pin_block)
        assert psec.pinblock.decode_pinblock_iso_3(clear, PAN) == "98765"

        error = await failure(stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk", pin_block=under_zpk("1234"),
            pan=PAN, destination_format=ISO_1)))
        assert [f for f, _ in field_violations_of(error)] == ["destination_format"]

    hsm(scenario)


def test_a_block_under_another_pan_does_not_decode(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        other_pan = "5500000000000004"
        error = await failure(stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk",
            pin_block=under_zpk("1234"), pan=other_pan)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(error) == [(
            "pin_block",
            "does not decode as an ISO format 0 PIN block under the given key")]
        assert other_pan not in (error.details() or "")

    hsm(scenario)


def test_verify_pin_against_an_ibm3624_offset(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        offset = psec.pin.generate_ibm3624_offset(TEST_KEY, "0123456789012345", "1234", PAN,
                                                  0, 16, "F")
        issued = await stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
            pvk_key_ref="pvk", pan=PAN, pin="1234"))
        assert issued.offset == offset

        def verify(pin: str) -> Any:
            return stub.VerifyPin(hsm_pb2.VerifyPinRequest(
                zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=under_zpk(pin), pan=PAN,
                offset=offset))

        assert (await verify("1234")).verified is True
        assert (await verify("1243")).verified is False
        assert (await verify("12345")).verified is False

    hsm(scenario)


def test_a_bdk_used_as_a_pvk_is_failed_precondition_naming_the_key(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        error = await failure(stub.VerifyPin(hsm_pb2.VerifyPinRequest(
            zpk_key_ref="zpk", pvk_key_ref="bdk", pin_block=under_zpk("1234"), pan=PAN,
            offset="0000")))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == ("pvk_key_ref: key 'bdk' is a BDK (B0, BDK base derivation "
                                   "key); VerifyPin needs a PVK")

    hsm(scenario)


def test_derive_ipek_needs_an_rsa_key_of_2048_bits(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        # A weak device key, on purpose: the HSM must refuse to export an IPEK under it.
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        pem = small.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        error = await failure(stub.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref="bdk", ksn=KSN[:9], device_public_key_pem=pem)))
        assert field_violations_of(error) == [
            ("ksn", "must be 10 bytes (TDES KSN), 8 (AES initial key id) or 12 (AES KSN), "
                    "got 9"),
            ("device_public_key_pem", "RSA key must be at least 2048 bits, got 1024"),
        ]

    hsm(scenario)


# --- CVV and PANs -----------------------------------------------------------------------------


def test_cvv_generates_and_verifies(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        expected = psec.cvv.generate_cvv(TEST_KEY, PAN, "2912", "201")
        generated = await stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="cvk", pan=PAN, expiry_yymm="2912", service_code="201"))
        assert generated.cvv == expected

        def verify(value: str) -> Any:
            return stub.VerifyCvv(hsm_pb2.VerifyCvvRequest(
                cvk_key_ref="cvk", pan=PAN, expiry_yymm="2912", service_code="201", cvv=value))

        assert (await verify(expected)).verified is True
        assert (await verify(f"{(int(expected) + 1) % 1000:03d}")).verified is False

    hsm(scenario)


def test_field_violations_carry_a_bad_request_for_each_field(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="", pan="4111111111111112", expiry_yymm="2913", service_code="20")))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(error) == [
            ("cvk_key_ref", "is required (a key id, a label or a key block under the LMK)"),
            ("pan", "fails the Luhn check"),
            ("expiry_yymm", "month must be 01 to 12"),
            ("service_code", "must be 3 digits, got 2 characters"),
        ]
        assert "4111111111111112" not in (error.details() or "")

    hsm(scenario)


def test_a_trailing_newline_is_not_a_digit(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        error = await failure(stub.VerifyCvv(hsm_pb2.VerifyCvvRequest(
            cvk_key_ref="cvk", pan=PAN + "\n", expiry_yymm="2912", service_code="20\n",
            cvv="12\n")))
        assert field_violations_of(error) == [
            ("pan", "must be digits only"),
            ("service_code", "must be 3 digits, got 3 characters"),
            ("cvv", "must be 3 digits, got 3 characters"),
        ]

    hsm(scenario)


def test_protect_and_reveal_a_pan(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        protected = await stub.ProtectPan(hsm_pb2.ProtectPanRequest(
            hmac_key_ref="hmac", dek_key_ref="dek", pan=PAN))
        assert protected.pan_token == hmac.new(bytes(range(32)), PAN.encode(),
                                               hashlib.sha256).hexdigest()
        assert (protected.bin, protected.last_four) == ("411111", "1111")
        assert PAN.encode() not in protected.encrypted_pan
        assert len(protected.encrypted_pan) == 12 + len(PAN) + 16

        again = await stub.ProtectPan(hsm_pb2.ProtectPanRequest(
            hmac_key_ref="hmac", dek_key_ref="dek", pan=PAN))
        assert again.pan_token == protected.pan_token
        assert again.encrypted_pan != protected.encrypted_pan  # a fresh nonce each time

        revealed = await stub.RevealPan(hsm_pb2.RevealPanRequest(
            dek_key_ref="dek", encrypted_pan=protected.encrypted_pan))
        assert revealed.pan == PAN

    hsm(scenario)


def test_a_tampered_pan_ciphertext_is_invalid_argument(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        protected = await stub.ProtectPan(hsm_pb2.ProtectPanRequest(
            hmac_key_ref="hmac", dek_key_ref="dek", pan=PAN))
        tampered = bytearray(protected.encrypted_pan)
        tampered[20] ^= 0x01

        error = await failure(stub.RevealPan(hsm_pb2.RevealPanRequest(
            dek_key_ref="dek", encrypted_pan=bytes(tampered))))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations_of(error)] == ["encrypted_pan"]
        assert PAN not in (error.details() or "")

    hsm(scenario)


def test_no_error_message_carries_a_clear_pan(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        calls = [
            stub.ProtectPan(hsm_pb2.ProtectPanRequest(
                hmac_key_ref="dek", dek_key_ref="hmac", pan=PAN)),
            stub.ProtectPan(hsm_pb2.ProtectPanRequest(
                hmac_key_ref=PAN, dek_key_ref="dek", pan=PAN)),
            stub.VerifyPin(hsm_pb2.VerifyPinRequest(
                zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=bytes(8), pan=PAN,
                offset="1234")),
            stub.TranslatePin(hsm_pb2.TranslatePinRequest(
                source_bdk_key_ref="bdk", ksn=dukpt.make_ksn(bytes(5), 1, 0),
                destination_zpk_key_ref="cvk", pin_block=bytes(7), pan=PAN[:-1] + "2")),
            stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
                cvk_key_ref="pvk", pan=PAN, expiry_yymm="2912", service_code="201")),
        ]
        for call in calls:
            error = await failure(call)
            text = f"{error.details()} {field_violations_of(error)}"
            assert PAN not in text and PAN[:-1] + "2" not in text, text

    hsm(scenario)


def test_serve_announces_its_port_and_stops_cleanly_on_sigterm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    monkeypatch.delenv("CARDSWITCH_LMK_FILE", raising=False)
    monkeypatch.delenv("CARDSWITCH_DATABASE_URL", raising=False)
    lmk.create()
    code = "import asyncio; from hsm_sim import server; asyncio.run(server.serve(0))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"HSM ready on 127\.0\.0\.1:[1-9][0-9]*\n", line), line
        with grpc.insecure_channel(line.split()[-1]) as channel:
            stub_class: Any = hsm_pb2_grpc.HsmServiceStub
            listed = stub_class(channel).ListKeys(hsm_pb2.ListKeysRequest(), timeout=5)
        assert list(listed.keys) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- audit ------------------------------------------------------------------------------------


def test_every_command_is_audited_with_its_keys_and_result_and_no_secret(
        hsm: Any, tmp_path: Path) -> None:
    async def scenario(stub: Any) -> None:
        await standard_keys(stub)
        await stub.VerifyPin(hsm_pb2.VerifyPinRequest(
            zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=under_zpk("1234"), pan=PAN,
            offset="0000"))
        await failure(stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="zpk", pan=PAN, expiry_yymm="2812", service_code="101")))

    hsm(scenario)  # stopping the HSM flushes and closes the log

    log_path = tmp_path / "hsm" / "audit.log"
    report = audit.verify(log_path, audit.audit_key(lmk.load()))
    assert report.ok and report.records == 8
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [r["command"] for r in records] == ["ImportKey"] * 5 + ["GenerateKey", "VerifyPin",
                                                                   "GenerateCvv"]
    verify = records[6]
    assert verify["interface"] == "grpc" and verify["result"] in ("ok", "NOT_VERIFIED")
    assert [(k["role"], k["ref"], k["usage"]) for k in verify["keys"]] == [
        ("zpk", "zpk", "P0"), ("pvk", "pvk", "V0")]
    assert verify["keys"][0]["kcv"] == tdes.encrypt_ecb(ZPK, bytes(8))[:3].hex().upper()
    assert records[7]["result"] == "FAILED_PRECONDITION"
    text = log_path.read_text().upper()
    for secret in (TEST_KEY.hex().upper(), ZPK.hex().upper(), under_zpk("1234").hex().upper(),
                   PAN):
        assert secret not in text
