"""The routing table: which links an authorisation is sent to.

A route matches a transaction by criteria (BIN prefix, brand, currencies, amount band, MCCs,
terminals, merchants, wallet provider); an empty criterion matches every transaction. Among the
routes that match, the most specific wins (:func:`specificity`):

1. the longest ``bin_prefix``;
2. then the one with more criteria set;
3. then the lower ``priority``;
4. then the smaller ``route_id`` -- a total order, so the answer never depends on table order.

Routes come in two kinds that never mix. A *card route* (no ``wallet_provider``) sees only card
transactions and sends them to ISO 8583 links; a *wallet route* sees only payments of its
provider and sends them to wallet links. The one route with no criterion at all, the catch-all,
is therefore a card route: it takes every card transaction no other route takes, and never a
wallet payment (that would reach an issuer with no card number).

>>> links = {"issuer-a": "iso8583", "issuer-b": "iso8583"}
>>> table = RoutingTable([Route("visa-us", bin_prefix="4", currencies=("USD",),
...                             primary_link="issuer-a", secondary_links=("issuer-b",)),
...                       Route("default", primary_link="issuer-b")], links)
>>> visa = Txn(bin="47617390010", brand="visa", currency="USD", amount_minor=1000)
>>> table.resolve(visa).route_id, failover(table.resolve(visa), lambda link: True)
('visa-us', ['issuer-a', 'issuer-b'])
>>> table.resolve(Txn(bin="47617390010", brand="visa", currency="EUR", amount_minor=1000)
...               ).route_id
'default'
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cardswitch import currency
from cardswitch.cards import brand_of
from cardswitch.v1 import admin_pb2

#: Brands a route may name, as :func:`cardswitch.cards.brand_of` spells them.
BRANDS = ("amex", "discover", "jcb", "mastercard", "unionpay", "visa")
#: Leading PAN digits routing may look at.
MAX_BIN_DIGITS = 11
#: Link kinds (``IssuerLink.kind``) a card route and a wallet route send to.
CARD_LINK, WALLET_LINK = "iso8583", "wallet"


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the routing table; mirrors ``cardswitch.v1.Route`` (see admin.proto).

    ``max_amount_minor == 0`` means no upper bound; both amount bounds are inclusive.
    """

    route_id: str
    description: str = ""
    bin_prefix: str = ""
    brand: str = ""
    currencies: tuple[str, ...] = ()
    min_amount_minor: int = 0
    max_amount_minor: int = 0
    mccs: tuple[str, ...] = ()
    terminal_ids: tuple[str, ...] = ()
    merchant_ids: tuple[str, ...] = ()
    wallet_provider: str = ""
    primary_link: str = ""
    secondary_links: tuple[str, ...] = ()
    priority: int = 0

    @classmethod
    def from_proto(cls, msg: admin_pb2.Route) -> Route:
        return cls(route_id=msg.route_id, description=msg.description,
                   bin_prefix=msg.bin_prefix, brand=msg.brand, currencies=tuple(msg.currencies),
                   min_amount_minor=msg.min_amount_minor, max_amount_minor=msg.max_amount_minor,
                   mccs=tuple(msg.mccs), terminal_ids=tuple(msg.terminal_ids),
                   merchant_ids=tuple(msg.merchant_ids), wallet_provider=msg.wallet_provider,
                   primary_link=msg.primary_link, secondary_links=tuple(msg.secondary_links),
                   priority=msg.priority)

    def to_proto(self) -> admin_pb2.Route:
        return admin_pb2.Route(
            route_id=self.route_id, description=self.description, bin_prefix=self.bin_prefix,
            brand=self.brand, currencies=self.currencies, min_amount_minor=self.min_amount_minor,
            max_amount_minor=self.max_amount_minor, mccs=self.mccs,
            terminal_ids=self.terminal_ids, merchant_ids=self.merchant_ids,
            wallet_provider=self.wallet_provider, primary_link=self.primary_link,
            secondary_links=self.secondary_links, priority=self.priority)

    @property
    def links(self) -> tuple[str, ...]:
        """The primary link, then the secondaries, in configured order."""
        return (self.primary_link, *self.secondary_links)

    @property
    def criteria_count(self) -> int:
        """How many criteria are set (an amount band with either bound counts once).

        >>> Route("r", bin_prefix="4", currencies=("USD", "EUR"), max_amount_minor=500
        ...       ).criteria_count
        3
        """
        return sum(map(bool, (self.bin_prefix, self.brand, self.currencies,
                              self.min_amount_minor or self.max_amount_minor, self.mccs,
                              self.terminal_ids, self.merchant_ids, self.wallet_provider)))

    def criteria(self) -> tuple[object, ...]:
        """The criteria as a value: equal for two routes exactly when they match the same txns."""
        return (self.bin_prefix, self.brand, frozenset(self.currencies), self.min_amount_minor,
                self.max_amount_minor, frozenset(self.mccs), frozenset(self.terminal_ids),
                frozenset(self.merchant_ids), self.wallet_provider)


@dataclass(frozen=True, slots=True)
class Txn:
    """What routing looks at in one authorisation.

    ``bin`` is the leading (up to 11) PAN digits, never the whole PAN; wallet payments have
    ``bin == ""`` and name their ``wallet_provider`` instead.
    """

    bin: str = ""
    brand: str = ""
    currency: str = ""
    amount_minor: int = 0
    mcc: str = ""
    terminal_id: str = ""
    merchant_id: str = ""
    wallet_provider: str = ""

    def __post_init__(self) -> None:
        if len(self.bin) > MAX_BIN_DIGITS:
            raise ValueError(f"bin: must be at most {MAX_BIN_DIGITS} digits, got {len(self.bin)}")
        if self.amount_minor < 0:
            raise ValueError(f"amount_minor: must not be negative, got {self.amount_minor}")

    @classmethod
    def for_pan(cls, pan: str, *, currency: str, amount_minor: int, mcc: str = "",
                terminal_id: str = "", merchant_id: str = "") -> Txn:
        """A card transaction: BIN and brand taken from ``pan``, which is not kept.

        >>> Txn.for_pan("4761739001010010", currency="USD", amount_minor=100).bin
        '47617390010'
        """
        return cls(bin=pan[:MAX_BIN_DIGITS], brand=brand_of(pan), currency=currency,
                   amount_minor=amount_minor, mcc=mcc, terminal_id=terminal_id,
                   merchant_id=merchant_id)


def matches(route: Route, txn: Txn) -> bool:
    """True when every criterion ``route`` sets accepts ``txn`` (and their kinds agree)."""
    return (route.wallet_provider == txn.wallet_provider
            and txn.bin.startswith(route.bin_prefix)
            and route.brand in ("", txn.brand)
            and (not route.currencies or txn.currency in route.currencies)
            and route.min_amount_minor <= txn.amount_minor
            and (route.max_amount_minor == 0 or txn.amount_minor <= route.max_amount_minor)
            and (not route.mccs or txn.mcc in route.mccs)
            and (not route.terminal_ids or txn.terminal_id in route.terminal_ids)
            and (not route.merchant_ids or txn.merchant_id in route.merchant_ids))


def specificity(route: Route) -> tuple[int, int, int, str]:
    """Sort key of the routes that match: the smallest key wins (see the module docstring)."""
    return (-len(route.bin_prefix), -route.criteria_count, route.priority, route.route_id)


def resolve(routes: Iterable[Route], txn: Txn) -> Route | None:
    """The route ``txn`` takes, or None. Scans every route: use :class:`RoutingTable` per txn."""
    return min((r for r in routes if matches(r, txn)), key=specificity, default=None)


def failover(route: Route, usable: Callable[[str], bool]) -> list[str]:
    """The route's links in the order to try them: usable ones first, then the rest.

    Each group keeps the configured order (primary, then secondaries). The unusable links stay
    in the answer so the caller can still try them as a last resort, or say which links there
    were; ``usable`` (link up and breaker allowing, say) is asked once per link.

    >>> failover(Route("r", primary_link="a", secondary_links=("b", "c")), lambda n: n != "a")
    ['b', 'c', 'a']
    """
    verdicts = [(name, usable(name)) for name in route.links]
    return [n for n, ok in verdicts if ok] + [n for n, ok in verdicts if not ok]


def validate(routes: Sequence[Route], links: Mapping[str, str]) -> list[str]:
    """Every problem of the table, each ``"route <id>: <field>: <problem>"``; [] when valid.

    ``links`` maps each link name to its kind, ``"iso8583"`` or ``"wallet"``. A route without
    an id is named by its position, ``#<index>``.

    >>> validate([Route("r1", bin_prefix="4x", primary_link="a")], {"a": "iso8583"})
    ['route r1: bin_prefix: must be digits only']
    """
    labels = [r.route_id or f"#{i}" for i, r in enumerate(routes)]
    problems: list[str] = []
    for route, label in zip(routes, labels, strict=True):
        problems += [f"route {label}: {p}" for p in _route_problems(route, links)]
    first_with_id: dict[str, int] = {}
    first_with_criteria: dict[tuple[object, ...], int] = {}
    catch_all: int | None = None
    for i, route in enumerate(routes):
        if route.route_id in first_with_id:
            problems.append(f"route {labels[i]}: route_id: duplicate of route "
                            f"#{first_with_id[route.route_id]}")
        elif route.route_id:
            first_with_id[route.route_id] = i
        if route.criteria_count == 0:
            if catch_all is None:
                catch_all = i
            else:
                problems.append(f"route {labels[i]}: criteria: none set, but route "
                                f"{labels[catch_all]} is already the catch-all")
            continue
        key = (*route.criteria(), route.priority)
        if key in first_with_criteria:
            problems.append(f"route {labels[i]}: criteria: same criteria and priority "
                            f"{route.priority} as route {labels[first_with_criteria[key]]}")
        else:
            first_with_criteria[key] = i
    return problems


def _route_problems(r: Route, links: Mapping[str, str]) -> list[str]:
    """What is wrong with one route on its own, each ``"<field>: <problem>"``."""
    out: list[str] = []
    if not r.route_id:
        out.append("route_id: is required")
    if r.bin_prefix and not _digits(r.bin_prefix):
        out.append("bin_prefix: must be digits only")  # never echoed: it may be a whole PAN
    elif len(r.bin_prefix) > MAX_BIN_DIGITS:
        out.append(f"bin_prefix: must be at most {MAX_BIN_DIGITS} digits, "
                   f"got {len(r.bin_prefix)}")
    if r.brand and r.brand not in BRANDS:
        out.append(f"brand: unknown brand {r.brand!r} (known: {', '.join(BRANDS)})")
    out += [f"currencies: unknown ISO 4217 currency {c[:8]!r}"
            for c in r.currencies if currency.by_alpha(c) is None]
    if r.min_amount_minor < 0:
        out.append(f"min_amount_minor: must not be negative, got {r.min_amount_minor}")
    if r.max_amount_minor < 0:
        out.append(f"max_amount_minor: must not be negative, got {r.max_amount_minor}")
    elif 0 < r.max_amount_minor < r.min_amount_minor:
        out.append(f"max_amount_minor: {r.max_amount_minor} is below min_amount_minor "
                   f"{r.min_amount_minor} (0 means no upper bound)")
    out += [f"mccs: {m!r} is not 4 digits" for m in r.mccs if len(m) != 4 or not _digits(m)]
    out += [f"terminal_ids: {t!r} must be 1 to 8 characters"
            for t in r.terminal_ids if not 1 <= len(t) <= 8]
    out += [f"merchant_ids: {m!r} must be 1 to 15 characters"
            for m in r.merchant_ids if not 1 <= len(m) <= 15]
    if r.wallet_provider:
        out += [f"{field}: must be empty on a wallet route"
                for field in ("bin_prefix", "brand") if getattr(r, field)]
    return out + _link_problems(r, links)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _link_problems(r: Route, links: Mapping[str, str]) -> list[str]:
    want, route_kind = (WALLET_LINK, "wallet") if r.wallet_provider else (CARD_LINK, "card")
    out: list[str] = []
    seen: set[str] = set()
    for field, name in [("primary_link", r.primary_link),
                        *(("secondary_links", s) for s in r.secondary_links)]:
        if field == "primary_link" and not name:
            out.append("primary_link: is required")
            continue
        if field == "secondary_links" and name == r.primary_link:
            out.append(f"secondary_links: {name!r} is the primary link")
        elif name in seen:
            out.append(f"secondary_links: {name!r} is listed twice")
        seen.add(name)
        if name not in links:
            out.append(f"{field}: unknown link {name!r}")
        elif links[name] != want:
            out.append(f"{field}: link {name!r} is of kind {links[name]}; a {route_kind} "
                       f"route needs {want} links")
    return out


class RoutingTable:
    """A validated table, indexed so that :meth:`resolve` costs about the same for 10 routes
    or 1000 (a few µs).

    Routes are numbered in :func:`specificity` order and each criterion is precomputed as a
    bit mask per value ("routes accepting this brand", "routes whose band holds this amount"),
    so a resolve is a handful of dict lookups ANDed together; the lowest set bit is the winner.

    Raises ``ValueError`` listing every problem :func:`validate` finds.
    """

    def __init__(self, routes: Iterable[Route], links: Mapping[str, str]) -> None:
        given = tuple(routes)
        problems = validate(given, links)
        if problems:
            raise ValueError("routes: " + "; ".join(problems))
        #: Bit ``i`` of every mask stands for ``self.routes[i]``.
        self.routes = tuple(sorted(given, key=specificity))
        self._wallet, _ = _masks(self.routes, lambda r: (r.wallet_provider,))
        self._bins, _ = _masks(self.routes, lambda r: (r.bin_prefix,))
        self._bin_lengths = sorted({len(r.bin_prefix) for r in self.routes}, reverse=True)
        self._sets = tuple(
            (operator.attrgetter(attr), *_masks(self.routes, values))
            for attr, values in (
                ("brand", lambda r: (r.brand,) if r.brand else ()),
                ("currency", lambda r: r.currencies), ("mcc", lambda r: r.mccs),
                ("terminal_id", lambda r: r.terminal_ids),
                ("merchant_id", lambda r: r.merchant_ids)))
        self._amount_points = sorted(
            {0} | {r.min_amount_minor for r in self.routes}
            | {r.max_amount_minor + 1 for r in self.routes if r.max_amount_minor})
        self._amount_masks = [
            _bits(r.min_amount_minor <= p and (r.max_amount_minor == 0 or p <= r.max_amount_minor)
                  for r in self.routes)
            for p in self._amount_points]

    def resolve(self, txn: Txn) -> Route | None:
        """The most specific route matching ``txn`` (same answer as :func:`resolve`), or None."""
        found = self._wallet.get(txn.wallet_provider, 0)
        bins = 0
        for length in self._bin_lengths:
            bins |= self._bins.get(txn.bin[:length], 0)
        found &= bins
        for get, by_value, any_value in self._sets:
            found &= by_value.get(get(txn), any_value)
        found &= self._amount_masks[bisect.bisect_right(self._amount_points, txn.amount_minor) - 1]
        if not found:
            return None
        return self.routes[(found & -found).bit_length() - 1]


def _bits(flags: Iterable[bool]) -> int:
    return sum(1 << i for i, flag in enumerate(flags) if flag)


def _masks(routes: Sequence[Route],
           values: Callable[[Route], Iterable[str]]) -> tuple[dict[str, int], int]:
    """Per value, the routes accepting it; and the routes accepting any value (no criterion)."""
    any_value = _bits(not tuple(values(r)) for r in routes)
    by_value: dict[str, int] = {}
    for i, route in enumerate(routes):
        for value in values(route):
            by_value[value] = by_value.get(value, any_value) | 1 << i
    return by_value, any_value
