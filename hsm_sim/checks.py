"""Request checks shared by the HSM's commands: field violations, PIN block formats, KSNs.

:class:`Violations` collects every (field, problem) of a request so the caller learns them all at
once; the PIN helpers read and write PIN blocks in ISO formats 0, 1 and 3 (TDES, one encipherment)
and 4 (AES, two). Messages name the field and never echo a PIN, a PAN or a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardswitch import errors
from cardswitch.cards import mask_pans_in, validate_pan
from cardswitch.v1 import common_pb2, hsm_pb2
from hsm_sim import keystore, usage
from hsm_sim.algorithms import dukpt, dukpt_aes, ibm3624, pinblock, tdes

MIN_RSA_BITS = 2048

HEX = re.compile(r"[0-9A-Fa-f]+")  # always fullmatch: "$" would let a trailing newline in
DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PinBlockCodec:
    iso_format: int
    decode: Callable[[bytes, str], str]
    encode: Callable[[str, str], bytes]
    bound_to_pan: bool


# The PIN block formats this HSM translates and verifies, keyed by the proto enum. Format 4
# (AES, 16-byte blocks) is handled apart: its blocks are enciphered twice, not once.
ISO_4 = common_pb2.PIN_BLOCK_FORMAT_ISO_4
PIN_FORMATS = {common_pb2.PIN_BLOCK_FORMAT_ISO_0: 0, common_pb2.PIN_BLOCK_FORMAT_ISO_1: 1,
               common_pb2.PIN_BLOCK_FORMAT_ISO_3: 3, ISO_4: 4}
PIN_BLOCK_CODECS: dict[common_pb2.PinBlockFormat, PinBlockCodec] = {
    common_pb2.PIN_BLOCK_FORMAT_ISO_0: PinBlockCodec(
        0, pinblock.decode_iso0, pinblock.encode_iso0, True),
    common_pb2.PIN_BLOCK_FORMAT_ISO_1: PinBlockCodec(
        1, lambda block, _pan: pinblock.decode_iso1(block),
        lambda pin, _pan: pinblock.encode_iso1(pin), False),
    common_pb2.PIN_BLOCK_FORMAT_ISO_3: PinBlockCodec(
        3, pinblock.decode_iso3, pinblock.encode_iso3, True),
}


class Violations:
    """Collects every (field, problem) of a request so the caller learns them all at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append((field, problem))

    def key_ref(self, field: str, value: str) -> None:
        if not value:
            self.add(field, "is required (a key id, a label or a key block under the LMK)")
        elif len(value) > 64 and not keystore.looks_like_key_block(value):
            self.add(field, f"must be a key id or label of at most 64 characters, or a key "
                            f"block under the LMK; got {len(value)} characters")

    def pan(self, field: str, value: str) -> None:
        problem = validate_pan(value, field) if DIGITS.fullmatch(value) else "must be digits only"
        if problem:
            self.add(field, problem.removeprefix(f"{field}: "))

    def digits(self, field: str, value: str, low: int, high: int) -> None:
        if not (low <= len(value) <= high and DIGITS.fullmatch(value)):
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
        if value not in PIN_FORMATS:
            self.add(field, "unsupported; use PIN_BLOCK_FORMAT_ISO_0, _ISO_1, _ISO_3 or _ISO_4")
        return value

    def ibm3624_inputs(self, request: hsm_pb2.VerifyPinRequest | hsm_pb2.GeneratePinOffsetRequest,
                       ) -> None:
        if request.decimalization_table:
            self.digits("decimalization_table", request.decimalization_table, 16, 16)
        vd = request.validation_data
        if vd and not (len(vd) == 16 and HEX.fullmatch(vd)):
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


def shown(key_ref: str) -> str:
    """A key reference as error text shows it (a PAN typed into the wrong field stays masked)."""
    return repr(mask_pans_in(key_ref))


def check_pin_key(field: str, key: keystore.Key, pin_format: common_pb2.PinBlockFormat,
                   format_field: str) -> None:
    """ISO 4 blocks are AES; formats 0, 1 and 3 are TDES: the key must match the format."""
    aes = key.algorithm in usage.AES
    if aes != (pin_format == ISO_4):
        wanted = "an AES" if pin_format == ISO_4 else "a TDES"
        raise errors.FieldViolations([(
            format_field, f"ISO format {PIN_FORMATS[pin_format]} needs {wanted} PIN key; "
                          f"{field} names a {key.algorithm} key")])


def read_pin(pin_format: common_pb2.PinBlockFormat, key: bytes, block: bytes, pan: str) -> str:
    iso = PIN_FORMATS[pin_format]
    expected = 16 if pin_format == ISO_4 else 8
    if len(block) != expected:
        raise errors.FieldViolations([(
            "pin_block", f"must be {expected} bytes for ISO format {iso}, got {len(block)}")])
    try:
        if pin_format == ISO_4:
            return pinblock.decrypt_iso4(key, block, pan)
        return PIN_BLOCK_CODECS[pin_format].decode(tdes.decrypt_ecb(key, block), pan)
    except ValueError:
        raise errors.FieldViolations([(
            "pin_block", f"does not decode as an ISO format {iso} PIN block under the given key",
        )]) from None


def write_pin(pin_format: common_pb2.PinBlockFormat, key: bytes, pin: str, pan: str) -> bytes:
    if pin_format == ISO_4:
        return pinblock.encrypt_iso4(key, pin, pan)
    return tdes.encrypt_ecb(key, PIN_BLOCK_CODECS[pin_format].encode(pin, pan))


def check_transaction_ksn(v: Violations, ksn: bytes) -> None:
    """A transaction KSN: 10 bytes for TDES DUKPT (X9.24-1), 12 for AES DUKPT (X9.24-3)."""
    if len(ksn) == dukpt_aes.KSN_LENGTH:
        counter, one_bits = dukpt_aes.aes_ksn_counter(ksn), dukpt_aes.MAX_COUNTER_ONE_BITS
    elif len(ksn) == dukpt.KSN_LENGTH:
        counter, one_bits = dukpt.ksn_counter(ksn), dukpt.MAX_COUNTER_ONE_BITS
    else:
        v.add("ksn", f"must be 10 bytes (TDES DUKPT) or 12 (AES DUKPT) with "
                     f"source_bdk_key_ref, got {len(ksn)}")
        return
    if counter == 0:
        v.add("ksn", "transaction counter is 0, the initial key's slot, never a transaction key")
    elif counter.bit_count() > one_bits:
        v.add("ksn", f"transaction counter has {counter.bit_count()} one-bits; X9.24 allows "
                     f"{one_bits}")


def rsa_public_key(v: Violations, pem: bytes) -> rsa.RSAPublicKey | None:
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


def validation_data(
    request: hsm_pb2.VerifyPinRequest | hsm_pb2.GeneratePinOffsetRequest,
) -> str:
    return request.validation_data.upper() or ibm3624.validation_data_from_pan(request.pan)
