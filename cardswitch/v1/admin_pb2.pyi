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

class ChannelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_KIND_UNSPECIFIED: _ClassVar[ChannelKind]
    CHANNEL_KIND_ISO8583: _ClassVar[ChannelKind]
    CHANNEL_KIND_WALLET: _ClassVar[ChannelKind]

class NumericEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NUMERIC_ENCODING_UNSPECIFIED: _ClassVar[NumericEncoding]
    NUMERIC_ENCODING_ASCII: _ClassVar[NumericEncoding]
    NUMERIC_ENCODING_BCD: _ClassVar[NumericEncoding]

class BitmapEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BITMAP_ENCODING_UNSPECIFIED: _ClassVar[BitmapEncoding]
    BITMAP_ENCODING_BINARY: _ClassVar[BitmapEncoding]
    BITMAP_ENCODING_HEX: _ClassVar[BitmapEncoding]

class CharacterSet(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHARACTER_SET_UNSPECIFIED: _ClassVar[CharacterSet]
    CHARACTER_SET_ASCII: _ClassVar[CharacterSet]
    CHARACTER_SET_EBCDIC: _ClassVar[CharacterSet]

class LengthHeader(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LENGTH_HEADER_UNSPECIFIED: _ClassVar[LengthHeader]
    LENGTH_HEADER_BINARY_2: _ClassVar[LengthHeader]
    LENGTH_HEADER_ASCII_4: _ClassVar[LengthHeader]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]

class SignatureAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_ALGORITHM_UNSPECIFIED: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_RSA_SHA256: _ClassVar[SignatureAlgorithm]
    SIGNATURE_ALGORITHM_ED25519: _ClassVar[SignatureAlgorithm]

class LinkAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_ACTION_UNSPECIFIED: _ClassVar[LinkAction]
    LINK_ACTION_SIGN_ON: _ClassVar[LinkAction]
    LINK_ACTION_SIGN_OFF: _ClassVar[LinkAction]
    LINK_ACTION_ECHO: _ClassVar[LinkAction]
    LINK_ACTION_EXCHANGE_KEY: _ClassVar[LinkAction]
    LINK_ACTION_RESET_BREAKER: _ClassVar[LinkAction]
LINK_STATE_UNSPECIFIED: LinkState
LINK_STATE_CONNECTING: LinkState
LINK_STATE_UP: LinkState
LINK_STATE_DOWN: LinkState
CHANNEL_KIND_UNSPECIFIED: ChannelKind
CHANNEL_KIND_ISO8583: ChannelKind
CHANNEL_KIND_WALLET: ChannelKind
NUMERIC_ENCODING_UNSPECIFIED: NumericEncoding
NUMERIC_ENCODING_ASCII: NumericEncoding
NUMERIC_ENCODING_BCD: NumericEncoding
BITMAP_ENCODING_UNSPECIFIED: BitmapEncoding
BITMAP_ENCODING_BINARY: BitmapEncoding
BITMAP_ENCODING_HEX: BitmapEncoding
CHARACTER_SET_UNSPECIFIED: CharacterSet
CHARACTER_SET_ASCII: CharacterSet
CHARACTER_SET_EBCDIC: CharacterSet
LENGTH_HEADER_UNSPECIFIED: LengthHeader
LENGTH_HEADER_BINARY_2: LengthHeader
LENGTH_HEADER_ASCII_4: LengthHeader
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState
SIGNATURE_ALGORITHM_UNSPECIFIED: SignatureAlgorithm
SIGNATURE_ALGORITHM_RSA_SHA256: SignatureAlgorithm
SIGNATURE_ALGORITHM_ED25519: SignatureAlgorithm
LINK_ACTION_UNSPECIFIED: LinkAction
LINK_ACTION_SIGN_ON: LinkAction
LINK_ACTION_SIGN_OFF: LinkAction
LINK_ACTION_ECHO: LinkAction
LINK_ACTION_EXCHANGE_KEY: LinkAction
LINK_ACTION_RESET_BREAKER: LinkAction

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

class Iso8583Dialect(_message.Message):
    __slots__ = ("numeric_encoding", "bitmap_encoding", "character_set", "length_header", "tpdu")
    NUMERIC_ENCODING_FIELD_NUMBER: _ClassVar[int]
    BITMAP_ENCODING_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_SET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_HEADER_FIELD_NUMBER: _ClassVar[int]
    TPDU_FIELD_NUMBER: _ClassVar[int]
    numeric_encoding: NumericEncoding
    bitmap_encoding: BitmapEncoding
    character_set: CharacterSet
    length_header: LengthHeader
    tpdu: str
    def __init__(self, numeric_encoding: _Optional[_Union[NumericEncoding, str]] = ..., bitmap_encoding: _Optional[_Union[BitmapEncoding, str]] = ..., character_set: _Optional[_Union[CharacterSet, str]] = ..., length_header: _Optional[_Union[LengthHeader, str]] = ..., tpdu: _Optional[str] = ...) -> None: ...

class StandInRules(_message.Message):
    __slots__ = ("enabled", "currency", "max_amount_minor", "max_daily_amount_per_card_minor", "max_daily_count_per_card", "entry_modes", "excluded_mccs")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_DAILY_AMOUNT_PER_CARD_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_DAILY_COUNT_PER_CARD_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_MCCS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    currency: str
    max_amount_minor: int
    max_daily_amount_per_card_minor: int
    max_daily_count_per_card: int
    entry_modes: _containers.RepeatedScalarFieldContainer[str]
    excluded_mccs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enabled: _Optional[bool] = ..., currency: _Optional[str] = ..., max_amount_minor: _Optional[int] = ..., max_daily_amount_per_card_minor: _Optional[int] = ..., max_daily_count_per_card: _Optional[int] = ..., entry_modes: _Optional[_Iterable[str]] = ..., excluded_mccs: _Optional[_Iterable[str]] = ...) -> None: ...

class CircuitBreaker(_message.Message):
    __slots__ = ("failure_threshold", "open_ms", "state", "consecutive_failures")
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPEN_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    failure_threshold: int
    open_ms: int
    state: BreakerState
    consecutive_failures: int
    def __init__(self, failure_threshold: _Optional[int] = ..., open_ms: _Optional[int] = ..., state: _Optional[_Union[BreakerState, str]] = ..., consecutive_failures: _Optional[int] = ...) -> None: ...

class WalletEndpoint(_message.Message):
    __slots__ = ("base_url", "algorithm", "signing_key_ref", "provider_public_key_pem", "merchant_account", "ca_certificate_pem")
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    algorithm: SignatureAlgorithm
    signing_key_ref: str
    provider_public_key_pem: str
    merchant_account: str
    ca_certificate_pem: str
    def __init__(self, base_url: _Optional[str] = ..., algorithm: _Optional[_Union[SignatureAlgorithm, str]] = ..., signing_key_ref: _Optional[str] = ..., provider_public_key_pem: _Optional[str] = ..., merchant_account: _Optional[str] = ..., ca_certificate_pem: _Optional[str] = ...) -> None: ...

class IssuerLink(_message.Message):
    __slots__ = ("name", "host", "port", "zpk_key_ref", "timeout_ms", "acquirer_id", "state", "in_flight", "kind", "dialect", "zmk_key_ref", "stand_in", "breaker", "wallet", "signed_on", "zpk_kcv", "key_exchanged_at", "store_and_forward_pending")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ACQUIRER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    ZMK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    STAND_IN_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    SIGNED_ON_FIELD_NUMBER: _ClassVar[int]
    ZPK_KCV_FIELD_NUMBER: _ClassVar[int]
    KEY_EXCHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_AND_FORWARD_PENDING_FIELD_NUMBER: _ClassVar[int]
    name: str
    host: str
    port: int
    zpk_key_ref: str
    timeout_ms: int
    acquirer_id: str
    state: LinkState
    in_flight: int
    kind: ChannelKind
    dialect: Iso8583Dialect
    zmk_key_ref: str
    stand_in: StandInRules
    breaker: CircuitBreaker
    wallet: WalletEndpoint
    signed_on: bool
    zpk_kcv: str
    key_exchanged_at: _timestamp_pb2.Timestamp
    store_and_forward_pending: int
    def __init__(self, name: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., zpk_key_ref: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., acquirer_id: _Optional[str] = ..., state: _Optional[_Union[LinkState, str]] = ..., in_flight: _Optional[int] = ..., kind: _Optional[_Union[ChannelKind, str]] = ..., dialect: _Optional[_Union[Iso8583Dialect, _Mapping]] = ..., zmk_key_ref: _Optional[str] = ..., stand_in: _Optional[_Union[StandInRules, _Mapping]] = ..., breaker: _Optional[_Union[CircuitBreaker, _Mapping]] = ..., wallet: _Optional[_Union[WalletEndpoint, _Mapping]] = ..., signed_on: _Optional[bool] = ..., zpk_kcv: _Optional[str] = ..., key_exchanged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store_and_forward_pending: _Optional[int] = ...) -> None: ...

class CreateIssuerLinkRequest(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: IssuerLink
    def __init__(self, link: _Optional[_Union[IssuerLink, _Mapping]] = ...) -> None: ...

class UpdateIssuerLinkRequest(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: IssuerLink
    def __init__(self, link: _Optional[_Union[IssuerLink, _Mapping]] = ...) -> None: ...

class GetIssuerLinkRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListIssuerLinksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIssuerLinksResponse(_message.Message):
    __slots__ = ("links",)
    LINKS_FIELD_NUMBER: _ClassVar[int]
    links: _containers.RepeatedCompositeFieldContainer[IssuerLink]
    def __init__(self, links: _Optional[_Iterable[_Union[IssuerLink, _Mapping]]] = ...) -> None: ...

class ControlLinkRequest(_message.Message):
    __slots__ = ("name", "action")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    action: LinkAction
    def __init__(self, name: _Optional[str] = ..., action: _Optional[_Union[LinkAction, str]] = ...) -> None: ...

class ControlLinkResponse(_message.Message):
    __slots__ = ("link", "detail")
    LINK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    link: IssuerLink
    detail: str
    def __init__(self, link: _Optional[_Union[IssuerLink, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("route_id", "description", "bin_prefix", "brand", "currencies", "min_amount_minor", "max_amount_minor", "mccs", "terminal_ids", "merchant_ids", "wallet_provider", "primary_link", "secondary_links", "priority")
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BIN_PREFIX_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    CURRENCIES_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MCCS_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_IDS_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_IDS_FIELD_NUMBER: _ClassVar[int]
    WALLET_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_LINK_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_LINKS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    description: str
    bin_prefix: str
    brand: str
    currencies: _containers.RepeatedScalarFieldContainer[str]
    min_amount_minor: int
    max_amount_minor: int
    mccs: _containers.RepeatedScalarFieldContainer[str]
    terminal_ids: _containers.RepeatedScalarFieldContainer[str]
    merchant_ids: _containers.RepeatedScalarFieldContainer[str]
    wallet_provider: str
    primary_link: str
    secondary_links: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    def __init__(self, route_id: _Optional[str] = ..., description: _Optional[str] = ..., bin_prefix: _Optional[str] = ..., brand: _Optional[str] = ..., currencies: _Optional[_Iterable[str]] = ..., min_amount_minor: _Optional[int] = ..., max_amount_minor: _Optional[int] = ..., mccs: _Optional[_Iterable[str]] = ..., terminal_ids: _Optional[_Iterable[str]] = ..., merchant_ids: _Optional[_Iterable[str]] = ..., wallet_provider: _Optional[str] = ..., primary_link: _Optional[str] = ..., secondary_links: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ...) -> None: ...

class CreateRouteRequest(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: Route
    def __init__(self, route: _Optional[_Union[Route, _Mapping]] = ...) -> None: ...

class UpdateRouteRequest(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: Route
    def __init__(self, route: _Optional[_Union[Route, _Mapping]] = ...) -> None: ...

class DeleteRouteRequest(_message.Message):
    __slots__ = ("route_id",)
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    route_id: str
    def __init__(self, route_id: _Optional[str] = ...) -> None: ...

class DeleteRouteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRoutesResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    def __init__(self, routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ...) -> None: ...

class ResolveRouteRequest(_message.Message):
    __slots__ = ("pan", "wallet_provider", "currency", "amount_minor", "mcc", "terminal_id", "merchant_id")
    PAN_FIELD_NUMBER: _ClassVar[int]
    WALLET_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    pan: str
    wallet_provider: str
    currency: str
    amount_minor: int
    mcc: str
    terminal_id: str
    merchant_id: str
    def __init__(self, pan: _Optional[str] = ..., wallet_provider: _Optional[str] = ..., currency: _Optional[str] = ..., amount_minor: _Optional[int] = ..., mcc: _Optional[str] = ..., terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ...) -> None: ...

class ResolveRouteResponse(_message.Message):
    __slots__ = ("route", "link", "candidates", "reason")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    route: Route
    link: str
    candidates: _containers.RepeatedCompositeFieldContainer[IssuerLink]
    reason: str
    def __init__(self, route: _Optional[_Union[Route, _Mapping]] = ..., link: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[IssuerLink, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class AcquirerHost(_message.Message):
    __slots__ = ("name", "port", "dialect", "zpk_key_ref", "listening")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    name: str
    port: int
    dialect: Iso8583Dialect
    zpk_key_ref: str
    listening: bool
    def __init__(self, name: _Optional[str] = ..., port: _Optional[int] = ..., dialect: _Optional[_Union[Iso8583Dialect, _Mapping]] = ..., zpk_key_ref: _Optional[str] = ..., listening: _Optional[bool] = ...) -> None: ...

class CreateAcquirerHostRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: AcquirerHost
    def __init__(self, host: _Optional[_Union[AcquirerHost, _Mapping]] = ...) -> None: ...

class DeleteAcquirerHostRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAcquirerHostResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAcquirerHostsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAcquirerHostsResponse(_message.Message):
    __slots__ = ("hosts",)
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[AcquirerHost]
    def __init__(self, hosts: _Optional[_Iterable[_Union[AcquirerHost, _Mapping]]] = ...) -> None: ...

class RiskRules(_message.Message):
    __slots__ = ("yaml", "version", "updated_at")
    YAML_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    version: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, yaml: _Optional[str] = ..., version: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRiskRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetRiskRulesRequest(_message.Message):
    __slots__ = ("yaml", "expected_version", "validate_only")
    YAML_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    expected_version: int
    validate_only: bool
    def __init__(self, yaml: _Optional[str] = ..., expected_version: _Optional[int] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class StoreAndForwardEntry(_message.Message):
    __slots__ = ("id", "transaction_id", "link", "mti", "reason", "attempts", "last_error", "next_attempt_at", "acknowledged_at", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    MTI_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    transaction_id: str
    link: str
    mti: str
    reason: str
    attempts: int
    last_error: str
    next_attempt_at: _timestamp_pb2.Timestamp
    acknowledged_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., transaction_id: _Optional[str] = ..., link: _Optional[str] = ..., mti: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acknowledged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStoreAndForwardRequest(_message.Message):
    __slots__ = ("link", "include_acknowledged", "limit")
    LINK_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    link: str
    include_acknowledged: bool
    limit: int
    def __init__(self, link: _Optional[str] = ..., include_acknowledged: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class ListStoreAndForwardResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[StoreAndForwardEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[StoreAndForwardEntry, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "event_id", "type", "data_json", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    event_id: str
    type: str
    data_json: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., event_id: _Optional[str] = ..., type: _Optional[str] = ..., data_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("type_prefix", "after_id", "limit")
    TYPE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    type_prefix: str
    after_id: int
    limit: int
    def __init__(self, type_prefix: _Optional[str] = ..., after_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
