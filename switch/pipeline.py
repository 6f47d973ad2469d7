"""The pipeline: a list of small steps run in order over one :class:`TxnContext`.

Each step does one thing and may stop the pipeline (return ``STOP``). The runner is the one
place where a failure becomes an ISO 8583 response code, and the one place that writes the
outcome to the journal, so every request that got past validation ends with a durable row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from prometheus_client import Counter

from cardswitch import currency, errors, responses
from cardswitch.cardcache import CardCache
from cardswitch.cards import brand_of, mask_pan
from cardswitch.v1 import hsm_pb2, hsm_pb2_grpc
from switch import routing, standin, store
from switch.context import (
    ChannelError,
    ChannelResult,
    Decline,
    LinkConfig,
    LinkDown,
    TxnContext,
)
from switch.journal import Journal
from switch.models import utcnow
from switch.registry import Registry

log = logging.getLogger(__name__)

STOP = True
#: Seconds kept back from the terminal's deadline for journaling and answering.
RESERVE_S = 0.15
#: Kinds whose approval moves money, so an unknown outcome owes the issuer a reversal.
REVERSIBLE = {"purchase", "preauth", "refund"}

OUTCOMES = Counter("cardswitch_transactions_total", "transactions by kind and response code",
                   ["kind", "code"])
STAND_IN = Counter("cardswitch_stand_in_total", "stand-in decisions by link", ["link", "outcome"])


class Step(Protocol):
    async def __call__(self, ctx: TxnContext) -> bool | None: ...


@dataclass
class Deps:
    """What steps use: the journal, the HSM, routing and channels, key names."""

    journal: Journal
    hsm: hsm_pb2_grpc.HsmServiceStub
    registry: Registry
    #: The real-time risk step (switch.risk.step.RiskCheck); None runs without risk.
    risk: Step | None = None
    hmac_key_ref: str = "hmac-switch"
    dek_key_ref: str = "dek-switch"
    reversal_kick: asyncio.Event = field(default_factory=asyncio.Event)


def _hsm_timeout(ctx: TxnContext) -> float:
    return max(0.05, min(2.0, ctx.remaining() - RESERVE_S))


class ProtectCard:
    """Keyed hash, last four and ciphertext of the PAN, from the HSM (the PAN stays in memory).

    Answers are kept in a :class:`CardCache` (no PAN in it): a returning card costs no HSM call.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._cache: CardCache[tuple[str, str, str, bytes]] = CardCache()

    async def __call__(self, ctx: TxnContext) -> None:
        if not ctx.pan or ctx.pan_token:
            return
        cached = self._cache.get(ctx.pan)
        if cached is None:
            answer = await self.deps.hsm.ProtectPan(hsm_pb2.ProtectPanRequest(
                hmac_key_ref=self.deps.hmac_key_ref, dek_key_ref=self.deps.dek_key_ref,
                pan=ctx.pan), timeout=_hsm_timeout(ctx))
            cached = (answer.pan_token, answer.last_four, answer.bin, answer.encrypted_pan)
            self._cache.put(ctx.pan, cached)
        ctx.pan_token, ctx.last_four, ctx.bin, ctx.encrypted_pan = cached


class RouteRequest:
    """Picks the route (see :mod:`switch.routing`) and the links to try, usable ones first."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> None:
        if ctx.link is not None:
            return
        txn = routing.Txn(
            bin=ctx.pan[:11], brand=brand_of(ctx.pan) if ctx.pan else "",
            currency=ctx.currency, amount_minor=ctx.amount_minor, mcc=ctx.mcc,
            terminal_id=ctx.terminal.terminal_id, merchant_id=ctx.terminal.merchant_id,
            wallet_provider=ctx.wallet_provider)
        route, links = self.deps.registry.route(txn)
        if route is None or not links:
            what = (f"wallet provider {ctx.wallet_provider}" if ctx.wallet_provider
                    else f"BIN {ctx.pan[:6]}")
            raise Decline("92", f"no route to an issuer for {what}")
        ctx.candidates = links
        ctx.link = links[0]


class TranslatePin:
    """Re-encrypts the PIN block from the terminal's DUKPT key to the issuer's zone PIN key."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> None:
        if not ctx.pin_block or ctx.link is None or ctx.link.kind != "iso8583":
            return
        try:
            if ctx.pin_zpk_key_ref:
                request = hsm_pb2.TranslatePinRequest(source_zpk_key_ref=ctx.pin_zpk_key_ref)
            else:
                request = hsm_pb2.TranslatePinRequest(source_bdk_key_ref=ctx.terminal.bdk_key_ref,
                                                      ksn=ctx.ksn)
            request.destination_zpk_key_ref = ctx.link.zpk_key_ref
            request.pin_block, request.pan = ctx.pin_block, ctx.pan
            answer = await self.deps.hsm.TranslatePin(request, timeout=_hsm_timeout(ctx))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise Decline("55", "PIN block does not decode under the terminal's key") from exc
            raise
        ctx.zone_pin_block = answer.pin_block


class Idempotency:
    """Writes the PENDING row; if the request key exists, answers with the stored outcome."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> bool | None:
        # Insert first: the unique constraint, not a read, detects a retry (one round trip).
        ctx.transaction_id = str(uuid.uuid4())
        now = utcnow()
        ctx.transmission_dt = now.strftime("%m%d%H%M%S")
        row = journal_row(ctx, now)
        journal_id = await self.deps.journal.run(store.insert_entry(row))
        if journal_id is None:  # lost a race with an identical request
            stored = await wait_stored(self.deps.journal, ctx)
            return replay(ctx, stored)
        ctx.journal_id = journal_id
        ctx.rrn = store.rrn_for(journal_id, now)
        return None


class CallChannel:
    """Sends the request within what is left of the deadline, failing over between links.

    Only a request that was certainly not sent (link down, breaker open) moves on to the next
    link; once a financial request may have reached an issuer it is never resent blind (its
    outcome is settled by a reversal instead). When no link can take it, stand-in decides.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.translate = TranslatePin(deps)
        self.stand_in = StandIn(deps)

    async def __call__(self, ctx: TxnContext) -> None:
        assert ctx.link is not None
        registry = self.deps.registry
        candidates = ctx.candidates or [ctx.link]
        unavailable: list[str] = []
        for link in candidates:
            breaker = registry.breaker(link.name)
            if not breaker.allow():
                unavailable.append(f"{link.name}: circuit breaker open")
                continue
            if link is not ctx.link:
                ctx.link = link
                await self.translate(ctx)
            try:
                ctx.result = await self._send(ctx, link)
            except LinkDown as exc:
                breaker.record_failure()
                registry.observe_breaker(link.name)
                unavailable.append(str(exc))
                continue
            except ChannelError:
                breaker.record_failure()
                registry.observe_breaker(link.name)
                raise
            breaker.record_success()
            registry.observe_breaker(link.name)
            return
        ctx.link = candidates[0]
        await self.stand_in(ctx, "; ".join(unavailable))

    async def _send(self, ctx: TxnContext, link: LinkConfig) -> ChannelResult:
        channel = self.deps.registry.channel(link.name)
        timeout = min(link.timeout_ms / 1000, ctx.remaining() - RESERVE_S)
        if timeout <= 0.01:
            raise LinkDown("no time left in the request deadline to ask the issuer")
        if ctx.kind in ("purchase", "preauth"):
            return await channel.authorize(ctx, timeout)
        if ctx.kind == "refund":
            return await channel.refund(ctx, timeout)
        if ctx.kind == "balance":
            return await channel.balance(ctx, timeout)
        if ctx.kind == "capture":
            return await channel.capture(ctx, timeout)
        if ctx.kind == "reversal":
            return await channel.reverse(ctx, timeout, advice=False)
        raise Decline("12", f"unknown transaction kind {ctx.kind}")


class StandIn:
    """Stand-in processing: decides in the issuer's place, within the link's limits.

    An approval is marked stood in and its advice (0120/0220) is queued in store-and-forward
    with the outcome, in the same database transaction.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext, why: str) -> None:
        assert ctx.link is not None
        rules = standin.StandInRules.from_proto(ctx.link.stand_in)
        today_amount, today_count = 0, 0
        if rules.enabled and ctx.pan_token:
            today_amount, today_count = await self.deps.journal.read(
                lambda c: store.stood_in_today(c, ctx.pan_token or "", utcnow()))
        decision = standin.decide(
            rules, kind=ctx.kind, amount_minor=ctx.amount_minor, currency=ctx.currency,
            entry_mode=ctx.entry_mode, mcc=ctx.mcc, has_pin=bool(ctx.pin_block),
            card_today_amount_minor=today_amount, card_today_count=today_count)
        if not decision.approved:
            STAND_IN.labels(ctx.link.name, "declined").inc()
            if decision.response_code == "91":
                raise LinkDown(f"issuer unavailable ({why}); {decision.reason}")
            raise Decline(decision.response_code, decision.reason)
        STAND_IN.labels(ctx.link.name, "approved").inc()
        ctx.stood_in = True
        ctx.result = ChannelResult(
            responses.APPROVED, approval_code=standin.approval_code(ctx.journal_id or 0),
            reason=f"approved in stand-in: issuer unavailable ({why})"[:120])
        ctx.events.append(("authorization.stood_in", {
            "transaction_id": ctx.transaction_id, "link": ctx.link.name,
            "amount_minor": ctx.amount_minor, "currency": ctx.currency,
            "last_four": ctx.last_four, "reason": why}))


async def find_stored(journal: Journal, ctx: TxnContext) -> dict[str, Any] | None:
    return await journal.read(lambda c: store.by_request_key(
        c, ctx.terminal.terminal_id, ctx.stan, ctx.local_date_time, ctx.request_id))


async def wait_stored(journal: Journal, ctx: TxnContext) -> dict[str, Any]:
    """The stored row for ctx's key, waiting while an identical request is still in flight."""
    while True:
        stored = await find_stored(journal, ctx)
        if stored is not None and (stored["status"] != "PENDING" or ctx.remaining() < 0.2):
            return stored
        if stored is None and ctx.remaining() < 0.2:
            # the insert hit a unique key this lookup does not use (request_id vs terminal,
            # STAN and time): a different request took that key
            raise Decline("94", "duplicate transmission: the request key is taken by another "
                                "request")
        await asyncio.sleep(0.02)


def replay(ctx: TxnContext, stored: dict[str, Any]) -> bool:
    if stored["type"] != ctx.kind or (stored["amount_minor"] != ctx.amount_minor and ctx.kind in (
            "purchase", "preauth", "refund", "capture")):
        raise Decline("94", "duplicate transmission: this request key was used for a "
                            "different request")
    ctx.replayed = True
    ctx.stored = stored
    ctx.transaction_id = stored["transaction_id"]
    return STOP


def journal_row(ctx: TxnContext, now: Any) -> dict[str, Any]:
    return {
        "transaction_id": ctx.transaction_id, "request_id": ctx.request_id or None,
        "terminal_id": ctx.terminal.terminal_id, "merchant_id": ctx.terminal.merchant_id,
        "stan": ctx.stan, "local_date_time": ctx.local_date_time, "type": ctx.kind,
        "status": "PENDING", "amount_minor": ctx.amount_minor, "currency": ctx.currency,
        "entry_mode": ctx.entry_mode, "mcc": ctx.mcc, "pan_token": ctx.pan_token,
        "last_four": ctx.last_four, "bin": ctx.bin, "encrypted_pan": ctx.encrypted_pan,
        "issuer_link": ctx.link.name if ctx.link else None,
        "transmission_dt": ctx.transmission_dt,
        "original_transaction_id": ctx.original["transaction_id"] if ctx.original else None,
        "wallet_provider": ctx.wallet_provider or None,
        "created_at": now, "updated_at": now,
    }


def outcome_of(exc: BaseException, ctx: TxnContext) -> tuple[str, str, bool]:
    """The one mapping from a failure to (response code, reason, reversal owed)."""
    if isinstance(exc, Decline):
        return exc.code, exc.reason, False
    if isinstance(exc, ChannelError):
        owed = exc.outcome_unknown and ctx.kind in REVERSIBLE
        suffix = "; automatic reversal queued" if owed else ""
        return "91", f"issuer unavailable: {exc}{suffix}", owed
    if isinstance(exc, grpc.aio.AioRpcError):
        return "96", f"security module error: {exc.code().name}", False
    return "96", f"system malfunction ({type(exc).__name__})", False


class Pipeline:
    def __init__(self, steps: Sequence[Step], deps: Deps) -> None:
        self.steps = list(steps)
        self.deps = deps

    async def run(self, ctx: TxnContext) -> TxnContext:
        try:
            for step in self.steps:
                if await step(ctx) is STOP:
                    break
        except (errors.FieldViolations, errors.Conflict, errors.NotFound) as exc:
            if ctx.journal_id is None:
                raise
            ctx.result = ChannelResult("96", reason=f"system malfunction ({exc})")
        except Exception as exc:
            if isinstance(exc, ChannelError) and ctx.kind == "reversal" and ctx.original:
                # Store-and-forward makes the void certain: the 0420 is repeated until the
                # issuer acknowledges it, so the merchant is told the void is accepted.
                ctx.void_by_advice = True
                ctx.result = ChannelResult(
                    "00", reason=f"void accepted; reversal advice queued ({exc})")
            else:
                code, reason, owed = outcome_of(exc, ctx)
                if code == "96":
                    log.exception("%s for card %s failed", ctx.kind, mask_pan(ctx.pan))
                ctx.result = ChannelResult(code, reason=reason)
                ctx.reversal_owed = owed
                if owed:
                    ctx.status = "TIMED_OUT"
        if not ctx.replayed:
            await record(self.deps, ctx)
        return ctx


def outcome_values(ctx: TxnContext) -> dict[str, Any]:
    result = ctx.result or ChannelResult("96", reason="no outcome")
    approved = responses.approved(result.response_code)
    if ctx.status == "PENDING":
        ctx.status = "APPROVED" if approved else "DECLINED"
    return {
        "status": ctx.status,
        "response_code": result.response_code,
        "reason": (result.reason or responses.reason(result.response_code))[:120],
        "approval_code": result.approval_code or None,
        "approved_amount_minor": ctx.amount_minor if approved else 0,
        "balances": json.dumps(result.balances) if result.balances else None,
        "issuer_emv_data": result.issuer_emv_data or None,
        "rrn": ctx.rrn or None,
        "stood_in": ctx.stood_in,
        "issuer_link": ctx.link.name if ctx.link else None,
        "risk_score": ctx.risk_score,
        "risk_decision": ctx.risk_decision or None,
        "risk_rules": ",".join(ctx.risk_rules)[:200] or None,
        "provider_reference": result.provider_reference or None,
    }


async def record(deps: Deps, ctx: TxnContext) -> None:
    """Writes the outcome: completes the PENDING row, or inserts a final row (early decline)."""
    values = outcome_values(ctx)
    OUTCOMES.labels(ctx.kind, values["response_code"]).inc()
    original_update = None
    if ctx.original and ctx.status == "APPROVED" and not ctx.void_by_advice:
        new_status = {"capture": "CAPTURED", "reversal": "REVERSED"}.get(ctx.kind)
        if new_status:
            original_update = (ctx.original["transaction_id"],
                               {"status": new_status,
                                "reversal_acknowledged": ctx.kind == "reversal"})
    if ctx.journal_id is None and not ctx.transaction_id:
        ctx.transaction_id = str(uuid.uuid4())
    saf = saf_entry(ctx)
    events = [outbox_event(kind, ctx.transaction_id, data) for kind, data in ctx.events]
    if ctx.journal_id is None:
        now = utcnow()
        row = journal_row(ctx, now) | values
        inserted = await deps.journal.run(store.insert_with_events(row, events))
        if inserted is None:
            stored = await wait_stored(deps.journal, ctx)
            ctx.replayed, ctx.stored, ctx.transaction_id = True, stored, stored["transaction_id"]
        return
    await deps.journal.run(store.complete(ctx.transaction_id, values,
                                          original_update=original_update, saf=saf,
                                          events=events))
    if saf is not None:
        deps.reversal_kick.set()


def saf_entry(ctx: TxnContext) -> dict[str, Any] | None:
    """The store-and-forward row the outcome owes the issuer, if any."""
    if ctx.link is None:
        return None
    tid, mti, reason = ctx.transaction_id, "0420", ""
    if ctx.reversal_owed:
        reason = "timeout"
    elif ctx.void_by_advice and ctx.original is not None:
        tid, reason = ctx.original["transaction_id"], "void"
    elif ctx.stood_in:
        mti, reason = ("0120" if ctx.kind == "preauth" else "0220"), "stand_in"
    if not reason:
        return None
    now = utcnow()
    return {"transaction_id": tid, "mti": mti, "issuer_link": ctx.link.name, "reason": reason,
            "created_at": now, "next_attempt_at": now, "attempts": 0}


def outbox_event(kind: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": kind, "subject": subject or None,
            "data": json.dumps(data, sort_keys=True, default=str), "created_at": utcnow()}


def money_currency_numeric(alpha: str) -> str:
    cur = currency.by_alpha(alpha)
    return cur.numeric if cur else ""
