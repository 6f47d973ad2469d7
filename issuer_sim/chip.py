"""The issuer's side of a chip transaction: ARQC, ATC replay, ARPC and issuer scripts.

A chip authorisation carries the card's cryptogram in DE 55 and its PAN sequence number in
DE 23. The issuer

1. rebuilds the data the card MACed (:mod:`cardswitch.emv`: the cryptogram version the card
   names in 9F10 says which) and asks the HSM to verify the ARQC (``VerifyArqc``); a wrong one
   is declined 82 "ARQC wrong" and gets no ARPC;
2. takes the ATC forward, atomically: a cryptogram whose ATC is not above the last one this
   card sent is a replay, declined 82 "ATC replayed";
3. answers, approved or declined, with issuer authentication data 91 that the card checks:
   ARPC method 1 ``ARPC(8) || ARC(2)`` with the response code as ARC, or method 2
   ``ARPC(4) || CSU(4)``, and with an issuer script in template 72 when one is due: an
   APPLICATION BLOCK for a card whose account is no longer active, or the script queued on the
   account (``pending_script``).

Script commands use secure messaging format 1, their MAC made by the HSM
(``GenerateScriptMac``) under the card's SMI session key.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, or_, update

from cardswitch import emv, tlv
from cardswitch.cards import brand_of
from cardswitch.iso8583 import Message
from cardswitch.v1 import hsm_pb2
from issuer_sim.models import STATUS_ACTIVE, Account

log = logging.getLogger(__name__)

IMK_AC_REF = "imk-ac-issuer"
IMK_SMI_REF = "imk-smi-issuer"
IMK_SMC_REF = "imk-smc-issuer"

#: Issuer scripts by name: the command header (CLA INS P1 P2) and its data before the MAC.
SCRIPTS: dict[str, tuple[bytes, bytes]] = {
    "application_block": (bytes.fromhex("841E0000"), b""),
    "application_unblock": (bytes.fromhex("84180000"), b""),
    "pin_unblock": (bytes.fromhex("84240000"), b""),
}
SCRIPT_MAC_LENGTH = 8
#: Card status update for ARPC method 2 (Visa CVN 18): byte 2 bit 8 set when approved.
CSU_APPROVED = bytes.fromhex("00800000")
CSU_DECLINED = bytes(4)
_script_ids = itertools.count(1)


class ChipDataError(ValueError):
    """DE 55 or DE 23 cannot be read; the message names the field and the problem."""


@dataclass(frozen=True)
class ChipRequest:
    """The chip data of one authorisation, read from DE 55 and DE 23."""

    psn: str
    values: dict[int, bytes]
    version: emv.CryptogramVersion
    atc: int

    @property
    def arqc(self) -> bytes:
        return self.values[0x9F26]


def parse(message: Message, pan: str) -> ChipRequest | None:
    """The chip data of ``message``, or None when it carries no DE 55."""
    raw = message.get("55")
    if not raw:
        return None
    try:
        values = tlv.flatten(bytes.fromhex(raw))
    except ValueError as exc:
        raise ChipDataError(f"DE 55: {exc}") from None
    for tag, size in ((0x9F26, 8), (0x9F36, 2), (0x9F27, 1)):
        if len(values.get(tag, b"")) != size:
            raise ChipDataError(f"DE 55: tag {tlv.tag_hex(tag)} must be {size} bytes")
    if 0x9F10 not in values:
        raise ChipDataError("DE 55: tag 9F10 (issuer application data) is missing")
    try:
        version = emv.version_of(brand_of(pan), values[0x9F10])
        version.ac_data(values)
    except ValueError as exc:
        raise ChipDataError(f"DE 55: {exc}") from None
    psn = message.get("23", "000")[-2:]
    if not psn.isdigit():
        raise ChipDataError("DE 23: PAN sequence number must be digits")
    return ChipRequest(psn=psn, values=values, version=version,
                       atc=int.from_bytes(values[0x9F36], "big"))


class ChipIssuer:
    """Verifies cryptograms and builds the issuer's chip answer, through the HSM.

    ``hsm`` is the issuer's :class:`~issuer_sim.processing.GrpcHsm`: its ``call`` puts the
    deadline on every call and turns an HSM that is down into ``HsmUnavailable`` (answer 91).
    """

    def __init__(self, hsm: Any) -> None:
        self._hsm = hsm

    def _verify_request(self, pan: str, chip: ChipRequest,
                        code: str) -> hsm_pb2.VerifyArqcRequest:
        version = chip.version
        request = hsm_pb2.VerifyArqcRequest(
            imk_ac_key_ref=IMK_AC_REF, pan=pan, psn=chip.psn,
            cryptogram_version=f"CRYPTOGRAM_VERSION_{version.hsm_version}",
            atc=chip.values[0x9F36], transaction_data=version.ac_data(chip.values),
            arqc=chip.arqc)
        if version.arpc_method == 1:
            request.arc = code.encode()
        else:
            request.csu = CSU_APPROVED if code == "00" else CSU_DECLINED
        return request

    async def verify(self, pan: str, chip: ChipRequest, code: str = "00") -> bytes | None:
        """The issuer authentication data 91 for answer ``code``, or None for a wrong ARQC."""
        response = await self._hsm.call(self._hsm.stub.VerifyArqc,
                                        self._verify_request(pan, chip, code))
        if not response.verified:
            return None
        if chip.version.arpc_method == 1:
            return bytes(response.arpc) + code.encode()
        return bytes(response.arpc) + (CSU_APPROVED if code == "00" else CSU_DECLINED)

    async def script(self, pan: str, chip: ChipRequest, name: str) -> bytes:
        """Template 72 holding one script command with its MAC."""
        header, data = SCRIPTS[name]
        response = await self._hsm.call(self._hsm.stub.GenerateScriptMac,
                                        hsm_pb2.GenerateScriptMacRequest(
            imk_smi_key_ref=IMK_SMI_REF, pan=pan, psn=chip.psn, atc=chip.values[0x9F36],
            arqc=chip.arqc, command_header=header, command_data=data,
            mac_length=SCRIPT_MAC_LENGTH))
        body = data + bytes(response.mac)
        command = header + bytes([len(body)]) + body
        script_id = next(_script_ids).to_bytes(4, "big")
        return tlv.encode(0x72, tlv.encode(0x9F18, script_id) + tlv.encode(0x86, command))

    async def answer(self, pan: str, chip: ChipRequest, code: str, issuer_data: bytes,
                     script: str | None) -> bytes:
        """DE 55 of the response: 91 for the final ``code``, then the script, if any."""
        if code != "00":
            issuer_data = await self.verify(pan, chip, code) or issuer_data
        out = tlv.encode(0x91, issuer_data)
        if script:
            out += await self.script(pan, chip, script)
        return out


def due_script(account: Account) -> str | None:
    """The script this card's next online transaction should carry."""
    if account.status != STATUS_ACTIVE:
        return "application_block"
    return account.pending_script


def advance_atc(engine: Engine, account_id: str, atc: int) -> bool:
    """Moves the card's last ATC to ``atc`` if it is higher; False means a replayed ATC.

    One conditional UPDATE: two requests racing with the same cryptogram cannot both pass.
    """
    statement = (update(Account)
                 .where(Account.account_id == account_id,
                        or_(Account.last_atc.is_(None), Account.last_atc < atc))
                 .values(last_atc=atc))
    with engine.begin() as conn:
        return bool(conn.execute(statement).rowcount)


def clear_script(engine: Engine, account_id: str, script: str) -> None:
    """Forgets a queued script once it has left in a response."""
    with engine.begin() as conn:
        conn.execute(update(Account).where(Account.account_id == account_id,
                                           Account.pending_script == script)
                     .values(pending_script=None))
