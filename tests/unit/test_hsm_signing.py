"""Signing key pairs (GenerateKeyPair, GetPublicKey, SignData) over a real gRPC server.

The tests hold the HSM to what anyone outside it can check: each signature is verified with
``cryptography`` against the public key the HSM hands out as PEM, and each check value is
recomputed from that PEM. The private key is looked for where it must not be (the key store's
files, the audit log) in every form it could take, after the test unwraps it from its key block
with the LMK to learn it.
"""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from cardswitch import db
from cardswitch.errors import field_violations_of
from cardswitch.v1 import hsm_pb2
from hsm_sim import audit, keystore, lmk
from hsm_sim.algorithms import keyblock
from hsm_sim.algorithms import signing as signing_module
from tests.hsm_support import failure

RSA_2048, ED25519 = hsm_pb2.KEY_ALGORITHM_RSA_2048, hsm_pb2.KEY_ALGORITHM_ED25519
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
ZMK = bytes.fromhex("F1E2D3C4B5A69788796A5B4C3D2E1F01")
DATA = b"wallet provisioning request #42"
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def public_key(pem: str) -> PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
    return key


def verifies(pem: str, signature: bytes, data: bytes) -> bool:
    """The oracle: ``cryptography`` checks the signature against the PEM the HSM gave out."""
    key = public_key(pem)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def spki_check_value(pem: str) -> str:
    der = public_key(pem).public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:6].upper()


async def import_key(stub: Any, label: str, key_type: hsm_pb2.KeyType, clear: bytes) -> None:
    await stub.ImportKey(hsm_pb2.ImportKeyRequest(
        label=label, key_type=key_type, algorithm=hsm_pb2.KEY_ALGORITHM_TDES_2KEY,
        components=[clear.hex()]))


def pair(label: str, algorithm: hsm_pb2.KeyAlgorithm) -> hsm_pb2.GenerateKeyPairRequest:
    return hsm_pb2.GenerateKeyPairRequest(label=label, algorithm=algorithm)


def sign(key_ref: str, data: bytes = DATA) -> hsm_pb2.SignDataRequest:
    return hsm_pb2.SignDataRequest(key_ref=key_ref, data=data)


def stored_row(var: Path, label: str) -> tuple[str, str, str, str]:
    """key_block, kcv, key_type, algorithm of the row (read after the HSM stopped)."""
    with sqlite3.connect(var / "hsm.db") as conn:
        row = conn.execute("SELECT key_block, kcv, key_type, algorithm FROM hsm_keys "
                           "WHERE label = ?", (label,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


def private_key_forms(der: bytes) -> dict[str, bytes]:
    """Every form a leaked private key could take: its PKCS#8 DER and its bare secret (the
    Ed25519 seed, the RSA private exponent), each raw, in hex and in base64 (PEM's body)."""
    key = serialization.load_der_private_key(der, None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        secret = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        secret = key.private_numbers().d.to_bytes(256, "big")
    forms = {}
    for name, value in (("PKCS#8 DER", der), ("secret", secret)):
        forms[name] = value
        forms[f"{name} (hex)"] = value.hex().encode()
        forms[f"{name} (HEX)"] = value.hex().upper().encode()
        forms[f"{name} (base64)"] = base64.b64encode(value)[:64]
    return forms


# --- GenerateKeyPair and SignData ---------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "name", "signature_length"), [
    (ED25519, "KEY_ALGORITHM_ED25519", 64),
    (RSA_2048, "KEY_ALGORITHM_RSA_2048", 256),
], ids=["ed25519", "rsa_2048"])
def test_a_new_pair_signs_what_its_public_key_verifies_and_nothing_else(
        hsm: Callable[..., None], algorithm: hsm_pb2.KeyAlgorithm, name: str,
        signature_length: int) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.wallet", algorithm))

        signed = await stub.SignData(sign("sig.wallet"))

        assert len(signed.signature) == signature_length
        assert verifies(made.public_key_pem, signed.signature, DATA)
        assert not verifies(made.public_key_pem, signed.signature, DATA + b"0")
        tampered = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
        assert not verifies(made.public_key_pem, tampered, DATA)
        assert (made.key.label, hsm_pb2.KeyAlgorithm.Name(made.key.algorithm)) == (
            "sig.wallet", name)

    hsm(scenario)


def test_an_rsa_pair_is_2048_bits_with_public_exponent_65537(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.rsa", RSA_2048))

        key = public_key(made.public_key_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        assert (key.key_size, key.public_numbers().e) == (2048, 65537)

    hsm(scenario)


def test_a_pair_is_a_signing_key_for_signing_only_never_exported_its_kcv_from_the_spki(
        hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.wallet", ED25519))

        info = made.key
        assert (info.key_type, info.usage, info.mode_of_use, info.exportability, info.stored) == (
            hsm_pb2.KEY_TYPE_SIGNING, "S0", "S", "N", True)
        assert info.kcv == spki_check_value(made.public_key_pem)
        assert made.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----\n")

    hsm(scenario)


def test_get_public_key_get_key_and_list_keys_show_the_pair(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.wallet", ED25519))
        await import_key(stub, "zpk", hsm_pb2.KEY_TYPE_ZPK, ZPK)

        by_label = await stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref="sig.wallet"))
        by_id = await stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref=made.key.key_id))
        got = await stub.GetKey(hsm_pb2.GetKeyRequest(key_ref="sig.wallet"))
        listed = await stub.ListKeys(hsm_pb2.ListKeysRequest())
        signing_only = await stub.ListKeys(hsm_pb2.ListKeysRequest(
            key_type=hsm_pb2.KEY_TYPE_SIGNING))

        assert by_label == by_id == hsm_pb2.GetPublicKeyResponse(
            key=made.key, public_key_pem=made.public_key_pem)
        assert got == made.key
        assert [k.label for k in listed.keys] == ["sig.wallet", "zpk"]
        assert list(signing_only.keys) == [made.key]

    hsm(scenario)


def test_data_of_64_kib_is_signed_and_one_byte_more_is_refused(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.wallet", ED25519))
        limit = bytes(64 * 1024)

        signed = await stub.SignData(sign("sig.wallet", limit))
        error = await failure(stub.SignData(sign("sig.wallet", limit + b"\x00")))

        assert verifies(made.public_key_pem, signed.signature, limit)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(error) == [("data", "must be at most 65536 bytes, got 65537")]

    hsm(scenario)


def test_empty_data_is_signed(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        made = await stub.GenerateKeyPair(pair("sig.wallet", ED25519))

        signed = await stub.SignData(sign("sig.wallet", b""))

        assert verifies(made.public_key_pem, signed.signature, b"")

    hsm(scenario)


# --- refusals ---------------------------------------------------------------------------------


def test_a_second_pair_with_a_taken_label_is_already_exists(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        first = await stub.GenerateKeyPair(pair("sig.wallet", ED25519))

        error = await failure(stub.GenerateKeyPair(pair("sig.wallet", RSA_2048)))

        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error.details() == "label: a key labelled 'sig.wallet' already exists"
        still = await stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref="sig.wallet"))
        assert still.public_key_pem == first.public_key_pem

    hsm(scenario)


def test_a_pair_with_a_symmetric_or_no_algorithm_or_a_bad_label_is_invalid_argument(
        hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        symmetric = await failure(stub.GenerateKeyPair(
            pair("sig.aes", hsm_pb2.KEY_ALGORITHM_AES_256)))
        unspecified = await failure(stub.GenerateKeyPair(hsm_pb2.GenerateKeyPairRequest(
            label="")))

        assert symmetric.code() == unspecified.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(symmetric) == [(
            "algorithm", "must be KEY_ALGORITHM_RSA_2048 or KEY_ALGORITHM_ED25519, not "
                         "KEY_ALGORITHM_AES_256")]
        assert field_violations_of(unspecified) == [
            ("label", "must be 1 to 64 characters: letters, digits and . _ : / -, starting "
                      "with a letter or digit"),
            ("algorithm", "is required: KEY_ALGORITHM_RSA_2048 or KEY_ALGORITHM_ED25519")]

    hsm(scenario)


def test_a_missing_key_ref_is_invalid_argument(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        signing = await failure(stub.SignData(sign("")))
        public = await failure(stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest()))

        assert signing.code() == public.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations_of(signing) == field_violations_of(public) == [
            ("key_ref", "is required (a key id, a label or a key block under the LMK)")]

    hsm(scenario)


def test_sign_data_with_a_symmetric_key_fails_as_any_key_misuse(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        await import_key(stub, "zpk", hsm_pb2.KEY_TYPE_ZPK, ZPK)

        signing = await failure(stub.SignData(sign("zpk")))
        public = await failure(stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref="zpk")))

        assert signing.code() == public.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert signing.details() == ("key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); "
                                     "SignData needs a SIGNING")
        assert public.details() == ("key_ref: key 'zpk' is a ZPK (P0, PIN encryption key); "
                                    "GetPublicKey needs a SIGNING")

    hsm(scenario)


def test_a_signing_key_does_no_symmetric_work(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        await stub.GenerateKeyPair(pair("sig.wallet", ED25519))

        error = await failure(stub.GenerateMac(hsm_pb2.GenerateMacRequest(
            tak_key_ref="sig.wallet", data=DATA)))

        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == ("tak_key_ref: key 'sig.wallet' is a SIGNING (S0, asymmetric "
                                   "key pair for digital signature); GenerateMac needs a TAK")

    hsm(scenario)


def test_an_unknown_key_is_not_found(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        signing = await failure(stub.SignData(sign("sig.nobody")))
        public = await failure(stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(
            key_ref="sig.nobody")))

        assert signing.code() == public.code() == grpc.StatusCode.NOT_FOUND
        assert signing.details() == public.details() == (
            "key_ref: no key with id or label 'sig.nobody'")

    hsm(scenario)


def test_a_signing_key_never_leaves_not_even_under_a_zmk(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        await stub.GenerateKeyPair(pair("sig.wallet", RSA_2048))
        await import_key(stub, "zmk", hsm_pb2.KEY_TYPE_ZMK, ZMK)

        error = await failure(stub.ExportKey(hsm_pb2.ExportKeyRequest(
            key_ref="sig.wallet", zmk_key_ref="zmk")))

        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details() == ("key_ref: key 'sig.wallet' is not exportable (exportability "
                                   "N); it can never leave this HSM")

    hsm(scenario)


def test_signing_keys_are_made_by_generate_key_pair_only(hsm: Callable[..., None]) -> None:
    async def scenario(stub: Any) -> None:
        await import_key(stub, "zmk", hsm_pb2.KEY_TYPE_ZMK, ZMK)
        outside = _ed25519_der()  # a key pair made outside this HSM, sent under the ZMK
        block = keyblock.wrap(ZMK, keyblock.Header("B", "S0", "E", "S", exportability="E"),
                              outside)

        generated = await failure(stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            label="sig.g", key_type=hsm_pb2.KEY_TYPE_SIGNING, algorithm=ED25519)))
        imported = await failure(stub.ImportKey(hsm_pb2.ImportKeyRequest(
            label="sig.i", key_block=block, kek_key_ref="zmk")))

        assert field_violations_of(generated) == [
            ("key_type", "a SIGNING key pair is made by GenerateKeyPair")]
        assert field_violations_of(imported) == [
            ("key_block", "a signing key pair is made inside this HSM (GenerateKeyPair), "
                          "never imported")]

    hsm(scenario)


def _ed25519_der() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


# --- at rest, in the audit log, across restarts -------------------------------------------------


@pytest.mark.parametrize(("algorithm", "header"), [(ED25519, "S0ES00N"), (RSA_2048, "S0RS00N")],
                         ids=["ed25519", "rsa_2048"])
def test_the_private_key_rests_only_in_a_key_block_under_the_lmk(
        hsm: Callable[..., None], tmp_path: Path, algorithm: hsm_pb2.KeyAlgorithm,
        header: str) -> None:
    made: list[hsm_pb2.GenerateKeyPairResponse] = []

    async def scenario(stub: Any) -> None:
        made.append(await stub.GenerateKeyPair(pair("sig.wallet", algorithm)))
        await stub.SignData(sign("sig.wallet"))

    hsm(scenario)  # stopping the HSM closes the database and flushes the audit log

    block, kcv, key_type, algorithm_name = stored_row(tmp_path, "sig.wallet")
    assert (kcv, key_type) == (made[0].key.kcv, "SIGNING")
    assert algorithm_name == hsm_pb2.KeyAlgorithm.Name(algorithm).removeprefix("KEY_ALGORITHM_")
    # TR-31 version D under the LMK: signature key pair, RSA or elliptic curve, sign only,
    # never exportable, with its type and label bound in.
    assert block.startswith("D") and block[5:12] == header
    assert "010BSIGNING" in block and "LB0Esig.wallet" in block
    _, private_der = keyblock.unwrap(lmk.load(), block)
    private = serialization.load_der_private_key(private_der, None)
    assert private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode() == made[0].public_key_pem, "the block holds the pair's private key"
    at_rest = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("hsm.db*")))
    audit_log = (tmp_path / "hsm" / "audit.log").read_bytes()
    assert b"sig.wallet" in at_rest and b"sig.wallet" in audit_log  # what is scanned is read
    leaks = [f"{form} in {where}" for form, value in private_key_forms(private_der).items()
             for where, text in (("the key store", at_rest), ("the audit log", audit_log))
             if value in text]
    assert leaks == []


def test_every_signing_command_is_audited_with_its_key_and_result(
        hsm: Callable[..., None], tmp_path: Path) -> None:
    made: list[hsm_pb2.GenerateKeyPairResponse] = []

    async def scenario(stub: Any) -> None:
        made.append(await stub.GenerateKeyPair(pair("sig.wallet", ED25519)))
        await stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref="sig.wallet"))
        await stub.SignData(sign("sig.wallet"))
        await failure(stub.SignData(sign("sig.nobody")))
        await failure(stub.GenerateKeyPair(pair("sig.wallet", ED25519)))

    hsm(scenario)

    log_path = tmp_path / "hsm" / "audit.log"
    report = audit.verify(log_path, audit.audit_key(lmk.load()))
    assert report.ok and report.records == 5
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    kcv = made[0].key.kcv
    assert [(r["command"], r["interface"], r["keys"], r["result"]) for r in records] == [
        ("GenerateKeyPair", "grpc", [], "ok"),
        ("GetPublicKey", "grpc", [{"role": "key_ref", "ref": "sig.wallet", "kcv": kcv,
                                   "usage": "S0"}], "ok"),
        ("SignData", "grpc", [{"role": "key_ref", "ref": "sig.wallet", "kcv": kcv,
                               "usage": "S0"}], "ok"),
        ("SignData", "grpc", [], "NOT_FOUND"),
        ("GenerateKeyPair", "grpc", [], "ALREADY_EXISTS"),
    ]


def test_a_pair_signs_after_the_hsm_restarts(hsm: Callable[..., None]) -> None:
    made: dict[str, hsm_pb2.GenerateKeyPairResponse] = {}

    async def before(stub: Any) -> None:
        for label, algorithm in (("sig.ed", ED25519), ("sig.rsa", RSA_2048)):
            made[label] = await stub.GenerateKeyPair(pair(label, algorithm))

    async def after(stub: Any) -> None:
        for label, first in made.items():
            signed = await stub.SignData(sign(label))
            public = await stub.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref=label))

            assert public == hsm_pb2.GetPublicKeyResponse(
                key=first.key, public_key_pem=first.public_key_pem)
            assert verifies(first.public_key_pem, signed.signature, DATA)

    hsm(before)
    hsm(after)  # a new server over the same key store and LMK


# --- the key store ----------------------------------------------------------------------------


def test_the_signing_module_examples_hold_rfc_8032_test_1() -> None:
    result = doctest.testmod(signing_module)
    assert result.attempted == 4 and result.failed == 0


def test_a_loaded_pair_parses_its_private_key_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hsm.db'}"
    db.upgrade(url, "hsm_sim")
    engine = db.make_engine(url)
    master = bytes(range(32))
    try:
        made = keystore.KeyStore(engine, master).add("sig.wallet", "SIGNING", "ED25519",
                                                     _ed25519_der())
        reopened = keystore.KeyStore(engine, master)  # as after a restart: nothing in memory

        first = reopened.load("sig.wallet")
        again = reopened.load(made.key_id)

        assert first is not None and again is first
        assert first.signing_key is again.signing_key
        assert first.kcv == made.kcv and first.algorithm == "ED25519"
    finally:
        engine.dispose()
