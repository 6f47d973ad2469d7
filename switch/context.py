"""The typed context one request carries through the pipeline, and the outcomes steps raise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cardswitch import responses


class Decline(Exception):
    """A business outcome decided by the switch itself (no route, PIN block invalid...)."""

    def __init__(self, code: str, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or responses.reason(code)
        super().__init__(f"{code} {self.reason}")


class ChannelError(Exception):
    """The channel could not deliver a request or get its answer."""

    #: True when the issuer may have acted on the request, so a reversal is owed.
    outcome_unknown = False


class LinkDown(ChannelError):
    """Not sent: the link is not connected."""


class LinkTimeout(ChannelError):
    outcome_unknown = True


class LinkBroken(ChannelError):
    """Sent, then the connection died or answered garbage before our answer came back."""

    outcome_unknown = True


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    terminal_id: str
    merchant_id: str
    mcc: str
    name_location: str
    currency: str
    bdk_key_ref: str


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str
    host: str
    port: int
    zpk_key_ref: str
    timeout_ms: int
    acquirer_id: str


@dataclass(slots=True)
class ChannelResult:
    response_code: str
    approval_code: str = ""
    reason: str = ""
    #: [(balance type "ledger"|"available", currency alpha, amount minor)]
    balances: list[tuple[str, str, int]] = field(default_factory=list)
    issuer_emv_data: bytes = b""


@dataclass(slots=True)
class TxnContext:
    """Everything known about one request. Clear PAN and PIN block live only here, in memory."""

    kind: str                       # purchase | preauth | capture | reversal | refund | balance
    terminal: TerminalConfig
    stan: str
    local_date_time: str
    request_id: str | None
    deadline: float                 # time.monotonic() by which the terminal must have its answer
    amount_minor: int = 0
    currency: str = ""
    currency_numeric: str = ""
    mcc: str = ""
    entry_mode: str = ""
    pan: str = ""
    expiry_yymm: str = ""
    track2: str = ""
    cvv2: str = ""
    pin_block: bytes = b""
    ksn: bytes = b""
    zone_pin_block: bytes = b""
    #: Chip data for DE 55 (card data such as 5A and 57 removed) and the PAN sequence number.
    emv_tlv: bytes = b""
    psn: str = ""
    pan_token: str | None = None
    last_four: str | None = None
    bin: str | None = None
    encrypted_pan: bytes | None = None
    link: LinkConfig | None = None
    original: dict[str, Any] | None = None
    reversal_reason: str = ""
    transaction_id: str = ""
    journal_id: int | None = None
    rrn: str = ""
    transmission_dt: str = ""
    result: ChannelResult | None = None
    status: str = "PENDING"
    reversal_owed: bool = False
    #: A void whose 0400 went unanswered: the original is reversed by a queued 0420 instead.
    void_by_advice: bool = False
    replayed: bool = False
    stored: dict[str, Any] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()
