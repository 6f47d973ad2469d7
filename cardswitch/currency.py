"""ISO 4217 currencies: alphabetic code -> (numeric code, minor-unit exponent).

Money is always an integer of minor units; the exponent says how many digits are minor.
The table is data: add a row to accept a currency.
"""

from __future__ import annotations

from typing import NamedTuple


class Currency(NamedTuple):
    alpha: str
    numeric: str
    exponent: int


_TABLE = """
AED 784 2; ARS 032 2; AUD 036 2; BGN 975 2; BHD 048 3; BRL 986 2; CAD 124 2; CHF 756 2;
CLP 152 0; CNY 156 2; COP 170 2; CZK 203 2; DKK 208 2; EGP 818 2; EUR 978 2; GBP 826 2;
HKD 344 2; HUF 348 2; IDR 360 2; ILS 376 2; INR 356 2; ISK 352 0; JOD 400 3; JPY 392 0;
KES 404 2; KRW 410 0; KWD 414 3; MAD 504 2; MXN 484 2; MYR 458 2; NGN 566 2; NOK 578 2;
NZD 554 2; OMR 512 3; PEN 604 2; PHP 608 2; PKR 586 2; PLN 985 2; QAR 634 2; RON 946 2;
RSD 941 2; RUB 643 2; SAR 682 2; SEK 752 2; SGD 702 2; THB 764 2; TND 788 3; TRY 949 2;
TWD 901 2; UAH 980 2; USD 840 2; VND 704 0; ZAR 710 2
"""

BY_ALPHA: dict[str, Currency] = {}
for _row in _TABLE.replace("\n", " ").split(";"):
    _alpha, _numeric, _exp = _row.split()
    BY_ALPHA[_alpha] = Currency(_alpha, _numeric, int(_exp))
BY_NUMERIC: dict[str, Currency] = {c.numeric: c for c in BY_ALPHA.values()}

#: Largest amount DE 4 can carry: 12 digits.
MAX_AMOUNT_MINOR = 999_999_999_999


def by_alpha(code: str) -> Currency | None:
    return BY_ALPHA.get(code)


def by_numeric(code: str) -> Currency | None:
    return BY_NUMERIC.get(code)


def format_amount(amount_minor: int, alpha: str) -> str:
    """``format_amount(1050, "USD") -> '10.50 USD'``."""
    cur = BY_ALPHA.get(alpha)
    exp = cur.exponent if cur else 2
    sign = "-" if amount_minor < 0 else ""
    whole, minor = divmod(abs(amount_minor), 10**exp) if exp else (abs(amount_minor), 0)
    return f"{sign}{whole}.{minor:0{exp}d} {alpha}" if exp else f"{sign}{whole} {alpha}"
