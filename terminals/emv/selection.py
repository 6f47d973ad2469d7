"""Application selection (EMV Book 1 12; contactless: EMV Book B 3.3, the PPSE).

Contact: the terminal first reads the card's payment system environment (SELECT
1PAY.SYS.DDF01, then READ RECORD of its directory file) and keeps each listed application it
also supports. When the card has no PSE, or the PSE gives nothing usable, it SELECTs each of its
own AIDs in turn (the list of AIDs method), following partial matches with SELECT next. Blocked
applications (SW 6283) are never candidates.

Contactless: SELECT 2PAY.SYS.DDF01 returns the whole directory in the FCI (BF0C); there is no
fallback.

The candidates are then tried by priority (87, 1 highest; none last): SELECT by ADF name until
one answers 9000. An application that needs cardholder confirmation (87 bit 8) is left out on an
unattended terminal, which has nobody to confirm (Book 1 12.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from cardswitch.emv import PPSE, PSE
from cardswitch.tlv import Tlv, decode, find
from terminals.emv import apdu
from terminals.emv.config import ApplicationConfig
from terminals.emv.session import Abort, Session, parse_card_data

NO_APPLICATION = "no supported application"
#: Records a directory file may hold (Book 1 12.2.3 allows up to 255; real ones hold a few).
MAX_DIRECTORY_RECORDS = 32
#: SELECT next rounds per terminal AID, against a card that repeats itself.
MAX_PARTIAL_MATCHES = 16

_CONFIRMATION_REQUIRED = 0x80


@dataclass(frozen=True)
class Candidate:
    """A mutually supported application: the card's ADF name and the terminal's parameters."""

    adf_name: bytes
    application: ApplicationConfig
    label: str = ""
    #: Application priority indicator 87, or None when the card gave none.
    priority: int | None = None

    @property
    def rank(self) -> int:
        """Sort key: priority 1..15 first, then entries without one (Book 1 12.4)."""
        number = (self.priority or 0) & 0x0F
        return number if number else 16

    @property
    def needs_confirmation(self) -> bool:
        return bool((self.priority or 0) & _CONFIRMATION_REQUIRED)


def contact_candidates(session: Session) -> list[Candidate]:
    """The candidate list for a contact card: PSE, else the list of AIDs."""
    found = _from_pse(session)
    if found:
        return found
    session.log("LIST OF AIDS", "PSE gave no candidates")
    return _from_aid_list(session)


def contactless_candidates(session: Session) -> list[Candidate]:
    """The candidate list from the contactless PPSE directory."""
    response = session.send("SELECT PPSE", apdu.select(PPSE))
    if not response.ok:
        raise Abort(NO_APPLICATION)
    directory = find(response.data, 0xBF0C) or b""
    return _from_entries(session, _templates(directory, "PPSE directory"))


def choose(session: Session, candidates: list[Candidate]) -> Candidate:
    """Final selection: SELECT the best remaining candidate; its FCI joins the card data."""
    ordered = sorted(_selectable(session, candidates), key=lambda c: c.rank)
    for candidate in ordered:
        response = session.send(f"SELECT {candidate.adf_name.hex().upper()}",
                                apdu.select(candidate.adf_name))
        if not response.ok:
            candidates.remove(candidate)
            continue
        fci = parse_card_data(response.data, "FCI")
        if fci.get(0x84, candidate.adf_name) != candidate.adf_name:
            candidates.remove(candidate)
            session.log("SELECT", "FCI names another application, skipped")
            continue
        session.card.update(fci)
        session.card.setdefault(0x84, candidate.adf_name)
        session.application = candidate.application
        session.log("APPLICATION", f"{candidate.application.brand} {candidate.label}".strip())
        return candidate
    raise Abort(NO_APPLICATION)


def _selectable(session: Session, candidates: list[Candidate]) -> list[Candidate]:
    if not session.config.unattended:
        return candidates
    kept = [c for c in candidates if not c.needs_confirmation]
    if len(kept) < len(candidates):
        session.log("SELECTION", "left out applications needing cardholder confirmation")
    return kept


def _from_pse(session: Session) -> list[Candidate]:
    response = session.send("SELECT PSE", apdu.select(PSE))
    if response.sw == apdu.SW_FUNCTION_NOT_SUPPORTED:
        raise Abort("card blocked or SELECT not supported (SW 6A81)")
    if not response.ok:
        return []
    try:
        sfi_value = find(response.data, 0x88)
    except ValueError:
        return []
    if not sfi_value or not 1 <= sfi_value[0] <= 30:
        return []
    entries: list[Tlv] = []
    for record in range(1, MAX_DIRECTORY_RECORDS + 1):
        read = session.send(f"READ RECORD {sfi_value[0]}.{record}",
                            apdu.read_record(sfi_value[0], record))
        if read.sw == apdu.SW_RECORD_NOT_FOUND:
            break
        if not read.ok:
            return []
        body = _record_body(read.data)
        if body is None:
            return []
        entries += _templates(body, "PSE directory")
    return _from_entries(session, entries)


def _record_body(data: bytes) -> bytes | None:
    try:
        objects = decode(data)
    except ValueError:
        return None
    if len(objects) != 1 or objects[0].tag != 0x70:
        return None
    return objects[0].value


def _templates(directory: bytes, source: str) -> list[Tlv]:
    """The application templates 61 of a directory."""
    try:
        return [t for t in decode(directory) if t.tag == 0x61]
    except ValueError as exc:
        raise Abort(f"card data error in {source}: {exc}") from None


def _from_entries(session: Session, entries: list[Tlv]) -> list[Candidate]:
    """Candidates from directory entries (61 with 4F ADF name, 50 label, 87 priority)."""
    found: list[Candidate] = []
    for entry in entries:
        data = parse_card_data(entry.value, "directory entry")
        adf_name = data.get(0x4F)
        if adf_name is None:
            continue  # a DDF entry (9D): this kernel does not descend into nested directories
        application = session.config.application(adf_name)
        if application is None:
            continue
        priority = data[0x87][0] if data.get(0x87) else None
        label = data.get(0x50, b"").decode("ascii", "replace")
        found.append(Candidate(adf_name, application, label, priority))
    session.log("CANDIDATES", ", ".join(c.adf_name.hex().upper() for c in found) or "none")
    return found


def _from_aid_list(session: Session) -> list[Candidate]:
    """Book 1 12.3.3: SELECT each terminal AID, and SELECT next while the card matches partly."""
    found: list[Candidate] = []
    for application in session.config.applications:
        next_occurrence = False
        for _ in range(MAX_PARTIAL_MATCHES):
            response = session.send(f"SELECT {application.aid.hex().upper()}",
                                    apdu.select(application.aid, next_occurrence=next_occurrence))
            if not (response.ok or response.sw == apdu.SW_SELECTED_FILE_INVALIDATED):
                break
            fci = parse_card_data(response.data, "FCI")
            adf_name = fci.get(0x84, b"")
            blocked = response.sw == apdu.SW_SELECTED_FILE_INVALIDATED
            if blocked:
                session.log("BLOCKED", adf_name.hex().upper())
            exact = adf_name == application.aid
            if (exact or application.matches(adf_name)) and not blocked:
                priority = fci[0x87][0] if fci.get(0x87) else None
                label = fci.get(0x50, b"").decode("ascii", "replace")
                found.append(Candidate(adf_name, application, label, priority))
            if exact or not application.partial_selection:
                break
            next_occurrence = True
    session.log("CANDIDATES", ", ".join(c.adf_name.hex().upper() for c in found) or "none")
    return found
