"""A spec's project, written and resolved: ``uv lock``, or a stored resolution of the spec.

Resolution is shared between keys: a spec resolved within
``Settings.lock_max_age`` reuses the stored lock (without uv when its record
vouches for it, else checked offline by uv; see ``_resolutions``), and the
spec's lock (``locks/spec-<hash>.lock``) makes concurrent creates of one spec
resolve once. Used by create and ensure (:mod:`.provision`) and by
:func:`lock_only`, which resolves a spec for installing elsewhere.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import attrs

from uv_envs._errors import StorageError
from uv_envs._locks import locks
from uv_envs._models import EnvKey
from uv_envs._store.project import render_pyproject
from uv_envs._store.resolutions import Resolution
from uv_envs._uv.commands import add_command, lock_command
from uv_envs._uv.executor import UvResult

from .operation import Operation, audited
from .requests import ProvisionRequest
from .services import Services


def lock_only(services: Services, key: EnvKey, request: ProvisionRequest) -> tuple[str, str]:
    """The spec's ``pyproject.toml`` and ``uv.lock``, resolved (or reused), and no venv.

    For a caller that hands the lock on to be installed elsewhere (a Ray
    driver): the project a create of ``key`` would write, locked exactly as
    that create would lock it (the same stored resolutions, the spec's lock
    single-flighting ``uv lock``), in a scratch folder under the root's
    trash, so a process that dies meanwhile leaves it to the root's
    recovery. Audited as ``lock``; nothing of ``key``'s env is touched.
    """
    services.layout.trash_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="lock-", dir=services.layout.trash_dir))
    try:
        details = {"packages": list(request.spec.packages), "python": request.spec.python}
        with audited(services, key, "lock", details) as operation:
            write_spec_project(services, scratch, key, request, operation)
            return (scratch / "pyproject.toml").read_text(), (scratch / "uv.lock").read_text()
    except FileNotFoundError as exc:
        if scratch.is_dir():
            raise  # not about the scratch folder (uv itself missing: UvNotFound)
        # Only a recovery emptying the trash at this moment removes the scratch folder.
        msg = f"the scratch project of {key} went while it was being locked; try again"
        raise StorageError(msg) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_spec_project(
    services: Services,
    gen_dir: Path,
    key: EnvKey,
    request: ProvisionRequest,
    operation: Operation,
) -> str | None:
    """Write the project for a spec and lock it; notes whether uv resolved.

    Returns the lock's packages digest when it is known without parsing
    the lock again (None after ``uv add -r``).
    """
    spec = request.spec
    (gen_dir / "pyproject.toml").write_text(render_pyproject(key, spec.packages, spec.python))
    python = str(request.interpreter.path)
    if spec.requirements_text is None:
        resolution = _lock_spec(services, gen_dir, python, request, operation)
        operation.note(resolved=resolution.resolved)
        return resolution.packages
    requirements_file = gen_dir / "requirements.in"
    requirements_file.write_text(spec.requirements_text)
    try:
        operation.run(
            add_command(
                gen_dir,
                python,
                services.uv_options,
                requirements_file=requirements_file,
            ),
            "uv add -r",
        )
    finally:
        requirements_file.unlink(missing_ok=True)
    operation.note(resolved=True)
    return None


def _lock_spec(
    services: Services,
    gen_dir: Path,
    python: str,
    request: ProvisionRequest,
    operation: Operation,
) -> Resolution:
    """``uv lock``, or a stored resolution of the same spec (see ``_resolutions``).

    A stored lock its record vouches for is taken without the spec's lock
    (no uv runs, so there is nothing to single-flight); otherwise holding
    the spec's lock makes concurrent creates of one spec resolve once.
    """
    resolutions = services.resolutions
    if not request.refresh:
        trusted = resolutions.trusted(request.digest, request.spec, gen_dir)
        if trusted is not None:
            return trusted
    with locks.hold(
        services.layout.spec_lock(request.digest),
        timeout=services.settings.lock_timeout,
        what="spec",
    ):
        if not request.refresh:

            def check() -> UvResult:
                options = services.uv_options
                offline = attrs.evolve(options, index=attrs.evolve(options.index, offline=True))
                return operation.try_run(
                    lock_command(gen_dir, python, offline, check=True), "uv lock --check"
                )

            reused = resolutions.reuse(request.digest, request.spec, gen_dir, check)
            if reused is not None:
                return reused
        operation.run(lock_command(gen_dir, python, services.uv_options), "uv lock")
        return resolutions.remember(request.digest, request.spec, gen_dir)
