"""Scenarios: a YAML list of terminal transactions with the response code each should get.

::

    terminal: {terminal_id: TERM0001, merchant_id: MERCHANT000001}
    cards: cards.json            # embossing file; default $CARDSWITCH_VAR/issuer/cards.json
    currency: USD                # default for every transaction
    transactions:
      - {name: buy, type: purchase, card: acct-visa-ok, entry: swipe, amount: "12.34",
         pin: "1234", expect: "00"}
      - {name: buy-again, type: purchase, card: acct-visa-ok, amount: "1.00", pin: "1234",
         repeat_same: true}      # sends the same request twice; the second must be a replay
      - {name: give-back, type: refund, ref: buy, amount: "2.34"}

``type`` is one of purchase, preauth, capture, void, refund, balance, timeout_reversal.
``amount`` is a decimal string in major units, converted exactly with the currency's exponent
(``"12.34"`` USD is 1234 minor units, ``"1000"`` JPY is 1000); floats are refused because YAML
would already have rounded them. ``pin: wrong`` enters a PIN that is not the card's. ``ref`` names
an earlier transaction: the pre-authorization to capture, the transaction to void, the purchase
to refund, the request to reverse after a timeout. ``expect`` is an ISO 8583 response code
(default ``"00"``) or a gRPC status name such as ``FAILED_PRECONDITION`` when the call itself
should be refused. Validation errors name the transaction index and field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import grpc
import yaml

from cardswitch.cards import mask_pans_in
from cardswitch.currency import MAX_AMOUNT_MINOR, by_alpha
from terminals.pos import ENTRIES, Card, Entry, Outcome, Pos, default_cards_path, load_cards

TxnType = Literal["purchase", "preauth", "capture", "void", "refund", "balance",
                  "timeout_reversal"]
TXN_TYPES: tuple[TxnType, ...] = ("purchase", "preauth", "capture", "void", "refund", "balance",
                                  "timeout_reversal")
WRONG_PIN = "wrong"

_CARD_TYPES = {"purchase", "preauth", "refund", "balance"}
_AMOUNT_TYPES = {"purchase", "preauth", "capture", "refund"}
_PIN_TYPES = {"purchase", "preauth", "balance"}
#: Which earlier transaction types each type may reference; absent types take no ``ref``.
_REF_TARGETS: dict[str, set[str]] = {
    "capture": {"preauth"},
    "void": {"purchase", "preauth", "capture", "refund"},
    "refund": {"purchase", "capture"},
    "timeout_reversal": set(TXN_TYPES),
}
_REF_REQUIRED = {"capture", "void", "timeout_reversal"}
_TXN_KEYS = {"name", "type", "card", "entry", "amount", "currency", "pin", "ref", "expect",
             "repeat_same"}
_TOP_KEYS = {"terminal", "cards", "currency", "transactions"}
_DECIMAL = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")
_PIN = re.compile(r"^[0-9]{4,12}$")
_ISO_CODE = re.compile(r"^[0-9A-Z]{2}$")
_Bad = Callable[[str, str], None]  # reports (field, problem) for one transaction


class ScenarioError(ValueError):
    """A scenario that cannot run; ``violations`` holds every (field path, problem) found."""

    def __init__(self, source: str, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        super().__init__(f"{source}: " + "; ".join(f"{f}: {p}" for f, p in violations))


@dataclass(frozen=True)
class TransactionSpec:
    index: int
    name: str
    type: TxnType
    card: str | None
    entry: Entry
    amount_minor: int | None
    currency: str
    pin: str | None  # digits, WRONG_PIN, or None for no PIN
    ref: str | None
    expect: str
    repeat_same: bool


@dataclass(frozen=True)
class Scenario:
    terminal_id: str | None
    merchant_id: str | None
    cards_path: Path
    transactions: tuple[TransactionSpec, ...]
    source: str = "scenario"


@dataclass(frozen=True)
class Result:
    """One transaction's expected against actual outcome."""

    index: int
    name: str
    type: str
    entry: str
    expected: str
    actual: str
    reason: str
    passed: bool
    transaction_id: str = ""
    latency_ms: float = 0.0
    replayed: bool = False


def parse_amount(value: object, currency: str, field: str = "amount") -> int:
    """Converts a decimal amount in major units to minor units, exactly.

    >>> parse_amount("12.34", "USD"), parse_amount("1000", "JPY"), parse_amount("0.5", "BHD")
    (1234, 1000, 500)
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        hint = " (quote it, YAML floats are inexact)" if isinstance(value, float) else ""
        raise ValueError(f"{field}: must be a decimal string like \"12.34\", "
                         f"got {type(value).__name__} {value!r}{hint}")
    text = str(value).strip()
    match = _DECIMAL.match(text)
    if not match:
        raise ValueError(f"{field}: {text!r} is not a decimal amount like \"12.34\"")
    cur = by_alpha(currency)
    if cur is None:
        raise ValueError(f"currency: {currency!r} is not an ISO 4217 code we know")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > cur.exponent:
        raise ValueError(f"{field}: {text!r} has {len(fraction)} decimal places, "
                         f"{currency} has {cur.exponent}")
    minor = int(whole + fraction.ljust(cur.exponent, "0"))
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(f"{field}: {text!r} exceeds the 12-digit amount field")
    return minor


def wrong_pin(pin: str) -> str:
    """A PIN guaranteed to differ from ``pin`` in every digit."""
    return "".join(str((int(d) + 1) % 10) for d in pin)


def load_scenario(path: Path) -> Scenario:
    """Reads and validates a scenario file; a relative ``cards`` path is relative to it."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such scenario file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    return parse_scenario(data, base_dir=path.parent, source=str(path))


def parse_scenario(data: Any, base_dir: Path | None = None, source: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(source, [("(top level)", "must be a mapping")])
    problems: list[tuple[str, str]] = [
        (str(k), f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
        for k in data if k not in _TOP_KEYS
    ]
    terminal = data.get("terminal") or {}
    terminal_id = merchant_id = None
    if not isinstance(terminal, dict):
        problems.append(("terminal", "must be a mapping with terminal_id and merchant_id"))
    else:
        terminal_id = _optional_str(terminal, "terminal_id", "terminal.terminal_id", problems)
        merchant_id = _optional_str(terminal, "merchant_id", "terminal.merchant_id", problems)
    cards_raw = _optional_str(data, "cards", "cards", problems)
    cards_path = default_cards_path() if cards_raw is None else Path(cards_raw)
    if not cards_path.is_absolute():
        cards_path = (base_dir or Path.cwd()) / cards_path
    currency = _optional_str(data, "currency", "currency", problems) or "USD"
    if by_alpha(currency) is None:
        problems.append(("currency", f"{currency!r} is not an ISO 4217 code we know"))
        currency = "USD"
    rows = data.get("transactions")
    specs: list[TransactionSpec] = []
    if not isinstance(rows, list) or not rows:
        problems.append(("transactions", "must be a non-empty list"))
    else:
        for i, row in enumerate(rows):
            spec = _parse_transaction(i, row, currency, specs, problems)
            if spec is not None:
                specs.append(spec)
    if problems:
        raise ScenarioError(source, problems)
    return Scenario(terminal_id, merchant_id, cards_path, tuple(specs), source)


def _optional_str(
    data: Mapping[str, Any], key: str, path: str, problems: list[tuple[str, str]]
) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append((path, f"must be a string, got {type(value).__name__}"))
        return None
    return value


def _parse_transaction(
    i: int, row: Any, default_currency: str, earlier: list[TransactionSpec],
    problems: list[tuple[str, str]],
) -> TransactionSpec | None:
    at = f"transactions[{i}]"
    if not isinstance(row, dict):
        problems.append((at, "must be a mapping"))
        return None
    found: list[tuple[str, str]] = []

    def bad(field: str, problem: str) -> None:
        found.append((f"{at}.{field}", problem))

    for key in row:
        if key not in _TXN_KEYS:
            bad(str(key), f"unknown key; expected one of {', '.join(sorted(_TXN_KEYS))}")
    txn_type = row.get("type")
    if txn_type not in TXN_TYPES:
        bad("type", f"must be one of {', '.join(TXN_TYPES)}, got {txn_type!r}")
        problems.extend(found)
        return None
    name = row.get("name", f"{txn_type}-{i}")
    if not isinstance(name, str) or not name:
        bad("name", "must be a non-empty string")
    elif any(e.name == name for e in earlier):
        bad("name", f"{name!r} is already the name of an earlier transaction")

    def allowed(field: str, types: set[str]) -> bool:
        if field in row and txn_type not in types:
            bad(field, f"does not apply to {txn_type}")
            return False
        return field in row

    currency = row.get("currency", default_currency)
    if not isinstance(currency, str) or by_alpha(currency) is None:
        bad("currency", f"{currency!r} is not an ISO 4217 code we know")
        currency = default_currency
    amount: int | None = None
    if allowed("amount", _AMOUNT_TYPES):
        try:
            amount = parse_amount(row["amount"], currency)
        except ValueError as exc:
            bad("amount", str(exc).removeprefix("amount: "))
    elif txn_type in _AMOUNT_TYPES - {"capture"}:
        bad("amount", f"is required for {txn_type}")

    ref = _parse_ref(row, txn_type, earlier, bad)
    card = row.get("card") if allowed("card", _CARD_TYPES) else None
    if card is not None and not isinstance(card, str):
        bad("card", "must be an account id string")
        card = None
    if card is None and txn_type in _CARD_TYPES and not (txn_type == "refund" and ref):
        bad("card", f"is required for {txn_type}" + (" (or a ref)" if txn_type == "refund"
                                                       else ""))
    entry = row.get("entry", "swipe") if allowed("entry", _CARD_TYPES) else "swipe"
    if entry not in ENTRIES:
        bad("entry", f"must be one of {', '.join(ENTRIES)}, got {entry!r}")
    pin = row.get("pin") if allowed("pin", _PIN_TYPES) else None
    if pin is not None and not (isinstance(pin, str) and (pin == WRONG_PIN or _PIN.match(pin))):
        bad("pin", f"must be a quoted string of 4 to 12 digits or {WRONG_PIN!r}")
    expect = _parse_expect(row.get("expect", "00"), bad)
    repeat_same = row.get("repeat_same", False)
    if not isinstance(repeat_same, bool):
        bad("repeat_same", "must be true or false")
    if found:
        problems.extend(found)
        return None
    if txn_type == "capture" and amount is None:
        amount = _ref_spec(earlier, ref).amount_minor
    return TransactionSpec(
        index=i, name=name, type=txn_type, card=card, entry=cast(Entry, entry),
        amount_minor=amount, currency=currency, pin=pin, ref=ref, expect=expect,
        repeat_same=repeat_same,
    )


def _parse_ref(
    row: Mapping[str, Any], txn_type: str, earlier: list[TransactionSpec], bad: _Bad
) -> str | None:
    ref = row.get("ref")
    if ref is None:
        if txn_type in _REF_REQUIRED:
            bad("ref", f"is required for {txn_type}: the name of an earlier transaction")
        return None
    if txn_type not in _REF_TARGETS:
        bad("ref", f"does not apply to {txn_type}")
        return None
    target = next((e for e in earlier if e.name == ref), None)
    if target is None:
        bad("ref", f"{ref!r} is not the name of an earlier transaction")
        return None
    if target.type not in _REF_TARGETS[txn_type]:
        bad("ref", f"{txn_type} cannot reference {ref!r}, a {target.type}")
        return None
    return str(ref)


def _parse_expect(value: Any, bad: _Bad) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return f"{value:02d}"  # YAML reads an unquoted 00 or 05 as an integer
    if isinstance(value, str) and (_ISO_CODE.match(value) or value in grpc.StatusCode.__members__):
        return value
    bad("expect", f"must be a 2-character response code like \"05\" or a gRPC status name, "
                  f"got {value!r}")
    return ""


def _ref_spec(specs: list[TransactionSpec], ref: str | None) -> TransactionSpec:
    return next(s for s in specs if s.name == ref)


async def run_scenario(
    pos: Pos, scenario: Scenario, cards: Mapping[str, Card] | None = None
) -> list[Result]:
    """Sends the scenario's transactions in order and compares each answer with ``expect``.

    ``cards`` defaults to the scenario's embossing file. A transaction whose ``ref`` got no
    transaction id is not sent and fails.
    """
    wanted = {s.card for s in scenario.transactions if s.card}
    if cards is None:
        cards = load_cards(scenario.cards_path) if wanted else {}
    unknown = [(f"transactions[{s.index}].card", f"no card with account id {s.card!r} in "
                f"{scenario.cards_path}") for s in scenario.transactions
               if s.card and s.card not in cards]
    if unknown:
        raise ScenarioError(scenario.source, unknown)
    done: dict[str, tuple[Outcome | None, Card | None]] = {}
    results: list[Result] = []
    for spec in scenario.transactions:
        card = cards[spec.card] if spec.card else None
        if card is None and spec.ref:
            card = done[spec.ref][1]
        ref_outcome = done[spec.ref][0] if spec.ref else None
        if spec.ref and (ref_outcome is None or not ref_outcome.transaction_id):
            done[spec.name] = (None, card)
            results.append(_result(spec, "--", f"not sent: {spec.ref!r} has no "
                                                     "transaction id"))
            continue
        try:
            outcome = await _send(pos, spec, card, ref_outcome)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            actual = code.name if isinstance(code, grpc.StatusCode) else type(exc).__name__
            details = exc.details() if hasattr(exc, "details") else ""
            done[spec.name] = (None, card)
            results.append(_result(spec, actual, mask_pans_in(str(details or ""))))
            continue
        done[spec.name] = (outcome, card)
        results.append(_outcome_result(spec, outcome))
    return results


async def _send(
    pos: Pos, spec: TransactionSpec, card: Card | None, ref: Outcome | None
) -> Outcome:
    pin = spec.pin
    if pin == WRONG_PIN and card is not None:
        pin = wrong_pin(card.pin)
    kw: dict[str, Any] = {"name": spec.name, "retry_same": spec.repeat_same}
    amount = spec.amount_minor or 0
    ref_id = ref.transaction_id if ref else ""
    if spec.type in ("purchase", "preauth"):
        assert card is not None
        send = pos.purchase if spec.type == "purchase" else pos.pre_authorize
        return await send(card, amount, spec.currency, pin=pin, entry=spec.entry, **kw)
    if spec.type == "capture":
        return await pos.capture(ref_id, amount, spec.currency, **kw)
    if spec.type == "void":
        return await pos.void(ref_id, **kw)
    if spec.type == "timeout_reversal":
        assert ref is not None
        return await pos.timeout_reversal(ref.key, **kw)
    assert card is not None
    if spec.type == "refund":
        return await pos.refund(card, amount, spec.currency, entry=spec.entry,
                                original_transaction_id=ref_id, **kw)
    return await pos.balance_inquiry(card, pin=pin, entry=spec.entry, **kw)


def _entry_label(spec: TransactionSpec) -> str:
    return spec.entry if spec.type in _CARD_TYPES else "-"


def _result(spec: TransactionSpec, actual: str, reason: str) -> Result:
    return Result(spec.index, spec.name, spec.type, _entry_label(spec), spec.expect, actual,
                  reason, passed=actual == spec.expect)


def _outcome_result(spec: TransactionSpec, outcome: Outcome) -> Result:
    passed = outcome.response_code == spec.expect
    reason = outcome.reason
    if spec.repeat_same and not (outcome.replayed and outcome.replay_consistent):
        passed = False
        reason += ("; resend was not marked replayed" if not outcome.replayed
                   else "; resend gave a different transaction id or code")
    elif spec.repeat_same:
        reason += " (replayed)"
    return Result(
        spec.index, spec.name, spec.type, _entry_label(spec), spec.expect,
        outcome.response_code, reason, passed, outcome.transaction_id, outcome.latency_ms,
        outcome.replayed,
    )
