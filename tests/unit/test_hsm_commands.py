"""HsmService command by command, over a real gRPC server on a free port.

Every RPC on its success path, every key usage the HSM must refuse, one bad input per command, a
wrong LMK at start, and no clear key or PIN at rest. Expected values come from independent
implementations: psec (PIN blocks, IBM 3624, Visa PVV, CVV, retail MAC, TR-31), pyemv (EMV key
derivation, ARQC, ARPC) and cryptography (RSA-OAEP, AES-CMAC, HMAC). Only DUKPT working keys come
from hsm_sim.algorithms.dukpt (no installed library has AES DUKPT); its own tests hold it to the
X9.24-1 and X9.24-3 published vectors, which appear here as literals too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import psec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from pyemv import ac as emv_ac
from pyemv import kd as emv_kd

from cardswitch.config import ROOT
from cardswitch.errors import field_violations_of
from cardswitch.v1 import common_pb2, hsm_pb2
from hsm_sim import lmk, server
from hsm_sim.algorithms import dukpt
from tests.hsm_support import failure

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec and pyemv use TripleDES
)

ISO_0, ISO_1, ISO_3, ISO_4 = (
    common_pb2.PIN_BLOCK_FORMAT_ISO_0, common_pb2.PIN_BLOCK_FORMAT_ISO_1,
    common_pb2.PIN_BLOCK_FORMAT_ISO_3, common_pb2.PIN_BLOCK_FORMAT_ISO_4)
TDES_2KEY, TDES_3KEY = hsm_pb2.KEY_ALGORITHM_TDES_2KEY, hsm_pb2.KEY_ALGORITHM_TDES_3KEY
AES_128, AES_256 = hsm_pb2.KEY_ALGORITHM_AES_128, hsm_pb2.KEY_ALGORITHM_AES_256
HMAC_SHA256 = hsm_pb2.KEY_ALGORITHM_HMAC_SHA256
INVALID_ARGUMENT, FAILED_PRECONDITION = (grpc.StatusCode.INVALID_ARGUMENT,
                                         grpc.StatusCode.FAILED_PRECONDITION)

PAN = "4111111111111111"
PANS = ("4111111111111111", "5500000000000004", "4012888888881881", "4000056655665556",
        "5105105105105100")

# Clear keys, known to the test so that every result can be checked from outside the HSM.
ZMK = bytes.fromhex("F1E2D3C4B5A69788796A5B4C3D2E1F01")
AES_ZMK = bytes.fromhex("9F8E7D6C5B4A39281706F5E4D3C2B1A0112233445566778899AABBCCDDEEFF01")
BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # the X9.24-1 test BDK
AES_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")  # the X9.24-3 test BDK
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
AES_ZPK = bytes.fromhex("5A1F0C3E9B7D2468ACE13579BDF02468")
PVK = bytes.fromhex("C1D0F8FB4958670DBA40AB1F3752EF0D")
CVK = bytes.fromhex("4C1A6F2E8D3B5A7901F2E3D4C5B6A798")
TAK = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
AES_TAK = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
DEK = bytes.fromhex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
HMAC_KEY = bytes.fromhex("3E8A1B6C9D2F4E7A0B5C8D1E6F3A9B2C7D4E0F5A1B8C2D9E6F3A0B7C4D1E8F25")
IMK = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
IMK_SMI = bytes.fromhex("4664942FE615FB02E5D57F292AA2B3B6")
PVK_IBM = bytes.fromhex("2A5B8C1D4E7F0A3B6C9D2E5F8A1B4C7D")
PVK_VISA = bytes.fromhex("7D4C1B8A5F2E9D6C3B0A7F4E1D8C5B2A")

# label: (key type, algorithm, clear key, mode of use). A label ending in a mode of use (".wrap",
# ".verify"...) holds the same clear key as its unrestricted twin: only the mode tells them apart.
KEYS: dict[str, tuple[int, int, bytes, str]] = {
    "zmk": (hsm_pb2.KEY_TYPE_ZMK, TDES_2KEY, ZMK, ""),
    "zmk.aes": (hsm_pb2.KEY_TYPE_ZMK, AES_256, AES_ZMK, ""),
    "zmk.wrap": (hsm_pb2.KEY_TYPE_ZMK, TDES_2KEY, ZMK, "E"),
    "zmk.unwrap": (hsm_pb2.KEY_TYPE_ZMK, TDES_2KEY, ZMK, "D"),
    "bdk": (hsm_pb2.KEY_TYPE_BDK, TDES_2KEY, BDK, ""),
    "bdk.aes": (hsm_pb2.KEY_TYPE_BDK, AES_128, AES_BDK, ""),
    "zpk": (hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY, ZPK, ""),
    "zpk.aes": (hsm_pb2.KEY_TYPE_ZPK, AES_128, AES_ZPK, ""),
    "zpk.encrypt": (hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY, ZPK, "E"),
    "pvk": (hsm_pb2.KEY_TYPE_PVK, TDES_2KEY, PVK, ""),
    "cvk": (hsm_pb2.KEY_TYPE_CVK, TDES_2KEY, CVK, ""),
    "cvk.verify": (hsm_pb2.KEY_TYPE_CVK, TDES_2KEY, CVK, "V"),
    "tak": (hsm_pb2.KEY_TYPE_TAK, TDES_2KEY, TAK, ""),
    "tak.aes": (hsm_pb2.KEY_TYPE_TAK, AES_128, AES_TAK, ""),
    "tak.generate": (hsm_pb2.KEY_TYPE_TAK, TDES_2KEY, TAK, "G"),
    "dek": (hsm_pb2.KEY_TYPE_DEK, AES_256, DEK, ""),
    "dek.encrypt": (hsm_pb2.KEY_TYPE_DEK, AES_256, DEK, "E"),
    "dek.decrypt": (hsm_pb2.KEY_TYPE_DEK, AES_256, DEK, "D"),
    "hmac": (hsm_pb2.KEY_TYPE_HMAC, HMAC_SHA256, HMAC_KEY, ""),
    "hmac.verify": (hsm_pb2.KEY_TYPE_HMAC, HMAC_SHA256, HMAC_KEY, "V"),
    "imk": (hsm_pb2.KEY_TYPE_IMK_AC, TDES_2KEY, IMK, ""),
    "imk.smi": (hsm_pb2.KEY_TYPE_IMK_SMI, TDES_2KEY, IMK_SMI, ""),
}
# PVKs received as TR-31 blocks under "zmk", whose usage says which PIN method each serves.
TR31_PVKS = {"pvk.ibm": ("V1", PVK_IBM), "pvk.visa": ("V2", PVK_VISA)}

KSN = bytes.fromhex("FFFF9876543210E00008")  # TDES DUKPT, X9.24-1 test KSN, counter 8
AES_INITIAL_KEY_ID = bytes.fromhex("1234567890123456")
AES_KSN = AES_INITIAL_KEY_ID + bytes.fromhex("00000001")  # AES DUKPT, X9.24-3 test KSN
DECIMALIZATION = "0123456789012345"



@cache
def device_key() -> rsa.RSAPrivateKey:
    """The PIN pad's RSA key pair for remote key loading (made once: 2048-bit keys are slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def device_pem() -> bytes:
    return device_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def oaep_decrypt(ciphertext: bytes) -> bytes:
    return device_key().decrypt(ciphertext, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))


def components_of(clear: bytes) -> list[str]:
    """Two random components whose XOR is ``clear``, as key custodians would hold them."""
    mask = secrets.token_bytes(len(clear))
    return [mask.hex(), bytes(a ^ b for a, b in zip(clear, mask, strict=True)).hex().upper()]


async def import_key(stub: Any, label: str, key_type: int, algorithm: int, clear: bytes,
                     mode_of_use: str = "") -> Any:
    response = await stub.ImportKey(hsm_pb2.ImportKeyRequest(
        label=label, key_type=key_type, algorithm=algorithm, components=components_of(clear),
        mode_of_use=mode_of_use))
    return response.key


async def load_keys(stub: Any) -> None:
    """Every key of :data:`KEYS` from components, and :data:`TR31_PVKS` as TR-31 blocks."""
    for label, (key_type, algorithm, clear, mode) in KEYS.items():
        await import_key(stub, label, key_type, algorithm, clear, mode)
    for label, (key_usage, clear) in TR31_PVKS.items():
        block = psec.tr31.wrap(ZMK, psec.tr31.Header("B", key_usage, "T", "C", "00", "N"), clear)
        await stub.ImportKey(hsm_pb2.ImportKeyRequest(label=label, key_block=block,
                                                      kek_key_ref="zmk"))


def tdes_kcv(key: bytes) -> str:
    return psec.des.generate_kcv(key, 3).hex().upper()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def aes_kcv(key: bytes) -> str:
    return aes_cmac(key, bytes(16))[:3].hex().upper()


def iso0_under(key: bytes, pin: str, pan: str = PAN) -> bytes:
    return psec.des.encrypt_tdes_ecb(key, psec.pinblock.encode_pinblock_iso_0(pin, pan))


def pin_of_iso0(key: bytes, block: bytes, pan: str = PAN) -> str:
    return psec.pinblock.decode_pinblock_iso_0(psec.des.decrypt_tdes_ecb(key, block), pan)


def ibm3624_offset(pin: str, pan: str = PAN, pvk: bytes = PVK) -> str:
    return psec.pin.generate_ibm3624_offset(pvk, DECIMALIZATION, pin, pan, 0, 16, "F")


def retail_mac(data: bytes, length: int = 8) -> bytes:
    return psec.mac.generate_retail_mac(TAK[:8], TAK[8:], data, 2, length)


# --- key management ---------------------------------------------------------------------------


def test_components_combine_to_a_key_whose_kcv_is_its_tdes_or_aes_check_value(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        tdes_key = await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.acquirer", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=TDES_2KEY,
            components=components_of(ZPK), expected_kcv=tdes_kcv(ZPK).lower()))
        aes_key = await import_key(stub, "zpk.acquirer.aes", hsm_pb2.KEY_TYPE_ZPK, AES_128,
                                   AES_ZPK)

        assert tdes_kcv(ZPK) == "32E088" and aes_kcv(AES_ZPK) == "8C262D"
        assert (tdes_key.key.kcv, aes_key.kcv) == ("32E088", "8C262D")
        assert (tdes_key.key.label, tdes_key.key.key_type, tdes_key.key.algorithm) == (
            "zpk.acquirer", hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY)
        assert (tdes_key.key.usage, tdes_key.key.mode_of_use, tdes_key.key.exportability,
                tdes_key.key.stored) == ("P0", "B", "E", True)

    hsm(scenario)


def test_a_tr31_block_under_a_zmk_imports_the_key_it_wraps_with_its_header(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        tdes_block = psec.tr31.wrap(ZMK, psec.tr31.Header("B", "P0", "T", "D", "00", "E"), ZPK)
        aes_block = psec.tr31.wrap(AES_ZMK, psec.tr31.Header("D", "P0", "A", "B", "00", "S"),
                                   AES_ZPK)

        received = (await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.issuer", key_block=tdes_block, kek_key_ref="zmk"))).key
        received_aes = (await stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="zpk.issuer.aes", key_block=aes_block, kek_key_ref="zmk.aes"))).key

        assert (received.kcv, received.key_type, received.algorithm, received.usage,
                received.mode_of_use, received.exportability, received.stored) == (
            tdes_kcv(ZPK), hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY, "P0", "D", "E", True)
        assert (received_aes.kcv, received_aes.algorithm, received_aes.mode_of_use,
                received_aes.exportability) == (aes_kcv(AES_ZPK), AES_128, "B", "S")
        pvks = (await stub.ListKeys(hsm_pb2.ListKeysRequest(key_type=hsm_pb2.KEY_TYPE_PVK))).keys
        assert [(k.label, k.usage, k.mode_of_use, k.exportability, k.kcv) for k in pvks] == [
            ("pvk", "V0", "C", "N", tdes_kcv(PVK)),
            ("pvk.ibm", "V1", "C", "N", tdes_kcv(PVK_IBM)),
            ("pvk.visa", "V2", "C", "N", tdes_kcv(PVK_VISA)),
        ]

    hsm(scenario)


def test_a_generated_key_with_a_label_is_stored_and_found_by_id_label_or_key_block(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="cvk.new", key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY))
        key = generated.key
        assert (key.label, key.key_type, key.algorithm, key.usage, key.mode_of_use,
                key.exportability, key.stored) == (
            "cvk.new", hsm_pb2.KEY_TYPE_CVK, TDES_2KEY, "C0", "C", "N", True)
        assert len(key.key_id) == 36 and generated.zmk_key_block == ""
        assert generated.lmk_key_block.startswith("D")

        assert await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref=key.key_id)) == key
        assert await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref="cvk.new")) == key
        by_value = await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref=generated.lmk_key_block))
        assert (by_value.key_id, by_value.label, by_value.key_type, by_value.kcv, by_value.usage,
                by_value.mode_of_use, by_value.exportability, by_value.stored) == (
            "", "cvk.new", hsm_pb2.KEY_TYPE_CVK, key.kcv, "C0", "C", "N", False)
        assert by_value.created_at.seconds == key.created_at.seconds
        listed = await stub.ListKeys(hsm_pb2.ListKeysRequest())
        assert list(listed.keys) == [key]

    hsm(scenario)


def test_a_generated_key_without_a_label_is_not_stored_but_works_by_value_and_under_a_zmk(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        before = await stub.ListKeys(hsm_pb2.ListKeysRequest())
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY, exportability="E",
            zmk_key_ref="zmk"))
        assert (generated.key.key_id, generated.key.label, generated.key.stored) == ("", "", False)
        assert await stub.ListKeys(hsm_pb2.ListKeysRequest()) == before

        header, clear = psec.tr31.unwrap(ZMK, generated.zmk_key_block)
        assert (header.version_id, header.key_usage, header.algorithm, header.mode_of_use,
                header.exportability) == ("B", "C0", "T", "C", "E")
        assert tdes_kcv(clear) == generated.key.kcv

        cvv = await stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref=generated.lmk_key_block, pan=PAN, expiry_yymm="2912",
            service_code="201"))
        assert cvv.cvv == psec.cvv.generate_cvv(clear, PAN, "2912", "201")

    hsm(scenario)


def test_an_exportable_key_leaves_under_a_tdes_zmk_as_version_b_and_an_aes_zmk_as_version_d(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        under_tdes = await stub.ExportKey(hsm_pb2.ExportKeyRequest(key_ref="zpk",
                                                                   zmk_key_ref="zmk"))
        under_aes = await stub.ExportKey(hsm_pb2.ExportKeyRequest(key_ref="zpk.aes",
                                                                  zmk_key_ref="zmk.aes"))

        header, clear = psec.tr31.unwrap(ZMK, under_tdes.key_block)
        assert (header.version_id, header.key_usage, header.algorithm, header.mode_of_use,
                header.exportability, clear, under_tdes.kcv) == (
            "B", "P0", "T", "B", "E", ZPK, tdes_kcv(ZPK))
        header, clear = psec.tr31.unwrap(AES_ZMK, under_aes.key_block)
        assert (header.version_id, header.key_usage, header.algorithm, header.mode_of_use,
                header.exportability, clear, under_aes.kcv) == (
            "D", "P0", "A", "B", "E", AES_ZPK, aes_kcv(AES_ZPK))

    hsm(scenario)


def test_list_keys_gives_stored_keys_by_label_optionally_of_one_type(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        zpks = await stub.ListKeys(hsm_pb2.ListKeysRequest(key_type=hsm_pb2.KEY_TYPE_ZPK))
        assert [(k.label, k.algorithm, k.mode_of_use, k.kcv) for k in zpks.keys] == [
            ("zpk", TDES_2KEY, "B", tdes_kcv(ZPK)),
            ("zpk.aes", AES_128, "B", aes_kcv(AES_ZPK)),
            ("zpk.encrypt", TDES_2KEY, "E", tdes_kcv(ZPK)),
        ]
        every = await stub.ListKeys(hsm_pb2.ListKeysRequest())
        assert [k.label for k in every.keys] == sorted([*KEYS, *TR31_PVKS])

    hsm(scenario)


# --- DUKPT ------------------------------------------------------------------------------------


def test_a_tdes_initial_key_derived_from_a_10_byte_ksn_comes_under_the_device_key(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        loaded = await stub.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref="bdk", ksn=KSN, device_public_key_pem=device_pem()))
        ipek = oaep_decrypt(loaded.encrypted_initial_key)
        assert ipek == dukpt.tdes_ipek(BDK, KSN)
        assert ipek.hex().upper() == "6AC292FAA1315B4D858AB3A3D7D5933A"  # X9.24-1 vector
        assert loaded.kcv == tdes_kcv(ipek)

    hsm(scenario)


def test_an_aes_initial_key_derived_from_an_8_byte_initial_key_id_comes_under_the_device_key(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        loaded = await stub.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref="bdk.aes", ksn=AES_INITIAL_KEY_ID, device_public_key_pem=device_pem()))
        initial_key = oaep_decrypt(loaded.encrypted_initial_key)
        assert initial_key == dukpt.aes_initial_key(AES_BDK, AES_INITIAL_KEY_ID)
        assert initial_key.hex().upper() == "1273671EA26AC29AFA4D1084127652A1"  # X9.24-3
        assert loaded.kcv == aes_kcv(initial_key)

    hsm(scenario)


# --- PIN translation --------------------------------------------------------------------------


def test_a_tdes_dukpt_iso0_block_translates_to_the_zpk_as_iso0_and_as_iso3(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        pin_key = dukpt.tdes_pin_key(dukpt.tdes_ipek(BDK, KSN), KSN)
        from_pin_pad = iso0_under(pin_key, "4821")

        def translate(destination_format: int) -> Any:
            return stub.TranslatePin(hsm_pb2.TranslatePinRequest(
                source_bdk_key_ref="bdk", ksn=KSN, destination_zpk_key_ref="zpk",
                pin_block=from_pin_pad, pan=PAN, destination_format=destination_format))

        iso0 = await translate(common_pb2.PIN_BLOCK_FORMAT_UNSPECIFIED)
        assert (iso0.format, iso0.pin_block) == (ISO_0, iso0_under(ZPK, "4821"))
        iso3 = await translate(ISO_3)
        assert iso3.format == ISO_3
        clear = psec.des.decrypt_tdes_ecb(ZPK, iso3.pin_block)
        assert psec.pinblock.decode_pinblock_iso_3(clear, PAN) == "4821"

    hsm(scenario)


def test_an_aes_dukpt_iso4_block_translates_to_an_aes_zpk_as_iso4_and_a_tdes_zpk_as_iso0(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        pin_key = dukpt.aes_pin_key(dukpt.aes_initial_key(AES_BDK, AES_INITIAL_KEY_ID), AES_KSN)
        assert pin_key.hex().upper() == "AF8CB133A78F8DC2D1359F18527593FB"  # X9.24-3 vector
        from_pin_pad = psec.pinblock.encipher_pinblock_iso_4(pin_key, "93715", PAN)

        to_aes = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_bdk_key_ref="bdk.aes", ksn=AES_KSN, destination_zpk_key_ref="zpk.aes",
            pin_block=from_pin_pad, pan=PAN, source_format=ISO_4, destination_format=ISO_4))
        assert to_aes.format == ISO_4
        assert psec.pinblock.decipher_pinblock_iso_4(AES_ZPK, to_aes.pin_block, PAN) == "93715"
        to_tdes = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_bdk_key_ref="bdk.aes", ksn=AES_KSN, destination_zpk_key_ref="zpk",
            pin_block=from_pin_pad, pan=PAN, source_format=ISO_4, destination_format=ISO_0))
        assert (to_tdes.format, to_tdes.pin_block) == (ISO_0, iso0_under(ZPK, "93715"))

    hsm(scenario)


def test_a_zpk_iso0_block_translates_to_an_aes_zpk_as_iso4(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        translated = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk.aes",
            pin_block=iso0_under(ZPK, "250871"), pan=PAN, destination_format=ISO_4))
        assert translated.format == ISO_4 and len(translated.pin_block) == 16
        assert psec.pinblock.decipher_pinblock_iso_4(AES_ZPK, translated.pin_block,
                                                     PAN) == "250871"

    hsm(scenario)


def test_translating_iso0_to_iso1_is_forbidden_naming_destination_format(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk",
            pin_block=iso0_under(ZPK, "1234"), pan=PAN, destination_format=ISO_1)))
        assert error.code() == INVALID_ARGUMENT
        assert [field for field, _ in field_violations_of(error)] == ["destination_format"]

    hsm(scenario)


def test_the_forbidden_translation_is_described_once_without_a_field_prefix(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(stub.TranslatePin(hsm_pb2.TranslatePinRequest(
            source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk",
            pin_block=iso0_under(ZPK, "1234"), pan=PAN, destination_format=ISO_1)))
        assert field_violations_of(error) == [
            ("destination_format", "ISO format 0 to format 1 is forbidden (PCI PIN 3-3)")]

    hsm(scenario)


# --- PIN verification and issuance ------------------------------------------------------------


def test_verify_pin_against_an_ibm3624_offset_accepts_the_pin_and_refuses_another(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        offset = ibm3624_offset("7391")

        async def verify(pin: str) -> bool:
            response = await stub.VerifyPin(hsm_pb2.VerifyPinRequest(
                zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=iso0_under(ZPK, pin), pan=PAN,
                offset=offset))
            return bool(response.verified)

        assert (await verify("7391"), await verify("7392")) == (True, False)

    hsm(scenario)


def test_verify_pin_against_a_visa_pvv_accepts_the_pin_and_refuses_another(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        pvv = psec.pin.generate_visa_pvv(PVK, "1", "7391", PAN)

        async def verify(pin: str) -> bool:
            response = await stub.VerifyPin(hsm_pb2.VerifyPinRequest(
                zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=iso0_under(ZPK, pin), pan=PAN,
                pvv=pvv, pvki=1))
            return bool(response.verified)

        assert (await verify("7391"), await verify("1937")) == (True, False)

    hsm(scenario)


def test_verify_pin_reads_an_iso4_block_under_an_aes_zpk(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        response = await stub.VerifyPin(hsm_pb2.VerifyPinRequest(
            zpk_key_ref="zpk.aes", pvk_key_ref="pvk", format=ISO_4, pan=PAN,
            pin_block=psec.pinblock.encipher_pinblock_iso_4(AES_ZPK, "7391", PAN),
            offset=ibm3624_offset("7391")))
        assert response.verified is True

    hsm(scenario)


def test_generate_pin_offset_is_the_ibm3624_offset_for_the_table_and_validation_data(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        default = await stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
            pvk_key_ref="pvk", pan=PAN, pin="739104"))
        chosen = await stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
            pvk_key_ref="pvk", pan=PAN, pin="739104", decimalization_table="9876543210123456",
            validation_data="41111111111fffff"))
        assert default.offset == ibm3624_offset("739104")
        assert chosen.offset == psec.pin.generate_ibm3624_offset(
            PVK, "9876543210123456", "739104", PAN[:11], 0, 11, "F")

    hsm(scenario)


def test_generate_pvv_is_the_visa_pvv_for_the_key_index(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        for pvki in (0, 1, 6):
            generated = await stub.GeneratePvv(hsm_pb2.GeneratePvvRequest(
                pvk_key_ref="pvk", pan=PAN, pin="7391", pvki=pvki))
            assert generated.pvv == psec.pin.generate_visa_pvv(PVK, str(pvki), "7391", PAN)

    hsm(scenario)


def test_a_random_pin_leaves_only_under_the_mailer_key_with_its_offset_and_pvv(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        issued = await stub.GenerateRandomPin(hsm_pb2.GenerateRandomPinRequest(
            pan=PAN, pin_length=4, mailer_key_ref="zpk", offset_pvk_key_ref="pvk",
            pvv_pvk_key_ref="pvk", pvki=2))
        assert issued.format == ISO_0
        pin = pin_of_iso0(ZPK, issued.pin_block)
        assert len(pin) == 4 and pin.isdigit()
        assert issued.offset == ibm3624_offset(pin)
        assert issued.pvv == psec.pin.generate_visa_pvv(PVK, "2", pin, PAN)

        aes = await stub.GenerateRandomPin(hsm_pb2.GenerateRandomPinRequest(
            pan=PAN, pin_length=12, mailer_key_ref="zpk.aes", format=ISO_4))
        pin = psec.pinblock.decipher_pinblock_iso_4(AES_ZPK, aes.pin_block, PAN)
        assert (aes.format, len(pin), aes.offset, aes.pvv) == (ISO_4, 12, "", "")

    hsm(scenario)


# --- CVV and PANs -----------------------------------------------------------------------------


def test_a_cvv_is_the_visa_cvv_and_verifies_even_under_a_verify_only_cvk(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        expected = psec.cvv.generate_cvv(CVK, PAN, "2912", "000")
        generated = await stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="cvk", pan=PAN, expiry_yymm="2912", service_code="000"))
        assert generated.cvv == expected

        async def verify(cvk: str, value: str) -> bool:
            response = await stub.VerifyCvv(hsm_pb2.VerifyCvvRequest(
                cvk_key_ref=cvk, pan=PAN, expiry_yymm="2912", service_code="000", cvv=value))
            return bool(response.verified)

        wrong = f"{(int(expected) + 1) % 1000:03d}"
        assert (await verify("cvk", expected), await verify("cvk.verify", expected),
                await verify("cvk.verify", wrong)) == (True, True, False)

    hsm(scenario)


def test_protect_pan_gives_the_hmac_token_and_a_ciphertext_that_reveal_pan_opens(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        protected = await stub.ProtectPan(hsm_pb2.ProtectPanRequest(
            hmac_key_ref="hmac", dek_key_ref="dek", pan="5500000000000004"))
        assert (protected.pan_token, protected.bin, protected.last_four) == (
            hmac.new(HMAC_KEY, b"5500000000000004", hashlib.sha256).hexdigest(), "550000",
            "0004")
        assert len(protected.encrypted_pan) == 12 + 16 + 16
        revealed = await stub.RevealPan(hsm_pb2.RevealPanRequest(
            dek_key_ref="dek", encrypted_pan=protected.encrypted_pan))
        assert revealed.pan == "5500000000000004"

    hsm(scenario)


# --- EMV --------------------------------------------------------------------------------------

# CDOL1 data as a card MACs it: amount, other amount, country, TVR, currency, date, type, UN,
# AIP, ATC (pyemv's generate_ac example).
CDOL1 = bytes.fromhex("000000002000" "000000000000" "0124" "0000008000" "0124" "110309" "00"
                      "3804823E" "5800" "001C")
ATC = bytes.fromhex("001C")
ARC = b"00"
CSU = bytes.fromhex("00820000")


def card_cryptograms(version: int, psn: str) -> tuple[bytes, bytes]:
    """The card's ARQC and the ARPC the issuer owes it, computed with pyemv."""
    icc_key = emv_kd.derive_icc_mk_a(IMK, PAN, psn or "00")
    if version == hsm_pb2.CRYPTOGRAM_VERSION_VISA_10:
        arqc = emv_ac.generate_ac(icc_key, CDOL1, emv_ac.PaddingType.VISA)
        return arqc, emv_ac.generate_arpc_1(icc_key, arqc, ARC)
    session_key = emv_kd.derive_common_sk(icc_key, ATC + bytes(6))
    arqc = emv_ac.generate_ac(session_key, CDOL1, emv_ac.PaddingType.EMV)
    if version == hsm_pb2.CRYPTOGRAM_VERSION_VISA_18:
        return arqc, emv_ac.generate_arpc_2(session_key, arqc, CSU, b"\x01\x02")
    return arqc, emv_ac.generate_arpc_1(session_key, arqc, ARC)


def arqc_request(version: int, psn: str, arqc: bytes,
                 data: bytes = CDOL1) -> hsm_pb2.VerifyArqcRequest:
    return hsm_pb2.VerifyArqcRequest(
        imk_ac_key_ref="imk", pan=PAN, psn=psn, cryptogram_version=version, atc=ATC,
        transaction_data=data, arqc=arqc, arc=ARC, csu=CSU, proprietary_auth_data=b"\x01\x02")


# The Mastercard card has no PAN sequence number: the HSM must take "00".
CRYPTOGRAM_VERSIONS = [
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_VISA_10, "01", id="visa_cvn_10"),
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_VISA_18, "01", id="visa_cvn_18"),
    pytest.param(hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16, "", id="mastercard_cvn_16"),
]
ARPC_LENGTHS = {  # ARPC method 1 is a TDES block; method 2 four bytes of a retail MAC
    hsm_pb2.CRYPTOGRAM_VERSION_VISA_10: 8, hsm_pb2.CRYPTOGRAM_VERSION_VISA_18: 4,
    hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16: 8}


@pytest.mark.parametrize(("version", "psn"), CRYPTOGRAM_VERSIONS)
def test_a_card_arqc_verifies_and_yields_the_arpc_the_card_expects(
        hsm: Any, version: int, psn: str) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        arqc, arpc = card_cryptograms(version, psn)
        response = await stub.VerifyArqc(arqc_request(version, psn, arqc))
        assert (response.verified, response.arpc) == (True, arpc)
        assert len(arpc) == ARPC_LENGTHS[version]

    hsm(scenario)


@pytest.mark.parametrize(("version", "psn"), CRYPTOGRAM_VERSIONS)
def test_a_tampered_arqc_or_transaction_is_not_verified_and_gets_no_arpc(
        hsm: Any, version: int, psn: str) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        arqc, _ = card_cryptograms(version, psn)
        flipped = bytes([arqc[0] ^ 0x01]) + arqc[1:]
        other_amount = bytes.fromhex("000000009000") + CDOL1[6:]
        for request in (arqc_request(version, psn, flipped),
                        arqc_request(version, psn, arqc, other_amount)):
            response = await stub.VerifyArqc(request)
            assert (response.verified, response.arpc) == (False, b"")

    hsm(scenario)


# --- MACs and data ----------------------------------------------------------------------------


def test_a_tdes_tak_macs_with_the_retail_mac_and_verifies_it(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        data = b"0200 4111111111111111 000000001000"
        full = await stub.GenerateMac(hsm_pb2.GenerateMacRequest(tak_key_ref="tak", data=data))
        short = await stub.GenerateMac(hsm_pb2.GenerateMacRequest(tak_key_ref="tak", data=data,
                                                                  length=4))
        assert (full.mac, short.mac) == (retail_mac(data), retail_mac(data, 4))

        async def verify(body: bytes, mac: bytes) -> bool:
            response = await stub.VerifyMac(hsm_pb2.VerifyMacRequest(
                tak_key_ref="tak", data=body, mac=mac))
            return bool(response.verified)

        assert (await verify(data, full.mac), await verify(data, short.mac),
                await verify(data + b"0", full.mac)) == (True, True, False)

    hsm(scenario)


def test_an_aes_tak_macs_with_cmac_and_verifies_it(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        data = bytes.fromhex("6BC1BEE22E409F96E93D7E117393172A")
        default = await stub.GenerateMac(hsm_pb2.GenerateMacRequest(tak_key_ref="tak.aes",
                                                                    data=data))
        full = await stub.GenerateMac(hsm_pb2.GenerateMacRequest(tak_key_ref="tak.aes",
                                                                 data=data, length=16))
        assert full.mac.hex().upper() == "070A16B46B4D4144F79BDD9DD04A287C"  # SP 800-38B
        assert (default.mac, full.mac) == (aes_cmac(AES_TAK, data)[:8], aes_cmac(AES_TAK, data))

        async def verify(body: bytes, mac: bytes) -> bool:
            response = await stub.VerifyMac(hsm_pb2.VerifyMacRequest(
                tak_key_ref="tak.aes", data=body, mac=mac))
            return bool(response.verified)

        assert (await verify(data, full.mac), await verify(data, default.mac),
                await verify(data[:-1], full.mac)) == (True, True, False)

    hsm(scenario)


def test_encrypted_data_decrypts_only_with_its_associated_data(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        plaintext = b"track 2: 4111111111111111=29122010000012300000"
        sealed = await stub.EncryptData(hsm_pb2.EncryptDataRequest(
            dek_key_ref="dek", plaintext=plaintext, associated_data=b"card:42"))
        assert len(sealed.ciphertext) == 12 + len(plaintext) + 16
        assert plaintext not in sealed.ciphertext

        opened = await stub.DecryptData(hsm_pb2.DecryptDataRequest(
            dek_key_ref="dek", ciphertext=sealed.ciphertext, associated_data=b"card:42"))
        assert opened.plaintext == plaintext
        error = await failure(stub.DecryptData(hsm_pb2.DecryptDataRequest(
            dek_key_ref="dek", ciphertext=sealed.ciphertext, associated_data=b"card:43")))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == [(
            "ciphertext", "does not decrypt under the given key with this associated data: "
                          "altered, truncated or encrypted under another key")]

    hsm(scenario)


# --- Execute ----------------------------------------------------------------------------------


def _command(command_id: int, kind: int, pan: str, pin: str, zpk: Any,
             ) -> tuple[hsm_pb2.HsmCommand, hsm_pb2.HsmResult]:
    """One of ten kinds of command for ``pan`` and ``pin``, and the result it must give."""
    command, result = hsm_pb2.HsmCommand(id=command_id), hsm_pb2.HsmResult(id=command_id)
    cvv = psec.cvv.generate_cvv(CVK, pan, "2912", "201")
    if kind == 0:
        command.generate_cvv.CopyFrom(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="cvk", pan=pan, expiry_yymm="2912", service_code="201"))
        result.generate_cvv.cvv = cvv
    elif kind == 1:
        command.verify_cvv.CopyFrom(hsm_pb2.VerifyCvvRequest(
            cvk_key_ref="cvk.verify", pan=pan, expiry_yymm="2912", service_code="201", cvv=cvv))
        result.verify_cvv.verified = True
    elif kind == 2:
        command.generate_mac.CopyFrom(hsm_pb2.GenerateMacRequest(tak_key_ref="tak",
                                                                 data=pan.encode()))
        result.generate_mac.mac = retail_mac(pan.encode())
    elif kind == 3:
        command.verify_mac.CopyFrom(hsm_pb2.VerifyMacRequest(
            tak_key_ref="tak.aes", data=pan.encode(), mac=aes_cmac(AES_TAK, pan.encode())))
        result.verify_mac.verified = True
    elif kind == 4:
        command.generate_pin_offset.CopyFrom(hsm_pb2.GeneratePinOffsetRequest(
            pvk_key_ref="pvk", pan=pan, pin=pin))
        result.generate_pin_offset.offset = ibm3624_offset(pin, pan)
    elif kind == 5:
        command.generate_pvv.CopyFrom(hsm_pb2.GeneratePvvRequest(pvk_key_ref="pvk", pan=pan,
                                                                 pin=pin, pvki=1))
        result.generate_pvv.pvv = psec.pin.generate_visa_pvv(PVK, "1", pin, pan)
    elif kind == 6:
        pin_key = dukpt.tdes_pin_key(dukpt.tdes_ipek(BDK, KSN), KSN)
        command.translate_pin.CopyFrom(hsm_pb2.TranslatePinRequest(
            source_bdk_key_ref="bdk", ksn=KSN, destination_zpk_key_ref="zpk",
            pin_block=iso0_under(pin_key, pin, pan), pan=pan))
        result.translate_pin.CopyFrom(hsm_pb2.TranslatePinResponse(
            pin_block=iso0_under(ZPK, pin, pan), format=ISO_0))
    elif kind == 7:
        command.verify_pin.CopyFrom(hsm_pb2.VerifyPinRequest(
            zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=iso0_under(ZPK, pin, pan), pan=pan,
            offset=ibm3624_offset(pin, pan)))
        result.verify_pin.verified = True
    elif kind == 8:
        command.get_key.key_ref = "zpk"
        result.get_key.CopyFrom(zpk)
    else:
        arqc, arpc = card_cryptograms(hsm_pb2.CRYPTOGRAM_VERSION_VISA_18, "01")
        command.verify_arqc.CopyFrom(arqc_request(hsm_pb2.CRYPTOGRAM_VERSION_VISA_18, "01",
                                                  arqc))
        result.verify_arqc.CopyFrom(hsm_pb2.VerifyArqcResponse(verified=True, arpc=arpc))
    return command, result


def test_execute_streams_fifty_mixed_commands_with_failures_as_results_tagged_by_id(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        zpk = await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref="zpk"))
        commands, expected = [], {}
        for n in range(50):
            command_id = 9000 + 7 * n  # the caller's ids, not positions in the stream
            command, result = _command(command_id, n % 10, PANS[n % 5], f"{n * 7919 % 10**4:04d}",
                                       zpk)
            commands.append(command)
            expected[command_id] = result
        bad_expiry, pin_key_as_tak = commands[17], commands[33]
        bad_expiry.generate_cvv.CopyFrom(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref="cvk", pan=PAN, expiry_yymm="2913", service_code="201"))
        # gRPC code 3 is INVALID_ARGUMENT, 9 FAILED_PRECONDITION: what the unary call would give.
        expected[bad_expiry.id] = hsm_pb2.HsmResult(id=bad_expiry.id, error=hsm_pb2.CommandError(
            code=3, message="expiry_yymm: month must be 01 to 12", field_violations=[
                hsm_pb2.FieldViolation(field="expiry_yymm", description="month must be 01 to 12")]))
        pin_key_as_tak.generate_mac.CopyFrom(hsm_pb2.GenerateMacRequest(tak_key_ref="zpk",
                                                                        data=b"0800"))
        expected[pin_key_as_tak.id] = hsm_pb2.HsmResult(
            id=pin_key_as_tak.id, error=hsm_pb2.CommandError(
                code=9, message="tak_key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); "
                                "GenerateMac needs a TAK"))

        results = {}
        async for result in stub.Execute(iter(commands)):
            assert result.id not in results
            results[result.id] = result
        assert results == expected

    hsm(scenario)


def test_a_command_the_hsm_cannot_complete_is_an_error_result_and_the_stream_goes_on(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        zpk = await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref="zpk"))
        stream = [
            hsm_pb2.HsmCommand(id=1, generate_key=hsm_pb2.GenerateKeyRequest(
                key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=AES_128, zmk_key_ref="zmk")),
            hsm_pb2.HsmCommand(id=2, get_key=hsm_pb2.GetKeyRequest(key_ref="zpk")),
        ]
        results = {result.id: result async for result in stub.Execute(iter(stream))}
        assert (results[1].WhichOneof("result"), results[2]) == (
            "error", hsm_pb2.HsmResult(id=2, get_key=zpk))

    hsm(scenario)


def test_an_execute_command_with_no_command_is_an_invalid_argument_result(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        stream = [hsm_pb2.HsmCommand(id=1), hsm_pb2.HsmCommand(
            id=2, get_key=hsm_pb2.GetKeyRequest(key_ref="nobody"))]
        results = [result async for result in stub.Execute(iter(stream))]
        assert sorted(results, key=lambda r: r.id) == [
            hsm_pb2.HsmResult(id=1, error=hsm_pb2.CommandError(
                code=3, message="command: no command given")),  # INVALID_ARGUMENT
            hsm_pb2.HsmResult(id=2, error=hsm_pb2.CommandError(
                code=5, message="key_ref: no key with id or label 'nobody'")),  # NOT_FOUND
        ]

    hsm(scenario)


# --- key usage --------------------------------------------------------------------------------

Request = Callable[[], Any]


def _usage(method: str, request: Request, message: str, case: str) -> Any:
    return pytest.param(method, request, message, id=case)


USAGE_VIOLATIONS = [
    # The key is of the wrong type for the command.
    _usage("GenerateMac", lambda: hsm_pb2.GenerateMacRequest(tak_key_ref="zpk", data=b"0200"),
           "tak_key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); GenerateMac needs a TAK",
           "a_pin_key_cannot_mac"),
    _usage("GeneratePvv", lambda: hsm_pb2.GeneratePvvRequest(pvk_key_ref="cvk", pan=PAN,
                                                             pin="1234"),
           "pvk_key_ref: key 'cvk' is a CVK (C0, CVK card verification key); GeneratePvv needs "
           "a PVK", "a_cvk_is_not_a_pvk"),
    _usage("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk", pvk_key_ref="cvk", pin_block=bytes(8), pan=PAN, offset="1234"),
           "pvk_key_ref: key 'cvk' is a CVK (C0, CVK card verification key); VerifyPin needs a "
           "PVK", "a_cvk_cannot_verify_a_pin"),
    _usage("ProtectPan", lambda: hsm_pb2.ProtectPanRequest(hmac_key_ref="dek",
                                                           dek_key_ref="dek", pan=PAN),
           "hmac_key_ref: key 'dek' is a DEK (D0, symmetric data encryption key); ProtectPan "
           "needs a HMAC", "a_dek_is_not_an_hmac_key"),
    _usage("ProtectPan", lambda: hsm_pb2.ProtectPanRequest(hmac_key_ref="hmac",
                                                           dek_key_ref="hmac", pan=PAN),
           "dek_key_ref: key 'hmac' is a HMAC (M7, HMAC); ProtectPan needs a DEK",
           "an_hmac_key_cannot_encrypt"),
    _usage("DeriveDukptInitialKey", lambda: hsm_pb2.DeriveDukptInitialKeyRequest(
        bdk_key_ref="zpk", ksn=KSN, device_public_key_pem=device_pem()),
           "bdk_key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); DeriveDukptInitialKey "
           "needs a BDK", "a_zpk_derives_no_dukpt_key"),
    _usage("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref="zpk", destination_zpk_key_ref="bdk", pin_block=bytes(8), pan=PAN),
           "destination_zpk_key_ref: key 'bdk' is a BDK (B0, BDK base derivation key); "
           "TranslatePin needs a ZPK or TPK", "a_bdk_cannot_receive_a_pin"),
    _usage("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="tak", pvk_key_ref="pvk", pin_block=bytes(8), pan=PAN, offset="1234"),
           "zpk_key_ref: key 'tak' is a TAK (M3, ISO 9797-1 MAC algorithm 3); VerifyPin needs a "
           "ZPK or TPK", "a_mac_key_holds_no_pin"),
    _usage("GenerateRandomPin", lambda: hsm_pb2.GenerateRandomPinRequest(
        pan=PAN, pin_length=4, mailer_key_ref="pvk"),
           "mailer_key_ref: key 'pvk' is a PVK (V0, PIN verification key, other algorithm); "
           "GenerateRandomPin needs a ZPK or TPK", "a_pvk_cannot_encrypt_a_pin_mailer"),
    _usage("VerifyArqc", lambda: hsm_pb2.VerifyArqcRequest(
        imk_ac_key_ref="imk.smi", pan=PAN, psn="01",
        cryptogram_version=hsm_pb2.CRYPTOGRAM_VERSION_VISA_10, atc=ATC, transaction_data=CDOL1,
        arqc=bytes(8), arc=ARC),
           "imk_ac_key_ref: key 'imk.smi' is a IMK_SMI (E2, EMV issuer master key: secure "
           "messaging for integrity); VerifyArqc needs a IMK_AC",
           "a_secure_messaging_key_cannot_verify_an_arqc"),
    _usage("ExportKey", lambda: hsm_pb2.ExportKeyRequest(key_ref="zpk", zmk_key_ref="zpk.aes"),
           "zmk_key_ref: key 'zpk.aes' is a ZPK (P0, PIN encryption key); ExportKey needs a ZMK",
           "a_zpk_cannot_wrap_keys"),
    # The key may not be used that way (its mode of use).
    _usage("GenerateCvv", lambda: hsm_pb2.GenerateCvvRequest(
        cvk_key_ref="cvk.verify", pan=PAN, expiry_yymm="2912", service_code="201"),
           "cvk_key_ref: key 'cvk.verify' has mode of use V (verify only); GenerateCvv needs "
           "mode C or G", "a_verify_only_cvk_cannot_generate"),
    _usage("VerifyMac", lambda: hsm_pb2.VerifyMacRequest(tak_key_ref="tak.generate",
                                                         data=b"0200", mac=bytes(8)),
           "tak_key_ref: key 'tak.generate' has mode of use G (generate only); VerifyMac needs "
           "mode C or V", "a_generate_only_tak_cannot_verify"),
    _usage("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref="zpk.encrypt", destination_zpk_key_ref="zpk", pin_block=bytes(8),
        pan=PAN),
           "source_zpk_key_ref: key 'zpk.encrypt' has mode of use E (encrypt or wrap only); "
           "TranslatePin needs mode B or D", "an_encrypt_only_zpk_is_no_translation_source"),
    _usage("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk.encrypt", pvk_key_ref="pvk", pin_block=bytes(8), pan=PAN,
        offset="1234"),
           "zpk_key_ref: key 'zpk.encrypt' has mode of use E (encrypt or wrap only); VerifyPin "
           "needs mode B or D", "an_encrypt_only_zpk_cannot_verify_a_pin"),
    _usage("RevealPan", lambda: hsm_pb2.RevealPanRequest(dek_key_ref="dek.encrypt",
                                                         encrypted_pan=bytes(44)),
           "dek_key_ref: key 'dek.encrypt' has mode of use E (encrypt or wrap only); RevealPan "
           "needs mode B or D", "an_encrypt_only_dek_cannot_reveal_a_pan"),
    _usage("DecryptData", lambda: hsm_pb2.DecryptDataRequest(dek_key_ref="dek.encrypt",
                                                             ciphertext=bytes(40)),
           "dek_key_ref: key 'dek.encrypt' has mode of use E (encrypt or wrap only); DecryptData "
           "needs mode B or D", "an_encrypt_only_dek_cannot_decrypt_data"),
    _usage("EncryptData", lambda: hsm_pb2.EncryptDataRequest(dek_key_ref="dek.decrypt",
                                                             plaintext=b"x"),
           "dek_key_ref: key 'dek.decrypt' has mode of use D (decrypt or unwrap only); "
           "EncryptData needs mode B or E", "a_decrypt_only_dek_cannot_encrypt_data"),
    _usage("ProtectPan", lambda: hsm_pb2.ProtectPanRequest(hmac_key_ref="hmac",
                                                           dek_key_ref="dek.decrypt", pan=PAN),
           "dek_key_ref: key 'dek.decrypt' has mode of use D (decrypt or unwrap only); "
           "ProtectPan needs mode B or E", "a_decrypt_only_dek_cannot_protect_a_pan"),
    _usage("ProtectPan", lambda: hsm_pb2.ProtectPanRequest(hmac_key_ref="hmac.verify",
                                                           dek_key_ref="dek", pan=PAN),
           "hmac_key_ref: key 'hmac.verify' has mode of use V (verify only); ProtectPan needs "
           "mode C or G", "a_verify_only_hmac_key_makes_no_tokens"),
    _usage("ImportKey", lambda: hsm_pb2.ImportKeyRequest(
        label="zpk.in", key_block="B0096P0TB00E0000" + "0" * 80, kek_key_ref="zmk.wrap"),
           "kek_key_ref: key 'zmk.wrap' has mode of use E (encrypt or wrap only); ImportKey "
           "needs mode B or D", "a_wrap_only_zmk_cannot_unwrap_an_import"),
    _usage("ExportKey", lambda: hsm_pb2.ExportKeyRequest(key_ref="zpk",
                                                         zmk_key_ref="zmk.unwrap"),
           "zmk_key_ref: key 'zmk.unwrap' has mode of use D (decrypt or unwrap only); ExportKey "
           "needs mode B or E", "an_unwrap_only_zmk_cannot_wrap_an_export"),
    _usage("GenerateKey", lambda: hsm_pb2.GenerateKeyRequest(
        label="zpk.new", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=TDES_2KEY,
        zmk_key_ref="zmk.unwrap"),
           "zmk_key_ref: key 'zmk.unwrap' has mode of use D (decrypt or unwrap only); "
           "GenerateKey needs mode B or E", "an_unwrap_only_zmk_cannot_wrap_a_new_key"),
    # The key's usage names another PIN verification method.
    _usage("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk", pvk_key_ref="pvk.ibm", pin_block=bytes(8), pan=PAN, pvv="1234"),
           "pvk_key_ref: key 'pvk.ibm' has usage V1; VerifyPin needs usage V0 or V2",
           "an_ibm3624_pvk_cannot_verify_a_pvv"),
    _usage("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk", pvk_key_ref="pvk.visa", pin_block=bytes(8), pan=PAN, offset="1234"),
           "pvk_key_ref: key 'pvk.visa' has usage V2; VerifyPin needs usage V0 or V1",
           "a_visa_pvv_pvk_cannot_verify_an_ibm3624_offset"),
    _usage("GeneratePvv", lambda: hsm_pb2.GeneratePvvRequest(pvk_key_ref="pvk.ibm", pan=PAN,
                                                             pin="1234"),
           "pvk_key_ref: key 'pvk.ibm' has usage V1; GeneratePvv needs usage V0 or V2",
           "an_ibm3624_pvk_cannot_generate_a_pvv"),
    _usage("GeneratePinOffset", lambda: hsm_pb2.GeneratePinOffsetRequest(
        pvk_key_ref="pvk.visa", pan=PAN, pin="1234"),
           "pvk_key_ref: key 'pvk.visa' has usage V2; GeneratePinOffset needs usage V0 or V1",
           "a_visa_pvv_pvk_cannot_generate_an_offset"),
    _usage("GenerateRandomPin", lambda: hsm_pb2.GenerateRandomPinRequest(
        pan=PAN, pin_length=4, mailer_key_ref="zpk", pvv_pvk_key_ref="pvk.ibm"),
           "pvv_pvk_key_ref: key 'pvk.ibm' has usage V1; GenerateRandomPin needs usage V0 or V2",
           "an_ibm3624_pvk_cannot_give_a_new_pin_its_pvv"),
    # The key may never leave the HSM.
    _usage("ExportKey", lambda: hsm_pb2.ExportKeyRequest(key_ref="bdk", zmk_key_ref="zmk"),
           "key_ref: key 'bdk' is not exportable (exportability N); it can never leave this HSM",
           "a_bdk_cannot_be_exported"),
    _usage("ExportKey", lambda: hsm_pb2.ExportKeyRequest(key_ref="pvk.ibm", zmk_key_ref="zmk"),
           "key_ref: key 'pvk.ibm' is not exportable (exportability N); it can never leave this "
           "HSM", "a_key_received_as_non_exportable_cannot_be_exported"),
]


@pytest.mark.parametrize(("method", "request_", "message"), USAGE_VIOLATIONS)
def test_a_key_used_against_its_usage_is_failed_precondition_naming_field_key_and_need(
        hsm: Any, method: str, request_: Request, message: str) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(getattr(stub, method)(request_()))
        assert (error.code(), error.details()) == (FAILED_PRECONDITION, message)

    hsm(scenario)


def test_a_non_exportable_key_is_not_generated_under_a_zmk_nor_stored(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="bdk.new", key_type=hsm_pb2.KEY_TYPE_BDK, algorithm=TDES_2KEY,
            zmk_key_ref="zmk")))
        assert (error.code(), error.details()) == (
            FAILED_PRECONDITION, "zmk_key_ref: key 'bdk.new' is not exportable (exportability "
                                 "N); it can never leave this HSM")
        bdks = await stub.ListKeys(hsm_pb2.ListKeysRequest(key_type=hsm_pb2.KEY_TYPE_BDK))
        assert [k.label for k in bdks.keys] == ["bdk", "bdk.aes"]

    hsm(scenario)


def test_a_misused_key_given_by_value_is_named_by_its_check_value(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY))
        error = await failure(stub.GenerateMac(hsm_pb2.GenerateMacRequest(
            tak_key_ref=generated.lmk_key_block, data=b"0200")))
        assert (error.code(), error.details()) == (
            FAILED_PRECONDITION, f"tak_key_ref: key with KCV {generated.key.kcv} is a CVK (C0, "
                                 "CVK card verification key); GenerateMac needs a TAK")

    hsm(scenario)


def test_a_cvk_generated_verify_only_verifies_cvvs_but_cannot_generate_them(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY, mode_of_use="V",
            exportability="E", zmk_key_ref="zmk"))
        header, clear = psec.tr31.unwrap(ZMK, generated.zmk_key_block)
        assert (header.key_usage, header.mode_of_use, generated.key.mode_of_use) == ("C0", "V", "V")
        card = {"pan": PAN, "expiry_yymm": "2912", "service_code": "201"}

        verified = await stub.VerifyCvv(hsm_pb2.VerifyCvvRequest(
            cvk_key_ref=generated.lmk_key_block, cvv=psec.cvv.generate_cvv(clear, PAN, "2912",
                                                                           "201"), **card))
        assert verified.verified is True
        error = await failure(stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref=generated.lmk_key_block, **card)))
        assert (error.code(), error.details()) == (
            FAILED_PRECONDITION, f"cvk_key_ref: key with KCV {generated.key.kcv} has mode of use "
                                 "V (verify only); GenerateCvv needs mode C or G")

    hsm(scenario)


def test_a_key_block_altered_to_widen_its_mode_of_use_is_invalid_argument_naming_the_field(
        hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY, mode_of_use="V"))
        block = generated.lmk_key_block
        assert block[5:9] == "C0TV"  # usage C0, TDES, mode V (verify only)
        widened = block[:8] + "C" + block[9:]
        request = hsm_pb2.GenerateCvvRequest(pan=PAN, expiry_yymm="2912", service_code="201")

        request.cvk_key_ref = block
        refused = await failure(stub.GenerateCvv(request))
        assert refused.code() == FAILED_PRECONDITION
        request.cvk_key_ref = widened
        error = await failure(stub.GenerateCvv(request))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == [
            ("cvk_key_ref", "key block does not verify under the LMK: keyblock: MAC does not "
                            "verify")]

    hsm(scenario)


FORMAT_MISMATCHES = [
    pytest.param("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk", pin_block=bytes(8), pan=PAN,
        destination_format=ISO_4),
        ("destination_format", "ISO format 4 needs an AES PIN key; destination_zpk_key_ref "
                               "names a TDES_2KEY key"), id="iso4_to_a_tdes_zpk"),
    pytest.param("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref="zpk", destination_zpk_key_ref="zpk.aes", pin_block=bytes(16),
        pan=PAN, source_format=ISO_4, destination_format=ISO_4),
        ("source_format", "ISO format 4 needs an AES PIN key; source_zpk_key_ref names a "
                          "TDES_2KEY key"), id="iso4_from_a_tdes_zpk"),
    pytest.param("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk.aes", pvk_key_ref="pvk", pin_block=bytes(8), pan=PAN, offset="1234"),
        ("format", "ISO format 0 needs a TDES PIN key; zpk_key_ref names a AES_128 key"),
        id="iso0_under_an_aes_zpk"),
    pytest.param("GenerateRandomPin", lambda: hsm_pb2.GenerateRandomPinRequest(
        pan=PAN, pin_length=4, mailer_key_ref="zpk", format=ISO_4),
        ("format", "ISO format 4 needs an AES PIN key; mailer_key_ref names a TDES_2KEY key"),
        id="iso4_mailer_under_a_tdes_zpk"),
    pytest.param("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_bdk_key_ref="bdk.aes", ksn=AES_KSN, destination_zpk_key_ref="zpk",
        pin_block=bytes(8), pan=PAN),
        ("source_format", "AES DUKPT PIN blocks are ISO format 4 and TDES DUKPT ones ISO 0, 1 "
                          "or 3; the BDK is AES_128"), id="iso0_from_aes_dukpt"),
]


@pytest.mark.parametrize(("method", "request_", "violation"), FORMAT_MISMATCHES)
def test_a_pin_key_of_the_wrong_cipher_for_the_format_is_invalid_argument_naming_the_format(
        hsm: Any, method: str, request_: Request, violation: tuple[str, str]) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(getattr(stub, method)(request_()))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == [violation]

    hsm(scenario)


def test_an_aes_key_generated_under_a_tdes_zmk_is_refused_and_not_stored(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="zpk.new.aes", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=AES_128,
            zmk_key_ref="zmk")))
        assert (error.code(), error.details()) == (
            FAILED_PRECONDITION, "zmk_key_ref: cannot wrap key 'zpk.new.aes' under ZMK 'zmk': "
                                 "key: an AES key needs an AES KBPK (version D), got B")
        zpks = await stub.ListKeys(hsm_pb2.ListKeysRequest(key_type=hsm_pb2.KEY_TYPE_ZPK))
        assert "zpk.new.aes" not in [k.label for k in zpks.keys]

    hsm(scenario)


def test_a_tak_for_the_retail_mac_cannot_be_three_key_tdes(hsm: Any) -> None:
    async def scenario(stub: Any) -> None:
        error = await failure(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="tak.3key", key_type=hsm_pb2.KEY_TYPE_TAK, algorithm=TDES_3KEY)))
        assert field_violations_of(error) == [
            ("algorithm", "a TAK key must be one of AES_128, AES_192, AES_256, TDES_2KEY, not "
                          "TDES_3KEY")]

    hsm(scenario)


# --- bad input --------------------------------------------------------------------------------

REQUIRED = "is required (a key id, a label or a key block under the LMK)"


def _bad(method: str, request: Request, violations: list[tuple[str, str]]) -> Any:
    return pytest.param(method, request, violations, id=method)


BAD_INPUT = [
    _bad("GenerateKey", lambda: hsm_pb2.GenerateKeyRequest(
        label="zpk.new", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=TDES_2KEY, mode_of_use="X"),
         [("mode_of_use", "a ZPK key may have mode B, D, E, not 'X'")]),
    _bad("ImportKey", lambda: hsm_pb2.ImportKeyRequest(
        label="zpk.new", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=TDES_2KEY,
        components=[ZPK.hex(), "0123456789ABCDEF0123456789ABCD"]),
         [("components[1]", "must be 32 hex digits for TDES_2KEY, got 30")]),
    pytest.param("ImportKey", lambda: hsm_pb2.ImportKeyRequest(
        label="zpk.new", kek_key_ref="zmk",
        key_block=psec.tr31.wrap(PVK, psec.tr31.Header("B", "P0", "T", "B", "00", "E"), ZPK)),
        [("key_block", "does not unwrap under the key-encrypting key: keyblock: MAC does not "
                       "verify")], id="ImportKey_block_under_another_kek"),
    _bad("ExportKey", lambda: hsm_pb2.ExportKeyRequest(key_ref="zpk"),
         [("zmk_key_ref", REQUIRED)]),
    _bad("GetKey", lambda: hsm_pb2.GetKeyRequest(key_ref="k" * 65),
         [("key_ref", "must be a key id or label of at most 64 characters, or a key block under "
                      "the LMK; got 65 characters")]),
    _bad("ListKeys", lambda: hsm_pb2.ListKeysRequest(key_type=99),
         [("key_type", "is not a known key type")]),
    _bad("DeriveDukptInitialKey", lambda: hsm_pb2.DeriveDukptInitialKeyRequest(
        bdk_key_ref="bdk", ksn=KSN[:9], device_public_key_pem=b"not a key"),
         [("ksn", "must be 10 bytes (TDES KSN), 8 (AES initial key id) or 12 (AES KSN), got 9"),
          ("device_public_key_pem", "is not a PEM public key")]),
    _bad("TranslatePin", lambda: hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref="zpk", ksn=KSN, destination_zpk_key_ref="zpk", pin_block=bytes(8),
        pan=PAN),
         [("ksn", "is only for a DUKPT source (source_bdk_key_ref)")]),
    _bad("VerifyPin", lambda: hsm_pb2.VerifyPinRequest(
        zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=bytes(8), pan=PAN, offset="123"),
         [("offset", "must be 4 to 12 digits, got 3 characters")]),
    _bad("GeneratePinOffset", lambda: hsm_pb2.GeneratePinOffsetRequest(
        pvk_key_ref="pvk", pan=PAN, pin="12a4"),
         [("pin", "must be 4 to 12 digits, got 4 characters")]),
    _bad("GeneratePvv", lambda: hsm_pb2.GeneratePvvRequest(pvk_key_ref="pvk", pan=PAN,
                                                           pin="1234", pvki=7),
         [("pvki", "must be 0 to 6, got 7")]),
    _bad("GenerateRandomPin", lambda: hsm_pb2.GenerateRandomPinRequest(
        pan=PAN, pin_length=3, mailer_key_ref="zpk"),
         [("pin_length", "must be 4 to 12, got 3")]),
    _bad("GenerateCvv", lambda: hsm_pb2.GenerateCvvRequest(
        cvk_key_ref="cvk", pan=PAN, expiry_yymm="2913", service_code="201"),
         [("expiry_yymm", "month must be 01 to 12")]),
    _bad("VerifyCvv", lambda: hsm_pb2.VerifyCvvRequest(
        cvk_key_ref="cvk", pan=PAN, expiry_yymm="2912", service_code="201", cvv="12"),
         [("cvv", "must be 3 digits, got 2 characters")]),
    _bad("ProtectPan", lambda: hsm_pb2.ProtectPanRequest(
        hmac_key_ref="hmac", dek_key_ref="dek", pan="4111111111111112"),
         [("pan", "fails the Luhn check")]),
    _bad("RevealPan", lambda: hsm_pb2.RevealPanRequest(dek_key_ref="dek",
                                                       encrypted_pan=bytes(10)),
         [("encrypted_pan", "must be nonce (12) || ciphertext (13 to 19) || tag (16) bytes, "
                            "got 10")]),
    _bad("VerifyArqc", lambda: hsm_pb2.VerifyArqcRequest(
        imk_ac_key_ref="imk", pan=PAN, psn="01",
        cryptogram_version=hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16, atc=b"\x1c",
        transaction_data=CDOL1, arqc=bytes(8), arc=ARC),
         [("atc", "must be 2 bytes, got 1")]),
    _bad("DeriveIccKeys", lambda: hsm_pb2.DeriveIccKeysRequest(
        imk_ac_key_ref="imk", imk_smi_key_ref="imk.smi", imk_smc_key_ref="imk.smi", pan=PAN,
        psn="1", zmk_key_ref="zmk"),
         [("psn", "must be 2 digits, got 1 characters")]),
    _bad("GenerateScriptMac", lambda: hsm_pb2.GenerateScriptMacRequest(
        imk_smi_key_ref="imk.smi", pan=PAN, atc=ATC, arqc=bytes(8),
        command_header=bytes.fromhex("84240000"), mac_length=6),
         [("mac_length", "must be 4 or 8 bytes, got 6")]),
    _bad("GenerateMac", lambda: hsm_pb2.GenerateMacRequest(tak_key_ref="tak", data=b"x",
                                                           length=9),
         [("length", "must be 4 to 8 bytes for a TDES_2KEY MAC key, got 9")]),
    _bad("VerifyMac", lambda: hsm_pb2.VerifyMacRequest(tak_key_ref="tak", data=b"x",
                                                       mac=bytes(3)),
         [("mac", "must be 4 to 16 bytes, got 3")]),
    _bad("EncryptData", lambda: hsm_pb2.EncryptDataRequest(dek_key_ref="dek",
                                                           plaintext=bytes(64 * 1024 + 1)),
         [("plaintext", "must be at most 65536 bytes, got 65537")]),
    _bad("DecryptData", lambda: hsm_pb2.DecryptDataRequest(dek_key_ref="dek",
                                                           ciphertext=bytes(27)),
         [("ciphertext", "must be nonce (12) || ciphertext || tag (16), got 27 bytes")]),
    _bad("GenerateKeyPair", lambda: hsm_pb2.GenerateKeyPairRequest(
        label="sig", algorithm=hsm_pb2.KEY_ALGORITHM_AES_256),
         [("algorithm", "must be KEY_ALGORITHM_RSA_2048 or KEY_ALGORITHM_ED25519, not "
                        "KEY_ALGORITHM_AES_256")]),
    _bad("GetPublicKey", lambda: hsm_pb2.GetPublicKeyRequest(),
         [("key_ref", "is required (a key id, a label or a key block under the LMK)")]),
    _bad("SignData", lambda: hsm_pb2.SignDataRequest(key_ref="zpk", data=bytes(64 * 1024 + 1)),
         [("data", "must be at most 65536 bytes, got 65537")]),
]


@pytest.mark.parametrize(("method", "request_", "violations"), BAD_INPUT)
def test_bad_input_is_invalid_argument_naming_each_bad_field(
        hsm: Any, method: str, request_: Request, violations: list[tuple[str, str]]) -> None:
    async def scenario(stub: Any) -> None:
        await load_keys(stub)
        error = await failure(getattr(stub, method)(request_()))
        assert error.code() == INVALID_ARGUMENT
        assert field_violations_of(error) == violations

    hsm(scenario)


def test_bad_input_is_covered_for_every_unary_rpc() -> None:
    unary = set(hsm_pb2.DESCRIPTOR.services_by_name["HsmService"].methods_by_name) - {"Execute"}
    assert {case.values[0] for case in BAD_INPUT} == unary


# --- the wrong LMK ----------------------------------------------------------------------------


def _store_two_keys_then_replace_the_lmk(hsm: Any) -> lmk.NewLmk:
    async def scenario(stub: Any) -> None:
        await import_key(stub, "zpk", hsm_pb2.KEY_TYPE_ZPK, TDES_2KEY, ZPK)
        await import_key(stub, "cvk", hsm_pb2.KEY_TYPE_CVK, TDES_2KEY, CVK)

    hsm(scenario)
    return lmk.create(force=True)


def test_opening_the_store_under_another_lmk_fails_saying_it_unwraps_none_of_the_keys(
        hsm: Any, tmp_path: Path) -> None:
    replaced = _store_two_keys_then_replace_the_lmk(hsm)

    with pytest.raises(lmk.LmkError) as caught:
        server.open_store()
    assert str(caught.value) == (
        f"the LMK at {tmp_path / 'hsm' / 'lmk.key'} (KCV {replaced.kcv}) unwraps none of the 2 "
        "stored keys: it is not the LMK they were stored under")


def test_hsm_serve_under_another_lmk_exits_non_zero_saying_so(hsm: Any, tmp_path: Path) -> None:
    replaced = _store_two_keys_then_replace_the_lmk(hsm)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CARDSWITCH_LMK_FILE", "CARDSWITCH_DATABASE_URL")}
    env["CARDSWITCH_VAR"] = str(tmp_path)

    served = subprocess.run(
        [sys.executable, "-m", "cardswitch.cli", "hsm", "serve", "--port", "0"], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=30)

    assert served.returncode == 1
    assert "HSM ready" not in served.stdout
    assert (f"cardswitch hsm serve: the LMK at {tmp_path / 'hsm' / 'lmk.key'} (KCV "
            f"{replaced.kcv}) unwraps none of the 2 stored keys: it is not the LMK they were "
            "stored under") in served.stderr.splitlines()


# --- nothing clear at rest --------------------------------------------------------------------


def test_the_key_store_holds_no_clear_key_component_or_pin(hsm: Any, tmp_path: Path) -> None:
    secrets_used: dict[str, bytes] = {}  # what must never be at rest, by name
    pins = ("582039174", "903715482", "7362519048")  # long enough never to occur by chance

    async def scenario(stub: Any) -> None:
        for label, (key_type, algorithm, clear, mode) in KEYS.items():
            parts = components_of(clear)
            await stub.ImportKey(hsm_pb2.ImportKeyRequest(
                label=label, key_type=key_type, algorithm=algorithm, components=parts,
                mode_of_use=mode))
            secrets_used[label] = clear
            for i, part in enumerate(parts):
                secrets_used[f"{label} component {i + 1}"] = bytes.fromhex(part)
        for label, (key_usage, clear) in TR31_PVKS.items():
            block = psec.tr31.wrap(ZMK, psec.tr31.Header("B", key_usage, "T", "C", "00", "N"),
                                   clear)
            await stub.ImportKey(hsm_pb2.ImportKeyRequest(label=label, key_block=block,
                                                          kek_key_ref="zmk"))
            secrets_used[label] = clear

        # Keys the HSM makes: learn their clear values from outside, then look for them.
        generated = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="zpk.generated", key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=AES_128,
            zmk_key_ref="zmk.aes"))
        secrets_used["zpk.generated"] = psec.tr31.unwrap(AES_ZMK, generated.zmk_key_block)[1]
        by_value = await stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_CVK, algorithm=TDES_2KEY, exportability="E",
            zmk_key_ref="zmk"))
        secrets_used["cvk by value"] = psec.tr31.unwrap(ZMK, by_value.zmk_key_block)[1]
        await stub.GenerateCvv(hsm_pb2.GenerateCvvRequest(
            cvk_key_ref=by_value.lmk_key_block, pan=PAN, expiry_yymm="2912", service_code="201"))
        loaded = await stub.DeriveDukptInitialKey(hsm_pb2.DeriveDukptInitialKeyRequest(
            bdk_key_ref="bdk", ksn=KSN, device_public_key_pem=device_pem()))
        ipek = oaep_decrypt(loaded.encrypted_initial_key)
        secrets_used["ipek"] = ipek
        secrets_used["dukpt pin key"] = dukpt.tdes_pin_key(ipek, KSN)

        # PINs through every PIN command.
        for pin in pins:
            translated = await stub.TranslatePin(hsm_pb2.TranslatePinRequest(
                source_bdk_key_ref="bdk", ksn=KSN, destination_zpk_key_ref="zpk",
                pin_block=iso0_under(secrets_used["dukpt pin key"], pin), pan=PAN))
            await stub.VerifyPin(hsm_pb2.VerifyPinRequest(
                zpk_key_ref="zpk", pvk_key_ref="pvk", pin_block=translated.pin_block, pan=PAN,
                offset=ibm3624_offset(pin)))
            await stub.GeneratePinOffset(hsm_pb2.GeneratePinOffsetRequest(
                pvk_key_ref="pvk", pan=PAN, pin=pin))
            await stub.GeneratePvv(hsm_pb2.GeneratePvvRequest(pvk_key_ref="pvk", pan=PAN,
                                                              pin=pin))
            secrets_used[f"pin {pin}"] = pin.encode()
            secrets_used[f"pin {pin} iso 0 block"] = psec.pinblock.encode_pinblock_iso_0(pin, PAN)
        mailer = await stub.GenerateRandomPin(hsm_pb2.GenerateRandomPinRequest(
            pan=PAN, pin_length=12, mailer_key_ref="zpk", offset_pvk_key_ref="pvk"))
        random_pin = pin_of_iso0(ZPK, mailer.pin_block)
        secrets_used["random pin"] = random_pin.encode()
        secrets_used["random pin iso 0 block"] = psec.pinblock.encode_pinblock_iso_0(
            random_pin, PAN)

    hsm(scenario)  # stopping the HSM closes the database

    secrets_used["lmk"] = (tmp_path / "hsm" / "lmk.key").read_bytes()
    files = sorted(tmp_path.glob("hsm.db*"))
    assert tmp_path / "hsm.db" in files
    at_rest = b"".join(path.read_bytes() for path in files)
    assert b"zpk.generated" in at_rest  # the scan does read the key store
    found = [name for name, value in secrets_used.items()
             if any(form in at_rest for form in (value, value.hex().encode(),
                                                  value.hex().upper().encode()))]
    assert found == []
