"""Virtual EMV cards for the terminal simulator: personalised profile and sealed secrets
(:mod:`~terminals.cards.profile`), persistent counters (:mod:`~terminals.cards.state`), the card
application answering APDUs (:mod:`~terminals.cards.applet`) and its connection to a vpcd
reader slot of pcscd (:mod:`~terminals.cards.vicc`).

>>> from terminals.cards import CardProfile
>>> CardProfile("visa", "4761739001010010", "01", "301231", "240101", "201", "CARD/TEST",
...             "0840", "0840").cvn_value
10
"""

from terminals.cards.applet import EmvCard
from terminals.cards.profile import CardProfile, CardSecrets, read_card, records, write_card
from terminals.cards.state import CardState, state_path
from terminals.cards.vicc import VirtualCardSocket

__all__ = [
    "CardProfile",
    "CardSecrets",
    "CardState",
    "EmvCard",
    "VirtualCardSocket",
    "read_card",
    "records",
    "state_path",
    "write_card",
]
