"""Dynamic zone PIN key exchange (0800, DE 70 = 161), and the key each acquirer's PIN blocks are
under.

The acquirer (the switch) makes a new zone PIN key (ZPK) and sends it as a TR-31 key block under
the zone master key the two share (the ZMK, ``zmk-issuer`` in the HSM): DE 32 names the acquirer,
DE 48 subfield ``KB`` carries the block and ``KC`` its key check value (6 hex digits). The issuer
imports the block through the HSM, checks the check value, makes the key the acquirer's current
one and answers 0810 with 00 and ``KC`` echoing the check value the HSM computed; the switch uses
the key from then on. Until an acquirer's first exchange its PIN blocks are under ``zpk-issuer``.

An 0810 other than 00 leaves the acquirer's keys as they were:

- 30 format error: DE 32, DE 7, DE 11 or DE 48 (subfield KB, or KC as 6 hex digits) missing or
  malformed;
- 63 security violation: the block does not verify under the ZMK or is not a zone PIN key, or
  the key it holds does not have the check value KC;
- 91 the HSM did not answer, 96 any other failure (the ZMK missing, say): both worth retrying.

A PIN block that does not verify under the current key is tried once under the previous one:
a request in flight during the change was encrypted under it. The previous key stays until the
next exchange: the issuer cannot know when the switch got the 0810, and a key the switch still
uses must not make every PIN look wrong (three in a row block the card). Each process remembers
the keys it last read; a PIN that verifies under neither reads them again, so a key another
process activated is found on its first use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cardswitch import iso8583
from cardswitch.iso8583 import Message
from issuer_sim.models import ZoneKey

log = logging.getLogger(__name__)

#: The zone PIN key of every acquirer that has not exchanged one (created by ``issuer seed``).
ZPK_REF = "zpk-issuer"
#: The zone master key new zone PIN keys arrive under (created by ``issuer seed``).
ZMK_REF = "zmk-issuer"

_KCV = re.compile(r"^[0-9A-F]{6}$")
T = TypeVar("T")


class KeyBlockRejected(Exception):
    """The HSM refused a key block: it does not verify under the ZMK or is not a zone PIN key."""


class KeyChangeRefused(Exception):
    """An 0800/161 answered other than 00: the response code and the fact behind it."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code} {detail}")
        self.code, self.detail = code, detail


class ZoneKeyHsm(Protocol):
    """The HSM operations on zone PIN keys."""

    async def verify_pin(self, pan: str, pin_block: bytes, offset: str, zpk_ref: str) -> bool:
        """Whether an ISO format 0 PIN block under ``zpk_ref`` matches the IBM 3624 offset."""
        ...

    async def import_zone_pin_key(self, label: str, key_block: str) -> str:
        """Stores the zone PIN key of a TR-31 block under the ZMK as ``label``; its check value.

        A label already taken (the same exchange repeated) answers that key's check value;
        :class:`KeyBlockRejected` if the block does not verify or is not a zone PIN key.
        """
        ...


class DbRunner(Protocol):
    """Runs a blocking database function off the event loop."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...


@dataclass(frozen=True)
class KeyChange:
    """An 0800/161 as read: whose key, the key block and its check value, the HSM label."""

    acquirer_id: str
    key_block: str
    kcv: str
    label: str


def acquirer_key(de32: str) -> str:
    """An acquirer id as the zone key table holds it: DE 32 without leading zeros."""
    return de32.lstrip("0") or "0"


def parse_key_change(message: Message) -> KeyChange:
    """Reads an 0800/161; :class:`KeyChangeRefused` (30) names the field at fault.

    The HSM label is made of the acquirer and the message's DE 7 and STAN, so an exchange sent
    again finds the key it imported the first time.
    """
    acquirer = message.get("32", "")
    if not acquirer.isdigit():
        raise KeyChangeRefused("30", "DE 32 missing")
    stamp = message.get("7", "") + message.get("11", "")
    if len(stamp) != 16 or not stamp.isdigit():
        raise KeyChangeRefused("30", "DE 7 or DE 11 malformed")
    try:
        subfields = iso8583.decode_de48(message.get("48", ""))
    except iso8583.MessageError as exc:
        raise KeyChangeRefused("30", "DE 48 malformed") from exc
    key_block = subfields.get(iso8583.DE48_KEY_BLOCK, "")
    kcv = subfields.get(iso8583.DE48_KEY_CHECK_VALUE, "").upper()
    if not key_block:
        raise KeyChangeRefused("30", "DE 48 KB missing")
    if not _KCV.match(kcv):
        raise KeyChangeRefused("30", "DE 48 KC not 6 hex digits")
    acquirer = acquirer_key(acquirer)
    return KeyChange(acquirer, key_block, kcv, f"{ZPK_REF}.{acquirer}.{stamp}")


def key_refs(row: ZoneKey | None) -> tuple[str, ...]:
    """The keys a PIN block from the acquirer may be under, the current one first."""
    if row is None:
        return (ZPK_REF,)
    if row.previous_key_ref is None or row.previous_key_ref == row.key_ref:
        return (row.key_ref,)
    return (row.key_ref, row.previous_key_ref)


def read_key_refs(sessions: sessionmaker[Session], acquirer_id: str) -> tuple[str, ...]:
    with sessions() as s:
        return key_refs(s.get(ZoneKey, acquirer_id))


def activate(sessions: sessionmaker[Session], change: KeyChange, kcv: str,
             now: datetime) -> tuple[str, ...]:
    """Makes the key of ``change`` the acquirer's current one; returns its key refs.

    The key it replaces becomes the previous one. An exchange sent again changes nothing, nor
    does one of the previous key (a late repeat must not bring back the key it replaced).
    """
    try:
        return _activate(sessions, change, kcv, now)
    except IntegrityError:  # another process made the acquirer's first row just now
        return _activate(sessions, change, kcv, now)


def _activate(sessions: sessionmaker[Session], change: KeyChange, kcv: str,
              now: datetime) -> tuple[str, ...]:
    with sessions.begin() as s:
        row = s.get(ZoneKey, change.acquirer_id, with_for_update=True)
        if row is None:
            row = ZoneKey(acquirer_id=change.acquirer_id, key_ref=change.label, kcv=kcv,
                          activated_at=now, previous_key_ref=ZPK_REF)
            s.add(row)
        elif change.label not in (row.key_ref, row.previous_key_ref):
            row.previous_key_ref = row.key_ref
            row.key_ref, row.kcv, row.activated_at = change.label, kcv, now
        return key_refs(row)


class ZonePinKeys:
    """Each acquirer's zone PIN keys: exchanged by 0800/161, used to verify its PIN blocks."""

    def __init__(self, hsm: ZoneKeyHsm, sessions: sessionmaker[Session], run: DbRunner,
                 clock: Callable[[], datetime]) -> None:
        self._hsm = hsm
        self._sessions = sessions
        self._run = run
        self._clock = clock
        #: acquirer id -> its key refs as this process last read or set them.
        self._known: dict[str, tuple[str, ...]] = {}

    async def verify_pin(self, acquirer_id: str, pan: str, pin_block: bytes,
                         offset: str) -> bool:
        """Whether the PIN block from ``acquirer_id`` (DE 32) is right, under the acquirer's
        current zone PIN key or else its previous one."""
        acquirer = acquirer_key(acquirer_id)
        tried = self._known.get(acquirer) or await self._read(acquirer)
        if await self._verify_under(tried, pan, pin_block, offset):
            return True
        latest = await self._read(acquirer)
        untried = tuple(ref for ref in latest if ref not in tried)
        return await self._verify_under(untried, pan, pin_block, offset)

    async def exchange(self, message: Message) -> str:
        """Imports and activates the zone PIN key of an 0800/161; returns its check value.

        :class:`KeyChangeRefused` says why not; HSM errors other than a rejected block pass.
        """
        change = parse_key_change(message)
        try:
            kcv = (await self._hsm.import_zone_pin_key(change.label, change.key_block)).upper()
        except KeyBlockRejected as exc:
            log.warning("acquirer %s: zone PIN key block rejected: %s", change.acquirer_id, exc)
            raise KeyChangeRefused("63", "key block rejected") from exc
        if kcv[:6] != change.kcv:
            log.warning("acquirer %s: zone PIN key %s has check value %s, KC says %s",
                        change.acquirer_id, change.label, kcv, change.kcv)
            raise KeyChangeRefused("63", f"KCV {kcv[:6]} is not KC")
        refs = await self._run(activate, self._sessions, change, kcv, self._clock())
        self._known[change.acquirer_id] = refs
        log.info("acquirer %s: zone PIN key %s (KCV %s) active, keys %s", change.acquirer_id,
                 change.label, kcv, ", ".join(refs))
        return kcv[:6]

    async def _read(self, acquirer: str) -> tuple[str, ...]:
        refs = await self._run(read_key_refs, self._sessions, acquirer)
        self._known[acquirer] = refs
        return refs

    async def _verify_under(self, refs: tuple[str, ...], pan: str, pin_block: bytes,
                            offset: str) -> bool:
        for ref in refs:
            if await self._hsm.verify_pin(pan, pin_block, offset, ref):
                return True
        return False
