"""Installs a generation's lock: a link to the shared store entry, or a private venv."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import attrs

from uv_envs._errors import HashMismatch, UvError
from uv_envs._relay.urls import relayed_lock
from uv_envs._store.digest import installed_digest, write_digest
from uv_envs._store.manifest import write_manifest
from uv_envs._store.resolutions import lock_packages_digest
from uv_envs._store.venvs import install_slot, store_id
from uv_envs._urls import redact
from uv_envs._uv.commands import sync_command
from uv_envs._uv.python import Interpreter

from .operation import Operation
from .services import Services

logger = logging.getLogger("uv_envs")

# The scratch project a relayed sync runs in, inside the generation being built.
_RELAYED_PROJECT = ".relayed"
# Sealed entries a new one's Ray check may carry over from: comparing with one reads
# both sides' RECORD files (milliseconds), the check it can spare is an ``import ray``.
_CARRY_FROM = 4


@attrs.frozen
class Installer:
    """Puts ``gen_dir/.venv`` in place for the lock in ``gen_dir``."""

    services: Services

    def install(  # noqa: PLR0913 - the keyword-only options of the one install path
        self,
        gen_dir: Path,
        interpreter: Interpreter,
        operation: Operation,
        *,
        shared: bool = True,
        refresh: bool = False,
        packages: str | None = None,
        base: Path | None = None,
    ) -> bool:
        """Link the store's venv for the lock, building it if new; True if anything was built.

        Unshared, the venv is built privately in the generation: ``sync`` uses
        that to rebuild from the lock without trusting any existing bytes.
        ``packages`` is the lock's packages digest when the caller knows it
        (a stored lock's record): then the lock is not parsed. ``base`` is the
        venv this lock changes (a dependency change), whose Ray check carries
        over to the new venv where the change cannot alter it.
        """
        services = self.services
        settings = services.settings
        python = str(interpreter.path)
        ray_link = services.ray_link
        if not shared:
            ray_link.check_lock((gen_dir / "uv.lock").read_text(), interpreter)
            with install_slot(services.layout, settings.max_concurrent_installs):
                self._sync(gen_dir, python, operation, venv=gen_dir / ".venv", refresh=refresh)
            ray_link.link(gen_dir / ".venv", interpreter, bases=() if base is None else (base,))
            write_manifest(gen_dir / ".venv")
            return True
        if packages is None:
            packages = lock_packages_digest((gen_dir / "uv.lock").read_text())
        ray_identity = ray_link.store_identity(interpreter)
        entry_id = store_id(
            packages, interpreter, compile_bytecode=settings.compile_bytecode, ray_link=ray_identity
        )

        def build(venv: Path) -> None:
            # Checked where an entry is built: an entry whose id names this Ray link
            # passed the check then, so the warm path neither reads nor parses the lock.
            ray_link.check_lock((gen_dir / "uv.lock").read_text(), interpreter)
            bytecode = services.bytecode
            # The bytecode linker (so the create's first import compiles nothing) starts
            # now: its interpreter start and imports overlap the sync (see _bytecode.early).
            early = bytecode.start_link(interpreter.path)
            try:
                with install_slot(services.layout, settings.max_concurrent_installs):
                    self._sync(gen_dir, python, operation, venv=venv, refresh=refresh)
                if early is not None:
                    bytecode.send_link(early, venv)  # links while the steps below run
                # Before the store seals the entry. A new spec carries the check over from
                # one of the newest sealed entries when it differs there in nothing
                # ``import ray`` looks up (the newest may be another set altogether); an
                # entry with no Ray link has no check, so the store is not listed for one.
                bases: list[Path] = [] if base is None else [base]
                if base is None and ray_identity is not None:
                    bases = services.venv_store.latest_sealed(venv.parent, _CARRY_FROM)
                ray_link.link(venv, interpreter, bases=bases)
                # The linker writes only in __pycache__ folders, which the digest and the
                # manifest leave out: they are the same whether it has finished or not.
                write_digest(venv)  # once per entry: every env linking it shares the digest
            finally:
                if early is not None:
                    early.finish()  # waited for even on failure: nothing writes once we return
            write_manifest(venv)  # last: an entry cut short by a crash has none (full check)

        return services.venv_store.link(gen_dir, entry_id, build)

    @staticmethod
    def digest(gen_dir: Path) -> str:
        """The env digest of ``gen_dir``'s installed venv (its store entry's, if shared)."""
        return installed_digest(gen_dir / ".venv")

    def _sync(
        self, gen_dir: Path, python: str, operation: Operation, *, venv: Path, refresh: bool
    ) -> None:
        """``uv sync --frozen`` of ``gen_dir``'s lock into ``venv``, through the relay if set.

        Relayed, uv syncs a scratch copy of the project whose lock points its
        downloads at the relay (``_relay.urls``) and checks every file against the
        lock's hash as always: a file that does not match raises
        :class:`~uv_envs.HashMismatch` before anything is installed. A relay that
        cannot serve is not a reason to fail: the sync then fetches from the index.
        """
        options = self.services.uv_options
        relay = self.services.settings.wheel_relay
        relayed = relayed_lock((gen_dir / "uv.lock").read_text(), relay) if relay else None
        if relay is None or relayed is None:
            operation.run(
                sync_command(gen_dir, python, options, venv=venv, refresh=refresh),
                "uv sync --frozen",
            )
            return
        scratch = gen_dir / _RELAYED_PROJECT
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        try:
            shutil.copyfile(gen_dir / "pyproject.toml", scratch / "pyproject.toml")
            (scratch / "uv.lock").write_text(relayed)
            result = operation.try_run(
                sync_command(scratch, python, options, venv=venv, refresh=refresh),
                "uv sync --frozen (relayed)",
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        try:
            self.services.uv.check_result(result, "uv sync --frozen")
        except HashMismatch:
            raise  # the bytes are not the lock's: never a reason to try the index instead
        except UvError:
            if relay.rstrip("/") not in result.stderr:
                raise
        else:
            return
        logger.warning(
            "the wheel relay %s could not serve; installing from the index", redact(relay)
        )
        operation.run(
            sync_command(gen_dir, python, options, venv=venv, refresh=refresh),
            "uv sync --frozen",
        )
