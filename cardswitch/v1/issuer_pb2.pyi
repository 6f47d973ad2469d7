from cardswitch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_KIND_UNSPECIFIED: _ClassVar[FaultKind]
    FAULT_KIND_DELAY: _ClassVar[FaultKind]
    FAULT_KIND_NO_RESPONSE: _ClassVar[FaultKind]
    FAULT_KIND_GARBAGE: _ClassVar[FaultKind]
    FAULT_KIND_TRUNCATED: _ClassVar[FaultKind]
    FAULT_KIND_DISCONNECT: _ClassVar[FaultKind]
    FAULT_KIND_DUPLICATE_ANSWER: _ClassVar[FaultKind]
FAULT_KIND_UNSPECIFIED: FaultKind
FAULT_KIND_DELAY: FaultKind
FAULT_KIND_NO_RESPONSE: FaultKind
FAULT_KIND_GARBAGE: FaultKind
FAULT_KIND_TRUNCATED: FaultKind
FAULT_KIND_DISCONNECT: FaultKind
FAULT_KIND_DUPLICATE_ANSWER: FaultKind

class Fault(_message.Message):
    __slots__ = ("kind", "latency_ms", "match_amount_minor", "mtis", "count")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MATCH_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MTIS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: FaultKind
    latency_ms: int
    match_amount_minor: int
    mtis: _containers.RepeatedScalarFieldContainer[str]
    count: int
    def __init__(self, kind: _Optional[_Union[FaultKind, str]] = ..., latency_ms: _Optional[int] = ..., match_amount_minor: _Optional[int] = ..., mtis: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ...) -> None: ...

class SetFaultsRequest(_message.Message):
    __slots__ = ("faults", "base_latency_ms")
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    BASE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    base_latency_ms: int
    def __init__(self, faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ..., base_latency_ms: _Optional[int] = ...) -> None: ...

class SetFaultsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("account_id", "last_four", "status", "balances", "holds", "pin_tries", "expiry_yymm")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    PIN_TRIES_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_YYMM_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    last_four: str
    status: str
    balances: _containers.RepeatedCompositeFieldContainer[_common_pb2.Balance]
    holds: _common_pb2.Money
    pin_tries: int
    expiry_yymm: str
    def __init__(self, account_id: _Optional[str] = ..., last_four: _Optional[str] = ..., status: _Optional[str] = ..., balances: _Optional[_Iterable[_Union[_common_pb2.Balance, _Mapping]]] = ..., holds: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., pin_tries: _Optional[int] = ..., expiry_yymm: _Optional[str] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IssuerStats(_message.Message):
    __slots__ = ("received", "sent")
    class ReceivedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class SentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    received: _containers.ScalarMap[str, int]
    sent: _containers.ScalarMap[str, int]
    def __init__(self, received: _Optional[_Mapping[str, int]] = ..., sent: _Optional[_Mapping[str, int]] = ...) -> None: ...
