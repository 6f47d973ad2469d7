"""The payShield-style host interface over real TCP, against a real HSM on a free port.

The client here is written from docs/hsm-host-interface.md: it builds each request's bytes itself
(2-byte length, header, command code, fields) and reads responses by the documented layouts;
hsm_sim.hostif only serves. Expected values come from psec and pyemv, not from the HSM's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psec
import pyemv
import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from cardswitch.config import ROOT
from cardswitch.v1 import hsm_pb2
from hsm_sim import hostif, lmk
from hsm_sim.hostif import HostInfo, HostInterface
from hsm_sim.service import HsmServicer
from tests.hsm_support import fresh_hsm_home, running_hsm

pytestmark = pytest.mark.filterwarnings(
    "ignore::cryptography.utils.CryptographyDeprecationWarning"  # psec uses the old TripleDES
)

HEADER = b"0000"
FIRMWARE = "0007-E000"
TEST_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # KCV 08D7B4
ZPK = bytes.fromhex("89B07B35A1B3F47EC8A5C4D6E7F80112")
ZPK2 = psec.des.adjust_key_parity(bytes.fromhex("3C4D5E6F708192A3B4C5D6E7F8091A2B"))
TPK = psec.des.adjust_key_parity(bytes.fromhex("1F2E3D4C5B6A79880F1E2D3C4B5A6978"))
TAK = psec.des.adjust_key_parity(bytes.fromhex("7CA110454A1A6E570131D9619DC1376E"))
IMK = psec.des.adjust_key_parity(bytes.fromhex("9E15204313F7318ACB79B90BD986AD29"))
ZMK = psec.des.adjust_key_parity(bytes.fromhex("C1D0F8FB4958670DBA40AB1F3752EF0D"))
PAN = "4111111111111111"
PAN2 = "5555555555554444"
DECIMALIZATION = "0123456789012345"
TDES2 = hsm_pb2.KEY_ALGORITHM_TDES_2KEY


# --- a host client, from the documented framing and layouts -------------------------------------


def label(name: str) -> bytes:
    """A key given by label (extension): L, 2-digit length, label."""
    return b"L%02d%s" % (len(name), name.encode())


def key_block(block: str) -> bytes:
    """A key given by value: S and its key block under the LMK."""
    return b"S" + block.encode()


def account_number(pan: str) -> bytes:
    """The 12 rightmost PAN digits, check digit excluded."""
    return pan[-13:-1].encode()


def hexa(data: bytes) -> bytes:
    return data.hex().upper().encode()


def framed(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


class HostClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> HostClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, *parts: bytes, header: bytes = HEADER) -> bytes:
        """Sends one command (header + parts) and returns the whole response message."""
        self.writer.write(framed(header + b"".join(parts)))
        await self.writer.drain()
        return await self.receive()

    async def receive(self) -> bytes:
        size = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(2), 5), "big")
        return await asyncio.wait_for(self.reader.readexactly(size), 5)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Env:
    stub: Any
    host: HostClient
    port: int
    servicer: HsmServicer
    info: HostInfo


Scenario = Callable[[Env], Awaitable[None]]


def lmk_check_value() -> str:
    mac = CMAC(algorithms.AES(lmk.load()))
    mac.update(bytes(16))
    return mac.finalize()[:3].hex().upper()


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Scenario], None]:
    """Runs a scenario against a fresh HSM: gRPC for setting keys up, the host interface on its
    own free port over the same servicer, and one connected host client."""
    fresh_hsm_home(tmp_path, monkeypatch)

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            async with running_hsm() as (running, stub):
                info = HostInfo(lmk_kcv=lmk_check_value(), firmware=FIRMWARE)
                interface = HostInterface(running.servicer, info)
                port = await interface.start("127.0.0.1", 0)
                client = await HostClient.connect(port)
                try:
                    await scenario(Env(stub, client, port, running.servicer, info))
                finally:
                    await client.close()
                    await interface.stop()

        asyncio.run(main())

    return run


async def import_key(stub: Any, name: str, key_type: hsm_pb2.KeyType, clear: bytes) -> Any:
    mask = secrets.token_bytes(len(clear))
    components = [mask.hex(), bytes(a ^ b for a, b in zip(clear, mask, strict=True)).hex()]
    response = await stub.ImportKey(hsm_pb2.ImportKeyRequest(
        label=name, key_type=key_type, algorithm=TDES2, components=components))
    return response.key


async def pin_keys(stub: Any) -> None:
    await import_key(stub, "zpk", hsm_pb2.KEY_TYPE_ZPK, ZPK)
    await import_key(stub, "zpk2", hsm_pb2.KEY_TYPE_ZPK, ZPK2)
    await import_key(stub, "pvk", hsm_pb2.KEY_TYPE_PVK, TEST_KEY)


async def terminal_pin_key(stub: Any) -> None:
    await import_key(stub, "tpk", hsm_pb2.KEY_TYPE_TPK, TPK)


def iso0(key: bytes, pin: str, pan: str = PAN) -> bytes:
    return psec.des.encrypt_tdes_ecb(key, psec.pinblock.encode_pinblock_iso_0(pin, pan))


def ca_or_cc(code: bytes, source: bytes, destination: bytes, block: bytes, *,
             formats: bytes = b"0101", max_pin: bytes = b"12", pan: str = PAN) -> bytes:
    return code + source + destination + max_pin + hexa(block) + formats + account_number(pan)


# --- NC and framing ------------------------------------------------------------------------------


def test_nc_answers_under_the_echoed_header_with_the_lmk_check_value_and_firmware(
        hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        response = await env.host.send(b"NC", header=b"HDR7")
        kcv = lmk_check_value()
        assert response == b"HDR7ND00" + kcv.ljust(16, "0").encode() + FIRMWARE.encode()

    hsm(scenario)


def test_two_requests_in_one_write_are_both_answered_in_order(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "cvk", hsm_pb2.KEY_TYPE_CVK, TEST_KEY)
        cw = b"0001CW" + label("cvk") + PAN.encode() + b";2912101"
        env.host.writer.write(framed(b"0002NC") + framed(cw))
        first, second = await env.host.receive(), await env.host.receive()
        assert first.startswith(b"0002ND00")
        assert second == b"0001CX00" + psec.cvv.generate_cvv(TEST_KEY, PAN, "2912",
                                                              "101").encode()

    hsm(scenario)


def test_a_message_too_short_for_a_command_code_is_error_15_and_the_connection_lives_on(
        hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        assert await env.host.send(b"N") == b"0000ZZ15"
        assert await env.host.send(b"", header=b"00") == b"00ZZ15"
        assert (await env.host.send(b"NC")).startswith(b"0000ND00")

    hsm(scenario)


def test_a_client_closing_mid_frame_does_not_disturb_the_next_connection(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        truncated = await HostClient.connect(env.port)
        truncated.writer.write((100).to_bytes(2, "big") + b"0000NC")
        await truncated.close()
        fresh = await HostClient.connect(env.port)
        assert (await fresh.send(b"NC")).startswith(b"0000ND00")
        await fresh.close()

    hsm(scenario)


def test_an_unknown_command_gets_its_response_code_and_error_68(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        assert await env.host.send(b"XY1234") == b"0000XZ68"

    hsm(scenario)


def test_a_trailer_is_echoed_and_stray_data_is_error_15(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        response = await env.host.send(b"NC\x19TRAILER")
        assert response.startswith(b"0000ND00") and response.endswith(b"\x19TRAILER")
        assert await env.host.send(b"NCX") == b"0000ND15"

    hsm(scenario)


def test_the_header_length_is_configurable(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        interface = HostInterface(env.servicer, env.info, header_length=6)
        client = await HostClient.connect(await interface.start("127.0.0.1", 0))
        try:
            assert (await client.send(b"NC", header=b"ABCDEF")).startswith(b"ABCDEFND00")
        finally:
            await client.close()
            await interface.stop()

    hsm(scenario)


# --- keys: A0 and BU -----------------------------------------------------------------------------


def split_key(field: bytes) -> tuple[str, bytes]:
    """A key block field (S + block) and what follows it, by the block's own length field."""
    assert field[:1] == b"S"
    size = int(field[2:6])
    return field[1:1 + size].decode(), field[1 + size:]


def test_bu_returns_the_check_value_of_a_key_by_label(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        assert await env.host.send(b"BUFFF", label("pvk")) == b"0000BV0008D7B4"

    hsm(scenario)


def test_a0_generates_a_zpk_as_a_key_block_whose_check_value_bu_confirms(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        response = await env.host.send(b"A00001S")
        assert response[:8] == b"0000A100"
        block, rest = split_key(response[8:])
        assert block[5:7] == "P0" and len(rest) == 6
        assert await env.host.send(b"BUFFF", key_block(block)) == b"0000BV00" + rest

    hsm(scenario)


def test_a0_with_key_block_attributes_generates_a_tak(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        response = await env.host.send(b"A00003S#T2C00E00")
        assert response[:8] == b"0000A100"
        block, rest = split_key(response[8:])
        assert (block[5:7], block[8], block[11]) == ("M3", "C", "E") and len(rest) == 6

    hsm(scenario)


def test_a0_mode_1_also_returns_the_key_under_the_zmk(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "zmk", hsm_pb2.KEY_TYPE_ZMK, ZMK)
        response = await env.host.send(b"A01001S;0", label("zmk"), b"S")
        assert response[:8] == b"0000A100"
        _, rest = split_key(response[8:])
        under_zmk, kcv = split_key(rest)
        _, clear = psec.tr31.unwrap(ZMK, under_zmk)
        assert kcv == psec.des.generate_kcv(clear, 3).hex().upper().encode()

    hsm(scenario)


def test_a0_refuses_an_unknown_key_type_code_with_04_and_a_variant_scheme_with_26(
        hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        assert await env.host.send(b"A00999S") == b"0000A104"
        assert await env.host.send(b"A00001U") == b"0000A126"

    hsm(scenario)


# --- PIN translation: CA and CC ------------------------------------------------------------------


def test_ca_translates_a_pin_block_from_the_tpk_to_the_zpk(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        await terminal_pin_key(env.stub)
        request = ca_or_cc(b"CA", label("tpk"), label("zpk"), iso0(TPK, "1234"))
        response = await env.host.send(request)
        assert response == b"0000CB00" + b"00" + hexa(iso0(ZPK, "1234")) + b"01"

    hsm(scenario)


def test_cc_translates_iso_0_to_iso_3_between_zone_pin_keys(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        request = ca_or_cc(b"CC", label("zpk"), label("zpk2"), iso0(ZPK, "987654"),
                           formats=b"0147")
        response = await env.host.send(request)
        assert response[:10] == b"0000CD0000" and response[26:] == b"47"
        clear = psec.des.decrypt_tdes_ecb(ZPK2, bytes.fromhex(response[10:26].decode()))
        assert psec.pinblock.decode_pinblock_iso_3(clear, PAN) == "987654"

    hsm(scenario)


def test_cc_takes_keys_by_value_as_key_blocks_under_the_lmk(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        generated = await env.stub.GenerateKey(hsm_pb2.GenerateKeyRequest(
            key_type=hsm_pb2.KEY_TYPE_ZPK, algorithm=TDES2))
        by_value = key_block(generated.lmk_key_block)
        there = await env.host.send(ca_or_cc(b"CC", label("zpk"), by_value, iso0(ZPK, "4321")))
        assert there[:10] == b"0000CD0000"
        block = bytes.fromhex(there[10:26].decode())
        back = await env.host.send(ca_or_cc(b"CC", by_value, label("zpk"), block))
        assert back == b"0000CD0000" + hexa(iso0(ZPK, "4321")) + b"01"
        assert await env.host.send(b"BUFFF", by_value) == (
            b"0000BV00" + generated.key.kcv.encode())

    hsm(scenario)


def test_ca_and_cc_error_codes(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        good = iso0(ZPK, "1234")

        async def cc(*args: Any, **kwargs: Any) -> bytes:
            return (await env.host.send(ca_or_cc(b"CC", *args, **kwargs)))[4:8]

        undecodable = psec.des.encrypt_tdes_ecb(ZPK, bytes.fromhex("F" * 16))
        assert await cc(label("zpk"), label("zpk2"), undecodable) == b"CD20"
        assert await cc(label("zpk"), label("zpk2"), good, formats=b"9901") == b"CD23"
        assert await cc(label("zpk"), label("zpk2"), good, formats=b"0105") == b"CD23"
        assert await cc(label("zpk"), label("zpk2"), good, max_pin=b"03") == b"CD24"
        assert await cc(label("nope"), label("zpk2"), good) == b"CD10"
        assert await cc(label("zpk"), label("nope"), good) == b"CD11"
        assert await cc(label("zpk"), label("pvk"), good) == b"CD28"
        assert await cc(label("zpk"), b"U" + b"0" * 32, good) == b"CD26"
        bad_account = b"CC" + label("zpk") + label("zpk2") + b"12" + hexa(good) + b"0101"
        assert (await env.host.send(bad_account + b"11111111111A"))[4:8] == b"CD22"
        assert (await env.host.send(bad_account + b"1111"))[4:8] == b"CD22"
        non_hex = b"CC" + label("zpk") + label("zpk2") + b"12" + b"G" * 16 + b"0101"
        assert (await env.host.send(non_hex + account_number(PAN)))[4:8] == b"CD15"

    hsm(scenario)


# --- card verification values: CW and CY ---------------------------------------------------------


def test_cw_generates_the_cvv_and_cy_verifies_it(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "cvk", hsm_pb2.KEY_TYPE_CVK, TEST_KEY)
        cvv = psec.cvv.generate_cvv(TEST_KEY, PAN2, "2912", "201").encode()
        card = PAN2.encode() + b";2912201"
        assert await env.host.send(b"CW", label("cvk"), card) == b"0000CX00" + cvv
        assert await env.host.send(b"CY", label("cvk"), cvv, card) == b"0000CZ00"
        wrong = b"%03d" % ((int(cvv) + 1) % 1000)
        assert await env.host.send(b"CY", label("cvk"), wrong, card) == b"0000CZ01"

    hsm(scenario)


def test_cw_error_codes(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        await import_key(env.stub, "cvk", hsm_pb2.KEY_TYPE_CVK, TEST_KEY)
        assert await env.host.send(b"CW", label("cvk"), b"4111111111111112;2912201") == (
            b"0000CX22")
        assert await env.host.send(b"CW", label("cvk"), PAN.encode(), b";2913201") == (
            b"0000CX15")
        assert await env.host.send(b"CW", label("cvk"), PAN.encode(), b"2912201") == (
            b"0000CX22")
        assert await env.host.send(b"CW", label("zpk"), PAN.encode(), b";2912201") == (
            b"0000CX28")
        assert await env.host.send(b"CW", b"U" + b"0" * 32, PAN.encode(), b";2912201") == (
            b"0000CX26")

    hsm(scenario)


# --- PIN verification: DA and EA (IBM 3624 offset), DC and EC (Visa PVV) -----------------------


PATTERN = "5555555N4444"  # validation data: N becomes the account number's last 5 digits
VALIDATION = "5555555" + PAN2[-6:-1] + "4444"


def ibm_request(code: bytes, pin_key: bytes, block: bytes, offset: str, *,
                check_length: bytes = b"04", table: bytes = DECIMALIZATION.encode()) -> bytes:
    return (code + pin_key + label("pvk") + b"12" + hexa(block) + b"01" + check_length
            + account_number(PAN2) + table + PATTERN.encode() + offset.ljust(12, "F").encode())


def test_ea_verifies_an_interchange_pin_by_its_ibm_offset(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        offset = psec.pin.generate_ibm3624_offset(TEST_KEY, DECIMALIZATION, "2468", VALIDATION,
                                                  0, 16, "F")
        right, wrong = iso0(ZPK, "2468", PAN2), iso0(ZPK, "2469", PAN2)
        assert await env.host.send(ibm_request(b"EA", label("zpk"), right, offset)) == (
            b"0000EB00")
        assert await env.host.send(ibm_request(b"EA", label("zpk"), wrong, offset)) == (
            b"0000EB01")
        table = b"01234567890123XY"
        assert await env.host.send(ibm_request(b"EA", label("zpk"), right, offset,
                                               table=table)) == b"0000EB25"
        assert await env.host.send(ibm_request(b"EA", label("zpk"), right, offset,
                                               check_length=b"13")) == b"0000EB24"

    hsm(scenario)


def test_da_verifies_a_terminal_pin_by_its_ibm_offset(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        await terminal_pin_key(env.stub)
        offset = psec.pin.generate_ibm3624_offset(TEST_KEY, DECIMALIZATION, "135790",
                                                  VALIDATION, 0, 16, "F")
        block = iso0(TPK, "135790", PAN2)
        assert await env.host.send(ibm_request(b"DA", label("tpk"), block, offset,
                                               check_length=b"06")) == b"0000DB00"
        assert await env.host.send(ibm_request(b"DA", label("tpk"), block, "1" * 6,
                                               check_length=b"06")) == b"0000DB01"

    hsm(scenario)


def pvv_request(code: bytes, pin_key: bytes, block: bytes, pvv: str) -> bytes:
    return (code + pin_key + label("pvk") + hexa(block) + b"01" + account_number(PAN)
            + b"1" + pvv.encode())


def test_dc_verifies_a_terminal_pin_by_its_visa_pvv(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        await terminal_pin_key(env.stub)
        pvv = psec.pin.generate_visa_pvv(TEST_KEY, "1", "8642", PAN)
        assert await env.host.send(pvv_request(b"DC", label("tpk"), iso0(TPK, "8642"), pvv)) == (
            b"0000DD00")
        assert await env.host.send(pvv_request(b"DC", label("tpk"), iso0(TPK, "8641"), pvv)) == (
            b"0000DD01")

    hsm(scenario)


def test_ec_verifies_an_interchange_pin_by_its_visa_pvv(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        pvv = psec.pin.generate_visa_pvv(TEST_KEY, "1", "8642", PAN)
        block = iso0(ZPK, "8642")
        assert await env.host.send(pvv_request(b"EC", label("zpk"), block, pvv)) == (
            b"0000ED00")
        other = f"{(int(pvv) + 1) % 10000:04d}"
        assert await env.host.send(pvv_request(b"EC", label("zpk"), block, other)) == (
            b"0000ED01")

    hsm(scenario)


# --- EMV: KQ -------------------------------------------------------------------------------------


PSN = "01"
ATC = bytes.fromhex("001C")
UN = bytes.fromhex("A1B2C3D4")
CDOL1 = bytes.fromhex(  # amount, other amount, country, TVR, currency, date, type, UN, AIP, ATC
    "000000002000" "000000000000" "0840" "0000008000" "0840" "250301" "00" "A1B2C3D4" "5800"
    "001C")
ARC = b"00"


def kq_request(mode: bytes, scheme: bytes, data: bytes, arqc: bytes) -> bytes:
    pan_psn = bytes.fromhex((PAN + PSN)[-16:])
    tail = ARC if mode == b"1" else b""
    return (b"KQ" + mode + scheme + label("imk") + pan_psn + ATC + UN + b"%02X" % len(data)
            + data + b";" + arqc + tail)


def test_kq_verifies_a_visa_arqc_and_returns_the_arpc(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "imk", hsm_pb2.KEY_TYPE_IMK_AC, IMK)
        icc_mk = pyemv.kd.derive_icc_mk_a(IMK, PAN, PSN)
        arqc = pyemv.ac.generate_ac(icc_mk, CDOL1, pyemv.ac.PaddingType.VISA)
        arpc = pyemv.ac.generate_arpc_1(icc_mk, arqc, ARC)
        assert await env.host.send(kq_request(b"1", b"0", CDOL1, arqc)) == b"0000KR00" + arpc
        assert await env.host.send(kq_request(b"0", b"0", CDOL1, arqc)) == b"0000KR00"
        forged = bytes([arqc[0] ^ 1]) + arqc[1:]
        assert await env.host.send(kq_request(b"1", b"0", CDOL1, forged)) == b"0000KR01"
        assert await env.host.send(kq_request(b"2", b"0", CDOL1, arqc)) == b"0000KR15"

    hsm(scenario)


def test_kq_scheme_1_verifies_a_mastercard_arqc_under_the_emv_session_key(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "imk", hsm_pb2.KEY_TYPE_IMK_AC, IMK)
        icc_mk = pyemv.kd.derive_icc_mk_a(IMK, PAN, PSN)
        session_key = pyemv.kd.derive_common_sk(icc_mk, ATC + bytes(6))
        arqc = pyemv.ac.generate_ac(session_key, CDOL1, pyemv.ac.PaddingType.EMV)
        arpc = pyemv.ac.generate_arpc_1(session_key, arqc, ARC)
        padded = psec.mac.pad_iso_2(CDOL1, 8)
        assert await env.host.send(kq_request(b"1", b"1", padded, arqc)) == b"0000KR00" + arpc
        assert await env.host.send(kq_request(b"1", b"1", CDOL1, arqc)) == b"0000KR15"

    hsm(scenario)


# --- MACs: M6 and M8 -----------------------------------------------------------------------------


MESSAGE = b"0200 4111111111111111 000000002000 ACQUIRER-42"


def mac_request(code: bytes, options: bytes, message: bytes, mac: bytes = b"") -> bytes:
    return (code + options + b"003" + label("tak") + b"%04X" % len(message) + message + mac)


def test_m6_generates_a_retail_mac_over_binary_and_hex_input(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "tak", hsm_pb2.KEY_TYPE_TAK, TAK)
        full = psec.mac.generate_retail_mac(TAK[:8], TAK[8:], MESSAGE, padding=2)
        assert await env.host.send(mac_request(b"M6", b"00132", MESSAGE)) == (
            b"0000M700" + hexa(full))
        assert await env.host.send(mac_request(b"M6", b"01032", hexa(MESSAGE))) == (
            b"0000M700" + hexa(full[:4]))
        assert await env.host.send(mac_request(b"M6", b"00131", MESSAGE)) == b"0000M715"
        assert await env.host.send(mac_request(b"M6", b"01032", b"ABC")) == b"0000M715"

    hsm(scenario)


def test_m8_verifies_a_retail_mac(hsm: Any) -> None:
    async def scenario(env: Env) -> None:
        await import_key(env.stub, "tak", hsm_pb2.KEY_TYPE_TAK, TAK)
        await pin_keys(env.stub)
        full = psec.mac.generate_retail_mac(TAK[:8], TAK[8:], MESSAGE, padding=2)
        assert await env.host.send(mac_request(b"M8", b"00032", MESSAGE, hexa(full[:4]))) == (
            b"0000M900")
        altered = MESSAGE.replace(b"2000", b"9000")
        assert await env.host.send(mac_request(b"M8", b"00032", altered, hexa(full[:4]))) == (
            b"0000M901")
        wrong_key = (b"M8" + b"00032" + b"003" + label("zpk") + b"%04X" % len(MESSAGE) + MESSAGE
                     + hexa(full[:4]))
        assert await env.host.send(wrong_key) == b"0000M928"

    hsm(scenario)


# --- audit ---------------------------------------------------------------------------------------


def test_host_commands_are_audited_as_the_host_interface_without_pins_or_pans(
        hsm: Any, tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await pin_keys(env.stub)
        request = ca_or_cc(b"CC", label("zpk"), label("zpk2"), iso0(ZPK, "1234"))
        assert (await env.host.send(request))[4:8] == b"CD00"

    hsm(scenario)
    lines = (tmp_path / "hsm" / "audit.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    translate = [r for r in records if r["command"] == "TranslatePin"]
    assert [(r["interface"], r["result"]) for r in translate] == [("host", "ok")]
    assert {key["ref"] for key in translate[0]["keys"]} == {"zpk", "zpk2"}
    text = "\n".join(lines)
    assert PAN not in text and account_number(PAN).decode() not in text
    assert iso0(ZPK, "1234").hex().upper() not in text.upper()


# --- the document and the table ------------------------------------------------------------------


def test_the_document_shows_every_layout_of_the_command_table() -> None:
    doc = (ROOT / "docs" / "hsm-host-interface.md").read_text()
    for command in hostif.COMMANDS.values():
        assert f"### {command.code} " in doc, command.code
        for fields in (command.request, command.response):
            if fields:
                assert hostif.layout_table(fields) in doc, command.code
    for code in hostif.ERROR_CODES:
        assert f"| {code} |" in doc, code


def test_hsm_serve_starts_the_host_interface_on_request(tmp_path: Path) -> None:
    env = {**os.environ, "CARDSWITCH_VAR": str(tmp_path)}
    env.pop("CARDSWITCH_LMK_FILE", None)
    env.pop("CARDSWITCH_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "cardswitch.cli", "hsm", "init"], env=env, check=True,
                   capture_output=True, timeout=60)
    proc = subprocess.Popen([sys.executable, "-m", "cardswitch.cli", "hsm", "serve", "--port",
                             "0", "--host-port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("HSM host interface on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            message = b"0000NC"
            conn.sendall(len(message).to_bytes(2, "big") + message)
            length = int.from_bytes(conn.recv(2), "big")
            answer = conn.recv(length)
        assert answer[:8] == b"0000ND00"
    finally:
        proc.terminate()
        proc.wait(30)
