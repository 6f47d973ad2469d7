"""Command APDUs as the card receives them (ISO/IEC 7816-4 5.1, EMV Book 1 11) and its status words.

A command is ``CLA INS P1 P2 [Lc data] [Le]``, short lengths only: the four cases are 4 bytes
(no data, no Le), 5 bytes (Le), ``5 + Lc`` (data) and ``6 + Lc`` (data and Le). Anything else
(extended lengths, Lc 00, a length that does not add up) is refused with 6700.

>>> parse(bytes.fromhex("00A4040007A000000003101000"))
Command(cla=0, ins=164, p1=4, p2=0, data=b'\\xa0\\x00\\x00\\x00\\x03\\x10\\x10', le=0)
"""

from __future__ import annotations

from dataclasses import dataclass

SW_OK = 0x9000
SW_SELECTED_FILE_INVALIDATED = 0x6283
SW_VERIFICATION_FAILED = 0x6300
SW_PIN_TRIES_LEFT = 0x63C0  # | tries left
SW_WRONG_LENGTH = 0x6700
SW_AUTH_METHOD_BLOCKED = 0x6983
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_SM_DATA_INCORRECT = 0x6988
SW_WRONG_DATA = 0x6A80
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_DATA_NOT_FOUND = 0x6A88
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_NO_PRECISE_DIAGNOSIS = 0x6F00

CLA_ISO, CLA_PROPRIETARY, CLA_SECURE_MESSAGING = 0x00, 0x80, 0x84

#: The commands the card knows: INS to (name, the one CLA it takes).
COMMANDS: dict[int, tuple[str, int]] = {
    0xA4: ("SELECT", CLA_ISO),
    0xB2: ("READ RECORD", CLA_ISO),
    0x20: ("VERIFY", CLA_ISO),
    0x88: ("INTERNAL AUTHENTICATE", CLA_ISO),
    0x82: ("EXTERNAL AUTHENTICATE", CLA_ISO),
    0xA8: ("GET PROCESSING OPTIONS", CLA_PROPRIETARY),
    0xAE: ("GENERATE AC", CLA_PROPRIETARY),
    0xCA: ("GET DATA", CLA_PROPRIETARY),
    0x1E: ("APPLICATION BLOCK", CLA_SECURE_MESSAGING),
    0x18: ("APPLICATION UNBLOCK", CLA_SECURE_MESSAGING),
    0x24: ("PIN CHANGE/UNBLOCK", CLA_SECURE_MESSAGING),
}


def ins_name(apdu: bytes) -> str:
    """The command's name for a log line (never its data).

    >>> ins_name(bytes.fromhex("80AE800000")), ins_name(b"\\x00\\x99"), ins_name(b"")
    ('GENERATE AC', 'INS 99', 'short APDU')
    """
    if len(apdu) < 2:
        return "short APDU"
    known = COMMANDS.get(apdu[1])
    return known[0] if known else f"INS {apdu[1]:02X}"


class StatusError(Exception):
    """A command the card refuses: the status word it answers with."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"SW {sw:04X}")
        self.sw = sw


@dataclass(frozen=True)
class Command:
    """One parsed command APDU; ``le`` is None when the command carried no Le."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None

    def expect_p1p2(self, p1: int = 0, p2: int = 0) -> None:
        """Refuse with 6A86 unless P1 and P2 are as given."""
        if (self.p1, self.p2) != (p1, p2):
            raise StatusError(SW_WRONG_P1P2)

    def expect_length(self, *lengths: int) -> None:
        """Refuse with 6700 unless the data is one of ``lengths`` bytes long."""
        if len(self.data) not in lengths:
            raise StatusError(SW_WRONG_LENGTH)


def parse(apdu: bytes) -> Command:
    """Split a short command APDU into its fields; 6700 when its lengths do not add up."""
    if len(apdu) < 4:
        raise StatusError(SW_WRONG_LENGTH)
    cla, ins, p1, p2 = apdu[:4]
    if len(apdu) == 4:
        return Command(cla, ins, p1, p2, b"", None)
    if len(apdu) == 5:
        return Command(cla, ins, p1, p2, b"", apdu[4])
    lc = apdu[4]
    if lc == 0 or len(apdu) not in (5 + lc, 6 + lc):
        raise StatusError(SW_WRONG_LENGTH)
    le = apdu[5 + lc] if len(apdu) == 6 + lc else None
    return Command(cla, ins, p1, p2, apdu[5 : 5 + lc], le)


def respond(data: bytes, sw: int = SW_OK) -> bytes:
    """A response APDU: ``data || SW1 SW2``."""
    return data + sw.to_bytes(2, "big")
