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

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_BDK: _ClassVar[KeyType]
    KEY_TYPE_ZPK: _ClassVar[KeyType]
    KEY_TYPE_ZMK: _ClassVar[KeyType]
    KEY_TYPE_PVK: _ClassVar[KeyType]
    KEY_TYPE_CVK: _ClassVar[KeyType]
    KEY_TYPE_DEK: _ClassVar[KeyType]
    KEY_TYPE_HMAC: _ClassVar[KeyType]

class KeyAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ALGORITHM_UNSPECIFIED: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_TDES_2KEY: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_TDES_3KEY: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_128: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_192: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_256: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_HMAC_SHA256: _ClassVar[KeyAlgorithm]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_BDK: KeyType
KEY_TYPE_ZPK: KeyType
KEY_TYPE_ZMK: KeyType
KEY_TYPE_PVK: KeyType
KEY_TYPE_CVK: KeyType
KEY_TYPE_DEK: KeyType
KEY_TYPE_HMAC: KeyType
KEY_ALGORITHM_UNSPECIFIED: KeyAlgorithm
KEY_ALGORITHM_TDES_2KEY: KeyAlgorithm
KEY_ALGORITHM_TDES_3KEY: KeyAlgorithm
KEY_ALGORITHM_AES_128: KeyAlgorithm
KEY_ALGORITHM_AES_192: KeyAlgorithm
KEY_ALGORITHM_AES_256: KeyAlgorithm
KEY_ALGORITHM_HMAC_SHA256: KeyAlgorithm

class KeyInfo(_message.Message):
    __slots__ = ("key_id", "label", "key_type", "algorithm", "kcv", "created_at")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KCV_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    kcv: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., kcv: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerateKeyRequest(_message.Message):
    __slots__ = ("label", "key_type", "algorithm")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    def __init__(self, label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ...) -> None: ...

class GenerateKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class ImportKeyRequest(_message.Message):
    __slots__ = ("label", "key_type", "algorithm", "components", "expected_kcv")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_KCV_FIELD_NUMBER: _ClassVar[int]
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    components: _containers.RepeatedScalarFieldContainer[str]
    expected_kcv: str
    def __init__(self, label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., components: _Optional[_Iterable[str]] = ..., expected_kcv: _Optional[str] = ...) -> None: ...

class ImportKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class GetKeyRequest(_message.Message):
    __slots__ = ("key_ref",)
    KEY_REF_FIELD_NUMBER: _ClassVar[int]
    key_ref: str
    def __init__(self, key_ref: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("key_type",)
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    key_type: KeyType
    def __init__(self, key_type: _Optional[_Union[KeyType, str]] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class DeriveDukptInitialKeyRequest(_message.Message):
    __slots__ = ("bdk_key_ref", "ksn", "device_public_key_pem")
    BDK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    bdk_key_ref: str
    ksn: bytes
    device_public_key_pem: bytes
    def __init__(self, bdk_key_ref: _Optional[str] = ..., ksn: _Optional[bytes] = ..., device_public_key_pem: _Optional[bytes] = ...) -> None: ...

class DeriveDukptInitialKeyResponse(_message.Message):
    __slots__ = ("encrypted_initial_key", "kcv")
    ENCRYPTED_INITIAL_KEY_FIELD_NUMBER: _ClassVar[int]
    KCV_FIELD_NUMBER: _ClassVar[int]
    encrypted_initial_key: bytes
    kcv: str
    def __init__(self, encrypted_initial_key: _Optional[bytes] = ..., kcv: _Optional[str] = ...) -> None: ...

class TranslatePinRequest(_message.Message):
    __slots__ = ("source_bdk_key_ref", "ksn", "source_zpk_key_ref", "destination_zpk_key_ref", "pin_block", "pan", "source_format", "destination_format")
    SOURCE_BDK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    KSN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    source_bdk_key_ref: str
    ksn: bytes
    source_zpk_key_ref: str
    destination_zpk_key_ref: str
    pin_block: bytes
    pan: str
    source_format: _common_pb2.PinBlockFormat
    destination_format: _common_pb2.PinBlockFormat
    def __init__(self, source_bdk_key_ref: _Optional[str] = ..., ksn: _Optional[bytes] = ..., source_zpk_key_ref: _Optional[str] = ..., destination_zpk_key_ref: _Optional[str] = ..., pin_block: _Optional[bytes] = ..., pan: _Optional[str] = ..., source_format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ..., destination_format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ...) -> None: ...

class TranslatePinResponse(_message.Message):
    __slots__ = ("pin_block", "format")
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    pin_block: bytes
    format: _common_pb2.PinBlockFormat
    def __init__(self, pin_block: _Optional[bytes] = ..., format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ...) -> None: ...

class VerifyPinRequest(_message.Message):
    __slots__ = ("zpk_key_ref", "pvk_key_ref", "pin_block", "format", "pan", "offset", "decimalization_table", "validation_data")
    ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DECIMALIZATION_TABLE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    zpk_key_ref: str
    pvk_key_ref: str
    pin_block: bytes
    format: _common_pb2.PinBlockFormat
    pan: str
    offset: str
    decimalization_table: str
    validation_data: str
    def __init__(self, zpk_key_ref: _Optional[str] = ..., pvk_key_ref: _Optional[str] = ..., pin_block: _Optional[bytes] = ..., format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ..., pan: _Optional[str] = ..., offset: _Optional[str] = ..., decimalization_table: _Optional[str] = ..., validation_data: _Optional[str] = ...) -> None: ...

class VerifyPinResponse(_message.Message):
    __slots__ = ("verified",)
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    def __init__(self, verified: _Optional[bool] = ...) -> None: ...

class GeneratePinOffsetRequest(_message.Message):
    __slots__ = ("pvk_key_ref", "pan", "pin", "decimalization_table", "validation_data")
    PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    DECIMALIZATION_TABLE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    pvk_key_ref: str
    pan: str
    pin: str
    decimalization_table: str
    validation_data: str
    def __init__(self, pvk_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., pin: _Optional[str] = ..., decimalization_table: _Optional[str] = ..., validation_data: _Optional[str] = ...) -> None: ...

class GeneratePinOffsetResponse(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: str
    def __init__(self, offset: _Optional[str] = ...) -> None: ...

class GenerateCvvRequest(_message.Message):
    __slots__ = ("cvk_key_ref", "pan", "expiry_yymm", "service_code")
    CVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_YYMM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    cvk_key_ref: str
    pan: str
    expiry_yymm: str
    service_code: str
    def __init__(self, cvk_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., expiry_yymm: _Optional[str] = ..., service_code: _Optional[str] = ...) -> None: ...

class GenerateCvvResponse(_message.Message):
    __slots__ = ("cvv",)
    CVV_FIELD_NUMBER: _ClassVar[int]
    cvv: str
    def __init__(self, cvv: _Optional[str] = ...) -> None: ...

class VerifyCvvRequest(_message.Message):
    __slots__ = ("cvk_key_ref", "pan", "expiry_yymm", "service_code", "cvv")
    CVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_YYMM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    CVV_FIELD_NUMBER: _ClassVar[int]
    cvk_key_ref: str
    pan: str
    expiry_yymm: str
    service_code: str
    cvv: str
    def __init__(self, cvk_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., expiry_yymm: _Optional[str] = ..., service_code: _Optional[str] = ..., cvv: _Optional[str] = ...) -> None: ...

class VerifyCvvResponse(_message.Message):
    __slots__ = ("verified",)
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    def __init__(self, verified: _Optional[bool] = ...) -> None: ...

class ProtectPanRequest(_message.Message):
    __slots__ = ("hmac_key_ref", "dek_key_ref", "pan")
    HMAC_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    DEK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    hmac_key_ref: str
    dek_key_ref: str
    pan: str
    def __init__(self, hmac_key_ref: _Optional[str] = ..., dek_key_ref: _Optional[str] = ..., pan: _Optional[str] = ...) -> None: ...

class ProtectPanResponse(_message.Message):
    __slots__ = ("pan_token", "last_four", "encrypted_pan", "bin")
    PAN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_PAN_FIELD_NUMBER: _ClassVar[int]
    BIN_FIELD_NUMBER: _ClassVar[int]
    pan_token: str
    last_four: str
    encrypted_pan: bytes
    bin: str
    def __init__(self, pan_token: _Optional[str] = ..., last_four: _Optional[str] = ..., encrypted_pan: _Optional[bytes] = ..., bin: _Optional[str] = ...) -> None: ...

class RevealPanRequest(_message.Message):
    __slots__ = ("dek_key_ref", "encrypted_pan")
    DEK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_PAN_FIELD_NUMBER: _ClassVar[int]
    dek_key_ref: str
    encrypted_pan: bytes
    def __init__(self, dek_key_ref: _Optional[str] = ..., encrypted_pan: _Optional[bytes] = ...) -> None: ...

class RevealPanResponse(_message.Message):
    __slots__ = ("pan",)
    PAN_FIELD_NUMBER: _ClassVar[int]
    pan: str
    def __init__(self, pan: _Optional[str] = ...) -> None: ...
