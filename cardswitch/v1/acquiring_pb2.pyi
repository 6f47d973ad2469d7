import datetime

from cardswitch.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthorizationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHORIZATION_TYPE_UNSPECIFIED: _ClassVar[AuthorizationType]
    AUTHORIZATION_TYPE_PURCHASE: _ClassVar[AuthorizationType]
    AUTHORIZATION_TYPE_PRE_AUTHORIZATION: _ClassVar[AuthorizationType]

class RiskDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_DECISION_UNSPECIFIED: _ClassVar[RiskDecision]
    RISK_DECISION_APPROVE: _ClassVar[RiskDecision]
    RISK_DECISION_DECLINE: _ClassVar[RiskDecision]
    RISK_DECISION_REVIEW: _ClassVar[RiskDecision]

class ReversalReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVERSAL_REASON_UNSPECIFIED: _ClassVar[ReversalReason]
    REVERSAL_REASON_VOID: _ClassVar[ReversalReason]
    REVERSAL_REASON_TIMEOUT: _ClassVar[ReversalReason]
    REVERSAL_REASON_CUSTOMER_CANCELLATION: _ClassVar[ReversalReason]
    REVERSAL_REASON_CHIP_DECLINED: _ClassVar[ReversalReason]

class TransactionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_TYPE_UNSPECIFIED: _ClassVar[TransactionType]
    TRANSACTION_TYPE_PURCHASE: _ClassVar[TransactionType]
    TRANSACTION_TYPE_PRE_AUTHORIZATION: _ClassVar[TransactionType]
    TRANSACTION_TYPE_CAPTURE: _ClassVar[TransactionType]
    TRANSACTION_TYPE_REVERSAL: _ClassVar[TransactionType]
    TRANSACTION_TYPE_REFUND: _ClassVar[TransactionType]
    TRANSACTION_TYPE_BALANCE_INQUIRY: _ClassVar[TransactionType]

class TransactionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_STATUS_UNSPECIFIED: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_PENDING: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_APPROVED: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_DECLINED: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_CAPTURED: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_REVERSED: _ClassVar[TransactionStatus]
    TRANSACTION_STATUS_TIMED_OUT: _ClassVar[TransactionStatus]
AUTHORIZATION_TYPE_UNSPECIFIED: AuthorizationType
AUTHORIZATION_TYPE_PURCHASE: AuthorizationType
AUTHORIZATION_TYPE_PRE_AUTHORIZATION: AuthorizationType
RISK_DECISION_UNSPECIFIED: RiskDecision
RISK_DECISION_APPROVE: RiskDecision
RISK_DECISION_DECLINE: RiskDecision
RISK_DECISION_REVIEW: RiskDecision
REVERSAL_REASON_UNSPECIFIED: ReversalReason
REVERSAL_REASON_VOID: ReversalReason
REVERSAL_REASON_TIMEOUT: ReversalReason
REVERSAL_REASON_CUSTOMER_CANCELLATION: ReversalReason
REVERSAL_REASON_CHIP_DECLINED: ReversalReason
TRANSACTION_TYPE_UNSPECIFIED: TransactionType
TRANSACTION_TYPE_PURCHASE: TransactionType
TRANSACTION_TYPE_PRE_AUTHORIZATION: TransactionType
TRANSACTION_TYPE_CAPTURE: TransactionType
TRANSACTION_TYPE_REVERSAL: TransactionType
TRANSACTION_TYPE_REFUND: TransactionType
TRANSACTION_TYPE_BALANCE_INQUIRY: TransactionType
TRANSACTION_STATUS_UNSPECIFIED: TransactionStatus
TRANSACTION_STATUS_PENDING: TransactionStatus
TRANSACTION_STATUS_APPROVED: TransactionStatus
TRANSACTION_STATUS_DECLINED: TransactionStatus
TRANSACTION_STATUS_CAPTURED: TransactionStatus
TRANSACTION_STATUS_REVERSED: TransactionStatus
TRANSACTION_STATUS_TIMED_OUT: TransactionStatus

class RequestKey(_message.Message):
    __slots__ = ("terminal_id", "merchant_id", "stan", "local_date_time", "request_id")
    TERMINAL_ID_FIELD_NUMBER: _ClassVar[int]
    MERCHANT_ID_FIELD_NUMBER: _ClassVar[int]
    STAN_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    terminal_id: str
    merchant_id: str
    stan: str
    local_date_time: str
    request_id: str
    def __init__(self, terminal_id: _Optional[str] = ..., merchant_id: _Optional[str] = ..., stan: _Optional[str] = ..., local_date_time: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("key", "type", "amount", "card", "entry_mode", "pin_block", "mcc")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    key: RequestKey
    type: AuthorizationType
    amount: _common_pb2.Money
    card: _common_pb2.CardInput
    entry_mode: _common_pb2.EntryMode
    pin_block: _common_pb2.EncryptedPinBlock
    mcc: str
    def __init__(self, key: _Optional[_Union[RequestKey, _Mapping]] = ..., type: _Optional[_Union[AuthorizationType, str]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., card: _Optional[_Union[_common_pb2.CardInput, _Mapping]] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., pin_block: _Optional[_Union[_common_pb2.EncryptedPinBlock, _Mapping]] = ..., mcc: _Optional[str] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("transaction_id", "result", "approval_code", "rrn", "approved_amount", "balances", "replayed", "masked_pan", "issuer_emv_data", "stood_in", "risk", "link", "provider_reference")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_CODE_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAN_FIELD_NUMBER: _ClassVar[int]
    ISSUER_EMV_DATA_FIELD_NUMBER: _ClassVar[int]
    STOOD_IN_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    result: _common_pb2.Result
    approval_code: str
    rrn: str
    approved_amount: _common_pb2.Money
    balances: _containers.RepeatedCompositeFieldContainer[_common_pb2.Balance]
    replayed: bool
    masked_pan: str
    issuer_emv_data: bytes
    stood_in: bool
    risk: RiskAssessment
    link: str
    provider_reference: str
    def __init__(self, transaction_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., approval_code: _Optional[str] = ..., rrn: _Optional[str] = ..., approved_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., balances: _Optional[_Iterable[_Union[_common_pb2.Balance, _Mapping]]] = ..., replayed: _Optional[bool] = ..., masked_pan: _Optional[str] = ..., issuer_emv_data: _Optional[bytes] = ..., stood_in: _Optional[bool] = ..., risk: _Optional[_Union[RiskAssessment, _Mapping]] = ..., link: _Optional[str] = ..., provider_reference: _Optional[str] = ...) -> None: ...

class RiskAssessment(_message.Message):
    __slots__ = ("score", "decision", "rules")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    score: int
    decision: RiskDecision
    rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, score: _Optional[int] = ..., decision: _Optional[_Union[RiskDecision, str]] = ..., rules: _Optional[_Iterable[str]] = ...) -> None: ...

class CaptureRequest(_message.Message):
    __slots__ = ("key", "original_transaction_id", "amount")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    key: RequestKey
    original_transaction_id: str
    amount: _common_pb2.Money
    def __init__(self, key: _Optional[_Union[RequestKey, _Mapping]] = ..., original_transaction_id: _Optional[str] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class CaptureResponse(_message.Message):
    __slots__ = ("transaction_id", "result", "replayed", "captured_amount")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    result: _common_pb2.Result
    replayed: bool
    captured_amount: _common_pb2.Money
    def __init__(self, transaction_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., replayed: _Optional[bool] = ..., captured_amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ...) -> None: ...

class ReverseRequest(_message.Message):
    __slots__ = ("key", "reason", "original_transaction_id", "original_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_KEY_FIELD_NUMBER: _ClassVar[int]
    key: RequestKey
    reason: ReversalReason
    original_transaction_id: str
    original_key: RequestKey
    def __init__(self, key: _Optional[_Union[RequestKey, _Mapping]] = ..., reason: _Optional[_Union[ReversalReason, str]] = ..., original_transaction_id: _Optional[str] = ..., original_key: _Optional[_Union[RequestKey, _Mapping]] = ...) -> None: ...

class ReverseResponse(_message.Message):
    __slots__ = ("transaction_id", "result", "replayed", "original_transaction_id")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    result: _common_pb2.Result
    replayed: bool
    original_transaction_id: str
    def __init__(self, transaction_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., replayed: _Optional[bool] = ..., original_transaction_id: _Optional[str] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("key", "amount", "card", "entry_mode", "original_transaction_id", "mcc")
    KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    key: RequestKey
    amount: _common_pb2.Money
    card: _common_pb2.CardInput
    entry_mode: _common_pb2.EntryMode
    original_transaction_id: str
    mcc: str
    def __init__(self, key: _Optional[_Union[RequestKey, _Mapping]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., card: _Optional[_Union[_common_pb2.CardInput, _Mapping]] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., original_transaction_id: _Optional[str] = ..., mcc: _Optional[str] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("transaction_id", "result", "approval_code", "rrn", "replayed")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_CODE_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    result: _common_pb2.Result
    approval_code: str
    rrn: str
    replayed: bool
    def __init__(self, transaction_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., approval_code: _Optional[str] = ..., rrn: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class BalanceInquiryRequest(_message.Message):
    __slots__ = ("key", "card", "entry_mode", "pin_block")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    key: RequestKey
    card: _common_pb2.CardInput
    entry_mode: _common_pb2.EntryMode
    pin_block: _common_pb2.EncryptedPinBlock
    def __init__(self, key: _Optional[_Union[RequestKey, _Mapping]] = ..., card: _Optional[_Union[_common_pb2.CardInput, _Mapping]] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., pin_block: _Optional[_Union[_common_pb2.EncryptedPinBlock, _Mapping]] = ...) -> None: ...

class BalanceInquiryResponse(_message.Message):
    __slots__ = ("transaction_id", "result", "balances", "replayed")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    result: _common_pb2.Result
    balances: _containers.RepeatedCompositeFieldContainer[_common_pb2.Balance]
    replayed: bool
    def __init__(self, transaction_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., balances: _Optional[_Iterable[_Union[_common_pb2.Balance, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ("transaction_id", "key")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    key: RequestKey
    def __init__(self, transaction_id: _Optional[str] = ..., key: _Optional[_Union[RequestKey, _Mapping]] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "type", "status", "key", "amount", "masked_pan", "entry_mode", "result", "approval_code", "rrn", "original_transaction_id", "issuer_link", "created_at", "updated_at", "reversal_acknowledged", "mcc", "stood_in", "risk", "provider_reference")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAN_FIELD_NUMBER: _ClassVar[int]
    ENTRY_MODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_CODE_FIELD_NUMBER: _ClassVar[int]
    RRN_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_LINK_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    MCC_FIELD_NUMBER: _ClassVar[int]
    STOOD_IN_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    type: TransactionType
    status: TransactionStatus
    key: RequestKey
    amount: _common_pb2.Money
    masked_pan: str
    entry_mode: _common_pb2.EntryMode
    result: _common_pb2.Result
    approval_code: str
    rrn: str
    original_transaction_id: str
    issuer_link: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    reversal_acknowledged: bool
    mcc: str
    stood_in: bool
    risk: RiskAssessment
    provider_reference: str
    def __init__(self, transaction_id: _Optional[str] = ..., type: _Optional[_Union[TransactionType, str]] = ..., status: _Optional[_Union[TransactionStatus, str]] = ..., key: _Optional[_Union[RequestKey, _Mapping]] = ..., amount: _Optional[_Union[_common_pb2.Money, _Mapping]] = ..., masked_pan: _Optional[str] = ..., entry_mode: _Optional[_Union[_common_pb2.EntryMode, str]] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ..., approval_code: _Optional[str] = ..., rrn: _Optional[str] = ..., original_transaction_id: _Optional[str] = ..., issuer_link: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reversal_acknowledged: _Optional[bool] = ..., mcc: _Optional[str] = ..., stood_in: _Optional[bool] = ..., risk: _Optional[_Union[RiskAssessment, _Mapping]] = ..., provider_reference: _Optional[str] = ...) -> None: ...
