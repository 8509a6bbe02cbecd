"""The data uv-envs passes around: frozen attrs classes, (de)serialised by cattrs."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from ._errors import RayPythonMismatch
from ._validation import validate_id

SCHEMA_VERSION = 1


class EnvStatus(enum.StrEnum):
    """Where an environment stands. ``NOT_FOUND`` is only ever reported, never stored.

    ``DAMAGED`` is set by ``verify`` when the venv no longer matches its lock;
    ``sync`` (or any operation that builds a new generation) repairs it.
    ``UNREADABLE`` is only ever reported, never stored: the env's
    ``metadata.json`` is missing, truncated, not JSON or of another schema, so
    the env is quarantined until it is deleted.
    """

    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DAMAGED = "DAMAGED"
    UNREADABLE = "UNREADABLE"
    #: Withdrawn by a delete while processes used it: removed once the last one exits.
    DELETING = "DELETING"
    NOT_FOUND = "NOT_FOUND"


def _check_workflow(_: object, __: attrs.Attribute[str], value: str) -> None:
    validate_id(value, "workflow_id")


def _check_node(_: object, __: attrs.Attribute[str], value: str) -> None:
    validate_id(value, "node_id")


def _check_version(_: object, __: attrs.Attribute[str], value: str) -> None:
    validate_id(value, "version_id", allow_empty=True)


class OperationStatus(enum.StrEnum):
    """How an audited operation stands: running, or how it ended."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class DeleteStatus(enum.StrEnum):
    """What ``delete`` did."""

    DELETED = "DELETED"
    NOT_FOUND = "NOT_FOUND"
    #: In use: withdrawn now (status ``DELETING``), removed once its last user exits.
    DEFERRED = "DEFERRED"


@attrs.frozen(order=True)
class EnvKey:
    """Names one environment: a workflow, one of its nodes and a version.

    Constructing a key validates it, so a key that exists is safe to turn into
    a path. ``version_id`` may be empty.
    """

    workflow_id: str = attrs.field(validator=_check_workflow)
    node_id: str = attrs.field(validator=_check_node)
    version_id: str = attrs.field(default="", validator=_check_version)

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.node_id}/{self.version_id}"


@attrs.frozen
class IndexSettings:
    """Where uv looks for packages. Part of the spec hash: another index is another env."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    offline: bool = False


@attrs.frozen
class EnvSpec:
    """What an environment is asked to contain.

    ``packages`` are PEP 508 strings as normalized by ``packaging``;
    ``requirements_text`` is kept only when it carries pip options that must
    be given to uv as a file (otherwise its requirements are in ``packages``).
    """

    packages: tuple[str, ...] = ()
    python: str = ""
    requirements_text: str | None = None


@attrs.frozen
class RetiredGeneration:
    """A generation that is no longer current; removed by cleanup once old enough."""

    generation: int
    retired_at: float


@attrs.frozen
class RayLink:
    """How an env reaches the cluster's Ray (see ``uv_envs/_raylink.py``).

    ``error`` is set when the env cannot run under that Ray (another Python
    minor); :meth:`Environment.ray_runtime_env` then raises instead of handing
    Ray an interpreter whose workers would die at start.
    """

    ray_version: str
    python: str
    site_dir: str
    error: str | None = None


@attrs.frozen
class Environment:
    """One environment as stored in its ``metadata.json``.

    ``python_path`` always goes through the env's ``.venv`` link, so it follows
    generation switches; ``pinned_python_path`` names the concrete generation,
    for a process that must keep one consistent site-packages while it runs.
    """

    key: EnvKey
    env_path: Path
    status: EnvStatus
    spec: EnvSpec
    spec_hash: str
    python_version: str = ""
    python_executable: str = ""
    generation: int = 0
    pending_generation: int | None = None
    retired: tuple[RetiredGeneration, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    ray: RayLink | None = None
    #: The env digest of the current generation's venv (see ``uv_envs._store.digest``):
    #: the same for one lock on one platform and Python wherever it is installed.
    #: Empty in records written before uv-envs computed it.
    digest: str = ""

    @property
    def venv_path(self) -> Path:
        """The env's ``.venv``, a link to the current generation's venv."""
        return self.env_path / ".venv"

    @property
    def python_path(self) -> Path:
        """``<env_path>/.venv/bin/python``, the interpreter that follows generation switches."""
        return self.venv_path / "bin" / "python"

    @property
    def pinned_python_path(self) -> Path:
        """The interpreter of the current generation itself; it never changes under a process."""
        return self.env_path / "gens" / str(self.generation) / ".venv" / "bin" / "python"

    @property
    def packages(self) -> tuple[str, ...]:
        """The declared dependencies."""
        return self.spec.packages

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values, as ``metadata.json`` stores it."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Environment:
        """The record from :meth:`to_dict`'s values; raises ``ValueError`` if they do not fit."""
        try:
            return converter.structure(data, cls)
        except Exception as exc:
            msg = f"not an environment record: {exc}"
            raise ValueError(msg) from exc

    def runtime_env(self, *, pinned: bool = False) -> dict[str, Any]:
        """What a runner needs (Ray's ``py_executable`` among it), as plain values.

        With ``pinned``, the interpreter and venv are the current generation's
        own, which never change under a running process.
        """
        linked, own = self._venvs()
        venv = own if pinned else linked
        return {
            "env_path": str(self.env_path),
            "python_path": f"{linked}/bin/python",
            "pinned_python_path": f"{own}/bin/python",
            "venv_path": venv,
            "env_vars": {"VIRTUAL_ENV": venv},
            "py_executable": f"{venv}/bin/python",
            "python_version": self.python_version,
            "generation": self.generation,
        }

    def _venvs(self) -> tuple[str, str]:
        # venv_path and the current generation's own venv, as strings: what str() of the
        # Path properties gives, without a dozen pathlib joins per status read.
        env = str(self.env_path)
        return f"{env}/.venv", f"{env}/gens/{self.generation}/.venv"

    def ray_runtime_env(self, *, pinned: bool = False) -> dict[str, Any]:
        """A Ray ``runtime_env`` as it is: ``{"py_executable": ..., "env_vars": {...}}``.

        Pass it straight to ``ray.remote(...).options(runtime_env=...)``.
        Raises :class:`~uv_envs.RayPythonMismatch` for an env that cannot be
        a worker of the Ray it was linked to (another Python minor).
        """
        if self.ray is not None and self.ray.error:
            raise RayPythonMismatch(f"environment {self.key}: {self.ray.error}")
        linked, own = self._venvs()
        venv = own if pinned else linked
        return {"py_executable": f"{venv}/bin/python", "env_vars": {"VIRTUAL_ENV": venv}}


@attrs.frozen
class EnvUsage:
    """What an env costs and who uses it, as cleanup sees it.

    ``own_bytes``: the env's folder; ``venv_bytes``: the venv its current
    generation links from the shared store (0 for a private venv, which
    ``own_bytes`` counts); ``last_used``: the later of its last operation and
    its last hand-out; ``leased_generations``: generations held by live leases.
    """

    key: EnvKey
    own_bytes: int
    venv_bytes: int
    last_used: float
    leased_generations: tuple[int, ...] = ()


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Path, str)
    converter.register_structure_hook(Path, lambda value, _: Path(value))
    # Keys are validated on the way in, so a tampered metadata file fails loudly.
    converter.register_structure_hook(
        EnvKey, lambda value, _: EnvKey(value["workflow_id"], value["node_id"], value["version_id"])
    )
    return converter


converter = _make_converter()
