"""Settings: one frozen object, read from arguments and ``UV_ENVS_*`` variables."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs
import platformdirs

from ._models import IndexSettings
from ._urls import redact

PythonDownloads = Literal["never", "manual", "automatic"]

#: The least idle time, in hours, a cleanup from the CLI, gRPC or HTTP deletes at
#: unless told otherwise: a careless ``idle_hours=0`` (what an unset proto3 field
#: reads as) would otherwise delete every env not leased right now, the running
#: batch's included. In-process, ``EnvManager.cleanup`` has no floor unless given one.
DEFAULT_MIN_CLEANUP_IDLE_HOURS = 1.0


def default_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$UV_ENVS_ROOT`` if set, else the user data dir from platformdirs."""
    environ = os.environ if environ is None else environ
    if value := environ.get("UV_ENVS_ROOT"):
        return Path(value).expanduser()
    return Path(platformdirs.user_data_dir("uv-envs", appauthor=False))


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).absolute()


def _running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


#: Variables taken as they are: variable -> setting.
_TEXT_VARIABLES = (
    ("UV_ENVS_UV_BIN", "uv_binary"),
    ("UV_ENVS_RAY", "ray"),  # auto, off or the cluster's interpreter
    ("UV_ENVS_RAY_ADDRESS", "ray_address"),
    ("UV_ENVS_WHEEL_RELAY", "wheel_relay"),
    ("UV_ENVS_AUDIT_URL", "audit_url"),
    ("UV_ENVS_AUDIT_HOST", "audit_host"),
)


@attrs.frozen
class Settings:
    """Everything that shapes how uv-envs works on one root.

    Args:
        root: where environments, locks, the audit log and (by default) uv's
            cache live. Nothing is written outside it unless ``cache_dir``
            points elsewhere.
        uv_binary: the uv executable; by default the one the ``uv`` package
            ships, then ``uv`` on ``PATH``.
        index: package index settings given to every uv call.
        cache_dir: uv's cache; ``<root>/cache`` by default, which keeps
            uv's hard links on one file system. Shared venvs are made
            read-only, and uv hard-links their files from this cache, so a
            cache shared with other projects gets read-only files too.
        python_search_paths: extra interpreter folders or files to look in
            besides uv's own discovery and ``~/.pyenv/versions``.
        python_downloads: uv's policy for downloading managed Pythons.
        default_python: the version used when a request names none; the
            running interpreter's ``X.Y`` by default.
        lock_timeout: seconds to wait for an env's lock before
            :class:`~uv_envs.EnvironmentBusy`.
        uv_timeout: seconds one uv command may run before it is stopped.
        allow_direct_references: accept ``name @ url``, paths and VCS URLs.
        allow_requirements_options: accept pip options in requirements texts.
        compile_bytecode: have uv compile ``.pyc`` files at install time.
        background_bytecode: compile each module once per root and link its
            ``.pyc`` into every shared venv holding it before the create
            returns; what no earlier venv compiled is compiled in the
            background after the create (see docs/architecture.md).
            Pointless, so skipped, with ``compile_bytecode``.
        lock_max_age: seconds a stored resolution of a spec is reused before
            the spec is resolved again (so unpinned specs pick up releases).
        max_concurrent_installs: uv installs running at once on this root,
            across processes; more requests queue. The CPU count by default.
        ray: which Ray every env is linked to, so it works as a Ray worker's
            ``py_executable`` (docs/ray.md): ``"auto"`` (the Ray importable
            in this process, if any), ``"off"``, or the path of the cluster's
            Python interpreter.
        ray_address: serve a Ray cluster (``auto`` or ``HOST:PORT``): a
            server started with it installs every env it hands out on every
            node of that cluster, under this same root path (docs/ray.md).
            Only ``uv-envs-server`` reads it; the library itself never
            connects to Ray for it.
        audit_url: a ``postgresql://`` URL: keep the audit trail in that
            database, shared by many hosts and roots. Unset, it is SQLite in
            the root. Give the password by ``PGPASSWORD``, a ``.pgpass`` or
            ``audit_password_file`` rather than in the URL; it is never shown.
        audit_password_file: a file whose first line is the database password.
        audit_host: the host name stamped on each audit record; the machine's
            host name by default.
        wheel_relay: a wheel relay's URL (the cluster service runs one and
            sets it on its nodes): uv downloads the lock's files through it, so
            a cluster fetches each file from the index once. Every file is still
            checked against the lock's hash; a relay that cannot serve falls
            back to the index.
        audit_timeout: seconds an audit write waits for an unreachable
            database (reconnecting meanwhile) before
            :class:`~uv_envs.AuditUnavailable`.

    .. versionadded:: 0.1.0

    """

    root: Path = attrs.field(factory=default_root, converter=_absolute)
    uv_binary: str | None = None
    index: IndexSettings = IndexSettings()
    cache_dir: Path | None = None
    python_search_paths: tuple[Path, ...] = ()
    python_downloads: PythonDownloads = "never"
    default_python: str = attrs.field(factory=_running_python)
    lock_timeout: float = 600.0
    uv_timeout: float = 1800.0
    allow_direct_references: bool = False
    allow_requirements_options: bool = False
    compile_bytecode: bool = False
    background_bytecode: bool = True
    lock_max_age: float = 86400.0
    max_concurrent_installs: int = attrs.field(factory=lambda: os.cpu_count() or 1)
    ray: str = "auto"
    ray_address: str | None = None
    wheel_relay: str | None = attrs.field(default=None, repr=lambda url: repr(redact(url)))
    audit_url: str | None = attrs.field(default=None, repr=lambda url: repr(redact(url)))
    audit_password_file: Path | None = None
    audit_host: str = attrs.field(factory=socket.gethostname)
    audit_timeout: float = 30.0

    @property
    def effective_cache_dir(self) -> Path:
        """The cache directory given to uv."""
        return self.cache_dir if self.cache_dir is not None else self.root / "cache"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``UV_ENVS_*`` variables; keyword arguments win.

        Reads ``UV_ENVS_ROOT``, ``UV_ENVS_UV_BIN``, ``UV_ENVS_CACHE_DIR``,
        ``UV_ENVS_INDEX_URL``, ``UV_ENVS_EXTRA_INDEX_URLS`` and
        ``UV_ENVS_FIND_LINKS`` (space separated), ``UV_ENVS_OFFLINE`` and
        ``UV_ENVS_NO_INDEX`` (``1``/``true``), ``UV_ENVS_PYTHON_PATHS``
        (``os.pathsep`` separated), ``UV_ENVS_LOCK_TIMEOUT``, ``UV_ENVS_RAY``,
        ``UV_ENVS_RAY_ADDRESS``, ``UV_ENVS_WHEEL_RELAY``,
        ``UV_ENVS_AUDIT_URL``, ``UV_ENVS_AUDIT_PASSWORD_FILE``, ``UV_ENVS_AUDIT_HOST``,
        ``UV_ENVS_AUDIT_TIMEOUT`` and ``UV_ENVS_BACKGROUND_BYTECODE``
        (``0``/``false`` turns it off).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {"root": default_root(environ)}
        values.update({field: environ[n] for n, field in _TEXT_VARIABLES if environ.get(n)})
        if value := environ.get("UV_ENVS_CACHE_DIR"):
            values["cache_dir"] = Path(value)
        if value := environ.get("UV_ENVS_PYTHON_PATHS"):
            values["python_search_paths"] = tuple(Path(p) for p in value.split(os.pathsep) if p)
        if value := environ.get("UV_ENVS_LOCK_TIMEOUT"):
            values["lock_timeout"] = float(value)
        values.update(_switches(environ))
        if value := environ.get("UV_ENVS_AUDIT_PASSWORD_FILE"):
            values["audit_password_file"] = Path(value)
        if value := environ.get("UV_ENVS_AUDIT_TIMEOUT"):
            values["audit_timeout"] = float(value)
        index = IndexSettings(
            index_url=environ.get("UV_ENVS_INDEX_URL") or None,
            extra_index_urls=tuple(environ.get("UV_ENVS_EXTRA_INDEX_URLS", "").split()),
            find_links=tuple(environ.get("UV_ENVS_FIND_LINKS", "").split()),
            no_index=_truthy(environ.get("UV_ENVS_NO_INDEX")),
            offline=_truthy(environ.get("UV_ENVS_OFFLINE")),
        )
        if index != IndexSettings():
            values["index"] = index
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _switches(environ: Mapping[str, str]) -> dict[str, bool]:
    """The on/off settings among the variables that are set."""
    names = {"UV_ENVS_BACKGROUND_BYTECODE": "background_bytecode"}
    return {field: _truthy(environ[name]) for name, field in names.items() if environ.get(name)}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
