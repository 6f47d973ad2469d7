"""A per-process cache of what the HSM said about a card, that holds no PAN.

Entries are keyed by HMAC-SHA256 of the PAN under a random secret made when the process starts,
so the cache holds nothing a memory dump could map back to a card once the process is gone, and
nothing ever reaches a disk. Used for answers that never change for a card (its PAN token, its
ciphertext), so a returning card costs no HSM round trip.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Generic, TypeVar

V = TypeVar("V")


class CardCache(Generic[V]):
    def __init__(self, max_entries: int = 100_000) -> None:
        self._secret = secrets.token_bytes(32)
        self._entries: dict[bytes, V] = {}
        self._max = max_entries

    def _key(self, pan: str) -> bytes:
        return hmac.digest(self._secret, pan.encode(), "sha256")

    def get(self, pan: str) -> V | None:
        return self._entries.get(self._key(pan))

    def put(self, pan: str, value: V) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[self._key(pan)] = value

    def __len__(self) -> int:
        return len(self._entries)
