"""The check of a copy about to be handed out again: cheap first, hashed when that differs.

``install_exact`` (what every node of a Ray cluster runs before its workers
start from a copy) hands out a copy already at the lock only after this check:
the sizes and modification times recorded when its venv was built
(:mod:`uv_envs._store.manifest`, a ``stat`` per file), and, when they differ or
the copy has none (a build a crash cut short, or one from before manifests),
every file hashed as ``verify`` does, audited as a ``verify`` operation. A
damaged copy is recorded DAMAGED, so the install rebuilds it from its lock
instead of handing it out.
"""

from __future__ import annotations

import attrs

from uv_envs._models import Environment
from uv_envs._store.manifest import quick_check

from .access import Locked
from .operation import audited
from .services import Services
from .verify import Verifier, digest_problems


@attrs.frozen
class HandOutCheck:
    """Proves a copy before it is handed out; what is wrong with it, empty when sound."""

    services: Services
    verifier: Verifier

    def damage(self, token: Locked, environment: Environment) -> tuple[str, ...]:
        """What is wrong with the env's current venv (its lock held by ``token``); () if sound."""
        gen_dir = self.services.dirs.current_dir(environment)
        if quick_check(gen_dir / ".venv") == []:
            return ()  # as built: a stat per file
        with audited(self.services, token.key, "verify") as operation:
            found = self.verifier.inspect(gen_dir)  # also renews or drops the manifest
            problems = found.problems + digest_problems(environment.digest, found.digest)
            operation.note(
                problems=list(problems),
                checked_files=found.checked_files,
                digest=found.digest,
                recorded_digest=environment.digest,
                before_hand_out=True,
            )
        if problems:
            self.verifier.record_damaged(token, problems)
        return problems
