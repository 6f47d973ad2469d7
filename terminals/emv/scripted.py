"""A card that answers from a script: a :class:`~terminals.emv.apdu.CardLink` for kernel tests.

Each command APDU is answered by the entry whose key is the longest prefix of it (keys in hex,
spaces ignored), so ``"80AE80"`` answers every GENERATE AC asking for an ARQC whatever its data.
An answer is hex ``data || SW``, a list of them given out in turn (the last one repeats), or
:data:`REMOVED` to have the card leave the reader. Unknown commands get 6D00.

>>> card = ScriptedCard({"00A40400": "6F00 9000", "80CA9F17": ["9F170102 9000", "6A88"]})
>>> card.transmit(bytes.fromhex("00A404000E315041592E5359532E4444463031")).hex().upper()
'6F009000'
>>> [card.transmit(bytes.fromhex("80CA9F1700")).hex().upper() for _ in range(3)]
['9F1701029000', '6A88', '6A88']
"""

from __future__ import annotations

from collections.abc import Mapping

from terminals.emv.apdu import CardRemoved

REMOVED = "removed"
INSTRUCTION_NOT_SUPPORTED = bytes.fromhex("6D00")


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class ScriptedCard:
    """Answers APDUs by prefix; keeps every command it received in :attr:`received`."""

    def __init__(self, script: Mapping[str, str | list[str]]) -> None:
        self._script: dict[bytes, list[str]] = {
            _hex(key): list(value) if isinstance(value, list) else [value]
            for key, value in script.items()
        }
        self.received: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.received.append(apdu)
        matches = [key for key in self._script if apdu.startswith(key)]
        if not matches:
            return INSTRUCTION_NOT_SUPPORTED
        answers = self._script[max(matches, key=len)]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer == REMOVED:
            raise CardRemoved("scripted card left the reader")
        return _hex(answer)

    def commands(self, prefix: str) -> list[bytes]:
        """The commands received that start with ``prefix`` (hex)."""
        wanted = _hex(prefix)
        return [apdu for apdu in self.received if apdu.startswith(wanted)]
