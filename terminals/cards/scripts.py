"""Issuer script commands and their secure messaging (EMV Book 3 6.5, Book 2 9.2, format 1).

The issuer sends commands the card runs after its online answer: APPLICATION BLOCK (84 1E),
APPLICATION UNBLOCK (84 18) and PIN CHANGE/UNBLOCK (84 24, P2 00: reset the PIN try counter).
Each carries a MAC as the last 8 bytes of its data (or all 4 when Lc is 4). The MAC is ISO 9797-1
MAC algorithm 3 with padding method 2 under the transaction's secure-messaging integrity session
key, ``secure_messaging_keys(ICC MK SMI, ICC MK SMC, AC).integrity``, over

    CLA INS P1 P2 Lc || ATC || AC || command data without the MAC

with Lc as sent, where AC is the transaction's first cryptogram: its ARQC (or, on a blocked
application, the AAC it answered, so the issuer can still unblock it). The issuer builds the same
bytes from the ARQC and ATC of the authorisation.

>>> from terminals.cards.commands import parse
>>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
>>> atc, arqc = bytes.fromhex("0001"), bytes.fromhex("1234567890ABCDEF")
>>> mac = emv.script_mac(key, mac_input(bytes.fromhex("841E000008"), atc, arqc, b""))
>>> command = bytes.fromhex("841E000008") + mac
>>> check_mac(parse(command), key, atc, arqc)
b''
"""

from __future__ import annotations

import hmac

from hsm_sim.algorithms import emv
from terminals.cards.commands import (
    SW_SM_DATA_INCORRECT,
    SW_WRONG_LENGTH,
    Command,
    StatusError,
)

MAC_LENGTHS = (4, 8)


def mac_input(header: bytes, atc: bytes, arqc: bytes, data: bytes) -> bytes:
    """The bytes a script command's MAC covers; ``header`` is CLA INS P1 P2 Lc as sent."""
    return header + atc + arqc + data


def check_mac(command: Command, integrity_key: bytes, atc: bytes, arqc: bytes) -> bytes:
    """The command data without its MAC, once the MAC is right.

    Raises :class:`StatusError` 6700 when the data cannot hold a MAC, 6988 when it is wrong.
    """
    lc = len(command.data)
    if lc not in MAC_LENGTHS and lc < 8:
        raise StatusError(SW_WRONG_LENGTH)
    mac_length = 4 if lc == 4 else 8
    data, mac = command.data[:-mac_length], command.data[-mac_length:]
    header = bytes([command.cla, command.ins, command.p1, command.p2, lc])
    expected = emv.script_mac(integrity_key, mac_input(header, atc, arqc, data), mac_length)
    if not hmac.compare_digest(expected, mac):
        raise StatusError(SW_SM_DATA_INCORRECT)
    return data
