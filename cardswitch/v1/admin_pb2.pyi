import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_STATE_UNSPECIFIED: _ClassVar[LinkState]
    LINK_STATE_CONNECTING: _ClassVar[LinkState]
    LINK_STATE_UP: _ClassVar[LinkState]
    LINK_STATE_DOWN: _ClassVar[LinkState]
LINK_STATE_UNSPECIFIED: LinkState
LINK_STATE_CONNECTING: LinkState
LINK_STATE_UP: LinkState
LINK_STATE_DOWN: LinkState

class Terminal(_message.Message):
    __slots__ = ("terminal_id", "merchant_id", "mcc", "name_location", "currency", "bdk_key_ref", "initial_ksn", "created_at")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    NAME_LOCATION_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BDK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    INITIAL_KSN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    merchant_id: str
    mcc: str
    name_location: str
    currency: str
    bdk_key_ref: str
    initial_ksn: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., mcc: _Optional[str] = ..., name_location: _Optional[str] = ..., currency: _Optional[str] = ..., bdk_key_ref: _Optional[str] = ..., initial_ksn: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTerminalRequest(_message.Message):
    __slots__ = ("terminal",)
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    terminal: Terminal
    def __init__(self, terminal: _Optional[_Union[Terminal, _Mapping]] = ...) -> None: ...

class GetTerminalRequest(_message.Message):
    __slots__ = ("terminal_id",)
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    def __init__(self, terminal_id: _Optional[str] = ...) -> None: ...

class ListTerminalsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTerminalsResponse(_message.Message):
    __slots__ = ("terminals",)
    TERMINALS_FIELD_NUMBER: _ClassVar[int]
    terminals: _containers.RepeatedCompositeFieldContainer[Terminal]
    def __init__(self, terminals: _Optional[_Iterable[_Union[Terminal, _Mapping]]] = ...) -> None: ...

class ProvisionTerminalKeyRequest(_message.Message):
    __slots__ = ("terminal_id", "device_public_key_pem")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    device_public_key_pem: bytes
    def __init__(self, terminal_id: _Optional[str] = ..., device_public_key_pem: _Optional[bytes] = ...) -> None: ...

class ProvisionTerminalKeyResponse(_message.Message):
    __slots__ = ("initial_ksn", "encrypted_initial_key", "kcv")
    INITIAL_KSN_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_INITIAL_KEY_FIELD_NUMBER: _ClassVar[int]
    KCV_FIELD_NUMBER: _ClassVar[int]
    initial_ksn: bytes
    encrypted_initial_key: bytes
    kcv: str
    def __init__(self, initial_ksn: _Optional[bytes] = ..., encrypted_initial_key: _Optional[bytes] = ..., kcv: _Optional[str] = ...) -> None: ...

class IssuerLink(_message.Message):
    __slots__ = ("name", "host", "port", "zpk_key_ref", "timeout_ms", "acquirer_id", "state", "in_flight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    zpk_key_ref: str
    timeout_ms: int
    acquirer_id: str
    state: LinkState
    in_flight: int
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., zpk_key_ref: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., acquirer_id: _Optional[str] = ..., state: _Optional[_Union[LinkState, str]] = ..., in_flight: _Optional[int] = ...) -> None: ...

class CreateIssuerLinkRequest(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: IssuerLink
    def __init__(self, link: _Optional[_Union[IssuerLink, _Mapping]] = ...) -> None: ...

class ListIssuerLinksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIssuerLinksResponse(_message.Message):
    __slots__ = ("links",)
    LINKS_FIELD_NUMBER: _ClassVar[int]
    links: _containers.RepeatedCompositeFieldContainer[IssuerLink]
    def __init__(self, links: _Optional[_Iterable[_Union[IssuerLink, _Mapping]]] = ...) -> None: ...

class BinRoute(_message.Message):
    __slots__ = ("route_id", "bin_prefix", "issuer_link", "brand")
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    BIN_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ISSUER_LINK_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    bin_prefix: str
    issuer_link: str
    brand: str
    def __init__(self, route_id: _Optional[str] = ..., bin_prefix: _Optional[str] = ..., issuer_link: _Optional[str] = ..., brand: _Optional[str] = ...) -> None: ...

class CreateBinRouteRequest(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: BinRoute
    def __init__(self, route: _Optional[_Union[BinRoute, _Mapping]] = ...) -> None: ...

class DeleteBinRouteRequest(_message.Message):
    __slots__ = ("route_id",)
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    def __init__(self, route_id: _Optional[str] = ...) -> None: ...

class DeleteBinRouteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBinRoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBinRoutesResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[BinRoute]
    def __init__(self, routes: _Optional[_Iterable[_Union[BinRoute, _Mapping]]] = ...) -> None: ...
