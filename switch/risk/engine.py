"""The risk engine: runs a rule set over one request and decides approve, review or decline.

Every enabled rule is checked in the order the YAML lists it; a rule that fires adds its score.
The decision, in order:

1. a fired rule with ``action: decline`` declines with that rule's response code (the first
   such rule in the YAML names the reason);
2. a summed score (capped at 1000) at or above ``thresholds.decline`` declines with 59
   (suspected fraud), naming the rules that added up;
3. a fired ``action: review`` rule, or a score at or above ``thresholds.review``: review (the
   request goes on to the issuer; the step emits an alert);
4. otherwise approve.

``replace`` swaps the whole rule set in one assignment: a request is assessed by the old set or
the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardswitch.currency import format_amount
from switch.context import TxnContext
from switch.risk.rules import (
    MAX_SCORE,
    THRESHOLD_CODE,
    UNKNOWN_COUNTRY,
    AmountLimitRule,
    BlockListRule,
    CountryRule,
    CurrencyRule,
    Rule,
    RuleSet,
    VelocityRule,
)
from switch.risk.velocity import Breach, VelocityStore


@dataclass(frozen=True, slots=True)
class FiredRule:
    id: str
    type: str
    action: str
    #: What this rule declines with (whatever its action).
    response_code: str
    #: ``"risk rule <id>: <what it saw>"``; never a PAN.
    reason: str
    score: int


@dataclass(frozen=True, slots=True)
class Assessment:
    score: int
    decision: str  # "approve" | "review" | "decline"
    fired: tuple[FiredRule, ...] = ()
    #: For a decline: the ISO 8583 response code and the reason to answer with.
    response_code: str = ""
    reason: str = ""


APPROVE = Assessment(0, "approve")


def terminal_country(name_location: str) -> str:
    """The last two characters of DE 43 (card acceptor name/location): ``"...SPRINGFIELD US"``
    -> ``"US"``; ``"??"`` when they are not two letters."""
    country = name_location[-2:].upper()
    return country if len(country) == 2 and country.isalpha() else UNKNOWN_COUNTRY


@dataclass(frozen=True, slots=True)
class _Active:
    """A rule set ready to run: enabled rules only, BIN prefix lengths longest first."""

    rules: RuleSet
    checks: tuple[Rule, ...]
    velocity: tuple[VelocityRule, ...]
    prefix_lengths: tuple[int, ...]

    def card_country(self, bin_: str | None) -> str:
        if bin_:
            countries = self.rules.bin_countries
            for n in self.prefix_lengths:
                country = countries.get(bin_[:n])
                if country is not None:
                    return country
        return UNKNOWN_COUNTRY


class RiskEngine:
    def __init__(self, rules: RuleSet, velocity: VelocityStore) -> None:
        self.velocity = velocity
        self._active = self._compile(rules)

    @property
    def rules(self) -> RuleSet:
        return self._active.rules

    def replace(self, rules: RuleSet) -> None:
        """Puts ``rules`` in force for every request assessed from now on (no restart)."""
        self._active = self._compile(rules)

    def _compile(self, rules: RuleSet) -> _Active:
        checks = tuple(r for r in rules.rules if r.enabled)
        self.velocity.use(rules.windows)
        lengths = tuple(sorted({len(p) for p in rules.bin_countries}, reverse=True))
        return _Active(rules, checks, tuple(r for r in checks if isinstance(r, VelocityRule)),
                       lengths)

    def assess(self, ctx: TxnContext) -> Assessment:
        active = self._active  # one read: the whole request sees one rule set
        breaches = ({b.rule.id: b for b in self.velocity.check(active.velocity, ctx)}
                    if active.velocity else {})
        fired: list[FiredRule] = []
        for rule in active.checks:
            if isinstance(rule, VelocityRule):
                breach = breaches.get(rule.id)
                found = None if breach is None else _velocity_fact(breach)
            else:
                found = _CHECKS[type(rule)](rule, ctx, active)
            if found is not None:
                fired_as, fact = found
                fired.append(FiredRule(rule.id, rule.type, rule.action, rule.code(fired_as),
                                       f"risk rule {rule.id}: {fact}", rule.score))
        if not fired:
            return APPROVE
        return _decide(tuple(fired), active)


def _decide(fired: tuple[FiredRule, ...], active: _Active) -> Assessment:
    score = min(MAX_SCORE, sum(f.score for f in fired))
    thresholds = active.rules.thresholds
    for f in fired:
        if f.action == "decline":
            return Assessment(score, "decline", fired, f.response_code, f.reason)
    if score >= thresholds.decline:
        parts = ", ".join(f"{f.id} +{f.score}" for f in fired if f.score)
        return Assessment(score, "decline", fired, THRESHOLD_CODE,
                          f"risk score {score} reaches the decline threshold "
                          f"{thresholds.decline}: {parts}")
    if score >= thresholds.review or any(f.action == "review" for f in fired):
        return Assessment(score, "review", fired)
    return Assessment(score, "approve", fired)


# -- one check per rule type: (what fired, for DEFAULT_CODES; the fact) or None ----------------

Found = tuple[str, str] | None


def _velocity_fact(b: Breach) -> tuple[str, str]:
    rule = b.rule
    if b.measure == "count":
        return "velocity.count", (f"{b.observed} transactions on this {rule.key} in "
                                  f"{rule.window} exceeds {b.limit}")
    cur = rule.currency or ""
    return "velocity.amount", (f"{format_amount(b.observed, cur)} on this {rule.key} in "
                               f"{rule.window} exceeds {format_amount(b.limit, cur)}")


def _amount_limit(rule: AmountLimitRule, ctx: TxnContext, active: _Active) -> Found:
    if ctx.currency != rule.currency or ctx.amount_minor <= rule.max_amount_minor:
        return None
    if rule.mccs and ctx.mcc not in rule.mccs:
        return None
    return "amount_limit", (f"{format_amount(ctx.amount_minor, ctx.currency)} at MCC {ctx.mcc} "
                            f"exceeds {format_amount(rule.max_amount_minor, rule.currency)}")


def _country(rule: CountryRule, ctx: TxnContext, active: _Active) -> Found:
    card = active.card_country(ctx.bin)
    terminal = terminal_country(ctx.terminal.name_location)
    if card in rule.block_card_countries:
        return "country", f"card country {card} is blocked"
    if terminal in rule.block_terminal_countries:
        return "country", f"terminal country {terminal} is blocked"
    allowed = rule.allow_only_terminal_countries
    if allowed and terminal not in allowed:
        return "country", f"terminal country {terminal} is not in allow_only_terminal_countries"
    if rule.cross_border and UNKNOWN_COUNTRY not in (card, terminal) and card != terminal:
        return "country", f"card country {card} differs from terminal country {terminal}"
    return None


def _currency(rule: CurrencyRule, ctx: TxnContext, active: _Active) -> Found:
    if rule.allowed and ctx.currency not in rule.allowed:
        return "currency", f"currency {ctx.currency} is not in the allowed list"
    if ctx.currency in rule.blocked:
        return "currency", f"currency {ctx.currency} is blocked"
    return None


def _block_list(rule: BlockListRule, ctx: TxnContext, active: _Active) -> Found:
    if ctx.pan_token and ctx.pan_token in rule.pan_tokens:
        return "block_list.card", "the card is on the block list"
    if rule.bins and ctx.bin and ctx.bin.startswith(rule.bins):
        prefix = next(p for p in rule.bins if ctx.bin.startswith(p))
        return "block_list.card", f"BIN prefix {prefix} is on the block list"
    if ctx.terminal.terminal_id in rule.terminal_ids:
        return "block_list.acceptor", f"terminal {ctx.terminal.terminal_id} is on the block list"
    if ctx.terminal.merchant_id in rule.merchant_ids:
        return "block_list.acceptor", f"merchant {ctx.terminal.merchant_id} is on the block list"
    return None


_CHECKS: dict[type[Rule], Callable[[Any, TxnContext, _Active], Found]] = {
    AmountLimitRule: _amount_limit,
    CountryRule: _country,
    CurrencyRule: _currency,
    BlockListRule: _block_list,
}
