"""Small helpers the end-to-end tests share."""

from __future__ import annotations

import time
from typing import Any

from cardswitch.v1 import acquiring_pb2


def wait_reversal_acknowledged(stub: Any, request: acquiring_pb2.GetTransactionRequest,
                               timeout_s: float = 30.0) -> acquiring_pb2.Transaction:
    """Polls GetTransaction until the automatic reversal is acknowledged (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    txn = stub.GetTransaction(request, timeout=5)
    while not txn.reversal_acknowledged and time.monotonic() < deadline:
        time.sleep(0.2)
        txn = stub.GetTransaction(request, timeout=5)
    return txn
