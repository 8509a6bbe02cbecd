"""The unit of work of one audited operation: audit row, uv output, outcome, failure event.

::

    with audited(services, key, "add", {"packages": [...]}) as op:
        op.run(add_command(...), "uv add")    # recorded, cancellable, raises on failure
        op.note(generation=2)                 # lands in the audit row's metadata

The audit row is written RUNNING on entry and finished SUCCESS on a clean exit,
or FAILED with uv's output and the error when the block raises (after which the
failure event, if any, is published and the error propagates).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from uv_envs._audit.log import AuditOutcome
from uv_envs._errors import UvError
from uv_envs._events import domain as events
from uv_envs._models import Environment, EnvKey, OperationStatus
from uv_envs._reports import OperationResult
from uv_envs._urls import redact
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult

from .services import Services

FailureEvent = Callable[[BaseException], events.DomainEvent]


@attrs.define
class Operation:
    """An operation in progress: its audit record, the uv runs so far, notes for the end."""

    services: Services
    name: str
    record: int
    started: float = attrs.field(factory=time.monotonic)
    results: list[UvResult] = attrs.field(factory=list)
    notes: dict[str, Any] = attrs.field(factory=dict)

    def run(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run uv as part of the operation; raise :class:`~uv_envs.UvError` if it failed."""
        return self.services.uv.check_result(self.try_run(invocation, what), what)

    def try_run(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run uv as part of the operation and return its result, failed or not."""
        result = self.services.uv.run(invocation, what)
        self.results.append(result)
        return result

    def note(self, **values: object) -> None:
        """Add to the metadata the audit row is finished with."""
        self.notes.update(values)

    # What uv printed goes to the audit log and back to the caller: redacted, as
    # it quotes the URLs it fetched (relayed ones carry the relay's token).
    @property
    def stdout(self) -> str:
        return redact("".join(r.stdout for r in self.results)) or ""

    @property
    def stderr(self) -> str:
        return redact("".join(r.stderr for r in self.results)) or ""

    def result(self, environment: Environment, *, changed: bool = True) -> OperationResult:
        """What a dependency change or sync returns to its caller."""
        return OperationResult(
            environment=environment,
            operation=self.name,
            changed=changed,
            stdout=self.stdout,
            stderr=self.stderr,
            exit_code=0,
            duration_ms=int((time.monotonic() - self.started) * 1000),
        )

    def _succeeded(self) -> None:
        outcome = AuditOutcome(
            OperationStatus.SUCCESS,
            stdout=self.stdout,
            stderr=self.stderr,
            exit_code=self.results[-1].exit_code if self.results else None,
            metadata=self.notes,
        )
        self.services.audit.finish(self.record, outcome)

    def _failed(self, exc: BaseException) -> None:
        stdout, stderr = self.stdout, self.stderr
        exit_code = self.results[-1].exit_code if self.results else None
        if isinstance(exc, UvError):
            stdout = stdout or exc.stdout
            stderr = stderr or exc.stderr
            exit_code = exc.exit_code
        # The operation's own error matters more than a second one from the audit log
        # (or from an exception that cannot even be printed).
        with contextlib.suppress(Exception):
            outcome = AuditOutcome(
                OperationStatus.FAILED,
                stdout=stdout,
                stderr=stderr,
                exit_code=exit_code,
                error=f"{type(exc).__name__}: {exc}",
            )
            self.services.audit.finish(self.record, outcome)


@contextlib.contextmanager
def audited(
    services: Services,
    key: EnvKey,
    name: str,
    details: Mapping[str, Any] | None = None,
    *,
    failure_event: FailureEvent | None = None,
) -> Iterator[Operation]:
    """Run the block as one audited operation (see the module docstring)."""
    operation = Operation(services, name, services.audit.start(key, name, dict(details or {})))
    try:
        yield operation
    except BaseException as exc:
        operation._failed(exc)  # noqa: SLF001 - the unit of work finishing itself
        if failure_event is not None:
            services.emit(failure_event(exc))
        raise
    operation._succeeded()  # noqa: SLF001
