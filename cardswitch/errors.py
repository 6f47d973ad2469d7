"""gRPC errors with ``google.rpc`` details: bad input names each field and its problem.

Business declines are never errors (they are a ``Result`` with a response code); these are for
the call itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class FieldViolations(Exception):
    """Raised by validation with every (field, description) pair found wrong."""

    def __init__(self, violations: Iterable[tuple[str, str]]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{f}: {d}" for f, d in self.violations))


class Conflict(Exception):
    """A state conflict (FAILED_PRECONDITION), e.g. capturing a declined authorization."""


class NotFound(Exception):
    pass


class AlreadyExists(Exception):
    pass


def bad_request_status(violations: list[tuple[str, str]]) -> grpc.Status:
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(detail)
    message = "invalid request: " + "; ".join(f"{f}: {d}" for f, d in violations)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=message, details=[packed]
    )
    return rpc_status.to_status(status)


def field_violations_of(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The BadRequest field violations carried by a client-side error (for clients and tests)."""
    status = rpc_status.from_call(error)
    out: list[tuple[str, str]] = []
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.extend((v.field, v.description) for v in br.field_violations)
    return out


async def abort_for(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """Turns one of this module's exceptions into the matching gRPC status, or re-raises."""
    if isinstance(exc, FieldViolations):
        await context.abort_with_status(bad_request_status(exc.violations))
    if isinstance(exc, Conflict):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, NotFound):
        await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    raise exc
