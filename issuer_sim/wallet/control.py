"""Test control of the wallet provider: injected faults and what it has seen.

Faults (``POST /control/faults`` with any subset of the fields, JSON):

- ``forge_notification_signature``: sign notifications with a key that is not the provider's;
- ``forge_answer_signature``: sign API answers with a key that is not the provider's;
- ``delay_ms``: wait this long before handling each API request;
- ``fail_http_500_next``: answer the next n API requests with HTTP 500, without handling them;
- ``drop_connection_next``: handle the next n API requests, then close the connection instead
  of answering (the answer "lost in the network": the merchant cannot know the outcome);
- ``user_cancels_next``: the next n customers asked to confirm decline on the phone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    forge_notification_signature: bool = False
    forge_answer_signature: bool = False
    delay_ms: int = 0
    fail_http_500_next: int = 0
    drop_connection_next: int = 0
    user_cancels_next: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Sets the fields given; ValueError names the first unknown or ill-typed one and
        changes nothing."""
        types = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in types:
                raise ValueError(f"{name}: not a fault (one of {', '.join(types)})")
            if types[name] == "bool" and not isinstance(value, bool):
                raise ValueError(f"{name}: must be true or false")
            if types[name] == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                         or value < 0):
                raise ValueError(f"{name}: must be an integer >= 0")
        for name, value in changes.items():
            setattr(self, name, value)

    def take(self, name: str) -> bool:
        """True if the countdown fault ``name`` applies to this request (and counts it)."""
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Stats:
    #: API requests by "METHOD /route", e.g. "POST /v1/payments".
    requests: Counter[str] = field(default_factory=Counter)
    #: API requests refused because their signature did not verify.
    rejected_signatures: int = 0
    notifications_sent: int = 0
    notifications_acknowledged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "rejected_signatures": self.rejected_signatures,
                "notifications_sent": self.notifications_sent,
                "notifications_acknowledged": self.notifications_acknowledged}
