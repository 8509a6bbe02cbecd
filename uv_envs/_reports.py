"""What operations answer: reports, results and audit records (frozen attrs classes).

The env vocabulary they speak of (keys, specs, ``Environment``, statuses) is in
:mod:`._models`; the same cattrs converter (de)serialises both.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from ._models import DeleteStatus, Environment, EnvKey, EnvStatus, OperationStatus


@attrs.frozen
class StatusReport:
    """What ``status`` answers: the state of the files and, if it exists, the environment.

    ``error`` says why an env is not READY when it is known: what is wrong with
    an ``UNREADABLE`` env's metadata, or what made it ``DAMAGED``.
    """

    key: EnvKey
    status: EnvStatus
    env_path: Path
    has_pyproject: bool = False
    has_uv_lock: bool = False
    has_venv: bool = False
    environment: Environment | None = None
    error: str | None = None


@attrs.frozen
class OperationResult:
    """The outcome of add, update, remove and sync: the env as it now is, and uv's output.

    ``changed`` is False when an add, update or remove left the project (the
    declared dependencies and the lock) as it was: the env kept its generation.
    """

    environment: Environment
    operation: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    duration_ms: int = 0
    changed: bool = True


@attrs.frozen
class Dependencies:
    """Declared dependencies (from pyproject.toml) and locked versions (from uv.lock)."""

    key: EnvKey
    declared: tuple[str, ...]
    locked: Mapping[str, str]


class ExportFormat(enum.StrEnum):
    """What an export gives: the project files, or the lock as uv exports it.

    The one list of formats: EnvManager.export, the CLI's --format and the HTTP
    API's format take these values, and ``uv export --format`` the lock formats
    (``cyclonedx`` as ``cyclonedx1.5``, see ``uv_envs._uv.commands``).
    """

    #: The project files, ``pyproject.toml`` and ``uv.lock``, as an :class:`Export`.
    PROJECT = "project"
    #: The lock as ``requirements.txt`` (``uv export``), as text.
    REQUIREMENTS_TXT = "requirements.txt"
    #: The lock as a PEP 751 ``pylock.toml`` (``uv export``), as text.
    PYLOCK_TOML = "pylock.toml"
    #: The lock as a CycloneDX 1.5 JSON SBOM (``uv export``, a preview format of uv),
    #: naming the env and its digest in ``metadata.properties``, as text.
    CYCLONEDX = "cyclonedx"

    @property
    def file_name(self) -> str:
        """The file this format is written to (``-o``, the HTTP ``files``); not for PROJECT."""
        return "sbom.cdx.json" if self is ExportFormat.CYCLONEDX else self.value


@attrs.frozen
class Export:
    """The project files of an environment, as text."""

    key: EnvKey
    pyproject_toml: str
    uv_lock: str


class ProvisionOutcome(enum.StrEnum):
    """What a create or ensure did to reach the env it returns."""

    #: A new env was built (none existed, or a failed create was started over).
    CREATED = "CREATED"
    #: An env with the same spec existed and was returned unchanged.
    REUSED = "REUSED"
    #: The env existed and moved to a new generation built from the spec: another
    #: spec (ensure), or a DAMAGED env rebuilt.
    REBUILT = "REBUILT"


@attrs.frozen
class Provisioned:
    """What ``EnvManager.provision`` answers: the env, how it was reached, its project.

    ``pyproject_toml`` is the current generation's, read under the env's lock
    in the same call, so no delete or ensure can land between the two.
    """

    environment: Environment
    outcome: ProvisionOutcome
    pyproject_toml: str

    @property
    def created(self) -> bool:
        """Whether this call built the env (HTTP answers 201 then, 200 otherwise)."""
        return self.outcome is ProvisionOutcome.CREATED


@attrs.frozen
class DeleteResult:
    """``status`` is ``DELETED``, ``NOT_FOUND`` when there was nothing to delete, or ``DEFERRED``.

    ``DEFERRED``: processes used the env (``held_by``: their pids; ``leases``: live
    leases), so it was withdrawn and goes once the last of them exits. On a
    served Ray cluster, ``held_on`` names the other machines that keep a copy
    for now (``node_id@address``; a process there uses it): their copies go once
    they are free, and the delete is ``DEFERRED`` for them too.
    """

    key: EnvKey
    status: DeleteStatus
    held_by: tuple[int, ...] = ()
    leases: int = 0
    held_on: tuple[str, ...] = ()


@attrs.frozen
class LiveProcess:
    """A process on the host that uses an env: its pid, and what it runs and how it uses the env."""

    pid: int
    description: str


@attrs.frozen
class EnvInUse:
    """An env cleanup left because live processes use it (read from ``/proc``, leases aside)."""

    key: EnvKey
    processes: tuple[LiveProcess, ...]


@attrs.frozen
class CleanupRemoval:
    """One env a cleanup deleted (or, in a dry run, would delete), why, and the bytes freed.

    ``reason`` is ``idle`` (unused longer than the idle age) or ``disk budget``
    (least recently used while the root was over ``max_bytes``); ``bytes``
    counts its own files and the shared venvs no env left behind links.
    """

    key: EnvKey
    reason: str
    bytes: int
    idle_seconds: float


@attrs.frozen
class CleanupReport:
    """What a cleanup removed, and what it left because the env was busy, leased or in use.

    ``store_entries_in_use`` counts store entries no generation links any more
    that were kept because a live process uses their files. In a ``dry_run``
    nothing is deleted: ``deleted`` is empty, ``removals`` and
    ``pruned_generations`` say what a cleanup with the same limits would remove.
    """

    deleted: tuple[EnvKey, ...]
    skipped_busy: tuple[EnvKey, ...]
    pruned_generations: int
    checked_at: float
    pruned_store_entries: int = 0
    pruned_locks: int = 0
    skipped_leased: tuple[EnvKey, ...] = ()
    bytes_in_use: int | None = None
    skipped_unreadable: tuple[EnvKey, ...] = ()
    skipped_in_use: tuple[EnvInUse, ...] = ()
    store_entries_in_use: int = 0
    removals: tuple[CleanupRemoval, ...] = ()
    dry_run: bool = False


@attrs.frozen
class VerifyReport:
    """What ``verify`` found; ``problems`` is empty for a healthy env.

    ``digest`` is the env digest computed from the files on disk; a problem
    names it when it differs from the one recorded at install.
    """

    key: EnvKey
    problems: tuple[str, ...]
    checked_files: int = 0
    digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@attrs.frozen
class OperationRecord:
    """One row of the audit trail."""

    id: int
    workflow_id: str
    node_id: str
    version_id: str
    operation: str
    status: OperationStatus = attrs.field(converter=OperationStatus)
    started_at: float
    finished_at: float | None = None
    duration_ms: int | None = None
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    #: The host and root that ran the operation; empty in records written before 0.2.
    host: str = ""
    root: str = ""


@attrs.frozen
class OperationPage:
    """A page of audit records, newest first."""

    total: int
    limit: int
    offset: int
    items: tuple[OperationRecord, ...]


@attrs.frozen
class DeletedOperations:
    """What ``delete_operations`` removed from the audit trail."""

    workflow_id: str
    node_id: str
    deleted_count: int
    deleted_node_ids: tuple[str, ...]


class Reported(Protocol):
    """A report a server turns into JSON as it is."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        ...


class ClusterView(Protocol):
    """What a manager serving a Ray cluster shows besides its envs (``EnvManager.cluster``).

    Set by :func:`uv_envs.ray.ClusterEnvManager`; both servers answer
    ``/v1/cluster``, an env's ``nodes`` and the status page from it.
    """

    def nodes(self, key: EnvKey) -> Sequence[Reported]:
        """Each alive node's state for the env of ``key``."""
        ...

    def cluster_nodes(self) -> Sequence[Reported]:
        """Each alive node, with why it cannot be served where it cannot."""
        ...

    def relay_counts(self) -> Reported | None:
        """What the wheel relay fetched and served (None when it runs none)."""
        ...

    def unavailable(self) -> str | None:
        """Why the cluster cannot be used now (its head is away); None while it answers."""
        ...

    def needs_restart(self) -> bool:
        """Whether a new cluster answers at the address, which only a new process can join."""
        ...
