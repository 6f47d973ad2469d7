"""The card file: what the issuer simulator personalises onto each test card.

``cardswitch issuer seed`` writes it (``$CARDSWITCH_VAR/issuer/cards.json``, mode 0600) and the
terminal simulator reads it: PAN, PIN, expiry, CVV2 and track 2 per card, as a card's plastic
and magnetic stripe would carry them. Development data only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class EmbossedCard:
    """One card as personalised: the embossing and the magnetic stripe."""

    account_id: str
    pan: str
    brand: str
    pin: str
    expiry_yymm: str
    service_code: str
    cvv2: str
    track2: str

    def __repr__(self) -> str:  # never print a clear PAN or PIN by accident
        return f"EmbossedCard(account_id={self.account_id!r}, brand={self.brand!r})"


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EmbossedCard))
