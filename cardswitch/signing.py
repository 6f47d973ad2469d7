"""Signed HTTP JSON messages: every request, answer and notification carries its sender's
signature, and each side verifies the other's with the sender's public key.

The signature covers a canonical string of five lines::

    METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

``PATH`` is the request target as sent (path and query, percent-encoded). An answer is signed
over its *request's* method and path, so an answer cannot be passed off as one to another
request. The headers are ``Cs-Key-Id`` (the signer's key reference), ``Cs-Timestamp`` (unix
seconds), ``Cs-Nonce`` (128 random bits, hex), ``Cs-Algorithm`` (``rsa-sha256``: RSASSA-PKCS1
v1.5 with SHA-256, or ``ed25519``) and ``Cs-Signature`` (base64).

The switch signs through the HSM (:class:`HsmSigner`: the private key never leaves it);
verifying needs only the public key, so it runs here with ``cryptography``.

>>> import asyncio
>>> signer = LocalSigner.generate(ED25519, "demo")
>>> headers = asyncio.run(sign_request(signer, "POST", "/v1/echo", b"{}", now=1_700_000_000))
>>> verify(headers, "POST", "/v1/echo", b"{}", signer.public_key_pem(), now=1_700_000_010,
...        nonces=NonceCache())
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from cardswitch.v1 import hsm_pb2

KEY_ID = "Cs-Key-Id"
TIMESTAMP = "Cs-Timestamp"
NONCE = "Cs-Nonce"
ALGORITHM = "Cs-Algorithm"
SIGNATURE = "Cs-Signature"
HEADERS = (KEY_ID, TIMESTAMP, NONCE, ALGORITHM, SIGNATURE)

RSA_SHA256 = "rsa-sha256"
ED25519 = "ed25519"
ALGORITHMS = (RSA_SHA256, ED25519)

#: The HSM's key pair algorithms and the signature algorithm each makes.
HSM_ALGORITHMS = {hsm_pb2.KEY_ALGORITHM_RSA_2048: RSA_SHA256,
                  hsm_pb2.KEY_ALGORITHM_ED25519: ED25519}

DEFAULT_MAX_SKEW_S = 300

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class SignatureError(Exception):
    """A message is not believed; the text names what failed, never key material."""


class SigningFailed(Exception):
    """The signer could not sign (e.g. the HSM is down): the message was not sent."""


class Signer(Protocol):
    """Signs canonical strings with one private key, named ``key_id``."""

    key_id: str
    algorithm: str

    async def sign(self, data: bytes) -> bytes: ...


class HsmSigner:
    """A key pair held in the HSM (``HsmService.SignData``); ``hsm`` is an HsmService stub."""

    def __init__(self, hsm: Any, key_ref: str, algorithm: str, *,
                 timeout_s: float = 2.0) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: must be one of {', '.join(ALGORITHMS)}, "
                             f"got {algorithm!r}")
        self.key_id = key_ref
        self.algorithm = algorithm
        self._hsm = hsm
        self._timeout = timeout_s

    @classmethod
    async def from_hsm(cls, hsm: Any, key_ref: str, *,
                       timeout_s: float = 2.0) -> tuple[HsmSigner, str]:
        """The signer for the HSM's key pair ``key_ref`` and its public key (PEM)."""
        try:
            answer = await hsm.GetPublicKey(hsm_pb2.GetPublicKeyRequest(key_ref=key_ref),
                                            timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise SigningFailed(f"HSM GetPublicKey {key_ref}: {exc.code().name}") from exc
        algorithm = HSM_ALGORITHMS.get(answer.key.algorithm)
        if algorithm is None:
            raise SigningFailed(f"HSM key {key_ref} is not an RSA-2048 or Ed25519 key pair")
        return cls(hsm, key_ref, algorithm, timeout_s=timeout_s), str(answer.public_key_pem)

    async def sign(self, data: bytes) -> bytes:
        try:
            answer = await self._hsm.SignData(
                hsm_pb2.SignDataRequest(key_ref=self.key_id, data=data), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise SigningFailed(f"HSM SignData with {self.key_id}: {exc.code().name}") from exc
        return bytes(answer.signature)


class LocalSigner:
    """A private key in this process: for tests, and a simulator's throwaway keys."""

    def __init__(self, private_key: PrivateKey, key_id: str) -> None:
        self.key_id = key_id
        self.algorithm = RSA_SHA256 if isinstance(private_key, rsa.RSAPrivateKey) else ED25519
        self._key = private_key

    @classmethod
    def generate(cls, algorithm: str, key_id: str) -> LocalSigner:
        if algorithm == RSA_SHA256:
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), key_id)
        if algorithm == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate(), key_id)
        raise ValueError(f"algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")

    def public_key_pem(self) -> str:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    async def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self._key.sign(data)


class NonceCache:
    """Nonces of verified messages, kept while a message carrying them could still pass the
    timestamp check, so a captured message cannot be sent again."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def remember(self, nonce: str, expires_at: float, now: float) -> bool:
        """Records ``nonce``; False if it was already recorded (a replay)."""
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry >= now and len(self._expiry) < self._max:
                break
            del self._expiry[oldest]
        if nonce in self._expiry:
            return False
        self._expiry[nonce] = expires_at
        return True

    def __len__(self) -> int:
        return len(self._expiry)


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The signed string.

    >>> lines = canonical("post", "/v1/echo", "1700000000", "00" * 16, b"").decode().split("\\n")
    >>> lines[:3], lines[4][:16]
    (['POST', '/v1/echo', '1700000000'], 'e3b0c44298fc1c14')
    """
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{digest}".encode()


async def sign_request(signer: Signer, method: str, path: str, body: bytes, *,
                       now: float | None = None) -> dict[str, str]:
    """The five signature headers for a message (a request, an answer or a notification)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    signature = await signer.sign(canonical(method, path, timestamp, nonce, body))
    return {KEY_ID: signer.key_id, TIMESTAMP: timestamp, NONCE: nonce,
            ALGORITHM: signer.algorithm, SIGNATURE: base64.b64encode(signature).decode()}


def verify(headers: Mapping[str, str], method: str, path: str, body: bytes,
           public_key_pem: str, *, now: float, nonces: NonceCache,
           max_skew_s: int = DEFAULT_MAX_SKEW_S) -> None:
    """Raises :class:`SignatureError` unless the message is signed by ``public_key_pem``'s key,
    within ``max_skew_s`` of ``now``, with a nonce not seen before. Header names are matched
    without regard to case."""
    found = {name.lower(): value for name, value in headers.items()}
    missing = [h for h in HEADERS if not found.get(h.lower())]
    if missing:
        raise SignatureError(f"missing header{'s' if len(missing) > 1 else ''} "
                             + ", ".join(missing))
    timestamp, nonce = found[TIMESTAMP.lower()], found[NONCE.lower()]
    algorithm = found[ALGORITHM.lower()]
    if algorithm not in ALGORITHMS:
        raise SignatureError(f"unsupported algorithm {algorithm[:20]!r} "
                             f"(one of {', '.join(ALGORITHMS)})")
    key = _public_key(public_key_pem)
    expected = RSA_SHA256 if isinstance(key, rsa.RSAPublicKey) else ED25519
    if algorithm != expected:
        raise SignatureError(f"algorithm mismatch: message says {algorithm}, "
                             f"the sender's key is {expected}")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP}: not unix seconds")
    skew = int(now) - int(timestamp)
    if abs(skew) > max_skew_s:
        direction = "old" if skew > 0 else "in the future"
        raise SignatureError(f"stale timestamp: {abs(skew)} s {direction}, "
                             f"more than {max_skew_s} s allowed")
    if len(nonce) != 32 or not all(c in "0123456789abcdef" for c in nonce):
        raise SignatureError(f"{NONCE}: not 32 lowercase hex digits")
    try:
        signature = base64.b64decode(found[SIGNATURE.lower()], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE}: not base64") from None
    data = canonical(method, path, timestamp, nonce, body)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None
    if not nonces.remember(nonce, int(timestamp) + max_skew_s, now):
        raise SignatureError("replayed nonce")


@lru_cache(maxsize=64)
def _public_key(pem: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise SignatureError("sender's public key: not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise SignatureError("sender's public key: neither RSA nor Ed25519")
    return key
