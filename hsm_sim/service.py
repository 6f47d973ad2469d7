"""The HSM's gRPC service: key management, PIN, CVV and PAN commands and signatures over the
key store.

The EMV issuance commands (ICC master keys for personalisation, issuer script MACs) are in
:mod:`hsm_sim.emv_commands`; their methods here only hand them the key lookup.

Every command checks its input (:mod:`hsm_sim.checks`: field violations name the field, never
echo a PIN, a PAN or a key), then fetches its keys by reference and checks each key's type,
usage and mode of use against what the command needs (:mod:`hsm_sim.usage`), then runs the
algorithm inline: a TDES or AES block costs microseconds, less than a hop to a thread pool. Only
database work and RSA (key generation, signatures) run in a thread. Every call is audited (keys
by label and KCV, and the result).

A PIN block that does not decode under the given key is bad input for the call (the switch turns
it into response code 55); a PIN or CVV that does not verify is a result (``verified=false``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.timestamp_pb2 import Timestamp

from cardswitch import errors
from cardswitch.v1 import hsm_pb2, hsm_pb2_grpc
from hsm_sim import emv_commands, keystore, usage
from hsm_sim.algorithms import cvv, dukpt, dukpt_aes, emv, ibm3624, kcv, mac, pinblock, signing
from hsm_sim.audit import AuditWriter, KeyUse
from hsm_sim.checks import (
    HEX,
    ISO_4,
    PIN_FORMATS,
    Violations,
    check_pin_key,
    check_transaction_ksn,
    read_pin,
    rsa_public_key,
    shown,
    validation_data,
    write_pin,
)
from hsm_sim.usage import (
    ARQC,
    CVK_GENERATE,
    CVK_VERIFY,
    DEK_DECRYPT,
    DEK_ENCRYPT,
    DERIVE,
    HMAC_GENERATE,
    IBM3624_GENERATE,
    IBM3624_VERIFY,
    KEK_UNWRAP,
    KEK_WRAP,
    MAC_GENERATE,
    MAC_VERIFY,
    PIN_DECRYPT,
    PUBLIC_KEY,
    PVV_GENERATE,
    PVV_VERIFY,
    SIGN,
    ZPK_ENCRYPT,
    Need,
)

log = logging.getLogger(__name__)

MAX_COMPONENTS = 9
PAN_AAD = b"cardswitch.v1.pan"  # domain separation: only PANs are revealed as PANs
_NONCE = 12
def _type_name(value: int) -> str | None:
    """``ZPK`` for ``KEY_TYPE_ZPK``; None for unspecified or unknown values."""
    if value == 0 or value not in hsm_pb2.KeyType.values():
        return None
    return str(hsm_pb2.KeyType.Name(value)).removeprefix("KEY_TYPE_")


def _algorithm_name(value: int) -> str | None:
    """``TDES_2KEY`` for ``KEY_ALGORITHM_TDES_2KEY``; None for unspecified or unknown values."""
    if value == 0 or value not in hsm_pb2.KeyAlgorithm.values():
        return None
    return str(hsm_pb2.KeyAlgorithm.Name(value)).removeprefix("KEY_ALGORITHM_")


def key_info_message(key: keystore.KeyInfo) -> hsm_pb2.KeyInfo:
    created = Timestamp()
    created.FromDatetime(key.created_at)
    return hsm_pb2.KeyInfo(
        key_id=key.key_id, label=key.label,
        key_type=f"KEY_TYPE_{key.key_type}",
        algorithm=f"KEY_ALGORITHM_{key.algorithm}",
        kcv=key.kcv, created_at=created, usage=key.usage, mode_of_use=key.mode_of_use,
        exportability=key.exportability, stored=key.stored,
    )


class HsmServicer(hsm_pb2_grpc.HsmServiceServicer):
    """``cardswitch.v1.HsmService`` over a :class:`keystore.KeyStore`."""

    def __init__(self, store: keystore.KeyStore, audit: AuditWriter | None = None) -> None:
        self._store = store
        self.audit = audit

    async def _lookup(self, field: str, key_ref: str) -> keystore.Key:
        """The key named ``key_ref`` (id, label or key block under the LMK), from memory or
        else the database."""
        try:
            key = self._store.cached(key_ref)
            if key is None:
                key = await asyncio.to_thread(self._store.load, key_ref)
        except keystore.KeyIntegrityError as exc:
            if keystore.looks_like_key_block(key_ref):
                raise errors.FieldViolations([(field, str(exc))]) from None
            raise errors.Conflict(f"{field}: {exc}") from None
        except ValueError as exc:
            raise errors.FieldViolations([(field, str(exc).removeprefix("key_block: "))]) from None
        if key is None:
            raise errors.NotFound(f"{field}: no key with id or label {shown(key_ref)}")
        uses = _KEY_USES.get()
        if uses is not None:
            uses.append(KeyUse(field.removesuffix("_key_ref"),
                               key.label or key.key_id or "by value", key.kcv, key.usage))
        return key

    async def _key(self, field: str, key_ref: str, need: Need,
                   command: str) -> keystore.Key:
        """The key named ``key_ref``, if its type, usage and mode of use fit ``need``."""
        key = await self._lookup(field, key_ref)
        try:
            usage.check(field, key.name, key.attributes, need, command)
        except usage.UsageError as exc:
            raise errors.Conflict(str(exc)) from None
        return key

    def _new_key_attributes(self, v: Violations, label: str, key_type_value: int,
                            algorithm_value: int, mode_of_use: str = "",
                            exportability: str = "", *, label_required: bool = True,
                            ) -> usage.Attributes | None:
        if label or label_required:
            problem = keystore.label_problem(label)
            if problem:
                v.add("label", problem)
        key_type = _type_name(key_type_value)
        algorithm = _algorithm_name(algorithm_value)
        if key_type is None:
            v.add("key_type", "is required: one of "
                              + ", ".join(t for t in usage.KEY_TYPES if t != "SIGNING"))
        elif key_type == "SIGNING":
            v.add("key_type", "a SIGNING key pair is made by GenerateKeyPair")
        if algorithm is None:
            v.add("algorithm", "is required: one of " + ", ".join(usage.KEY_LENGTHS))
        if key_type is None or key_type == "SIGNING" or algorithm is None:
            return None
        try:
            return usage.new_attributes(key_type, algorithm, mode_of_use, exportability)
        except ValueError as exc:
            field, _, problem = str(exc).partition(": ")
            v.add(field, problem)
            return None

    async def _store_key(self, key: keystore.Key) -> keystore.Key:
        if self._store.cached(key.label) is not None:
            raise errors.AlreadyExists(f"label: a key labelled {key.label!r} already exists")
        try:
            return await asyncio.to_thread(self._store.store, key)
        except keystore.LabelTaken as exc:
            raise errors.AlreadyExists(str(exc)) from None

    async def GenerateKey(self, request: hsm_pb2.GenerateKeyRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GenerateKeyResponse:
        v = Violations()
        attributes = self._new_key_attributes(
            v, request.label, request.key_type, request.algorithm, request.mode_of_use,
            request.exportability, label_required=False)
        if request.zmk_key_ref:
            v.key_ref("zmk_key_ref", request.zmk_key_ref)
        v.check()
        assert attributes is not None
        zmk = None
        if request.zmk_key_ref:
            zmk = await self._key("zmk_key_ref", request.zmk_key_ref, KEK_WRAP, "GenerateKey")
        key = self._store.new_key(attributes, keystore.random_key(attributes.algorithm),
                                  request.label)
        zmk_block = ""
        if zmk is not None:  # before storing: a key that cannot go under the ZMK is not made
            _exportable("zmk_key_ref", key)
            zmk_block = _export(key, zmk)
        if request.label:
            key = await self._store_key(key)
        return hsm_pb2.GenerateKeyResponse(
            key=key_info_message(key), lmk_key_block=self._store.lmk_block(key),
            zmk_key_block=zmk_block)

    async def ImportKey(self, request: hsm_pb2.ImportKeyRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.ImportKeyResponse:
        if request.key_block or request.kek_key_ref:
            return await self._import_key_block(request)
        v = Violations()
        attributes = self._new_key_attributes(
            v, request.label, request.key_type, request.algorithm, request.mode_of_use,
            request.exportability)
        algorithm = attributes.algorithm if attributes else ""
        size = usage.KEY_LENGTHS.get(algorithm, 0)
        if not 1 <= len(request.components) <= MAX_COMPONENTS:
            v.add("components", f"must be 1 to {MAX_COMPONENTS} hex key components, "
                                f"got {len(request.components)}")
        for i, component in enumerate(request.components):
            if not HEX.fullmatch(component) or len(component) % 2:
                v.add(f"components[{i}]", "must be an even number of hex digits")
            elif size and len(component) != 2 * size:
                v.add(f"components[{i}]", f"must be {2 * size} hex digits for {algorithm}, "
                                          f"got {len(component)}")
        expected = request.expected_kcv.upper()
        if expected and not (len(expected) == 6 and HEX.fullmatch(expected)):
            v.add("expected_kcv", f"must be 6 hex digits, got {len(expected)} characters")
        v.check()
        assert attributes is not None
        clear = keystore.combine_components([bytes.fromhex(c) for c in request.components])
        if algorithm.startswith("TDES") and any(
                clear[i:i + 8] == clear[i + 8:i + 16] for i in range(0, len(clear) - 8, 8)):
            v.add("components", "combine to a TDES key with two equal adjacent parts "
                                "(single-DES strength)")
        actual = keystore.check_value(clear, algorithm)
        if expected and not hmac.compare_digest(expected, actual):
            v.add("expected_kcv", f"does not match the check value of the combined key ({actual})")
        v.check()
        key = await self._store_key(self._store.new_key(attributes, clear, request.label))
        return hsm_pb2.ImportKeyResponse(key=key_info_message(key))

    async def _import_key_block(self, request: hsm_pb2.ImportKeyRequest,
                                ) -> hsm_pb2.ImportKeyResponse:
        v = Violations()
        problem = keystore.label_problem(request.label)
        if problem:
            v.add("label", problem)
        v.key_ref("kek_key_ref", request.kek_key_ref)
        if not request.key_block:
            v.add("key_block", "is required with kek_key_ref (a TR-31 key block under it)")
        if request.components:
            v.add("components", "give either components or key_block with kek_key_ref")
        key_type = _type_name(request.key_type) if request.key_type else ""
        if key_type is None:
            v.add("key_type", "is not a known key type")
        v.check()
        kek = await self._key("kek_key_ref", request.kek_key_ref, KEK_UNWRAP, "ImportKey")
        if self._store.cached(request.label) is not None:
            raise errors.AlreadyExists(f"label: a key labelled {request.label!r} already exists")
        try:
            key = await asyncio.to_thread(self._store.import_block, kek, request.key_block,
                                          request.label, key_type or "")
        except keystore.LabelTaken as exc:
            raise errors.AlreadyExists(str(exc)) from None
        except ValueError as exc:
            raise errors.FieldViolations([("key_block", str(exc).removeprefix("key_block: "))]
                                         ) from None
        return hsm_pb2.ImportKeyResponse(key=key_info_message(key))

    async def ExportKey(self, request: hsm_pb2.ExportKeyRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.ExportKeyResponse:
        v = Violations()
        v.key_ref("key_ref", request.key_ref)
        v.key_ref("zmk_key_ref", request.zmk_key_ref)
        v.check()
        key = await self._lookup("key_ref", request.key_ref)
        zmk = await self._key("zmk_key_ref", request.zmk_key_ref, KEK_WRAP, "ExportKey")
        _exportable("key_ref", key)
        block = _export(key, zmk)
        log.info("exported key %s (KCV %s) under ZMK %s (KCV %s)", key.name, key.kcv, zmk.name,
                 zmk.kcv)
        return hsm_pb2.ExportKeyResponse(key_block=block, kcv=key.kcv)

    async def GetKey(self, request: hsm_pb2.GetKeyRequest,
                     context: grpc.aio.ServicerContext) -> hsm_pb2.KeyInfo:
        v = Violations()
        v.key_ref("key_ref", request.key_ref)
        v.check()
        return key_info_message(await self._lookup("key_ref", request.key_ref))

    async def ListKeys(self, request: hsm_pb2.ListKeysRequest,
                       context: grpc.aio.ServicerContext) -> hsm_pb2.ListKeysResponse:
        key_type = None
        if request.key_type:
            key_type = _type_name(request.key_type)
            if key_type is None:
                raise errors.FieldViolations([("key_type", "is not a known key type")])
        keys = await asyncio.to_thread(self._store.list_keys, key_type)
        return hsm_pb2.ListKeysResponse(keys=[key_info_message(k) for k in keys])

    async def DeriveDukptInitialKey(
        self, request: hsm_pb2.DeriveDukptInitialKeyRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.DeriveDukptInitialKeyResponse:
        v = Violations()
        v.key_ref("bdk_key_ref", request.bdk_key_ref)
        if len(request.ksn) not in (dukpt.KSN_LENGTH, 8, dukpt_aes.KSN_LENGTH):
            v.add("ksn", f"must be 10 bytes (TDES KSN), 8 (AES initial key id) or 12 (AES KSN), "
                         f"got {len(request.ksn)}")
        device_key = rsa_public_key(v, request.device_public_key_pem)
        v.check()
        assert device_key is not None
        bdk = await self._key("bdk_key_ref", request.bdk_key_ref, DERIVE, "DeriveDukptInitialKey")
        if bdk.algorithm in usage.AES:
            if len(request.ksn) == dukpt.KSN_LENGTH:
                raise errors.FieldViolations([("ksn", "an AES BDK needs the 8-byte initial key "
                                                      "id or a 12-byte AES KSN")])
            initial_key = dukpt.aes_initial_key(bdk.clear, request.ksn[:8])
            check = kcv.kcv(initial_key, algorithm="aes").hex().upper()
        else:
            if len(request.ksn) != dukpt.KSN_LENGTH:
                raise errors.FieldViolations([("ksn", "a TDES BDK needs a 10-byte KSN")])
            initial_key = dukpt.tdes_ipek(bdk.clear, request.ksn)
            check = kcv.kcv(initial_key).hex().upper()
        encrypted = device_key.encrypt(initial_key, padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        log.info("derived DUKPT initial key (KCV %s) for %s under BDK %s", check,
                 request.ksn.hex().upper(), bdk.name)
        return hsm_pb2.DeriveDukptInitialKeyResponse(encrypted_initial_key=encrypted, kcv=check)

    async def TranslatePin(self, request: hsm_pb2.TranslatePinRequest,
                           context: grpc.aio.ServicerContext) -> hsm_pb2.TranslatePinResponse:
        v = Violations()
        from_dukpt = bool(request.source_bdk_key_ref)
        if from_dukpt and request.source_zpk_key_ref:
            v.add("source_zpk_key_ref", "give either source_bdk_key_ref with ksn, "
                                        "or source_zpk_key_ref, not both")
        elif from_dukpt:
            v.key_ref("source_bdk_key_ref", request.source_bdk_key_ref)
            check_transaction_ksn(v, request.ksn)
        elif request.source_zpk_key_ref:
            v.key_ref("source_zpk_key_ref", request.source_zpk_key_ref)
            if request.ksn:
                v.add("ksn", "is only for a DUKPT source (source_bdk_key_ref)")
        else:
            v.add("source_bdk_key_ref", "a source key is required: source_bdk_key_ref with ksn, "
                                        "or source_zpk_key_ref")
        v.key_ref("destination_zpk_key_ref", request.destination_zpk_key_ref)
        if len(request.pin_block) not in (8, 16):
            v.add("pin_block", f"must be 8 bytes (ISO 0, 1, 3) or 16 (ISO 4), "
                               f"got {len(request.pin_block)}")
        v.pan("pan", request.pan)
        source_format = v.pin_format("source_format", request.source_format)
        destination_format = v.pin_format("destination_format", request.destination_format)
        if source_format in PIN_FORMATS and destination_format in PIN_FORMATS:
            try:
                pinblock.check_translation(PIN_FORMATS[source_format],
                                           PIN_FORMATS[destination_format], pan_supplied=True)
            except ValueError as exc:
                v.add("destination_format", str(exc).removeprefix("translation: "))
        v.check()
        destination = await self._key("destination_zpk_key_ref", request.destination_zpk_key_ref,
                                      ZPK_ENCRYPT, "TranslatePin")
        check_pin_key("destination_zpk_key_ref", destination, destination_format,
                       "destination_format")
        if from_dukpt:
            bdk = await self._key("source_bdk_key_ref", request.source_bdk_key_ref, DERIVE,
                                  "TranslatePin")
            source_key = _dukpt_pin_key(bdk, request.ksn)
            if (bdk.algorithm in usage.AES) != (source_format == ISO_4):
                raise errors.FieldViolations([(
                    "source_format", "AES DUKPT PIN blocks are ISO format 4 and TDES DUKPT ones "
                                     f"ISO 0, 1 or 3; the BDK is {bdk.algorithm}")])
        else:
            source = await self._key("source_zpk_key_ref", request.source_zpk_key_ref,
                                     PIN_DECRYPT, "TranslatePin")
            check_pin_key("source_zpk_key_ref", source, source_format, "source_format")
            source_key = source.clear
        pin = read_pin(source_format, source_key, request.pin_block, request.pan)
        block = write_pin(destination_format, destination.clear, pin, request.pan)
        return hsm_pb2.TranslatePinResponse(pin_block=block, format=destination_format)

    async def VerifyPin(self, request: hsm_pb2.VerifyPinRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyPinResponse:
        v = Violations()
        v.key_ref("zpk_key_ref", request.zpk_key_ref)
        v.key_ref("pvk_key_ref", request.pvk_key_ref)
        if len(request.pin_block) not in (8, 16):
            v.add("pin_block", f"must be 8 bytes (ISO 0, 1, 3) or 16 (ISO 4), "
                               f"got {len(request.pin_block)}")
        pin_format = v.pin_format("format", request.format)
        v.pan("pan", request.pan)
        if request.pvv:
            if request.offset:
                v.add("offset", "give either offset (IBM 3624) or pvv (Visa PVV), not both")
            v.digits("pvv", request.pvv, 4, 4)
            if request.pvki > 6:
                v.add("pvki", f"must be 0 to 6, got {request.pvki}")
        else:
            v.digits("offset", request.offset, 4, 12)
            v.ibm3624_inputs(request)
        v.check()
        zpk = await self._key("zpk_key_ref", request.zpk_key_ref, PIN_DECRYPT, "VerifyPin")
        check_pin_key("zpk_key_ref", zpk, pin_format, "format")
        pvk = await self._key("pvk_key_ref", request.pvk_key_ref,
                              PVV_VERIFY if request.pvv else IBM3624_VERIFY, "VerifyPin")
        pin = read_pin(pin_format, zpk.clear, request.pin_block, request.pan)
        if request.pvv:
            verified = ibm3624.verify_visa_pvv(pvk.clear, request.pan, request.pvki, pin,
                                               request.pvv)
        else:
            verified = ibm3624.verify_offset(
                pvk.clear, validation_data(request), pin, request.offset,
                request.decimalization_table or ibm3624.DEFAULT_DECIMALIZATION_TABLE)
        return hsm_pb2.VerifyPinResponse(verified=verified)

    async def GeneratePinOffset(
        self, request: hsm_pb2.GeneratePinOffsetRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.GeneratePinOffsetResponse:
        v = Violations()
        v.key_ref("pvk_key_ref", request.pvk_key_ref)
        v.pan("pan", request.pan)
        v.digits("pin", request.pin, 4, 12)
        v.ibm3624_inputs(request)
        v.check()
        pvk = await self._key("pvk_key_ref", request.pvk_key_ref, IBM3624_GENERATE,
                              "GeneratePinOffset")
        offset = ibm3624.pin_offset(
            pvk.clear, validation_data(request), request.pin,
            request.decimalization_table or ibm3624.DEFAULT_DECIMALIZATION_TABLE)
        return hsm_pb2.GeneratePinOffsetResponse(offset=offset)

    async def GeneratePvv(self, request: hsm_pb2.GeneratePvvRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GeneratePvvResponse:
        v = Violations()
        v.key_ref("pvk_key_ref", request.pvk_key_ref)
        v.pan("pan", request.pan)
        v.digits("pin", request.pin, 4, 12)
        if request.pvki > 6:
            v.add("pvki", f"must be 0 to 6, got {request.pvki}")
        v.check()
        pvk = await self._key("pvk_key_ref", request.pvk_key_ref, PVV_GENERATE, "GeneratePvv")
        return hsm_pb2.GeneratePvvResponse(
            pvv=ibm3624.visa_pvv(pvk.clear, request.pan, request.pvki, request.pin))

    async def GenerateRandomPin(
        self, request: hsm_pb2.GenerateRandomPinRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.GenerateRandomPinResponse:
        v = Violations()
        v.pan("pan", request.pan)
        if not 4 <= request.pin_length <= 12:
            v.add("pin_length", f"must be 4 to 12, got {request.pin_length}")
        v.key_ref("mailer_key_ref", request.mailer_key_ref)
        pin_format = v.pin_format("format", request.format)
        if request.pvki > 6:
            v.add("pvki", f"must be 0 to 6, got {request.pvki}")
        v.check()
        mailer = await self._key("mailer_key_ref", request.mailer_key_ref, ZPK_ENCRYPT,
                                 "GenerateRandomPin")
        check_pin_key("mailer_key_ref", mailer, pin_format, "format")
        offset_pvk = pvv_pvk = None
        if request.offset_pvk_key_ref:
            offset_pvk = await self._key("offset_pvk_key_ref", request.offset_pvk_key_ref,
                                         IBM3624_GENERATE, "GenerateRandomPin")
        if request.pvv_pvk_key_ref:
            pvv_pvk = await self._key("pvv_pvk_key_ref", request.pvv_pvk_key_ref, PVV_GENERATE,
                                      "GenerateRandomPin")
        pin = "".join(secrets.choice("0123456789") for _ in range(request.pin_length))
        response = hsm_pb2.GenerateRandomPinResponse(
            pin_block=write_pin(pin_format, mailer.clear, pin, request.pan), format=pin_format)
        if offset_pvk is not None:
            response.offset = ibm3624.pin_offset(
                offset_pvk.clear, ibm3624.validation_data_from_pan(request.pan), pin,
                ibm3624.DEFAULT_DECIMALIZATION_TABLE)
        if pvv_pvk is not None:
            response.pvv = ibm3624.visa_pvv(pvv_pvk.clear, request.pan, request.pvki, pin)
        return response

    async def GenerateCvv(self, request: hsm_pb2.GenerateCvvRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GenerateCvvResponse:
        v = Violations()
        v.card(request)
        v.check()
        cvk = await self._key("cvk_key_ref", request.cvk_key_ref, CVK_GENERATE, "GenerateCvv")
        value = cvv.cvv(cvk.clear, request.pan, request.expiry_yymm, request.service_code)
        return hsm_pb2.GenerateCvvResponse(cvv=value)

    async def VerifyCvv(self, request: hsm_pb2.VerifyCvvRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyCvvResponse:
        v = Violations()
        v.card(request)
        v.digits("cvv", request.cvv, 3, 3)
        v.check()
        cvk = await self._key("cvk_key_ref", request.cvk_key_ref, CVK_VERIFY, "VerifyCvv")
        verified = cvv.verify_cvv(cvk.clear, request.pan, request.expiry_yymm,
                                  request.service_code, request.cvv)
        return hsm_pb2.VerifyCvvResponse(verified=verified)

    async def ProtectPan(self, request: hsm_pb2.ProtectPanRequest,
                         context: grpc.aio.ServicerContext) -> hsm_pb2.ProtectPanResponse:
        v = Violations()
        v.key_ref("hmac_key_ref", request.hmac_key_ref)
        v.key_ref("dek_key_ref", request.dek_key_ref)
        v.pan("pan", request.pan)
        v.check()
        hmac_key = await self._key("hmac_key_ref", request.hmac_key_ref, HMAC_GENERATE,
                                   "ProtectPan")
        dek = await self._key("dek_key_ref", request.dek_key_ref, DEK_ENCRYPT, "ProtectPan")
        pan = request.pan.encode()
        nonce = secrets.token_bytes(_NONCE)
        return hsm_pb2.ProtectPanResponse(
            pan_token=hmac.new(hmac_key.clear, pan, hashlib.sha256).hexdigest(),
            last_four=request.pan[-4:],
            encrypted_pan=nonce + AESGCM(dek.clear).encrypt(nonce, pan, PAN_AAD),
            bin=request.pan[:6],
        )

    async def RevealPan(self, request: hsm_pb2.RevealPanRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.RevealPanResponse:
        v = Violations()
        v.key_ref("dek_key_ref", request.dek_key_ref)
        if not _NONCE + 16 + 13 <= len(request.encrypted_pan) <= _NONCE + 16 + 19:
            v.add("encrypted_pan", "must be nonce (12) || ciphertext (13 to 19) || tag (16) "
                                   f"bytes, got {len(request.encrypted_pan)}")
        v.check()
        dek = await self._key("dek_key_ref", request.dek_key_ref, DEK_DECRYPT, "RevealPan")
        blob = request.encrypted_pan
        try:
            pan = AESGCM(dek.clear).decrypt(blob[:_NONCE], blob[_NONCE:], PAN_AAD).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise errors.FieldViolations([(
                "encrypted_pan", "does not decrypt under the given key: altered, truncated or "
                                 "protected under another data key")]) from None
        return hsm_pb2.RevealPanResponse(pan=pan)

    async def VerifyArqc(self, request: hsm_pb2.VerifyArqcRequest,
                         context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyArqcResponse:
        v = Violations()
        v.key_ref("imk_ac_key_ref", request.imk_ac_key_ref)
        v.pan("pan", request.pan)
        v.digits("psn", request.psn or "00", 2, 2)
        cvn = CRYPTOGRAM_VERSIONS.get(request.cryptogram_version)
        if cvn is None:
            v.add("cryptogram_version", "is required: VISA_10, VISA_18, MASTERCARD_16 or _17")
        v.length("atc", request.atc, 2)
        v.length("arqc", request.arqc, 8)
        if not request.transaction_data:
            v.add("transaction_data", "is required (the CDOL1 data the card MACed)")
        if cvn is not None and cvn.arpc_method == 1:
            v.length("arc", request.arc, 2)
        elif cvn is not None:
            v.length("csu", request.csu, 4)
            if len(request.proprietary_auth_data) > 8:
                v.add("proprietary_auth_data", "must be at most 8 bytes, got "
                                               f"{len(request.proprietary_auth_data)}")
        v.check()
        assert cvn is not None
        imk = await self._key("imk_ac_key_ref", request.imk_ac_key_ref, ARQC, "VerifyArqc")
        icc_key = emv.icc_master_key_a(imk.clear, request.pan, request.psn or "00")
        session_key = icc_key if not cvn.session_key else emv.common_session_key(
            icc_key, request.atc)
        if not emv.verify_ac(session_key, request.transaction_data, request.arqc,
                             padding=cvn.padding):
            return hsm_pb2.VerifyArqcResponse(verified=False)
        if cvn.arpc_method == 1:
            arpc = emv.arpc1(session_key, request.arqc, request.arc)
        else:
            arpc = emv.arpc2(session_key, request.arqc, request.csu,
                             request.proprietary_auth_data)
        return hsm_pb2.VerifyArqcResponse(verified=True, arpc=arpc)

    async def DeriveIccKeys(self, request: hsm_pb2.DeriveIccKeysRequest,
                            context: grpc.aio.ServicerContext) -> hsm_pb2.DeriveIccKeysResponse:
        return await emv_commands.derive_icc_keys(request, self._key, self._store)

    async def GenerateScriptMac(
        self, request: hsm_pb2.GenerateScriptMacRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.GenerateScriptMacResponse:
        return await emv_commands.generate_script_mac(request, self._key)

    async def GenerateMac(self, request: hsm_pb2.GenerateMacRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GenerateMacResponse:
        v = Violations()
        v.key_ref("tak_key_ref", request.tak_key_ref)
        v.check()
        tak = await self._key("tak_key_ref", request.tak_key_ref, MAC_GENERATE, "GenerateMac")
        aes = tak.algorithm in usage.AES
        length = request.length or 8
        if not 4 <= length <= (16 if aes else 8):
            raise errors.FieldViolations([(
                "length", f"must be 4 to {16 if aes else 8} bytes for a {tak.algorithm} MAC key, "
                          f"got {length}")])
        value = (mac.aes_cmac(tak.clear, request.data, length) if aes
                 else mac.retail_mac(tak.clear, request.data, padding=2, length=length))
        return hsm_pb2.GenerateMacResponse(mac=value)

    async def VerifyMac(self, request: hsm_pb2.VerifyMacRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyMacResponse:
        v = Violations()
        v.key_ref("tak_key_ref", request.tak_key_ref)
        if not 4 <= len(request.mac) <= 16:
            v.add("mac", f"must be 4 to 16 bytes, got {len(request.mac)}")
        v.check()
        tak = await self._key("tak_key_ref", request.tak_key_ref, MAC_VERIFY, "VerifyMac")
        if tak.algorithm in usage.AES:
            verified = mac.verify_aes_cmac(tak.clear, request.data, request.mac)
        else:
            verified = len(request.mac) <= 8 and mac.verify_retail_mac(
                tak.clear, request.data, request.mac, padding=2)
        return hsm_pb2.VerifyMacResponse(verified=verified)

    async def EncryptData(self, request: hsm_pb2.EncryptDataRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.EncryptDataResponse:
        v = Violations()
        v.key_ref("dek_key_ref", request.dek_key_ref)
        if len(request.plaintext) > MAX_DATA:
            v.add("plaintext", f"must be at most {MAX_DATA} bytes, got {len(request.plaintext)}")
        v.check()
        dek = await self._key("dek_key_ref", request.dek_key_ref, DEK_ENCRYPT, "EncryptData")
        nonce = secrets.token_bytes(_NONCE)
        sealed = AESGCM(dek.clear).encrypt(nonce, request.plaintext,
                                           DATA_AAD + request.associated_data)
        return hsm_pb2.EncryptDataResponse(ciphertext=nonce + sealed)

    async def DecryptData(self, request: hsm_pb2.DecryptDataRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.DecryptDataResponse:
        v = Violations()
        v.key_ref("dek_key_ref", request.dek_key_ref)
        if len(request.ciphertext) < _NONCE + 16:
            v.add("ciphertext", f"must be nonce (12) || ciphertext || tag (16), got "
                                f"{len(request.ciphertext)} bytes")
        v.check()
        dek = await self._key("dek_key_ref", request.dek_key_ref, DEK_DECRYPT, "DecryptData")
        blob = request.ciphertext
        try:
            plain = AESGCM(dek.clear).decrypt(blob[:_NONCE], blob[_NONCE:],
                                              DATA_AAD + request.associated_data)
        except InvalidTag:
            raise errors.FieldViolations([(
                "ciphertext", "does not decrypt under the given key with this associated data: "
                              "altered, truncated or encrypted under another key")]) from None
        return hsm_pb2.DecryptDataResponse(plaintext=plain)

    async def GenerateKeyPair(
        self, request: hsm_pb2.GenerateKeyPairRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.GenerateKeyPairResponse:
        v = Violations()
        problem = keystore.label_problem(request.label)
        if problem:
            v.add("label", problem)
        algorithm = _algorithm_name(request.algorithm)
        if algorithm is None:
            v.add("algorithm", "is required: KEY_ALGORITHM_RSA_2048 or KEY_ALGORITHM_ED25519")
        elif algorithm not in usage.ASYMMETRIC:
            v.add("algorithm", "must be KEY_ALGORITHM_RSA_2048 or KEY_ALGORITHM_ED25519, not "
                               f"KEY_ALGORITHM_{algorithm}")
        v.check()
        assert algorithm is not None
        if self._store.cached(request.label) is not None:  # before spending a key generation
            raise errors.AlreadyExists(f"label: a key labelled {request.label!r} already exists")
        # Making an RSA-2048 key takes 20 to 200 ms of CPU: not on the event loop.
        private_der = await asyncio.to_thread(signing.generate, algorithm)
        key = self._store.new_key(usage.new_attributes("SIGNING", algorithm), private_der,
                                  request.label)
        key = await self._store_key(key)
        return hsm_pb2.GenerateKeyPairResponse(
            key=key_info_message(key), public_key_pem=signing.public_key_pem(key.signing_key))

    async def GetPublicKey(self, request: hsm_pb2.GetPublicKeyRequest,
                           context: grpc.aio.ServicerContext) -> hsm_pb2.GetPublicKeyResponse:
        v = Violations()
        v.key_ref("key_ref", request.key_ref)
        v.check()
        key = await self._key("key_ref", request.key_ref, PUBLIC_KEY, "GetPublicKey")
        return hsm_pb2.GetPublicKeyResponse(
            key=key_info_message(key), public_key_pem=signing.public_key_pem(key.signing_key))

    async def SignData(self, request: hsm_pb2.SignDataRequest,
                       context: grpc.aio.ServicerContext) -> hsm_pb2.SignDataResponse:
        v = Violations()
        v.key_ref("key_ref", request.key_ref)
        if len(request.data) > MAX_DATA:
            v.add("data", f"must be at most {MAX_DATA} bytes, got {len(request.data)}")
        v.check()
        key = await self._key("key_ref", request.key_ref, SIGN, "SignData")
        # An RSA-2048 signature takes about 1 ms of CPU with the GIL released: in a thread it
        # does not stall the event loop. An Ed25519 one (50 us) costs less than the hop.
        if key.algorithm == "RSA_2048":
            signature = await asyncio.to_thread(signing.sign, key.signing_key, request.data)
        else:
            signature = signing.sign(key.signing_key, request.data)
        return hsm_pb2.SignDataResponse(signature=signature)

    async def Execute(self, requests: AsyncIterator[hsm_pb2.HsmCommand],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[hsm_pb2.HsmResult]:
        """Runs each command of the stream as its unary form would, tagging results by id."""
        async for command in requests:
            yield await self.execute_one(command, context)

    async def execute_one(self, command: hsm_pb2.HsmCommand,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.HsmResult:
        which = command.WhichOneof("command")
        if which is None:
            return hsm_pb2.HsmResult(id=command.id, error=hsm_pb2.CommandError(
                code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                message="command: no command given"))
        method = getattr(self, _EXECUTE_METHODS[which])
        try:
            response = await method(getattr(command, which), context)
        except errors.FieldViolations as exc:
            return _error_result(command.id, grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                 exc.violations)
        except errors.Conflict as exc:
            return _error_result(command.id, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except errors.NotFound as exc:
            return _error_result(command.id, grpc.StatusCode.NOT_FOUND, str(exc))
        except errors.AlreadyExists as exc:
            return _error_result(command.id, grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except Exception as exc:  # one command's failure is its result, not the stream's end
            log.exception("Execute: command %d (%s) failed", command.id, which)
            return _error_result(command.id, grpc.StatusCode.INTERNAL,
                                 f"{which}: internal error ({type(exc).__name__})")
        result = hsm_pb2.HsmResult(id=command.id)
        getattr(result, which).CopyFrom(response)
        return result


#: Set by whoever calls a command: the audit log's "interface" (grpc, or host for payShield).
interface: ContextVar[str] = ContextVar("interface", default="grpc")
_KEY_USES: ContextVar[list[KeyUse] | None] = ContextVar("key_uses", default=None)
_RESULTS = ((errors.FieldViolations, "INVALID_ARGUMENT"), (errors.Conflict, "FAILED_PRECONDITION"),
            (errors.NotFound, "NOT_FOUND"), (errors.AlreadyExists, "ALREADY_EXISTS"))


def _audited(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wraps an RPC so each call is audited: its keys (by label and KCV) and its result."""
    @wraps(method)
    async def run(self: HsmServicer, request: Any, context: Any) -> Any:
        uses: list[KeyUse] = []
        token = _KEY_USES.set(uses)
        result = "INTERNAL"
        try:
            response = await method(self, request, context)
            result = "NOT_VERIFIED" if getattr(response, "verified", True) is False else "ok"
            return response
        except Exception as exc:
            result = next((code for kind, code in _RESULTS if isinstance(exc, kind)), result)
            raise
        finally:
            _KEY_USES.reset(token)
            if self.audit is not None:
                self.audit.submit(name, interface=interface.get(), keys=uses, result=result)
    return run


for _name in hsm_pb2.DESCRIPTOR.services_by_name["HsmService"].methods_by_name:
    if _name != "Execute":
        setattr(HsmServicer, _name, _audited(_name, getattr(HsmServicer, _name)))


MAX_DATA = 64 * 1024
DATA_AAD = b"cardswitch.v1.data|"  # domain separation from PAN ciphertexts


@dataclass(frozen=True)
class _Cvn:
    session_key: bool  # False: MAC under the ICC master key itself (Visa CVN 10)
    padding: int  # ISO 9797-1 padding method of the cryptogram MAC
    arpc_method: int


CRYPTOGRAM_VERSIONS = {
    hsm_pb2.CRYPTOGRAM_VERSION_VISA_10: _Cvn(False, 1, 1),
    hsm_pb2.CRYPTOGRAM_VERSION_VISA_18: _Cvn(True, 2, 2),
    hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16: _Cvn(True, 2, 1),
    hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_17: _Cvn(True, 2, 1),
}

# HsmCommand oneof field -> servicer method.
_EXECUTE_METHODS = {
    field.name: "".join(part.capitalize() for part in field.name.split("_"))
    for field in hsm_pb2.HsmCommand.DESCRIPTOR.oneofs_by_name["command"].fields
}
_EXECUTE_METHODS["derive_dukpt_initial_key"] = "DeriveDukptInitialKey"


def _error_result(command_id: int, code: grpc.StatusCode, message: str,
                  violations: list[tuple[str, str]] | None = None) -> hsm_pb2.HsmResult:
    return hsm_pb2.HsmResult(id=command_id, error=hsm_pb2.CommandError(
        code=code.value[0], message=message, field_violations=[
            hsm_pb2.FieldViolation(field=f, description=d) for f, d in violations or []]))


def _export(key: keystore.Key, zmk: keystore.Key) -> str:
    try:
        return keystore.KeyStore.export_block(key, zmk)
    except ValueError as exc:
        raise errors.Conflict(f"zmk_key_ref: cannot wrap key {key.name} under ZMK {zmk.name}: "
                              f"{exc}") from None


def _exportable(field: str, key: keystore.Key) -> None:
    try:
        usage.check_exportable(field, key.name, key.attributes)
    except usage.UsageError as exc:
        raise errors.Conflict(str(exc)) from None


def _dukpt_pin_key(bdk: keystore.Key, ksn: bytes) -> bytes:
    """The transaction's PIN key: TDES (10-byte KSN) or AES (12-byte KSN) DUKPT."""
    if bdk.algorithm in usage.AES:
        if len(ksn) != dukpt_aes.KSN_LENGTH:
            raise errors.FieldViolations([("ksn", f"an AES BDK needs a 12-byte KSN, got "
                                                  f"{len(ksn)}")])
        return dukpt.aes_pin_key(_aes_initial_key(bdk.clear, ksn[:8]), ksn)
    if len(ksn) != dukpt.KSN_LENGTH:
        raise errors.FieldViolations([("ksn", f"a TDES BDK needs a 10-byte KSN, got {len(ksn)}")])
    device = (int.from_bytes(ksn, "big") & ~dukpt.COUNTER_MASK).to_bytes(dukpt.KSN_LENGTH, "big")
    return dukpt.tdes_pin_key(_tdes_ipek(bdk.clear, device), ksn)


@lru_cache(maxsize=4096)
def _tdes_ipek(bdk: bytes, device_ksn: bytes) -> bytes:
    """The IPEK of a device (its KSN with the counter cleared): derived once per device."""
    return dukpt.tdes_ipek(bdk, device_ksn)


@lru_cache(maxsize=4096)
def _aes_initial_key(bdk: bytes, initial_key_id: bytes) -> bytes:
    return dukpt.aes_initial_key(bdk, initial_key_id)

