"""Signed HTTP JSON messages: what verifies, and the exact reason for each that does not."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from cardswitch import signing
from cardswitch.signing import ED25519, RSA_SHA256, LocalSigner, NonceCache, SignatureError

NOW = 1_700_000_000
BODY = b'{"out_trade_no":"T1","amount_minor":1250,"currency":"USD"}'
PATH = "/v1/payments"

# RFC 8032 section 7.1, test 1: an Ed25519 key and its signature of the empty message.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46"
    "bd25bf5f0595bbe24655141438e7a100b")


@pytest.fixture(scope="module")
def rsa_signer() -> LocalSigner:
    return LocalSigner.generate(RSA_SHA256, "switch-rsa")


@pytest.fixture(scope="module")
def ed_signer() -> LocalSigner:
    return LocalSigner.generate(ED25519, "switch-ed")


def signed(signer: LocalSigner, method: str = "POST", path: str = PATH,
           body: bytes = BODY) -> dict[str, str]:
    return asyncio.run(signing.sign_request(signer, method, path, body, now=NOW))


def failure(headers: dict[str, str], pem: str, *, method: str = "POST", path: str = PATH,
            body: bytes = BODY, now: float = NOW, nonces: NonceCache | None = None) -> str:
    with pytest.raises(SignatureError) as caught:
        signing.verify(headers, method, path, body, pem, now=now, nonces=nonces or NonceCache())
    return str(caught.value)


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ed_signer"])
def test_a_signed_request_verifies_under_the_senders_public_key(
        signer_name: str, request: pytest.FixtureRequest) -> None:
    signer: LocalSigner = request.getfixturevalue(signer_name)
    headers = signed(signer)
    assert sorted(headers) == sorted(signing.HEADERS)
    assert headers["Cs-Key-Id"] == signer.key_id
    assert headers["Cs-Algorithm"] == signer.algorithm
    assert headers["Cs-Timestamp"] == str(NOW)
    assert len(headers["Cs-Nonce"]) == 32
    signing.verify(headers, "POST", PATH, BODY, signer.public_key_pem(), now=NOW + 299,
                   nonces=NonceCache())


def test_header_names_match_whatever_their_case(ed_signer: LocalSigner) -> None:
    headers = {name.lower(): value for name, value in signed(ed_signer).items()}
    signing.verify(headers, "POST", PATH, BODY, ed_signer.public_key_pem(), now=NOW,
                   nonces=NonceCache())


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ed_signer"])
@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", PATH, BODY.replace(b"1250", b"9250")),
    ("POST", "/v1/refunds", BODY),
    ("PUT", PATH, BODY),
])
def test_a_changed_body_path_or_method_does_not_verify(
        signer_name: str, method: str, path: str, body: bytes,
        request: pytest.FixtureRequest) -> None:
    signer: LocalSigner = request.getfixturevalue(signer_name)
    assert failure(signed(signer), signer.public_key_pem(), method=method, path=path,
                   body=body) == "signature does not verify"


def test_a_changed_timestamp_does_not_verify(ed_signer: LocalSigner) -> None:
    headers = signed(ed_signer)
    headers["Cs-Timestamp"] = str(NOW + 1)
    assert failure(headers, ed_signer.public_key_pem()) == "signature does not verify"


def test_a_signature_by_another_key_does_not_verify(rsa_signer: LocalSigner) -> None:
    other = LocalSigner.generate(RSA_SHA256, rsa_signer.key_id)
    assert failure(signed(other), rsa_signer.public_key_pem()) == "signature does not verify"


def test_a_timestamp_more_than_five_minutes_off_is_stale(ed_signer: LocalSigner) -> None:
    pem = ed_signer.public_key_pem()
    assert (failure(signed(ed_signer), pem, now=NOW + 301)
            == "stale timestamp: 301 s old, more than 300 s allowed")
    assert (failure(signed(ed_signer), pem, now=NOW - 400)
            == "stale timestamp: 400 s in the future, more than 300 s allowed")


def test_a_message_sent_twice_is_a_replay(rsa_signer: LocalSigner) -> None:
    nonces, headers, pem = NonceCache(), signed(rsa_signer), rsa_signer.public_key_pem()
    signing.verify(headers, "POST", PATH, BODY, pem, now=NOW, nonces=nonces)
    assert failure(headers, pem, now=NOW + 5, nonces=nonces) == "replayed nonce"


def test_a_forgery_does_not_use_up_the_nonce_it_copied(ed_signer: LocalSigner) -> None:
    nonces, headers, pem = NonceCache(), signed(ed_signer), ed_signer.public_key_pem()
    assert failure(headers, pem, body=b"{}", nonces=nonces) == "signature does not verify"
    signing.verify(headers, "POST", PATH, BODY, pem, now=NOW, nonces=nonces)
    assert len(nonces) == 1


def test_nonces_are_forgotten_once_their_message_would_be_stale(ed_signer: LocalSigner) -> None:
    nonces = NonceCache()
    assert nonces.remember("a" * 32, expires_at=NOW + 300, now=NOW)
    assert not nonces.remember("a" * 32, expires_at=NOW + 300, now=NOW + 300)
    assert nonces.remember("b" * 32, expires_at=NOW + 700, now=NOW + 301)
    assert len(nonces) == 1


def test_missing_headers_are_named(ed_signer: LocalSigner) -> None:
    headers = signed(ed_signer)
    del headers["Cs-Nonce"]
    assert failure(headers, ed_signer.public_key_pem()) == "missing header Cs-Nonce"
    del headers["Cs-Timestamp"], headers["Cs-Signature"]
    assert (failure(headers, ed_signer.public_key_pem())
            == "missing headers Cs-Timestamp, Cs-Nonce, Cs-Signature")


def test_an_algorithm_other_than_the_senders_key_is_a_mismatch(
        rsa_signer: LocalSigner, ed_signer: LocalSigner) -> None:
    assert (failure(signed(rsa_signer), ed_signer.public_key_pem())
            == "algorithm mismatch: message says rsa-sha256, the sender's key is ed25519")
    headers = signed(ed_signer) | {"Cs-Algorithm": "hmac-sha256"}
    assert (failure(headers, ed_signer.public_key_pem())
            == "unsupported algorithm 'hmac-sha256' (one of rsa-sha256, ed25519)")


def test_malformed_headers_are_named(ed_signer: LocalSigner) -> None:
    pem = ed_signer.public_key_pem()
    assert failure(signed(ed_signer) | {"Cs-Timestamp": "yesterday"}, pem) == (
        "Cs-Timestamp: not unix seconds")
    assert failure(signed(ed_signer) | {"Cs-Nonce": "NONCE"}, pem) == (
        "Cs-Nonce: not 32 lowercase hex digits")
    assert failure(signed(ed_signer) | {"Cs-Signature": "%%%"}, pem) == (
        "Cs-Signature: not base64")


def test_errors_show_no_key_material(rsa_signer: LocalSigner) -> None:
    pem = rsa_signer.public_key_pem()
    broken = pem.replace("MII", "XXX")
    message = failure(signed(rsa_signer), broken)
    assert message == "sender's public key: not a PEM public key"
    assert all(line not in message for line in pem.splitlines()[1:-1])


def test_rsa_signature_is_pkcs1_v15_sha256_over_the_canonical_string() -> None:
    """Oracle: the same key used directly through ``cryptography`` (PKCS#1 v1.5 is
    deterministic), over the canonical string built here by hand."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = signed(LocalSigner(key, "k1"))
    canonical = (f"POST\n{PATH}\n{NOW}\n{headers['Cs-Nonce']}\n"
                 f"{hashlib.sha256(BODY).hexdigest()}").encode()
    expected = key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    assert base64.b64decode(headers["Cs-Signature"]) == expected
    key.public_key().verify(expected, canonical, padding.PKCS1v15(), hashes.SHA256())


def test_ed25519_signature_is_over_the_canonical_string() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    headers = signed(LocalSigner(key, "k2"), "GET", "/v1/payments/T1?merchant_account=M", b"")
    canonical = (f"GET\n/v1/payments/T1?merchant_account=M\n{NOW}\n{headers['Cs-Nonce']}\n"
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").encode()
    signature = base64.b64decode(headers["Cs-Signature"])
    assert signature == key.sign(canonical)
    key.public_key().verify(signature, canonical)


def test_local_ed25519_signer_matches_rfc8032_test_1() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    signer = LocalSigner(key, "rfc8032")
    assert asyncio.run(signer.sign(b"")) == RFC8032_SIGNATURE
    public = serialization.load_pem_public_key(signer.public_key_pem().encode())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
