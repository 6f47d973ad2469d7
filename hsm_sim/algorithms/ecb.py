"""Reusable ECB cipher contexts, kept per thread: the one cache :mod:`tdes` and :mod:`aes` share.

Setting up a cipher context costs about ten times one block's encryption, and DUKPT, CVV, PIN
blocks and key derivation run many single blocks under few keys. An ECB context carries no
state between blocks and is never finalized here, so each thread keeps its most recent ones.
"""

import threading
import warnings
from collections import OrderedDict
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography < 43 keeps TripleDES beside AES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

CipherName = Literal["TDES", "AES"]
CONTEXTS_PER_THREAD = 1024

#: Per thread: (cipher, key, encrypt?) -> ECB context, most recently used last.
_contexts = threading.local()


def context(cipher: CipherName, key: bytes, encrypt: bool) -> Any:
    """An ECB encryptor (``encrypt``) or decryptor for ``key``; call only its ``update``.

    TDES keys must already be 24 bytes (K1||K2||K3); the caller checks key lengths.
    """
    cache: OrderedDict[tuple[str, bytes, bool], Any] | None = getattr(_contexts, "cache", None)
    if cache is None:
        cache = _contexts.cache = OrderedDict()
    slot = (cipher, key, encrypt)
    found = cache.get(slot)
    if found is not None:
        cache.move_to_end(slot)
        return found
    algorithm = TripleDES(key) if cipher == "TDES" else algorithms.AES(key)
    # ECB is the point: payment cryptography is specified block by block.
    made = Cipher(algorithm, modes.ECB())  # noqa: S305
    found = made.encryptor() if encrypt else made.decryptor()
    cache[slot] = found
    if len(cache) > CONTEXTS_PER_THREAD:
        cache.popitem(last=False)
    return found
