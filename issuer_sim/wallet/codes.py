"""Wallet payment codes: what the customer's app shows and the merchant scans.

A *payment code* is 18 digits whose prefix names the wallet: ``28`` for the Alipay-like provider,
``13`` for the WeChat Pay-like one. Shown as a QR code it is the payload
``https://qr.wallet.example/<code>``. Codes are like PANs: stored as their SHA-256 (they are
short-lived, refreshed in the app, so an unkeyed hash is enough for a simulator) and logged
masked to their last four digits.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIXES = {"alipay": "28", "wechatpay": "13"}
QR_PREFIX = "https://qr.wallet.example/"
PRESENTATIONS = ("qr", "token")

_CODE = re.compile(r"(?:28|13)[0-9]{16}")


def new_code(provider: str) -> str:
    """A random payment code of ``provider`` (``alipay`` or ``wechatpay``)."""
    if provider not in PREFIXES:
        raise ValueError(f"provider: one of {', '.join(PREFIXES)}, got {provider!r}")
    return PREFIXES[provider] + f"{secrets.randbelow(10 ** 16):016d}"


def qr_payload(code: str) -> str:
    """What the app's QR code holds.

    >>> qr_payload("281234567890123456")
    'https://qr.wallet.example/281234567890123456'
    """
    return QR_PREFIX + code


def parse(payment_code: str, presentation: str) -> str | None:
    """The code in what the merchant scanned or typed, or None if it is not a payment code.

    >>> parse("https://qr.wallet.example/131234567890123456", "qr")
    '131234567890123456'
    >>> parse("991234567890123456", "token") is None
    True
    """
    code = payment_code.removeprefix(QR_PREFIX) if presentation == "qr" else payment_code
    return code if _CODE.fullmatch(code) else None


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def masked(payment_code: str) -> str:
    """Last four characters only, for logs and answers.

    >>> masked("281234567890123456")
    '**************3456'
    """
    return "*" * max(len(payment_code) - 4, 0) + payment_code[-4:]
