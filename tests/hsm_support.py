"""One way for tests to run a real HSM: a fresh home (SQLite, LMK) and its gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from cardswitch.v1 import hsm_pb2_grpc
from hsm_sim import lmk, server

Scenario = Callable[[Any], Awaitable[None]]


def fresh_hsm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points the HSM at ``tmp_path`` (its SQLite key store and audit log) with a new LMK."""
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    monkeypatch.delenv("CARDSWITCH_LMK_FILE", raising=False)
    monkeypatch.delenv("CARDSWITCH_DATABASE_URL", raising=False)
    lmk.create()
    return tmp_path


@asynccontextmanager
async def running_hsm() -> AsyncIterator[tuple[server.RunningHsm, Any]]:
    """The HSM serving on a free port and a stub connected to it; stopped (audit flushed) after."""
    running = await server.start(0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub_class: Any = hsm_pb2_grpc.HsmServiceStub  # generated, unannotated
            yield running, stub_class(channel)
    finally:
        await running.server.stop(None)
        await running.close()


def scenario_runner() -> Callable[[Scenario], None]:
    """``run(scenario)``: the scenario gets the stub of an HSM started for it alone."""
    def run(scenario: Scenario) -> None:
        async def main() -> None:
            async with running_hsm() as (_running, stub):
                await scenario(stub)
        asyncio.run(main())
    return run


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The gRPC error ``call`` ends in; fails the test if it succeeds."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value
