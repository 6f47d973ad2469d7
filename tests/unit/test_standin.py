"""Stand-in decisions: one test per rule, each with its exact response code, reason and rule."""

import doctest
from dataclasses import replace
from typing import Any

import pytest

from cardswitch.v1 import admin_pb2
from switch import standin
from switch.standin import StandInDecision, StandInRules, approval_code, decide, validate

RULES = StandInRules(enabled=True, currency="USD", max_amount_minor=10000,
                     max_daily_amount_per_card_minor=25000, max_daily_count_per_card=3,
                     excluded_mccs=("6011",))


def ask(rules: StandInRules = RULES, **txn: Any) -> StandInDecision:
    """A chip purchase of 50.00 USD at a grocery, no PIN, the card's first stand-in today."""
    fields: dict[str, Any] = {
        "kind": "purchase", "amount_minor": 5000, "currency": "USD", "entry_mode": "chip",
        "mcc": "5411", "has_pin": False, "card_today_amount_minor": 0, "card_today_count": 0}
    return decide(rules, **(fields | txn))


def declined(code: str, rule: str, reason: str) -> StandInDecision:
    return StandInDecision(False, code, f"stand-in: {reason}", rule)


def test_module_examples() -> None:
    assert doctest.testmod(standin).failed == 0


def test_within_every_limit_it_approves_and_says_where_the_card_stands() -> None:
    assert ask() == StandInDecision(
        True, "00", "stand-in: 5000 USD approved within the limits (per transaction 10000, "
                    "today 5000 of 25000, approval 1 of 3)", "stand_in.within_limits")


def test_disabled_rules_answer_91() -> None:
    assert ask(replace(RULES, enabled=False)) == declined(
        "91", "stand_in.enabled", "disabled on this link")


@pytest.mark.parametrize("kind", ["balance", "refund", "capture", "reversal", "cash-advance"])
def test_only_purchases_and_preauths_are_stood_in(kind: str) -> None:
    assert ask(kind=kind) == declined(
        "91", "stand_in.kind", f"{kind} is never stood in (only purchase, preauth)")


def test_a_preauth_is_stood_in() -> None:
    assert ask(kind="preauth").approved


def test_a_transaction_with_a_pin_answers_91() -> None:
    assert ask(has_pin=True) == declined(
        "91", "stand_in.pin", "a PIN was entered and only the issuer can verify it")


def test_another_currency_answers_91() -> None:
    assert ask(currency="EUR") == declined(
        "91", "stand_in.currency", "EUR is not the stand-in currency USD")


def test_by_default_every_entry_mode_but_manual_is_stood_in() -> None:
    assert ask(entry_mode="manual") == declined(
        "91", "stand_in.entry_mode", "entry mode manual is not stood in")
    for mode in ("magstripe", "chip", "contactless", "ecommerce", "wallet"):
        assert ask(entry_mode=mode).approved, mode


def test_listed_entry_modes_are_the_only_ones_stood_in() -> None:
    rules = replace(RULES, entry_modes=("chip", "manual"))
    assert ask(rules, entry_mode="manual").approved
    assert ask(rules, entry_mode="contactless") == declined(
        "91", "stand_in.entry_mode", "entry mode contactless is not stood in")


def test_an_excluded_mcc_answers_91() -> None:
    assert ask(mcc="6011") == declined("91", "stand_in.mcc", "MCC 6011 is excluded")


def test_over_the_per_transaction_limit_answers_61() -> None:
    assert ask(amount_minor=10000).approved
    assert ask(amount_minor=12000) == declined(
        "61", "stand_in.max_amount", "12000 USD exceeds the per-transaction limit 10000")


def test_over_the_daily_amount_per_card_answers_61() -> None:
    assert ask(amount_minor=5000, card_today_amount_minor=20000).approved
    assert ask(amount_minor=6000, card_today_amount_minor=20000) == declined(
        "61", "stand_in.max_daily_amount", "6000 USD would bring the card's stood-in total "
                                           "today to 26000, over the daily limit 25000")


def test_over_the_daily_count_per_card_answers_65() -> None:
    assert ask(card_today_count=2).approved
    assert ask(card_today_count=3) == declined(
        "65", "stand_in.max_daily_count",
        "the card already has 3 stood-in approvals today, the daily limit is 3")


def test_eligibility_is_checked_before_limits() -> None:
    assert ask(has_pin=True, amount_minor=99999).rule == "stand_in.pin"
    assert ask(amount_minor=12000, card_today_count=3).rule == "stand_in.max_amount"


def test_negative_figures_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^amount_minor: must not be negative, got -1$"):
        ask(amount_minor=-1)
    with pytest.raises(ValueError, match=r"^card_today_count: must not be negative, got -1$"):
        ask(card_today_count=-1)


def test_rules_round_trip_through_their_proto() -> None:
    rules = replace(RULES, entry_modes=("chip", "contactless"))
    assert StandInRules.from_proto(rules.to_proto()) == rules


def test_from_proto_of_an_unset_message_is_disabled() -> None:
    assert StandInRules.from_proto(admin_pb2.StandInRules()) == StandInRules()


def test_validate_refuses_enabled_rules_without_limits() -> None:
    rules = StandInRules.from_proto(admin_pb2.StandInRules(enabled=True, currency="USD"))
    assert validate(rules) == [
        "stand_in.max_amount_minor: must be greater than zero when stand-in is enabled, got 0",
        "stand_in.max_daily_amount_per_card_minor: must be greater than zero when stand-in is "
        "enabled, got 0",
        "stand_in.max_daily_count_per_card: must be greater than zero when stand-in is "
        "enabled, got 0"]


def test_a_limit_left_at_zero_approves_nothing() -> None:
    assert ask(replace(RULES, max_daily_count_per_card=0)) == declined(
        "65", "stand_in.max_daily_count",
        "the card already has 0 stood-in approvals today, the daily limit is 0")


@pytest.mark.parametrize(("change", "problem"), [
    ({"currency": "XYZ"}, "stand_in.currency: unknown ISO 4217 currency 'XYZ'"),
    ({"max_daily_amount_per_card_minor": 5000},
     "stand_in.max_daily_amount_per_card_minor: 5000 is below max_amount_minor 10000"),
    ({"entry_modes": ("chip", "swipe")},
     "stand_in.entry_modes: unknown entry mode 'swipe' "
     "(known: chip, contactless, ecommerce, magstripe, manual, wallet)"),
    ({"excluded_mccs": ("601",)}, "stand_in.excluded_mccs: '601' is not 4 digits"),
])
def test_validate_names_the_field_and_problem(change: dict[str, Any], problem: str) -> None:
    assert validate(replace(RULES, **change)) == [problem]


def test_validate_accepts_the_example_rules_and_ignores_disabled_ones() -> None:
    assert validate(RULES) == []
    assert validate(StandInRules(enabled=False, currency="XYZ")) == []


def test_approval_code_is_s_and_five_digits() -> None:
    assert [approval_code(n) for n in (0, 42, 99999, 100000, 123456)] == [
        "S00000", "S00042", "S99999", "S00000", "S23456"]
    with pytest.raises(ValueError, match=r"^transaction_seq: must not be negative, got -1$"):
        approval_code(-1)
