"""AES DUKPT (ANSI X9.24-3:2017) against the standard's supplement test vectors.

The supplement derives from BDK FEDCBA9876543210F1F1F1F1F1F1F1F1 (the same 16 bytes twice for
AES-256) and initial key id 1234567890123456. Its text is published by ASC X9
(https://x9.org/standards/x9-24-part-3-test-vectors/); the expected values below are copied
from open implementations that test against it, each cited where it is used:

- openemv/dukpt, test/dukpt_aes128_test.c and test/dukpt_aes256_test.c: initial keys and the
  intermediate derivation keys for counters 1-8, 0x1FFFE, 0x20000, 0x20001 and the last four.
- moov-io/dukpt, pkg/aes/aes_test.go: the AES-128 initial key and derivation keys 1-8 again.
- 5n00py/paysec, crates/paysec-dukpt/tests/test_working_key.rs: PIN, MAC and data working keys.
- teamforage/forage-android-sdk, forage-android/src/test/java/com/joinforage/forage/android/
  pos/encryption/DukptFixtures.kt and PinBlockIso4Test.kt: PIN keys for counters 1-99 and the
  supplement's ISO 9564 format 4 blocks under the first PIN keys.

No package on PyPI implements AES DUKPT (``dukpt`` and ``pydukpt`` are TDES only), so these
published values are the oracle; the format 4 blocks check the PIN keys by a second route.
"""

import doctest
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_sim.algorithms import dukpt, dukpt_aes, pinblock
from hsm_sim.algorithms.dukpt_aes import (
    KeyUsage,
    aes_derive_working_key,
    aes_initial_key,
    aes_intermediate_key,
    aes_ksn_counter,
    aes_make_ksn,
    aes_next_ksn,
    aes_pin_key,
)

BDK_128 = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
BDK_192 = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210")
BDK_256 = BDK_128 * 2
INITIAL_KEY_ID = bytes.fromhex("1234567890123456")
INITIAL_KEY_128 = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")
INITIAL_KEY_256 = bytes.fromhex("CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F")


def ksn(counter: int) -> bytes:
    """The supplement device's KSN for transaction ``counter``."""
    return INITIAL_KEY_ID + counter.to_bytes(4, "big")


valid_counters = st.integers(min_value=1, max_value=0xFFFF0000).filter(
    lambda c: c.bit_count() <= 16
)


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(dukpt_aes)
    assert result.attempted > 0
    assert result.failed == 0


def test_dukpt_module_re_exports_the_aes_functions() -> None:
    assert dukpt.aes_initial_key is aes_initial_key
    assert dukpt.aes_pin_key is aes_pin_key
    assert dukpt.aes_derive_working_key is aes_derive_working_key
    assert dukpt.aes_next_ksn is aes_next_ksn


# openemv/dukpt test/dukpt_aes128_test.c, test/dukpt_aes256_test.c; moov-io/dukpt aes_test.go.
@pytest.mark.parametrize(
    ("bdk", "initial_key"), [(BDK_128, INITIAL_KEY_128), (BDK_256, INITIAL_KEY_256)]
)
def test_initial_key_matches_the_supplement(bdk: bytes, initial_key: bytes) -> None:
    assert aes_initial_key(bdk, INITIAL_KEY_ID) == initial_key


def test_initial_key_from_an_aes_192_bdk_is_24_bytes() -> None:
    assert len(aes_initial_key(BDK_192, INITIAL_KEY_ID)) == 24


# openemv/dukpt test/dukpt_aes128_test.c (counters 1-8 also in moov-io/dukpt aes_test.go).
# Counter 0x1FFFF is in the supplement too but has 17 one-bits; see the rejection test below.
@pytest.mark.parametrize(
    ("counter", "derivation_key"),
    [
        (0x00000001, "4F21B565BAD9835E112B6465635EAE44"),
        (0x00000002, "2F34D68DE10F68D38091A73B9E7C437C"),
        (0x00000003, "031504E530365CF81264238540518318"),
        (0x00000004, "0EEFC7ADA628BA68878DA9165A8A1887"),
        (0x00000005, "C2A7AC328A5DA2D6002D62465BFC028B"),
        (0x00000006, "D30F7D9351DA58448A2F5E92B4EE3B7D"),
        (0x00000007, "A8253CEED9AC042C54F75D35C8352278"),
        (0x00000008, "718EE6CF0B27E53D5F7AF99C4D8146A2"),
        (0x0001FFFE, "E21E8C8D347F8561A2BE752DAA85A111"),
        (0x00020000, "F7AE9025468A25D37B7249CFFED224C8"),
        (0x00020001, "692C8EA4013645135B36497131DF9D2C"),
        (0xFFFE2000, "48E585B694EB0B18D5C35443E163C0BA"),
        (0xFFFE4000, "396C2C7CA1EA701C03B86B7D41F0C562"),
        (0xFFFE8000, "0387625F189B58AE03EF0E8CCA41105E"),
        (0xFFFF0000, "F6BA59389BD14A9855BE9727E7C52E3C"),
    ],
)
def test_aes_128_intermediate_derivation_key_matches_the_supplement(
    counter: int, derivation_key: str
) -> None:
    assert aes_intermediate_key(INITIAL_KEY_128, ksn(counter)).hex().upper() == derivation_key


# openemv/dukpt test/dukpt_aes256_test.c.
@pytest.mark.parametrize(
    ("counter", "derivation_key"),
    [
        (0x00000001, "54AC2B32B145EA4A554CB8BC44B17467063A799856B1CCC2A138D36E8DBF78B3"),
        (0x00000002, "5DD5A0253842BBBE1D7C0DA27021412C6F1FAB53FB928DEAE56DA06090A9DE97"),
        (0x00000008, "20A796D5077D51B8E7613893A4F095B134E02917DC84BD391F3661D0873FF308"),
        (0x0001FFFE, "A289508CBF1228452CD86AB77B15CB35577AC828C18BB66681E5A16D6C9CCED3"),
        (0x00020000, "D62DDA94A47D7DA5D763443B4ECB15EA8DD62E0E4F915958BA459591F8312E37"),
        (0xFFFF0000, "6D6DB7AAAE8B3EA90E57A39E4BBA71E173B21B446B30A78D64BFC6A8806C55EE"),
    ],
)
def test_aes_256_intermediate_derivation_key_matches_the_supplement(
    counter: int, derivation_key: str
) -> None:
    assert aes_intermediate_key(INITIAL_KEY_256, ksn(counter)).hex().upper() == derivation_key


# Counters 1-5, 0x1FFFE, 0x20000: 5n00py/paysec test_working_key.rs; counters 1-99 (a sample
# here): teamforage/forage-android-sdk DukptFixtures.kt. The two agree on counters 1-5.
@pytest.mark.parametrize(
    ("counter", "pin_key"),
    [
        (0x00000001, "AF8CB133A78F8DC2D1359F18527593FB"),
        (0x00000002, "D30BDC73EC9714B000BEC66BDB7B6D09"),
        (0x00000003, "7D69F01F3B45449F62C7816ECE723268"),
        (0x00000004, "91A0588318EC2673214271F70137896E"),
        (0x00000005, "35A43BC9EFEB09C756204B57E3FB7D4D"),
        (0x00000006, "02DCC6CD1201A3A2CA7099559C862123"),
        (0x00000007, "6ECF912F3B18CA11A7A27BB60705FD09"),
        (0x00000008, "4D9DF3FBEE3448FC3E676D04320A90F5"),
        (0x00000010, "A09C63853B707708DEAB907BA778C191"),
        (0x00000020, "D4DD318BB3D0185DE4BF6886262669DF"),
        (0x00000040, "2CB74B2542D0D429D02F7AA749AA3BB1"),
        (0x00000063, "0479194DE8820746DAD40E9A305B83AF"),
        (0x0001FFFE, "DDF7E08A84B5478C498D007C743BF762"),
        (0x00020000, "AB828BE7B58C7EC5D5ED0D5D320A0C9D"),
    ],
)
def test_pin_key_matches_the_supplement(counter: int, pin_key: str) -> None:
    assert aes_pin_key(INITIAL_KEY_128, ksn(counter)).hex().upper() == pin_key


def test_pin_key_from_the_bdk_walks_bdk_to_initial_key_to_pin_key() -> None:
    initial_key = aes_initial_key(BDK_128, INITIAL_KEY_ID)
    assert aes_pin_key(initial_key, ksn(3)).hex().upper() == "7D69F01F3B45449F62C7816ECE723268"


# 5n00py/paysec test_working_key.rs, test_all_working_key_usages_aes_128_counter_1.
@pytest.mark.parametrize(
    ("key_usage", "working_key"),
    [
        (KeyUsage.KEY_ENCRYPTION, "36A724B7BEFA5A25F5E7B5782A4554A2"),
        (KeyUsage.PIN_ENCRYPTION, "AF8CB133A78F8DC2D1359F18527593FB"),
        (KeyUsage.MAC_GENERATION, "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
        (KeyUsage.MAC_VERIFICATION, "DBB463945B286C07CD3AD82EE96FD9C9"),
        (KeyUsage.MAC_BOTH_WAYS, "85675439D18D7F1158BD8E3EAA3D502B"),
        (KeyUsage.DATA_ENCRYPT, "A35C412EFD41FDB98B69797C02DCD08F"),
        (KeyUsage.DATA_DECRYPT, "16292C6EA8F64C5420A0584BFBC577BE"),
        (KeyUsage.DATA_BOTH_WAYS, "A308E080DD15A1B741F1721BF67DE11C"),
    ],
)
def test_every_working_key_usage_at_counter_1_matches_the_supplement(
    key_usage: KeyUsage, working_key: str
) -> None:
    key = aes_derive_working_key(INITIAL_KEY_128, ksn(1), key_usage, "AES-128")
    assert key.hex().upper() == working_key


# 5n00py/paysec test_working_key.rs, AES_128_VECTORS.
@pytest.mark.parametrize(
    ("counter", "mac_generation_key", "data_encrypt_key"),
    [
        (0x00000002, "484C3B06E8562704528CD5B46FB12FB6", "D639514AA33AC43AD9229E433D6D4E5B"),
        (0x00000003, "A5DF7D9D800CA769766F0C77CA4E6E6C", "EF17F6AB45B4820C93A3DCB21BC491AD"),
        (0x00000004, "E6E4679647D8A9057C1FC15537CB4C4E", "B3BD44C08BB6BA27C3BB4711D7D70387"),
        (0x00000005, "0588185FE1FF8C7E22FAD78C1C61F065", "CA02DF6F30B39E14BD0B4A30E460920F"),
        (0x0001FFFE, "6D7623AD652734B8FAE1B6E093EACE3D", "8E4E5D5E0F01C54F01F4ACA1C8F8EDCE"),
        (0x00020000, "0B59D3D7D93028D97135FB895CACE24E", "13361208975755318FE7AE28C9616014"),
    ],
)
def test_mac_and_data_keys_match_the_supplement(
    counter: int, mac_generation_key: str, data_encrypt_key: str
) -> None:
    mac = aes_derive_working_key(INITIAL_KEY_128, ksn(counter), KeyUsage.MAC_GENERATION, "AES-128")
    data = aes_derive_working_key(INITIAL_KEY_128, ksn(counter), KeyUsage.DATA_ENCRYPT, "AES-128")
    assert mac.hex().upper() == mac_generation_key
    assert data.hex().upper() == data_encrypt_key


# 5n00py/paysec test_working_key.rs: AES-128 and AES-256 working keys from the AES-256 BDK.
@pytest.mark.parametrize(
    ("key_usage", "key_type", "working_key"),
    [
        (KeyUsage.PIN_ENCRYPTION, "AES-128", "09C9C432966811D6B2C3336BAC1B1202"),
        (KeyUsage.MAC_GENERATION, "AES-128", "F04A1FABD4176E15490CEC82E217A96D"),
        (KeyUsage.DATA_ENCRYPT, "AES-128", "616D59AE91F8CC7016F89FDA29605FA4"),
        (
            KeyUsage.PIN_ENCRYPTION,
            "AES-256",
            "8C1AB7BEE973829E30242E0BBBDD4946D540C98FC1B5BDCF94790001A23FD502",
        ),
        (
            KeyUsage.MAC_GENERATION,
            "AES-256",
            "61DABDF4B340CF461EE860B1D1AB55357142BD2D6977306859CF49AEFE8F1549",
        ),
        (
            KeyUsage.DATA_ENCRYPT,
            "AES-256",
            "71EB36C9A6B7F801D1D1700C29741FC5A5C4E9B45D742DA7AF6992B8AA29AF58",
        ),
    ],
)
def test_working_keys_from_the_aes_256_bdk_match_the_supplement(
    key_usage: KeyUsage, key_type: str, working_key: str
) -> None:
    key = aes_derive_working_key(INITIAL_KEY_256, ksn(1), key_usage, key_type)
    assert key.hex().upper() == working_key


# 5n00py/paysec test_working_key.rs, AES_192_TO_AES_1xx_VECTORS, generated there with the ASC X9
# reference code (not printed in the supplement).
@pytest.mark.parametrize(
    ("counter", "key_type", "pin_key"),
    [
        (1, "AES-128", "3C318CDBF08322279557201E98DBB3F3"),
        (3, "AES-128", "6DE9A0A37D6927280B7E223C4BE7580F"),
        (1, "AES-192", "C5043EDC7F2C001097974D40FF82A050B64A1AB27879F3DB"),
        (3, "AES-192", "64AE12F5E0FB2001B22520CED9C5CF1A8AA45AAA3F264882"),
    ],
)
def test_pin_keys_from_an_aes_192_bdk_match_the_x9_reference_code(
    counter: int, key_type: str, pin_key: str
) -> None:
    initial_key = aes_initial_key(BDK_192, INITIAL_KEY_ID)
    key = aes_derive_working_key(initial_key, ksn(counter), KeyUsage.PIN_ENCRYPTION, key_type)
    assert key.hex().upper() == pin_key


# teamforage/forage-android-sdk PinBlockIso4Test.kt: the supplement's format 4 example (PIN 1234,
# PAN 4111111111111111, random bytes 2F69ADDE2E9E7ACE) under the PIN keys of counters 1-3.
@pytest.mark.parametrize(
    ("counter", "encrypted"),
    [
        (1, "A912150391AB65A67E52883D81CE2D15"),
        (2, "52A00503BD34BA1383F6A7EE9FE2547F"),
        (3, "A5A27E82B43A9A866A93D7ABE89CEF93"),
    ],
)
def test_format_4_pin_block_under_the_pin_key_matches_the_supplement(
    counter: int, encrypted: str
) -> None:
    pin_key = aes_pin_key(aes_initial_key(BDK_128, INITIAL_KEY_ID), ksn(counter))
    fill = bytes.fromhex("2F69ADDE2E9E7ACE")
    block = pinblock.encrypt_iso4(pin_key, "1234", "4111111111111111", fill)
    assert block.hex().upper() == encrypted


def test_next_ksn_walks_the_supplement_sequences() -> None:
    start = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    rollover = [0x1FFFE, 0x20000, 0x20001]
    last = [0xFFFE2000, 0xFFFE4000, 0xFFFE8000, 0xFFFF0000]
    for sequence in (start, rollover, last):
        for current, following in itertools.pairwise(sequence):
            assert aes_next_ksn(ksn(current)) == ksn(following)


def test_next_ksn_is_exhausted_after_counter_ffff0000() -> None:
    with pytest.raises(ValueError) as excinfo:
        aes_next_ksn(ksn(0xFFFF0000))
    assert str(excinfo.value) == (
        "ksn: transaction counter exhausted, the device needs a new initial key"
    )


@given(counter=st.integers(min_value=0, max_value=0xFFFEFFFF).filter(lambda c: c.bit_count() <= 16))
def test_next_ksn_never_exceeds_sixteen_one_bits_and_keeps_the_device(counter: int) -> None:
    following = aes_next_ksn(ksn(counter))
    assert aes_ksn_counter(following) > counter
    assert aes_ksn_counter(following).bit_count() <= 16
    assert following[:8] == INITIAL_KEY_ID


@given(counter=st.integers(min_value=0, max_value=0xFFFEFFFF).filter(lambda c: c.bit_count() < 16))
def test_next_ksn_below_sixteen_one_bits_steps_by_one(counter: int) -> None:
    assert aes_ksn_counter(aes_next_ksn(ksn(counter))) == counter + 1


@given(initial_key_id=st.binary(min_size=8, max_size=8), counter=valid_counters)
def test_make_ksn_packs_fields_that_ksn_counter_reads_back(
    initial_key_id: bytes, counter: int
) -> None:
    value = aes_make_ksn(initial_key_id, counter)
    assert value[:8] == initial_key_id
    assert aes_ksn_counter(value) == counter


@given(counter=valid_counters)
def test_every_transaction_gets_a_pin_key_apart_from_its_derivation_key(counter: int) -> None:
    derivation_key = aes_intermediate_key(INITIAL_KEY_128, ksn(counter))
    assert derivation_key != INITIAL_KEY_128
    assert aes_pin_key(INITIAL_KEY_128, ksn(counter)) not in (derivation_key, INITIAL_KEY_128)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: aes_initial_key(BDK_128[:8], INITIAL_KEY_ID),
            "bdk: must be a 16-, 24- or 32-byte AES key, got 8 bytes",
        ),
        (
            lambda: aes_initial_key(BDK_128 + b"\x00", INITIAL_KEY_ID),
            "bdk: must be a 16-, 24- or 32-byte AES key, got 17 bytes",
        ),
        (
            lambda: aes_initial_key(BDK_128, INITIAL_KEY_ID + b"\x00\x01"),
            "initial_key_id: must be 8 bytes (BDK id || derivation id), got 10",
        ),
        (
            lambda: aes_make_ksn(INITIAL_KEY_ID[:4], 1),
            "initial_key_id: must be 8 bytes (BDK id || derivation id), got 4",
        ),
        (
            lambda: aes_pin_key(INITIAL_KEY_128[:15], ksn(1)),
            "initial_key: must be a 16-, 24- or 32-byte AES key, got 15 bytes",
        ),
        (
            lambda: aes_pin_key(INITIAL_KEY_128, bytes.fromhex("FFFF9876543210E00001")),
            "ksn: must be 12 bytes, got 10",
        ),
        (lambda: aes_ksn_counter(bytes(13)), "ksn: must be 12 bytes, got 13"),
        (
            lambda: aes_pin_key(INITIAL_KEY_128, ksn(0)),
            "ksn: counter 0 is the initial key's own slot and never a transaction key",
        ),
        (
            lambda: aes_pin_key(INITIAL_KEY_128, ksn(0x1FFFF)),
            "ksn: counter 0x1ffff has 17 one-bits, X9.24-3 allows at most 16",
        ),
        (
            lambda: aes_intermediate_key(INITIAL_KEY_128, ksn(0xFFFFFFFF)),
            "ksn: counter 0xffffffff has 32 one-bits, X9.24-3 allows at most 16",
        ),
        (
            lambda: aes_next_ksn(ksn(0x1FFFF)),
            "ksn: counter 0x1ffff has 17 one-bits, X9.24-3 allows at most 16",
        ),
        (
            lambda: aes_make_ksn(INITIAL_KEY_ID, 1 << 32),
            "counter: must be 0 to 4294967295, got 4294967296",
        ),
        (
            lambda: aes_make_ksn(INITIAL_KEY_ID, 0x1FFFF),
            "counter: 0x1ffff has 17 one-bits, X9.24-3 allows at most 16",
        ),
        (
            lambda: aes_derive_working_key(INITIAL_KEY_128, ksn(1), 0x8000, "AES-128"),
            "key_usage: 0x8000 is not an X9.24-3 working key usage",
        ),
        (
            lambda: aes_derive_working_key(
                INITIAL_KEY_128, ksn(1), KeyUsage.PIN_ENCRYPTION, "3DES"
            ),
            "key_type: must be AES-128, AES-192 or AES-256, got '3DES'",
        ),
        (
            lambda: aes_derive_working_key(
                INITIAL_KEY_128, ksn(1), KeyUsage.PIN_ENCRYPTION, "AES-256"
            ),
            "key_type: AES-256 is stronger than the AES-128 initial key",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()  # type: ignore[operator]
    assert str(excinfo.value) == message
