"""Test control of the issuer: fault injection, per-MTI message counts, account inspection.

Faults (``cardswitch.v1.IssuerSimService.SetFaults``) apply to requests by amount and MTI:

- ``DELAY``: wait ``latency_ms``, then process and answer;
- ``NO_RESPONSE``: process, never answer (the answer "lost in the network");
- ``GARBAGE``: process, answer with a framed payload that is not an ISO 8583 message;
- ``TRUNCATED``: process, answer with the encoded response cut in half (framed as such);
- ``DISCONNECT``: close the connection on receipt, without processing;
- ``DUPLICATE_ANSWER``: process, answer twice with the same frame.

The first matching fault applies; ``base_latency_ms`` is added to every answer. Initial values
come from ``CARDSWITCH_ISSUER_LATENCY_MS`` and ``CARDSWITCH_ISSUER_FAULTS`` (a
``SetFaultsRequest`` in protobuf JSON, e.g. ``{"faults": [{"kind": "FAULT_KIND_DELAY", ...}]}``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from cardswitch import errors
from cardswitch.config import env_int
from cardswitch.v1 import common_pb2, issuer_pb2, issuer_pb2_grpc
from issuer_sim.processing import AccountView, Processor

SERVICE_NAME = "cardswitch.v1.IssuerSimService"
LATENCY_ENV = "CARDSWITCH_ISSUER_LATENCY_MS"
FAULTS_ENV = "CARDSWITCH_ISSUER_FAULTS"

#: What a fault with no MTIs applies to: every financial request, never network management.
FINANCIAL_MTIS = frozenset({"0100", "0120", "0200", "0220", "0400", "0420"})


@dataclass
class FaultRule:
    kind: int
    latency_ms: int
    match_amount_minor: int
    mtis: frozenset[str]
    #: Matching requests it still applies to; None until cleared.
    remaining: int | None

    def matches(self, mti: str, amount_minor: int) -> bool:
        return ((mti in self.mtis if self.mtis else mti in FINANCIAL_MTIS)
                and self.match_amount_minor in (0, amount_minor))


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    base_latency_ms: int = 0

    def replace(self, request: issuer_pb2.SetFaultsRequest) -> None:
        """Validates, then replaces every rule; FieldViolations names each bad field."""
        violations = []
        if request.base_latency_ms < 0:
            violations.append(("base_latency_ms", "must be >= 0"))
        for i, fault in enumerate(request.faults):
            if fault.kind == issuer_pb2.FAULT_KIND_UNSPECIFIED:
                violations.append((f"faults[{i}].kind", "must be set"))
            if fault.latency_ms < 0:
                violations.append((f"faults[{i}].latency_ms", "must be >= 0"))
            if fault.count < 0:
                violations.append((f"faults[{i}].count", "must be >= 0 (0 = until cleared)"))
            if fault.match_amount_minor < 0:
                violations.append((f"faults[{i}].match_amount_minor", "must be >= 0"))
        if violations:
            raise errors.FieldViolations(violations)
        self.rules = [FaultRule(f.kind, f.latency_ms, f.match_amount_minor, frozenset(f.mtis),
                                f.count or None) for f in request.faults]
        self.base_latency_ms = request.base_latency_ms

    def take(self, mti: str, amount_minor: int) -> FaultRule | None:
        """The fault that applies to this request, counting it against the fault's count."""
        for rule in self.rules:
            if rule.matches(mti, amount_minor):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self.rules.remove(rule)
                return rule
        return None

    @classmethod
    def from_env(cls) -> Faults:
        request = issuer_pb2.SetFaultsRequest()
        raw = os.environ.get(FAULTS_ENV, "").strip()
        if raw:
            try:
                json_format.Parse(raw, request)
            except json_format.ParseError as exc:
                raise ValueError(f"{FAULTS_ENV}: not a SetFaultsRequest in JSON: {exc}") from exc
        request.base_latency_ms = env_int(LATENCY_ENV, request.base_latency_ms)
        faults = cls()
        faults.replace(request)
        return faults


@dataclass
class Stats:
    """ISO 8583 messages received and sent, per MTI."""

    received: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)


def account_message(view: AccountView) -> issuer_pb2.Account:
    def money(amount: int) -> common_pb2.Money:
        return common_pb2.Money(amount_minor=amount, currency=view.currency)

    return issuer_pb2.Account(
        account_id=view.account_id, last_four=view.last_four, status=view.status,
        balances=[
            common_pb2.Balance(type=common_pb2.BALANCE_TYPE_LEDGER,
                               amount=money(view.ledger_minor)),
            common_pb2.Balance(type=common_pb2.BALANCE_TYPE_AVAILABLE,
                               amount=money(view.available_minor)),
        ],
        holds=money(view.holds_minor), pin_tries=view.pin_tries, expiry_yymm=view.expiry_yymm)


class IssuerControl(issuer_pb2_grpc.IssuerSimServiceServicer):
    def __init__(self, processor: Processor, faults: Faults, stats: Stats) -> None:
        self._processor = processor
        self._faults = faults
        self._stats = stats

    async def SetFaults(self, request: issuer_pb2.SetFaultsRequest,
                        context: Any) -> issuer_pb2.SetFaultsResponse:
        self._faults.replace(request)
        return issuer_pb2.SetFaultsResponse()

    async def GetAccount(self, request: issuer_pb2.GetAccountRequest,
                         context: Any) -> issuer_pb2.Account:
        if not request.account_id:
            raise errors.FieldViolations([("account_id", "must be set, e.g. acct-visa-ok")])
        view = await self._processor.account_view(request.account_id)
        if view is None:
            raise errors.NotFound(f"account {request.account_id!r} not found")
        return account_message(view)

    async def GetStats(self, request: issuer_pb2.GetStatsRequest,
                       context: Any) -> issuer_pb2.IssuerStats:
        return issuer_pb2.IssuerStats(received=dict(self._stats.received),
                                      sent=dict(self._stats.sent))
