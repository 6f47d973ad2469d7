"""The HSM's gRPC service: key management and PIN, CVV and PAN commands over the key store.

Every command checks its input (field violations name the field, never echo a PIN, a PAN or a
key), then fetches its keys by reference and checks each key's type is the one the command
needs, then runs the algorithm inline: a TDES or AES block costs microseconds, less than a hop
to a thread pool. Only database work runs in a thread.

A PIN block that does not decode under the given key is bad input for the call (the switch turns
it into response code 55); a PIN or CVV that does not verify is a result (``verified=false``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.timestamp_pb2 import Timestamp

from cardswitch import errors
from cardswitch.cards import mask_pans_in, validate_pan
from cardswitch.v1 import common_pb2, hsm_pb2, hsm_pb2_grpc
from hsm_sim import keystore
from hsm_sim.algorithms import cvv, dukpt, ibm3624, kcv, pinblock, tdes

log = logging.getLogger(__name__)

MAX_COMPONENTS = 9
MIN_RSA_BITS = 2048
PAN_AAD = b"cardswitch.v1.pan"  # domain separation: only PANs are revealed as PANs
_NONCE = 12
_HEX = re.compile(r"[0-9A-Fa-f]+")  # always fullmatch: "$" would let a trailing newline in
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class _PinBlockCodec:
    iso_format: int
    decode: Callable[[bytes, str], str]
    encode: Callable[[str, str], bytes]
    bound_to_pan: bool


# The PIN block formats this HSM translates and verifies, keyed by the proto enum.
PIN_BLOCK_CODECS: dict[common_pb2.PinBlockFormat, _PinBlockCodec] = {
    common_pb2.PIN_BLOCK_FORMAT_ISO_0: _PinBlockCodec(
        0, pinblock.decode_iso0, pinblock.encode_iso0, True),
    common_pb2.PIN_BLOCK_FORMAT_ISO_1: _PinBlockCodec(
        1, lambda block, _pan: pinblock.decode_iso1(block),
        lambda pin, _pan: pinblock.encode_iso1(pin), False),
    common_pb2.PIN_BLOCK_FORMAT_ISO_3: _PinBlockCodec(
        3, pinblock.decode_iso3, pinblock.encode_iso3, True),
}


class _Violations:
    """Collects every (field, problem) of a request so the caller learns them all at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append((field, problem))

    def key_ref(self, field: str, value: str) -> None:
        if not value:
            self.add(field, "is required (a key id or label)")
        elif len(value) > 64:
            self.add(field, f"must be at most 64 characters, got {len(value)}")

    def pan(self, field: str, value: str) -> None:
        problem = validate_pan(value, field) if _DIGITS.fullmatch(value) else "must be digits only"
        if problem:
            self.add(field, problem.removeprefix(f"{field}: "))

    def digits(self, field: str, value: str, low: int, high: int) -> None:
        if not (low <= len(value) <= high and _DIGITS.fullmatch(value)):
            span = f"{low}" if low == high else f"{low} to {high}"
            self.add(field, f"must be {span} digits, got {len(value)} characters")

    def length(self, field: str, value: bytes, size: int) -> None:
        if len(value) != size:
            self.add(field, f"must be {size} bytes, got {len(value)}")

    def pin_format(self, field: str,
                   value: common_pb2.PinBlockFormat) -> common_pb2.PinBlockFormat:
        """The format to use (unspecified means ISO 0); records a violation if unsupported."""
        if value == common_pb2.PIN_BLOCK_FORMAT_UNSPECIFIED:
            return common_pb2.PIN_BLOCK_FORMAT_ISO_0
        if value not in PIN_BLOCK_CODECS:
            self.add(field, "unsupported; use PIN_BLOCK_FORMAT_ISO_0, _ISO_1 or _ISO_3")
        return value

    def ibm3624_inputs(self, request: hsm_pb2.VerifyPinRequest | hsm_pb2.GeneratePinOffsetRequest,
                       ) -> None:
        if request.decimalization_table:
            self.digits("decimalization_table", request.decimalization_table, 16, 16)
        vd = request.validation_data
        if vd and not (len(vd) == 16 and _HEX.fullmatch(vd)):
            self.add("validation_data", f"must be 16 hex digits, got {len(vd)} characters")

    def card(self, request: hsm_pb2.GenerateCvvRequest | hsm_pb2.VerifyCvvRequest) -> None:
        self.key_ref("cvk_key_ref", request.cvk_key_ref)
        self.pan("pan", request.pan)
        self.digits("expiry_yymm", request.expiry_yymm, 4, 4)
        if not self.found_for("expiry_yymm") and not 1 <= int(request.expiry_yymm[2:]) <= 12:
            self.add("expiry_yymm", "month must be 01 to 12")
        self.digits("service_code", request.service_code, 3, 3)

    def found_for(self, field: str) -> bool:
        return any(f == field for f, _ in self.found)

    def check(self) -> None:
        if self.found:
            raise errors.FieldViolations(self.found)


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
        kcv=key.kcv, created_at=created,
    )


def _shown(key_ref: str) -> str:
    """A key reference as error text shows it (a PAN typed into the wrong field stays masked)."""
    return repr(mask_pans_in(key_ref))


def _read_pin(codec: _PinBlockCodec, key: bytes, block: bytes, pan: str) -> str:
    try:
        return codec.decode(tdes.decrypt_ecb(key, block), pan)
    except ValueError:
        raise errors.FieldViolations([(
            "pin_block",
            f"does not decode as an ISO format {codec.iso_format} PIN block under the given key",
        )]) from None


class HsmServicer(hsm_pb2_grpc.HsmServiceServicer):
    """``cardswitch.v1.HsmService`` over a :class:`keystore.KeyStore`."""

    def __init__(self, store: keystore.KeyStore) -> None:
        self._store = store

    async def _lookup(self, field: str, key_ref: str) -> keystore.Key:
        """The key named ``key_ref`` (id or label), from memory or else the database."""
        key = self._store.cached(key_ref)
        if key is None:
            try:
                key = await asyncio.to_thread(self._store.load, key_ref)
            except keystore.KeyIntegrityError as exc:
                raise errors.Conflict(f"{field}: {exc}") from None
        if key is None:
            raise errors.NotFound(f"{field}: no key with id or label {_shown(key_ref)}")
        return key

    async def _key(self, field: str, key_ref: str, needs: str, command: str) -> keystore.Key:
        """The key named ``key_ref``, which ``command`` may only use as a ``needs`` key."""
        key = await self._lookup(field, key_ref)
        if key.key_type != needs:
            raise errors.Conflict(f"{field}: key {_shown(key_ref)} is of type {key.key_type}; "
                                  f"{command} needs a key of type {needs}")
        return key

    def _new_key_attributes(self, v: _Violations, label: str, key_type_value: int,
                            algorithm_value: int) -> tuple[str, str]:
        problem = keystore.label_problem(label)
        if problem:
            v.add("label", problem)
        key_type = _type_name(key_type_value)
        algorithm = _algorithm_name(algorithm_value)
        if key_type is None:
            v.add("key_type", "is required: one of " + ", ".join(keystore.ALLOWED_ALGORITHMS))
        if algorithm is None:
            v.add("algorithm", "is required: one of " + ", ".join(keystore.KEY_LENGTHS))
        if key_type and algorithm and algorithm not in keystore.ALLOWED_ALGORITHMS[key_type]:
            allowed = ", ".join(sorted(keystore.ALLOWED_ALGORITHMS[key_type]))
            v.add("algorithm", f"a {key_type} key must be one of {allowed}, not {algorithm}")
        return key_type or "", algorithm or ""

    async def _store_key(self, label: str, key_type: str, algorithm: str,
                         clear: bytes) -> hsm_pb2.KeyInfo:
        if self._store.cached(label) is not None:
            raise errors.AlreadyExists(f"label: a key labelled {label!r} already exists")
        try:
            key = await asyncio.to_thread(self._store.add, label, key_type, algorithm, clear)
        except keystore.LabelTaken as exc:
            raise errors.AlreadyExists(str(exc)) from None
        return key_info_message(key)

    async def GenerateKey(self, request: hsm_pb2.GenerateKeyRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GenerateKeyResponse:
        v = _Violations()
        key_type, algorithm = self._new_key_attributes(
            v, request.label, request.key_type, request.algorithm)
        v.check()
        clear = keystore.random_key(algorithm)
        info = await self._store_key(request.label, key_type, algorithm, clear)
        return hsm_pb2.GenerateKeyResponse(key=info)

    async def ImportKey(self, request: hsm_pb2.ImportKeyRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.ImportKeyResponse:
        v = _Violations()
        key_type, algorithm = self._new_key_attributes(
            v, request.label, request.key_type, request.algorithm)
        size = keystore.KEY_LENGTHS.get(algorithm, 0)
        if not 1 <= len(request.components) <= MAX_COMPONENTS:
            v.add("components", f"must be 1 to {MAX_COMPONENTS} hex key components, "
                                f"got {len(request.components)}")
        for i, component in enumerate(request.components):
            if not _HEX.fullmatch(component) or len(component) % 2:
                v.add(f"components[{i}]", "must be an even number of hex digits")
            elif size and len(component) != 2 * size:
                v.add(f"components[{i}]", f"must be {2 * size} hex digits for {algorithm}, "
                                          f"got {len(component)}")
        expected = request.expected_kcv.upper()
        if expected and not (len(expected) == 6 and _HEX.fullmatch(expected)):
            v.add("expected_kcv", f"must be 6 hex digits, got {len(expected)} characters")
        v.check()
        clear = keystore.combine_components([bytes.fromhex(c) for c in request.components])
        if algorithm.startswith("TDES") and any(
                clear[i:i + 8] == clear[i + 8:i + 16] for i in range(0, len(clear) - 8, 8)):
            v.add("components", "combine to a TDES key with two equal adjacent parts "
                                "(single-DES strength)")
        actual = keystore.check_value(clear, algorithm)
        if expected and not hmac.compare_digest(expected, actual):
            v.add("expected_kcv", f"does not match the check value of the combined key ({actual})")
        v.check()
        info = await self._store_key(request.label, key_type, algorithm, clear)
        return hsm_pb2.ImportKeyResponse(key=info)

    async def GetKey(self, request: hsm_pb2.GetKeyRequest,
                     context: grpc.aio.ServicerContext) -> hsm_pb2.KeyInfo:
        v = _Violations()
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
        v = _Violations()
        v.key_ref("bdk_key_ref", request.bdk_key_ref)
        v.length("ksn", request.ksn, dukpt.KSN_LENGTH)
        device_key = _rsa_public_key(v, request.device_public_key_pem)
        v.check()
        assert device_key is not None
        bdk = await self._key("bdk_key_ref", request.bdk_key_ref, "BDK", "DeriveDukptInitialKey")
        ipek = dukpt.tdes_ipek(bdk.clear, request.ksn)
        encrypted = device_key.encrypt(ipek, padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        check = kcv.kcv(ipek).hex().upper()
        log.info("derived IPEK (KCV %s) for KSN %s under BDK %s", check,
                 request.ksn.hex().upper(), bdk.label)
        return hsm_pb2.DeriveDukptInitialKeyResponse(encrypted_initial_key=encrypted, kcv=check)

    async def TranslatePin(self, request: hsm_pb2.TranslatePinRequest,
                           context: grpc.aio.ServicerContext) -> hsm_pb2.TranslatePinResponse:
        v = _Violations()
        from_dukpt = bool(request.source_bdk_key_ref)
        if from_dukpt and request.source_zpk_key_ref:
            v.add("source_zpk_key_ref", "give either source_bdk_key_ref with ksn, "
                                        "or source_zpk_key_ref, not both")
        elif from_dukpt:
            v.key_ref("source_bdk_key_ref", request.source_bdk_key_ref)
            _check_transaction_ksn(v, request.ksn)
        elif request.source_zpk_key_ref:
            v.key_ref("source_zpk_key_ref", request.source_zpk_key_ref)
            if request.ksn:
                v.add("ksn", "is only for a DUKPT source (source_bdk_key_ref)")
        else:
            v.add("source_bdk_key_ref", "a source key is required: source_bdk_key_ref with ksn, "
                                        "or source_zpk_key_ref")
        v.key_ref("destination_zpk_key_ref", request.destination_zpk_key_ref)
        v.length("pin_block", request.pin_block, pinblock.PIN_BLOCK_LENGTH)
        v.pan("pan", request.pan)
        source_format = v.pin_format("source_format", request.source_format)
        destination_format = v.pin_format("destination_format", request.destination_format)
        source_codec = PIN_BLOCK_CODECS.get(source_format)
        destination_codec = PIN_BLOCK_CODECS.get(destination_format)
        if (source_codec and destination_codec and source_codec.bound_to_pan
                and not destination_codec.bound_to_pan):
            v.add("destination_format", "a PIN block bound to the PAN (ISO 0 or 3) may not be "
                                        "translated to ISO 1 (PCI PIN 3-3)")
        v.check()
        assert source_codec is not None and destination_codec is not None
        destination = await self._key("destination_zpk_key_ref", request.destination_zpk_key_ref,
                                      "ZPK", "TranslatePin")
        if from_dukpt:
            bdk = await self._key("source_bdk_key_ref", request.source_bdk_key_ref, "BDK",
                                  "TranslatePin")
            ipek = dukpt.tdes_ipek(bdk.clear, request.ksn)
            source_key = dukpt.tdes_pin_key(ipek, request.ksn)
        else:
            source_key = (await self._key("source_zpk_key_ref", request.source_zpk_key_ref,
                                          "ZPK", "TranslatePin")).clear
        pin = _read_pin(source_codec, source_key, request.pin_block, request.pan)
        block = tdes.encrypt_ecb(destination.clear, destination_codec.encode(pin, request.pan))
        return hsm_pb2.TranslatePinResponse(pin_block=block, format=destination_format)

    async def VerifyPin(self, request: hsm_pb2.VerifyPinRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyPinResponse:
        v = _Violations()
        v.key_ref("zpk_key_ref", request.zpk_key_ref)
        v.key_ref("pvk_key_ref", request.pvk_key_ref)
        v.length("pin_block", request.pin_block, pinblock.PIN_BLOCK_LENGTH)
        pin_format = v.pin_format("format", request.format)
        v.pan("pan", request.pan)
        v.digits("offset", request.offset, 4, 12)
        v.ibm3624_inputs(request)
        v.check()
        zpk = await self._key("zpk_key_ref", request.zpk_key_ref, "ZPK", "VerifyPin")
        pvk = await self._key("pvk_key_ref", request.pvk_key_ref, "PVK", "VerifyPin")
        pin = _read_pin(PIN_BLOCK_CODECS[pin_format], zpk.clear, request.pin_block, request.pan)
        verified = ibm3624.verify_offset(
            pvk.clear, _validation_data(request), pin, request.offset,
            request.decimalization_table or ibm3624.DEFAULT_DECIMALIZATION_TABLE)
        return hsm_pb2.VerifyPinResponse(verified=verified)

    async def GeneratePinOffset(
        self, request: hsm_pb2.GeneratePinOffsetRequest, context: grpc.aio.ServicerContext,
    ) -> hsm_pb2.GeneratePinOffsetResponse:
        v = _Violations()
        v.key_ref("pvk_key_ref", request.pvk_key_ref)
        v.pan("pan", request.pan)
        v.digits("pin", request.pin, 4, 12)
        v.ibm3624_inputs(request)
        v.check()
        pvk = await self._key("pvk_key_ref", request.pvk_key_ref, "PVK", "GeneratePinOffset")
        offset = ibm3624.pin_offset(
            pvk.clear, _validation_data(request), request.pin,
            request.decimalization_table or ibm3624.DEFAULT_DECIMALIZATION_TABLE)
        return hsm_pb2.GeneratePinOffsetResponse(offset=offset)

    async def GenerateCvv(self, request: hsm_pb2.GenerateCvvRequest,
                          context: grpc.aio.ServicerContext) -> hsm_pb2.GenerateCvvResponse:
        v = _Violations()
        v.card(request)
        v.check()
        cvk = await self._key("cvk_key_ref", request.cvk_key_ref, "CVK", "GenerateCvv")
        value = cvv.cvv(cvk.clear, request.pan, request.expiry_yymm, request.service_code)
        return hsm_pb2.GenerateCvvResponse(cvv=value)

    async def VerifyCvv(self, request: hsm_pb2.VerifyCvvRequest,
                        context: grpc.aio.ServicerContext) -> hsm_pb2.VerifyCvvResponse:
        v = _Violations()
        v.card(request)
        v.digits("cvv", request.cvv, 3, 3)
        v.check()
        cvk = await self._key("cvk_key_ref", request.cvk_key_ref, "CVK", "VerifyCvv")
        verified = cvv.verify_cvv(cvk.clear, request.pan, request.expiry_yymm,
                                  request.service_code, request.cvv)
        return hsm_pb2.VerifyCvvResponse(verified=verified)

    async def ProtectPan(self, request: hsm_pb2.ProtectPanRequest,
                         context: grpc.aio.ServicerContext) -> hsm_pb2.ProtectPanResponse:
        v = _Violations()
        v.key_ref("hmac_key_ref", request.hmac_key_ref)
        v.key_ref("dek_key_ref", request.dek_key_ref)
        v.pan("pan", request.pan)
        v.check()
        hmac_key = await self._key("hmac_key_ref", request.hmac_key_ref, "HMAC", "ProtectPan")
        dek = await self._key("dek_key_ref", request.dek_key_ref, "DEK", "ProtectPan")
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
        v = _Violations()
        v.key_ref("dek_key_ref", request.dek_key_ref)
        if not _NONCE + 16 + 13 <= len(request.encrypted_pan) <= _NONCE + 16 + 19:
            v.add("encrypted_pan", "must be nonce (12) || ciphertext (13 to 19) || tag (16) "
                                   f"bytes, got {len(request.encrypted_pan)}")
        v.check()
        dek = await self._key("dek_key_ref", request.dek_key_ref, "DEK", "RevealPan")
        blob = request.encrypted_pan
        try:
            pan = AESGCM(dek.clear).decrypt(blob[:_NONCE], blob[_NONCE:], PAN_AAD).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise errors.FieldViolations([(
                "encrypted_pan", "does not decrypt under the given key: altered, truncated or "
                                 "protected under another data key")]) from None
        return hsm_pb2.RevealPanResponse(pan=pan)


def _check_transaction_ksn(v: _Violations, ksn: bytes) -> None:
    if len(ksn) != dukpt.KSN_LENGTH:
        v.add("ksn", f"must be {dukpt.KSN_LENGTH} bytes with source_bdk_key_ref, got {len(ksn)}")
        return
    counter = dukpt.ksn_counter(ksn)
    if counter == 0:
        v.add("ksn", "transaction counter is 0, the initial key's slot, never a transaction key")
    elif counter.bit_count() > dukpt.MAX_COUNTER_ONE_BITS:
        v.add("ksn", f"transaction counter has {counter.bit_count()} one-bits; X9.24 allows "
                     f"{dukpt.MAX_COUNTER_ONE_BITS}")


def _rsa_public_key(v: _Violations, pem: bytes) -> rsa.RSAPublicKey | None:
    if not pem:
        v.add("device_public_key_pem", "is required (the PIN pad's RSA public key, PEM)")
        return None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        v.add("device_public_key_pem", "is not a PEM public key")
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        v.add("device_public_key_pem", f"must be an RSA key, got {type(key).__name__}")
        return None
    if key.key_size < MIN_RSA_BITS:
        v.add("device_public_key_pem", f"RSA key must be at least {MIN_RSA_BITS} bits, "
                                       f"got {key.key_size}")
        return None
    return key


def _validation_data(
    request: hsm_pb2.VerifyPinRequest | hsm_pb2.GeneratePinOffsetRequest,
) -> str:
    return request.validation_data.upper() or ibm3624.validation_data_from_pan(request.pan)
