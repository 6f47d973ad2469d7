"""The RiskCheck pipeline step: what it writes on the context, raises, emits and counts."""

from __future__ import annotations

import asyncio
import json

import pytest

from switch.context import Decline, TxnContext
from switch.risk import rules
from switch.risk.engine import RiskEngine
from switch.risk.step import RiskCheck
from switch.risk.velocity import VelocityStore
from tests.unit.test_risk_engine import Clock, txn

PAN = "6212345678901232"
RULES = """
thresholds: {review: 300, decline: 700}
bin_countries: {"621234": CN}
rules:
  - {id: cross_border, type: country, cross_border: true, action: score, score: 300}
  - {id: no_rub, type: currency, blocked: [RUB], action: decline}
"""


def step() -> RiskCheck:
    return RiskCheck(RiskEngine(rules.load(RULES), VelocityStore(clock=Clock())))


def run(check: RiskCheck, ctx: TxnContext) -> None:
    asyncio.run(check(ctx))


def test_a_decline_raises_the_rules_code_and_reason_and_emits_an_alert() -> None:
    check, ctx = step(), txn(currency="RUB", pan=PAN, bin="621234", last_four="1232")
    with pytest.raises(Decline) as caught:
        run(check, ctx)
    assert (caught.value.code, caught.value.reason) == (
        "57", "risk rule no_rub: currency RUB is blocked")
    assert (ctx.risk_score, ctx.risk_decision, ctx.risk_rules) == (
        300, "decline", ["cross_border", "no_rub"])
    ((event_type, data),) = ctx.events
    assert event_type == "risk.alert"
    assert {k: data[k] for k in ("terminal_id", "stan", "masked_pan", "last_four", "decision",
                                 "score", "response_code")} == {
        "terminal_id": "TERM0001", "stan": ctx.stan, "masked_pan": "621234******1232",
        "last_four": "1232", "decision": "decline", "score": 300, "response_code": "57"}
    assert [r["id"] for r in data["rules"]] == ["cross_border", "no_rub"]
    assert PAN not in json.dumps(data)
    assert check.engine.velocity.in_flight == 0, "a request risk declined does not count"


def test_a_review_goes_on_with_an_alert_and_is_counted() -> None:
    check, ctx = step(), txn(bin="621234")
    run(check, ctx)
    assert (ctx.risk_score, ctx.risk_decision, ctx.risk_rules) == (300, "review",
                                                                   ["cross_border"])
    assert [(t, d["decision"]) for t, d in ctx.events] == [("risk.alert", "review")]
    assert check.engine.velocity.in_flight == 1


def test_an_approval_goes_on_without_an_alert_and_is_counted() -> None:
    check, ctx = step(), txn()
    run(check, ctx)
    assert (ctx.risk_score, ctx.risk_decision, ctx.risk_rules, ctx.events) == (
        0, "approve", [], [])
    assert check.engine.velocity.in_flight == 1


@pytest.mark.parametrize("kind", ["refund", "capture", "reversal", "balance"])
def test_kinds_other_than_purchase_and_preauth_pass_unassessed(kind: str) -> None:
    check, ctx = step(), txn(kind=kind, currency="RUB")
    run(check, ctx)
    assert (ctx.risk_score, ctx.risk_decision, ctx.events) == (None, "", [])
    assert check.engine.velocity.in_flight == 0
