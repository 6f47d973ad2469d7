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
from cardswitch.cards import mask_pan
from cardswitch.v1 import hsm_pb2, hsm_pb2_grpc
from switch import store
from switch.context import ChannelError, ChannelResult, Decline, LinkDown, TxnContext
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


class Step(Protocol):
    async def __call__(self, ctx: TxnContext) -> bool | None: ...


@dataclass
class Deps:
    """What steps use: the journal, the HSM, routing and channels, key names."""

    journal: Journal
    hsm: hsm_pb2_grpc.HsmServiceStub
    registry: Registry
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


class RouteByBin:
    """Picks the issuer link by the longest matching BIN prefix."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> None:
        if ctx.link is not None:
            return
        link = self.deps.registry.route(ctx.pan)
        if link is None:
            raise Decline("92", f"no route to an issuer for BIN {ctx.pan[:6]}")
        ctx.link = link


class TranslatePin:
    """Re-encrypts the PIN block from the terminal's DUKPT key to the issuer's zone PIN key."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> None:
        if not ctx.pin_block or ctx.link is None:
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
    """Sends the request to the routed channel within what is left of the deadline."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, ctx: TxnContext) -> None:
        assert ctx.link is not None
        channel = self.deps.registry.channel(ctx.link.name)
        timeout = min(ctx.link.timeout_ms / 1000, ctx.remaining() - RESERVE_S)
        if timeout <= 0.01:
            raise LinkDown("no time left in the request deadline to ask the issuer")
        if ctx.kind in ("purchase", "preauth"):
            ctx.result = await channel.authorize(ctx, timeout)
        elif ctx.kind == "refund":
            ctx.result = await channel.refund(ctx, timeout)
        elif ctx.kind == "balance":
            ctx.result = await channel.balance(ctx, timeout)
        elif ctx.kind == "capture":
            ctx.result = await channel.capture(ctx, timeout)
        elif ctx.kind == "reversal":
            ctx.result = await channel.reverse(ctx, timeout, advice=False)
        else:
            raise Decline("12", f"unknown transaction kind {ctx.kind}")


async def find_stored(journal: Journal, ctx: TxnContext) -> dict[str, Any] | None:
    return await journal.read(lambda c: store.by_request_key(
        c, ctx.terminal.terminal_id, ctx.stan, ctx.local_date_time, ctx.request_id))


async def wait_stored(journal: Journal, ctx: TxnContext) -> dict[str, Any]:
    """The stored row for ctx's key, waiting while an identical request is still in flight."""
    while True:
        stored = await find_stored(journal, ctx)
        if stored is not None and (stored["status"] != "PENDING" or ctx.remaining() < 0.2):
            return stored
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
    reversal = None
    if ctx.reversal_owed and ctx.link is not None:
        reversal = {"transaction_id": ctx.transaction_id, "issuer_link": ctx.link.name,
                    "reason": "timeout", "created_at": utcnow(), "next_attempt_at": utcnow()}
    elif ctx.void_by_advice and ctx.original is not None and ctx.link is not None:
        reversal = {"transaction_id": ctx.original["transaction_id"],
                    "issuer_link": ctx.link.name, "reason": "void",
                    "created_at": utcnow(), "next_attempt_at": utcnow()}
    if ctx.journal_id is None:
        if not ctx.transaction_id:
            ctx.transaction_id = str(uuid.uuid4())
        now = utcnow()
        row = journal_row(ctx, now) | values
        inserted = await deps.journal.run(store.insert_entry(row))
        if inserted is None:
            stored = await wait_stored(deps.journal, ctx)
            ctx.replayed, ctx.stored, ctx.transaction_id = True, stored, stored["transaction_id"]
        return
    await deps.journal.run(store.complete(ctx.transaction_id, values,
                                          original_update=original_update, reversal=reversal))
    if reversal is not None:
        deps.reversal_kick.set()


def money_currency_numeric(alpha: str) -> str:
    cur = currency.by_alpha(alpha)
    return cur.numeric if cur else ""
