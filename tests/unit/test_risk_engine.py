"""The risk engine: each rule type firing and not, thresholds, reasons, replacing rules live."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from switch.context import TerminalConfig, TxnContext
from switch.risk import rules
from switch.risk.engine import Assessment, FiredRule, RiskEngine, terminal_country
from switch.risk.velocity import VelocityStore

TOKEN_A, TOKEN_B = "a" * 64, "b" * 64
TERMINAL = TerminalConfig(terminal_id="TERM0001", merchant_id="MERCHANT000001", mcc="5411",
                          name_location="CARDSWITCH DEMO STORE  SPRINGFIELD   US",
                          currency="USD", bdk_key_ref="bdk")
_stan = iter(range(1, 999_999))


def txn(stan: str | None = None, **changes: Any) -> TxnContext:
    """A USD 10.00 purchase by card TOKEN_A (BIN 476173) at a US grocery terminal."""
    ctx = TxnContext(kind="purchase", terminal=TERMINAL, stan=stan or f"{next(_stan):06d}",
                     local_date_time="261123101010", request_id=None,
                     deadline=time.monotonic() + 30, amount_minor=1000, currency="USD",
                     mcc="5411", pan_token=TOKEN_A, bin="476173", last_four="0010")
    for name, value in changes.items():
        setattr(ctx, name, value)
    return ctx


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine(doc: str, clock: Clock | None = None) -> RiskEngine:
    return RiskEngine(rules.load(doc), VelocityStore(clock=clock or Clock()))


def fired(assessment: Assessment) -> list[tuple[str, str, str]]:
    return [(f.id, f.response_code, f.reason) for f in assessment.fired]


# -- velocity --------------------------------------------------------------------------------

VELOCITY = """
rules:
  - {id: velocity.card.count_10m, type: velocity, key: card, window: 10m, max_count: 5,
     action: decline}
"""


def test_velocity_count_declines_the_request_that_would_exceed_the_limit() -> None:
    risk = engine(VELOCITY)
    for _ in range(5):
        ctx = txn()
        assert risk.assess(ctx).decision == "approve"
        risk.velocity.admit(ctx)
    assessment = risk.assess(txn())
    assert (assessment.decision, assessment.response_code, assessment.reason) == (
        "decline", "65", "risk rule velocity.card.count_10m: 6 transactions on this card in 10m "
                         "exceeds 5")


def test_velocity_counts_each_card_on_its_own() -> None:
    risk = engine(VELOCITY)
    for _ in range(5):
        risk.velocity.admit(txn())
    assert risk.assess(txn(pan_token=TOKEN_B)).decision == "approve"


def test_velocity_count_forgets_attempts_older_than_the_window() -> None:
    clock = Clock()
    risk = engine(VELOCITY, clock)
    for _ in range(5):
        risk.velocity.admit(txn())
    clock.now += 600
    assert risk.assess(txn()) == Assessment(0, "approve")


def test_velocity_amount_declines_61_with_the_amounts_in_the_reason() -> None:
    risk = engine("""
rules:
  - {id: card.amount_24h, type: velocity, key: card, window: 24h, max_amount_minor: 500000,
     currency: USD, action: decline}
""")
    risk.velocity.admit(txn(amount_minor=450000))
    assert risk.assess(txn(amount_minor=50000)).decision == "approve"
    assert risk.assess(txn(amount_minor=90000, currency="EUR")).decision == "approve"
    assessment = risk.assess(txn(amount_minor=50001))
    assert (assessment.response_code, assessment.reason) == (
        "61", "risk rule card.amount_24h: 5000.01 USD on this card in 24h exceeds 5000.00 USD")


def test_velocity_per_terminal_and_per_merchant() -> None:
    risk = engine("""
rules:
  - {id: t, type: velocity, key: terminal, window: 1m, max_count: 1, action: decline}
  - {id: m, type: velocity, key: merchant, window: 1h, max_count: 2, action: review, score: 10}
""")
    risk.velocity.admit(txn(pan_token=TOKEN_B))
    other_terminal = replace(TERMINAL, terminal_id="TERM0002")
    assert fired(risk.assess(txn(terminal=other_terminal))) == []
    assert fired(risk.assess(txn())) == [
        ("t", "65", "risk rule t: 2 transactions on this terminal in 1m exceeds 1")]
    risk.velocity.admit(txn(terminal=other_terminal))
    assessment = risk.assess(txn(terminal=replace(TERMINAL, terminal_id="TERM0003")))
    assert assessment.decision == "review"
    assert fired(assessment) == [
        ("m", "65", "risk rule m: 3 transactions on this merchant in 1h exceeds 2")]


# -- amount limit, country, currency, block list -----------------------------------------------

def test_amount_limit_fires_above_the_limit_for_its_mccs_and_currency_only() -> None:
    risk = engine("""
rules:
  - {id: gambling, type: amount_limit, mccs: ["7995"], currency: USD,
     max_amount_minor: 10000, action: decline}
""")
    assert risk.assess(txn(mcc="7995", amount_minor=10000)).decision == "approve"
    assert risk.assess(txn(mcc="5411", amount_minor=20000)).decision == "approve"
    assert risk.assess(txn(mcc="7995", amount_minor=20000, currency="EUR")).decision == "approve"
    assessment = risk.assess(txn(mcc="7995", amount_minor=10001))
    assert (assessment.response_code, assessment.reason) == (
        "61", "risk rule gambling: 100.01 USD at MCC 7995 exceeds 100.00 USD")


COUNTRIES = """
bin_countries: {"4": GB, "476173": US, "621234": CN}
rules:
  - {id: c, type: country, %s, action: decline}
"""
FRENCH_TERMINAL = replace(TERMINAL, name_location="BOULANGERIE DU COIN    PARIS        FR")


@pytest.mark.parametrize(("spec", "changes", "reason"), [
    ("block_card_countries: [CN]", {"bin": "621234"}, "card country CN is blocked"),
    ("block_card_countries: ['??']", {"bin": "999999"}, "card country ?? is blocked"),
    ("block_terminal_countries: [FR]", {"terminal": FRENCH_TERMINAL},
     "terminal country FR is blocked"),
    ("allow_only_terminal_countries: [US, CA]", {"terminal": FRENCH_TERMINAL},
     "terminal country FR is not in allow_only_terminal_countries"),
    ("cross_border: true", {"bin": "621234"}, "card country CN differs from terminal country US"),
    ("cross_border: true", {"bin": "411111"}, "card country GB differs from terminal country US"),
])
def test_country_rule_fires(spec: str, changes: dict[str, Any], reason: str) -> None:
    assert fired(engine(COUNTRIES % spec).assess(txn(**changes))) == [
        ("c", "62", f"risk rule c: {reason}")]


@pytest.mark.parametrize(("spec", "changes"), [
    ("block_card_countries: [CN]", {}),
    ("block_terminal_countries: [FR]", {}),
    ("allow_only_terminal_countries: [US, CA]", {}),
    ("cross_border: true", {}),
    ("cross_border: true", {"bin": "999999"}),  # unknown card country: not cross-border
    ("cross_border: true", {"bin": None}),  # no card (wallet token)
])
def test_country_rule_does_not_fire(spec: str, changes: dict[str, Any]) -> None:
    assert engine(COUNTRIES % spec).assess(txn(**changes)).fired == ()


def test_terminal_country_is_the_last_two_letters_of_name_location() -> None:
    assert [terminal_country(n) for n in (TERMINAL.name_location, "SHOP fr", "SHOP 12", "")] == [
        "US", "FR", "??", "??"]


def test_currency_rule_allow_list_and_block_list() -> None:
    allow = engine("rules: [{id: cur, type: currency, allowed: [USD, EUR], action: decline}]")
    block = engine("rules: [{id: cur, type: currency, blocked: [RUB], action: decline}]")
    assert allow.assess(txn(currency="EUR")).decision == "approve"
    assert fired(allow.assess(txn(currency="GBP"))) == [
        ("cur", "57", "risk rule cur: currency GBP is not in the allowed list")]
    assert block.assess(txn(currency="USD")).decision == "approve"
    assert fired(block.assess(txn(currency="RUB"))) == [
        ("cur", "57", "risk rule cur: currency RUB is blocked")]


BLOCK = f"""
rules:
  - id: hot
    type: block_list
    pan_tokens: [{TOKEN_B}]
    bins: ["5413"]
    terminal_ids: [TERM0666]
    merchant_ids: [MERCHANT000666]
    action: decline
"""


@pytest.mark.parametrize(("changes", "code", "reason"), [
    ({"pan_token": TOKEN_B}, "62", "the card is on the block list"),
    ({"bin": "541333"}, "62", "BIN prefix 5413 is on the block list"),
    ({"terminal": replace(TERMINAL, terminal_id="TERM0666")}, "58",
     "terminal TERM0666 is on the block list"),
    ({"terminal": replace(TERMINAL, merchant_id="MERCHANT000666")}, "58",
     "merchant MERCHANT000666 is on the block list"),
])
def test_block_list_fires_per_entry(changes: dict[str, Any], code: str, reason: str) -> None:
    assert fired(engine(BLOCK).assess(txn(**changes))) == [("hot", code,
                                                            f"risk rule hot: {reason}")]


def test_block_list_lets_unlisted_cards_and_acceptors_through() -> None:
    assert engine(BLOCK).assess(txn()) == Assessment(0, "approve")


# -- scores, thresholds, actions -------------------------------------------------------------

SCORED = """
thresholds: {review: 300, decline: 700}
bin_countries: {"621234": CN}
rules:
  - {id: cross_border, type: country, cross_border: true, action: score, score: 300}
  - {id: big, type: amount_limit, currency: USD, max_amount_minor: 50000, action: score,
     score: 450}
  - {id: watch, type: currency, allowed: [USD], action: review}
"""


def test_scores_below_the_review_threshold_approve_and_still_list_the_rules() -> None:
    risk = engine(SCORED.replace("review: 300", "review: 301"))
    assessment = risk.assess(txn(bin="621234"))
    assert (assessment.score, assessment.decision, [f.id for f in assessment.fired]) == (
        300, "approve", ["cross_border"])


def test_a_score_at_the_review_threshold_reviews() -> None:
    assessment = engine(SCORED).assess(txn(bin="621234"))
    assert (assessment.score, assessment.decision, assessment.response_code) == (
        300, "review", "")


def test_a_review_rule_reviews_whatever_the_score() -> None:
    assessment = engine(SCORED).assess(txn(currency="EUR"))
    assert (assessment.score, assessment.decision) == (0, "review")


def test_a_score_at_the_decline_threshold_declines_59_naming_the_rules_that_added_up() -> None:
    assessment = engine(SCORED).assess(txn(bin="621234", amount_minor=60000))
    assert (assessment.score, assessment.decision, assessment.response_code,
            assessment.reason) == (
        750, "decline", "59",
        "risk score 750 reaches the decline threshold 700: cross_border +300, big +450")


def test_the_summed_score_is_capped_at_1000() -> None:
    risk = engine("""
rules:
  - {id: a, type: currency, allowed: [USD], action: score, score: 800}
  - {id: b, type: currency, blocked: [EUR], action: score, score: 800}
""")
    assert risk.assess(txn(currency="EUR")).score == 1000


def test_a_decline_rule_wins_over_scores_and_the_first_one_names_the_reason() -> None:
    risk = engine("""
rules:
  - {id: watch, type: currency, blocked: [EUR], action: score, score: 900}
  - {id: first, type: currency, blocked: [EUR], action: decline, response_code: "05"}
  - {id: second, type: currency, allowed: [USD], action: decline}
""")
    assessment = risk.assess(txn(currency="EUR"))
    assert (assessment.decision, assessment.response_code, assessment.reason) == (
        "decline", "05", "risk rule first: currency EUR is blocked")
    assert [f.id for f in assessment.fired] == ["watch", "first", "second"]


def test_a_disabled_rule_never_fires() -> None:
    risk = engine("rules: [{id: x, type: currency, blocked: [USD], action: decline, "
                  "enabled: false}]")
    assert risk.assess(txn()) == Assessment(0, "approve")


def test_fired_rules_carry_type_action_code_reason_and_score() -> None:
    (rule,) = engine(SCORED).assess(txn(bin="621234")).fired
    assert rule == FiredRule("cross_border", "country", "score", "62",
                             "risk rule cross_border: card country CN differs from terminal "
                             "country US", 300)


# -- replacing the rules -----------------------------------------------------------------------

def test_replace_puts_new_rules_in_force_for_the_next_request() -> None:
    risk = engine("rules: []")
    assert risk.assess(txn(currency="EUR")).decision == "approve"
    risk.replace(rules.load("rules: [{id: no_eur, type: currency, blocked: [EUR], "
                            "action: decline}]"))
    assert risk.assess(txn(currency="EUR")).reason == "risk rule no_eur: currency EUR is blocked"
    assert risk.rules.rules[0].id == "no_eur"


def test_replace_with_a_new_velocity_window_counts_in_it_from_then_on() -> None:
    risk = engine("rules: []")
    risk.replace(rules.load(VELOCITY.replace("max_count: 5", "max_count: 1")))
    risk.velocity.admit(txn())
    assert risk.assess(txn()).response_code == "65"
    risk.replace(rules.load("rules: []"))
    assert risk.assess(txn()).decision == "approve"


def test_the_default_rules_approve_a_few_purchases_on_one_card() -> None:
    risk = RiskEngine(rules.load_default(), VelocityStore(clock=Clock()))
    decisions = []
    for _ in range(5):
        ctx = txn()
        decisions.append(risk.assess(ctx).decision)
        risk.velocity.admit(ctx)
    assert decisions == ["approve"] * 5
    assert risk.assess(txn()).decision == "review"  # the 6th in 10 minutes


def test_the_default_rules_only_review_a_burst_on_a_foreign_card() -> None:
    risk = RiskEngine(rules.load_default(), VelocityStore(clock=Clock()))
    for _ in range(5):
        risk.velocity.admit(txn(bin="621234"))
    assessment = risk.assess(txn(bin="621234"))
    assert (assessment.score, assessment.decision, [f.id for f in assessment.fired]) == (
        600, "review", ["velocity.card.count_10m", "country.cross_border"])
