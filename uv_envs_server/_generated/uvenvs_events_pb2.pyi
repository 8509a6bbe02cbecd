from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchRequest(_message.Message):
    __slots__ = ("workflow_id", "node_id", "names", "operation_id", "after_sequence")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    node_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    operation_id: str
    after_sequence: int
    def __init__(self, workflow_id: _Optional[str] = ..., node_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., operation_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class EnvKey(_message.Message):
    __slots__ = ("workflow_id", "node_id", "version_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    node_id: str
    version_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., node_id: _Optional[str] = ..., version_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "name", "operation_id", "key", "occurred_at", "phase", "counts", "details_json")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    name: str
    operation_id: str
    key: EnvKey
    occurred_at: float
    phase: str
    counts: _containers.ScalarMap[str, int]
    details_json: str
    def __init__(self, sequence: _Optional[int] = ..., name: _Optional[str] = ..., operation_id: _Optional[str] = ..., key: _Optional[_Union[EnvKey, _Mapping]] = ..., occurred_at: _Optional[float] = ..., phase: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ..., details_json: _Optional[str] = ...) -> None: ...
