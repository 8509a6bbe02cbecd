"""When a served cluster tries a failed node install again: a backoff and the book of failures.

Pure (no Ray, no clock of its own, no randomness of its own): the fan-out
(:mod:`uv_envs.ray._fanout`) gives it the time and the jitter source, so the
policy is tested without a cluster. A node whose install failed (a full disk,
an index it could not reach) is retried by the reconciling rounds once its
delay has passed, each delay longer than the last up to a cap, and at once
when the node leaves and rejoins or the env changes (both forget its
failures).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

#: The largest exponent used: beyond it every delay is the cap anyway (and floats stay finite).
_MAX_EXPONENT = 64


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    del instance
    if not value > 0:
        msg = f"{attribute.name} must be above 0, not {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Backoff:
    """Exponential delays with a cap and jitter: ``first``, ``first * factor``, ... up to ``cap``.

    Jitter only shortens a delay (by up to ``jitter`` of it), so no delay is ever
    above ``cap`` and nodes that failed together do not all retry in one round.
    """

    first: float = attrs.field(default=5.0, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    cap: float = attrs.field(default=60.0, validator=_positive)
    jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)]
    )

    def __attrs_post_init__(self) -> None:
        if self.cap < self.first:
            msg = f"cap ({self.cap}) must not be below first ({self.first})"
            raise ValueError(msg)

    def delay(self, failures: int, spread: float) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 or more).

        ``spread`` in ``[0, 1]`` picks the jitter (0: none, 1: the most).
        """
        exponent = min(max(failures, 1) - 1, _MAX_EXPONENT)
        base = min(self.cap, self.first * self.factor**exponent)
        return base * (1.0 - self.jitter * min(max(spread, 0.0), 1.0))


@attrs.frozen
class Failure:
    """The last failed install of one env on one node, and when it is tried again."""

    error: str
    failures: int
    #: on the clock the book was given (``time.monotonic`` in the fan-out)
    retry_at: float


class Retries:
    """Failed installs per (env path, node), and whether each is due for another try.

    Not thread-safe: the fan-out calls it under its own lock.
    """

    def __init__(
        self, backoff: Backoff | None = None, spread: Callable[[], float] = random.random
    ) -> None:
        self.backoff = backoff if backoff is not None else Backoff()
        self._spread = spread
        self._failures: dict[tuple[str, str], Failure] = {}

    def failed(self, env_path: str, node: str, error: str, now: float) -> Failure:
        """Note a failed install at ``now``; the failure, with when to try again."""
        before = self._failures.get((env_path, node))
        failures = 1 if before is None else before.failures + 1
        retry_at = now + self.backoff.delay(failures, self._spread())
        failure = Failure(error, failures, retry_at)
        self._failures[env_path, node] = failure
        return failure

    def succeeded(self, env_path: str, node: str) -> None:
        """The node holds the env now: its failures are forgotten."""
        self._failures.pop((env_path, node), None)

    def failure(self, env_path: str, node: str) -> Failure | None:
        """The node's last failure for the env, None when it has none."""
        return self._failures.get((env_path, node))

    def due(self, env_path: str, node: str, now: float) -> bool:
        """Whether an install of the env on the node may run at ``now`` (True: no failure)."""
        failure = self._failures.get((env_path, node))
        return failure is None or now >= failure.retry_at

    def forget_env(self, env_path: str) -> None:
        """The env changed (a new lock) or went: every node may try it at once."""
        for place in [p for p in self._failures if p[0] == env_path]:
            del self._failures[place]

    def forget_node(self, node: str) -> None:
        """The node left the cluster: when it rejoins, it is tried at once."""
        for place in [p for p in self._failures if p[1] == node]:
            del self._failures[place]
