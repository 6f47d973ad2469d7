"""Stand-in processing (STIP): deciding in the issuer's place while it is unavailable.

When a link is down or its breaker is open, the switch may approve small, low-risk
authorisations itself within the link's :class:`StandInRules`, mark them stood in, and send the
issuer an advice later. Everything else is answered as the issuer would be unreachable.

The checks run in this order; the first that fails gives the answer:

=========================  ====  ===================================================
rule                       code  fails when
=========================  ====  ===================================================
stand_in.enabled           91    stand-in is off for the link
stand_in.kind              91    not a purchase or preauth (refund, balance, capture...)
stand_in.pin               91    a PIN was entered: only the issuer can verify it
stand_in.currency          91    not the currency the limits are in
stand_in.entry_mode        91    the entry mode is not eligible
stand_in.mcc               91    the MCC is excluded
stand_in.max_amount        61    the amount is over the per-transaction limit
stand_in.max_daily_amount  61    the card's stood-in total today would pass the limit
stand_in.max_daily_count   65    the card has had its stood-in approvals for today
=========================  ====  ===================================================

"91" (issuer inoperative) says we may not decide, so the terminal may retry later; "61" and
"65" are the ISO answers for amount and frequency limits. Limits are taken literally: a limit
of 0 approves nothing (so an unset limit fails safe), and :func:`validate` refuses enabled rules
without limits when they are configured.

>>> rules = StandInRules(enabled=True, currency="USD", max_amount_minor=10000,
...                      max_daily_amount_per_card_minor=50000, max_daily_count_per_card=5)
>>> decide(rules, kind="purchase", amount_minor=12000, currency="USD", entry_mode="chip",
...        mcc="5411", has_pin=False, card_today_amount_minor=0, card_today_count=0).reason
'stand-in: 12000 USD exceeds the per-transaction limit 10000'
"""

from __future__ import annotations

from dataclasses import dataclass

from cardswitch import currency as currencies
from cardswitch.responses import APPROVED
from cardswitch.v1 import admin_pb2
from switch.validation import ENTRY_MODE_NAMES

#: Transaction kinds that may be stood in; refunds, captures, reversals and balance inquiries
#: move or reveal money only the issuer knows about.
ELIGIBLE_KINDS = ("purchase", "preauth")
#: Entry modes never stood in unless the rules list them.
DEFAULT_EXCLUDED_ENTRY_MODES = ("manual",)

ISSUER_UNAVAILABLE = "91"
EXCEEDS_AMOUNT_LIMIT = "61"
EXCEEDS_FREQUENCY_LIMIT = "65"


@dataclass(frozen=True, slots=True)
class StandInRules:
    """A link's stand-in limits; mirrors ``cardswitch.v1.StandInRules`` (see admin.proto).

    Amounts are minor units of ``currency``; daily figures are per card and UTC day, over
    stood-in approvals. Empty ``entry_modes``: every mode but ``manual``.
    """

    enabled: bool = False
    currency: str = ""
    max_amount_minor: int = 0
    max_daily_amount_per_card_minor: int = 0
    max_daily_count_per_card: int = 0
    entry_modes: tuple[str, ...] = ()
    excluded_mccs: tuple[str, ...] = ()

    @classmethod
    def from_proto(cls, msg: admin_pb2.StandInRules) -> StandInRules:
        """The rules of ``msg`` as they are, never raising: this runs when the issuer is
        already unreachable. Check configuration with :func:`validate` when it is written."""
        return cls(enabled=msg.enabled, currency=msg.currency,
                   max_amount_minor=msg.max_amount_minor,
                   max_daily_amount_per_card_minor=msg.max_daily_amount_per_card_minor,
                   max_daily_count_per_card=msg.max_daily_count_per_card,
                   entry_modes=tuple(msg.entry_modes), excluded_mccs=tuple(msg.excluded_mccs))

    def to_proto(self) -> admin_pb2.StandInRules:
        return admin_pb2.StandInRules(
            enabled=self.enabled, currency=self.currency, max_amount_minor=self.max_amount_minor,
            max_daily_amount_per_card_minor=self.max_daily_amount_per_card_minor,
            max_daily_count_per_card=self.max_daily_count_per_card,
            entry_modes=self.entry_modes, excluded_mccs=self.excluded_mccs)

    def allows_entry_mode(self, entry_mode: str) -> bool:
        if self.entry_modes:
            return entry_mode in self.entry_modes
        return entry_mode not in DEFAULT_EXCLUDED_ENTRY_MODES


@dataclass(frozen=True, slots=True)
class StandInDecision:
    """``response_code`` is "00" when approved; ``rule`` names the check that decided."""

    approved: bool
    response_code: str
    reason: str
    rule: str


def validate(rules: StandInRules) -> list[str]:
    """Every problem, each ``"stand_in.<field>: <problem>"``; disabled rules are not checked.

    >>> validate(StandInRules(enabled=True, currency="USD", max_amount_minor=10000,
    ...                       max_daily_amount_per_card_minor=5000, max_daily_count_per_card=3))
    ['stand_in.max_daily_amount_per_card_minor: 5000 is below max_amount_minor 10000']
    """
    if not rules.enabled:
        return []
    out: list[str] = []
    if currencies.by_alpha(rules.currency) is None:
        out.append(f"stand_in.currency: unknown ISO 4217 currency {rules.currency[:8]!r}")
    for field in ("max_amount_minor", "max_daily_amount_per_card_minor",
                  "max_daily_count_per_card"):
        if getattr(rules, field) <= 0:
            out.append(f"stand_in.{field}: must be greater than zero when stand-in is enabled, "
                       f"got {getattr(rules, field)}")
    if 0 < rules.max_daily_amount_per_card_minor < rules.max_amount_minor:
        out.append(f"stand_in.max_daily_amount_per_card_minor: "
                   f"{rules.max_daily_amount_per_card_minor} is below max_amount_minor "
                   f"{rules.max_amount_minor}")
    known_modes = sorted(ENTRY_MODE_NAMES.values())
    out += [f"stand_in.entry_modes: unknown entry mode {m!r} (known: {', '.join(known_modes)})"
            for m in rules.entry_modes if m not in known_modes]
    out += [f"stand_in.excluded_mccs: {m!r} is not 4 digits"
            for m in rules.excluded_mccs if len(m) != 4 or not (m.isascii() and m.isdigit())]
    return out


def decide(rules: StandInRules, *, kind: str, amount_minor: int, currency: str,
           entry_mode: str, mcc: str, has_pin: bool, card_today_amount_minor: int,
           card_today_count: int) -> StandInDecision:
    """Approve or decline in the issuer's place (see the module docstring for the order).

    ``card_today_amount_minor`` and ``card_today_count`` are this card's stood-in approvals so
    far today (UTC), not counting this one. An unknown ``kind`` is simply not eligible: this
    runs when the issuer is already unreachable, and must answer, not raise.

    >>> off = decide(StandInRules(), kind="purchase", amount_minor=100, currency="USD",
    ...              entry_mode="chip", mcc="5411", has_pin=False, card_today_amount_minor=0,
    ...              card_today_count=0)
    >>> off.response_code, off.reason
    ('91', 'stand-in: disabled on this link')
    """
    for name, value in (("amount_minor", amount_minor),
                        ("card_today_amount_minor", card_today_amount_minor),
                        ("card_today_count", card_today_count)):
        if value < 0:
            raise ValueError(f"{name}: must not be negative, got {value}")
    money = f"{amount_minor} {currency}"
    if not rules.enabled:
        return _decline(ISSUER_UNAVAILABLE, "stand_in.enabled", "disabled on this link")
    if kind not in ELIGIBLE_KINDS:
        return _decline(ISSUER_UNAVAILABLE, "stand_in.kind",
                        f"{kind} is never stood in (only {', '.join(ELIGIBLE_KINDS)})")
    if has_pin:
        return _decline(ISSUER_UNAVAILABLE, "stand_in.pin",
                        "a PIN was entered and only the issuer can verify it")
    if currency != rules.currency:
        return _decline(ISSUER_UNAVAILABLE, "stand_in.currency",
                        f"{currency} is not the stand-in currency {rules.currency}")
    if not rules.allows_entry_mode(entry_mode):
        return _decline(ISSUER_UNAVAILABLE, "stand_in.entry_mode",
                        f"entry mode {entry_mode or '(none)'} is not stood in")
    if mcc in rules.excluded_mccs:
        return _decline(ISSUER_UNAVAILABLE, "stand_in.mcc", f"MCC {mcc} is excluded")
    if amount_minor > rules.max_amount_minor:
        return _decline(EXCEEDS_AMOUNT_LIMIT, "stand_in.max_amount",
                        f"{money} exceeds the per-transaction limit {rules.max_amount_minor}")
    day_total = card_today_amount_minor + amount_minor
    if day_total > rules.max_daily_amount_per_card_minor:
        return _decline(EXCEEDS_AMOUNT_LIMIT, "stand_in.max_daily_amount",
                        f"{money} would bring the card's stood-in total today to {day_total}, "
                        f"over the daily limit {rules.max_daily_amount_per_card_minor}")
    if card_today_count >= rules.max_daily_count_per_card:
        return _decline(EXCEEDS_FREQUENCY_LIMIT, "stand_in.max_daily_count",
                        f"the card already has {card_today_count} stood-in approvals today, "
                        f"the daily limit is {rules.max_daily_count_per_card}")
    return StandInDecision(True, APPROVED, (
        f"stand-in: {money} approved within the limits (per transaction "
        f"{rules.max_amount_minor}, today {day_total} of {rules.max_daily_amount_per_card_minor}"
        f", approval {card_today_count + 1} of {rules.max_daily_count_per_card})"),
        "stand_in.within_limits")


def approval_code(transaction_seq: int) -> str:
    """The approval code (DE 38) of a stood-in approval: ``S`` and 5 digits, so the issuer and
    the merchant can tell it from the issuer's own codes. Wraps every 100000.

    >>> approval_code(42), approval_code(123456)
    ('S00042', 'S23456')
    """
    if transaction_seq < 0:
        raise ValueError(f"transaction_seq: must not be negative, got {transaction_seq}")
    return f"S{transaction_seq % 100_000:05d}"


def _decline(code: str, rule: str, why: str) -> StandInDecision:
    return StandInDecision(False, code, f"stand-in: {why}", rule)
