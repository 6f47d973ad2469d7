"""ISO 8583 response codes (DE 39) and the human reasons the terminal shows.

One table for the whole system: the issuer answers with these codes, the switch maps its own
failures to them in exactly one place, terminals print the reasons.
"""

from __future__ import annotations

APPROVED = "00"

REASONS: dict[str, str] = {
    "00": "approved",
    "01": "refer to card issuer",
    "03": "invalid merchant",
    "05": "do not honour",
    "06": "error",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card number",
    "15": "no such issuer",
    "25": "unable to locate original transaction",
    "30": "format error",
    "41": "lost card, pick up",
    "43": "stolen card, pick up",
    "51": "insufficient funds",
    "54": "expired card",
    "55": "incorrect PIN",
    "57": "transaction not permitted to cardholder",
    "58": "transaction not permitted to terminal",
    "59": "suspected fraud",
    "61": "exceeds withdrawal amount limit",
    "62": "restricted card",
    "64": "original amount incorrect",
    "65": "exceeds withdrawal frequency limit",
    "68": "response received too late",
    "75": "allowable number of PIN tries exceeded",
    "76": "invalid or missing PIN block",
    "82": "card verification value (CVV) check failed",
    "91": "issuer or switch inoperative",
    "92": "no route to issuer for this card",
    "94": "duplicate transmission",
    "96": "system malfunction",
}


def reason(code: str) -> str:
    return REASONS.get(code, f"declined (response code {code})")


def approved(code: str) -> bool:
    return code in (APPROVED, "10", "11")
