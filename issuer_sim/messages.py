"""The issuer's side of the ISO 8583 dialect: a request read into a :class:`Request`, the
decision (:class:`Outcome`) written back as its response.

Vocabulary: *STAN* (DE 11) numbers a request per acquirer, *RRN* (DE 37) names a transaction
across its messages (pre-auth, completion, reversal), *DE 90* (original data elements) points a
completion or reversal at its original: MTI(4) + STAN(6) + DE 7(10) + acquirer(11) + forwarder(11).
A *repeat* (0121, 0221, 0421) is an advice the acquirer sends again because no answer came; it is
processed as the advice it repeats.

Every reader raises :class:`Declined` with the response code and the field at fault.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cardswitch import currency, iso8583, responses
from cardswitch.cards import Track2, parse_track2, validate_pan
from cardswitch.iso8583 import Message

#: Request fields a response carries back unchanged (DE 2 only on financial responses).
ECHOED = ("3", "4", "7", "11", "12", "13", "37", "41", "42", "49")
NETWORK_ECHOED = ("7", "11", "32", "70")

#: Repeat MTI -> the advice it repeats.
REPEATS = {"0121": "0120", "0221": "0220", "0421": "0420"}

#: Short texts for DE 44 (25 characters at most) where the response-code reason is longer.
SHORT_REASONS = {
    "25": "original not found",
    "57": "not permitted to card",
    "61": "exceeds daily limit",
    "63": "security violation",
    "75": "PIN tries exceeded",
    "82": "CVV check failed",
    "91": "issuer inoperative",
}

_AMOUNT = re.compile(r"^[0-9]{12}$")
_YYMM = re.compile(r"^[0-9]{2}(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Decline:
    """A response code other than 00 with the fact behind it (DE 44, at most 25 characters)."""

    code: str
    detail: str = ""

    def text(self) -> str:
        return (self.detail or SHORT_REASONS.get(self.code) or responses.reason(self.code))[:25]


class Declined(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code} {detail}")
        self.decline = Decline(code, detail)


@dataclass(frozen=True)
class OriginalData:
    """DE 90: which request a completion or reversal refers to."""

    mti: str
    stan: str
    transmission_dt: str
    acquirer_id: str

    @classmethod
    def parse(cls, de90: str) -> OriginalData:
        if len(de90) != 42 or not de90.isdigit():
            raise Declined("30", "DE 90 malformed")
        return cls(de90[0:4], de90[4:10], de90[10:20], de90[20:31])


@dataclass(frozen=True)
class Request:
    """The fields of a financial request the issuer decides on."""

    mti: str
    processing_code: str
    amount_minor: int
    pan: str
    rrn: str
    stan: str
    transmission_dt: str
    acquirer_id: str
    terminal_id: str
    mcc: str
    expiry_yymm: str | None
    track2: Track2 | None
    cvv2: str | None
    pin_block: bytes | None
    original: OriginalData | None


@dataclass(frozen=True)
class Outcome:
    code: str
    detail: str = ""
    approval_code: str | None = None
    #: (ledger, available, ISO 4217 alpha) after the request, for DE 54.
    balances: tuple[int, int, str] | None = None
    #: Issuer chip data for DE 55: ARPC and scripts.
    emv_data: bytes = b""
    #: DE 48 subfields of the response, e.g. ``{"KC": "1A2B3C"}`` answering a key exchange.
    additional_data: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def declined(cls, decline: Decline) -> Outcome:
        return cls(decline.code, decline.text())


def same_institution(left: str, right: str) -> bool:
    """Acquirer ids compare as numbers: DE 90 zero-pads them to 11 digits, DE 32 does not."""
    return not left or not right or left.lstrip("0") == right.lstrip("0")


def parse_amount(message: Message, *, required: bool = True) -> int:
    raw = message.get("4")
    if raw is None and not required:
        return 0
    if raw is None or not _AMOUNT.match(raw):
        raise Declined("13", "DE 4 not 12 digits")
    amount = int(raw)
    if amount == 0 and required:
        raise Declined("13", "DE 4 is zero")
    return amount


def parse_request(message: Message, *, amount_required: bool = True) -> Request:
    """Reads a financial request; :class:`Declined` (13, 14, 30, 54) names the wrong field."""
    amount = parse_amount(message, required=amount_required)
    track2 = None
    if "35" in message:
        try:
            track2 = parse_track2(message["35"])
        except ValueError as exc:
            raise Declined("30", "DE 35 malformed") from exc
    pan = message.get("2") or (track2.pan if track2 else "")
    if validate_pan(pan) or (track2 is not None and track2.pan != pan):
        raise Declined("14", "PAN missing or invalid")
    expiry = message.get("14")
    if expiry is not None and not _YYMM.match(expiry):
        raise Declined("54", "DE 14 malformed")
    cvv2 = None
    if "48" in message:
        try:
            cvv2 = iso8583.decode_de48(message["48"]).get("C2")
        except iso8583.MessageError as exc:
            raise Declined("30", "DE 48 malformed") from exc
    return _request(message, amount, pan, expiry=expiry, track2=track2, cvv2=cvv2,
                    pin_block=bytes.fromhex(message["52"]) if "52" in message else None)


def parse_follow_up(message: Message, *, amount_required: bool) -> Request:
    """Reads a completion or reversal: the references to its original (DE 37, DE 90) and the
    amount; the card data is optional (the original was already checked)."""
    raw_amount = message.get("4", "")
    if amount_required:
        amount = parse_amount(message)
    else:
        amount = int(raw_amount) if _AMOUNT.match(raw_amount) else 0
    pan = message.get("2", "")
    req = _request(message, amount, "" if validate_pan(pan) else pan)
    if not req.rrn and req.original is None:
        raise Declined("30", "no DE 37 nor DE 90")
    return req


def _request(message: Message, amount: int, pan: str, *, expiry: str | None = None,
             track2: Track2 | None = None, cvv2: str | None = None,
             pin_block: bytes | None = None) -> Request:
    return Request(
        mti=message.get("t", ""),
        processing_code=message.get("3", ""),
        amount_minor=amount,
        pan=pan,
        rrn=message.get("37", ""),
        stan=message.get("11", ""),
        transmission_dt=message.get("7", ""),
        acquirer_id=message.get("32", ""),
        terminal_id=message.get("41", ""),
        mcc=message.get("18", ""),
        expiry_yymm=expiry,
        track2=track2,
        cvv2=cvv2,
        pin_block=pin_block,
        original=OriginalData.parse(message["90"]) if "90" in message else None,
    )


def build_response(request: Message, outcome: Outcome) -> Message:
    """The response to ``request``: its echoed fields, DE 39, and 38/44/48/54/55 as the outcome
    says."""
    mti = request.get("t", "")
    response: Message = {"t": iso8583.RESPONSE_MTI[mti]}
    approved = responses.approved(outcome.code)
    if mti == "0800":
        response.update({f: request[f] for f in NETWORK_ECHOED if f in request})
        response["39"] = outcome.code
        if outcome.additional_data:
            response["48"] = iso8583.encode_de48(dict(outcome.additional_data))
        if not approved and outcome.detail:
            response["44"] = outcome.detail[:25]
        return response
    if "2" in request:
        response["2"] = request["2"]
    response.update({f: request[f] for f in ECHOED if f in request})
    response["39"] = outcome.code
    if outcome.emv_data:
        response["55"] = outcome.emv_data.hex().upper()
    if approved:
        if outcome.approval_code:
            response["38"] = outcome.approval_code
        if outcome.balances is not None:
            ledger, available, alpha = outcome.balances
            cur = currency.by_alpha(alpha)
            numeric = cur.numeric if cur else request.get("49", "000")
            response["54"] = iso8583.encode_de54([(iso8583.AMOUNT_LEDGER, numeric, ledger),
                                                  (iso8583.AMOUNT_AVAILABLE, numeric, available)])
    else:
        response["44"] = (outcome.detail or Decline(outcome.code).text())[:25]
    return response


def new_approval_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"
