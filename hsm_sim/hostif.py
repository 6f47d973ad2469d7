"""A payShield-style TCP host interface to the HSM, beside gRPC, for clients written for Thales.

Framing: each message is a 2-byte big-endian length, then a header of ``header_length``
characters (echoed back unchanged), a 2-character command code and the command's fields. The
response carries the same header, the response code (the command code with its second character
advanced: ``CA`` -> ``CB``), a 2-digit error code (:data:`ERROR_CODES`) and, after ``00``, the
response fields. An end-of-message delimiter X'19 and trailer (at most 32 characters) are echoed.

Each supported command is a :class:`Command` in :data:`COMMANDS`: its request and response fields
as data, which :func:`parse`, :func:`format_response` and ``docs/hsm-host-interface.md`` all
follow, and a handler that maps it onto ``HsmService`` RPCs. Keys travel by value, as ``S`` and a
TR-31 key block under the LMK, or (an extension for tests and tools) by label, ``L`` + 2-digit
length + label. Service errors become payShield error codes in :func:`error_code_for`. Logs name
the command, its error code and a scrubbed reason: never a PIN block, a key or a PAN.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cardswitch import errors
from cardswitch.cards import luhn_check_digit, luhn_valid, mask_pans_in
from cardswitch.v1 import common_pb2, hsm_pb2
from hsm_sim import service
from hsm_sim.algorithms import mac

log = logging.getLogger(__name__)

NO_ERROR = "00"
VERIFICATION_FAILURE = "01"
INVALID_KEY_TYPE_CODE = "04"
SOURCE_KEY_ERROR = "10"
DESTINATION_KEY_ERROR = "11"
INVALID_INPUT = "15"
PIN_BLOCK_ERROR = "20"
ACCOUNT_NUMBER_ERROR = "22"
PIN_BLOCK_FORMAT_ERROR = "23"
PIN_LENGTH_ERROR = "24"
DECIMALIZATION_TABLE_ERROR = "25"
INVALID_KEY_SCHEME = "26"
INCOMPATIBLE_KEY_LENGTH = "27"
INVALID_KEY_TYPE = "28"
KEY_FUNCTION_NOT_PERMITTED = "29"
INTERNAL_ERROR = "41"
COMMAND_DISABLED = "68"

ERROR_CODES: Mapping[str, str] = {
    NO_ERROR: "no error",
    VERIFICATION_FAILURE: "verification failure (PIN, CVV, MAC or ARQC)",
    INVALID_KEY_TYPE_CODE: "invalid key type code",
    SOURCE_KEY_ERROR: "source (first) key unusable: unknown, altered or not a key block",
    DESTINATION_KEY_ERROR: "destination (second) key unusable: unknown, altered or not a key block",
    INVALID_INPUT: "invalid input data: bad field, wrong length, non-hex, unsupported option",
    PIN_BLOCK_ERROR: "PIN block does not contain valid values",
    ACCOUNT_NUMBER_ERROR: "invalid account number",
    PIN_BLOCK_FORMAT_ERROR: "invalid PIN block format code",
    PIN_LENGTH_ERROR: "PIN length limit outside 4 to 12 digits",
    DECIMALIZATION_TABLE_ERROR: "decimalization table error",
    INVALID_KEY_SCHEME: "invalid key scheme (only S key blocks and L labels)",
    INCOMPATIBLE_KEY_LENGTH: "incompatible key length or algorithm",
    INVALID_KEY_TYPE: "invalid key type for this command",
    KEY_FUNCTION_NOT_PERMITTED: "key function not permitted (usage, mode of use, export)",
    INTERNAL_ERROR: "internal error",
    COMMAND_DISABLED: "command disabled (unknown or not implemented by the HSM service)",
}

MAX_FRAME = 0xFFFF
MAX_TRAILER = 32
END_OF_MESSAGE = b"\x19"
UNREADABLE_CODE = "ZZ"  # the response code when no command code can be read
_CODE = re.compile(rb"[0-9A-Z]{2}")
_NEXT = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A run of 16 or more letters and digits is the shape of a key block, a PIN block or a PAN.
_LONG_TOKEN = re.compile(r"[0-9A-Za-z]{16,}")


class HostError(Exception):
    """A command fails with a payShield error code; ``reason`` is for the log, data-free."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# --- the field kinds of the command table ------------------------------------------------------


@dataclass(frozen=True)
class KeyField:
    """A key by value: ``S`` + key block under the LMK, whose own length field (block
    characters 2-5) says where it ends; or ``L`` + 2-digit length + label."""


KEY = KeyField()


@dataclass(frozen=True)
class Delimited:
    """Characters up to ``delimiter`` (consumed, not part of the value)."""

    delimiter: str
    max_length: int


@dataclass(frozen=True)
class CountedBy:
    """As many bytes as the earlier field ``field`` says, in hex."""

    field: str


@dataclass(frozen=True)
class SizedBy:
    """A length chosen by the value of the earlier field ``field``."""

    field: str
    lengths: tuple[tuple[str, int], ...]


Length = int | KeyField | Delimited | CountedBy | SizedBy

FORMATS: Mapping[str, str] = {
    "N": "decimal digits",
    "H": "hex digits",
    "A": "printable characters",
    "B": "binary bytes",
    "K": "key: S + key block, or L + NN + label",
}


@dataclass(frozen=True)
class Field:
    """One field of a request or response.

    ``values`` restricts it; ``when`` = (earlier field, values) makes it present only when that
    field has one of them; ``optional`` makes it present only when the next characters are one
    of ``values``. ``error`` is the code for this field missing or malformed.
    """

    name: str
    length: Length
    format: str
    notes: str = ""
    values: tuple[str, ...] = ()
    when: tuple[str, tuple[str, ...]] | None = None
    optional: bool = False
    error: str = INVALID_INPUT


Fields = dict[str, str | bytes]
Reply = dict[str, str | bytes]
Handler = Callable[["_Hsm", Fields], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    """A host command: its layouts and the handler that runs it on the HSM service.

    ``key_refs`` names the gRPC request fields the command's keys go into, in order: a problem
    with the first is error 10, with a later one 11, as payShield reports source and destination.
    """

    code: str
    title: str
    request: tuple[Field, ...]
    response: tuple[Field, ...]
    handler: Handler = field(compare=False)
    key_refs: tuple[str, ...] = ()
    rpcs: tuple[str, ...] = ()

    @property
    def response_code(self) -> str:
        return response_code_for(self.code)


def response_code_for(code: str) -> str:
    """The response code of a command code: its second character advanced (``Z`` wraps to
    ``0``, ``9`` goes to ``A``).

    >>> response_code_for("CA"), response_code_for("M6"), response_code_for("NC")
    ('CB', 'M7', 'ND')
    """
    return code[0] + _NEXT[(_NEXT.index(code[1]) + 1) % len(_NEXT)]


# --- the service side --------------------------------------------------------------------------


@dataclass(frozen=True)
class HostInfo:
    """What NC reports: the LMK's check value (hex) and a 9-character firmware number."""

    lmk_kcv: str
    firmware: str

    def __post_init__(self) -> None:
        if not (1 <= len(self.lmk_kcv) <= 16 and re.fullmatch(r"[0-9A-Fa-f]+", self.lmk_kcv)):
            raise ValueError(f"lmk_kcv: must be 1 to 16 hex digits, got {len(self.lmk_kcv)} "
                             "characters")
        firmware = self.firmware
        if not (len(firmware) == 9 and firmware.isascii() and firmware.isprintable()):
            raise ValueError(f"firmware: must be 9 printable ASCII characters, got "
                             f"{self.firmware!r}")


class _Hsm:
    """The HSM service as the handlers call it: by RPC name, with no gRPC context, audited as
    coming in on the ``host`` interface."""

    def __init__(self, servicer: object, info: HostInfo) -> None:
        self.servicer = servicer
        self.info = info

    async def call(self, rpc: str, request: Any) -> Any:
        method = getattr(self.servicer, rpc, None)
        # The generated base class answers an RPC it lacks with a plain (not async) method.
        if method is None or not inspect.iscoroutinefunction(method):
            raise HostError(COMMAND_DISABLED, f"the HSM service does not implement {rpc}")
        token = service.interface.set("host")
        try:
            return await method(request, None)
        finally:
            service.interface.reset(token)


def _text(fields: Mapping[str, str | bytes], name: str) -> str:
    value = fields[name]
    assert isinstance(value, str), name
    return value


def _raw(fields: Mapping[str, str | bytes], name: str) -> bytes:
    value = fields[name]
    assert isinstance(value, bytes), name
    return value


def pan_for_account_number(account_number: str) -> str:
    """A Luhn-valid 13-digit PAN whose ISO 9564 account number (its 12 rightmost digits bar the
    check digit) is ``account_number``: what the service needs where a command carries only that.

    >>> pan_for_account_number("401234567890")
    '4012345678909'
    """
    return account_number + luhn_check_digit(account_number)


def pan_and_psn_for(y: str) -> tuple[str, str]:
    """A Luhn-valid 15-digit PAN and a PSN whose EMV option A input (the rightmost 16 digits of
    PAN || PSN) is the 16 digits ``y``, as KQ's pre-formatted PAN/PAN sequence number gives it.

    >>> pan_and_psn_for("1234567890123401")
    ('312345678901234', '01')
    """
    tail, psn = y[:14], y[14:]
    lead = next(d for d in "0123456789" if luhn_valid(d + tail))
    return lead + tail, psn


def validation_data_for(pattern: str, account_number: str) -> str:
    """IBM 3624 validation data from payShield's 12-character pattern: hex digits and one ``N``,
    which becomes the last 5 digits of the account number (16 characters in all).

    >>> validation_data_for("4012345N0000", "401234567890")
    '4012345678900000'
    """
    if pattern.count("N") != 1 or not re.fullmatch(r"[0-9A-Fa-fN]{12}", pattern):
        raise HostError(INVALID_INPUT, "pin_validation_data: must be 12 hex digits and one N")
    return pattern.replace("N", account_number[-5:]).upper()


def _without_method2_padding(data: bytes) -> bytes:
    """The data before its ISO 9797-1 method 2 padding (80 00..), which the service re-applies;
    payShield KQ would zero-pad the padded data, which comes to the same blocks."""
    core = data.rstrip(b"\0")
    if core.endswith(b"\x80") and mac.pad(core[:-1], 2) == mac.pad(data, 1):
        return core[:-1]
    raise HostError(INVALID_INPUT, "transaction_data: scheme 1 data must end with its ISO "
                                   "9797-1 method 2 padding (80, then zeros to the block end)")


# --- the handlers: one per command, each a thin mapping onto the service -----------------------

PIN_BLOCK_FORMATS: Mapping[str, common_pb2.PinBlockFormat] = {
    "01": common_pb2.PIN_BLOCK_FORMAT_ISO_0,
    "05": common_pb2.PIN_BLOCK_FORMAT_ISO_1,
    "47": common_pb2.PIN_BLOCK_FORMAT_ISO_3,
}
# payShield key type codes (variant-LMK numbering). payShield shares 002 among TMK, TPK and PVK
# and 003/008 between TAK and ZAK; this HSM keeps its types apart: 002 is a TPK, 702 a PVK.
KEY_TYPE_CODES: Mapping[str, hsm_pb2.KeyType] = {
    "000": hsm_pb2.KEY_TYPE_ZMK, "001": hsm_pb2.KEY_TYPE_ZPK, "002": hsm_pb2.KEY_TYPE_TPK,
    "003": hsm_pb2.KEY_TYPE_TAK, "008": hsm_pb2.KEY_TYPE_TAK, "009": hsm_pb2.KEY_TYPE_BDK,
    "00B": hsm_pb2.KEY_TYPE_DEK, "109": hsm_pb2.KEY_TYPE_IMK_AC,
    "209": hsm_pb2.KEY_TYPE_IMK_SMI, "309": hsm_pb2.KEY_TYPE_IMK_SMC,
    "402": hsm_pb2.KEY_TYPE_CVK, "702": hsm_pb2.KEY_TYPE_PVK,
}
KEY_ALGORITHM_CODES: Mapping[str, hsm_pb2.KeyAlgorithm] = {
    "T2": hsm_pb2.KEY_ALGORITHM_TDES_2KEY, "T3": hsm_pb2.KEY_ALGORITHM_TDES_3KEY,
    "A1": hsm_pb2.KEY_ALGORITHM_AES_128, "A2": hsm_pb2.KEY_ALGORITHM_AES_192,
    "A3": hsm_pb2.KEY_ALGORITHM_AES_256,
}
# KQ scheme id -> the cryptogram version the service verifies (see the doc for scheme 1).
KQ_SCHEMES: Mapping[str, hsm_pb2.CryptogramVersion] = {
    "0": hsm_pb2.CRYPTOGRAM_VERSION_VISA_10,
    "1": hsm_pb2.CRYPTOGRAM_VERSION_MASTERCARD_16,
}
# ARPC method 1 needs an ARC even when only verifying (KQ mode 0); its ARPC is then dropped.
_UNUSED_ARC = bytes(2)


async def _diagnostics(hsm: _Hsm, f: Fields) -> Reply:
    return {"lmk_check_value": hsm.info.lmk_kcv.upper().ljust(16, "0"),
            "firmware_number": hsm.info.firmware}


async def _generate_key(hsm: _Hsm, f: Fields) -> Reply:
    export = _text(f, "mode") == "1"
    attributes = _text(f, "key_block_delimiter") == "#"
    key_type = KEY_TYPE_CODES[_text(f, "key_type")]
    default = (hsm_pb2.KEY_ALGORITHM_AES_256 if key_type == hsm_pb2.KEY_TYPE_DEK
               else hsm_pb2.KEY_ALGORITHM_TDES_2KEY)
    response = await hsm.call("GenerateKey", hsm_pb2.GenerateKeyRequest(
        key_type=key_type,
        algorithm=KEY_ALGORITHM_CODES[_text(f, "algorithm")] if attributes else default,
        mode_of_use=_text(f, "mode_of_use") if attributes else "",
        exportability=_text(f, "exportability") if attributes else "",
        zmk_key_ref=_text(f, "zmk") if export else ""))
    reply: Reply = {"key_under_lmk": "S" + response.lmk_key_block, "kcv": response.key.kcv}
    if export:
        reply["key_under_zmk"] = "S" + response.zmk_key_block
    return reply


async def _key_check_value(hsm: _Hsm, f: Fields) -> Reply:
    info = await hsm.call("GetKey", hsm_pb2.GetKeyRequest(key_ref=_text(f, "key")))
    return {"kcv": info.kcv}


async def _translate_pin(hsm: _Hsm, f: Fields, *, source: str) -> Reply:
    response = await hsm.call("TranslatePin", hsm_pb2.TranslatePinRequest(
        source_zpk_key_ref=_text(f, source),
        destination_zpk_key_ref=_text(f, "destination_zpk"),
        pin_block=bytes.fromhex(_text(f, "source_pin_block")),
        pan=pan_for_account_number(_text(f, "account_number")),
        source_format=PIN_BLOCK_FORMATS[_text(f, "source_format")],
        destination_format=PIN_BLOCK_FORMATS[_text(f, "destination_format")]))
    return {"pin_length": "00", "destination_pin_block": response.pin_block.hex().upper(),
            "destination_format": _text(f, "destination_format")}


async def _verify_pin_ibm(hsm: _Hsm, f: Fields, *, pin_key: str) -> Reply:
    check_length = int(_text(f, "check_length"))
    offset = _text(f, "offset").upper()
    digits, padding = offset[:check_length], offset[check_length:]
    if not digits.isdigit() or padding.strip("F"):
        raise HostError(INVALID_INPUT, f"offset: must be {check_length} digits (the check "
                                       "length), left-justified and padded with F")
    account_number = _text(f, "account_number")
    response = await hsm.call("VerifyPin", hsm_pb2.VerifyPinRequest(
        zpk_key_ref=_text(f, pin_key), pvk_key_ref=_text(f, "pvk"),
        pin_block=bytes.fromhex(_text(f, "pin_block")),
        format=PIN_BLOCK_FORMATS[_text(f, "format")],
        pan=pan_for_account_number(account_number), offset=digits,
        decimalization_table=_text(f, "decimalization_table"),
        validation_data=validation_data_for(_text(f, "pin_validation_data"), account_number)))
    return _verified(response.verified, "PIN")


async def _verify_pin_pvv(hsm: _Hsm, f: Fields, *, pin_key: str) -> Reply:
    response = await hsm.call("VerifyPin", hsm_pb2.VerifyPinRequest(
        zpk_key_ref=_text(f, pin_key), pvk_key_ref=_text(f, "pvk"),
        pin_block=bytes.fromhex(_text(f, "pin_block")),
        format=PIN_BLOCK_FORMATS[_text(f, "format")],
        pan=pan_for_account_number(_text(f, "account_number")),
        pvv=_text(f, "pvv"), pvki=int(_text(f, "pvki"))))
    return _verified(response.verified, "PIN")


async def _generate_cvv(hsm: _Hsm, f: Fields) -> Reply:
    response = await hsm.call("GenerateCvv", hsm_pb2.GenerateCvvRequest(
        cvk_key_ref=_text(f, "cvk"), pan=_text(f, "pan"),
        expiry_yymm=_text(f, "expiry_date"), service_code=_text(f, "service_code")))
    return {"cvv": response.cvv}


async def _verify_cvv(hsm: _Hsm, f: Fields) -> Reply:
    response = await hsm.call("VerifyCvv", hsm_pb2.VerifyCvvRequest(
        cvk_key_ref=_text(f, "cvk"), pan=_text(f, "pan"), expiry_yymm=_text(f, "expiry_date"),
        service_code=_text(f, "service_code"), cvv=_text(f, "cvv")))
    return _verified(response.verified, "CVV")


async def _verify_arqc(hsm: _Hsm, f: Fields) -> Reply:
    y = _raw(f, "pan_psn").hex()
    if not y.isdigit():
        raise HostError(INVALID_INPUT, "pan_psn: must be 16 BCD digits")
    pan, psn = pan_and_psn_for(y)
    data = _raw(f, "transaction_data")
    if _text(f, "scheme_id") == "1":
        data = _without_method2_padding(data)
    with_arpc = _text(f, "mode") == "1"
    response = await hsm.call("VerifyArqc", hsm_pb2.VerifyArqcRequest(
        imk_ac_key_ref=_text(f, "mk_ac"), pan=pan, psn=psn,
        cryptogram_version=KQ_SCHEMES[_text(f, "scheme_id")], atc=_raw(f, "atc"),
        transaction_data=data, arqc=_raw(f, "arqc"),
        arc=_raw(f, "arc") if with_arpc else _UNUSED_ARC))
    _verified(response.verified, "ARQC")
    return {"arpc": response.arpc} if with_arpc else {}


async def _mac_key_and_data(hsm: _Hsm, f: Fields) -> tuple[str, bytes]:
    """The MAC key (checked to be double-length TDES, for ISO 9797-1 algorithm 3) and data."""
    key_ref = _text(f, "key")
    info = await hsm.call("GetKey", hsm_pb2.GetKeyRequest(key_ref=key_ref))
    if info.algorithm != hsm_pb2.KEY_ALGORITHM_TDES_2KEY:
        raise HostError(INCOMPATIBLE_KEY_LENGTH, "key: ISO 9797-1 algorithm 3 needs a "
                                                 "double-length TDES key")
    message = _raw(f, "message")
    if _text(f, "input_format") == "0":
        return key_ref, message
    try:
        return key_ref, bytes.fromhex(message.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise HostError(INVALID_INPUT, "message: input format 1 needs an even number of hex "
                                       "digits") from None


async def _generate_mac(hsm: _Hsm, f: Fields) -> Reply:
    key_ref, data = await _mac_key_and_data(hsm, f)
    response = await hsm.call("GenerateMac", hsm_pb2.GenerateMacRequest(
        tak_key_ref=key_ref, data=data, length=8 if _text(f, "mac_size") == "1" else 4))
    return {"mac": response.mac.hex().upper()}


async def _verify_mac(hsm: _Hsm, f: Fields) -> Reply:
    key_ref, data = await _mac_key_and_data(hsm, f)
    response = await hsm.call("VerifyMac", hsm_pb2.VerifyMacRequest(
        tak_key_ref=key_ref, data=data, mac=bytes.fromhex(_text(f, "mac"))))
    return _verified(response.verified, "MAC")


def _verified(verified: bool, what: str) -> Reply:
    if not verified:
        raise HostError(VERIFICATION_FAILURE, f"{what} did not verify")
    return {}


# --- the command table -------------------------------------------------------------------------

_PIN_FORMAT_NOTE = "01 ISO 0, 05 ISO 1, 47 ISO 3"
_ACCOUNT = Field("account_number", 12, "N", "12 rightmost PAN digits, check digit excluded",
                 error=ACCOUNT_NUMBER_ERROR)
_PIN_LENGTHS = tuple(f"{n:02d}" for n in range(4, 13))


def _format_field(name: str, notes: str = _PIN_FORMAT_NOTE) -> Field:
    return Field(name, 2, "N", notes, values=tuple(PIN_BLOCK_FORMATS),
                 error=PIN_BLOCK_FORMAT_ERROR)


def _pin_block_field(name: str, notes: str) -> Field:
    return Field(name, 16, "H", notes)


def _key(name: str, notes: str) -> Field:
    return Field(name, KEY, "K", notes)


_CARD = (
    Field("pan", Delimited(";", 19), "N", "The full PAN (13 to 19 digits), then ';'",
          error=ACCOUNT_NUMBER_ERROR),
    Field("expiry_date", 4, "N", "YYMM"),
    Field("service_code", 3, "N", "000 for CVV2, 999 for iCVV"),
)
_MAC_OPTIONS = (
    Field("mode_flag", 1, "N", "0: only block of a single-block message", values=("0",)),
    Field("input_format", 1, "N", "0 binary, 1 hex-encoded binary", values=("0", "1")),
    Field("mac_size", 1, "N", "0: 8 hex digits, 1: 16 hex digits", values=("0", "1")),
    Field("mac_algorithm", 1, "N", "3: ISO 9797-1 MAC algorithm 3 (retail MAC)", values=("3",)),
    Field("padding_method", 1, "N", "2: ISO 9797-1 padding method 2", values=("2",)),
    Field("key_type", 3, "H", "003 TAK or 008 ZAK (both a TAK here)", values=("003", "008"),
          error=INVALID_KEY_TYPE_CODE),
    _key("key", "The MAC key (TAK), double-length TDES"),
    Field("message_length", 4, "H", "Bytes in the message field as sent"),
    Field("message", CountedBy("message_length"), "B",
          "The message: bytes (input format 0) or hex digits (input format 1)"),
)
_MAC = Field("mac", SizedBy("mac_size", (("0", 8), ("1", 16))), "H", "The MAC (leftmost bytes)")
_IBM_REQUEST = (
    _key("pvk", "PVK (V0 or V1)"),
    Field("max_pin_length", 2, "N", "04 to 12", values=_PIN_LENGTHS, error=PIN_LENGTH_ERROR),
    _pin_block_field("pin_block", "The PIN block under the PIN key"),
    _format_field("format"),
    Field("check_length", 2, "N", "PIN (and offset) length, 04 to 12", values=_PIN_LENGTHS,
          error=PIN_LENGTH_ERROR),
    _ACCOUNT,
    Field("decimalization_table", 16, "N", "Clear decimalization table",
          error=DECIMALIZATION_TABLE_ERROR),
    Field("pin_validation_data", 12, "A",
          "Hex digits and one N, which becomes the last 5 account number digits"),
    Field("offset", 12, "H", "IBM offset, left-justified, padded with F"),
)
_PVV_REQUEST = (
    _key("pvk", "PVK (V0 or V2)"),
    _pin_block_field("pin_block", "The PIN block under the PIN key"),
    _format_field("format"),
    _ACCOUNT,
    Field("pvki", 1, "N", "PIN verification key index, 0 to 6"),
    Field("pvv", 4, "N", "The PVV on file"),
)
_TRANSLATE_RESPONSE = (
    Field("pin_length", 2, "N", "Always 00: the service does not report the PIN length"),
    _pin_block_field("destination_pin_block", "The PIN block under the destination ZPK"),
    Field("destination_format", 2, "N", "As in the request"),
)


def _translate_request(source: str, source_note: str) -> tuple[Field, ...]:
    return (
        _key(source, source_note),
        _key("destination_zpk", "Destination ZPK"),
        Field("max_pin_length", 2, "N", "04 to 12", values=_PIN_LENGTHS,
              error=PIN_LENGTH_ERROR),
        _pin_block_field("source_pin_block", "The PIN block under the source key"),
        _format_field("source_format"),
        _format_field("destination_format"),
        _ACCOUNT,
    )


_EXPORT = ("mode", ("1",))
_ATTRIBUTES = ("key_block_delimiter", ("#",))

_COMMANDS = (
    Command("NC", "Diagnostics", (), (
        Field("lmk_check_value", 16, "H", "LMK check value, right-padded with 0"),
        Field("firmware_number", 9, "A", "As configured (HostInfo.firmware)"),
    ), _diagnostics),
    Command("A0", "Generate a key", (
        Field("mode", 1, "H", "0 generate, 1 generate and export under a ZMK",
              values=("0", "1")),
        Field("key_type", 3, "H", "payShield key type code (see Key type codes)",
              values=tuple(KEY_TYPE_CODES), error=INVALID_KEY_TYPE_CODE),
        Field("key_scheme_lmk", 1, "A", "S: key block", values=("S",),
              error=INVALID_KEY_SCHEME),
        Field("zmk_delimiter", 1, "A", ";", values=(";",), when=_EXPORT),
        Field("zmk_flag", 1, "N", "0: a ZMK", values=("0",), when=_EXPORT),
        Field("zmk", KEY, "K", "The ZMK", when=_EXPORT),
        Field("key_scheme_zmk", 1, "A", "S: a TR-31 key block", values=("S",),
              when=_EXPORT, error=INVALID_KEY_SCHEME),
        Field("key_block_delimiter", 1, "A", "#: key block attributes follow",
              values=("#",), optional=True),
        Field("algorithm", 2, "A", "T2, T3, A1, A2, A3 (default T2; A3 for 00B)",
              values=tuple(KEY_ALGORITHM_CODES), when=_ATTRIBUTES, error=INCOMPATIBLE_KEY_LENGTH),
        Field("mode_of_use", 1, "A", "TR-31 mode of use (default: the key type's)",
              when=_ATTRIBUTES),
        Field("key_version_number", 2, "N", "00", values=("00",), when=_ATTRIBUTES),
        Field("exportability", 1, "A", "E, N or S (default: the key type's)",
              values=("E", "N", "S"), when=_ATTRIBUTES),
        Field("optional_blocks", 2, "N", "00", values=("00",), when=_ATTRIBUTES),
    ), (
        Field("key_under_lmk", KEY, "K", "S + the new key as a key block under the LMK"),
        Field("key_under_zmk", KEY, "K", "S + the new key as a TR-31 key block under the ZMK",
              when=_EXPORT),
        Field("kcv", 6, "H", "Key check value"),
    ), _generate_key, ("zmk_key_ref",), ("GenerateKey",)),
    Command("BU", "Generate a key check value", (
        Field("key_type_code", 2, "H", "Ignored for key blocks (FF)"),
        Field("key_length_flag", 1, "A", "Ignored for key blocks (F)"),
        _key("key", "Any key"),
    ), (
        Field("kcv", 6, "H", "Key check value"),
    ), _key_check_value, ("key_ref",), ("GetKey",)),
    Command("CA", "Translate a PIN block from a TPK to a ZPK",
            _translate_request("source_tpk", "Source TPK"), _TRANSLATE_RESPONSE,
            partial(_translate_pin, source="source_tpk"),
            ("source_zpk_key_ref", "destination_zpk_key_ref"), ("TranslatePin",)),
    Command("CC", "Translate a PIN block from one ZPK to another",
            _translate_request("source_zpk", "Source ZPK"), _TRANSLATE_RESPONSE,
            partial(_translate_pin, source="source_zpk"),
            ("source_zpk_key_ref", "destination_zpk_key_ref"), ("TranslatePin",)),
    Command("CW", "Generate a card verification value",
            (_key("cvk", "CVK A/B"), *_CARD),
            (Field("cvv", 3, "N", "The CVV"),),
            _generate_cvv, ("cvk_key_ref",), ("GenerateCvv",)),
    Command("CY", "Verify a card verification value",
            (_key("cvk", "CVK A/B"), Field("cvv", 3, "N", "The CVV to verify"), *_CARD), (),
            _verify_cvv, ("cvk_key_ref",), ("VerifyCvv",)),
    Command("DA", "Verify a terminal PIN by the IBM 3624 offset",
            (_key("tpk", "TPK the PIN block is under"), *_IBM_REQUEST), (),
            partial(_verify_pin_ibm, pin_key="tpk"), ("zpk_key_ref", "pvk_key_ref"),
            ("VerifyPin",)),
    Command("EA", "Verify an interchange PIN by the IBM 3624 offset",
            (_key("zpk", "ZPK the PIN block is under"), *_IBM_REQUEST), (),
            partial(_verify_pin_ibm, pin_key="zpk"), ("zpk_key_ref", "pvk_key_ref"),
            ("VerifyPin",)),
    Command("DC", "Verify a terminal PIN by the Visa PVV",
            (_key("tpk", "TPK the PIN block is under"), *_PVV_REQUEST), (),
            partial(_verify_pin_pvv, pin_key="tpk"), ("zpk_key_ref", "pvk_key_ref"),
            ("VerifyPin",)),
    Command("EC", "Verify an interchange PIN by the Visa PVV",
            (_key("zpk", "ZPK the PIN block is under"), *_PVV_REQUEST), (),
            partial(_verify_pin_pvv, pin_key="zpk"), ("zpk_key_ref", "pvk_key_ref"),
            ("VerifyPin",)),
    Command("KQ", "Verify an ARQC and generate an ARPC", (
        Field("mode", 1, "N", "0 verify the ARQC, 1 verify it and generate the ARPC",
              values=("0", "1")),
        Field("scheme_id", 1, "N", "0 Visa (CVN 10), 1 Mastercard (EMV session key)",
              values=tuple(KQ_SCHEMES)),
        _key("mk_ac", "Issuer master key for application cryptograms (IMK-AC)"),
        Field("pan_psn", 8, "B", "The rightmost 16 digits of the PAN then the PSN, BCD"),
        Field("atc", 2, "B", "Application transaction counter"),
        Field("un", 4, "B", "Unpredictable number (not used)"),
        Field("transaction_data_length", 2, "H", "01 to FF"),
        Field("transaction_data", CountedBy("transaction_data_length"), "B",
              "The data the card MACed (scheme 1: with its 80 00.. padding)"),
        Field("delimiter", 1, "A", ";", values=(";",)),
        Field("arqc", 8, "B", "The ARQC (or TC/AAC)"),
        Field("arc", 2, "B", "Authorization response code", when=("mode", ("1",))),
    ), (
        Field("arpc", 8, "B", "The ARPC (method 1)", when=("mode", ("1",))),
    ), _verify_arqc, ("imk_ac_key_ref",), ("VerifyArqc",)),
    Command("M6", "Generate a MAC", _MAC_OPTIONS, (_MAC,), _generate_mac, ("tak_key_ref",),
            ("GetKey", "GenerateMac")),
    Command("M8", "Verify a MAC", (*_MAC_OPTIONS, _MAC), (), _verify_mac, ("tak_key_ref",),
            ("GetKey", "VerifyMac")),
)
COMMANDS: Mapping[str, Command] = {command.code: command for command in _COMMANDS}


# --- parsing and formatting, following the table -----------------------------------------------


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def peek(self, count: int) -> bytes:
        return self.data[self.pos:self.pos + count]

    def take(self, count: int, spec: Field) -> bytes:
        if self.pos + count > len(self.data):
            left = len(self.data) - self.pos
            raise HostError(spec.error, f"{spec.name}: needs {count} characters, {left} left")
        value = self.data[self.pos:self.pos + count]
        self.pos += count
        return value

    def rest(self) -> bytes:
        return self.data[self.pos:]


def _applies(spec: Field, values: Mapping[str, str | bytes]) -> bool:
    if spec.when is None:
        return True
    name, allowed = spec.when
    return values.get(name) in allowed


def _read_key(cursor: _Cursor, spec: Field) -> bytes:
    scheme = cursor.peek(1)
    if scheme == b"S":
        size = cursor.peek(6)[2:6]
        if not size.isdigit():
            raise HostError(spec.error, f"{spec.name}: key block length (characters 2-5 of the "
                                        "block) must be 4 digits")
        return cursor.take(1 + int(size), spec)[1:]
    if scheme == b"L":
        size = cursor.peek(3)[1:3]
        if not size.isdigit():
            raise HostError(spec.error, f"{spec.name}: L must be followed by a 2-digit length")
        return cursor.take(3 + int(size), spec)[3:]
    raise HostError(INVALID_KEY_SCHEME, f"{spec.name}: key scheme {scheme!r} is not supported; "
                                        "use S (key block) or L (label)")


def _read(spec: Field, cursor: _Cursor, values: Mapping[str, str | bytes]) -> bytes:
    length = spec.length
    if isinstance(length, int):
        return cursor.take(length, spec)
    if isinstance(length, KeyField):
        return _read_key(cursor, spec)
    if isinstance(length, Delimited):
        end = cursor.rest().find(length.delimiter.encode(), 0, length.max_length + 1)
        if end < 0:
            raise HostError(spec.error, f"{spec.name}: at most {length.max_length} characters "
                                        f"then {length.delimiter!r}")
        value = cursor.take(end, spec)
        cursor.take(1, spec)
        return value
    if isinstance(length, CountedBy):
        return cursor.take(int(_text(values, length.field), 16), spec)
    return cursor.take(dict(length.lengths)[_text(values, length.field)], spec)


_PATTERNS = {"N": re.compile(r"[0-9]+"), "H": re.compile(r"[0-9A-Fa-f]+"),
             "A": re.compile(r"[ -~]+"), "K": re.compile(r"[ -~]+")}


def _checked(spec: Field, raw: bytes) -> str | bytes:
    if spec.format == "B":
        return raw
    text = raw.decode("latin-1")
    if not _PATTERNS[spec.format].fullmatch(text):
        raise HostError(spec.error, f"{spec.name}: must be {FORMATS[spec.format]}")
    if spec.values and text not in spec.values:
        raise HostError(spec.error, f"{spec.name}: not a supported value")
    return text


def parse(command: Command, body: bytes) -> tuple[Fields, bytes | None]:
    """The request fields after the command code, and the trailer (None when there is none)."""
    fields: Fields = {}
    cursor = _Cursor(body)
    for spec in command.request:
        if not _applies(spec, fields):
            continue
        if spec.optional and cursor.peek(len(spec.values[0])).decode("latin-1") not in spec.values:
            fields[spec.name] = ""
            continue
        fields[spec.name] = _checked(spec, _read(spec, cursor, fields))
    rest = cursor.rest()
    if not rest:
        return fields, None
    if rest[:1] != END_OF_MESSAGE or len(rest) - 1 > MAX_TRAILER:
        raise HostError(INVALID_INPUT, f"{len(rest)} unexpected bytes after the last field")
    return fields, rest[1:]


def format_response(command: Command, request: Fields, reply: Reply) -> bytes:
    """The response fields, in table order, from the handler's reply."""
    values = {**request, **reply}
    out = bytearray()
    for spec in command.response:
        if _applies(spec, values):
            value = reply[spec.name]
            out += value if isinstance(value, bytes) else value.encode("ascii")
    return bytes(out)


# --- errors ------------------------------------------------------------------------------------

_BY_KEY = "key"  # 10 for the command's first key, 11 for a later one
# A field violation from the service: the first rule whose pattern fullmatches the field.
VIOLATION_CODES: tuple[tuple[str, str], ...] = (
    (r".*_key_ref", _BY_KEY),
    (r"pan", ACCOUNT_NUMBER_ERROR),
    (r"pin_block", PIN_BLOCK_ERROR),
    (r".*format", PIN_BLOCK_FORMAT_ERROR),
    (r"pin|pin_length", PIN_LENGTH_ERROR),
    (r"decimalization_table", DECIMALIZATION_TABLE_ERROR),
    (r".*", INVALID_INPUT),
)
# A Conflict (the key exists but may not serve): the first rule whose pattern is in the message.
CONFLICT_CODES: tuple[tuple[str, str], ...] = (
    (r"does not unwrap|does not match its", _BY_KEY),
    (r"needs an? ", INVALID_KEY_TYPE),
    (r" is (TDES|AES|HMAC)\w*; ", INCOMPATIBLE_KEY_LENGTH),
    (r"", KEY_FUNCTION_NOT_PERMITTED),
)


def _key_error(field_name: str, key_refs: tuple[str, ...]) -> str:
    return DESTINATION_KEY_ERROR if field_name in key_refs[1:] else SOURCE_KEY_ERROR


def _resolve(code: str, field_name: str, key_refs: tuple[str, ...]) -> str:
    return _key_error(field_name, key_refs) if code == _BY_KEY else code


def error_code_for(exc: Exception, key_refs: tuple[str, ...] = ()) -> str:
    """The payShield error code for a failed command; ``key_refs`` as in :class:`Command`."""
    if isinstance(exc, HostError):
        return exc.code
    if isinstance(exc, errors.FieldViolations):
        name = exc.violations[0][0] if exc.violations else ""
        code = next(c for pattern, c in VIOLATION_CODES if re.fullmatch(pattern, name))
        return _resolve(code, name, key_refs)
    name = str(exc).partition(":")[0]
    if isinstance(exc, errors.NotFound):
        return _key_error(name, key_refs)
    if isinstance(exc, errors.Conflict):
        code = next(c for pattern, c in CONFLICT_CODES if re.search(pattern, str(exc)))
        return _resolve(code, name, key_refs)
    if isinstance(exc, errors.AlreadyExists):
        return INVALID_INPUT
    return INTERNAL_ERROR


def scrubbed(text: str) -> str:
    """``text`` fit for a log: PANs masked, long letter-digit runs (keys, PIN blocks) redacted."""
    return _LONG_TOKEN.sub("<redacted>", mask_pans_in(text))


# --- the TCP server ----------------------------------------------------------------------------


def frame(message: bytes) -> bytes:
    """``message`` with its 2-byte big-endian length prefix."""
    if len(message) > MAX_FRAME:
        raise ValueError(f"message: at most {MAX_FRAME} bytes, got {len(message)}")
    return len(message).to_bytes(2, "big") + message


class HostInterface:
    """Serves :data:`COMMANDS` over TCP for ``servicer`` (an object with the ``HsmServicer``
    methods); responses to requests pipelined on one connection come back in order."""

    def __init__(self, servicer: object, info: HostInfo, header_length: int = 4) -> None:
        if not 0 <= header_length <= 255:
            raise ValueError(f"header_length: must be 0 to 255, got {header_length}")
        self._hsm = _Hsm(servicer, info)
        self._header_length = header_length
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Starts listening on ``host:port`` (0 picks a free port); returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stops listening and closes every open connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def handle(self, message: bytes) -> bytes:
        """The response to one message (both without their length prefix); never raises."""
        header = message[:self._header_length]
        raw_code = message[self._header_length:self._header_length + 2]
        if not _CODE.fullmatch(raw_code):
            log.info("host message of %d bytes has no readable command code", len(message))
            return header + (UNREADABLE_CODE + INVALID_INPUT).encode()
        command = COMMANDS.get(raw_code.decode())
        if command is None:
            log.info("host command %s is not supported", raw_code.decode())
            return header + (response_code_for(raw_code.decode()) + COMMAND_DISABLED).encode()
        started = time.perf_counter()
        trailer: bytes | None = None
        try:
            fields, trailer = parse(command, message[self._header_length + 2:])
            payload = format_response(command, fields, await command.handler(self._hsm, fields))
            error = NO_ERROR
        except Exception as exc:  # every failure is an error code, never a dropped connection
            error, payload = error_code_for(exc, command.key_refs), b""
            self._log_failure(command, error, exc)
        log.debug("host command %s -> %s %s in %.1f ms", command.code, command.response_code,
                  error, 1000 * (time.perf_counter() - started))
        tail = END_OF_MESSAGE + trailer if trailer is not None else b""
        return header + (command.response_code + error).encode() + payload + tail

    @staticmethod
    def _log_failure(command: Command, error: str, exc: Exception) -> None:
        if error == VERIFICATION_FAILURE:
            return
        reason = exc.reason if isinstance(exc, HostError) else scrubbed(str(exc))
        level = logging.ERROR if error == INTERNAL_ERROR else logging.INFO
        log.log(level, "host command %s failed with %s (%s): %s", command.code, error,
                type(exc).__name__, reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                message = await reader.readexactly(size)
                writer.write(frame(await self.handle(message)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection, perhaps mid-frame: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


# --- the documented layouts --------------------------------------------------------------------


def _length_text(length: Length) -> str:
    if isinstance(length, int):
        return str(length)
    if isinstance(length, KeyField):
        return "var"
    if isinstance(length, Delimited):
        return f"≤ {length.max_length} + 1"
    if isinstance(length, CountedBy):
        return f"`{length.field}`"
    return " or ".join(str(n) for _, n in length.lengths)


def _values_text(values: tuple[str, ...]) -> str:
    if len(values) > 4 and all(v.isdigit() for v in values):
        return f"{values[0]} to {values[-1]}"
    return ", ".join(values)


def layout_table(fields: tuple[Field, ...]) -> str:
    """A Markdown table of ``fields``: field, length, format and notes (as the doc shows)."""
    rows = ["| Field | Length | Format | Notes |", "|---|---|---|---|"]
    for spec in fields:
        notes = spec.notes
        if spec.when is not None:
            notes = f"Only when `{spec.when[0]}` is {' or '.join(spec.when[1])}. {notes}"
        if spec.optional:
            notes = f"Optional. {notes}"
        if spec.values and len(spec.values) > 1 and spec.values[0] not in notes:
            notes += f" (one of {_values_text(spec.values)})"
        if spec.error != INVALID_INPUT:
            notes += f"; else error {spec.error}"
        rows.append(f"| `{spec.name}` | {_length_text(spec.length)} | {spec.format} | "
                    f"{notes} |")
    return "\n".join(rows)
