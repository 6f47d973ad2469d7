"""The HSM's EMV issuance commands: ICC master keys for card personalisation, issuer script MACs.

:class:`hsm_sim.service.HsmServicer` answers ``DeriveIccKeys`` and ``GenerateScriptMac`` with the
functions here, handing them its key lookup (which checks each key against its :class:`Need`
and records it for the audit log). A card key exists in clear only inside these calls: it leaves
under the personalisation ZMK or not at all.

The script MAC input (EMV 4.3 Book 2 9.2.1, secure messaging format 1; the card rebuilds it from
the command it receives and the ATC and ARQC of the transaction)::

    CLA INS P1 P2 || Lc || ATC (2) || ARQC (8) || command data

with Lc = len(command data) + MAC length: the Lc of the command as sent, MAC included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from cardswitch.v1 import hsm_pb2
from hsm_sim import keystore
from hsm_sim.algorithms import emv
from hsm_sim.checks import Violations
from hsm_sim.usage import (
    ICC_AC_DERIVE,
    ICC_MASTER_KEYS,
    ICC_SMC_DERIVE,
    ICC_SMI_DERIVE,
    KEK_WRAP,
    SCRIPT_MAC,
    Need,
)

log = logging.getLogger(__name__)

#: ``fetch(field, key_ref, need, command)``: the key named, if it fits ``need``.
KeyFetch = Callable[[str, str, Need, str], Awaitable[keystore.Key]]

#: Request field of each issuer master key, what it needs, and the response field of its ICC key.
ICC_KEY_FIELDS = (("imk_ac_key_ref", ICC_AC_DERIVE, "icc_ac"),
                  ("imk_smi_key_ref", ICC_SMI_DERIVE, "icc_smi"),
                  ("imk_smc_key_ref", ICC_SMC_DERIVE, "icc_smc"))
SCRIPT_MAC_LENGTHS = (4, 8)
DEFAULT_SCRIPT_MAC_LENGTH = 8
#: Script command data without its MAC; with an 8-byte MAC, Lc (one byte) is at most 247.
MAX_SCRIPT_DATA = 239
COMMAND_HEADER_LENGTH = 4
NO_PSN = "00"


async def derive_icc_keys(request: hsm_pb2.DeriveIccKeysRequest, fetch: KeyFetch,
                          store: keystore.KeyStore) -> hsm_pb2.DeriveIccKeysResponse:
    """A card's ICC master keys (EMV Book 2 A1.4.1 option A, as VerifyArqc derives them), each
    as a key block under the ZMK with its check value."""
    v = Violations()
    for field, _, _ in ICC_KEY_FIELDS:
        v.key_ref(field, getattr(request, field))
    v.pan("pan", request.pan)
    v.digits("psn", request.psn or NO_PSN, 2, 2)
    v.key_ref("zmk_key_ref", request.zmk_key_ref)
    v.check()
    imks = [await fetch(field, getattr(request, field), need, "DeriveIccKeys")
            for field, need, _ in ICC_KEY_FIELDS]
    zmk = await fetch("zmk_key_ref", request.zmk_key_ref, KEK_WRAP, "DeriveIccKeys")
    response = hsm_pb2.DeriveIccKeysResponse()
    for imk, (_, _, output) in zip(imks, ICC_KEY_FIELDS, strict=True):
        clear = emv.icc_master_key_a(imk.clear, request.pan, request.psn or NO_PSN)
        icc_key = store.new_key(ICC_MASTER_KEYS[imk.key_type], clear)
        # A double-length TDES key goes under any ZMK this HSM holds (TDES or AES, 16+ bytes).
        getattr(response, output).CopyFrom(hsm_pb2.ExportedIccKey(
            key_block=store.export_block(icc_key, zmk), check_value=icc_key.kcv))
    log.info("derived ICC master keys (KCV AC %s, SMI %s, SMC %s) under ZMK %s (KCV %s)",
             response.icc_ac.check_value, response.icc_smi.check_value,
             response.icc_smc.check_value, zmk.name, zmk.kcv)
    return response


def script_mac_input(command_header: bytes, atc: bytes, arqc: bytes, command_data: bytes,
                     mac_length: int) -> bytes:
    """What the issuer script MAC covers: header || Lc || ATC || ARQC || data (module docstring).

    >>> script_mac_input(bytes.fromhex("84240000"), bytes.fromhex("001C"),
    ...                  bytes.fromhex("1234567890ABCDEF"), b"", 8).hex().upper()
    '8424000008001C1234567890ABCDEF'
    """
    lc = len(command_data) + mac_length
    return command_header + bytes([lc]) + atc + arqc + command_data


async def generate_script_mac(request: hsm_pb2.GenerateScriptMacRequest,
                              fetch: KeyFetch) -> hsm_pb2.GenerateScriptMacResponse:
    """The MAC of an issuer script command under the card's SMI session key (R = the ARQC)."""
    v = Violations()
    v.key_ref("imk_smi_key_ref", request.imk_smi_key_ref)
    v.pan("pan", request.pan)
    v.digits("psn", request.psn or NO_PSN, 2, 2)
    v.length("atc", request.atc, 2)
    v.length("arqc", request.arqc, 8)
    v.length("command_header", request.command_header, COMMAND_HEADER_LENGTH)
    if len(request.command_data) > MAX_SCRIPT_DATA:
        v.add("command_data", f"must be at most {MAX_SCRIPT_DATA} bytes, got "
                              f"{len(request.command_data)}")
    mac_length = request.mac_length or DEFAULT_SCRIPT_MAC_LENGTH
    if mac_length not in SCRIPT_MAC_LENGTHS:
        v.add("mac_length", f"must be 4 or 8 bytes, got {mac_length}")
    v.check()
    imk = await fetch("imk_smi_key_ref", request.imk_smi_key_ref, SCRIPT_MAC,
                      "GenerateScriptMac")
    icc_smi = emv.icc_master_key_a(imk.clear, request.pan, request.psn or NO_PSN)
    session_key = emv.derive_session_key(icc_smi, request.arqc)
    data = script_mac_input(request.command_header, request.atc, request.arqc,
                            request.command_data, mac_length)
    return hsm_pb2.GenerateScriptMacResponse(mac=emv.script_mac(session_key, data, mac_length))
