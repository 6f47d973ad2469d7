"""The routing table: one test per criterion, the specificity order, failover, every validation
rule with its exact message, and properties against a brute-force oracle written here.

Every routed example is checked twice: the indexed :class:`RoutingTable` and the scanning
:func:`routing.resolve` must give the same route.
"""

import doctest
import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from switch import routing
from switch.routing import Route, RoutingTable, Txn, failover, validate

LINKS = {"issuer-a": "iso8583", "issuer-b": "iso8583", "issuer-c": "iso8583",
         "alipay-hk": "wallet", "wechat-cn": "wallet"}
DEFAULT = Route("default", primary_link="issuer-c")
CARD = Txn(bin="47617390010", brand="visa", currency="USD", amount_minor=1000, mcc="5411",
           terminal_id="TERM0001", merchant_id="MERCHANT000001")


def routed(routes: list[Route], txn: Txn) -> str | None:
    """The id of the route ``txn`` takes, after checking the table and the scan agree."""
    by_table = RoutingTable(routes, LINKS).resolve(txn)
    assert by_table == routing.resolve(routes, txn)
    return by_table.route_id if by_table else None


def test_module_examples() -> None:
    assert doctest.testmod(routing, optionflags=doctest.ELLIPSIS).failed == 0


# --- one criterion at a time, beside the catch-all ---------------------------------------------

def test_bin_prefix_matches_the_leading_digits() -> None:
    routes = [Route("visa-476173", bin_prefix="476173", primary_link="issuer-a"), DEFAULT]
    assert routed(routes, CARD) == "visa-476173"
    assert routed(routes, replace(CARD, bin="47617490010")) == "default"
    assert routed(routes, replace(CARD, bin="47617")) == "default"


def test_brand_matches_the_brand_of_the_pan() -> None:
    routes = [Route("mc", brand="mastercard", primary_link="issuer-a"), DEFAULT]
    assert routed(routes, Txn.for_pan("5413330089010012", currency="USD",
                                      amount_minor=1)) == "mc"
    assert routed(routes, CARD) == "default"


def test_currencies_match_any_listed_currency() -> None:
    routes = [Route("eur-gbp", currencies=("EUR", "GBP"), primary_link="issuer-a"), DEFAULT]
    assert routed(routes, replace(CARD, currency="GBP")) == "eur-gbp"
    assert routed(routes, replace(CARD, currency="EUR")) == "eur-gbp"
    assert routed(routes, CARD) == "default"


@pytest.mark.parametrize(("amount_minor", "route_id"), [
    (999, "default"), (1000, "band"), (3000, "band"), (5000, "band"), (5001, "default")])
def test_amount_band_bounds_are_inclusive(amount_minor: int, route_id: str) -> None:
    routes = [Route("band", min_amount_minor=1000, max_amount_minor=5000,
                    primary_link="issuer-a"), DEFAULT]
    assert routed(routes, replace(CARD, amount_minor=amount_minor)) == route_id


def test_amount_band_with_max_zero_has_no_upper_bound() -> None:
    routes = [Route("large", min_amount_minor=100_000, primary_link="issuer-a"), DEFAULT]
    assert routed(routes, replace(CARD, amount_minor=999_999_999_999)) == "large"
    assert routed(routes, replace(CARD, amount_minor=99_999)) == "default"


def test_mccs_match_any_listed_mcc() -> None:
    routes = [Route("cash", mccs=("6010", "6011"), primary_link="issuer-a"), DEFAULT]
    assert routed(routes, replace(CARD, mcc="6011")) == "cash"
    assert routed(routes, CARD) == "default"


def test_terminal_ids_match_any_listed_terminal() -> None:
    routes = [Route("atm", terminal_ids=("ATM00001",), primary_link="issuer-a"), DEFAULT]
    assert routed(routes, replace(CARD, terminal_id="ATM00001")) == "atm"
    assert routed(routes, CARD) == "default"


def test_merchant_ids_match_any_listed_merchant() -> None:
    routes = [Route("big-merchant", merchant_ids=("MERCHANT000001",), primary_link="issuer-a"),
              DEFAULT]
    assert routed(routes, CARD) == "big-merchant"
    assert routed(routes, replace(CARD, merchant_id="MERCHANT000002")) == "default"


def test_wallet_provider_routes_only_payments_of_that_provider() -> None:
    routes = [Route("alipay", wallet_provider="alipay", primary_link="alipay-hk"), DEFAULT]
    alipay = Txn(currency="USD", amount_minor=1000, wallet_provider="alipay")
    assert routed(routes, alipay) == "alipay"
    assert routed(routes, CARD) == "default"
    # The catch-all is a card route: a wallet payment never reaches an issuer link.
    assert routed(routes, replace(alipay, wallet_provider="wechatpay")) is None


def test_no_matching_route_resolves_to_none() -> None:
    assert routed([Route("visa", bin_prefix="4", primary_link="issuer-a")],
                  replace(CARD, bin="5413330089")) is None
    assert routed([], CARD) is None


# --- specificity ------------------------------------------------------------------------------

def test_longest_bin_prefix_wins_over_more_criteria_and_priority() -> None:
    routes = [Route("bin-4", bin_prefix="4", currencies=("USD",), mccs=("5411",), priority=0,
                    primary_link="issuer-a"),
              Route("bin-4761", bin_prefix="4761", priority=9, primary_link="issuer-b")]
    assert routed(routes, CARD) == "bin-4761"


def test_more_criteria_win_at_equal_bin_length() -> None:
    routes = [Route("usd", bin_prefix="4", currencies=("USD",), priority=0,
                    primary_link="issuer-a"),
              Route("usd-grocery", bin_prefix="5", currencies=("USD",), mccs=("5411",),
                    priority=9, primary_link="issuer-b"),
              Route("grocery-usd", bin_prefix="4", currencies=("USD",), mccs=("5411",),
                    priority=9, primary_link="issuer-b")]
    assert routed(routes, CARD) == "grocery-usd"


def test_lower_priority_wins_among_equally_specific_routes() -> None:
    routes = [Route("a-usd", currencies=("USD",), priority=2, primary_link="issuer-a"),
              Route("b-grocery", mccs=("5411",), priority=1, primary_link="issuer-b")]
    assert routed(routes, CARD) == "b-grocery"


def test_route_id_breaks_the_last_tie_whatever_the_table_order() -> None:
    routes = [Route("b-usd", currencies=("USD",), primary_link="issuer-a"),
              Route("a-grocery", mccs=("5411",), primary_link="issuer-b")]
    assert routed(routes, CARD) == "a-grocery"
    assert routed(routes[::-1], CARD) == "a-grocery"


def test_specificity_key_is_longest_bin_then_criteria_then_priority_then_id() -> None:
    route = Route("r", bin_prefix="4761", currencies=("USD",), priority=3)
    assert routing.specificity(route) == (-4, -2, 3, "r")


# --- failover ---------------------------------------------------------------------------------

def test_failover_puts_usable_links_first_each_group_in_configured_order() -> None:
    route = Route("r", primary_link="issuer-a", secondary_links=("issuer-b", "issuer-c"))
    assert failover(route, lambda link: link != "issuer-a") == [
        "issuer-b", "issuer-c", "issuer-a"]
    assert failover(route, lambda link: link == "issuer-c") == [
        "issuer-c", "issuer-a", "issuer-b"]
    assert failover(route, lambda link: True) == ["issuer-a", "issuer-b", "issuer-c"]
    assert failover(route, lambda link: False) == ["issuer-a", "issuer-b", "issuer-c"]


def test_failover_asks_once_per_link() -> None:
    asked: list[str] = []

    def usable(link: str) -> bool:
        asked.append(link)
        return True

    failover(Route("r", primary_link="issuer-a", secondary_links=("issuer-b",)), usable)
    assert asked == ["issuer-a", "issuer-b"]


# --- transactions and protos ------------------------------------------------------------------

def test_txn_for_pan_keeps_eleven_digits_and_the_brand() -> None:
    txn = Txn.for_pan("4761739001010010", currency="USD", amount_minor=100, mcc="5411")
    assert (txn.bin, txn.brand, txn.mcc) == ("47617390010", "visa", "5411")


def test_txn_refuses_a_whole_pan_as_bin_and_a_negative_amount() -> None:
    with pytest.raises(ValueError, match=r"^bin: must be at most 11 digits, got 16$"):
        Txn(bin="4761739001010010")
    with pytest.raises(ValueError, match=r"^amount_minor: must not be negative, got -1$"):
        Txn(amount_minor=-1)


def test_route_round_trips_through_its_proto() -> None:
    route = Route("r", "Visa US", "476173", "visa", ("USD", "EUR"), 100, 5000, ("5411",),
                  ("TERM0001",), ("MERCHANT000001",), "", "issuer-a", ("issuer-b", "issuer-c"), 7)
    assert Route.from_proto(route.to_proto()) == route
    assert route.to_proto().secondary_links == ["issuer-b", "issuer-c"]


# --- validation: each rule and its exact message ----------------------------------------------

def card(route_id: str = "r", **fields: Any) -> Route:
    """A valid card route, changed by ``fields``."""
    return replace(Route(route_id, bin_prefix="4", primary_link="issuer-a"), **fields)


def wallet(route_id: str = "w", **fields: Any) -> Route:
    return replace(Route(route_id, wallet_provider="alipay", primary_link="alipay-hk"), **fields)


@pytest.mark.parametrize(("routes", "problem"), [
    ([card("")], "route #0: route_id: is required"),
    ([card("visa"), card("visa", bin_prefix="5")], "route visa: route_id: duplicate of route #0"),
    ([card(bin_prefix="4x")], "route r: bin_prefix: must be digits only"),
    ([card(bin_prefix="\u0664")], "route r: bin_prefix: must be digits only"),
    ([card(bin_prefix="476173900101")], "route r: bin_prefix: must be at most 11 digits, got 12"),
    ([card(brand="vissa")], "route r: brand: unknown brand 'vissa' "
                            "(known: amex, discover, jcb, mastercard, unionpay, visa)"),
    ([card(currencies=("USD", "XYZ"))], "route r: currencies: unknown ISO 4217 currency 'XYZ'"),
    ([card(min_amount_minor=-1)], "route r: min_amount_minor: must not be negative, got -1"),
    ([card(max_amount_minor=-1)], "route r: max_amount_minor: must not be negative, got -1"),
    ([card(min_amount_minor=5000, max_amount_minor=100)],
     "route r: max_amount_minor: 100 is below min_amount_minor 5000 (0 means no upper bound)"),
    ([card(mccs=("5411", "541"))], "route r: mccs: '541' is not 4 digits"),
    ([card(terminal_ids=("TERMINAL9",))],
     "route r: terminal_ids: 'TERMINAL9' must be 1 to 8 characters"),
    ([card(terminal_ids=("",))], "route r: terminal_ids: '' must be 1 to 8 characters"),
    ([card(merchant_ids=("M" * 16,))],
     f"route r: merchant_ids: {'M' * 16!r} must be 1 to 15 characters"),
    ([card(primary_link="")], "route r: primary_link: is required"),
    ([card(primary_link="issuer-z")], "route r: primary_link: unknown link 'issuer-z'"),
    ([card(secondary_links=("issuer-z",))], "route r: secondary_links: unknown link 'issuer-z'"),
    ([card(secondary_links=("issuer-a",))],
     "route r: secondary_links: 'issuer-a' is the primary link"),
    ([card(secondary_links=("issuer-b", "issuer-b"))],
     "route r: secondary_links: 'issuer-b' is listed twice"),
    ([wallet(bin_prefix="4")], "route w: bin_prefix: must be empty on a wallet route"),
    ([wallet(brand="visa")], "route w: brand: must be empty on a wallet route"),
    ([wallet(primary_link="issuer-a")], "route w: primary_link: link 'issuer-a' is of kind "
                                        "iso8583; a wallet route needs wallet links"),
    ([card(secondary_links=("alipay-hk",))], "route r: secondary_links: link 'alipay-hk' is "
                                             "of kind wallet; a card route needs iso8583 links"),
    ([card("a", bin_prefix=""), card("b", bin_prefix="", priority=5)],
     "route b: criteria: none set, but route a is already the catch-all"),
    ([card("a", currencies=("USD", "EUR")), card("b", currencies=("EUR", "USD"))],
     "route b: criteria: same criteria and priority 0 as route a"),
])
def test_each_validation_rule_names_route_field_and_problem(routes: list[Route],
                                                            problem: str) -> None:
    assert validate(routes, LINKS) == [problem]
    with pytest.raises(ValueError, match=r"^routes: ") as refused:
        RoutingTable(routes, LINKS)
    assert str(refused.value) == f"routes: {problem}"


def test_a_valid_table_has_no_problems() -> None:
    routes = [card("a"), card("b", priority=1), card("c", bin_prefix="", currencies=("USD",)),
              wallet(secondary_links=("wechat-cn",)), DEFAULT]
    assert validate(routes, LINKS) == []


def test_every_problem_is_reported_at_once() -> None:
    assert validate([card(bin_prefix="4x", mccs=("1",), primary_link="nowhere")], LINKS) == [
        "route r: bin_prefix: must be digits only", "route r: mccs: '1' is not 4 digits",
        "route r: primary_link: unknown link 'nowhere'"]


# --- properties -------------------------------------------------------------------------------

CARD_LINKS = ["issuer-a", "issuer-b", "issuer-c"]
WALLET_LINKS = ["alipay-hk", "wechat-cn"]
PROVIDERS = ["alipay", "wechatpay"]
AMOUNTS = [0, 100, 1000, 5000]
#: Each example is a whole table and a batch of transactions: a few hundred cover it.
tables = settings(max_examples=200, deadline=None)


def _orders(values: list[str]) -> list[tuple[str, ...]]:
    """Every ordering of one or two distinct ``values``: one draw picks a whole criterion."""
    return [p for n in (1, 2) for p in itertools.permutations(values, n)]


#: Small alphabets and few criteria per route, so that generated routes often compete.
BIN_PREFIXES = ["".join(p) for n in range(1, 4) for p in itertools.product("45", repeat=n)]
TXN_BINS = ["", *BIN_PREFIXES, *(p + "9" * (11 - len(p)) for p in BIN_PREFIXES)]
AMOUNT_BANDS = [(low, high) for low in AMOUNTS for high in [0, *AMOUNTS]
                if (low or high) and (high == 0 or high >= low)]
CRITERIA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "bin_prefix": st.builds(dict, bin_prefix=st.sampled_from(BIN_PREFIXES)),
    "brand": st.builds(dict, brand=st.sampled_from(["visa", "mastercard"])),
    "currencies": st.builds(dict, currencies=st.sampled_from(_orders(["USD", "EUR", "GBP"]))),
    "amount": st.sampled_from(AMOUNT_BANDS).map(
        lambda band: {"min_amount_minor": band[0], "max_amount_minor": band[1]}),
    "mccs": st.builds(dict, mccs=st.sampled_from(_orders(["5411", "6011", "5999"]))),
    "terminal_ids": st.builds(dict, terminal_ids=st.sampled_from(_orders(["TERM0001",
                                                                          "TERM0002"]))),
    "merchant_ids": st.builds(dict, merchant_ids=st.sampled_from(_orders(["M1", "M2"]))),
}
CARD_LINK_ORDERS = [o for n in (1, 2, 3) for o in itertools.permutations(CARD_LINKS, n)]
WALLET_LINK_ORDERS = [o for n in (1, 2) for o in itertools.permutations(WALLET_LINKS, n)]
#: Route ids in an order unlike the generation order, so ties are not broken by position.
ROUTE_IDS = [f"r{7 * i % 10}" for i in range(10)]


@st.composite
def routes_(draw: st.DrawFn, route_id: str) -> Route:
    """A route that is valid on its own, with up to two criteria besides a wallet provider
    (a wallet route never has BIN or brand)."""
    is_wallet = draw(st.sampled_from([False, False, False, True]))
    allowed = [c for c in CRITERIA if not (is_wallet and c in ("bin_prefix", "brand"))]
    fields: dict[str, Any] = {}
    for criterion in draw(st.sets(st.sampled_from(allowed), max_size=2)):
        fields.update(draw(CRITERIA[criterion]))
    primary, *secondary = draw(st.sampled_from(
        WALLET_LINK_ORDERS if is_wallet else CARD_LINK_ORDERS))
    return Route(route_id, wallet_provider=draw(st.sampled_from(PROVIDERS)) if is_wallet else "",
                 primary_link=primary, secondary_links=tuple(secondary),
                 priority=draw(st.integers(0, 2)), **fields)


@st.composite
def valid_tables(draw: st.DrawFn, min_size: int = 0) -> list[Route]:
    """Routes with distinct ids, at most one catch-all and no two alike (criteria and priority)."""
    table: list[Route] = []
    for route_id in ROUTE_IDS[:draw(st.integers(min_size, len(ROUTE_IDS)))]:
        route = draw(routes_(route_id))
        if all((r.criteria(), r.priority) != (route.criteria(), route.priority)
               and (r.criteria_count or route.criteria_count) for r in table):
            table.append(route)
    assume(len(table) >= min_size)
    return table


@st.composite
def txns(draw: st.DrawFn, routes: Sequence[Route] = ()) -> Txn:
    """A transaction; often one built to meet every criterion of one of ``routes``, so that
    several routes match it and the ordering is what decides."""
    like = draw(st.one_of(st.none(), st.sampled_from(routes))) if routes else None

    def pick(wanted: Sequence[str], anything: Sequence[str]) -> str:
        return draw(st.sampled_from(wanted if like and wanted else anything))

    near = [a + d for a in AMOUNTS for d in (-1, 0, 1) if a + d >= 0]
    amount = draw(st.one_of(st.sampled_from(near), st.integers(0, 999_999_999_999)))
    if like is None:
        is_wallet, prefix = draw(st.sampled_from([False, False, False, True])), ""
    else:
        is_wallet, prefix = bool(like.wallet_provider), like.bin_prefix
        if draw(st.booleans()):
            amount = draw(st.sampled_from([like.min_amount_minor,
                                           like.max_amount_minor or like.min_amount_minor]))
    return Txn(
        bin="" if is_wallet else pick([b for b in TXN_BINS if b.startswith(prefix)], TXN_BINS),
        brand="" if is_wallet else pick([like.brand] if like and like.brand else [],
                                        ["visa", "mastercard", "amex"]),
        currency=pick(like.currencies if like else [], ["USD", "EUR", "GBP", "JPY"]),
        amount_minor=amount,
        mcc=pick(like.mccs if like else [], ["5411", "6011", "5999", "4111"]),
        terminal_id=pick(like.terminal_ids if like else [], ["TERM0001", "TERM0002", "TERM0003"]),
        merchant_id=pick(like.merchant_ids if like else [], ["M1", "M2", "M3"]),
        wallet_provider=pick([like.wallet_provider] if like else [], [*PROVIDERS, "paypay"])
        if is_wallet else "")


def brute_force(routes: list[Route], txn: Txn) -> Route | None:
    """The specification, independently: keep every route whose set criteria all accept the
    transaction, sort by (longest BIN, most criteria, lowest priority, smallest id), take the
    first."""
    def accepts(r: Route) -> bool:
        checks = [r.wallet_provider == txn.wallet_provider,
                  txn.bin[:len(r.bin_prefix)] == r.bin_prefix,
                  not r.brand or r.brand == txn.brand,
                  not r.currencies or txn.currency in r.currencies,
                  txn.amount_minor >= r.min_amount_minor,
                  not r.max_amount_minor or txn.amount_minor <= r.max_amount_minor,
                  not r.mccs or txn.mcc in r.mccs,
                  not r.terminal_ids or txn.terminal_id in r.terminal_ids,
                  not r.merchant_ids or txn.merchant_id in r.merchant_ids]
        return all(checks)

    def criteria_set(r: Route) -> int:
        return len([c for c in (r.bin_prefix, r.brand, r.currencies, r.mccs, r.terminal_ids,
                                r.merchant_ids, r.wallet_provider) if c]) + (
            r.min_amount_minor > 0 or r.max_amount_minor > 0)

    ranked = sorted((r for r in routes if accepts(r)),
                    key=lambda r: (-len(r.bin_prefix), -criteria_set(r), r.priority, r.route_id))
    return ranked[0] if ranked else None


@tables
@given(valid_tables(), st.data())
def test_table_resolves_as_the_brute_force_oracle(routes: list[Route],
                                                  data: st.DataObject) -> None:
    assert validate(routes, LINKS) == []
    table = RoutingTable(routes, LINKS)
    for txn in data.draw(st.lists(txns(routes), min_size=1, max_size=8)):
        expected = brute_force(routes, txn)
        assert table.resolve(txn) == expected
        assert routing.resolve(routes, txn) == expected
        if expected is not None:
            kind = "wallet" if txn.wallet_provider else "iso8583"
            assert all(LINKS.get(link) == kind for link in expected.links)


@tables
@given(valid_tables(), st.data())
def test_a_table_with_a_catch_all_routes_every_card_transaction(routes: list[Route],
                                                               data: st.DataObject) -> None:
    if all(r.criteria_count for r in routes):
        routes = [*routes, Route("zz-catch-all", primary_link="issuer-a")]
    table = RoutingTable(routes, LINKS)
    for txn in data.draw(st.lists(txns(routes), min_size=1, max_size=8)):
        found = table.resolve(txn)
        assert found == brute_force(routes, txn)
        if not txn.wallet_provider:
            assert found is not None


DEFECTS = ["unknown primary", "unknown secondary", "bad bin", "long bin", "min over max",
           "duplicate id", "secondary is primary", "wrong link kind"]


@tables
@given(valid_tables(min_size=2), st.sampled_from(DEFECTS), st.data())
def test_a_table_with_a_defect_is_refused_naming_route_and_field(
        routes: list[Route], defect: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(routes) - 1))
    r = routes[i]
    wrong_kind = "issuer-a" if r.wallet_provider else "alipay-hk"
    route_id, field, broken = {
        "unknown primary": (r.route_id, "primary_link", replace(r, primary_link="nowhere")),
        "unknown secondary": (r.route_id, "secondary_links",
                              replace(r, secondary_links=(*r.secondary_links, "nowhere"))),
        "bad bin": (r.route_id, "bin_prefix", replace(r, bin_prefix="45a")),
        "long bin": (r.route_id, "bin_prefix", replace(r, bin_prefix="4" * 12)),
        "min over max": (r.route_id, "max_amount_minor",
                         replace(r, min_amount_minor=5001, max_amount_minor=5000)),
        "duplicate id": (routes[i - 1].route_id, "route_id",
                         replace(r, route_id=routes[i - 1].route_id)),
        "secondary is primary": (r.route_id, "secondary_links",
                                 replace(r, secondary_links=(r.primary_link,))),
        "wrong link kind": (r.route_id, "primary_link", replace(r, primary_link=wrong_kind)),
    }[defect]
    table = [*routes[:i], broken, *routes[i + 1:]]
    expected = f"route {route_id}: {field}: "
    assert any(p.startswith(expected) for p in validate(table, LINKS))
    with pytest.raises(ValueError, match=r"^routes: ") as refused:
        RoutingTable(table, LINKS)
    assert expected in str(refused.value)
