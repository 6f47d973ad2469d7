"""The virtual EMV card, driven with raw APDUs: every command, every status word it answers, and
cryptograms the issuer's HSM chain verifies (IMK -> ICC master key option A -> session key)."""

from __future__ import annotations

import dataclasses
import doctest
import json
import stat
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import terminals.cards
from cardswitch import emv as scheme
from cardswitch import tlv
from hsm_sim.algorithms.emv import (
    arpc1,
    arpc2,
    common_session_key,
    icc_master_key_a,
    script_mac,
    secure_messaging_keys,
    verify_ac,
)
from terminals.cards import (
    CardProfile,
    EmvCard,
    commands,
    cryptogram,
    profile,
    read_card,
    records,
    scripts,
    write_card,
)
from terminals.cards.commands import COMMANDS
from terminals.cards.layout import (
    CDOL1,
    PDOL_CONTACTLESS,
    afl,
    dol_bytes,
    static_data_to_authenticate,
)
from terminals.cards.state import state_path
from terminals.emv import pki
from terminals.emv.local import IMK_AC, IMK_SMC, IMK_SMI, PANS, PIN, PSN, secrets_for

KEK = bytes(range(32))

# What the terminal sends: amount 10.00 USD, TVR with "transaction exceeds floor limit".
TERMINAL = {
    0x9F02: bytes.fromhex("000000001000"), 0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0840"),
    0x95: bytes.fromhex("0000008000"), 0x5F2A: bytes.fromhex("0840"),
    0x9A: bytes.fromhex("250314"), 0x9C: b"\x00", 0x9F37: bytes.fromhex("11223344"),
    0x9F35: b"\x22", 0x9F45: bytes(2), 0x9F34: bytes.fromhex("1F0302"),
    0x9F66: bytes.fromhex("36004000"),
}
AC_TERMINAL_TAGS = [tag for tag, _ in scheme.TERMINAL_AC_DATA]

SELECT_PSE = "00A404000E" + scheme.PSE.hex() + "00"
SELECT_PPSE = "00A404000E" + scheme.PPSE.hex() + "00"
GPO_NO_PDOL = "80A80000028300" + "00"
GPO_NO_PDOL_BYTES = bytes.fromhex(GPO_NO_PDOL)


# ---- helpers ----------------------------------------------------------------------------------


def profile_for(brand: str = "visa", cvn: int | None = None, **changes: object) -> CardProfile:
    fields: dict[str, object] = dict(
        brand=brand, pan=PANS[brand], psn=PSN, expiry="301231", effective="240101",
        service_code="201", cardholder_name="TEST/CARD", currency_numeric="0840",
        country_numeric="0840", cvn=cvn, contactless=True)
    fields.update(changes)
    return CardProfile(**fields)  # type: ignore[arg-type]



def make_card(tmp_path: Path, brand: str = "visa", cvn: int | None = None,
              interface: str = "contact", **changes: object) -> EmvCard:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return EmvCard(profile_for(brand, cvn, **changes), secrets_for(brand),
                   tmp_path / f"{brand}.state.json", interface)  # type: ignore[arg-type]


def send(card: EmvCard, apdu: str | bytes) -> tuple[bytes, str]:
    """(response data, SW as hex)."""
    raw = card.process(bytes.fromhex(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu)
    return raw[:-2], raw[-2:].hex().upper()


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: bool = True) -> bytes:
    body = bytes([len(data)]) + data if data else b""
    return bytes([cla, ins, p1, p2]) + body + (b"\x00" if le else b"")


def select_aid(brand: str = "visa") -> bytes:
    return apdu(0x00, 0xA4, 0x04, 0x00, scheme.AIDS[brand])


def gen_ac(p1: int, data: bytes) -> bytes:
    return apdu(0x80, 0xAE, p1, 0x00, data)


def cdol1_data(**overrides: bytes) -> bytes:
    return tlv.build_dol(CDOL1, {**TERMINAL, **{int(k[1:], 16): v for k, v in overrides.items()}})


def start(card: EmvCard, brand: str = "visa") -> None:
    """SELECT the application and GET PROCESSING OPTIONS (contact, no PDOL)."""
    assert send(card, select_aid(brand))[1] == "9000"
    assert send(card, GPO_NO_PDOL)[1] == "9000"


def first_ac(card: EmvCard, brand: str = "visa", p1: int = scheme.ARQC) -> dict[int, bytes]:
    start(card, brand)
    data, sw = send(card, gen_ac(p1, cdol1_data()))
    assert sw == "9000"
    return tlv.flatten(data)


def ac_key(brand: str, cvn: int, atc: bytes) -> bytes:
    """The issuer's key for this card's cryptograms, as the HSM's VerifyArqc derives it."""
    icc = icc_master_key_a(IMK_AC, PANS[brand], PSN)
    return common_session_key(icc, atc) if scheme.version(brand, cvn).session_key else icc


def verifies(brand: str, cvn: int, terminal: dict[int, bytes], aip: bytes,
             answer: dict[int, bytes]) -> bool:
    """The HSM's check: rebuild the AC data from DE 55 and verify 9F26 under the issuer's key."""
    version = scheme.version_of(brand, answer[0x9F10])
    assert version.cvn == cvn
    data = version.ac_data({**terminal, 0x82: aip, 0x9F36: answer[0x9F36],
                            0x9F10: answer[0x9F10]})
    return verify_ac(ac_key(brand, cvn, answer[0x9F36]), data, answer[0x9F26],
                     padding=version.padding)


def cvr_of(brand: str, iad: bytes) -> bytes:
    return iad[2:8] if brand == "mastercard" else iad[4:7]


def arpc_data(brand: str, cvn: int, answer: dict[int, bytes], arc: bytes = b"00") -> bytes:
    """Issuer authentication data 91 as the issuer returns it for this ARQC."""
    key = ac_key(brand, cvn, answer[0x9F36])
    if scheme.version(brand, cvn).arpc_method == 1:
        return arpc1(key, answer[0x9F26], arc) + arc
    csu = bytes.fromhex("00800000")
    return arpc2(key, answer[0x9F26], csu) + csu


def script(brand: str, ins: int, answer: dict[int, bytes], p2: int = 0, mac_length: int = 8,
           wrong_mac: bool = False) -> bytes:
    """An issuer script command MACed under the transaction's SMI session key."""
    pan = PANS[brand]
    keys = secure_messaging_keys(icc_master_key_a(IMK_SMI, pan, PSN),
                                 icc_master_key_a(IMK_SMC, pan, PSN), answer[0x9F26])
    header = bytes([0x84, ins, 0x00, p2, mac_length])
    mac = script_mac(keys.integrity, header + answer[0x9F36] + answer[0x9F26], mac_length)
    if wrong_mac:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    return header + mac


def pin_block(pin: str) -> bytes:
    digits = f"2{len(pin):X}{pin}"
    return bytes.fromhex(digits.ljust(16, "F"))


def verify(pin: str) -> bytes:
    return apdu(0x00, 0x20, 0x00, 0x80, pin_block(pin), le=False)


ALL_VERSIONS = [pytest.param(v.brand, v.cvn, id=f"{v.brand}-{v.cvn:02X}") for v in scheme.VERSIONS]


# ---- selection --------------------------------------------------------------------------------


def test_select_pse_on_contact_answers_its_fci_with_directory_sfi_1(tmp_path: Path) -> None:
    card = make_card(tmp_path)

    data, sw = send(card, SELECT_PSE)

    assert sw == "9000"
    assert data.hex().upper() == "6F1A840E" + scheme.PSE.hex().upper() + "A5088801015F2D02656E"


def test_pse_directory_record_lists_the_application(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    send(card, SELECT_PSE)

    data, sw = send(card, "00B2010C00")

    assert sw == "9000"
    assert data.hex().upper() == ("7014" "6112" "4F07A0000000031010" "5004"
                                  + b"VISA".hex().upper() + "870101")
    assert send(card, "00B2020C00")[1] == "6A83"


def test_select_ppse_on_contactless_lists_the_application_in_bf0c(tmp_path: Path) -> None:
    card = make_card(tmp_path, "mastercard", interface="contactless")

    data, sw = send(card, SELECT_PPSE)

    assert sw == "9000"
    entry = tlv.find(data, 0x61)
    assert entry is not None and tlv.find(entry, 0x4F) == scheme.AIDS["mastercard"]
    assert tlv.find(data, 0x84) == scheme.PPSE


def test_payment_system_environment_of_the_other_interface_is_not_found(tmp_path: Path) -> None:
    assert send(make_card(tmp_path), SELECT_PPSE)[1] == "6A82"
    assert send(make_card(tmp_path, interface="contactless"), SELECT_PSE)[1] == "6A82"


def test_select_aid_answers_fci_with_label_priority_language_and_no_contact_pdol(
        tmp_path: Path) -> None:
    data, sw = send(make_card(tmp_path), select_aid())

    assert sw == "9000"
    assert data.hex().upper() == ("6F19" "8407A0000000031010" "A50E" "5004" + b"VISA".hex().upper()
                                  + "870101" "5F2D02656E")


def test_contactless_fci_carries_the_pdol(tmp_path: Path) -> None:
    data, _ = send(make_card(tmp_path, interface="contactless"), select_aid())

    assert tlv.find(data, 0x9F38) == dol_bytes(PDOL_CONTACTLESS)
    assert dol_bytes(PDOL_CONTACTLESS).hex().upper() == (
        "9F6604" "9F0206" "9F0306" "9F1A02" "9505" "5F2A02" "9A03" "9C01" "9F3704")


def test_partial_aid_selects_the_first_occurrence_and_there_is_no_next(tmp_path: Path) -> None:
    card = make_card(tmp_path)

    data, sw = send(card, "00A4040005A00000000300")
    assert sw == "9000" and tlv.find(data, 0x84) == scheme.AIDS["visa"]
    assert send(card, "00A4040205A00000000300")[1] == "6A82"


def test_unknown_aid_is_not_found_and_wrong_p1_is_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path)

    assert send(card, "00A4040007A000000004101000")[1] == "6A82"
    assert send(card, "00A4000007A000000003101000")[1] == "6A86"
    assert send(card, "00A4040000")[1] == "6700"


# ---- GET PROCESSING OPTIONS, READ RECORD, GET DATA --------------------------------------------


def test_gpo_before_select_is_refused(tmp_path: Path) -> None:
    assert send(make_card(tmp_path), GPO_NO_PDOL)[1] == "6985"


def test_contact_gpo_answers_format_2_with_aip_and_afl(tmp_path: Path) -> None:
    card = make_card(tmp_path, oda="sda", certificates={"8F": b"\x92", "93": bytes(64)})
    send(card, select_aid())

    data, sw = send(card, GPO_NO_PDOL)

    assert sw == "9000"
    # AIP: SDA, cardholder verification, terminal risk management, issuer authentication.
    # AFL: SFI 1 record 1; SFI 2 record 1 (in ODA); SFI 3 record 1.
    assert data.hex().upper() == "7712" "82025C00" "940C" "08010100" "10010101" "18010100"
    assert send(card, GPO_NO_PDOL)[1] == "6985"


def test_gpo_with_data_of_the_wrong_length_for_the_pdol_is_6700(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    send(card, select_aid())

    assert send(card, "80A800000383010000")[1] == "6700"
    assert send(card, "80A80000027000" "00")[1] == "6A80"
    assert send(card, "80A80100028300" "00")[1] == "6A86"


def test_every_record_the_afl_lists_reads_as_a_70_template(tmp_path: Path) -> None:
    card = make_card(tmp_path, oda="dda", certificates={"8F": b"\x92", "90": bytes(176),
                                                        "9F32": b"\x03", "9F46": bytes(144),
                                                        "9F47": b"\x03"})
    start(card)
    locator = afl(card.profile, "contact")

    read: dict[int, bytes] = {}
    for entry in range(0, len(locator), 4):
        sfi, first, last = locator[entry] >> 3, locator[entry + 1], locator[entry + 2]
        for number in range(first, last + 1):
            data, sw = send(card, apdu(0x00, 0xB2, number, sfi << 3 | 4))
            assert sw == "9000" and data[0] == 0x70
            read.update(tlv.flatten(data))

    assert read[0x5A].hex() == PANS["visa"]
    assert read[0x57].hex().upper() == PANS["visa"] + "D3012201"
    assert read[0x8C] == dol_bytes(CDOL1)
    assert read[0x8C].hex().upper() == ("9F0206" "9F0306" "9F1A02" "9505" "5F2A02" "9A03" "9C01"
                                        "9F3704" "9F3501" "9F4502" "9F3403")
    assert read[0x8D].hex().upper() == "8A02" "9505" "9F3704"
    assert read[0x8E].hex().upper() == "00000000" "00000000" "4103" "4203" "5E03" "1F03"
    assert read[0x9F49].hex().upper() == "9F3704"
    assert read[0x9F4A] == b"\x82"
    assert read[0x9F46] == bytes(144)


def test_mastercard_cdol2_asks_for_the_arpc(tmp_path: Path) -> None:
    card = make_card(tmp_path, "mastercard")
    start(card, "mastercard")

    data, _ = send(card, "00B2011400")

    assert tlv.find(data, 0x8D) == bytes.fromhex("8A02" "910A" "9505" "9F3704")


def test_read_record_refusals(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    assert send(card, "00B2011400")[1] == "6985"  # nothing selected
    start(card)

    assert send(card, "00B2051400")[1] == "6A83"
    assert send(card, "00B2011000")[1] == "6A86"  # P2 low bits not 100
    assert send(card, "00B2000C00")[1] == "6A86"  # record 0


def test_get_data_answers_atc_pin_try_counter_and_last_online_atc(tmp_path: Path) -> None:
    card = make_card(tmp_path)

    assert send(card, "80CA9F3600") == (bytes.fromhex("9F36020000"), "9000")
    assert send(card, "80CA9F1700") == (bytes.fromhex("9F170103"), "9000")
    assert send(card, "80CA9F1300") == (bytes.fromhex("9F13020000"), "9000")
    assert send(card, "80CA9F4F00")[1] == "6A88"


# ---- VERIFY -----------------------------------------------------------------------------------


def test_right_offline_pin_is_9000(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)

    assert send(card, verify(PIN)) == (b"", "9000")


def test_wrong_pins_count_down_to_6983_and_the_right_pin_is_then_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)

    answers = [send(card, verify("9999"))[1] for _ in range(3)]

    assert answers == ["63C2", "63C1", "63C0"]
    assert send(card, verify(PIN))[1] == "6983"
    assert card.state.pin_try_counter == 0


def test_right_pin_resets_the_try_counter(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)
    send(card, verify("0000"))

    send(card, verify(PIN))

    assert send(card, "80CA9F1700")[0] == bytes.fromhex("9F170103")


def test_malformed_pin_blocks_and_enciphered_pin_are_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)

    assert send(card, "0020008008" "341234FFFFFFFFFF")[1] == "6A80"  # control nibble 3
    assert send(card, "0020008008" "2312FFFFFFFFFFFF")[1] == "6A80"  # 3 digits
    assert send(card, "0020008008" "24123AFFFFFFFFFF")[1] == "6A80"  # not a digit
    assert send(card, "0020008008" "241234FFFFFFFF00")[1] == "6A80"  # filler not F
    assert send(card, "0020008807" "24123AFFFFFFFF")[1] == "6A86"
    assert send(card, "0020008004" "241234FF")[1] == "6700"
    assert card.state.pin_try_counter == 3


# ---- GENERATE AC: cryptograms the issuer verifies --------------------------------------------


@pytest.mark.parametrize(("brand", "cvn"), ALL_VERSIONS)
def test_contact_arqc_verifies_with_the_issuer_master_key(tmp_path: Path, brand: str,
                                                          cvn: int) -> None:
    card = make_card(tmp_path, brand, cvn)

    answer = first_ac(card, brand)

    assert answer[0x9F27] == b"\x80"
    assert answer[0x9F36] == bytes.fromhex("0001")
    assert verifies(brand, cvn, TERMINAL, card.profile.aip, answer)
    assert not verifies(brand, cvn, {**TERMINAL, 0x9F37: bytes(4)}, card.profile.aip, answer)


@pytest.mark.parametrize(("brand", "cvn"), ALL_VERSIONS)
def test_contactless_gpo_returns_an_arqc_that_verifies(tmp_path: Path, brand: str,
                                                       cvn: int) -> None:
    card = make_card(tmp_path, brand, cvn, interface="contactless")
    send(card, SELECT_PPSE)
    send(card, select_aid(brand))

    data, sw = send(card, apdu(0x80, 0xA8, 0, 0, tlv.encode(
        0x83, tlv.build_dol(PDOL_CONTACTLESS, TERMINAL))))

    assert sw == "9000" and data[0] == 0x77
    answer = tlv.flatten(data)
    assert answer[0x9F27] == b"\x80"
    assert answer[0x57].hex().upper().startswith(PANS[brand] + "D3012201")
    assert answer[0x5F34] == b"\x01" and answer[0x9F6C] == bytes.fromhex("8000")
    assert answer[0x94][0] >> 3 == 2  # track 2 came with the GPO; SFI 2 is still readable
    assert verifies(brand, cvn, TERMINAL, answer[0x82], answer)


def test_contactless_gpo_with_the_wrong_pdol_length_is_6700_and_gen_ac_is_refused(
        tmp_path: Path) -> None:
    card = make_card(tmp_path, interface="contactless")
    send(card, select_aid())

    assert send(card, "80A8000003830100" "00")[1] == "6700"
    send(card, apdu(0x80, 0xA8, 0, 0, tlv.encode(0x83, tlv.build_dol(PDOL_CONTACTLESS, TERMINAL))))
    assert send(card, gen_ac(scheme.ARQC, cdol1_data()))[1] == "6985"


def test_terminal_asking_for_a_tc_gets_an_arqc_and_asking_for_an_aac_gets_an_aac(
        tmp_path: Path) -> None:
    assert first_ac(make_card(tmp_path / "a"), p1=scheme.TC)[0x9F27] == b"\x80"
    assert first_ac(make_card(tmp_path / "b"), p1=scheme.AAC)[0x9F27] == b"\x00"


def test_first_arqc_cvr_says_arqc_second_ac_not_requested_and_pin_verified(
        tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)
    send(card, verify(PIN))

    data, _ = send(card, gen_ac(scheme.ARQC, cdol1_data()))

    assert tlv.flatten(data)[0x9F10].hex().upper() == "06010A03" "A40000"


def test_gen_ac_refusals(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    send(card, select_aid())
    assert send(card, gen_ac(scheme.ARQC, cdol1_data()))[1] == "6985"  # before GPO
    send(card, GPO_NO_PDOL)

    assert send(card, gen_ac(scheme.ARQC | 0x10, cdol1_data()))[1] == "6A86"  # CDA
    assert send(card, gen_ac(0xC0, cdol1_data()))[1] == "6A86"
    assert send(card, gen_ac(scheme.ARQC, cdol1_data()[:-1]))[1] == "6700"
    assert card.state.atc == 0


def test_no_second_gen_ac_after_an_aac_nor_a_third_one(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    first_ac(card, p1=scheme.AAC)
    assert send(card, gen_ac(scheme.TC, bytes(11)))[1] == "6985"

    card2 = make_card(tmp_path / "other")
    first_ac(card2)
    send(card2, gen_ac(scheme.AAC, b"Z3" + bytes(9)))
    assert send(card2, gen_ac(scheme.AAC, b"Z3" + bytes(9)))[1] == "6985"


# ---- issuer authentication and the second GENERATE AC -----------------------------------------


def second_ac_data(arc: bytes = b"00", arpc: bytes | None = None) -> bytes:
    values = {0x8A: arc, 0x95: TERMINAL[0x95], 0x9F37: bytes.fromhex("55667788")}
    if arpc is not None:
        values[0x91] = arpc
        return tlv.build_dol(bytes.fromhex("8A02910A95059F3704"), values)
    return tlv.build_dol(bytes.fromhex("8A0295059F3704"), values)


@pytest.mark.parametrize(("brand", "cvn"), [("visa", 0x0A), ("visa", 0x12), ("unionpay", 0x01)])
def test_right_arpc_by_external_authenticate_then_tc(tmp_path: Path, brand: str,
                                                     cvn: int) -> None:
    card = make_card(tmp_path, brand, cvn)
    answer = first_ac(card, brand)

    assert send(card, apdu(0x00, 0x82, 0, 0, arpc_data(brand, cvn, answer), le=False))[1] == "9000"
    data, sw = send(card, gen_ac(scheme.TC, second_ac_data()))

    assert sw == "9000"
    second = tlv.flatten(data)
    assert second[0x9F27] == b"\x40"
    assert second[0x9F36] == answer[0x9F36]
    assert cvr_of(brand, second[0x9F10]) == bytes.fromhex("600000")  # TC after ARQC
    tc_terminal = {**TERMINAL, 0x9F37: bytes.fromhex("55667788")}
    assert verifies(brand, cvn, tc_terminal, card.profile.aip, second)
    assert send(card, "80CA9F1300")[0] == bytes.fromhex("9F13020001")


def test_wrong_arpc_is_6300_then_aac_and_the_next_transaction_reports_it(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    answer = first_ac(card)
    wrong = bytes(8) + b"00"

    assert send(card, apdu(0x00, 0x82, 0, 0, wrong, le=False))[1] == "6300"
    second = tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data()))[0])

    assert second[0x9F27] == b"\x00"
    assert cvr_of("visa", second[0x9F10]) == bytes.fromhex("280000")  # AAC, auth failed
    assert card.state.last_online_atc == 0
    card.power_off()
    nxt = first_ac(card)
    assert cvr_of("visa", nxt[0x9F10]) == bytes.fromhex("A00800")  # failed on last online
    assert answer[0x9F36] != nxt[0x9F36]


def test_issuer_decline_or_no_issuer_authentication_gives_an_aac(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    answer = first_ac(card)
    send(card, apdu(0x00, 0x82, 0, 0, arpc_data("visa", 0x0A, answer, b"05"), le=False))
    assert tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data(b"05")))[0])[0x9F27] == b"\x00"

    card.power_off()
    first_ac(card)  # no EXTERNAL AUTHENTICATE: the issuer was not authenticated
    assert tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data()))[0])[0x9F27] == b"\x00"


def test_unable_to_go_online_gives_an_aac_with_the_cvr_bit(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    first_ac(card)

    second = tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data(b"Z3")))[0])

    assert second[0x9F27] == b"\x00"
    assert cvr_of("visa", second[0x9F10]) == bytes.fromhex("210000")


def test_terminal_asking_for_an_aac_in_the_second_gen_ac_gets_one(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    answer = first_ac(card)
    send(card, apdu(0x00, 0x82, 0, 0, arpc_data("visa", 0x0A, answer), le=False))

    assert tlv.flatten(send(card, gen_ac(scheme.AAC, second_ac_data()))[0])[0x9F27] == b"\x00"


def test_external_authenticate_refusals(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)
    assert send(card, apdu(0x00, 0x82, 0, 0, bytes(10), le=False))[1] == "6985"  # no ARQC yet
    answer = send(card, gen_ac(scheme.ARQC, cdol1_data()))
    ea = arpc_data("visa", 0x0A, tlv.flatten(answer[0]))

    assert send(card, apdu(0x00, 0x82, 0, 0, ea[:9], le=False))[1] == "6700"
    assert send(card, apdu(0x00, 0x82, 1, 0, ea, le=False))[1] == "6A86"
    assert send(card, apdu(0x00, 0x82, 0, 0, ea, le=False))[1] == "9000"
    assert send(card, apdu(0x00, 0x82, 0, 0, ea, le=False))[1] == "6985"  # only once


@pytest.mark.parametrize("cvn", [0x10, 0x11])
def test_mastercard_checks_the_arpc_in_cdol2(tmp_path: Path, cvn: int) -> None:
    card = make_card(tmp_path / "right", "mastercard", cvn)
    answer = first_ac(card, "mastercard")
    right = arpc_data("mastercard", cvn, answer)
    second = tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data(arpc=right)))[0])
    assert second[0x9F27] == b"\x40"
    assert card.state.last_online_atc == 1

    card = make_card(tmp_path / "wrong", "mastercard", cvn)
    first_ac(card, "mastercard")
    second = tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data(arpc=bytes(8) + b"00")))[0])
    assert second[0x9F27] == b"\x00"
    assert cvr_of("mastercard", second[0x9F10]) == bytes.fromhex("280000000000")
    assert card.state.issuer_auth_failed


def test_mastercard_has_no_external_authenticate(tmp_path: Path) -> None:
    card = make_card(tmp_path, "mastercard")
    first_ac(card, "mastercard")

    assert send(card, apdu(0x00, 0x82, 0, 0, bytes(10), le=False))[1] == "6D00"
    assert card.profile.aip == bytes.fromhex("1800")


# ---- issuer scripts ---------------------------------------------------------------------------


def test_application_block_script_blocks_select_6283_and_aac(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    answer = first_ac(card)

    assert send(card, script("visa", 0x1E, answer))[1] == "9000"
    assert tlv.flatten(send(card, gen_ac(scheme.TC, second_ac_data()))[0])[0x9F27] == b"\x00"
    card.power_off()

    data, sw = send(card, select_aid())
    assert sw == "6283" and tlv.find(data, 0x84) == scheme.AIDS["visa"]
    send(card, GPO_NO_PDOL)
    blocked = tlv.flatten(send(card, gen_ac(scheme.ARQC, cdol1_data()))[0])
    assert blocked[0x9F27] == b"\x00"
    assert cvr_of("visa", blocked[0x9F10]) == bytes.fromhex("800010")  # AAC, 1 script last time

    assert send(card, script("visa", 0x18, blocked, mac_length=4))[1] == "9000"  # unblock
    assert not card.state.app_blocked


def contactless_gpo(card: EmvCard) -> dict[int, bytes]:
    send(card, select_aid())
    data, sw = send(card, apdu(0x80, 0xA8, 0, 0, tlv.encode(
        0x83, tlv.build_dol(PDOL_CONTACTLESS, TERMINAL))))
    assert sw == "9000"
    return tlv.flatten(data)


def test_contactless_gpo_of_a_blocked_application_returns_an_aac(tmp_path: Path) -> None:
    card = make_card(tmp_path, interface="contactless")
    assert send(card, script("visa", 0x1E, contactless_gpo(card)))[1] == "9000"
    card.power_off()

    answer = contactless_gpo(card)

    assert answer[0x9F27] == b"\x00"
    assert send(card, select_aid())[1] == "6283"


def test_pin_unblock_script_resets_the_pin_try_counter(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)
    for _ in range(3):
        send(card, verify("0000"))
    answer = tlv.flatten(send(card, gen_ac(scheme.ARQC, cdol1_data()))[0])
    assert cvr_of("visa", answer[0x9F10]) == bytes.fromhex("A64000")  # PIN failed, limit exceeded

    assert send(card, script("visa", 0x24, answer))[1] == "9000"

    assert card.state.pin_try_counter == 3
    assert send(card, verify(PIN))[1] == "9000"


def test_script_with_a_wrong_mac_is_6988_and_does_nothing(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    answer = first_ac(card)

    assert send(card, script("visa", 0x1E, answer, wrong_mac=True))[1] == "6988"

    assert not card.state.app_blocked
    assert card.state.script_failed


def test_script_refusals(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)
    early = {0x9F26: bytes(8), 0x9F36: bytes(2)}
    assert send(card, script("visa", 0x1E, early))[1] == "6985"  # before the first GEN AC
    answer = tlv.flatten(send(card, gen_ac(scheme.ARQC, cdol1_data()))[0])

    assert send(card, script("visa", 0x24, answer, p2=0x01))[1] == "6A81"  # PIN change
    assert send(card, "841E000002" "0102")[1] == "6700"
    assert send(card, "001E000008" + bytes(8).hex())[1] == "6E00"


# ---- offline data authentication --------------------------------------------------------------

TODAY_YYMM = "2503"


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.TestPki:
    return pki.TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def icc_key() -> pki.RsaPrivate:
    return pki.RsaPrivate.generate(1024)


def certified_card(tmp_path: Path, test_pki: pki.TestPki, oda: str,
                   icc_key: pki.RsaPrivate | None = None) -> EmvCard:
    """A card personalised as the bureau does it: issuer certificate, then 93 or 9F46."""
    base = profile_for(oda=oda)
    issuer_key, certificate, remainder, exponent = test_pki.issuer(
        scheme.AIDS["visa"][:5], base.pan[:6])
    certificates = {"8F": bytes([pki.TEST_CA_INDEX]), "90": certificate, "92": remainder,
                    "9F32": exponent}
    static = static_data_to_authenticate(base)
    if icc_key is None:
        certificates["93"] = pki.sign_static_data(issuer_key, static, bytes.fromhex("DAC1"))
    else:
        icc_cert, icc_remainder = pki.icc_certificate(issuer_key, icc_key.public, base.pan,
                                                      "1230", bytes(3), static)
        certificates.update({"9F46": icc_cert, "9F48": icc_remainder,
                             "9F47": icc_key.public.exponent})
    profile = dataclasses.replace(
        base, certificates={tag: cert for tag, cert in certificates.items() if cert})
    return EmvCard(profile, dataclasses.replace(secrets_for(), icc_rsa=icc_key),
                   tmp_path / f"{oda}.state.json", "contact")


def read_as_a_terminal(card: EmvCard) -> tuple[dict[int, bytes], bytes]:
    """SELECT, GPO and every AFL record: (card data, static data to authenticate)."""
    send(card, select_aid())
    gpo = tlv.flatten(send(card, GPO_NO_PDOL)[0])
    found, static = dict(gpo), b""
    locator = gpo[0x94]
    for entry in range(0, len(locator), 4):
        sfi, first, last, in_oda = (locator[entry] >> 3, *locator[entry + 1 : entry + 4])
        for number in range(first, last + 1):
            data, sw = send(card, apdu(0x00, 0xB2, number, sfi << 3 | 4))
            assert sw == "9000"
            if number < first + in_oda:
                static += tlv.decode(data)[0].value
            found.update(tlv.flatten(data))
    assert found[0x9F4A] == b"\x82"
    return found, static + gpo[0x82]


def issuer_key_of(test_pki: pki.TestPki, found: dict[int, bytes]) -> pki.RsaPublic:
    _index, ca = test_pki.ca_public(scheme.AIDS["visa"][:5])
    return pki.recover_issuer_key(ca, found[0x90], found.get(0x92, b""), found[0x9F32],
                                  PANS["visa"], TODAY_YYMM)


def test_sda_card_static_data_verifies_as_the_terminal_reads_it(tmp_path: Path,
                                                                 test_pki: pki.TestPki) -> None:
    card = certified_card(tmp_path, test_pki, "sda")

    found, static = read_as_a_terminal(card)

    issuer = issuer_key_of(test_pki, found)
    assert pki.verify_static_data(issuer, found[0x93], static) == bytes.fromhex("DAC1")


def test_dda_card_signs_the_unpredictable_number_with_its_certified_key(
        tmp_path: Path, test_pki: pki.TestPki, icc_key: pki.RsaPrivate) -> None:
    card = certified_card(tmp_path, test_pki, "dda", icc_key)
    found, static = read_as_a_terminal(card)
    icc = pki.recover_icc_key(issuer_key_of(test_pki, found), found[0x9F46],
                              found.get(0x9F48, b""), found[0x9F47], PANS["visa"], static,
                              TODAY_YYMM)
    assert found[0x9F49] == bytes.fromhex("9F3704")

    data, sw = send(card, "0088000004" "CAFEF00D" "00")

    assert sw == "9000" and data[0] == 0x80
    number = pki.verify_dynamic_data(icc, tlv.decode(data)[0].value, bytes.fromhex("CAFEF00D"))
    assert len(number) == 8 and number[:2] == bytes.fromhex("0000")  # ATC || random
    again = tlv.decode(send(card, "0088000004" "CAFEF00D" "00")[0])[0].value
    assert pki.verify_dynamic_data(icc, again, bytes.fromhex("CAFEF00D")) != number


def test_internal_authenticate_refusals_on_a_dda_card(tmp_path: Path, test_pki: pki.TestPki,
                                                      icc_key: pki.RsaPrivate) -> None:
    card = certified_card(tmp_path, test_pki, "dda", icc_key)
    assert send(card, "0088000004CAFEF00D00")[1] == "6985"  # nothing selected
    start(card)

    assert send(card, "0088000003CAFEF000")[1] == "6700"
    assert send(card, "0088010004CAFEF00D00")[1] == "6A86"


def test_card_file_round_trips_the_icc_rsa_key(tmp_path: Path, icc_key: pki.RsaPrivate) -> None:
    path = tmp_path / "dda.card.json"
    secrets = dataclasses.replace(secrets_for(), icc_rsa=icc_key)

    write_card(path, profile_for(oda="dda"), secrets, KEK)

    assert read_card(path, KEK)[1].icc_rsa == icc_key
    assert f"{icc_key.d:x}".encode() not in path.read_bytes().lower()


# ---- other commands and malformed APDUs -------------------------------------------------------


def test_unknown_ins_wrong_cla_and_bad_lengths(tmp_path: Path) -> None:
    card = make_card(tmp_path)

    assert send(card, "00C0000000")[1] == "6D00"
    assert send(card, "B0A404000E" + scheme.PSE.hex())[1] == "6E00"
    assert send(card, "80A404000E" + scheme.PSE.hex())[1] == "6E00"
    assert send(card, "00A4")[1] == "6700"
    assert send(card, "00A4040007A0000000")[1] == "6700"  # Lc says 7, 4 sent
    assert send(card, "00A4040000000700")[1] == "6700"  # extended length


def test_internal_authenticate_on_a_card_without_dda_is_6d00(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    start(card)

    assert send(card, "008800000411223344" "00")[1] == "6D00"


@pytest.fixture(scope="module")
def fuzz_card(tmp_path_factory: pytest.TempPathFactory) -> EmvCard:
    return EmvCard(profile_for(), secrets_for(),
                   tmp_path_factory.mktemp("fuzz") / "card.state.json", "contact")


apdus_of_known_commands = st.builds(
    lambda cla, ins, p1p2, data, le: bytes([cla, ins]) + p1p2 + data + le,
    st.sampled_from([0x00, 0x80, 0x84]), st.sampled_from(sorted(COMMANDS)),
    st.binary(min_size=2, max_size=2),
    st.binary(max_size=40).map(lambda d: bytes([len(d)]) + d if d else b""),
    st.sampled_from([b"", b"\x00"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(apdus_of_known_commands, st.binary(max_size=48)), max_size=6))
def test_process_never_raises_nor_fails_inside_on_any_apdu(fuzz_card: EmvCard,
                                                           apdus: list[bytes]) -> None:
    fuzz_card.process(select_aid())
    fuzz_card.process(GPO_NO_PDOL_BYTES)
    for raw in apdus:
        answer = fuzz_card.process(raw)

        assert len(answer) >= 2 and answer[-2:] != b"\x6f\x00"


def test_atrs(tmp_path: Path) -> None:
    contact = make_card(tmp_path)
    contactless = make_card(tmp_path, interface="contactless")
    tck = 0
    for byte in contact.atr()[1:-1]:
        tck ^= byte

    assert contact.atr().hex().upper() == "3BE000008131FE45EB" and contact.atr()[-1] == tck
    assert contactless.atr().hex().upper() == "3B80800101"


# ---- persistence -------------------------------------------------------------------------------


def test_atc_continues_on_a_new_card_object_over_the_same_state_file(tmp_path: Path) -> None:
    first_ac(make_card(tmp_path))
    first_ac(make_card(tmp_path))

    card = make_card(tmp_path)

    assert send(card, "80CA9F3600")[0] == bytes.fromhex("9F36020002")
    assert first_ac(card)[0x9F36] == bytes.fromhex("0003")


def test_a_card_pulled_after_its_arqc_has_counted_the_atc_and_says_so_next_time(
        tmp_path: Path) -> None:
    card = make_card(tmp_path)
    first_ac(card)
    card.power_off()  # pulled before the second GENERATE AC

    again = make_card(tmp_path)
    assert again.state.atc == 1 and again.state.online_pending
    answer = first_ac(again)

    assert answer[0x9F36] == bytes.fromhex("0002")
    assert cvr_of("visa", answer[0x9F10]) == bytes.fromhex("A08000")
    assert send(again, gen_ac(scheme.TC, second_ac_data()))[1] == "9000"


def test_contactless_interface_needs_a_contactless_card(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no contactless interface"):
        make_card(tmp_path, interface="contactless", contactless=False)


# ---- the card file -----------------------------------------------------------------------------

LONG_PIN = "482915370264"


def test_card_file_round_trips_and_loads_as_a_card(tmp_path: Path) -> None:
    path = tmp_path / "visa.card.json"
    profile = profile_for(oda="sda", certificates={"8F": b"\x92", "93": bytes(range(64))})
    secrets = secrets_for(pin=LONG_PIN)

    write_card(path, profile, secrets, KEK)

    assert read_card(path, KEK) == (profile, secrets)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    card = EmvCard.load(path, KEK, "contact")
    first_ac(card)
    assert state_path(path) == tmp_path / "visa.card.state.json"
    assert json.loads(state_path(path).read_text())["atc"] == 1


def test_card_file_keeps_the_pin_and_keys_out_of_the_clear(tmp_path: Path) -> None:
    path = tmp_path / "visa.card.json"
    secrets = secrets_for(pin=LONG_PIN)

    write_card(path, profile_for(), secrets, KEK)

    raw = path.read_bytes()
    assert LONG_PIN.encode() not in raw
    for key in (secrets.icc_mk_ac, secrets.icc_mk_smi, secrets.icc_mk_smc):
        assert key.hex().encode() not in raw.lower()
    assert set(json.loads(raw)) == {"format", "profile", "secrets"}


def test_wrong_kek_does_not_open_the_secrets_and_says_so_without_the_pan(tmp_path: Path) -> None:
    path = tmp_path / "visa.card.json"
    write_card(path, profile_for(), secrets_for(), KEK)

    with pytest.raises(ValueError, match="secrets do not open under this KEK") as raised:
        read_card(path, bytes(16))
    assert PANS["visa"] not in str(raised.value)


def test_a_profile_swapped_into_another_card_file_does_not_open(tmp_path: Path) -> None:
    path = tmp_path / "visa.card.json"
    write_card(path, profile_for(), secrets_for(), KEK)
    document = json.loads(path.read_text())
    document["profile"]["pin_try_limit"] = 15
    path.write_text(json.dumps(document))

    with pytest.raises(ValueError, match="secrets do not open"):
        read_card(path, KEK)


def test_bad_profile_values_are_named_and_the_pan_never_echoed() -> None:
    with pytest.raises(ValueError, match="psn: must be 2 digits"):
        profile_for(psn="1")
    with pytest.raises(ValueError, match="cvn: visa CVN 11") as raised:
        profile_for(cvn=0x11)
    assert PANS["visa"] not in str(raised.value)
    assert PANS["visa"] not in repr(profile_for())
    with pytest.raises(ValueError, match="pan: must be 12 to 19 digits"):
        profile_for(pan="4111")


@pytest.mark.parametrize("module", [terminals.cards, commands, cryptogram, profile, scripts],
                         ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)

    assert result.attempted > 0 and result.failed == 0


def test_records_layout_per_sfi() -> None:
    plain = records(profile_for())
    assert sorted(plain) == [(1, 1), (2, 1)]
    assert afl(profile_for(), "contact").hex().upper() == "08010100" "10010100"
    assert afl(profile_for(), "contactless").hex().upper() == "10010100"

