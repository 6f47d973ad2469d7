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
    KEY_TYPE_TPK: _ClassVar[KeyType]
    KEY_TYPE_TAK: _ClassVar[KeyType]
    KEY_TYPE_IMK_AC: _ClassVar[KeyType]
    KEY_TYPE_IMK_SMI: _ClassVar[KeyType]
    KEY_TYPE_IMK_SMC: _ClassVar[KeyType]
    KEY_TYPE_SIGNING: _ClassVar[KeyType]

class KeyAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_ALGORITHM_UNSPECIFIED: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_TDES_2KEY: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_TDES_3KEY: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_128: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_192: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_AES_256: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_HMAC_SHA256: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_RSA_2048: _ClassVar[KeyAlgorithm]
    KEY_ALGORITHM_ED25519: _ClassVar[KeyAlgorithm]

class CryptogramVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CRYPTOGRAM_VERSION_UNSPECIFIED: _ClassVar[CryptogramVersion]
    CRYPTOGRAM_VERSION_VISA_10: _ClassVar[CryptogramVersion]
    CRYPTOGRAM_VERSION_VISA_18: _ClassVar[CryptogramVersion]
    CRYPTOGRAM_VERSION_MASTERCARD_16: _ClassVar[CryptogramVersion]
    CRYPTOGRAM_VERSION_MASTERCARD_17: _ClassVar[CryptogramVersion]
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_BDK: KeyType
KEY_TYPE_ZPK: KeyType
KEY_TYPE_ZMK: KeyType
KEY_TYPE_PVK: KeyType
KEY_TYPE_CVK: KeyType
KEY_TYPE_DEK: KeyType
KEY_TYPE_HMAC: KeyType
KEY_TYPE_TPK: KeyType
KEY_TYPE_TAK: KeyType
KEY_TYPE_IMK_AC: KeyType
KEY_TYPE_IMK_SMI: KeyType
KEY_TYPE_IMK_SMC: KeyType
KEY_TYPE_SIGNING: KeyType
KEY_ALGORITHM_UNSPECIFIED: KeyAlgorithm
KEY_ALGORITHM_TDES_2KEY: KeyAlgorithm
KEY_ALGORITHM_TDES_3KEY: KeyAlgorithm
KEY_ALGORITHM_AES_128: KeyAlgorithm
KEY_ALGORITHM_AES_192: KeyAlgorithm
KEY_ALGORITHM_AES_256: KeyAlgorithm
KEY_ALGORITHM_HMAC_SHA256: KeyAlgorithm
KEY_ALGORITHM_RSA_2048: KeyAlgorithm
KEY_ALGORITHM_ED25519: KeyAlgorithm
CRYPTOGRAM_VERSION_UNSPECIFIED: CryptogramVersion
CRYPTOGRAM_VERSION_VISA_10: CryptogramVersion
CRYPTOGRAM_VERSION_VISA_18: CryptogramVersion
CRYPTOGRAM_VERSION_MASTERCARD_16: CryptogramVersion
CRYPTOGRAM_VERSION_MASTERCARD_17: CryptogramVersion

class KeyInfo(_message.Message):
    __slots__ = ("key_id", "label", "key_type", "algorithm", "kcv", "created_at", "usage", "mode_of_use", "exportability", "stored")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KCV_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODE_OF_USE_FIELD_NUMBER: _ClassVar[int]
    EXPORTABILITY_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    kcv: str
    created_at: _timestamp_pb2.Timestamp
    usage: str
    mode_of_use: str
    exportability: str
    stored: bool
    def __init__(self, key_id: _Optional[str] = ..., label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., kcv: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage: _Optional[str] = ..., mode_of_use: _Optional[str] = ..., exportability: _Optional[str] = ..., stored: _Optional[bool] = ...) -> None: ...

class GenerateKeyRequest(_message.Message):
    __slots__ = ("label", "key_type", "algorithm", "mode_of_use", "exportability", "zmk_key_ref")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    MODE_OF_USE_FIELD_NUMBER: _ClassVar[int]
    EXPORTABILITY_FIELD_NUMBER: _ClassVar[int]
    ZMK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    mode_of_use: str
    exportability: str
    zmk_key_ref: str
    def __init__(self, label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., mode_of_use: _Optional[str] = ..., exportability: _Optional[str] = ..., zmk_key_ref: _Optional[str] = ...) -> None: ...

class GenerateKeyResponse(_message.Message):
    __slots__ = ("key", "lmk_key_block", "zmk_key_block")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LMK_KEY_BLOCK_FIELD_NUMBER: _ClassVar[int]
    ZMK_KEY_BLOCK_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    lmk_key_block: str
    zmk_key_block: str
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., lmk_key_block: _Optional[str] = ..., zmk_key_block: _Optional[str] = ...) -> None: ...

class ImportKeyRequest(_message.Message):
    __slots__ = ("label", "key_type", "algorithm", "components", "expected_kcv", "key_block", "kek_key_ref", "mode_of_use", "exportability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_KCV_FIELD_NUMBER: _ClassVar[int]
    KEY_BLOCK_FIELD_NUMBER: _ClassVar[int]
    KEK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    MODE_OF_USE_FIELD_NUMBER: _ClassVar[int]
    EXPORTABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    key_type: KeyType
    algorithm: KeyAlgorithm
    components: _containers.RepeatedScalarFieldContainer[str]
    expected_kcv: str
    key_block: str
    kek_key_ref: str
    mode_of_use: str
    exportability: str
    def __init__(self, label: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ..., components: _Optional[_Iterable[str]] = ..., expected_kcv: _Optional[str] = ..., key_block: _Optional[str] = ..., kek_key_ref: _Optional[str] = ..., mode_of_use: _Optional[str] = ..., exportability: _Optional[str] = ...) -> None: ...

class ImportKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class ExportKeyRequest(_message.Message):
    __slots__ = ("key_ref", "zmk_key_ref")
    KEY_REF_FIELD_NUMBER: _ClassVar[int]
    ZMK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    key_ref: str
    zmk_key_ref: str
    def __init__(self, key_ref: _Optional[str] = ..., zmk_key_ref: _Optional[str] = ...) -> None: ...

class ExportKeyResponse(_message.Message):
    __slots__ = ("key_block", "kcv")
    KEY_BLOCK_FIELD_NUMBER: _ClassVar[int]
    KCV_FIELD_NUMBER: _ClassVar[int]
    key_block: str
    kcv: str
    def __init__(self, key_block: _Optional[str] = ..., kcv: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("zpk_key_ref", "pvk_key_ref", "pin_block", "format", "pan", "offset", "decimalization_table", "validation_data", "pvv", "pvki")
    ZPK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DECIMALIZATION_TABLE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATA_FIELD_NUMBER: _ClassVar[int]
    PVV_FIELD_NUMBER: _ClassVar[int]
    PVKI_FIELD_NUMBER: _ClassVar[int]
    zpk_key_ref: str
    pvk_key_ref: str
    pin_block: bytes
    format: _common_pb2.PinBlockFormat
    pan: str
    offset: str
    decimalization_table: str
    validation_data: str
    pvv: str
    pvki: int
    def __init__(self, zpk_key_ref: _Optional[str] = ..., pvk_key_ref: _Optional[str] = ..., pin_block: _Optional[bytes] = ..., format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ..., pan: _Optional[str] = ..., offset: _Optional[str] = ..., decimalization_table: _Optional[str] = ..., validation_data: _Optional[str] = ..., pvv: _Optional[str] = ..., pvki: _Optional[int] = ...) -> None: ...

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

class GeneratePvvRequest(_message.Message):
    __slots__ = ("pvk_key_ref", "pan", "pin", "pvki")
    PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    PVKI_FIELD_NUMBER: _ClassVar[int]
    pvk_key_ref: str
    pan: str
    pin: str
    pvki: int
    def __init__(self, pvk_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., pin: _Optional[str] = ..., pvki: _Optional[int] = ...) -> None: ...

class GeneratePvvResponse(_message.Message):
    __slots__ = ("pvv",)
    PVV_FIELD_NUMBER: _ClassVar[int]
    pvv: str
    def __init__(self, pvv: _Optional[str] = ...) -> None: ...

class GenerateRandomPinRequest(_message.Message):
    __slots__ = ("pan", "pin_length", "mailer_key_ref", "format", "offset_pvk_key_ref", "pvv_pvk_key_ref", "pvki")
    PAN_FIELD_NUMBER: _ClassVar[int]
    PIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAILER_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PVV_PVK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PVKI_FIELD_NUMBER: _ClassVar[int]
    pan: str
    pin_length: int
    mailer_key_ref: str
    format: _common_pb2.PinBlockFormat
    offset_pvk_key_ref: str
    pvv_pvk_key_ref: str
    pvki: int
    def __init__(self, pan: _Optional[str] = ..., pin_length: _Optional[int] = ..., mailer_key_ref: _Optional[str] = ..., format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ..., offset_pvk_key_ref: _Optional[str] = ..., pvv_pvk_key_ref: _Optional[str] = ..., pvki: _Optional[int] = ...) -> None: ...

class GenerateRandomPinResponse(_message.Message):
    __slots__ = ("pin_block", "format", "offset", "pvv")
    PIN_BLOCK_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PVV_FIELD_NUMBER: _ClassVar[int]
    pin_block: bytes
    format: _common_pb2.PinBlockFormat
    offset: str
    pvv: str
    def __init__(self, pin_block: _Optional[bytes] = ..., format: _Optional[_Union[_common_pb2.PinBlockFormat, str]] = ..., offset: _Optional[str] = ..., pvv: _Optional[str] = ...) -> None: ...

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

class VerifyArqcRequest(_message.Message):
    __slots__ = ("imk_ac_key_ref", "pan", "psn", "cryptogram_version", "atc", "transaction_data", "arqc", "arc", "csu", "proprietary_auth_data")
    IMK_AC_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    PSN_FIELD_NUMBER: _ClassVar[int]
    CRYPTOGRAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    ATC_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_DATA_FIELD_NUMBER: _ClassVar[int]
    ARQC_FIELD_NUMBER: _ClassVar[int]
    ARC_FIELD_NUMBER: _ClassVar[int]
    CSU_FIELD_NUMBER: _ClassVar[int]
    PROPRIETARY_AUTH_DATA_FIELD_NUMBER: _ClassVar[int]
    imk_ac_key_ref: str
    pan: str
    psn: str
    cryptogram_version: CryptogramVersion
    atc: bytes
    transaction_data: bytes
    arqc: bytes
    arc: bytes
    csu: bytes
    proprietary_auth_data: bytes
    def __init__(self, imk_ac_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., psn: _Optional[str] = ..., cryptogram_version: _Optional[_Union[CryptogramVersion, str]] = ..., atc: _Optional[bytes] = ..., transaction_data: _Optional[bytes] = ..., arqc: _Optional[bytes] = ..., arc: _Optional[bytes] = ..., csu: _Optional[bytes] = ..., proprietary_auth_data: _Optional[bytes] = ...) -> None: ...

class VerifyArqcResponse(_message.Message):
    __slots__ = ("verified", "arpc")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    ARPC_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    arpc: bytes
    def __init__(self, verified: _Optional[bool] = ..., arpc: _Optional[bytes] = ...) -> None: ...

class DeriveIccKeysRequest(_message.Message):
    __slots__ = ("imk_ac_key_ref", "imk_smi_key_ref", "imk_smc_key_ref", "pan", "psn", "zmk_key_ref")
    IMK_AC_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    IMK_SMI_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    IMK_SMC_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    PSN_FIELD_NUMBER: _ClassVar[int]
    ZMK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    imk_ac_key_ref: str
    imk_smi_key_ref: str
    imk_smc_key_ref: str
    pan: str
    psn: str
    zmk_key_ref: str
    def __init__(self, imk_ac_key_ref: _Optional[str] = ..., imk_smi_key_ref: _Optional[str] = ..., imk_smc_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., psn: _Optional[str] = ..., zmk_key_ref: _Optional[str] = ...) -> None: ...

class ExportedIccKey(_message.Message):
    __slots__ = ("key_block", "check_value")
    KEY_BLOCK_FIELD_NUMBER: _ClassVar[int]
    CHECK_VALUE_FIELD_NUMBER: _ClassVar[int]
    key_block: str
    check_value: str
    def __init__(self, key_block: _Optional[str] = ..., check_value: _Optional[str] = ...) -> None: ...

class DeriveIccKeysResponse(_message.Message):
    __slots__ = ("icc_ac", "icc_smi", "icc_smc")
    ICC_AC_FIELD_NUMBER: _ClassVar[int]
    ICC_SMI_FIELD_NUMBER: _ClassVar[int]
    ICC_SMC_FIELD_NUMBER: _ClassVar[int]
    icc_ac: ExportedIccKey
    icc_smi: ExportedIccKey
    icc_smc: ExportedIccKey
    def __init__(self, icc_ac: _Optional[_Union[ExportedIccKey, _Mapping]] = ..., icc_smi: _Optional[_Union[ExportedIccKey, _Mapping]] = ..., icc_smc: _Optional[_Union[ExportedIccKey, _Mapping]] = ...) -> None: ...

class GenerateScriptMacRequest(_message.Message):
    __slots__ = ("imk_smi_key_ref", "pan", "psn", "atc", "arqc", "command_header", "command_data", "mac_length")
    IMK_SMI_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PAN_FIELD_NUMBER: _ClassVar[int]
    PSN_FIELD_NUMBER: _ClassVar[int]
    ATC_FIELD_NUMBER: _ClassVar[int]
    ARQC_FIELD_NUMBER: _ClassVar[int]
    COMMAND_HEADER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_DATA_FIELD_NUMBER: _ClassVar[int]
    MAC_LENGTH_FIELD_NUMBER: _ClassVar[int]
    imk_smi_key_ref: str
    pan: str
    psn: str
    atc: bytes
    arqc: bytes
    command_header: bytes
    command_data: bytes
    mac_length: int
    def __init__(self, imk_smi_key_ref: _Optional[str] = ..., pan: _Optional[str] = ..., psn: _Optional[str] = ..., atc: _Optional[bytes] = ..., arqc: _Optional[bytes] = ..., command_header: _Optional[bytes] = ..., command_data: _Optional[bytes] = ..., mac_length: _Optional[int] = ...) -> None: ...

class GenerateScriptMacResponse(_message.Message):
    __slots__ = ("mac",)
    MAC_FIELD_NUMBER: _ClassVar[int]
    mac: bytes
    def __init__(self, mac: _Optional[bytes] = ...) -> None: ...

class GenerateMacRequest(_message.Message):
    __slots__ = ("tak_key_ref", "data", "length")
    TAK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    tak_key_ref: str
    data: bytes
    length: int
    def __init__(self, tak_key_ref: _Optional[str] = ..., data: _Optional[bytes] = ..., length: _Optional[int] = ...) -> None: ...

class GenerateMacResponse(_message.Message):
    __slots__ = ("mac",)
    MAC_FIELD_NUMBER: _ClassVar[int]
    mac: bytes
    def __init__(self, mac: _Optional[bytes] = ...) -> None: ...

class VerifyMacRequest(_message.Message):
    __slots__ = ("tak_key_ref", "data", "mac")
    TAK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    tak_key_ref: str
    data: bytes
    mac: bytes
    def __init__(self, tak_key_ref: _Optional[str] = ..., data: _Optional[bytes] = ..., mac: _Optional[bytes] = ...) -> None: ...

class VerifyMacResponse(_message.Message):
    __slots__ = ("verified",)
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    def __init__(self, verified: _Optional[bool] = ...) -> None: ...

class EncryptDataRequest(_message.Message):
    __slots__ = ("dek_key_ref", "plaintext", "associated_data")
    DEK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATED_DATA_FIELD_NUMBER: _ClassVar[int]
    dek_key_ref: str
    plaintext: bytes
    associated_data: bytes
    def __init__(self, dek_key_ref: _Optional[str] = ..., plaintext: _Optional[bytes] = ..., associated_data: _Optional[bytes] = ...) -> None: ...

class EncryptDataResponse(_message.Message):
    __slots__ = ("ciphertext",)
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ...) -> None: ...

class DecryptDataRequest(_message.Message):
    __slots__ = ("dek_key_ref", "ciphertext", "associated_data")
    DEK_KEY_REF_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ASSOCIATED_DATA_FIELD_NUMBER: _ClassVar[int]
    dek_key_ref: str
    ciphertext: bytes
    associated_data: bytes
    def __init__(self, dek_key_ref: _Optional[str] = ..., ciphertext: _Optional[bytes] = ..., associated_data: _Optional[bytes] = ...) -> None: ...

class DecryptDataResponse(_message.Message):
    __slots__ = ("plaintext",)
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    plaintext: bytes
    def __init__(self, plaintext: _Optional[bytes] = ...) -> None: ...

class HsmCommand(_message.Message):
    __slots__ = ("id", "translate_pin", "verify_pin", "generate_cvv", "verify_cvv", "protect_pan", "reveal_pan", "verify_arqc", "generate_mac", "verify_mac", "encrypt_data", "decrypt_data", "generate_pin_offset", "generate_pvv", "generate_random_pin", "generate_key", "import_key", "export_key", "get_key", "derive_dukpt_initial_key", "derive_icc_keys", "generate_script_mac")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_PIN_FIELD_NUMBER: _ClassVar[int]
    VERIFY_PIN_FIELD_NUMBER: _ClassVar[int]
    GENERATE_CVV_FIELD_NUMBER: _ClassVar[int]
    VERIFY_CVV_FIELD_NUMBER: _ClassVar[int]
    PROTECT_PAN_FIELD_NUMBER: _ClassVar[int]
    REVEAL_PAN_FIELD_NUMBER: _ClassVar[int]
    VERIFY_ARQC_FIELD_NUMBER: _ClassVar[int]
    GENERATE_MAC_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MAC_FIELD_NUMBER: _ClassVar[int]
    ENCRYPT_DATA_FIELD_NUMBER: _ClassVar[int]
    DECRYPT_DATA_FIELD_NUMBER: _ClassVar[int]
    GENERATE_PIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    GENERATE_PVV_FIELD_NUMBER: _ClassVar[int]
    GENERATE_RANDOM_PIN_FIELD_NUMBER: _ClassVar[int]
    GENERATE_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    GET_KEY_FIELD_NUMBER: _ClassVar[int]
    DERIVE_DUKPT_INITIAL_KEY_FIELD_NUMBER: _ClassVar[int]
    DERIVE_ICC_KEYS_FIELD_NUMBER: _ClassVar[int]
    GENERATE_SCRIPT_MAC_FIELD_NUMBER: _ClassVar[int]
    id: int
    translate_pin: TranslatePinRequest
    verify_pin: VerifyPinRequest
    generate_cvv: GenerateCvvRequest
    verify_cvv: VerifyCvvRequest
    protect_pan: ProtectPanRequest
    reveal_pan: RevealPanRequest
    verify_arqc: VerifyArqcRequest
    generate_mac: GenerateMacRequest
    verify_mac: VerifyMacRequest
    encrypt_data: EncryptDataRequest
    decrypt_data: DecryptDataRequest
    generate_pin_offset: GeneratePinOffsetRequest
    generate_pvv: GeneratePvvRequest
    generate_random_pin: GenerateRandomPinRequest
    generate_key: GenerateKeyRequest
    import_key: ImportKeyRequest
    export_key: ExportKeyRequest
    get_key: GetKeyRequest
    derive_dukpt_initial_key: DeriveDukptInitialKeyRequest
    derive_icc_keys: DeriveIccKeysRequest
    generate_script_mac: GenerateScriptMacRequest
    def __init__(self, id: _Optional[int] = ..., translate_pin: _Optional[_Union[TranslatePinRequest, _Mapping]] = ..., verify_pin: _Optional[_Union[VerifyPinRequest, _Mapping]] = ..., generate_cvv: _Optional[_Union[GenerateCvvRequest, _Mapping]] = ..., verify_cvv: _Optional[_Union[VerifyCvvRequest, _Mapping]] = ..., protect_pan: _Optional[_Union[ProtectPanRequest, _Mapping]] = ..., reveal_pan: _Optional[_Union[RevealPanRequest, _Mapping]] = ..., verify_arqc: _Optional[_Union[VerifyArqcRequest, _Mapping]] = ..., generate_mac: _Optional[_Union[GenerateMacRequest, _Mapping]] = ..., verify_mac: _Optional[_Union[VerifyMacRequest, _Mapping]] = ..., encrypt_data: _Optional[_Union[EncryptDataRequest, _Mapping]] = ..., decrypt_data: _Optional[_Union[DecryptDataRequest, _Mapping]] = ..., generate_pin_offset: _Optional[_Union[GeneratePinOffsetRequest, _Mapping]] = ..., generate_pvv: _Optional[_Union[GeneratePvvRequest, _Mapping]] = ..., generate_random_pin: _Optional[_Union[GenerateRandomPinRequest, _Mapping]] = ..., generate_key: _Optional[_Union[GenerateKeyRequest, _Mapping]] = ..., import_key: _Optional[_Union[ImportKeyRequest, _Mapping]] = ..., export_key: _Optional[_Union[ExportKeyRequest, _Mapping]] = ..., get_key: _Optional[_Union[GetKeyRequest, _Mapping]] = ..., derive_dukpt_initial_key: _Optional[_Union[DeriveDukptInitialKeyRequest, _Mapping]] = ..., derive_icc_keys: _Optional[_Union[DeriveIccKeysRequest, _Mapping]] = ..., generate_script_mac: _Optional[_Union[GenerateScriptMacRequest, _Mapping]] = ...) -> None: ...

class CommandError(_message.Message):
    __slots__ = ("code", "message", "field_violations")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class HsmResult(_message.Message):
    __slots__ = ("id", "error", "translate_pin", "verify_pin", "generate_cvv", "verify_cvv", "protect_pan", "reveal_pan", "verify_arqc", "generate_mac", "verify_mac", "encrypt_data", "decrypt_data", "generate_pin_offset", "generate_pvv", "generate_random_pin", "generate_key", "import_key", "export_key", "get_key", "derive_dukpt_initial_key", "derive_icc_keys", "generate_script_mac")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_PIN_FIELD_NUMBER: _ClassVar[int]
    VERIFY_PIN_FIELD_NUMBER: _ClassVar[int]
    GENERATE_CVV_FIELD_NUMBER: _ClassVar[int]
    VERIFY_CVV_FIELD_NUMBER: _ClassVar[int]
    PROTECT_PAN_FIELD_NUMBER: _ClassVar[int]
    REVEAL_PAN_FIELD_NUMBER: _ClassVar[int]
    VERIFY_ARQC_FIELD_NUMBER: _ClassVar[int]
    GENERATE_MAC_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MAC_FIELD_NUMBER: _ClassVar[int]
    ENCRYPT_DATA_FIELD_NUMBER: _ClassVar[int]
    DECRYPT_DATA_FIELD_NUMBER: _ClassVar[int]
    GENERATE_PIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    GENERATE_PVV_FIELD_NUMBER: _ClassVar[int]
    GENERATE_RANDOM_PIN_FIELD_NUMBER: _ClassVar[int]
    GENERATE_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    GET_KEY_FIELD_NUMBER: _ClassVar[int]
    DERIVE_DUKPT_INITIAL_KEY_FIELD_NUMBER: _ClassVar[int]
    DERIVE_ICC_KEYS_FIELD_NUMBER: _ClassVar[int]
    GENERATE_SCRIPT_MAC_FIELD_NUMBER: _ClassVar[int]
    id: int
    error: CommandError
    translate_pin: TranslatePinResponse
    verify_pin: VerifyPinResponse
    generate_cvv: GenerateCvvResponse
    verify_cvv: VerifyCvvResponse
    protect_pan: ProtectPanResponse
    reveal_pan: RevealPanResponse
    verify_arqc: VerifyArqcResponse
    generate_mac: GenerateMacResponse
    verify_mac: VerifyMacResponse
    encrypt_data: EncryptDataResponse
    decrypt_data: DecryptDataResponse
    generate_pin_offset: GeneratePinOffsetResponse
    generate_pvv: GeneratePvvResponse
    generate_random_pin: GenerateRandomPinResponse
    generate_key: GenerateKeyResponse
    import_key: ImportKeyResponse
    export_key: ExportKeyResponse
    get_key: KeyInfo
    derive_dukpt_initial_key: DeriveDukptInitialKeyResponse
    derive_icc_keys: DeriveIccKeysResponse
    generate_script_mac: GenerateScriptMacResponse
    def __init__(self, id: _Optional[int] = ..., error: _Optional[_Union[CommandError, _Mapping]] = ..., translate_pin: _Optional[_Union[TranslatePinResponse, _Mapping]] = ..., verify_pin: _Optional[_Union[VerifyPinResponse, _Mapping]] = ..., generate_cvv: _Optional[_Union[GenerateCvvResponse, _Mapping]] = ..., verify_cvv: _Optional[_Union[VerifyCvvResponse, _Mapping]] = ..., protect_pan: _Optional[_Union[ProtectPanResponse, _Mapping]] = ..., reveal_pan: _Optional[_Union[RevealPanResponse, _Mapping]] = ..., verify_arqc: _Optional[_Union[VerifyArqcResponse, _Mapping]] = ..., generate_mac: _Optional[_Union[GenerateMacResponse, _Mapping]] = ..., verify_mac: _Optional[_Union[VerifyMacResponse, _Mapping]] = ..., encrypt_data: _Optional[_Union[EncryptDataResponse, _Mapping]] = ..., decrypt_data: _Optional[_Union[DecryptDataResponse, _Mapping]] = ..., generate_pin_offset: _Optional[_Union[GeneratePinOffsetResponse, _Mapping]] = ..., generate_pvv: _Optional[_Union[GeneratePvvResponse, _Mapping]] = ..., generate_random_pin: _Optional[_Union[GenerateRandomPinResponse, _Mapping]] = ..., generate_key: _Optional[_Union[GenerateKeyResponse, _Mapping]] = ..., import_key: _Optional[_Union[ImportKeyResponse, _Mapping]] = ..., export_key: _Optional[_Union[ExportKeyResponse, _Mapping]] = ..., get_key: _Optional[_Union[KeyInfo, _Mapping]] = ..., derive_dukpt_initial_key: _Optional[_Union[DeriveDukptInitialKeyResponse, _Mapping]] = ..., derive_icc_keys: _Optional[_Union[DeriveIccKeysResponse, _Mapping]] = ..., generate_script_mac: _Optional[_Union[GenerateScriptMacResponse, _Mapping]] = ...) -> None: ...

class GenerateKeyPairRequest(_message.Message):
    __slots__ = ("label", "algorithm")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    label: str
    algorithm: KeyAlgorithm
    def __init__(self, label: _Optional[str] = ..., algorithm: _Optional[_Union[KeyAlgorithm, str]] = ...) -> None: ...

class GenerateKeyPairResponse(_message.Message):
    __slots__ = ("key", "public_key_pem")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    public_key_pem: str
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ("key_ref",)
    KEY_REF_FIELD_NUMBER: _ClassVar[int]
    key_ref: str
    def __init__(self, key_ref: _Optional[str] = ...) -> None: ...

class GetPublicKeyResponse(_message.Message):
    __slots__ = ("key", "public_key_pem")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    public_key_pem: str
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class SignDataRequest(_message.Message):
    __slots__ = ("key_ref", "data")
    KEY_REF_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    key_ref: str
    data: bytes
    def __init__(self, key_ref: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class SignDataResponse(_message.Message):
    __slots__ = ("signature",)
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    def __init__(self, signature: _Optional[bytes] = ...) -> None: ...
