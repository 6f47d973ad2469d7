"""The terminal kernel against the virtual EMV card (:class:`terminals.cards.EmvCard`) in process,
and an issuer that checks every ARQC as its HSM would (IMK → ICC master key option A → session
key, data rebuilt from DE 55 by :meth:`cardswitch.emv.CryptogramVersion.ac_data`) and answers
with an ARPC the card checks.

Both ends were written from EMV independently; these tests are where they have to agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cardswitch.emv import AAC, TC
from cardswitch.tlv import encode
from hsm_sim.algorithms.emv import (
    script_mac,
)
from terminals.cards import CardProfile, CardSecrets, EmvCard
from terminals.emv import local, pki
from terminals.emv.apdu import CardRemoved
from terminals.emv.config import TerminalConfig, ca_keys_from
from terminals.emv.kernel import Kernel, KernelResult, OnlineRequest, OnlineResponse
from terminals.emv.local import PIN, LocalIssuer

TODAY = date(2026, 3, 15)
#: Terminal capabilities 9F33 byte 2 without offline plaintext PIN: the card's CVM list then
#: falls through to online PIN.
ONLINE_PIN_ONLY = bytes.fromhex("E068C0")


@dataclass
class Cardholder:
    offline: list[str | None] = field(default_factory=lambda: [PIN])
    online_asked: int = 0

    def offline_pin(self) -> str | None:
        return self.offline.pop(0) if self.offline else None

    def online_pin(self, pan: str) -> Any | None:
        self.online_asked += 1
        return "encrypted-pin-block"


class InProcessLink:
    """The card in the reader: APDUs go straight to :meth:`EmvCard.process`."""

    def __init__(self, card: EmvCard, *, remove_at: str | None = None) -> None:
        self.card = card
        self.remove_at = bytes.fromhex(remove_at) if remove_at else None
        card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        if self.remove_at is not None and apdu.startswith(self.remove_at):
            self.card.power_off()
            raise CardRemoved("card pulled out")
        return self.card.process(apdu)


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.TestPki:
    return pki.TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def config(test_pki: pki.TestPki) -> TerminalConfig:
    return dataclasses.replace(TerminalConfig(), ca_keys=ca_keys_from(test_pki))


def personalise(test_pki: pki.TestPki, *, brand: str = "visa", oda: str = "dda",
                contactless: bool = False) -> tuple[CardProfile, CardSecrets]:
    return local.personalise(test_pki, brand=brand, oda=oda, contactless=contactless,
                             today=TODAY)


def card(tmp_path: Path, test_pki: pki.TestPki, *, interface: str = "contact",
         **options: Any) -> EmvCard:
    profile, secrets = personalise(test_pki, **options)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return EmvCard(profile, secrets, tmp_path / "card.state.json", interface)  # type: ignore[arg-type]


@dataclass
class Done:
    result: KernelResult
    issuer: LocalIssuer
    cardholder: Cardholder

    def step(self, name: str) -> list[str]:
        return [detail for step, detail in self.result.steps if step == name]


def run(emv_card: EmvCard, config: TerminalConfig, amount: int = 2500, *,
        issuer: LocalIssuer | None = None, cardholder: Cardholder | None = None,
        contactless: bool = False, remove_at: str | None = None) -> Done:
    issuer, cardholder = issuer or LocalIssuer(), cardholder or Cardholder()
    kernel = Kernel(config, InProcessLink(emv_card, remove_at=remove_at), cardholder, issuer,
                    today=TODAY)
    return Done(kernel.run(amount, contactless=contactless), issuer, cardholder)


# --- contact ---------------------------------------------------------------------------------


@pytest.mark.parametrize("brand", ["visa", "mastercard", "unionpay"])
def test_contact_online_pin_on_a_dda_card_is_approved_with_a_verified_arqc(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig, brand: str) -> None:
    terminal = dataclasses.replace(config, capabilities=ONLINE_PIN_ONLY)

    done = run(card(tmp_path, test_pki, brand=brand), terminal)

    assert done.issuer.arqc_valid == [True]
    assert done.step("ODA") == ["DDA ok"]
    assert done.result.cvm_results == bytes.fromhex("420300")
    assert done.cardholder.online_asked == 1
    assert done.issuer.requests[0].pin == "encrypted-pin-block"
    assert (done.result.outcome, done.result.cid) == ("approved", TC)
    assert done.result.tvr == bytes.fromhex("0000048000")  # online PIN entered, over floor
    assert done.result.tsi == bytes.fromhex("F800")
    assert done.issuer.reversals == []


def test_contact_offline_pin_on_an_sda_card_is_approved(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    done = run(card(tmp_path, test_pki, oda="sda"), config)

    assert done.step("ODA") == ["SDA ok"]
    assert done.result.cvm_results == bytes.fromhex("410302")
    assert done.cardholder.online_asked == 0
    assert done.issuer.arqc_valid == [True]
    assert done.result.outcome == "approved"


def test_wrong_offline_pin_is_retried_and_the_right_one_accepted(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    done = run(card(tmp_path, test_pki), config, cardholder=Cardholder(offline=["9999", PIN]))

    assert done.step("CVM")[:2] == ["wrong PIN, 2 tries left", "offline plaintext PIN ok"]
    assert done.result.outcome == "approved"


def test_wrong_arpc_makes_the_card_decline_and_the_terminal_reverse(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    done = run(card(tmp_path, test_pki), config, issuer=LocalIssuer(wrong_arpc=True))

    assert done.step("ISSUER AUTHENTICATION") == ["failed"]
    assert done.result.outcome == "declined_by_card"
    assert done.result.cid == AAC
    assert done.issuer.reversals == ["card declined after issuer approval"]
    assert done.result.reversed is True


def test_mastercard_checks_the_arpc_in_cdol2_and_a_wrong_one_is_reversed(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    right = run(card(tmp_path / "a", test_pki, brand="mastercard"), config)
    wrong = run(card(tmp_path / "b", test_pki, brand="mastercard"), config,
                issuer=LocalIssuer(wrong_arpc=True))

    assert right.step("ISSUER AUTHENTICATION") == ["in the second GENERATE AC"]
    assert right.result.outcome == "approved"
    assert wrong.result.outcome == "declined_by_card"
    assert wrong.issuer.reversals == ["card declined after issuer approval"]


def test_issuer_decline_gets_an_aac_from_the_card(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    done = run(card(tmp_path, test_pki), config, issuer=LocalIssuer(response_code="51"))

    assert (done.result.outcome, done.result.cid) == ("declined", AAC)
    assert done.issuer.reversals == []


def test_unable_to_go_online_ends_declined_offline_by_this_card(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    class Offline(LocalIssuer):
        def authorize(self, request: OnlineRequest) -> OnlineResponse:
            return OnlineResponse(approved=False, response_code="", unable_to_go_online=True)

    done = run(card(tmp_path, test_pki), config, issuer=Offline())

    assert done.step("GEN AC 2")[-1] == "AAC requested -> AAC"  # Visa TAC default hits
    assert done.result.outcome == "declined_offline"
    assert done.issuer.reversals == []


def test_card_pulled_out_after_approval_is_reversed(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    done = run(card(tmp_path, test_pki), config, remove_at="80AE40")

    assert done.result.outcome == "aborted"
    assert done.issuer.reversals == ["card removed"]


def test_application_block_script_blocks_the_next_transaction(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    def block(atc: bytes, arqc: bytes, integrity: bytes) -> bytes:
        header = bytes.fromhex("841E000008")
        command = header + script_mac(integrity, header + atc + arqc)
        return encode(0x72, encode(0x9F18, bytes.fromhex("00000001")) + encode(0x86, command))

    emv_card = card(tmp_path, test_pki)
    first = run(emv_card, config, issuer=LocalIssuer(scripts=block))
    second = run(emv_card, config)

    assert first.result.outcome == "approved"
    assert [r.to_bytes() for r in first.result.script_results] == [bytes.fromhex("2000000001")]
    assert second.result.outcome == "aborted"
    assert second.result.reason == "no supported application"


# --- contactless -----------------------------------------------------------------------------


def test_contactless_under_the_cvm_limit_is_approved_without_cvm(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    emv_card = card(tmp_path, test_pki, contactless=True, interface="contactless")

    done = run(emv_card, config, amount=1_000, contactless=True)

    assert done.issuer.arqc_valid == [True]
    assert done.cardholder.online_asked == 0
    assert done.issuer.requests[0].entry_mode == "contactless"
    assert done.result.outcome == "approved"


def test_contactless_over_the_cvm_limit_asks_for_online_pin(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    emv_card = card(tmp_path, test_pki, contactless=True, interface="contactless")

    done = run(emv_card, config, amount=6_000, contactless=True)

    assert done.issuer.arqc_valid == [True]
    assert done.cardholder.online_asked == 1
    assert done.issuer.requests[0].pin == "encrypted-pin-block"
    assert done.result.outcome == "approved"


def test_contactless_over_the_transaction_limit_sends_the_cardholder_to_the_chip_reader(
        tmp_path: Path, test_pki: pki.TestPki, config: TerminalConfig) -> None:
    emv_card = card(tmp_path, test_pki, contactless=True, interface="contactless")

    done = run(emv_card, config, amount=20_000, contactless=True)

    assert done.result.outcome == "aborted"
    assert done.result.reason == "over contactless limit, insert the card"
    assert done.issuer.requests == []
