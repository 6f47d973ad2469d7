"""Asymmetric signatures: RSASSA-PKCS1-v1_5 with SHA-256 (RSA-2048) and Ed25519 (RFC 8032).

A private key travels as PKCS#8 DER, which is what a TR-31 key block holds for an asymmetric key;
a public key as SubjectPublicKeyInfo (SPKI). An asymmetric key has no block to encrypt for a
check value, so its check value is the first 3 bytes of SHA-256 over its SPKI DER, 6 hex digits
upper case: whoever holds the public key can compute it.

Algorithms are named as in the proto enum without its prefix (``RSA_2048``, ``ED25519``).
RFC 8032 section 7.1, test 1 (an Ed25519 private key in PKCS#8 is a fixed prefix and the seed):

>>> key = load(bytes.fromhex("302e020100300506032b657004220420"
...     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), "ED25519")
>>> public_key_der(key).hex()[24:]
'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
>>> sign(key, b"").hex()[:32]
'e5564300c360ac729086e2cc806e828a'
>>> check_value(key)
'06E3FD'
"""

import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

RSA_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate(algorithm: str) -> bytes:
    """A new private key as PKCS#8 DER (an RSA-2048 key takes tens of milliseconds)."""
    key: PrivateKey
    if algorithm == "RSA_2048":
        key = rsa.generate_private_key(RSA_PUBLIC_EXPONENT, RSA_BITS)
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"algorithm: must be RSA_2048 or ED25519, got {algorithm!r}")
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load(der: bytes, algorithm: str) -> PrivateKey:
    """The private key in PKCS#8 ``der``; ValueError (never showing the key) unless it is one
    of ``algorithm``.

    The RSA key's consistency is not checked (64 ms for RSA-2048): the keys loaded are ones
    this HSM generated, authenticated by the MAC of their key block under the LMK.
    """
    try:
        key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"key: not a PKCS#8 private key ({len(der)} bytes)") from None
    if algorithm == "RSA_2048" and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size != RSA_BITS:
            raise ValueError(f"key: RSA_2048 needs a {RSA_BITS}-bit key, got {key.key_size}")
        return key
    if algorithm == "ED25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"key: a {type(key).__name__.removesuffix('PrivateKey')} key is not "
                     f"{algorithm}")


def public_key_der(key: PrivateKey) -> bytes:
    """The key's public half as SubjectPublicKeyInfo DER."""
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_pem(key: PrivateKey) -> str:
    """The key's public half as SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``)."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def check_value(key: PrivateKey) -> str:
    """The first 3 bytes of SHA-256 over the SPKI DER, 6 hex digits upper case."""
    return hashlib.sha256(public_key_der(key)).digest()[:3].hex().upper()


def sign(key: PrivateKey, data: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (256 bytes for RSA-2048), or Ed25519 (64 bytes)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)
