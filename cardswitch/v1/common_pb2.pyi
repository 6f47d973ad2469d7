from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WalletPresentation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WALLET_PRESENTATION_UNSPECIFIED: _ClassVar[WalletPresentation]
    WALLET_PRESENTATION_QR_CODE: _ClassVar[WalletPresentation]
    WALLET_PRESENTATION_TOKEN: _ClassVar[WalletPresentation]

class EntryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_MODE_UNSPECIFIED: _ClassVar[EntryMode]
    ENTRY_MODE_MAGSTRIPE: _ClassVar[EntryMode]
    ENTRY_MODE_MANUAL: _ClassVar[EntryMode]
    ENTRY_MODE_CHIP: _ClassVar[EntryMode]
    ENTRY_MODE_CONTACTLESS: _ClassVar[EntryMode]
    ENTRY_MODE_WALLET: _ClassVar[EntryMode]
    ENTRY_MODE_ECOMMERCE: _ClassVar[EntryMode]

class PinBlockFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIN_BLOCK_FORMAT_UNSPECIFIED: _ClassVar[PinBlockFormat]
    PIN_BLOCK_FORMAT_ISO_0: _ClassVar[PinBlockFormat]
    PIN_BLOCK_FORMAT_ISO_1: _ClassVar[PinBlockFormat]
    PIN_BLOCK_FORMAT_ISO_3: _ClassVar[PinBlockFormat]
    PIN_BLOCK_FORMAT_ISO_4: _ClassVar[PinBlockFormat]

class PinKeyManagement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIN_KEY_MANAGEMENT_UNSPECIFIED: _ClassVar[PinKeyManagement]
    PIN_KEY_MANAGEMENT_DUKPT_TDES: _ClassVar[PinKeyManagement]
    PIN_KEY_MANAGEMENT_DUKPT_AES: _ClassVar[PinKeyManagement]

class BalanceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BALANCE_TYPE_UNSPECIFIED: _ClassVar[BalanceType]
    BALANCE_TYPE_LEDGER: _ClassVar[BalanceType]
    BALANCE_TYPE_AVAILABLE: _ClassVar[BalanceType]
WALLET_PRESENTATION_UNSPECIFIED: WalletPresentation
WALLET_PRESENTATION_QR_CODE: WalletPresentation
WALLET_PRESENTATION_TOKEN: WalletPresentation
ENTRY_MODE_UNSPECIFIED: EntryMode
ENTRY_MODE_MAGSTRIPE: EntryMode
ENTRY_MODE_MANUAL: EntryMode
ENTRY_MODE_CHIP: EntryMode
ENTRY_MODE_CONTACTLESS: EntryMode
ENTRY_MODE_WALLET: EntryMode
ENTRY_MODE_ECOMMERCE: EntryMode
PIN_BLOCK_FORMAT_UNSPECIFIED: PinBlockFormat
PIN_BLOCK_FORMAT_ISO_0: PinBlockFormat
PIN_BLOCK_FORMAT_ISO_1: PinBlockFormat
PIN_BLOCK_FORMAT_ISO_3: PinBlockFormat
PIN_BLOCK_FORMAT_ISO_4: PinBlockFormat
PIN_KEY_MANAGEMENT_UNSPECIFIED: PinKeyManagement
PIN_KEY_MANAGEMENT_DUKPT_TDES: PinKeyManagement
PIN_KEY_MANAGEMENT_DUKPT_AES: PinKeyManagement
BALANCE_TYPE_UNSPECIFIED: BalanceType
BALANCE_TYPE_LEDGER: BalanceType
BALANCE_TYPE_AVAILABLE: BalanceType

class Money(_message.Message):
    __slots__ = ("amount_minor", "currency")
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    amount_minor: int
    currency: str
    def __init__(self, amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class Track2(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: str
    def __init__(self, data: _Optional[str] = ...) -> None: ...

class ManualEntry(_message.Message):
    __slots__ = ("pan", "expiry_yymm", "cvv2")
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_YYMM_FIELD_NUMBER: _ClassVar[int]
    CVV2_FIELD_NUMBER: _ClassVar[int]
    pan: str
    expiry_yymm: str
    cvv2: str
    def __init__(self, pan: _Optional[str] = ..., expiry_yymm: _Optional[str] = ..., cvv2: _Optional[str] = ...) -> None: ...

class EmvData(_message.Message):
    __slots__ = ("tlv",)
    TLV_FIELD_NUMBER: _ClassVar[int]
    tlv: bytes
    def __init__(self, tlv: _Optional[bytes] = ...) -> None: ...

class WalletToken(_message.Message):
    __slots__ = ("provider", "token", "presentation")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_FIELD_NUMBER: _ClassVar[int]
    provider: str
    token: str
    presentation: WalletPresentation
    def __init__(self, provider: _Optional[str] = ..., token: _Optional[str] = ..., presentation: _Optional[_Union[WalletPresentation, str]] = ...) -> None: ...

class CardInput(_message.Message):
    __slots__ = ("track2", "manual", "emv", "wallet")
    TRACK2_FIELD_NUMBER: _ClassVar[int]
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    EMV_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    track2: Track2
    manual: ManualEntry
    emv: EmvData
    wallet: WalletToken
    def __init__(self, track2: _Optional[_Union[Track2, _Mapping]] = ..., manual: _Optional[_Union[ManualEntry, _Mapping]] = ..., emv: _Optional[_Union[EmvData, _Mapping]] = ..., wallet: _Optional[_Union[WalletToken, _Mapping]] = ...) -> None: ...

class EncryptedPinBlock(_message.Message):
    __slots__ = ("block", "format", "key_management", "ksn")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    KEY_MANAGEMENT_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    block: bytes
    format: PinBlockFormat
    key_management: PinKeyManagement
    ksn: bytes
    def __init__(self, block: _Optional[bytes] = ..., format: _Optional[_Union[PinBlockFormat, str]] = ..., key_management: _Optional[_Union[PinKeyManagement, str]] = ..., ksn: _Optional[bytes] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("response_code", "reason", "approved")
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    response_code: str
    reason: str
    approved: bool
    def __init__(self, response_code: _Optional[str] = ..., reason: _Optional[str] = ..., approved: _Optional[bool] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("type", "amount")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    type: BalanceType
    amount: Money
    def __init__(self, type: _Optional[_Union[BalanceType, str]] = ..., amount: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...
