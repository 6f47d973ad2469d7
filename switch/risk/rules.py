"""The risk rule set: its YAML schema as data tables, validation, and the loaded rules.

A rule set is one YAML document::

    thresholds: {review: 300, decline: 700}
    bin_countries: {"476173": US}
    rules:
      - {id: velocity.card.count_10m, type: velocity, key: card, window: 10m, max_count: 5,
         action: decline}

Each rule type's fields are a row of :data:`FIELDS` (parser and default), checked the same way;
:func:`load` reports every bad field at once, each problem naming its path::

    >>> load("rules: [{id: a, type: velocity, key: card, window: 10 min, max_count: 5, "
    ...      "action: decline}]")
    Traceback (most recent call last):
    ...
    switch.risk.rules.RuleError: rules[0].window: must be like 10m, 1h or 1d

YAML is read with booleans spelled true/false only and integers in plain decimal only, so the
country code NO stays "NO" and the MCC "0742" stays a string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

import yaml

from cardswitch import currency

RULE_TYPES = ("amount_limit", "block_list", "country", "currency", "velocity")
ACTIONS = ("decline", "review", "score")
VELOCITY_KEYS = ("card", "merchant", "terminal")
#: The kinds the risk step assesses; refunds, captures, reversals and balances pass unchecked.
CHECKED_KINDS = frozenset({"purchase", "preauth"})
MAX_SCORE = 1000
MAX_WINDOW_S = 7 * 86400
#: Unknown card country (its BIN matches no ``bin_countries`` prefix), or terminal country.
UNKNOWN_COUNTRY = "??"

#: The ISO 8583 response code (DE 39) a declining rule answers with unless it names its own
#: ``response_code``; keyed by what fired.
DEFAULT_CODES: dict[str, str] = {
    "velocity.count": "65",        # exceeds withdrawal frequency limit
    "velocity.amount": "61",       # exceeds withdrawal amount limit
    "amount_limit": "61",          # exceeds withdrawal amount limit
    "country": "62",               # restricted card: not valid in this country
    "currency": "57",              # transaction not permitted to cardholder
    "block_list.card": "62",       # restricted card (PAN token or BIN listed)
    "block_list.acceptor": "58",   # transaction not permitted to terminal (terminal/merchant)
}
#: A summed score at or above ``thresholds.decline``: suspected fraud.
THRESHOLD_CODE = "59"


class RuleError(ValueError):
    """Every problem of a rule set, each ``"path: what is wrong"``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Window(NamedTuple):
    """What a velocity counter counts: per ``key`` (card, terminal or merchant), over
    ``seconds``, transactions of ``kinds``; amounts in ``currency`` (None: counts only).

    A tuple, so looking a counter up by it hashes in C (it is looked up per rule per request).
    """

    key: str
    seconds: int
    kinds: frozenset[str]
    currency: str | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: str
    action: str
    score: int
    #: Empty: the type's default from :data:`DEFAULT_CODES`.
    response_code: str
    enabled: bool

    def code(self, fired_as: str) -> str:
        """The response code a decline by this rule answers with; ``fired_as`` is a
        :data:`DEFAULT_CODES` key."""
        return self.response_code or DEFAULT_CODES[fired_as]


@dataclass(frozen=True, slots=True)
class VelocityRule(Rule):
    key: str
    window: str
    max_count: int | None
    max_amount_minor: int | None
    currency: str | None
    kinds: frozenset[str]
    counter: Window


@dataclass(frozen=True, slots=True)
class AmountLimitRule(Rule):
    #: Empty: every MCC.
    mccs: frozenset[str]
    currency: str
    max_amount_minor: int


@dataclass(frozen=True, slots=True)
class CountryRule(Rule):
    block_card_countries: frozenset[str]
    block_terminal_countries: frozenset[str]
    #: Empty: every terminal country is allowed.
    allow_only_terminal_countries: frozenset[str]
    cross_border: bool


@dataclass(frozen=True, slots=True)
class CurrencyRule(Rule):
    #: Empty: not an allow list.
    allowed: frozenset[str]
    blocked: frozenset[str]


@dataclass(frozen=True, slots=True)
class BlockListRule(Rule):
    #: Keyed hashes of PANs (``pan_token``), never PANs.
    pan_tokens: frozenset[str]
    bins: tuple[str, ...]
    terminal_ids: frozenset[str]
    merchant_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Thresholds:
    review: int
    decline: int


DEFAULT_THRESHOLDS = Thresholds(review=500, decline=800)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    #: BIN prefix -> ISO 3166 alpha-2 country of the card's issuer; the longest prefix wins.
    bin_countries: Mapping[str, str] = field(default_factory=dict)

    @property
    def windows(self) -> set[Window]:
        """The counters the enabled velocity rules read."""
        return {r.counter for r in self.rules if isinstance(r, VelocityRule) and r.enabled}


# -- field parsers: each takes the YAML value and returns the parsed one or raises _Invalid ------

class _Invalid(ValueError):
    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.at = at


Parser = Callable[[Any], Any]
REQUIRED = object()

_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_WINDOW = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _int_in(low: int, high: int, message: str) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(message)
        return value
    return parse


def _one_of(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}")
        return str(value)
    return parse


def _text(value: Any) -> str | None:
    """YAML scalars that spell an identifier: strings, and unquoted decimal integers."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _rule_id(value: Any) -> str:
    if not isinstance(value, str) or not _RULE_ID.match(value):
        raise _Invalid("must be 1 to 64 letters, digits or . _ : - (starting with a letter "
                       "or digit)")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _response_code(value: Any) -> str:
    code = f"{value:02d}" if isinstance(value, int) and not isinstance(value, bool) \
        and 0 <= value <= 99 else value
    if not isinstance(code, str) or len(code) != 2 or not code.isdigit() \
            or code in ("00", "10", "11"):
        raise _Invalid("must be a 2-digit ISO 8583 response code other than an approval "
                       "(00, 10, 11)")
    return code


def window_seconds(window: str) -> int:
    """``window_seconds("10m") -> 600``."""
    match = _WINDOW.match(window)
    if match is None:
        raise ValueError(f"window: must be like 10m, 1h or 1d, got {window!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _window(value: Any) -> str:
    if not isinstance(value, str) or not _WINDOW.match(value):
        raise _Invalid("must be like 10m, 1h or 1d")
    if window_seconds(value) > MAX_WINDOW_S:
        raise _Invalid("must be at most 7d")
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or currency.by_alpha(value) is None:
        raise _Invalid("must be an ISO 4217 alphabetic currency code such as USD")
    return value


def _mcc(value: Any) -> str:
    text = _text(value)
    if text is None or len(text) != 4 or not text.isdigit():
        raise _Invalid('must be a 4-digit merchant category code such as "5411"')
    return text


def _country(value: Any) -> str:
    if not isinstance(value, str) or not (_COUNTRY.match(value) or value == UNKNOWN_COUNTRY):
        raise _Invalid("must be a 2-letter ISO 3166 country code such as US (or ?? for "
                       "unknown)")
    return value


def _bin_prefix(value: Any) -> str:
    text = _text(value)
    if text is None or not 1 <= len(text) <= 6 or not text.isdigit():
        raise _Invalid("must be a BIN prefix of 1 to 6 digits")
    return text


def _pan_token(value: Any) -> str:
    digits = _text(value)
    if digits is not None and digits.isdigit() and 12 <= len(digits) <= 19:
        # Never echoed: it may be a clear PAN.
        raise _Invalid("looks like a card number: list the card's PAN token (its keyed hash), "
                       "never the PAN")
    if not isinstance(value, str) or not _HEX64.match(value):
        raise _Invalid("must be a PAN token (the card's keyed hash: 64 lowercase hex "
                       "characters)")
    return value


def _identifier(max_len: int, what: str) -> Parser:
    def parse(value: Any) -> str:
        text = _text(value)
        if text is None or not 1 <= len(text) <= max_len:
            raise _Invalid(f"must be a {what} of 1 to {max_len} characters")
        return text
    return parse


def _kind(value: Any) -> str:
    if value not in CHECKED_KINDS:
        raise _Invalid("must be purchase or preauth")
    return str(value)


def _set_of(item: Parser, what: str, *, non_empty: bool = False) -> Parser:
    def parse(value: Any) -> frozenset[str]:
        if not isinstance(value, list) or (non_empty and not value):
            raise _Invalid(f"must be a {'non-empty ' if non_empty else ''}list of {what}")
        out = set()
        for i, element in enumerate(value):
            try:
                out.add(item(element))
            except _Invalid as exc:
                raise _Invalid(exc.message, at=f"[{i}]") from None
        return frozenset(out)
    return parse


def _sorted(parser: Parser) -> Parser:
    return lambda value: tuple(sorted(parser(value)))


_SCORE = _int_in(0, MAX_SCORE, f"must be an integer from 0 to {MAX_SCORE}")
_COUNT = _int_in(1, 10**9, "must be a positive integer")
_AMOUNT = _int_in(1, currency.MAX_AMOUNT_MINOR,
                  f"must be a positive integer of minor units, at most "
                  f"{currency.MAX_AMOUNT_MINOR}")
_COUNTRIES = _set_of(_country, "ISO 3166 alpha-2 country codes")
_CURRENCIES = _set_of(_currency, "ISO 4217 currency codes")

#: Fields every rule has: name -> (parser, default or REQUIRED).
COMMON: dict[str, tuple[Parser, Any]] = {
    "id": (_rule_id, REQUIRED),
    "type": (_one_of(*RULE_TYPES), REQUIRED),
    "action": (_one_of(*ACTIONS), REQUIRED),
    "score": (_SCORE, 0),
    "response_code": (_response_code, ""),
    "enabled": (_bool, True),
}

#: Each rule type's own fields: name -> (parser, default or REQUIRED).
FIELDS: dict[str, dict[str, tuple[Parser, Any]]] = {
    "velocity": {
        "key": (_one_of(*VELOCITY_KEYS), REQUIRED),
        "window": (_window, REQUIRED),
        "max_count": (_COUNT, None),
        "max_amount_minor": (_AMOUNT, None),
        "currency": (_currency, None),
        "kinds": (_set_of(_kind, "purchase, preauth", non_empty=True), CHECKED_KINDS),
    },
    "amount_limit": {
        "mccs": (_set_of(_mcc, "4-digit MCCs"), frozenset()),
        "currency": (_currency, REQUIRED),
        "max_amount_minor": (_AMOUNT, REQUIRED),
    },
    "country": {
        "block_card_countries": (_COUNTRIES, frozenset()),
        "block_terminal_countries": (_COUNTRIES, frozenset()),
        "allow_only_terminal_countries": (_COUNTRIES, frozenset()),
        "cross_border": (_bool, False),
    },
    "currency": {
        "allowed": (_CURRENCIES, frozenset()),
        "blocked": (_CURRENCIES, frozenset()),
    },
    "block_list": {
        "pan_tokens": (_set_of(_pan_token, "PAN tokens"), frozenset()),
        "bins": (_sorted(_set_of(_bin_prefix, "BIN prefixes")), ()),
        "terminal_ids": (_set_of(_identifier(8, "terminal id"), "terminal ids"), frozenset()),
        "merchant_ids": (_set_of(_identifier(15, "merchant id"), "merchant ids"),
                         frozenset()),
    },
}


# -- cross-field checks: (field or "", problem) pairs for a parsed rule -------------------------

def _velocity_problems(v: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if v["max_count"] is None and v["max_amount_minor"] is None:
        out.append(("", "needs max_count or max_amount_minor (or both)"))
    if v["max_amount_minor"] is not None and v["currency"] is None:
        out.append(("currency", "is required with max_amount_minor"))
    if v["max_amount_minor"] is None and v["currency"] is not None:
        out.append(("currency", "only applies with max_amount_minor"))
    return out


def _country_problems(v: dict[str, Any]) -> list[tuple[str, str]]:
    if not (v["block_card_countries"] or v["block_terminal_countries"]
            or v["allow_only_terminal_countries"] or v["cross_border"]):
        return [("", "needs block_card_countries, block_terminal_countries, "
                     "allow_only_terminal_countries or cross_border: true")]
    return []


def _currency_problems(v: dict[str, Any]) -> list[tuple[str, str]]:
    if bool(v["allowed"]) == bool(v["blocked"]):
        return [("", "needs exactly one of allowed or blocked")]
    return []


def _no_problems(v: dict[str, Any]) -> list[tuple[str, str]]:
    return []


CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str]]]] = {
    "velocity": _velocity_problems, "amount_limit": _no_problems,
    "country": _country_problems, "currency": _currency_problems, "block_list": _no_problems,
}


def _build_velocity(values: dict[str, Any]) -> Rule:
    seconds = window_seconds(values["window"])
    counter = Window(values["key"], seconds, values["kinds"], values["currency"])
    return VelocityRule(**values, counter=counter)


BUILDERS: dict[str, Callable[[dict[str, Any]], Rule]] = {
    "velocity": _build_velocity,
    "amount_limit": lambda values: AmountLimitRule(**values),
    "country": lambda values: CountryRule(**values),
    "currency": lambda values: CurrencyRule(**values),
    "block_list": lambda values: BlockListRule(**values),
}


# -- the document ------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """YAML 1.2-ish scalars: ``true``/``false`` only, decimal integers without leading zeros."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                              list("tf"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:0|[1-9][0-9]*)$"),
                              list("0123456789"))

_TOP_LEVEL = ("bin_countries", "rules", "thresholds")


def load(text: str) -> RuleSet:
    """The rule set a YAML document describes; :class:`RuleError` lists everything wrong."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RuleError([f"yaml: {problem}{where}"]) from None
    if not isinstance(doc, dict):
        raise RuleError(["(document): must be a mapping with rules, and optionally thresholds "
                         "and bin_countries"])
    problems = [f"{key}: unknown field (expected one of {', '.join(_TOP_LEVEL)})"
                for key in doc if key not in _TOP_LEVEL]
    thresholds = _thresholds(doc.get("thresholds"), problems)
    bin_countries = _bin_countries(doc.get("bin_countries"), problems)
    rules = _rules(doc.get("rules", REQUIRED), problems)
    if problems:
        raise RuleError(problems)
    return RuleSet(tuple(rules), thresholds, bin_countries)


def default_yaml() -> str:
    """The demo rule set shipped as ``switch/risk/default_rules.yaml``."""
    return resources.files("switch.risk").joinpath("default_rules.yaml").read_text("utf-8")


def load_default() -> RuleSet:
    return load(default_yaml())


def _thresholds(raw: Any, problems: list[str]) -> Thresholds:
    if raw is None:
        return DEFAULT_THRESHOLDS
    if not isinstance(raw, dict):
        problems.append("thresholds: must be a mapping with review and decline")
        return DEFAULT_THRESHOLDS
    problems.extend(f"thresholds.{key}: unknown field (expected review, decline)"
                    for key in raw if key not in ("review", "decline"))
    parse = _int_in(1, MAX_SCORE, f"must be an integer from 1 to {MAX_SCORE}")
    values = {}
    for name in ("review", "decline"):
        try:
            values[name] = parse(raw.get(name, getattr(DEFAULT_THRESHOLDS, name)))
        except _Invalid as exc:
            problems.append(f"thresholds.{name}: {exc.message}")
    if len(values) == 2 and values["review"] > values["decline"]:
        problems.append(f"thresholds.review: must not be above thresholds.decline "
                        f"({values['decline']})")
    return Thresholds(**values) if len(values) == 2 else DEFAULT_THRESHOLDS


def _bin_countries(raw: Any, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("bin_countries: must be a mapping of BIN prefix to country code")
        return {}
    out = {}
    for key, value in raw.items():
        try:
            prefix = _bin_prefix(key)
        except _Invalid as exc:
            problems.append(f"bin_countries.{key}: {exc.message}")
            continue
        try:
            out[prefix] = _country(value)
        except _Invalid as exc:
            problems.append(f"bin_countries.{prefix}: {exc.message}")
    return out


def _rules(raw: Any, problems: list[str]) -> list[Rule]:
    if raw is REQUIRED:
        problems.append("rules: is required (a list; may be empty)")
        return []
    if not isinstance(raw, list):
        problems.append("rules: must be a list of rules")
        return []
    out: list[Rule] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(raw):
        rule = _rule(f"rules[{i}]", item, problems)
        if rule is None:
            continue
        if rule.id in first_index:
            problems.append(f"rules[{i}].id: duplicates rules[{first_index[rule.id]}].id "
                            f"{rule.id!r}")
            continue
        first_index[rule.id] = i
        out.append(rule)
    return out


def _rule(path: str, raw: Any, problems: list[str]) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a mapping with id, type and action")
        return None
    before = len(problems)
    rule_type = raw.get("type")
    if rule_type not in FIELDS:
        problems.append(f"{path}.type: " + ("is required" if rule_type is None else
                                            f"must be one of {', '.join(RULE_TYPES)}"))
        _fields(path, raw, COMMON, problems, skip=("type",))
        return None
    schema = COMMON | FIELDS[rule_type]
    unknown = [key for key in raw if key not in schema]
    problems.extend(f"{path}.{key}: unknown field for a {rule_type} rule (expected one of "
                    f"{', '.join(sorted(schema))})" for key in unknown)
    values = _fields(path, raw, schema, problems)
    if len(problems) > before:
        return None
    if values["response_code"] and values["action"] != "decline":
        problems.append(f"{path}.response_code: only applies to action: decline")
    for name, problem in CROSS_CHECKS[rule_type](values):
        problems.append(f"{path}{'.' + name if name else ''}: {problem}")
    if len(problems) > before:
        return None
    return BUILDERS[rule_type](values)


def _fields(path: str, raw: dict[Any, Any], schema: dict[str, tuple[Parser, Any]],
            problems: list[str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (parse, default) in schema.items():
        if name in skip:
            continue
        if name not in raw or raw[name] is None:
            if default is REQUIRED:
                problems.append(f"{path}.{name}: is required")
            values[name] = None if default is REQUIRED else default
            continue
        try:
            values[name] = parse(raw[name])
        except _Invalid as exc:
            problems.append(f"{path}.{name}{exc.at}: {exc.message}")
    return values
