"""The classes of the one error hierarchy of uv-envs, drawn in :mod:`uv_envs.errors`.

Lower-level errors (``subprocess``, ``OSError``, ``sqlite3``, ``psycopg``, ``packaging``)
are translated where they happen, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence


class UvEnvsError(Exception):
    """Base class of every error uv-envs raises on purpose.

    ``fields`` names the settings or parameters at fault, as the Python API
    spells them (``idle_seconds``, ``python``, ``root`` ...), so each door
    (the CLI, HTTP, gRPC) can word the message with its own name for them:
    a flag, a body field.
    """

    fields: tuple[str, ...] = ()

    def __init__(self, *args: object, fields: Sequence[str] = ()) -> None:
        super().__init__(*args)
        self.fields = tuple(fields)


class InvalidInput(UvEnvsError, ValueError):
    """The request was rejected before anything was changed; ``fields`` names what is wrong."""


class InvalidIdentifier(InvalidInput):
    """A workflow, node or version id is empty, too long or has forbidden characters."""


class InvalidRequirement(InvalidInput):
    """A package string is not a PEP 508 requirement uv-envs accepts."""


class DirectReferenceNotAllowed(InvalidRequirement):
    """A requirement points at a URL, a path or a VCS repository.

    Building such a source tree runs its code; allow it with
    ``Settings(allow_direct_references=True)``.
    """


class RequirementsOptionNotAllowed(InvalidInput):
    """A requirements text carries pip options (``-e``, ``--index-url``, ``-r`` ...)."""


class InvalidPythonVersion(InvalidInput):
    """A Python version request is not of the form ``3.12`` or ``3.12.1``."""


class PythonNotFound(InvalidInput, LookupError):
    """No installed interpreter matches the requested Python version."""

    def __init__(self, request: str, found: Sequence[str]) -> None:
        self.request = request
        self.found = tuple(found)
        listed = ", ".join(self.found) or "none"
        super().__init__(
            f"no installed Python matches {request!r}; found: {listed}. Install it "
            f"(uv python install {request}) or add the folder holding its interpreter to "
            "UV_ENVS_PYTHON_PATHS"
        )


class EnvironmentNotFound(UvEnvsError, LookupError):
    """No environment exists for the key."""

    def __str__(self) -> str:
        # LookupError would otherwise show the repr of its argument.
        return str(self.args[0]) if self.args else ""


class EnvironmentAlreadyExists(UvEnvsError, FileExistsError):
    """``create`` was asked for a key that already has an environment with another spec.

    ``key`` is the env's :class:`~uv_envs.EnvKey` and ``differences`` says what differs between the
    two specs, one short phrase each (``"python: '3.12' there, not given here"``);
    ``headline`` is the message without the way out, for a door that words
    the way out itself (``uv-envs ensure``, ``PUT``).
    """

    def __init__(
        self,
        message: str,
        *,
        key: object = None,
        differences: Sequence[str] = (),
        headline: str = "",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.differences = tuple(differences)
        self.headline = headline or message

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EnvironmentNotReady(UvEnvsError, RuntimeError):
    """The environment exists but is not READY (still CREATING, or FAILED)."""


class EnvironmentBusy(UvEnvsError, TimeoutError):
    """The environment's lock was not free before the lock timeout."""


class EnvironmentInUse(UvEnvsError, RuntimeError):
    """A live process leases or uses the environment; delete it with ``force=True``.

    ``pids`` names the processes seen using it (empty when only leases hold it).
    """

    def __init__(
        self, message: str, pids: Sequence[int] = (), *, fields: Sequence[str] = ()
    ) -> None:
        super().__init__(message, fields=fields)
        self.pids = tuple(pids)


class UvError(UvEnvsError, RuntimeError):
    """uv ran and failed. Carries the command line, exit code, stdout and stderr."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        exit_code: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        self.command = tuple(command)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        detail = stderr.strip()
        super().__init__(f"{message}\n{detail}" if detail else message)


class ResolutionFailed(UvError):
    """The requirements do not resolve: a missing package or conflicting versions."""


class HashMismatch(UvError):
    """A file uv downloaded (from the index or a cluster's relay) does not have the lock's hash.

    uv refuses it before anything is installed, so the environment is as it was.
    """


class UvTimeout(UvError, TimeoutError):
    """uv was stopped because it ran past its timeout."""


class OperationCancelled(UvEnvsError):
    """The caller cancelled the operation (e.g. a gRPC deadline); it was rolled back."""


class TooManySubscribers(UvEnvsError, RuntimeError):
    """A new subscriber to the event stream would pass a cap (per server or per client)."""


class UvNotFound(UvEnvsError, FileNotFoundError):
    """The uv binary could not be found."""


class StorageError(UvEnvsError, OSError):
    """The metadata or audit store is unreadable or could not be written."""


class RayIncompatible(UvEnvsError, RuntimeError):
    """The env cannot run as a worker of the cluster's Ray (see the subclasses)."""


class RayVersionConflict(RayIncompatible):
    """The env's lock pins a Ray version other than the cluster's; found at create time."""


class RayImportFailed(RayIncompatible):
    """``import ray`` fails in the env: one of its pins breaks what Ray imports.

    ``stderr`` holds the interpreter's traceback.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        self.stderr = stderr
        detail = stderr.strip()
        super().__init__(f"{message}\n{detail}" if detail else message)


class RayPythonMismatch(RayIncompatible):
    """The env runs a Python minor other than the cluster's, so it cannot be a Ray worker.

    The env itself is built and usable as a subprocess; only handing it to Ray
    is refused (cloudpickled code does not cross Python minors).
    """


class RayNotAvailable(UvEnvsError, LookupError):
    """No Ray where the settings say the cluster's Ray is (or Ray is needed and absent)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RayNodeUnusable(RayNotAvailable):
    """A node of the cluster cannot hold the envs a server hands out (``node_id`` says which).

    Its root path cannot be made or written there, or its Ray runs another
    Python minor than the cluster's envs: found when the server starts.
    """

    def __init__(self, message: str, *, node_id: str = "") -> None:
        super().__init__(message)
        self.node_id = node_id


class RayClusterUnavailable(RayNotAvailable):
    """The served cluster's head (its GCS) does not answer now: retry once it is back.

    A server serving a Ray cluster answers a create with it at once while its
    head is away (gRPC ``UNAVAILABLE``, HTTP 503); envs already on the nodes
    keep working meanwhile.
    """


class EnvironmentUnreadable(EnvironmentNotReady, StorageError):
    """The env's ``metadata.json`` is missing, truncated, not JSON or of another schema.

    Such an env is quarantined: listed and reported with status ``UNREADABLE``,
    skipped by ``recover`` and ``cleanup``, removed by ``delete``. Operations
    that need its record raise this error, which names the way out. It is also
    a :class:`StorageError`, which is what reading it raised before.
    ``record`` is the :class:`~uv_envs.UnreadableRecord` (key, path, what is
    wrong).
    """

    def __init__(self, message: str, record: object = None) -> None:
        self.record = record
        super().__init__(message)

    def __str__(self) -> str:
        # OSError would otherwise format a one-argument error as its repr.
        return str(self.args[0]) if self.args else ""


class AuditUnavailable(StorageError):
    """The audit database could not be reached in time; the message names the problem.

    Raised before an operation changes anything when its record cannot be
    started (``finished`` is ``None``), and after it when the record cannot be
    completed: ``finished`` is then the operation's own outcome (``"SUCCESS"``,
    ``"FAILED"`` ...) and the message says the environment was changed. Never
    carries a password.
    """

    def __init__(self, message: str, *, finished: str | None = None) -> None:
        self.finished = finished
        super().__init__(message)


class AuditSchemaTooNew(StorageError):
    """The audit database was set up by a newer uv-envs; this one refuses to write to it."""

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"the audit database has schema version {found}, but this uv-envs supports "
            f"up to {supported}; upgrade uv-envs on this host"
        )
