"""The one way a service process serves gRPC: asyncio server, health, reflection, metrics.

Every service calls :func:`start` with its servicers; it gets gRPC health (each service name and
the overall ``""`` set to SERVING), server reflection, a Prometheus endpoint, and an interceptor
that turns :mod:`cardswitch.errors` exceptions into statuses with details and times every call.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram, start_http_server

from cardswitch import errors

log = logging.getLogger(__name__)

RPC_SECONDS = Histogram(
    "cardswitch_grpc_server_seconds", "gRPC server handling time", ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_TOTAL = Counter("cardswitch_grpc_server_total", "gRPC calls handled", ["method", "outcome"])


@dataclass(frozen=True)
class Service:
    """A servicer with its generated ``add_..._to_server`` function and full service name."""

    add: Callable[[Any, Any], None]
    servicer: Any
    name: str


class _Interceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        hist = RPC_SECONDS.labels(method)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            outcome = "ok"
            try:
                return await inner(request, context)
            except (errors.FieldViolations, errors.Conflict, errors.NotFound,
                    errors.AlreadyExists) as exc:
                outcome = type(exc).__name__
                await errors.abort_for(context, exc)
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            except Exception as exc:
                if context.code() is not None:  # an abort already chose the status
                    outcome = "aborted"
                    raise
                outcome = "internal"
                log.exception("%s failed", method)
                await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error "
                                    f"({type(exc).__name__}); see the service log")
            finally:
                hist.observe(time.perf_counter() - start)
                RPC_TOTAL.labels(method, outcome).inc()

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def start(
    services: Sequence[Service],
    *,
    host: str = "127.0.0.1",
    port: int,
    metrics_port: int = 0,
    credentials: grpc.ServerCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[grpc.aio.Server, int]:
    """Starts the server; returns it and the bound port (``port=0`` picks a free one)."""
    server = grpc.aio.server(
        interceptors=[_Interceptor()],
        options=[("grpc.so_reuseport", 1), *options],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for svc in services:
        svc.add(svc.servicer, server)
    names = [svc.name for svc in services]
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME],
        server,
    )
    address = f"{host}:{port}"
    bound = (server.add_secure_port(address, credentials) if credentials
             else server.add_insecure_port(address))
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if metrics_port:
        start_http_server(metrics_port, addr=host)
    log.info("serving %s on %s:%d (metrics :%d)", ", ".join(names), host, bound, metrics_port)
    return server, bound


async def wait_for_termination(
    server: grpc.aio.Server, on_stop: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Runs until SIGTERM/SIGINT, then drains in-flight calls for up to 5 s and stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await server.stop(5)
    if on_stop is not None:
        await on_stop()
