"""The typed context one request carries through the pipeline, and the outcomes steps raise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cardswitch import responses
from cardswitch.v1 import admin_pb2


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
    """A link as configured; nested settings are their ``cardswitch.v1.admin`` messages."""

    name: str
    host: str
    port: int
    zpk_key_ref: str
    timeout_ms: int
    acquirer_id: str
    kind: str = "iso8583"
    zmk_key_ref: str = ""
    dialect: admin_pb2.Iso8583Dialect = field(default_factory=admin_pb2.Iso8583Dialect)
    stand_in: admin_pb2.StandInRules = field(default_factory=admin_pb2.StandInRules)
    breaker: admin_pb2.CircuitBreaker = field(default_factory=admin_pb2.CircuitBreaker)
    wallet: admin_pb2.WalletEndpoint = field(default_factory=admin_pb2.WalletEndpoint)


@dataclass(slots=True)
class ChannelResult:
    response_code: str
    approval_code: str = ""
    reason: str = ""
    #: [(balance type "ledger"|"available", currency alpha, amount minor)]
    balances: list[tuple[str, str, int]] = field(default_factory=list)
    issuer_emv_data: bytes = b""
    #: Wallet payments: the provider's reference for the payment.
    provider_reference: str = ""


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
    #: PIN blocks from an acquirer host arrive under its zone PIN key, not a terminal's DUKPT.
    pin_zpk_key_ref: str = ""
    #: Chip data for DE 55 (card data such as 5A and 57 removed) and the PAN sequence number.
    emv_tlv: bytes = b""
    psn: str = ""
    #: Wallet payments: provider name, the customer-presented payment code, "qr" or "token".
    wallet_provider: str = ""
    wallet_token: str = ""
    wallet_presentation: str = ""
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
    #: Links to try in order (the routed primary first, then its secondaries).
    candidates: list[LinkConfig] = field(default_factory=list)
    stood_in: bool = False
    #: Store-and-forward resends set this: the channel flags the message as a repeat.
    repeat: bool = False
    risk_score: int | None = None
    risk_decision: str = ""
    risk_rules: list[str] = field(default_factory=list)
    #: Events to write to the outbox with the outcome, in the same transaction: (type, data).
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()
