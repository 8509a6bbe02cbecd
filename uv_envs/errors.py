"""The errors of uv-envs, in one namespace; each is importable from ``uv_envs`` too.

Every error raised on purpose is a :class:`UvEnvsError`, and each class also
subclasses the builtin a caller would reach for first, so ``except ValueError``
keeps working for bad input and ``except TimeoutError`` for a busy env::

    UvEnvsError
    ├── InvalidInput (ValueError)                  bad input; nothing was changed
    │   ├── InvalidIdentifier                      workflow/node/version id
    │   ├── InvalidRequirement                     not a PEP 508 requirement
    │   │   └── DirectReferenceNotAllowed          name @ url, paths, VCS URLs
    │   ├── RequirementsOptionNotAllowed           -e / --index-url / -r in a requirements text
    │   ├── InvalidPythonVersion                   not "3.12" or "3.12.1"
    │   └── PythonNotFound (LookupError)           no such interpreter installed
    ├── EnvironmentNotFound (LookupError)
    ├── EnvironmentAlreadyExists (FileExistsError)
    ├── EnvironmentNotReady (RuntimeError)         CREATING or FAILED
    │   └── EnvironmentUnreadable (StorageError)   its metadata.json cannot be read: quarantined
    ├── EnvironmentBusy (TimeoutError)             its lock was not free in time
    ├── EnvironmentInUse (RuntimeError)            leased by, or in use by, a running process
    ├── UvError (RuntimeError)                     uv ran and failed; command, exit code, stderr
    │   ├── ResolutionFailed                       the requirements do not resolve
    │   ├── HashMismatch                           a download is not the lock's file
    │   └── UvTimeout (TimeoutError)               uv ran longer than allowed
    ├── UvNotFound (FileNotFoundError)             no uv binary
    ├── OperationCancelled                         the caller cancelled; rolled back
    ├── TooManySubscribers (RuntimeError)          the event stream's subscriber caps are reached
    ├── RayIncompatible (RuntimeError)             the env cannot be a worker of the cluster's Ray
    │   ├── RayVersionConflict                     it pins a Ray other than the cluster's
    │   ├── RayImportFailed                        ``import ray`` fails in it (a pin breaks Ray)
    │   └── RayPythonMismatch                      it runs another Python minor than the cluster
    ├── RayNotAvailable (LookupError)              no Ray where the settings say the cluster's is
    │   ├── RayNodeUnusable                        a node cannot hold the served envs; names it
    │   └── RayClusterUnavailable                  the served cluster's head does not answer now
    └── StorageError (OSError)                     unreadable metadata or audit store
        ├── AuditUnavailable                       the audit database cannot be reached
        └── AuditSchemaTooNew                      the audit database has a newer schema

Lower-level errors (``subprocess``, ``OSError``, ``sqlite3``, ``psycopg``, ``packaging``)
are translated where they happen, with ``raise ... from exc``.
"""

from uv_envs._errors import (
    AuditSchemaTooNew,
    AuditUnavailable,
    DirectReferenceNotAllowed,
    EnvironmentAlreadyExists,
    EnvironmentBusy,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    EnvironmentUnreadable,
    HashMismatch,
    InvalidIdentifier,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    OperationCancelled,
    PythonNotFound,
    RayClusterUnavailable,
    RayImportFailed,
    RayIncompatible,
    RayNodeUnusable,
    RayNotAvailable,
    RayPythonMismatch,
    RayVersionConflict,
    RequirementsOptionNotAllowed,
    ResolutionFailed,
    StorageError,
    TooManySubscribers,
    UvEnvsError,
    UvError,
    UvNotFound,
    UvTimeout,
)

__all__ = [
    "AuditSchemaTooNew",
    "AuditUnavailable",
    "DirectReferenceNotAllowed",
    "EnvironmentAlreadyExists",
    "EnvironmentBusy",
    "EnvironmentInUse",
    "EnvironmentNotFound",
    "EnvironmentNotReady",
    "EnvironmentUnreadable",
    "HashMismatch",
    "InvalidIdentifier",
    "InvalidInput",
    "InvalidPythonVersion",
    "InvalidRequirement",
    "OperationCancelled",
    "PythonNotFound",
    "RayClusterUnavailable",
    "RayImportFailed",
    "RayIncompatible",
    "RayNodeUnusable",
    "RayNotAvailable",
    "RayPythonMismatch",
    "RayVersionConflict",
    "RequirementsOptionNotAllowed",
    "ResolutionFailed",
    "StorageError",
    "TooManySubscribers",
    "UvEnvsError",
    "UvError",
    "UvNotFound",
    "UvTimeout",
]
