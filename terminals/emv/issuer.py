"""Online processing's card side: issuer authentication and issuer scripts (EMV Book 3 10.9,
10.10; Book 4 A5).

The issuer's DE 55 may carry issuer authentication data 91 (the ARPC and its response code or
card status update) and scripts: templates 71, run before the second GENERATE AC, and 72, run
after it. A script is an optional identifier 9F18 and commands 86, each sent to the card as it
is; a status other than 90xx, 62xx or 63xx stops that script. Each script's result is 5 bytes
(9F5B): status and failing command number in byte 1, the script identifier in bytes 2-5.

>>> ScriptResult(0x71, bytes.fromhex("00000001"), "failed", failed_command=2, commands=2
...              ).to_bytes().hex().upper()
'1200000001'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cardswitch.tlv import Tlv, decode, parse_dol
from terminals.emv import apdu
from terminals.emv.session import Session

AIP_ISSUER_AUTHENTICATION = 0x04
BEFORE_FINAL_GENERATE_AC, AFTER_FINAL_GENERATE_AC = 0x71, 0x72
ScriptStatus = Literal["not performed", "failed", "performed"]
_STATUS_NIBBLE: Mapping[ScriptStatus, int] = {"not performed": 0, "failed": 1, "performed": 2}
_FAILED_BIT = {BEFORE_FINAL_GENERATE_AC: "script processing failed before final GENERATE AC",
               AFTER_FINAL_GENERATE_AC: "script processing failed after final GENERATE AC"}


@dataclass(frozen=True)
class ScriptResult:
    """How one issuer script went."""

    template: int
    script_id: bytes
    status: ScriptStatus
    #: 1-based number of the command that failed; 0 when none did or the script did not parse.
    failed_command: int = 0
    commands: int = 0

    def to_bytes(self) -> bytes:
        """The script's entry in the issuer script results 9F5B."""
        sequence = min(self.failed_command, 0x0F)
        return bytes([_STATUS_NIBBLE[self.status] << 4 | sequence]) + self.script_id


@dataclass(frozen=True)
class IssuerData:
    """The issuer's DE 55, taken apart."""

    authentication: bytes | None
    scripts: tuple[Tlv, ...]

    @classmethod
    def parse(cls, data: bytes) -> IssuerData:
        """``ValueError`` when DE 55 is not BER-TLV."""
        objects = decode(data)
        authentication = next((o.value for o in objects if o.tag == 0x91), None)
        scripts = tuple(o for o in objects if o.tag in _FAILED_BIT)
        return cls(authentication, scripts)


def authenticate(session: Session, issuer: IssuerData) -> None:
    """Issuer authentication (Book 3 10.9): the card checks 91 in the second GENERATE AC when
    its CDOL2 lists 91, else by EXTERNAL AUTHENTICATE if its AIP says it does issuer
    authentication. A failure only sets the TVR; the card weighs it in its final decision."""
    if issuer.authentication is None:
        return
    if any(tag == 0x91 for tag, _ in parse_dol(session.card.get(0x8D, b""))):
        session.terminal[0x91] = issuer.authentication
        session.tsi.set("issuer authentication was performed")
        session.log("ISSUER AUTHENTICATION", "in the second GENERATE AC")
        return
    if not session.aip[0] & AIP_ISSUER_AUTHENTICATION:
        session.log("ISSUER AUTHENTICATION", "not supported by the card")
        return
    session.tsi.set("issuer authentication was performed")
    response = session.send("EXTERNAL AUTHENTICATE",
                            apdu.external_authenticate(issuer.authentication))
    if not response.ok:
        session.tvr.set("issuer authentication failed")
        session.log("ISSUER AUTHENTICATION", "failed")
    else:
        session.log("ISSUER AUTHENTICATION", "ok")


def run_scripts(session: Session, issuer: IssuerData, template: int) -> list[ScriptResult]:
    """Runs every script of one template kind (71 or 72), in the order the issuer sent them."""
    return [_run_script(session, script, template) for script in issuer.scripts
            if script.tag == template]


def _run_script(session: Session, script: Tlv, template: int) -> ScriptResult:
    try:
        objects = decode(script.value)
    except ValueError:
        objects = []
    script_id = next((o.value for o in objects if o.tag == 0x9F18 and len(o.value) == 4),
                     bytes(4))
    commands = [o.value for o in objects if o.tag == 0x86]
    if not commands or any(o.tag not in (0x9F18, 0x86) for o in objects):
        return _failed(session, template, script_id, 0, 0)
    session.tsi.set("script processing was performed")
    for number, command in enumerate(commands, start=1):
        response = session.send(f"SCRIPT {template:X} command {number}", command)
        if not (response.ok or response.warning or response.sw >> 8 == 0x90):
            return _failed(session, template, script_id, number, number)
    return ScriptResult(template, script_id, "performed", 0, len(commands))


def _failed(session: Session, template: int, script_id: bytes, number: int,
            sent: int) -> ScriptResult:
    session.tvr.set(_FAILED_BIT[template])
    session.log(f"SCRIPT {template:X}", f"failed at command {number}" if number else "malformed")
    return ScriptResult(template, script_id, "failed", number, sent)
