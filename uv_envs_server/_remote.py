"""One contract for a uv-envs server, whichever wire reaches it.

:class:`~uv_envs_server.EnvManagerClient` (gRPC) and
:class:`~uv_envs_server.HttpEnvClient` (HTTP) both implement
:class:`RemoteEnvManager`: the same method names as the in-process
:class:`uv_envs.EnvManager`, taking an :class:`uv_envs.EnvKey` and answering
``uv_envs`` models, with the core's exceptions. Code written against it (the
:class:`~uv_envs_server.RemoteEnvironmentProvider` is) runs over either wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, Self, TypedDict, runtime_checkable

import uv_envs

from ._limits import DEFAULT_OPERATIONS_LIMIT

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable


@runtime_checkable
class RemoteEnvManager(Protocol):
    """A uv-envs server seen as an env manager: one surface for both wires.

    Errors are the core's: ``EnvironmentNotFound``, ``EnvironmentAlreadyExists``,
    ``InvalidInput``, ``UvError`` (with uv's output) ...; what none describes is
    the wire's own error (:class:`~uv_envs_server.RemoteError`,
    :class:`~uv_envs_server.HttpRemoteError`).

    .. versionadded:: 0.2.0
    """

    def ensure(
        self,
        key: uv_envs.EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | None = None,
        python: str | None = None,
    ) -> uv_envs.Environment:
        """Make the env match the spec (create it, or move it to a new generation); retry-safe."""
        ...

    def get(self, key: uv_envs.EnvKey) -> uv_envs.Environment:
        """The env; raises ``EnvironmentNotFound`` when there is none."""
        ...

    def delete(self, key: uv_envs.EnvKey, *, timeout: float | None = None) -> uv_envs.DeleteResult:
        """Delete the env; ``NOT_FOUND`` when there was none.

        A delete that does not answer within ``timeout`` seconds raises
        ``EnvironmentBusy`` (the server may still complete it).
        """
        ...

    def dependencies(self, key: uv_envs.EnvKey) -> uv_envs.Dependencies:
        """Declared dependencies and the versions uv.lock pins."""
        ...

    def add(
        self,
        key: uv_envs.EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | None = None,
    ) -> uv_envs.OperationResult:
        """Add packages; uv's failure raises ``UvError`` with its output, the env unchanged."""
        ...

    def update(self, key: uv_envs.EnvKey, packages: Iterable[str] = ()) -> uv_envs.OperationResult:
        """Upgrade the named packages, or all of them when none is named."""
        ...

    def remove(self, key: uv_envs.EnvKey, packages: Iterable[str]) -> uv_envs.OperationResult:
        """Remove the named packages."""
        ...

    def sync(self, key: uv_envs.EnvKey) -> uv_envs.OperationResult:
        """Make the venv match uv.lock again."""
        ...

    def export(self, key: uv_envs.EnvKey) -> uv_envs.Export:
        """The env's ``pyproject.toml`` and ``uv.lock``."""
        ...

    def operations(
        self,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_OPERATIONS_LIMIT,
        offset: int = 0,
    ) -> uv_envs.OperationPage:
        """A page of the audit trail, newest first."""
        ...

    def delete_operations(
        self, workflow_id: str, node_id: str | None = None
    ) -> uv_envs.DeletedOperations:
        """Delete the audit records of a workflow, or of one of its nodes."""
        ...

    def watch(
        self,
        *,
        workflow_id: str | None = None,
        node_id: str | None = None,
        names: Iterable[str] = (),
        operation_id: str | None = None,
        after: int | None = None,
    ) -> Generator[uv_envs.StreamEvent]:
        """Follow the server's events live until closed; ``after`` replays from that id."""
        ...

    def health(self) -> str:
        """The server's health: ``"SERVING"`` when it answers."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Closing:
    """``with client:`` closes it at the end; the class defines :meth:`close`."""

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PageQuery(NamedTuple):
    """The filters and page of an ``operations`` call, as a wire sends them."""

    workflow_id: str | None
    node_id: str | None
    status: str | None
    limit: int
    offset: int


class EventFilters(TypedDict, total=False):
    """The keywords of ``watch``: which events to follow, and ``after`` which to resume."""

    workflow_id: str | None
    node_id: str | None
    names: Iterable[str]
    operation_id: str | None
    after: int | None


class RemoteClient(Closing):
    """The :class:`RemoteEnvManager` methods whose arguments both wires take alike, once.

    Each client supplies the wire's calls behind them (``_ensure``, ``_change``,
    ``_page``, ``_follow``) and the methods that are one call on its wire.
    """

    def ensure(
        self,
        key: uv_envs.EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | None = None,
        python: str | None = None,
    ) -> uv_envs.Environment:
        """Make the env match the spec (create it, or move it to a new generation); retry-safe."""
        return self._ensure(key, list(packages), requirements_text, python)

    def add(
        self,
        key: uv_envs.EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | None = None,
    ) -> uv_envs.OperationResult:
        """Add packages; uv's failure raises ``UvError`` with its output, the env unchanged."""
        return self._change(key, "add", list(packages), requirements_text)

    def update(self, key: uv_envs.EnvKey, packages: Iterable[str] = ()) -> uv_envs.OperationResult:
        """Upgrade the named packages, or all of them when none is named."""
        return self._change(key, "update", list(packages))

    def remove(self, key: uv_envs.EnvKey, packages: Iterable[str]) -> uv_envs.OperationResult:
        """Remove the named packages."""
        return self._change(key, "remove", list(packages))

    def sync(self, key: uv_envs.EnvKey) -> uv_envs.OperationResult:
        """Make the venv match uv.lock again (afresh, so it repairs a damaged venv)."""
        return self._change(key, "sync", [])

    def operations(
        self,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_OPERATIONS_LIMIT,
        offset: int = 0,
    ) -> uv_envs.OperationPage:
        """A page of the audit trail, newest first."""
        return self._page(PageQuery(workflow_id, node_id, status, limit, offset))

    def watch(
        self,
        *,
        workflow_id: str | None = None,
        node_id: str | None = None,
        names: Iterable[str] = (),
        operation_id: str | None = None,
        after: int | None = None,
    ) -> Generator[uv_envs.StreamEvent]:
        """Follow the server's events live until closed; ``after`` replays from that id.

        ``operation_id`` follows one call (its ``x-request-id``).
        """
        return self._follow(
            EventFilters(
                workflow_id=workflow_id,
                node_id=node_id,
                names=list(names),
                operation_id=operation_id,
                after=after,
            )
        )

    # -- what each wire supplies ----------------------------------------------------

    def _ensure(
        self, key: uv_envs.EnvKey, packages: list[str], text: str | None, python: str | None
    ) -> uv_envs.Environment:
        raise NotImplementedError

    def _change(
        self, key: uv_envs.EnvKey, operation: str, packages: list[str], text: str | None = None
    ) -> uv_envs.OperationResult:
        """Run ``add``, ``update``, ``remove`` or ``sync``; answer the env it left."""
        raise NotImplementedError

    def _page(self, query: PageQuery) -> uv_envs.OperationPage:
        raise NotImplementedError

    def _follow(self, filters: EventFilters) -> Generator[uv_envs.StreamEvent]:
        raise NotImplementedError
