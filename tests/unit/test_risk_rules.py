"""The risk rule set schema: what loads, and the exact problem each bad field gives."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from switch.risk import rules
from switch.risk.rules import (
    AmountLimitRule,
    BlockListRule,
    CountryRule,
    CurrencyRule,
    RuleError,
    Thresholds,
    VelocityRule,
    Window,
)

VALID: dict[str, dict[str, Any]] = {
    "velocity": {"id": "v", "type": "velocity", "key": "card", "window": "10m",
                 "max_count": 5, "action": "decline"},
    "amount_limit": {"id": "a", "type": "amount_limit", "mccs": ["7995"], "currency": "USD",
                     "max_amount_minor": 10000, "action": "decline"},
    "country": {"id": "c", "type": "country", "cross_border": True, "action": "score",
                "score": 300},
    "currency": {"id": "cur", "type": "currency", "allowed": ["USD"], "action": "decline"},
    "block_list": {"id": "b", "type": "block_list", "bins": ["411111"], "action": "decline"},
}
TOKEN = "ab" * 32
DROP = object()


def problems_of(doc: Any) -> list[str]:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    with pytest.raises(RuleError) as caught:
        rules.load(text)
    return caught.value.problems


def one_rule(rule_type: str, **changes: Any) -> dict[str, Any]:
    rule = VALID[rule_type] | changes
    return {"rules": [{k: v for k, v in rule.items() if v is not DROP}]}


def test_the_shipped_default_rules_load() -> None:
    rule_set = rules.load_default()
    assert [r.id for r in rule_set.rules] == [
        "velocity.card.count_10m", "velocity.card.burst_10m", "velocity.card.amount_24h",
        "velocity.terminal.count_1m", "velocity.merchant.count_10m", "amount_limit.gambling",
        "country.cross_border", "block_list.hot"]
    assert rule_set.thresholds == Thresholds(review=300, decline=700)
    assert rule_set.bin_countries["621234"] == "CN"


def test_a_rule_of_each_type_loads_with_its_defaults() -> None:
    rule_set = rules.load(yaml.safe_dump({"rules": list(VALID.values())}))
    velocity, amount, country, currency, block = rule_set.rules
    assert velocity == VelocityRule(
        id="v", type="velocity", action="decline", score=0, response_code="", enabled=True,
        key="card", window="10m", max_count=5, max_amount_minor=None, currency=None,
        kinds=frozenset({"purchase", "preauth"}),
        counter=Window("card", 600, frozenset({"purchase", "preauth"}), None))
    assert isinstance(amount, AmountLimitRule) and amount.mccs == frozenset({"7995"})
    assert isinstance(country, CountryRule) and country.cross_border
    assert isinstance(currency, CurrencyRule) and currency.blocked == frozenset()
    assert isinstance(block, BlockListRule) and block.bins == ("411111",)
    assert rule_set.thresholds == Thresholds(review=500, decline=800)
    assert (velocity.code("velocity.count"), velocity.code("velocity.amount"),
            amount.code("amount_limit"), country.code("country"), currency.code("currency"),
            block.code("block_list.card"), block.code("block_list.acceptor")) == (
        "65", "61", "61", "62", "57", "62", "58")


def test_a_rule_naming_its_response_code_declines_with_it() -> None:
    rule_set = rules.load(yaml.safe_dump(one_rule("velocity", response_code="05")))
    assert rule_set.rules[0].code("velocity.count") == "05"


def test_yaml_reads_no_as_norway_and_a_leading_zero_mcc_as_text() -> None:
    rule_set = rules.load("""
rules:
  - {id: c, type: country, block_card_countries: [NO], action: decline}
  - {id: a, type: amount_limit, mccs: [0742, 7995], currency: USD, max_amount_minor: 1,
     action: decline}
""")
    country, amount = rule_set.rules
    assert isinstance(country, CountryRule) and country.block_card_countries == {"NO"}
    assert isinstance(amount, AmountLimitRule) and amount.mccs == {"0742", "7995"}


def test_windows_are_the_counters_of_enabled_velocity_rules() -> None:
    doc = {"rules": [VALID["velocity"], VALID["velocity"] | {"id": "v2", "window": "1h",
                                                             "enabled": False}]}
    assert rules.load(yaml.safe_dump(doc)).windows == {
        Window("card", 600, frozenset({"purchase", "preauth"}), None)}


@pytest.mark.parametrize(("rule_type", "changes", "expected"), [
    ("velocity", {"window": "10 min"}, "rules[0].window: must be like 10m, 1h or 1d"),
    ("velocity", {"window": "8d"}, "rules[0].window: must be at most 7d"),
    ("velocity", {"key": "pan"}, "rules[0].key: must be one of card, merchant, terminal"),
    ("velocity", {"max_count": 0}, "rules[0].max_count: must be a positive integer"),
    ("velocity", {"max_count": DROP},
     "rules[0]: needs max_count or max_amount_minor (or both)"),
    ("velocity", {"max_amount_minor": 100},
     "rules[0].currency: is required with max_amount_minor"),
    ("velocity", {"currency": "USD"}, "rules[0].currency: only applies with max_amount_minor"),
    ("velocity", {"max_amount_minor": 1.5, "currency": "USD"},
     "rules[0].max_amount_minor: must be a positive integer of minor units, at most "
     "999999999999"),
    ("velocity", {"kinds": ["refund"]}, "rules[0].kinds[0]: must be purchase or preauth"),
    ("velocity", {"kinds": []}, "rules[0].kinds: must be a non-empty list of purchase, preauth"),
    ("velocity", {"max_cont": 5},
     "rules[0].max_cont: unknown field for a velocity rule (expected one of action, currency, "
     "enabled, id, key, kinds, max_amount_minor, max_count, response_code, score, type, "
     "window)"),
    ("velocity", {"id": DROP}, "rules[0].id: is required"),
    ("velocity", {"id": "two words"},
     "rules[0].id: must be 1 to 64 letters, digits or . _ : - (starting with a letter or "
     "digit)"),
    ("velocity", {"action": "block"}, "rules[0].action: must be one of decline, review, score"),
    ("velocity", {"score": 1001}, "rules[0].score: must be an integer from 0 to 1000"),
    ("velocity", {"enabled": "yes"}, "rules[0].enabled: must be true or false"),
    ("velocity", {"response_code": "00"},
     "rules[0].response_code: must be a 2-digit ISO 8583 response code other than an approval "
     "(00, 10, 11)"),
    ("velocity", {"response_code": "65", "action": "review"},
     "rules[0].response_code: only applies to action: decline"),
    ("velocity", {"type": "geo"},
     "rules[0].type: must be one of amount_limit, block_list, country, currency, velocity"),
    ("amount_limit", {"currency": "XXX"},
     "rules[0].currency: must be an ISO 4217 alphabetic currency code such as USD"),
    ("amount_limit", {"max_amount_minor": DROP}, "rules[0].max_amount_minor: is required"),
    ("amount_limit", {"mccs": ["7995", "79"]},
     'rules[0].mccs[1]: must be a 4-digit merchant category code such as "5411"'),
    ("amount_limit", {"mccs": "7995"}, "rules[0].mccs: must be a list of 4-digit MCCs"),
    ("country", {"cross_border": False},
     "rules[0]: needs block_card_countries, block_terminal_countries, "
     "allow_only_terminal_countries or cross_border: true"),
    ("country", {"block_card_countries": ["RUS"]},
     "rules[0].block_card_countries[0]: must be a 2-letter ISO 3166 country code such as US "
     "(or ?? for unknown)"),
    ("currency", {"blocked": ["RUB"]}, "rules[0]: needs exactly one of allowed or blocked"),
    ("currency", {"allowed": DROP}, "rules[0]: needs exactly one of allowed or blocked"),
    ("block_list", {"bins": ["4111111"]}, "rules[0].bins[0]: must be a BIN prefix of 1 to 6 "
                                          "digits"),
    ("block_list", {"terminal_ids": ["TERMINAL9"]},
     "rules[0].terminal_ids[0]: must be a terminal id of 1 to 8 characters"),
    ("block_list", {"merchant_ids": [""]},
     "rules[0].merchant_ids[0]: must be a merchant id of 1 to 15 characters"),
    ("block_list", {"pan_tokens": [TOKEN, "not-a-hash"]},
     "rules[0].pan_tokens[1]: must be a PAN token (the card's keyed hash: 64 lowercase hex "
     "characters)"),
])
def test_each_bad_field_gives_its_exact_problem(rule_type: str, changes: dict[str, Any],
                                                 expected: str) -> None:
    assert problems_of(one_rule(rule_type, **changes)) == [expected]


def test_a_clear_pan_in_the_block_list_is_refused_without_echoing_it() -> None:
    pan = "4761739001010010"
    problems = problems_of(f"rules: [{{id: b, type: block_list, action: decline, "
                           f"pan_tokens: [{TOKEN}, '{pan}']}}]")
    assert problems == ["rules[0].pan_tokens[1]: looks like a card number: list the card's "
                        "PAN token (its keyed hash), never the PAN"]
    assert pan not in str(problems)


def test_every_bad_rule_is_reported_at_once_with_its_index() -> None:
    doc = {"rules": [VALID["velocity"] | {"window": "soon"}, VALID["currency"],
                     VALID["country"] | {"id": "v", "score": -1}]}
    assert problems_of(doc) == ["rules[0].window: must be like 10m, 1h or 1d",
                                "rules[2].score: must be an integer from 0 to 1000"]


def test_a_duplicate_id_names_the_first_rule_with_it() -> None:
    doc = {"rules": [VALID["velocity"], VALID["currency"], VALID["country"] | {"id": "v"}]}
    assert problems_of(doc) == ["rules[2].id: duplicates rules[0].id 'v'"]


@pytest.mark.parametrize(("doc", "expected"), [
    ("rules: [", ["yaml: expected the node content, but found '<stream end>' "
                  "(line 1, column 9)"]),
    ("- a", ["(document): must be a mapping with rules, and optionally thresholds and "
             "bin_countries"]),
    ("thresholds: {review: 300}", ["rules: is required (a list; may be empty)"]),
    ("rules: {}", ["rules: must be a list of rules"]),
    ("rules: [5]", ["rules[0]: must be a mapping with id, type and action"]),
    ("rule: []\nrules: []", ["rule: unknown field (expected one of bin_countries, rules, "
                             "thresholds)"]),
    ("rules: []\nthresholds: {review: 800, decline: 700}",
     ["thresholds.review: must not be above thresholds.decline (700)"]),
    ("rules: []\nthresholds: {review: 0, decline: 2000, block: 5}",
     ["thresholds.block: unknown field (expected review, decline)",
      "thresholds.review: must be an integer from 1 to 1000",
      "thresholds.decline: must be an integer from 1 to 1000"]),
    ("rules: []\nbin_countries: {'4111x': US, '411111': USA}",
     ["bin_countries.4111x: must be a BIN prefix of 1 to 6 digits",
      "bin_countries.411111: must be a 2-letter ISO 3166 country code such as US "
      "(or ?? for unknown)"]),
])
def test_document_level_problems(doc: str, expected: list[str]) -> None:
    assert problems_of(doc) == expected


def test_an_empty_rule_list_is_a_valid_rule_set() -> None:
    assert rules.load("rules: []").rules == ()
