"""uv-envs: isolated Python environments for workflow nodes, provisioned with uv.

Ask for an environment by its key (workflow, node, version) and a spec; get back
an interpreter to run the node's code with::

    from uv_envs import EnvKey, EnvManager, Settings

    manager = EnvManager(Settings(root="./envs-root"))
    env = manager.ensure(EnvKey("demo", "hello", "v1"), packages=["six"])
    print(env.python_path)  # <cwd>/envs-root/envs/demo/hello/v1/.venv/bin/python
    manager.close()

Every operation is atomic, safe across processes and recorded in an audit
trail; a failure is an :class:`UvEnvsError` (:mod:`uv_envs.errors` draws the
tree). The command line is ``uv-envs`` (``uv-envs --help``); the servers and
their clients are in ``uv_envs_server``. docs/README.md says which page
answers which question.

The public API is what this module re-exports (``__all__``, listed by group in
docs/api.md); everything in ``uv_envs._*`` is private. The errors are also
grouped in :mod:`uv_envs.errors`, with their hierarchy; fakes for tests live in
:mod:`uv_envs.testing`.
"""

import importlib as _importlib
import importlib.metadata as _importlib_metadata
import warnings as _warnings

from uv_envs._audit.log import AuditLog, AuditOutcome, AuditQuery
from uv_envs._audit.open import open_audit_log
from uv_envs._bytecode.compiler import BytecodeCompiler, CompileJob
from uv_envs._core.repair import RepairReport
from uv_envs._core.replication import Replication
from uv_envs._events.domain import (
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
from uv_envs._events.records import EVENT_NAMES, EventFilter, Phase, StreamEvent
from uv_envs._events.stream import EventStream, StreamStats, SubscriberLimits, Subscription
from uv_envs._events.tallies import ManagerStats, Timings
from uv_envs._procs.scan import ProcessScanner, ProcessUse, ProcessView, ProcScanner
from uv_envs._store.metadata import Damage, UnreadableRecord
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import SubprocessUvExecutor, UvExecutor, UvResult
from uv_envs._uv.python import Interpreter, InterpreterFinder

from . import errors
from ._manager import EnvManager
from ._models import (
    DeleteStatus,
    Environment,
    EnvKey,
    EnvSpec,
    EnvStatus,
    EnvUsage,
    IndexSettings,
    OperationStatus,
    RayLink,
    RetiredGeneration,
)
from ._provider import IEnvironmentProvider, LocalEnvironmentProvider, key_from_config
from ._reports import (
    CleanupRemoval,
    CleanupReport,
    ClusterView,
    DeletedOperations,
    DeleteResult,
    Dependencies,
    EnvInUse,
    Export,
    ExportFormat,
    LiveProcess,
    OperationPage,
    OperationRecord,
    OperationResult,
    Provisioned,
    ProvisionOutcome,
    StatusReport,
    VerifyReport,
)
from ._settings import DEFAULT_MIN_CLEANUP_IDLE_HOURS, Settings
from ._validation import MAX_PACKAGES
from ._variants import VariantRegistry
from .errors import *  # noqa: F403 - the errors are listed once, in uv_envs.errors

try:
    __version__ = _importlib_metadata.version("uv-envs")
except _importlib_metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# Names of 0.1.0 that were implementation details: importable for one more
# release, with a DeprecationWarning naming what to use instead.
_DEPRECATED = {
    "converter": (
        "uv_envs._models",
        "converter",
        "Environment.to_dict() and Environment.from_dict()",
    ),
    "default_root": ("uv_envs._settings", "default_root", "Settings().root"),
    "environment_dict": (
        "uv_envs._variants",
        "environment_dict",
        "LocalEnvironmentProvider.create_environment",
    ),
    "JsonMetadataRepository": ("uv_envs._store.metadata", "JsonMetadataRepository", "EnvManager"),
    "MetadataRepository": ("uv_envs._store.metadata", "JsonMetadataRepository", "EnvManager"),
    "PythonFinder": ("uv_envs._uv.python", "PythonFinder", "EnvManager.pythons()"),
    "SqliteAuditLog": ("uv_envs._audit.sqlite", "SqliteAuditLog", "EnvManager.operations()"),
}


def __getattr__(name: str) -> object:
    try:
        module, attribute, instead = _DEPRECATED[name]
    except KeyError:
        msg = f"module 'uv_envs' has no attribute {name!r}"
        raise AttributeError(msg) from None
    _warnings.warn(
        f"uv_envs.{name} is deprecated and will be removed in 0.3; use {instead}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_importlib.import_module(module), attribute)


__all__ = [
    "DEFAULT_MIN_CLEANUP_IDLE_HOURS",
    "EVENT_NAMES",
    "MAX_PACKAGES",
    "AuditLog",
    "AuditOutcome",
    "AuditQuery",
    "BytecodeCompiler",
    "CleanupRemoval",
    "CleanupReport",
    "ClusterView",
    "CompileJob",
    "Damage",
    "DeleteResult",
    "DeleteStatus",
    "DeletedOperations",
    "Dependencies",
    "DependenciesAdded",
    "DependenciesRemoved",
    "DependenciesUpdated",
    "DependencyOperationFailed",
    "DomainEvent",
    "EnvInUse",
    "EnvKey",
    "EnvManager",
    "EnvSpec",
    "EnvStatus",
    "EnvUsage",
    "Environment",
    "EnvironmentCleanupCompleted",
    "EnvironmentCreated",
    "EnvironmentCreationFailed",
    "EnvironmentCreationStarted",
    "EnvironmentDeleted",
    "EnvironmentSyncFailed",
    "EnvironmentSynced",
    "EventBus",
    "EventFilter",
    "EventPublisher",
    "EventStream",
    "Export",
    "ExportFormat",
    "IEnvironmentProvider",
    "IndexSettings",
    "Interpreter",
    "InterpreterFinder",
    "LiveProcess",
    "LocalEnvironmentProvider",
    "ManagerStats",
    "OperationPage",
    "OperationRecord",
    "OperationResult",
    "OperationStatus",
    "Phase",
    "ProcScanner",
    "ProcessScanner",
    "ProcessUse",
    "ProcessView",
    "ProvisionOutcome",
    "Provisioned",
    "RayLink",
    "RepairReport",
    "Replication",
    "RetiredGeneration",
    "Settings",
    "StatusReport",
    "StreamEvent",
    "StreamStats",
    "SubprocessUvExecutor",
    "SubscriberLimits",
    "Subscription",
    "Timings",
    "UnreadableRecord",
    "UvExecutor",
    "UvInvocation",
    "UvResult",
    "VariantRegistry",
    "VerifyReport",
    "__version__",
    "key_from_config",
    "logging_publisher",
    "open_audit_log",
]
__all__ += errors.__all__  # the errors, each once, grouped in uv_envs.errors
