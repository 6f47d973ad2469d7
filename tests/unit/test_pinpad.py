"""The software PIN pad: DUKPT PIN blocks, KSN discipline, sealed state, RSA-OAEP provisioning."""

import asyncio
import stat
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardswitch.v1 import admin_pb2, admin_pb2_grpc
from hsm_sim.algorithms import dukpt, kcv, pinblock, tdes
from terminals.pinpad import PinPad, provision

# ANSI X9.24-1 Annex A: the device with this IPEK and initial KSN sends, for PIN 1234 on PAN
# 4012345678909, the encrypted block 1B9C1845EB993A7A under KSN ...E00001.
IPEK = bytes.fromhex("6AC292FAA1315B4D858AB3A3D7D5933A")
INITIAL_KSN = bytes.fromhex("FFFF9876543210E00000")
PAN = "4012345678909"


def decrypt_pin(ipek: bytes, block: bytes, ksn: bytes, pan: str) -> str:
    """What the HSM does with the block: derive the same PIN key, decrypt, decode format 0."""
    clear = tdes.decrypt_ecb(dukpt.tdes_pin_key(ipek, ksn), block)
    return pinblock.decode_iso0(clear, pan)


def test_first_pin_matches_the_x9_24_annex_a_vector() -> None:
    pad = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN)

    block, ksn = pad.encrypt_pin("1234", PAN)

    assert ksn.hex().upper() == "FFFF9876543210E00001"
    assert block.hex().upper() == "1B9C1845EB993A7A"


def test_encrypted_block_decrypts_back_to_the_iso0_block_of_the_pin() -> None:
    pad = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN)

    encrypted = pad.encrypt_pin("987654", "4761739001010010")

    clear = tdes.decrypt_ecb(dukpt.tdes_pin_key(IPEK, encrypted.ksn), encrypted.block)
    assert clear == pinblock.encode_iso0("987654", "4761739001010010")
    assert decrypt_pin(IPEK, encrypted.block, encrypted.ksn, "4761739001010010") == "987654"


def test_ksn_strictly_advances_with_every_pin() -> None:
    pad = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN)

    counters = [dukpt.ksn_counter(pad.encrypt_pin("1234", PAN).ksn) for _ in range(5)]

    assert counters == [1, 2, 3, 4, 5]
    assert dukpt.ksn_counter(pad.ksn) == 5


def test_to_proto_labels_the_block_iso0_under_tdes_dukpt() -> None:
    encrypted = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN).encrypt_pin("1234", PAN)

    proto = encrypted.to_proto()

    assert (proto.block, proto.ksn) == (encrypted.block, encrypted.ksn)
    assert proto.format == 1  # PIN_BLOCK_FORMAT_ISO_0
    assert proto.key_management == 1  # PIN_KEY_MANAGEMENT_DUKPT_TDES


def test_a_rejected_pin_does_not_consume_a_ksn() -> None:
    pad = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN)

    with pytest.raises(ValueError, match="pin: must be 4 to 12 digits"):
        pad.encrypt_pin("12", PAN)

    assert pad.ksn == INITIAL_KSN


def test_ksn_is_persisted_and_a_reloaded_pad_continues_after_it(tmp_path: Path) -> None:
    pad = PinPad.install("TERM0001", IPEK, INITIAL_KSN, tmp_path)
    used = [pad.encrypt_pin("1234", PAN).ksn for _ in range(3)]

    reloaded = PinPad.load("TERM0001", tmp_path)
    after = reloaded.encrypt_pin("1234", PAN)

    assert reloaded.ksn == after.ksn
    assert dukpt.ksn_counter(used[-1]) == 3
    assert dukpt.ksn_counter(after.ksn) == 4
    assert decrypt_pin(IPEK, after.block, after.ksn, PAN) == "1234"


def test_two_pads_sharing_one_state_file_never_reuse_a_ksn(tmp_path: Path) -> None:
    PinPad.install("TERM0001", IPEK, INITIAL_KSN, tmp_path)
    first, second = PinPad.load("TERM0001", tmp_path), PinPad.load("TERM0001", tmp_path)

    ksns = [pad.encrypt_pin("1234", PAN).ksn for _ in range(4) for pad in (first, second)]

    assert len(set(ksns)) == 8
    assert sorted(dukpt.ksn_counter(k) for k in ksns) == list(range(1, 9))


def test_a_lease_marks_its_block_used_on_disk_before_handing_out_ksns(tmp_path: Path) -> None:
    pad = PinPad.install("TERM0001", IPEK, INITIAL_KSN, tmp_path)
    leased = pad.lease(10)

    first = [dukpt.ksn_counter(leased.encrypt_pin("1234", PAN).ksn) for _ in range(3)]
    on_disk = dukpt.ksn_counter(PinPad.load("TERM0001", tmp_path).ksn)
    direct = dukpt.ksn_counter(pad.encrypt_pin("1234", PAN).ksn)
    rest = [dukpt.ksn_counter(leased.encrypt_pin("1234", PAN).ksn) for _ in range(9)]

    assert (first, on_disk, direct) == ([1, 2, 3], 10, 11)
    assert rest == [4, 5, 6, 7, 8, 9, 10, 12, 13]  # the second block starts after 11
    assert dukpt.ksn_counter(PinPad.load("TERM0001", tmp_path).ksn) == 21
    encrypted = leased.encrypt_pin("4321", PAN)
    assert decrypt_pin(IPEK, encrypted.block, encrypted.ksn, PAN) == "4321"


def test_a_lease_of_an_in_memory_pad_shares_its_counter() -> None:
    pad = PinPad.in_memory("TERM0001", IPEK, INITIAL_KSN)
    leased = pad.lease(2)

    used = [leased.encrypt_pin("1234", PAN).ksn, pad.encrypt_pin("1234", PAN).ksn,
            leased.encrypt_pin("1234", PAN).ksn, leased.encrypt_pin("1234", PAN).ksn]

    assert [dukpt.ksn_counter(k) for k in used] == [1, 3, 2, 4]


def test_state_file_is_private_and_holds_no_clear_ipek(tmp_path: Path) -> None:
    pad = PinPad.install("TERM0001", IPEK, INITIAL_KSN, tmp_path)
    pad.encrypt_pin("1234", PAN)
    state = tmp_path / "TERM0001.pinpad"
    secret = tmp_path / "TERM0001.device-secret"

    raw = state.read_bytes()

    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert IPEK not in raw
    assert IPEK.hex().encode() not in raw.lower()
    assert b"1234" not in raw and b"ipek" not in raw


def test_edited_state_file_fails_its_integrity_check(tmp_path: Path) -> None:
    PinPad.install("TERM0001", IPEK, INITIAL_KSN, tmp_path)
    state = tmp_path / "TERM0001.pinpad"
    raw = bytearray(state.read_bytes())
    raw[-1] ^= 0x01
    state.write_bytes(bytes(raw))

    with pytest.raises(ValueError, match="integrity check"):
        PinPad.load("TERM0001", tmp_path)


def test_loading_an_unprovisioned_terminal_says_to_provision(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cardswitch terminal provision"):
        PinPad.load("TERM0009", tmp_path)


def test_terminal_id_that_is_not_a_safe_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="terminal_id"):
        PinPad.install("../etc", IPEK, INITIAL_KSN, tmp_path)


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    """Plays the switch's side of provisioning: wraps a known IPEK under the pad's public key."""

    def __init__(self, ipek: bytes, kcv_hex: str | None = None) -> None:
        self.ipek = ipek
        self.kcv_hex = kcv_hex if kcv_hex is not None else kcv.kcv(ipek).hex().upper()
        self.requests: list[admin_pb2.ProvisionTerminalKeyRequest] = []

    async def ProvisionTerminalKey(
        self, request: admin_pb2.ProvisionTerminalKeyRequest, context: object
    ) -> admin_pb2.ProvisionTerminalKeyResponse:
        self.requests.append(request)
        public_key = serialization.load_pem_public_key(request.device_public_key_pem)
        assert isinstance(public_key, rsa.RSAPublicKey)
        wrapped = public_key.encrypt(
            self.ipek,
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        return admin_pb2.ProvisionTerminalKeyResponse(
            initial_ksn=INITIAL_KSN, encrypted_initial_key=wrapped, kcv=self.kcv_hex
        )


async def provision_against(fake: FakeAdmin, directory: Path) -> PinPad:
    server = grpc.aio.server()
    admin_pb2_grpc.add_AdminServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            return await provision(channel, "TERM0001", directory=directory, timeout_s=5)
    finally:
        await server.stop(None)


def test_provisioning_unwraps_the_oaep_wrapped_ipek_and_seals_it(tmp_path: Path) -> None:
    fake = FakeAdmin(IPEK)

    pad = asyncio.run(provision_against(fake, tmp_path))

    request = fake.requests[0]
    public_key = serialization.load_pem_public_key(request.device_public_key_pem)
    assert request.terminal_id == "TERM0001"
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
    assert pad.ksn == INITIAL_KSN
    block, ksn = PinPad.load("TERM0001", tmp_path).encrypt_pin("1234", PAN)
    assert (block.hex().upper(), ksn.hex().upper()) == ("1B9C1845EB993A7A",
                                                        "FFFF9876543210E00001")
    assert IPEK not in (tmp_path / "TERM0001.pinpad").read_bytes()


def test_provisioning_rejects_a_key_whose_kcv_does_not_match(tmp_path: Path) -> None:
    fake = FakeAdmin(IPEK, kcv_hex="000000")

    with pytest.raises(ValueError, match=r"kcv: .* is AF8C07, the switch said '000000'"):
        asyncio.run(provision_against(fake, tmp_path))

    assert not (tmp_path / "TERM0001.pinpad").exists()
