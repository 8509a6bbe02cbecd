"""An EnvManager that serves a Ray cluster: every env it hands out exists on every node.

``uv-envs-server --ray-address`` runs on one of these. Each change resolves
once, here, as on any root; then the env's two project files are published
into the cluster (:mod:`uv_envs.ray._published`) and installed, exactly, on
every alive node under the same root path (:mod:`uv_envs.ray._fanout`), before
the call returns. So the ``env_path`` a client gets, and the ``python_path``
WTB computes from it, are valid on whichever node Ray places a worker.
Delete and cleanup release the env on every node (a lease there keeps that
copy). The cluster side is one collaborator, :class:`~uv_envs.ray._service.ClusterService`,
which is also the manager's ``cluster`` (:class:`uv_envs.ClusterView`), what the
servers show; its watcher reconciles every few seconds: nodes that joined get
every env, envs a node lost are installed again, nodes that cannot be served
are reported with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from uv_envs._audit.log import AuditLog
from uv_envs._bytecode.compiler import BytecodeCompiler
from uv_envs._errors import UvEnvsError
from uv_envs._events.domain import EventPublisher
from uv_envs._manager import EnvManager
from uv_envs._models import Environment, EnvKey
from uv_envs._procs.scan import ProcessScanner
from uv_envs._relay.server import RelayCounts
from uv_envs._reports import CleanupReport, DeleteResult, OperationResult, Provisioned
from uv_envs._settings import Settings
from uv_envs._uv.executor import UvExecutor
from uv_envs._uv.python import InterpreterFinder

from ._fanout import ClusterNode, NodePresence
from ._published import PublishedEnv
from ._service import RECONCILE_INTERVAL, ClusterService, join, start_relay

logger = logging.getLogger("uv_envs.ray")
_T = TypeVar("_T")


class ClusterEnvManager(EnvManager):
    """:class:`~uv_envs.EnvManager` whose envs are installed on every node of a Ray cluster.

    ``address`` (default ``Settings.ray_address``): ``auto`` or ``HOST:PORT``
    of the cluster's GCS; if this process is connected to Ray already, that
    cluster. Raises :class:`~uv_envs.RayNodeUnusable` naming the node when a
    node cannot hold the root or runs another Python minor than this process.
    The other keywords are :class:`~uv_envs.EnvManager`'s.
    """

    def __init__(  # noqa: PLR0913 - EnvManager's adapters, and the cluster's three options
        self,
        settings: Settings | None = None,
        *,
        address: str | None = None,
        reconcile_interval: float = RECONCILE_INTERVAL,
        wheel_relay: bool = True,
        executor: UvExecutor | None = None,
        audit: AuditLog | None = None,
        publish: EventPublisher | None = None,
        python_finder: InterpreterFinder | None = None,
        compiler: BytecodeCompiler | None = None,
        processes: ProcessScanner | None = None,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        join(address or settings.ray_address)
        # Started before the core, so the server's own installs download through it
        # too: the index then serves each file once for the whole cluster.
        started = start_relay(str(settings.root)) if wheel_relay else None
        relay = None
        if started is not None:
            relay, url = started
            settings = attrs.evolve(settings, wheel_relay=url)
        try:
            super().__init__(
                settings,
                executor=executor,
                audit=audit,
                publish=publish,
                python_finder=python_finder,
                compiler=compiler,
                processes=processes,
            )
            try:
                self._service = ClusterService(str(self.settings.root), relay)
                self._publish_existing()
            except BaseException:
                super().close()
                raise
        except BaseException:
            if relay is not None:
                relay.stop()
            raise
        self.cluster = self._service
        self._service.watch(reconcile_interval)

    def _publish_existing(self) -> None:
        """Publish the envs the root holds already (a restart); the watcher installs them."""
        for environment in self.list_environments():
            try:
                self._service.fanout.publish(self._record(environment.key))
            except (OSError, UvEnvsError) as exc:
                logger.warning("not serving %s to the cluster: %s", environment.key, exc)

    def _record(self, key: EnvKey) -> PublishedEnv:
        environment = self.get(key)
        export = self.export(key)
        return PublishedEnv(
            workflow_id=key.workflow_id,
            node_id=key.node_id,
            version_id=key.version_id,
            root=str(self.settings.root),
            env_path=str(environment.env_path),
            pyproject_toml=export.pyproject_toml,
            uv_lock=export.uv_lock,
            wheel_relay=self.settings.wheel_relay,
        )

    # -- what the servers show (also as ``cluster``) ------------------------------------

    def nodes(self, key: EnvKey) -> tuple[NodePresence, ...]:
        """Which alive nodes hold the env of ``key`` (at the server's lock), and which lack it."""
        return self._service.nodes(key)

    def cluster_nodes(self) -> tuple[ClusterNode, ...]:
        """Every alive node, with why it cannot be served where it cannot."""
        return self._service.cluster_nodes()

    def relay_counts(self) -> RelayCounts | None:
        """What the wheel relay fetched from the index and served to nodes (None: no relay)."""
        return self._service.relay_counts()

    def reconcile(self) -> int:
        """One watcher round now: install on every node what it lacks; installs started."""
        return self._service.fanout.reconcile()

    # -- changes: here, then on every node ----------------------------------------------

    def create(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
    ) -> Environment:
        """:meth:`EnvManager.create`, then on every node."""
        self._service.check_python(python or self.settings.default_python)
        return self._replicated(
            key,
            lambda: EnvManager.create(
                self,
                key,
                packages=packages,
                requirements_text=requirements_text,
                python=python,
                refresh=refresh,
            ),
        )

    def ensure(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
    ) -> Environment:
        """:meth:`EnvManager.ensure`, then on every node."""
        self._service.check_python(python or self.settings.default_python)
        return self._replicated(
            key,
            lambda: EnvManager.ensure(
                self,
                key,
                packages=packages,
                requirements_text=requirements_text,
                python=python,
                refresh=refresh,
            ),
        )

    def provision(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
        replace: bool = False,
    ) -> Provisioned:
        """:meth:`EnvManager.provision`, then on every node."""
        self._service.check_python(python or self.settings.default_python)
        return self._replicated(
            key,
            lambda: EnvManager.provision(
                self,
                key,
                packages=packages,
                requirements_text=requirements_text,
                python=python,
                refresh=refresh,
                replace=replace,
            ),
        )

    def add(
        self,
        key: EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | bytes | None = None,
    ) -> OperationResult:
        """:meth:`EnvManager.add`, then on every node."""
        return self._replicated(
            key, lambda: EnvManager.add(self, key, packages, requirements_text=requirements_text)
        )

    def update(self, key: EnvKey, packages: Iterable[str] = ()) -> OperationResult:
        """:meth:`EnvManager.update`, then on every node."""
        return self._replicated(key, lambda: EnvManager.update(self, key, packages))

    def remove(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        """:meth:`EnvManager.remove`, then on every node."""
        return self._replicated(key, lambda: EnvManager.remove(self, key, packages))

    def sync(self, key: EnvKey) -> OperationResult:
        """:meth:`EnvManager.sync`, then on every node."""
        return self._replicated(key, lambda: EnvManager.sync(self, key))

    def adopt(self, key: EnvKey, *, pyproject_toml: str, uv_lock: str) -> OperationResult:
        """:meth:`EnvManager.adopt`, then on every node."""
        return self._replicated(
            key,
            lambda: EnvManager.adopt(self, key, pyproject_toml=pyproject_toml, uv_lock=uv_lock),
        )

    def _replicated(self, key: EnvKey, change: Callable[[], _T]) -> _T:
        return self._service.replicated(key, change, lambda: self._record(key))

    # -- removals: here, then on every node ---------------------------------------------

    def delete(
        self, key: EnvKey, *, force: bool = False, timeout: float | None = None
    ) -> DeleteResult:
        """:meth:`EnvManager.delete`, then on every node (a copy in use there stays a while)."""
        with self._service.serialized(key):
            env_path = str(self.status(key).env_path)
            result = super().delete(key, force=force, timeout=timeout)
            self._service.release(key, env_path)
            return result

    def cleanup(
        self,
        idle_seconds: float | None = None,
        *,
        max_bytes: int | None = None,
        min_idle_seconds: float = 0.0,
    ) -> CleanupReport:
        """:meth:`EnvManager.cleanup`, then each env it deleted on every node."""
        report = super().cleanup(
            idle_seconds, max_bytes=max_bytes, min_idle_seconds=min_idle_seconds
        )
        for key in report.deleted:
            with self._service.serialized(key):
                status = self.status(key)
                if status.environment is None:  # not made again since: release it everywhere
                    self._service.release(key, str(status.env_path))
        return report

    def close(self) -> None:
        """Stop the watcher, then close the root (the Ray connection stays to its owner)."""
        service = getattr(self, "_service", None)
        if service is not None:
            service.close()
        super().close()
