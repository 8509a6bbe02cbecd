"""uv-envs: isolated Python environments for workflow nodes, provisioned with uv.

The public API is what this module re-exports; everything in ``uv_envs._*`` is
private. Fakes for tests live in :mod:`uv_envs.testing`.
"""

import importlib.metadata as _importlib_metadata

from ._audit import AuditLog, SqliteAuditLog
from ._audit_open import open_audit_log
from ._audit_postgres import PostgresAuditLog
from ._errors import (
    AuditSchemaTooNew,
    AuditUnavailable,
    DirectReferenceNotAllowed,
    EnvironmentAlreadyExists,
    EnvironmentBusy,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    InvalidIdentifier,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    OperationCancelled,
    PythonNotFound,
    RequirementsOptionNotAllowed,
    ResolutionFailed,
    StorageError,
    UvEnvsError,
    UvError,
    UvNotFound,
    UvTimeout,
)
from ._events import (
    DependenciesAdded,
    DependenciesRemoved,
    DependenciesUpdated,
    DependencyOperationFailed,
    DomainEvent,
    EnvironmentCleanupCompleted,
    EnvironmentCreated,
    EnvironmentCreationFailed,
    EnvironmentCreationStarted,
    EnvironmentDeleted,
    EnvironmentSynced,
    EnvironmentSyncFailed,
    EventBus,
    EventPublisher,
    logging_publisher,
)
from ._manager import EnvManager
from ._metadata import JsonMetadataRepository, MetadataRepository
from ._models import (
    CleanupReport,
    DeletedOperations,
    DeleteResult,
    Dependencies,
    Environment,
    EnvKey,
    EnvSpec,
    EnvStatus,
    Export,
    IndexSettings,
    OperationPage,
    OperationRecord,
    OperationResult,
    RetiredGeneration,
    StatusReport,
    VerifyReport,
    converter,
)
from ._provider import IEnvironmentProvider, LocalEnvironmentProvider, environment_dict
from ._python import Interpreter, InterpreterFinder, PythonFinder
from ._settings import Settings, default_root
from ._uv import SubprocessUvExecutor, UvExecutor, UvInvocation, UvResult

try:
    __version__ = _importlib_metadata.version("uv-envs")
except _importlib_metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AuditLog",
    "AuditSchemaTooNew",
    "AuditUnavailable",
    "CleanupReport",
    "DeleteResult",
    "DeletedOperations",
    "Dependencies",
    "DependenciesAdded",
    "DependenciesRemoved",
    "DependenciesUpdated",
    "DependencyOperationFailed",
    "DirectReferenceNotAllowed",
    "DomainEvent",
    "EnvKey",
    "EnvManager",
    "EnvSpec",
    "EnvStatus",
    "Environment",
    "EnvironmentAlreadyExists",
    "EnvironmentBusy",
    "EnvironmentCleanupCompleted",
    "EnvironmentCreated",
    "EnvironmentCreationFailed",
    "EnvironmentCreationStarted",
    "EnvironmentDeleted",
    "EnvironmentInUse",
    "EnvironmentNotFound",
    "EnvironmentNotReady",
    "EnvironmentSyncFailed",
    "EnvironmentSynced",
    "EventBus",
    "EventPublisher",
    "Export",
    "IEnvironmentProvider",
    "IndexSettings",
    "Interpreter",
    "InterpreterFinder",
    "InvalidIdentifier",
    "InvalidInput",
    "InvalidPythonVersion",
    "InvalidRequirement",
    "JsonMetadataRepository",
    "LocalEnvironmentProvider",
    "MetadataRepository",
    "OperationCancelled",
    "OperationPage",
    "OperationRecord",
    "OperationResult",
    "PostgresAuditLog",
    "PythonFinder",
    "PythonNotFound",
    "RequirementsOptionNotAllowed",
    "ResolutionFailed",
    "RetiredGeneration",
    "Settings",
    "SqliteAuditLog",
    "StatusReport",
    "StorageError",
    "SubprocessUvExecutor",
    "UvEnvsError",
    "UvError",
    "UvExecutor",
    "UvInvocation",
    "UvNotFound",
    "UvResult",
    "UvTimeout",
    "VerifyReport",
    "__version__",
    "converter",
    "default_root",
    "environment_dict",
    "logging_publisher",
    "open_audit_log",
]
