"""The pipeline step: assesses purchases and pre-authorisations against the risk rules.

Reads ``kind``, ``pan_token``, ``bin``, ``amount_minor``, ``currency``, ``mcc`` and ``terminal``;
writes ``risk_score``, ``risk_decision``, ``risk_rules`` and, for a review or a decline, a
``risk.alert`` event. A decline raises :class:`~switch.context.Decline` with the rule's response
code and a reason naming the rule. A request let through is counted by the velocity store at
once, before its journal row is polled.

It may run before or after ``Idempotency``: the velocity store counts each request key once, so
a retry is not counted twice either way.
"""

from __future__ import annotations

from typing import Any

from cardswitch.cards import mask_pan
from switch.context import Decline, TxnContext
from switch.risk.engine import Assessment, RiskEngine
from switch.risk.rules import CHECKED_KINDS

ALERT_EVENT = "risk.alert"


class RiskCheck:
    def __init__(self, engine: RiskEngine) -> None:
        self.engine = engine

    async def __call__(self, ctx: TxnContext) -> None:
        if ctx.kind not in CHECKED_KINDS:
            return
        assessment = self.engine.assess(ctx)
        ctx.risk_score = assessment.score
        ctx.risk_decision = assessment.decision
        ctx.risk_rules = [f.id for f in assessment.fired]
        if assessment.decision != "approve":
            ctx.events.append((ALERT_EVENT, alert(ctx, assessment)))
        if assessment.decision == "decline":
            self.engine.velocity.reject(ctx)
            raise Decline(assessment.response_code, assessment.reason)
        self.engine.velocity.admit(ctx)


def alert(ctx: TxnContext, assessment: Assessment) -> dict[str, Any]:
    """The ``risk.alert`` event body: the transaction's keys, the card masked, what fired."""
    return {
        "transaction_id": ctx.transaction_id or None,
        "terminal_id": ctx.terminal.terminal_id,
        "merchant_id": ctx.terminal.merchant_id,
        "stan": ctx.stan,
        "local_date_time": ctx.local_date_time,
        "request_id": ctx.request_id,
        "kind": ctx.kind,
        "masked_pan": mask_pan(ctx.pan) if ctx.pan else None,
        "last_four": ctx.last_four,
        "amount_minor": ctx.amount_minor,
        "currency": ctx.currency,
        "mcc": ctx.mcc,
        "decision": assessment.decision,
        "score": assessment.score,
        "response_code": assessment.response_code or None,
        "rules": [{"id": f.id, "type": f.type, "action": f.action, "score": f.score,
                   "reason": f.reason} for f in assessment.fired],
    }
