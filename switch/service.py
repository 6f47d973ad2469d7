"""``AcquiringService``: turns each RPC into a context, runs its pipeline, answers.

Pipelines per kind (the order is the design, see DESIGN.md section 1):
  authorize/refund/balance: route -> protect PAN + translate PIN -> idempotency -> channel
  capture/void:             (original loaded and checked first) -> idempotency -> channel
"""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from cardswitch import errors, responses
from cardswitch.cards import mask_pan
from cardswitch.v1 import (
    acquiring_pb2,
    acquiring_pb2_grpc,
    common_pb2,
    hsm_pb2,
)
from switch import store, validation
from switch.context import ChannelResult, TxnContext
from switch.pipeline import (
    REVERSIBLE,
    CallChannel,
    Deps,
    Idempotency,
    Pipeline,
    ProtectCard,
    RouteRequest,
    TranslatePin,
    find_stored,
    money_currency_numeric,
    outcome_values,
    record,
)
from switch.validation import Violations

#: Set by an acquirer host (ISO 8583 in) to the key its DE 52 PIN blocks are under; gRPC
#: terminals leave it empty (their PIN blocks are under DUKPT).
PIN_SOURCE_ZPK: ContextVar[str] = ContextVar("pin_source_zpk", default="")

DEFAULT_DEADLINE_S = 30.0
#: Below this much time left the switch refuses the call before writing anything.
MIN_BUDGET_S = 0.1

BALANCE_TYPE = {"ledger": common_pb2.BALANCE_TYPE_LEDGER,
                "available": common_pb2.BALANCE_TYPE_AVAILABLE}
TXN_TYPE: dict[str, Any] = {"purchase": acquiring_pb2.TRANSACTION_TYPE_PURCHASE,
            "preauth": acquiring_pb2.TRANSACTION_TYPE_PRE_AUTHORIZATION,
            "capture": acquiring_pb2.TRANSACTION_TYPE_CAPTURE,
            "reversal": acquiring_pb2.TRANSACTION_TYPE_REVERSAL,
            "refund": acquiring_pb2.TRANSACTION_TYPE_REFUND,
            "balance": acquiring_pb2.TRANSACTION_TYPE_BALANCE_INQUIRY}
STATUS = {s: getattr(acquiring_pb2, f"TRANSACTION_STATUS_{s}") for s in (
    "PENDING", "APPROVED", "DECLINED", "CAPTURED", "REVERSED", "TIMED_OUT")}
ENTRY_MODE: dict[str, Any] = {v: k for k, v in validation.ENTRY_MODE_NAMES.items()}


class _Concurrent:
    """Runs steps side by side (e.g. PAN protection and PIN translation: two HSM calls)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = steps

    async def __call__(self, ctx: TxnContext) -> None:
        await asyncio.gather(*(s(ctx) for s in self.steps))


class AcquiringServicer(acquiring_pb2_grpc.AcquiringServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        protect, route = ProtectCard(deps), RouteRequest(deps)
        idem, call = Idempotency(deps), CallChannel(deps)
        risk = [deps.risk] if deps.risk is not None else []
        self.card_pipeline = Pipeline(
            [route, _Concurrent(protect, TranslatePin(deps)), *risk, idem, call], deps)
        self.original_pipeline = Pipeline([idem, call], deps)

    # -- context building ----------------------------------------------------------------

    def _context(self, kind: str, key: Any, context: grpc.aio.ServicerContext,
                 v: Violations) -> TxnContext:
        remaining = context.time_remaining()
        budget = DEFAULT_DEADLINE_S if remaining is None else remaining
        validation.check_key(key, v)
        terminal = self.deps.registry.terminals.get(key.terminal_id)
        if terminal is None and key.terminal_id:
            v.add("key.terminal_id", f"unknown terminal {key.terminal_id!r}")
        if key.merchant_id and terminal and key.merchant_id != terminal.merchant_id:
            v.add("key.merchant_id", "does not match the terminal's merchant")
        v.raise_if_any()
        assert terminal is not None
        return TxnContext(kind=kind, terminal=terminal, stan=key.stan,
                          local_date_time=key.local_date_time, request_id=key.request_id or None,
                          deadline=time.monotonic() + budget, mcc=terminal.mcc)

    async def _check_budget(self, ctx: TxnContext,
                            context: grpc.aio.ServicerContext) -> None:
        if ctx.remaining() < MIN_BUDGET_S:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"deadline: {max(ctx.remaining(), 0) * 1000:.0f} ms left; the "
                                f"switch needs at least {MIN_BUDGET_S * 1000:.0f} ms")

    def _card(self, ctx: TxnContext, request: Any, v: Violations, *, pin_always: bool) -> None:
        fields = validation.card_fields(request.card, v)
        ctx.pan, ctx.expiry_yymm = fields["pan"], fields["expiry_yymm"]
        ctx.track2, ctx.cvv2 = fields["track2"], fields["cvv2"]
        ctx.psn, ctx.emv_tlv = fields["psn"], fields["de55"]
        ctx.wallet_provider, ctx.wallet_token = fields["wallet_provider"], fields["wallet_token"]
        ctx.wallet_presentation = fields["wallet_presentation"]
        source = request.card.WhichOneof("source")
        chip, wallet = source == "emv", source == "wallet"
        ctx.entry_mode = validation.ENTRY_MODE_NAMES.get(request.entry_mode) or (
            "chip" if chip else "wallet" if wallet else "magstripe" if ctx.track2 else "manual")
        if chip and ctx.entry_mode not in ("chip", "contactless"):
            v.add("entry_mode", f"must be CHIP or CONTACTLESS for chip data, not {ctx.entry_mode}")
        if wallet and ctx.entry_mode != "wallet":
            v.add("entry_mode", f"must be WALLET for a wallet payment, not {ctx.entry_mode}")
        amount = getattr(request, "amount", None)
        if chip and fields["amount"] is not None and amount is not None and (
                fields["amount"] != amount.amount_minor):
            v.add("card.emv.tlv 9F02", f"the card was asked to approve {fields['amount']}, "
                                       f"not amount.amount_minor {amount.amount_minor}")
        has_pin = request.HasField("pin_block") if hasattr(request, "pin_block") else False
        pin_required = pin_always or (
            ctx.entry_mode == "magstripe"
            and fields["service_code"][2:3] in validation.PIN_REQUIRED_SERVICE_DIGITS)
        if has_pin:
            validation.check_pin_block(request.pin_block, v,
                                       zone_key=bool(PIN_SOURCE_ZPK.get()))
            ctx.pin_block, ctx.ksn = request.pin_block.block, request.pin_block.ksn
            ctx.pin_zpk_key_ref = PIN_SOURCE_ZPK.get()
        elif pin_required:
            v.add("pin_block", "is required: this card and transaction need online PIN")

    def _money(self, ctx: TxnContext, money: Any, field: str, v: Violations,
               allow_zero: bool = False) -> None:
        validation.check_money(money, field, v, allow_zero=allow_zero)
        ctx.amount_minor, ctx.currency = money.amount_minor, money.currency
        ctx.currency_numeric = money_currency_numeric(money.currency)

    # -- RPCs ------------------------------------------------------------------------------

    async def Authorize(self, request: acquiring_pb2.AuthorizeRequest,
                        context: grpc.aio.ServicerContext) -> acquiring_pb2.AuthorizeResponse:
        v = Violations()
        kind = {acquiring_pb2.AUTHORIZATION_TYPE_PURCHASE: "purchase",
                acquiring_pb2.AUTHORIZATION_TYPE_PRE_AUTHORIZATION: "preauth"}.get(request.type)
        if kind is None:
            v.add("type", "must be PURCHASE or PRE_AUTHORIZATION")
        ctx = self._context(kind or "purchase", request.key, context, v)
        self._money(ctx, request.amount, "amount", v)
        self._card(ctx, request, v, pin_always=False)
        validation.check_mcc(request.mcc, v)
        v.raise_if_any()
        ctx.mcc = request.mcc or ctx.mcc
        await self._check_budget(ctx, context)
        await self.card_pipeline.run(ctx)
        row = self._row(ctx)
        return acquiring_pb2.AuthorizeResponse(
            transaction_id=row["transaction_id"], result=_result(row),
            approval_code=row.get("approval_code") or "", rrn=row.get("rrn") or "",
            approved_amount=common_pb2.Money(amount_minor=row.get("approved_amount_minor") or 0,
                                             currency=row["currency"]),
            balances=_balances(row), replayed=ctx.replayed,
            masked_pan=_masked(row), issuer_emv_data=row.get("issuer_emv_data") or b"",
            stood_in=bool(row.get("stood_in")), risk=_risk(row), link=row.get("issuer_link") or "",
            provider_reference=row.get("provider_reference") or "")

    async def BalanceInquiry(self, request: acquiring_pb2.BalanceInquiryRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> acquiring_pb2.BalanceInquiryResponse:
        v = Violations()
        ctx = self._context("balance", request.key, context, v)
        self._card(ctx, request, v, pin_always=True)
        v.raise_if_any()
        ctx.currency = ctx.terminal.currency
        ctx.currency_numeric = money_currency_numeric(ctx.currency)
        await self._check_budget(ctx, context)
        await self.card_pipeline.run(ctx)
        row = self._row(ctx)
        return acquiring_pb2.BalanceInquiryResponse(
            transaction_id=row["transaction_id"], result=_result(row), balances=_balances(row),
            replayed=ctx.replayed)

    async def Refund(self, request: acquiring_pb2.RefundRequest,
                     context: grpc.aio.ServicerContext) -> acquiring_pb2.RefundResponse:
        v = Violations()
        ctx = self._context("refund", request.key, context, v)
        self._money(ctx, request.amount, "amount", v)
        validation.check_mcc(request.mcc, v)
        if request.card.WhichOneof("source") or not request.original_transaction_id:
            self._card(ctx, request, v, pin_always=False)
        v.raise_if_any()
        ctx.mcc = request.mcc or ctx.mcc
        await self._check_budget(ctx, context)
        if await self._replay_early(ctx):
            return self._refund_response(ctx)
        if request.original_transaction_id:
            original = await self._original(request.original_transaction_id,
                                            "original_transaction_id")
            if original["type"] not in ("purchase", "preauth") or original["status"] not in (
                    "APPROVED", "CAPTURED"):
                raise errors.Conflict(f"original_transaction_id: a {original['type']} that is "
                                      f"{original['status'].lower()} cannot be refunded")
            left = (original["approved_amount_minor"] or 0) - await self.deps.journal.read(
                lambda c: store.refunded_total(c, original["transaction_id"]))
            if ctx.amount_minor > left or ctx.currency != original["currency"]:
                raise errors.FieldViolations([("amount", f"exceeds what is left to refund of "
                                               f"the original: {left} {original['currency']}")])
            ctx.original = original
            if not ctx.pan:
                await self._reveal(ctx, original)
        await self.card_pipeline.run(ctx)
        return self._refund_response(ctx)

    def _refund_response(self, ctx: TxnContext) -> acquiring_pb2.RefundResponse:
        row = self._row(ctx)
        return acquiring_pb2.RefundResponse(
            transaction_id=row["transaction_id"], result=_result(row),
            approval_code=row.get("approval_code") or "", rrn=row.get("rrn") or "",
            replayed=ctx.replayed)

    async def Capture(self, request: acquiring_pb2.CaptureRequest,
                      context: grpc.aio.ServicerContext) -> acquiring_pb2.CaptureResponse:
        v = Violations()
        ctx = self._context("capture", request.key, context, v)
        self._money(ctx, request.amount, "amount", v)
        if not request.original_transaction_id:
            v.add("original_transaction_id", "is required")
        v.raise_if_any()
        await self._check_budget(ctx, context)
        if not await self._replay_early(ctx):
            original = await self._original(request.original_transaction_id,
                                            "original_transaction_id")
            if original["type"] != "preauth" or original["status"] != "APPROVED":
                raise errors.Conflict(f"original_transaction_id: only an approved "
                                      f"pre-authorization can be captured; this one is a "
                                      f"{original['type']} that is {original['status'].lower()}")
            if ctx.currency != original["currency"] or \
                    ctx.amount_minor > (original["approved_amount_minor"] or 0):
                raise errors.FieldViolations([("amount", "exceeds the authorized amount "
                                               f"{original['approved_amount_minor']} "
                                               f"{original['currency']}")])
            ctx.original = original
            await self._reveal(ctx, original)
            await self.original_pipeline.run(ctx)
        row = self._row(ctx)
        return acquiring_pb2.CaptureResponse(
            transaction_id=row["transaction_id"], result=_result(row), replayed=ctx.replayed,
            captured_amount=common_pb2.Money(amount_minor=row.get("approved_amount_minor") or 0,
                                             currency=row["currency"]))

    async def Reverse(self, request: acquiring_pb2.ReverseRequest,
                      context: grpc.aio.ServicerContext) -> acquiring_pb2.ReverseResponse:
        v = Violations()
        ctx = self._context("reversal", request.key, context, v)
        reason = {acquiring_pb2.REVERSAL_REASON_VOID: "void",
                  acquiring_pb2.REVERSAL_REASON_TIMEOUT: "timeout",
                  acquiring_pb2.REVERSAL_REASON_CUSTOMER_CANCELLATION: "void",
                  acquiring_pb2.REVERSAL_REASON_CHIP_DECLINED: "chip_declined",
                  }.get(request.reason)
        if reason is None:
            v.add("reason", "must be VOID, TIMEOUT, CUSTOMER_CANCELLATION or CHIP_DECLINED")
        which = request.WhichOneof("original")
        if which is None:
            v.add("original", "is required: original_transaction_id or original_key")
        elif which == "original_key":
            validation.check_key(request.original_key, v, "original_key")
        v.raise_if_any()
        ctx.reversal_reason = reason or ""
        await self._check_budget(ctx, context)
        if not await self._replay_early(ctx):
            original: dict[str, Any] | None
            if which == "original_transaction_id":
                original = await self._original(request.original_transaction_id,
                                                "original_transaction_id")
            else:
                k = request.original_key
                original = await self.deps.journal.read(
                    lambda c: store.by_request_key(c, k.terminal_id, k.stan,
                                                   k.local_date_time, k.request_id or None))
            await self._reverse(ctx, original, reason or "void")
        row = self._row(ctx)
        return acquiring_pb2.ReverseResponse(
            transaction_id=row["transaction_id"], result=_result(row), replayed=ctx.replayed,
            original_transaction_id=row.get("original_transaction_id") or "")

    async def _reverse(self, ctx: TxnContext, original: dict[str, Any] | None,
                       reason: str) -> None:
        nothing = None
        if original is None:
            if reason != "timeout":
                raise errors.NotFound("original_transaction_id: no such transaction")
            nothing = "nothing to reverse: the original never reached the switch"
        elif original["status"] in ("DECLINED",):
            nothing = "nothing to reverse: the original was declined"
        elif original["status"] in ("REVERSED",) or (original["status"] == "TIMED_OUT"):
            nothing = "already reversed (or reversal queued)"
        elif original["type"] not in REVERSIBLE or (original["status"] == "CAPTURED"
                                                     and reason != "timeout"):
            raise errors.Conflict(f"original_transaction_id: a {original['type']} that is "
                                  f"{original['status'].lower()} cannot be voided")
        if original is not None:
            ctx.amount_minor, ctx.currency = original["amount_minor"], original["currency"]
            ctx.original = original
        else:
            ctx.currency = ctx.terminal.currency
        if nothing is not None:
            ctx.result = ChannelResult(responses.APPROVED, reason=nothing)
            await record(self.deps, ctx)
            return
        assert original is not None
        ctx.link = self.deps.registry.links.get(original["issuer_link"] or "")
        if reason == "timeout" or original["status"] == "PENDING" or ctx.link is None:
            await self._queue_reversal(ctx, original)
            return
        await self._reveal(ctx, original)
        ctx.mcc = original["mcc"]
        await self.original_pipeline.run(ctx)

    async def _queue_reversal(self, ctx: TxnContext, original: dict[str, Any]) -> None:
        """Store-and-forward: a 0420 for the original, repeated until acknowledged."""
        await self.deps.journal.run(store.enqueue_reversal({
            "transaction_id": original["transaction_id"],
            "issuer_link": original["issuer_link"] or "", "reason": ctx.reversal_reason}))
        self.deps.reversal_kick.set()
        ctx.result = ChannelResult(responses.APPROVED,
                                   reason="reversal accepted; advice queued until the issuer "
                                          "acknowledges it")
        await record(self.deps, ctx)

    async def GetTransaction(self, request: acquiring_pb2.GetTransactionRequest,
                             context: grpc.aio.ServicerContext,
                             ) -> acquiring_pb2.Transaction:
        which = request.WhichOneof("selector")
        if which == "transaction_id":
            row = await self.deps.journal.read(
                lambda c: store.by_transaction_id(c, request.transaction_id))
        elif which == "key":
            k = request.key
            row = await self.deps.journal.read(lambda c: store.by_request_key(
                c, k.terminal_id, k.stan, k.local_date_time, k.request_id or None))
        else:
            raise errors.FieldViolations([("selector", "transaction_id or key is required")])
        if row is None:
            raise errors.NotFound("transaction: not found")
        return transaction_message(row)

    # -- helpers ---------------------------------------------------------------------------

    async def _replay_early(self, ctx: TxnContext) -> bool:
        stored = await find_stored(self.deps.journal, ctx)
        if stored is None:
            return False
        ctx.replayed, ctx.stored, ctx.transaction_id = True, stored, stored["transaction_id"]
        return True

    async def _original(self, transaction_id: str, field: str) -> dict[str, Any]:
        row: dict[str, Any] | None = await self.deps.journal.read(
            lambda c: store.by_transaction_id(c, transaction_id))
        if row is None:
            raise errors.NotFound(f"{field}: no transaction {transaction_id!r}")
        return row

    async def _reveal(self, ctx: TxnContext, original: dict[str, Any]) -> None:
        ctx.pan_token, ctx.last_four = original["pan_token"], original["last_four"]
        ctx.bin, ctx.encrypted_pan = original["bin"], original["encrypted_pan"]
        ctx.entry_mode = ctx.entry_mode or original["entry_mode"]
        ctx.link = self.deps.registry.links.get(original["issuer_link"] or "")
        ctx.wallet_provider = original.get("wallet_provider") or ""
        ctx.currency_numeric = money_currency_numeric(original["currency"])
        if original["encrypted_pan"]:
            answer = await self.deps.hsm.RevealPan(hsm_pb2.RevealPanRequest(
                dek_key_ref=self.deps.dek_key_ref, encrypted_pan=original["encrypted_pan"]),
                timeout=2.0)
            ctx.pan = answer.pan

    def _row(self, ctx: TxnContext) -> dict[str, Any]:
        if ctx.replayed and ctx.stored is not None:
            return ctx.stored
        return {"transaction_id": ctx.transaction_id, "currency": ctx.currency,
                "wallet_provider": ctx.wallet_provider or None,
                "last_four": ctx.last_four, "bin": ctx.bin,
                "original_transaction_id": ctx.original["transaction_id"] if ctx.original
                else None, **outcome_values(ctx)}


def _result(row: dict[str, Any]) -> common_pb2.Result:
    code = row.get("response_code") or "96"
    return common_pb2.Result(response_code=code, reason=row.get("reason") or responses.reason(code),
                             approved=responses.approved(code))


RISK_DECISION = {"approve": acquiring_pb2.RISK_DECISION_APPROVE,
                 "decline": acquiring_pb2.RISK_DECISION_DECLINE,
                 "review": acquiring_pb2.RISK_DECISION_REVIEW}


def _risk(row: dict[str, Any]) -> acquiring_pb2.RiskAssessment | None:
    if row.get("risk_decision") is None:
        return None
    rules = row.get("risk_rules") or ""
    return acquiring_pb2.RiskAssessment(
        score=row.get("risk_score") or 0,
        decision=RISK_DECISION.get(row["risk_decision"], acquiring_pb2.RISK_DECISION_UNSPECIFIED),
        rules=rules.split(",") if rules else [])


def _balances(row: dict[str, Any]) -> list[common_pb2.Balance]:
    raw = row.get("balances")
    if not raw:
        return []
    return [common_pb2.Balance(type=BALANCE_TYPE.get(t, common_pb2.BALANCE_TYPE_UNSPECIFIED),
                               amount=common_pb2.Money(amount_minor=a, currency=c))
            for t, c, a in json.loads(raw)]


def _masked(row: dict[str, Any]) -> str:
    if not row.get("bin") or not row.get("last_four"):
        return ""
    return mask_pan(row["bin"] + "0" * 6 + row["last_four"])


def _ts(value: Any) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def transaction_message(row: dict[str, Any]) -> acquiring_pb2.Transaction:
    return acquiring_pb2.Transaction(
        transaction_id=row["transaction_id"], type=TXN_TYPE.get(row["type"], 0),
        status=STATUS.get(row["status"], 0),
        key=acquiring_pb2.RequestKey(terminal_id=row["terminal_id"],
                                     merchant_id=row["merchant_id"], stan=row["stan"],
                                     local_date_time=row["local_date_time"],
                                     request_id=row.get("request_id") or ""),
        amount=common_pb2.Money(amount_minor=row["amount_minor"], currency=row["currency"]),
        masked_pan=_masked(row), entry_mode=ENTRY_MODE.get(row["entry_mode"], 0),
        result=_result(row), approval_code=row.get("approval_code") or "",
        rrn=row.get("rrn") or "", original_transaction_id=row.get("original_transaction_id") or "",
        issuer_link=row.get("issuer_link") or "", created_at=_ts(row.get("created_at")),
        updated_at=_ts(row.get("updated_at")),
        reversal_acknowledged=bool(row.get("reversal_acknowledged")), mcc=row.get("mcc") or "",
        stood_in=bool(row.get("stood_in")), risk=_risk(row),
        provider_reference=row.get("provider_reference") or "")
