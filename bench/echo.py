"""A bare gRPC echo service of the same flavour as the switch (grpc.aio, mTLS, the same
interceptor, health and reflection): the baseline the Authorize path is measured against."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc

from cardswitch import certs, grpcserver

METHOD = "/cardswitch.bench.Echo/Echo"


class _Echo:
    """Stands in for a generated servicer: one unary method that returns its request bytes."""


def _add(servicer: _Echo, server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request
    handler = grpc.method_handlers_generic_handler(
        "cardswitch.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))


async def serve(port: int, certs_dir: Path | None, insecure: bool) -> None:
    creds = None if insecure else certs.server_credentials(certs_dir)
    server, bound = await grpcserver.start(
        [grpcserver.Service(_add, _Echo(), "cardswitch.bench.Echo")], port=port,
        credentials=creds)
    print(f"ECHO ready on 127.0.0.1:{bound}", flush=True)
    await grpcserver.wait_for_termination(server)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--certs")
    p.add_argument("--insecure", action="store_true")
    a = p.parse_args()
    asyncio.run(serve(a.port, Path(a.certs) if a.certs else None, a.insecure))


if __name__ == "__main__":
    main()
