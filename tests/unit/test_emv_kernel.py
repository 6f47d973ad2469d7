"""The terminal EMV kernel against a scripted card: selection, GPO, records, TVR, action analysis,
online completion, reversals and card removal (EMV Books 1-4).

The card is a :class:`~terminals.emv.scripted.ScriptedCard`: answers by APDU prefix, written out
in hex beside the EMV data they carry. Dates, unpredictable numbers and random draws are fixed.
"""

from __future__ import annotations

import doctest
import importlib
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import pytest

from cardswitch.emv import AIDS, PSE
from cardswitch.tlv import decode, encode, encode_all, flatten
from terminals.emv.config import RandomSelection, TerminalConfig
from terminals.emv.kernel import Kernel, KernelResult, OnlineRequest, OnlineResponse
from terminals.emv.scripted import REMOVED, ScriptedCard
from terminals.emv.tvr import TVR

Script = dict[str, str | list[str]]
VISA, MASTERCARD = AIDS["visa"], AIDS["mastercard"]
PAN = "4761739001010010"
TODAY = date(2026, 3, 15)
UN = bytes.fromhex("0A0B0C0D")
ARQC_VALUE = bytes.fromhex("1122334455667788")
TC_VALUE = bytes.fromhex("8877665544332211")
#: 9F10 in the Visa layout: 06 DKI CVN 03 CVR.
IAD = bytes.fromhex("06010A03A00000")

SELECT_PSE = "00A404000E" + PSE.hex()
SELECT_VISA = "00A4040007" + VISA.hex()
SELECT_MASTERCARD = "00A4040007" + MASTERCARD.hex()
GPO = "80A8"
GEN_AC_ARQC, GEN_AC_TC, GEN_AC_AAC = "80AE80", "80AE40", "80AE00"
EXTERNAL_AUTHENTICATE = "0082"
VERIFY = "0020008008"
GET_PIN_TRY_COUNTER = "80CA9F17"
OK = "9000"

CDOL1 = bytes.fromhex("9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704 9F3501 9F4502 9F3403")
CDOL2 = bytes.fromhex("8A02 9505 9F3704")
#: AIP: cardholder verification, terminal risk management, issuer authentication; no ODA.
AIP_NO_ODA = bytes.fromhex("1C00")
AFL = bytes.fromhex("10010100 18010100")  # SFI 2 record 1, SFI 3 record 1
#: CVM list: X = Y = 0; offline PIN if supported, else next; online PIN if supported, else next;
#: signature if supported, else next; no CVM required.
CVM_LIST = bytes.fromhex("00000000 00000000 4103 4203 5E03 1F03")


def h(data: bytes) -> str:
    return data.hex().upper()


def fci(aid: bytes, *, priority: int = 1, label: bytes = b"VISA", pdol: bytes = b"") -> str:
    proprietary = encode(0x50, label) + encode(0x87, bytes([priority]))
    if pdol:
        proprietary += encode(0x9F38, pdol)
    return h(encode(0x6F, encode(0x84, aid) + encode(0xA5, proprietary))) + OK


def pse_fci() -> str:
    return h(encode(0x6F, encode(0x84, PSE) + encode(0xA5, encode(0x88, b"\x01")))) + OK


def directory_record(*entries: tuple[bytes, int]) -> str:
    body = b"".join(encode(0x61, encode(0x4F, aid) + encode(0x87, bytes([prio])))
                    for aid, prio in entries)
    return h(encode(0x70, body)) + OK


def record(**overrides: bytes) -> dict[int, bytes]:
    """The application data of SFI 3 record 1, tag names as ``t5A`` style keywords."""
    data = {
        0x5A: bytes.fromhex(PAN), 0x5F24: bytes.fromhex("291231"), 0x5F25: bytes.fromhex("240101"),
        0x5F34: b"\x01", 0x5F28: bytes.fromhex("0250"), 0x8C: CDOL1, 0x8D: CDOL2,
        0x8E: CVM_LIST, 0x9F07: bytes.fromhex("FF00"), 0x9F08: bytes.fromhex("008C"),
        0x9F42: bytes.fromhex("0978"), 0x9F0D: bytes(5), 0x9F0E: bytes(5), 0x9F0F: bytes(5),
    }
    for key, value in overrides.items():
        tag = int(key[1:], 16)
        if value == b"-":
            data.pop(tag, None)
        else:
            data[tag] = value
    return data


def record_answer(data: dict[int, bytes]) -> str:
    return h(encode(0x70, encode_all(data.items()))) + OK


def gen_ac_answer(cid: int, cryptogram: bytes = ARQC_VALUE, atc: bytes = b"\x00\x07") -> str:
    return h(encode(0x77, encode_all([(0x9F27, bytes([cid])), (0x9F36, atc),
                                      (0x9F26, cryptogram), (0x9F10, IAD)]))) + OK


TRACK2 = bytes.fromhex(PAN + "D29122011234567800000F")


def visa_card(changes: Script | None = None) -> Script:
    """A Visa contact card with a PSE, offline PIN 1234, no ODA, answering ARQC then TC."""
    script: Script = {
        SELECT_PSE: pse_fci(),
        "00B2010C": directory_record((VISA, 1)),
        "00B2020C": "6A83",
        SELECT_VISA: fci(VISA),
        GPO: h(encode(0x80, AIP_NO_ODA + AFL)) + OK,
        "00B20114": h(encode(0x70, encode(0x57, TRACK2) + encode(0x5F20, b"CARDHOLDER/A"))) + OK,
        "00B2011C": record_answer(record()),
        GET_PIN_TRY_COUNTER: "9F170103" + OK,
        VERIFY: OK,
        GEN_AC_ARQC: gen_ac_answer(0x80),
        EXTERNAL_AUTHENTICATE: OK,
        GEN_AC_TC: gen_ac_answer(0x40, TC_VALUE),
        GEN_AC_AAC: gen_ac_answer(0x00, bytes(8)),
    }
    script.update(changes or {})
    return script


@dataclass
class Pins:
    """A PIN pad: offline PINs typed in turn (None = bypass), one online PIN block."""

    offline: list[str | None] = field(default_factory=lambda: ["1234"])
    online: Any | None = "encrypted-pin-block"
    offline_asked: int = 0
    online_asked: list[str] = field(default_factory=list)

    def offline_pin(self) -> str | None:
        self.offline_asked += 1
        return self.offline.pop(0) if self.offline else None

    def online_pin(self, pan: str) -> Any | None:
        self.online_asked.append(pan)
        return self.online


@dataclass
class Host:
    """An acquirer answering every authorisation the same way and recording reversals."""

    response: OnlineResponse = field(default_factory=lambda: approve())
    requests: list[OnlineRequest] = field(default_factory=list)
    reversals: list[tuple[OnlineRequest, OnlineResponse, str]] = field(default_factory=list)

    def authorize(self, request: OnlineRequest) -> OnlineResponse:
        self.requests.append(request)
        return self.response

    def reverse(self, request: OnlineRequest, response: OnlineResponse, reason: str) -> None:
        self.reversals.append((request, response, reason))


ARPC_91 = encode(0x91, bytes.fromhex("0102030405060708") + b"00")


def approve(issuer_data: bytes = ARPC_91) -> OnlineResponse:
    return OnlineResponse(approved=True, response_code="00", issuer_emv_data=issuer_data,
                          transaction_id="T1")


def decline(code: str = "05") -> OnlineResponse:
    return OnlineResponse(approved=False, response_code=code, issuer_emv_data=ARPC_91)


@dataclass
class Run:
    result: KernelResult
    card: ScriptedCard
    host: Host
    pins: Pins

    def step_names(self) -> list[str]:
        return [name for name, _ in self.result.steps]

    def step(self, name: str) -> list[str]:
        return [detail for step, detail in self.result.steps if step == name]


def run(script: Script, amount: int = 2500, *,
        config: TerminalConfig | None = None, host: Host | None = None, pins: Pins | None = None,
        contactless: bool = False, transaction_type: int = 0x00,
        random_percent: int = 99) -> Run:
    card, host, pins = ScriptedCard(script), host or Host(), pins or Pins()
    kernel = Kernel(config or TerminalConfig(), card, pins, host, today=TODAY,
                    unpredictable_number=lambda: UN, random_percent=lambda: random_percent)
    result = kernel.run(amount, transaction_type=transaction_type, contactless=contactless)
    return Run(result, card, host, pins)


def tvr_names(result: KernelResult) -> set[str]:
    return {name for name, (index, mask) in TVR.items() if result.tvr[index - 1] & mask}


MODULES = ["apdu", "config", "contactless", "cryptogram", "cvm", "issuer", "kernel", "oda",
           "online", "reading", "risk", "scripted", "selection", "session", "tvr"]


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_hold(module: str) -> None:
    found = doctest.testmod(importlib.import_module(f"terminals.emv.{module}"))

    assert found.failed == 0


# --- application selection ------------------------------------------------------------------


def test_pse_directory_selects_the_listed_application() -> None:
    done = run(visa_card())

    assert done.step_names()[:4] == ["SELECT PSE", "READ RECORD 1.1", "READ RECORD 1.2",
                                     "CANDIDATES"]
    assert done.result.aid == VISA
    assert done.result.brand == "visa"
    assert done.result.outcome == "approved"


def test_without_pse_the_terminal_selects_its_own_aids() -> None:
    done = run(visa_card({SELECT_PSE: "6A82"}))

    assert "LIST OF AIDS" in done.step_names()
    assert done.card.commands(SELECT_VISA)
    assert done.result.aid == VISA
    assert done.result.outcome == "approved"


def test_card_blocked_at_pse_select_aborts() -> None:
    done = run(visa_card({SELECT_PSE: "6A81"}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card blocked or SELECT not supported (SW 6A81)"


def test_blocked_application_6283_is_left_out_of_the_candidates() -> None:
    script = visa_card({SELECT_PSE: "6A82", SELECT_VISA: fci(VISA)[:-4] + "6283",
                          SELECT_MASTERCARD: fci(MASTERCARD, label=b"MC")})

    done = run(script)

    assert done.step("BLOCKED") == [h(VISA)]
    assert done.result.aid == MASTERCARD
    assert done.result.brand == "mastercard"


def test_no_mutually_supported_application_aborts() -> None:
    done = run({SELECT_PSE: "6A82"})

    assert done.result.outcome == "aborted"
    assert done.result.reason == "no supported application"
    assert done.host.requests == []


def test_candidates_are_tried_by_priority() -> None:
    script = visa_card({"00B2010C": directory_record((MASTERCARD, 2), (VISA, 1)),
                          SELECT_MASTERCARD: fci(MASTERCARD, label=b"MC")})

    done = run(script)

    assert done.result.aid == VISA
    assert not done.card.commands(SELECT_MASTERCARD)


def test_partial_aid_match_follows_select_next() -> None:
    longer = VISA + b"\x01"
    script = visa_card({SELECT_PSE: "6A82", SELECT_VISA: [fci(longer), "6A82"],
                          "00A4040207": "6A82", "00A4040008" + h(longer): fci(longer)})

    done = run(script)

    assert done.card.commands("00A4040207" + h(VISA))
    assert done.result.aid == longer


def test_unattended_terminal_leaves_out_an_application_needing_confirmation() -> None:
    config = replace(TerminalConfig(), unattended=True, terminal_type=0x25)
    script = visa_card({"00B2010C": directory_record((VISA, 0x81))})

    done = run(script, config=config)

    assert done.result.outcome == "aborted"
    assert done.result.reason == "no supported application"


def test_gpo_refused_with_6985_moves_to_the_next_candidate() -> None:
    script = visa_card({
        "00B2010C": directory_record((VISA, 1), (MASTERCARD, 2)),
        SELECT_MASTERCARD: fci(MASTERCARD, label=b"MC"),
        GPO: ["6985", h(encode(0x80, AIP_NO_ODA + AFL)) + OK],
    })

    done = run(script)

    assert done.result.aid == MASTERCARD
    assert "conditions not satisfied, next application" in done.step("GPO")


# --- GPO and records --------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    h(encode(0x80, AIP_NO_ODA + AFL)) + OK,
    h(encode(0x77, encode(0x82, AIP_NO_ODA) + encode(0x94, AFL))) + OK,
], ids=["format 1", "format 2"])
def test_gpo_answers_in_both_formats_give_aip_and_afl(answer: str) -> None:
    done = run(visa_card({GPO: answer}))

    assert done.card.commands("00B20114") and done.card.commands("00B2011C")
    assert done.result.outcome == "approved"


def test_pdol_is_answered_from_the_terminal_data() -> None:
    pdol = bytes.fromhex("9F1A02 9F3704 9F0206")
    done = run(visa_card({SELECT_VISA: fci(VISA, pdol=pdol)}), amount=12345)

    (gpo,) = done.card.commands(GPO)
    assert h(gpo) == "80A800000E830C" + "0250" + h(UN) + "000000012345" + "00"


def test_missing_mandatory_card_data_aborts_with_icc_data_missing() -> None:
    done = run(visa_card({"00B2011C": record_answer(record(t8D=b"-"))}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card data missing: 8D"
    assert "ICC data missing" in tvr_names(done.result)


def test_record_that_is_not_a_70_template_aborts() -> None:
    done = run(visa_card({"00B20114": h(encode(0x71, b"\x00")) + OK}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card data error: record 2.1 is not a 70 template"


def test_tag_repeated_across_records_aborts() -> None:
    repeated = h(encode(0x70, encode(0x57, TRACK2) + encode(0x5A, bytes.fromhex(PAN)))) + OK
    done = run(visa_card({"00B20114": repeated}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card data error: record 3.1 repeats tag 5A"


# --- offline data authentication ------------------------------------------------------------


def test_card_without_oda_sets_oda_not_performed() -> None:
    done = run(visa_card())

    assert "offline data authentication was not performed" in tvr_names(done.result)
    assert done.step("ODA") == ["not performed"]
    assert not done.result.tsi[0] & 0x80


def test_sda_without_the_ca_key_fails_sda() -> None:
    oda_record = record(t8F=b"\x99", t90=bytes(64), t9F32=b"\x03", t93=bytes(64))
    script = visa_card({GPO: h(encode(0x80, bytes.fromhex("5C00") + AFL)) + OK,
                          "00B2011C": record_answer(oda_record)})

    done = run(script)

    assert {"SDA selected", "SDA failed"} <= tvr_names(done.result)
    assert done.result.tsi[0] & 0x80
    assert done.step("ODA") == ["SDA failed: no CA public key 99 for RID A000000003"]


def test_dda_without_icc_certificate_sets_icc_data_missing_and_dda_failed() -> None:
    script = visa_card({GPO: h(encode(0x80, bytes.fromhex("3C00") + AFL)) + OK})

    done = run(script)

    assert {"ICC data missing", "DDA failed"} <= tvr_names(done.result)
    assert done.step("ODA") == ["DDA failed: card data missing: 8F, 90, 9F32, 9F46, 9F47"]


# --- terminal action analysis and the first GENERATE AC --------------------------------------


def test_tac_denial_bit_asks_for_an_aac_and_declines_offline() -> None:
    # AUC without "valid at terminals other than ATMs": service not allowed, in the Visa TAC denial
    done = run(visa_card({"00B2011C": record_answer(record(t9F07=bytes.fromhex("FE00")))}))

    assert "requested service not allowed for card product" in tvr_names(done.result)
    assert done.card.commands(GEN_AC_AAC)
    assert done.result.outcome == "declined_offline"
    assert done.host.requests == []


def test_iac_denial_bit_asks_for_an_aac() -> None:
    iac_denial = bytes.fromhex("8000000000")  # ODA not performed
    done = run(visa_card({"00B2011C": record_answer(record(t9F0E=iac_denial))}))

    assert done.step("GEN AC 1")[-1] == "AAC requested -> AAC"
    assert done.result.outcome == "declined_offline"


def test_floor_limit_exceeded_asks_for_an_arqc() -> None:
    done = run(visa_card(), amount=2500)

    assert "transaction exceeds floor limit" in tvr_names(done.result)
    assert done.step("GEN AC 1")[-1] == "ARQC requested -> ARQC"


def test_under_the_floor_limit_with_no_online_bit_asks_for_a_tc() -> None:
    config = replace(TerminalConfig(), floor_limit_minor=10_000)
    iacs = {"t9F0D": bytes(5), "t9F0E": bytes(5), "t9F0F": bytes(5)}
    tacs = replace(config.applications[0].tacs, online=bytes(5), default=bytes(5))
    config = replace(config, applications=(replace(config.applications[0], tacs=tacs),))
    script = visa_card({"00B2011C": record_answer(record(**iacs)),
                          GEN_AC_TC: gen_ac_answer(0x40, TC_VALUE)})

    done = run(script, amount=2500, config=config)

    assert done.step("GEN AC 1")[-1] == "TC requested -> TC"
    assert done.result.outcome == "approved_offline"
    assert done.host.requests == []


def test_under_the_floor_limit_an_online_tvr_bit_still_asks_for_an_arqc() -> None:
    config = replace(TerminalConfig(), floor_limit_minor=10_000)

    done = run(visa_card(), amount=2500, config=config)

    # ODA not performed is in Visa's TAC online
    assert "transaction exceeds floor limit" not in tvr_names(done.result)
    assert done.step("GEN AC 1")[-1] == "ARQC requested -> ARQC"


def test_random_selection_under_the_floor_limit_goes_online() -> None:
    config = replace(TerminalConfig(), floor_limit_minor=10_000,
                     random_selection=RandomSelection(target_percent=20, max_target_percent=50,
                                                      threshold_minor=1_000))
    selected = run(visa_card(), amount=500, config=config, random_percent=20)
    spared = run(visa_card(), amount=500, config=config, random_percent=21)

    assert "transaction selected randomly for online processing" in tvr_names(selected.result)
    assert "transaction selected randomly for online processing" not in tvr_names(spared.result)


def test_card_answering_tc_to_an_arqc_request_aborts() -> None:
    done = run(visa_card({GEN_AC_ARQC: gen_ac_answer(0x40, TC_VALUE)}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card error: TC answered to a ARQC request"


def test_card_declining_at_the_first_generate_ac_declines_offline() -> None:
    done = run(visa_card({GEN_AC_ARQC: gen_ac_answer(0x00, bytes(8))}))

    assert done.result.outcome == "declined_offline"
    assert done.result.reason == "card declined offline (AAC)"
    assert done.host.requests == []


def test_format_1_generate_ac_answer_is_understood() -> None:
    format1 = h(encode(0x80, b"\x80" + b"\x00\x07" + ARQC_VALUE + IAD)) + OK
    done = run(visa_card({GEN_AC_ARQC: format1}))

    icc = flatten(done.host.requests[0].icc_data)
    assert icc[0x9F26] == ARQC_VALUE and icc[0x9F27] == b"\x80" and icc[0x9F10] == IAD


# --- online authorisation and completion ----------------------------------------------------


def test_cdol1_carries_the_terminal_data_the_card_lists() -> None:
    done = run(visa_card(), amount=2500)

    (gen_ac,) = done.card.commands(GEN_AC_ARQC)
    data = gen_ac[5:-1]
    assert h(data) == ("000000002500" "000000000000" "0250" + h(done.result.tvr) + "0978"
                       "260315" "00" + h(UN) + "22" "0000" "410302")


def test_online_request_carries_de55_and_the_card_identity() -> None:
    done = run(visa_card(), amount=2500)

    (request,) = done.host.requests
    assert (request.pan, request.psn, request.expiry_yymm) == (PAN, "01", "2912")
    assert request.track2 == PAN + "=29122011234567800000"
    assert (request.amount_minor, request.currency_numeric, request.entry_mode) == (
        2500, "978", "chip")
    tags = [t.tag for t in decode(request.icc_data)]
    assert tags == [0x82, 0x9F36, 0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x95, 0x9A, 0x9C, 0x9F02,
                    0x5F2A, 0x9F1A, 0x9F03, 0x9F33, 0x9F34, 0x9F35, 0x84, 0x5F34, 0x9F09,
                    0x9F1E]
    icc = flatten(request.icc_data)
    assert icc[0x9F26] == ARQC_VALUE and icc[0x9F37] == UN and icc[0x95] == done.result.tvr


def test_issuer_approval_runs_external_authenticate_and_asks_the_card_for_a_tc() -> None:
    done = run(visa_card())

    (external,) = done.card.commands(EXTERNAL_AUTHENTICATE)
    assert h(external) == "008200000A" + "0102030405060708" + h(b"00")
    (second,) = done.card.commands(GEN_AC_TC)
    assert second[5:7] == b"00"  # 8A, the issuer's response code
    assert done.result.outcome == "approved"
    assert done.result.cryptogram == TC_VALUE
    assert done.result.cid == 0x40
    assert done.result.tsi[0] & 0x10  # issuer authentication was performed
    assert done.result.reversed is False


def test_issuer_decline_asks_the_card_for_an_aac() -> None:
    done = run(visa_card(), host=Host(decline("05")))

    (second,) = done.card.commands(GEN_AC_AAC)
    assert second[5:7] == b"05"
    assert done.result.outcome == "declined"
    assert done.result.reason == "issuer declined: response code 05"
    assert done.host.reversals == []


def test_wrong_arpc_card_declines_after_approval_and_the_terminal_reverses() -> None:
    script = visa_card({EXTERNAL_AUTHENTICATE: "6300", GEN_AC_TC: gen_ac_answer(0x00, bytes(8))})

    done = run(script)

    assert "issuer authentication failed" in tvr_names(done.result)
    assert done.result.outcome == "declined_by_card"
    assert done.result.reason == ("card declined after issuer approval: issuer authentication "
                                  "failed (ARPC wrong)")
    ((request, response, reason),) = done.host.reversals
    assert reason == "card declined after issuer approval"
    assert request is done.host.requests[0] and response.approved
    assert done.result.reversed is True


def test_cdol2_with_91_gets_the_issuer_authentication_data_instead_of_external_authenticate(
) -> None:
    cdol2 = bytes.fromhex("8A02 910A 9505 9F3704")
    done = run(visa_card({"00B2011C": record_answer(record(t8D=cdol2))}))

    assert not done.card.commands(EXTERNAL_AUTHENTICATE)
    (second,) = done.card.commands(GEN_AC_TC)
    assert second[5:17] == b"00" + bytes.fromhex("0102030405060708") + b"00"


def test_unable_to_go_online_declines_with_z3_when_the_default_action_code_hits() -> None:
    host = Host(OnlineResponse(approved=False, response_code="", issuer_emv_data=b"",
                               unable_to_go_online=True))
    done = run(visa_card(), host=host)

    (second,) = done.card.commands(GEN_AC_AAC)
    assert second[5:7] == b"Z3"
    assert done.result.outcome == "declined_offline"
    assert done.result.reason == "unable to go online, card declined"


def test_unable_to_go_online_asks_for_a_tc_with_y3_when_no_default_bit_hits() -> None:
    config = TerminalConfig()
    tacs = replace(config.applications[0].tacs, default=bytes(5))
    config = replace(config, applications=(replace(config.applications[0], tacs=tacs),))
    host = Host(OnlineResponse(approved=False, response_code="", unable_to_go_online=True))
    done = run(visa_card({"00B2011C": record_answer(record(t9F0D=bytes(5)))}),
               host=host, config=config)

    (second,) = done.card.commands(GEN_AC_TC)
    assert second[5:7] == b"Y3"
    assert done.result.outcome == "approved_offline"


def test_issuer_scripts_run_before_and_after_the_second_generate_ac() -> None:
    script_71 = encode(0x71, encode(0x9F18, bytes.fromhex("00000001"))
                       + encode(0x86, bytes.fromhex("8424000008AABBCCDDEEFF0011")))
    script_72 = encode(0x72, encode(0x9F18, bytes.fromhex("00000002"))
                       + encode(0x86, bytes.fromhex("8418000008AABBCCDDEEFF0011"))
                       + encode(0x86, bytes.fromhex("841E000008AABBCCDDEEFF0011")))
    card = visa_card({"84240000": OK, "84180000": OK, "841E0000": "6985"})
    done = run(card, host=Host(approve(ARPC_91 + script_71 + script_72)))

    order = [apdu[:2].hex().upper() for apdu in done.card.received]
    assert order[-4:] == ["8424", "80AE", "8418", "841E"]
    assert [r.to_bytes() for r in done.result.script_results] == [
        bytes.fromhex("2000000001"), bytes.fromhex("1200000002")]
    assert "script processing failed after final GENERATE AC" in tvr_names(done.result)
    assert done.result.tsi[0] & 0x04
    assert done.result.outcome == "approved"


# --- card removal ---------------------------------------------------------------------------


def test_card_removed_before_going_online_aborts_without_reversal() -> None:
    done = run(visa_card({"00B2011C": REMOVED}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card removed"
    assert done.host.requests == [] and done.host.reversals == []


def test_card_removed_after_issuer_approval_reverses() -> None:
    done = run(visa_card({GEN_AC_TC: REMOVED}))

    assert done.result.outcome == "aborted"
    assert done.result.reason == "card removed"
    assert [reason for _, _, reason in done.host.reversals] == ["card removed"]
    assert done.result.reversed is True


def test_card_removed_after_issuer_decline_does_not_reverse() -> None:
    done = run(visa_card({GEN_AC_AAC: REMOVED}), host=Host(decline()))

    assert done.result.outcome == "aborted"
    assert done.host.reversals == []


# --- what is logged ---------------------------------------------------------------------------


def test_step_log_and_result_never_show_the_clear_pan_or_pin() -> None:
    done = run(visa_card())

    text = repr(done.result) + repr(done.host.requests)
    assert PAN not in text and "1234" not in text
    assert done.result.masked_pan == "476173******0010"
    assert ("CARD", "476173******0010") in done.result.steps


# --- cardholder verification (CVM list 8E) ---------------------------------------------------


def with_cvm_list(cvm_list: bytes, changes: Script | None = None) -> Script:
    return visa_card({"00B2011C": record_answer(record(t8E=cvm_list)), **(changes or {})})


def test_offline_plaintext_pin_is_verified_by_the_card() -> None:
    done = run(visa_card())

    (verify,) = done.card.commands(VERIFY)
    assert h(verify) == "0020008008241234FFFFFFFFFF"
    assert done.result.cvm_results == bytes.fromhex("410302")
    assert done.result.tsi[0] & 0x40
    assert not {"cardholder verification was not successful", "PIN try limit exceeded"} & (
        tvr_names(done.result))


def test_wrong_offline_pin_is_asked_again_while_tries_remain() -> None:
    pins = Pins(offline=["1111", "1234"])
    done = run(visa_card({VERIFY: ["63C2", OK]}), pins=pins)

    assert pins.offline_asked == 2
    assert done.step("CVM")[0] == "wrong PIN, 2 tries left"
    assert done.result.cvm_results == bytes.fromhex("410302")


def test_cardholder_giving_up_after_a_wrong_pin_moves_to_the_next_rule() -> None:
    pins = Pins(offline=["1111", None])
    done = run(visa_card({VERIFY: "63C2"}), pins=pins)

    assert done.result.cvm_results == bytes.fromhex("420300")  # online PIN, result unknown
    assert done.host.requests[0].pin == "encrypted-pin-block"
    assert "online PIN entered" in tvr_names(done.result)
    assert "PIN entry required, PIN pad present, but PIN was not entered" not in tvr_names(
        done.result)


def test_pin_blocked_by_the_card_sets_pin_try_limit_exceeded() -> None:
    done = run(visa_card({VERIFY: "6983"}))

    assert "PIN try limit exceeded" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("420300")


def test_last_wrong_pin_63c0_sets_pin_try_limit_exceeded() -> None:
    done = run(visa_card({VERIFY: "63C0"}))

    assert "PIN try limit exceeded" in tvr_names(done.result)


def test_pin_try_counter_at_zero_skips_the_pin_prompt() -> None:
    pins = Pins()
    done = run(visa_card({GET_PIN_TRY_COUNTER: "9F170100" + OK}), pins=pins)

    assert pins.offline_asked == 0
    assert not done.card.commands(VERIFY)
    assert "PIN try limit exceeded" in tvr_names(done.result)


def test_pin_bypass_skips_every_later_pin_method() -> None:
    pins = Pins(offline=[None])
    done = run(visa_card(), pins=pins)

    assert pins.online_asked == []
    assert "PIN entry required, PIN pad present, but PIN was not entered" in tvr_names(
        done.result)
    assert done.result.cvm_results == bytes.fromhex("5E0300")  # signature, result unknown
    assert done.result.signature_required is True
    assert done.result.outcome == "approved"


def test_missing_cvm_list_sets_icc_data_missing_and_no_cvm_performed() -> None:
    done = run(visa_card({"00B2011C": record_answer(record(t8E=b"-"))}))

    assert "ICC data missing" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("3F0000")
    assert not done.result.tsi[0] & 0x40


def test_card_without_cardholder_verification_in_its_aip_skips_cvm() -> None:
    done = run(visa_card({GPO: h(encode(0x80, bytes.fromhex("0C00") + AFL)) + OK}))

    assert done.step("CVM") == ["not supported by the card"]
    assert done.result.cvm_results == bytes.fromhex("3F0000")


def test_failed_rule_without_apply_next_ends_cvm_unsuccessfully() -> None:
    done = run(with_cvm_list(bytes.fromhex("00000000 00000000 0100 1F00"), {VERIFY: "6983"}))

    assert "cardholder verification was not successful" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("010001")


def test_no_rule_whose_condition_holds_gives_3f_failed() -> None:
    done = run(with_cvm_list(bytes.fromhex("00000000 00000000 0101")))  # unattended cash only

    assert "cardholder verification was not successful" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("3F0001")


@pytest.mark.parametrize(("amount", "results"), [(2500, "420700"), (1500, "1F0002")])
def test_amount_x_condition_picks_online_pin_only_over_x(amount: int, results: str) -> None:
    cvm_list = bytes.fromhex("000007D0 00000000 4207 1F00")  # X = 20.00 in the card's currency

    done = run(with_cvm_list(cvm_list), amount=amount)

    assert done.result.cvm_results == bytes.fromhex(results)


def test_amount_conditions_do_not_apply_in_another_currency() -> None:
    cvm_list = bytes.fromhex("000007D0 00000000 4207 1F00")
    changes: Script = {
        "00B2011C": record_answer(record(t8E=cvm_list, t9F42=bytes.fromhex("0840")))}

    done = run(visa_card(changes), amount=2500)

    assert done.result.cvm_results == bytes.fromhex("1F0002")


def test_unrecognised_cvm_sets_its_tvr_bit_and_applies_the_next_rule() -> None:
    done = run(with_cvm_list(bytes.fromhex("00000000 00000000 4A00 1F00")))

    assert "unrecognised CVM" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("1F0002")


def test_pin_rule_on_a_terminal_without_pin_pad_sets_pin_pad_not_present() -> None:
    config = replace(TerminalConfig(), capabilities=bytes.fromhex("E028C0"))
    done = run(with_cvm_list(bytes.fromhex("00000000 00000000 4100 1F00")), config=config)

    assert "PIN entry required and PIN pad not present or not working" in tvr_names(done.result)
    assert done.result.cvm_results == bytes.fromhex("1F0002")


# --- processing restrictions and velocity -----------------------------------------------------


@pytest.mark.parametrize(("change", "bit"), [
    ({"t5F24": bytes.fromhex("260314")}, "expired application"),
    ({"t5F25": bytes.fromhex("260316")}, "application not yet effective"),
    ({"t9F08": bytes.fromhex("0001")}, "ICC and terminal have different application versions"),
    ({"t9F07": bytes.fromhex("A900"), "t5F28": bytes.fromhex("0840")},
     "requested service not allowed for card product"),
], ids=["expired", "not effective", "version", "international"])
def test_processing_restrictions_set_their_tvr_bit(change: dict[str, bytes], bit: str) -> None:
    done = run(visa_card({"00B2011C": record_answer(record(**change))}))

    assert bit in tvr_names(done.result)


def test_domestic_only_usage_is_allowed_at_home() -> None:
    done = run(visa_card({"00B2011C": record_answer(record(t9F07=bytes.fromhex("A900")))}))

    assert "requested service not allowed for card product" not in tvr_names(done.result)
    assert done.step("RESTRICTIONS") == ["none"]


def test_velocity_over_the_lower_offline_limit() -> None:
    limits = {"t9F14": b"\x02", "t9F23": b"\x05"}
    done = run(visa_card({"00B2011C": record_answer(record(**limits)),
                            "80CA9F36": "9F3602000A" + OK, "80CA9F13": "9F13020005" + OK}))

    names = tvr_names(done.result)
    assert "lower consecutive offline limit exceeded" in names
    assert "upper consecutive offline limit exceeded" not in names


def test_velocity_without_the_last_online_atc_sets_both_limits() -> None:
    limits = {"t9F14": b"\x02", "t9F23": b"\x05"}
    done = run(visa_card({"00B2011C": record_answer(record(**limits)),
                            "80CA9F36": "9F3602000A" + OK, "80CA9F13": "6A88"}))

    assert {"lower consecutive offline limit exceeded",
            "upper consecutive offline limit exceeded"} <= tvr_names(done.result)


def test_velocity_is_skipped_without_the_card_s_offline_limits() -> None:
    done = run(visa_card())

    assert not done.card.commands("80CA9F36")


# --- contactless one tap ---------------------------------------------------------------------

SELECT_PPSE = "00A404000E" + h(b"2PAY.SYS.DDF01")
QVSDC_PDOL = bytes.fromhex("9F6604 9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704")


def contactless_card(ctq: bytes = bytes.fromhex("0000"), *, cid: int = 0x80,
                     changes: Script | None = None) -> Script:
    """A qVSDC card: PPSE, PDOL with the TTQ, the ARQC in the GPO answer, PAN in SFI 2."""
    directory = encode(0x61, encode(0x4F, VISA) + encode(0x87, b"\x01"))
    ppse = encode(0x6F, encode(0x84, b"2PAY.SYS.DDF01") + encode(0xA5, encode(0xBF0C, directory)))
    gpo = encode(0x77, encode_all([
        (0x82, bytes.fromhex("0020")), (0x94, bytes.fromhex("10010100")), (0x57, TRACK2),
        (0x5F34, b"\x01"), (0x9F10, IAD), (0x9F26, ARQC_VALUE), (0x9F27, bytes([cid])),
        (0x9F36, b"\x00\x08"), (0x9F6C, ctq)]))
    script: Script = {
        SELECT_PPSE: h(ppse) + OK,
        SELECT_VISA: fci(VISA, pdol=QVSDC_PDOL),
        GPO: h(gpo) + OK,
        "00B20114": h(encode(0x70, encode(0x5A, bytes.fromhex(PAN))
                             + encode(0x5F24, bytes.fromhex("291231")))) + OK,
    }
    script.update(changes or {})
    return script


def ttq_sent(done: Run) -> bytes:
    (gpo,) = done.card.commands(GPO)
    return gpo[7:11]


def test_contactless_at_or_over_the_transaction_limit_asks_for_the_card() -> None:
    done = run(contactless_card(), amount=10_000, contactless=True)

    assert done.result.outcome == "aborted"
    assert done.result.reason == "over contactless limit, insert the card"
    assert not done.card.commands(GPO)


def test_contactless_under_the_cvm_limit_goes_online_without_cvm() -> None:
    pins = Pins()
    done = run(contactless_card(), amount=1_000, contactless=True, pins=pins)

    assert ttq_sent(done) == bytes.fromhex("36800000")  # online cryptogram required, no CVM
    assert pins.online_asked == [] and pins.offline_asked == 0
    (request,) = done.host.requests
    assert (request.entry_mode, request.pin, request.pan) == ("contactless", None, PAN)
    assert done.result.cvm_results == bytes.fromhex("1F0002")
    assert done.result.outcome == "approved"
    assert not done.card.commands("80AE")


def test_contactless_over_the_cvm_limit_asks_for_online_pin() -> None:
    pins = Pins()
    done = run(contactless_card(ctq=bytes.fromhex("8000")), amount=6_000, contactless=True,
               pins=pins)

    assert ttq_sent(done) == bytes.fromhex("36C00000")  # and CVM required
    assert pins.online_asked == [PAN]
    assert done.host.requests[0].pin == "encrypted-pin-block"
    assert done.result.cvm_results == bytes.fromhex("020000")
    assert done.result.outcome == "approved"


def test_contactless_card_asking_for_signature_gets_signature() -> None:
    pins = Pins()
    done = run(contactless_card(ctq=bytes.fromhex("4000")), amount=6_000, contactless=True,
               pins=pins)

    assert pins.online_asked == []
    assert done.result.signature_required is True


def test_contactless_issuer_decline_is_a_decline_without_second_generate_ac() -> None:
    done = run(contactless_card(), amount=1_000, contactless=True, host=Host(decline("51")))

    assert done.result.outcome == "declined"
    assert done.result.reason == "issuer declined: response code 51"
    assert not done.card.commands("80AE") and done.host.reversals == []


def test_contactless_de55_has_the_tvr_the_card_signed_and_the_qualifiers() -> None:
    done = run(contactless_card(ctq=bytes.fromhex("8000")), amount=6_000, contactless=True)

    icc = flatten(done.host.requests[0].icc_data)
    assert icc[0x95] == bytes(5)
    assert icc[0x9F66] == bytes.fromhex("36C00000")
    assert icc[0x9F6C] == bytes.fromhex("8000")
    assert icc[0x9F26] == ARQC_VALUE and icc[0x9F37] == UN


def test_contactless_reads_the_records_for_the_pan_and_expiry() -> None:
    done = run(contactless_card(), amount=1_000, contactless=True)

    assert done.card.commands("00B20114")
    assert done.host.requests[0].expiry_yymm == "2912"


def test_contactless_card_aac_declines_offline() -> None:
    done = run(contactless_card(cid=0x00), amount=1_000, contactless=True)

    assert done.result.outcome == "declined_offline"
    assert done.host.requests == []


def test_contactless_without_ppse_has_no_application() -> None:
    done = run(contactless_card(changes={SELECT_PPSE: "6A82"}), amount=1_000, contactless=True)

    assert done.result.outcome == "aborted"
    assert done.result.reason == "no supported application"
