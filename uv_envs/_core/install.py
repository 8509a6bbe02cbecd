"""Installs a generation's lock: a link to the shared store entry, or a private venv."""

from __future__ import annotations

from pathlib import Path

import attrs

from uv_envs._root.store import install_slot, lock_packages_digest, store_id
from uv_envs._uv.commands import sync_command
from uv_envs._uv.python import Interpreter

from .operation import Operation
from .services import Services


@attrs.frozen
class Installer:
    """Puts ``gen_dir/.venv`` in place for the lock in ``gen_dir``."""

    services: Services

    def install(
        self,
        gen_dir: Path,
        interpreter: Interpreter,
        operation: Operation,
        *,
        shared: bool = True,
        refresh: bool = False,
        packages: str | None = None,
    ) -> bool:
        """Link the store's venv for the lock, building it if new; True if anything was built.

        Unshared, the venv is built privately in the generation: ``sync`` uses
        that to rebuild from the lock without trusting any existing bytes.
        ``packages`` is the lock's packages digest when the caller knows it
        (a stored lock's record): then the lock is not parsed.
        """
        services = self.services
        settings = services.settings
        python = str(interpreter.path)
        ray_link = services.ray_link
        if not shared:
            ray_link.check_lock((gen_dir / "uv.lock").read_text(), interpreter)
            with install_slot(services.layout, settings.max_concurrent_installs):
                operation.run(
                    sync_command(gen_dir, python, services.uv_options, refresh=refresh),
                    "uv sync --frozen",
                )
            ray_link.link(gen_dir / ".venv", interpreter)
            return True
        if packages is None:
            packages = lock_packages_digest((gen_dir / "uv.lock").read_text())
        entry_id = store_id(
            packages,
            interpreter,
            compile_bytecode=settings.compile_bytecode,
            ray_link=ray_link.store_identity(interpreter),
        )

        def build(venv: Path) -> None:
            # Checked where an entry is built: an entry whose id names this Ray link
            # passed the check then, so the warm path neither reads nor parses the lock.
            ray_link.check_lock((gen_dir / "uv.lock").read_text(), interpreter)
            with install_slot(services.layout, settings.max_concurrent_installs):
                operation.run(
                    sync_command(gen_dir, python, services.uv_options, venv=venv, refresh=refresh),
                    "uv sync --frozen",
                )
            ray_link.link(venv, interpreter)  # before the store seals the entry

        return services.venv_store.link(gen_dir, entry_id, build)
