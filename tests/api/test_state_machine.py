"""A stateful property test of the manager against a small model of what each env declares.

Random sequences of create/ensure/add/remove/update/sync/delete/cleanup and
lease open/close, with valid inputs, inputs that fail in uv (a missing
package, a conflict) and inputs that are rejected outright. After every step:
every env the model has is READY, its declared names and locked names are the
model's, and no env the model lacks exists.

It runs against the fake uv with many examples (fast) and against real uv on
the test wheelhouse with a few; ``UV_ENVS_SM_EXAMPLES`` / ``UV_ENVS_SM_REAL_EXAMPLES``
scale them.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from uv_envs import (
    EnvironmentAlreadyExists,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvKey,
    EnvManager,
    EnvStatus,
    IndexSettings,
    InvalidInput,
    InvalidRequirement,
    Settings,
    UvError,
)
from uv_envs._uv.python import PythonFinder
from uv_envs._validation import canonical_requirement
from uv_envs.testing import FakePythonFinder, FakeUvExecutor

FAKE_EXAMPLES = int(os.environ.get("UV_ENVS_SM_EXAMPLES", "100"))
FAKE_STEPS = int(os.environ.get("UV_ENVS_SM_STEPS", "30"))
REAL_EXAMPLES = int(os.environ.get("UV_ENVS_SM_REAL_EXAMPLES", "8"))
REAL_STEPS = int(os.environ.get("UV_ENVS_SM_REAL_STEPS", "12"))

#: Rules run in this process, by name (the figures in docs/reliability.md).
STATS: collections.Counter[str] = collections.Counter()

KEYS = (EnvKey("wf", "n", "v1"), EnvKey("wf", "n", ""), EnvKey("wf2", "m", "v1"))

# The wheelhouse: alpha 1.0/2.0, beta 1.0 (alpha>=1.0), gamma 1.0, delta 1.0 (alpha<2).
CATALOG = {"alpha": ["1.0", "2.0"], "beta": ["1.0"], "gamma": ["1.0"], "delta": ["1.0"]}
REQUIRES = {"beta": {"alpha"}, "delta": {"alpha"}}
ALPHA_VERSIONS = frozenset({"1.0", "2.0"})

# Requirements create/ensure pick from (one per name). Bare names only here: uv add
# rewrites a bare name into "name>=locked", which the model would have to guess.
SPEC_CHOICES = {
    "alpha": ["alpha", "alpha==1.0", "alpha==2.0", "alpha<2"],
    "beta": ["beta"],
    "gamma": ["gamma"],
    "delta": ["delta"],
    "nosuch": ["nosuch"],
}
ADD_CHOICES = {
    "alpha": ["alpha>=1.0", "alpha==1.0", "alpha==2.0", "alpha<2"],
    "beta": ["beta>=1.0"],
    "gamma": ["gamma>=1.0"],
    "delta": ["delta>=1.0"],
    "nosuch": ["nosuch>=1"],
}

BAD_PACKAGES = (
    "",
    "   ",
    "-e .",
    "--index-url=http://127.0.0.1:1/simple",
    "--config-file=x",
    "./local",
    "/abs/path",
    "http://127.0.0.1:1/x.whl",
    "alpha @ file:///etc",
    "pkg.whl",
    "alpha\x00",
    "alpha\nbeta",
    "not a requirement !!",
    "alpha===",
)
BAD_PYTHONS = ("3.2", "2.7", "abc", "3.", "", " ")
BAD_IDS = (
    "",
    " ",
    ".",
    "..",
    "../x",
    "/etc",
    "a/b",
    "a\x00b",
    "\u0430",
    "x" * 129,
)  # \u0430: Cyrillic a
BAD_TEXTS = ("--index-url http://127.0.0.1:1/simple\nalpha\n", "-e .\n", "-r other.txt\n")


def requirement_strategy(choices: dict[str, list[str]]) -> st.SearchStrategy[tuple[str, ...]]:
    """A set of distinct names, each with one of its spellings."""
    return st.lists(
        st.sampled_from(sorted(choices)).flatmap(lambda n: st.sampled_from(choices[n])),
        max_size=3,
        unique_by=lambda r: Requirement(r).name,
    ).map(tuple)


def name_of(requirement: str) -> str:
    return str(canonicalize_name(Requirement(requirement).name))


def alpha_allowed(requirement: str) -> frozenset[str]:
    specifier = Requirement(requirement).specifier
    return frozenset(v for v in ALPHA_VERSIONS if specifier.contains(v))


@attrs.frozen
class ModelEnv:
    declared: tuple[str, ...]  # requirement strings, one per name
    spec: frozenset[str] | None  # canonical spec of the last create/ensure; None once edited


def resolves(declared: tuple[str, ...], *, real: bool) -> bool:
    """Whether a set of declared requirements resolves against the catalog."""
    names = {name_of(r) for r in declared}
    if "nosuch" in names:
        return False
    if not real:
        return True
    allowed = set(ALPHA_VERSIONS)
    for requirement in declared:
        if name_of(requirement) == "alpha":
            allowed &= alpha_allowed(requirement)
    if "delta" in names:
        allowed &= {"1.0"}
    return bool(allowed)


def locked_names(declared: tuple[str, ...], *, real: bool) -> set[str]:
    names = {name_of(r) for r in declared}
    if real:
        for name in list(names):
            names |= REQUIRES.get(name, set())
    return names


def merged(declared: tuple[str, ...], added: tuple[str, ...]) -> tuple[str, ...]:
    names = {name_of(r) for r in added}
    return tuple(r for r in declared if name_of(r) not in names) + added


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every path under the root with its content hash or link target (audit db aside)."""
    result: dict[str, str] = {}
    if not root.exists():
        return result
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if relative.startswith("audit.sqlite3") or name == ".last-used":
                continue
            if path.is_symlink():
                result[relative] = "-> " + os.readlink(path)
            elif path.is_file():
                result[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[relative] = "dir"
    return result


def env_snapshot(manager: EnvManager, key: EnvKey) -> dict[str, str]:
    env_dir = manager._core.services.layout.env_dir(key)
    return {k: v for k, v in tree_snapshot(env_dir).items() if not k.startswith("gens/")} | {
        "gens": ",".join(sorted(p.name for p in (env_dir / "gens").iterdir()))
    }


class ManagerModelMachine(RuleBasedStateMachine):
    """The manager against :class:`ModelEnv` records; subclasses pick fake or real uv."""

    real = False

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.root = Path(self.directory.name) / "root"
        self.manager = self.make_manager(self.root)
        self.model: dict[EnvKey, ModelEnv] = {}
        self.leases: list[tuple[EnvKey, Any, contextlib.ExitStack]] = []

    def make_manager(self, root: Path) -> EnvManager:
        catalog = {**CATALOG}
        return EnvManager(
            # No detached compiler adding .pyc files between the tree comparisons.
            Settings(root=root, lock_timeout=5, background_bytecode=False),
            executor=FakeUvExecutor(catalog),
            python_finder=FakePythonFinder(),
        )

    def teardown(self) -> None:
        for _, _, stack in self.leases:
            stack.close()
        self.leases.clear()
        self.manager.close()
        self.directory.cleanup()

    # --- helpers ---------------------------------------------------------------------

    def leased(self) -> set[EnvKey]:
        return {key for key, _, _ in self.leases}

    def audit_total(self) -> int:
        return self.manager.operations(limit=1).total

    def expect_unchanged(
        self, key: EnvKey, action: Callable[[], Any], error: type[BaseException]
    ) -> None:
        before = env_snapshot(self.manager, key)
        with pytest.raises(error):
            action()
        assert env_snapshot(self.manager, key) == before

    def draw_key(self, data: st.DataObject) -> EnvKey:
        """A key of an existing env about half of the time, any key otherwise."""
        if self.model:
            return data.draw(st.one_of(st.sampled_from(sorted(self.model)), st.sampled_from(KEYS)))
        return data.draw(st.sampled_from(KEYS))

    # --- rules -----------------------------------------------------------------------

    @initialize(key=st.sampled_from(KEYS), requirements=requirement_strategy(SPEC_CHOICES))
    def start_with_an_env(self, key: EnvKey, requirements: tuple[str, ...]) -> None:
        self.ensure(key, requirements)

    @rule(key=st.sampled_from(KEYS), requirements=requirement_strategy(SPEC_CHOICES))
    def create(self, key: EnvKey, requirements: tuple[str, ...]) -> None:
        STATS["create"] += 1
        spec = frozenset(canonical_requirement(r) for r in requirements)
        existing = self.model.get(key)
        if existing is not None:
            before = self.manager.get(key)
            if existing.spec == spec:
                assert self.manager.create(key, packages=requirements) == before
            elif existing.spec is not None:
                self.expect_unchanged(
                    key,
                    lambda: self.manager.create(key, packages=requirements),
                    EnvironmentAlreadyExists,
                )
            else:
                # Edited since its last create/ensure: same spec again (reused) or a conflict.
                with contextlib.suppress(EnvironmentAlreadyExists):
                    again = self.manager.create(key, packages=requirements)
                    assert again.generation == before.generation
            return
        if not resolves(requirements, real=self.real):
            with pytest.raises(UvError):
                self.manager.create(key, packages=requirements)
            assert not self.manager._core.services.layout.env_dir(key).exists()
            return
        environment = self.manager.create(key, packages=requirements)
        assert environment.status is EnvStatus.READY
        self.model[key] = ModelEnv(requirements, spec)

    @rule(key=st.sampled_from(KEYS), requirements=requirement_strategy(SPEC_CHOICES))
    def ensure(self, key: EnvKey, requirements: tuple[str, ...]) -> None:
        STATS["ensure"] += 1
        spec = frozenset(canonical_requirement(r) for r in requirements)
        existing = self.model.get(key)
        if existing is not None and existing.spec == spec:
            before = self.manager.get(key)
            assert self.manager.ensure(key, packages=requirements) == before
            return
        if not resolves(requirements, real=self.real):
            if existing is None:
                with pytest.raises(UvError):
                    self.manager.ensure(key, packages=requirements)
                assert not self.manager._core.services.layout.env_dir(key).exists()
            else:
                self.expect_unchanged(
                    key, lambda: self.manager.ensure(key, packages=requirements), UvError
                )
            return
        environment = self.manager.ensure(key, packages=requirements)
        assert environment.status is EnvStatus.READY
        self.model[key] = ModelEnv(requirements, spec)

    @rule(data=st.data(), requirements=requirement_strategy(ADD_CHOICES).filter(bool))
    def add(self, data: st.DataObject, requirements: tuple[str, ...]) -> None:
        key = self.draw_key(data)
        STATS["add"] += 1
        existing = self.model.get(key)
        if existing is None:
            with pytest.raises(EnvironmentNotFound):
                self.manager.add(key, requirements)
            assert not self.manager._core.services.layout.env_dir(key).exists()
            return
        declared = merged(existing.declared, requirements)
        if not resolves(declared, real=self.real):
            self.expect_unchanged(key, lambda: self.manager.add(key, requirements), UvError)
            return
        result = self.manager.add(key, requirements)
        assert result.environment.status is EnvStatus.READY
        self.model[key] = ModelEnv(declared, None)

    @rule(data=st.data(), names=st.sets(st.sampled_from(sorted(CATALOG)), min_size=1, max_size=2))
    def remove(self, data: st.DataObject, names: set[str]) -> None:
        key = self.draw_key(data)
        STATS["remove"] += 1
        packages = sorted(names)
        existing = self.model.get(key)
        if existing is None:
            with pytest.raises(EnvironmentNotFound):
                self.manager.remove(key, packages)
            return
        declared_names = {name_of(r) for r in existing.declared}
        if not names <= declared_names:
            self.expect_unchanged(
                key, lambda: self.manager.remove(key, packages), InvalidRequirement
            )
            return
        self.manager.remove(key, packages)
        kept = tuple(r for r in existing.declared if name_of(r) not in names)
        self.model[key] = ModelEnv(kept, None)

    @rule(data=st.data(), everything=st.booleans())
    def update(self, data: st.DataObject, everything: bool) -> None:
        key = self.draw_key(data)
        STATS["update"] += 1
        existing = self.model.get(key)
        if existing is None:
            with pytest.raises(EnvironmentNotFound):
                self.manager.update(key)
            return
        names = [] if everything or not existing.declared else [name_of(existing.declared[0])]
        self.manager.update(key, names)
        self.model[key] = attrs.evolve(existing, spec=None)

    @rule(data=st.data())
    def sync(self, data: st.DataObject) -> None:
        key = self.draw_key(data)
        STATS["sync"] += 1
        existing = self.model.get(key)
        if existing is None:
            with pytest.raises(EnvironmentNotFound):
                self.manager.sync(key)
            return
        before = self.manager.get(key)
        after = self.manager.sync(key).environment
        assert after.generation > before.generation
        assert after.spec_hash == before.spec_hash

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = self.draw_key(data)
        STATS["delete"] += 1
        if key not in self.model:
            assert self.manager.delete(key).status == "NOT_FOUND"
            return
        if key in self.leased():
            self.expect_unchanged(
                key, lambda: self.manager.delete(key, if_unused=True), EnvironmentInUse
            )
            return
        assert self.manager.delete(key).status == "DELETED"
        del self.model[key]

    @rule(idle=st.sampled_from([0.0, 3600.0]))
    def cleanup(self, idle: float) -> None:
        STATS["cleanup"] += 1
        report = self.manager.cleanup(idle_seconds=idle)
        assert report.skipped_busy == ()
        if idle:
            assert report.deleted == ()
            return
        leased = self.leased()
        assert sorted(report.deleted) == sorted(k for k in self.model if k not in leased)
        assert sorted(report.skipped_leased) == sorted(k for k in self.model if k in leased)
        for key in report.deleted:
            del self.model[key]

    @rule(data=st.data())
    def open_lease(self, data: st.DataObject) -> None:
        key = self.draw_key(data)
        STATS["open_lease"] += 1
        stack = contextlib.ExitStack()
        if key not in self.model:
            with pytest.raises(EnvironmentNotFound):
                stack.enter_context(self.manager.lease(key))
            stack.close()
            return
        environment = stack.enter_context(self.manager.lease(key))
        assert environment.status is EnvStatus.READY
        self.leases.append((key, environment, stack))

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def close_lease(self, data: st.DataObject) -> None:
        STATS["close_lease"] += 1
        index = data.draw(st.integers(0, len(self.leases) - 1))
        _, _, stack = self.leases.pop(index)
        stack.close()

    @rule(
        operation=st.sampled_from(["create", "ensure", "add", "remove", "update"]),
        key=st.sampled_from(KEYS),
        package=st.sampled_from(BAD_PACKAGES),
    )
    def bad_package(self, operation: str, key: EnvKey, package: str) -> None:
        STATS["bad_package"] += 1
        calls: dict[str, Callable[[], Any]] = {
            "create": lambda: self.manager.create(key, packages=["gamma", package]),
            "ensure": lambda: self.manager.ensure(key, packages=[package]),
            "add": lambda: self.manager.add(key, [package]),
            "remove": lambda: self.manager.remove(key, [package]),
            "update": lambda: self.manager.update(key, [package]),
        }
        self.rejected(calls[operation])

    @rule(key=st.sampled_from(KEYS), python=st.sampled_from(BAD_PYTHONS), create=st.booleans())
    def bad_python(self, key: EnvKey, python: str, create: bool) -> None:
        STATS["bad_python"] += 1
        if python == "":
            return  # "" is "the default" by contract, not bad input
        operation = self.manager.create if create else self.manager.ensure
        self.rejected(lambda: operation(key, packages=["gamma"], python=python))

    @rule(
        field=st.integers(0, 2),
        bad=st.sampled_from(BAD_IDS),
        operation=st.sampled_from(["ensure", "delete", "status"]),
    )
    def bad_id(self, field: int, bad: str, operation: str) -> None:
        STATS["bad_id"] += 1
        if field == 2 and bad == "":
            return  # an empty version id is valid
        ids = ["wf", "n", "v1"]
        ids[field] = bad

        def call() -> None:
            key = EnvKey(*ids)
            getattr(self.manager, operation)(key)

        self.rejected(call)

    @rule(key=st.sampled_from(KEYS), text=st.sampled_from(BAD_TEXTS), add=st.booleans())
    def bad_requirements_text(self, key: EnvKey, text: str, add: bool) -> None:
        STATS["bad_requirements_text"] += 1
        if add:
            self.rejected(lambda: self.manager.add(key, [], requirements_text=text))
        else:
            self.rejected(lambda: self.manager.ensure(key, requirements_text=text))

    def rejected(self, call: Callable[[], Any]) -> None:
        before = tree_snapshot(self.root)
        records = self.audit_total()
        with pytest.raises(InvalidInput):
            call()
        assert tree_snapshot(self.root) == before, "rejected input changed the root"
        assert self.audit_total() == records, "rejected input was recorded"

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def the_manager_agrees_with_the_model(self) -> None:
        for key in KEYS:
            env_dir = self.manager._core.services.layout.env_dir(key)
            expected = self.model.get(key)
            if expected is None:
                assert self.manager.status(key).status is EnvStatus.NOT_FOUND
                assert not env_dir.exists()
                continue
            environment = self.manager.get(key)
            assert environment.status is EnvStatus.READY
            assert environment.pending_generation is None
            assert os.readlink(env_dir / "current") == f"gens/{environment.generation}"
            assert environment.python_path.exists()
            known = {environment.generation, *(r.generation for r in environment.retired)}
            on_disk = {int(p.name) for p in (env_dir / "gens").iterdir()}
            assert on_disk == known
            dependencies = self.manager.dependencies(key)
            assert {name_of(d) for d in dependencies.declared} == {
                name_of(r) for r in expected.declared
            }
            assert set(dependencies.locked) == locked_names(expected.declared, real=self.real)
        assert sorted(e.key for e in self.manager.list_environments()) == sorted(self.model)
        for key, environment, _ in self.leases:
            assert key in self.model, "a leased env disappeared"
            assert environment.pinned_python_path.exists(), "a leased generation was removed"
        assert not any(self.manager._core.services.layout.trash_dir.glob("*"))
        assert self.manager.operations(status="RUNNING").total == 0


def report(label: str) -> None:
    """Print the rules run (shown with ``pytest -s``; the figures in docs/reliability.md)."""
    print(f"\n{label}: {sum(STATS.values())} steps: {dict(sorted(STATS.items()))}")


def test_state_machine_on_the_fake_uv() -> None:
    STATS.clear()
    run_state_machine_as_test(
        ManagerModelMachine,
        settings=settings(
            max_examples=FAKE_EXAMPLES,
            stateful_step_count=FAKE_STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    report("state machine on the fake uv")


@pytest.mark.slow
def test_state_machine_on_real_uv(
    wheelhouse: Path, uv_cache: Path, python_finder: PythonFinder
) -> None:
    class RealMachine(ManagerModelMachine):
        real = True

        def make_manager(self, root: Path) -> EnvManager:
            return EnvManager(
                Settings(
                    root=root,
                    cache_dir=uv_cache,
                    index=IndexSettings(find_links=(str(wheelhouse),), no_index=True),
                    lock_timeout=60,
                    uv_timeout=300,
                    # The invariants compare whole trees between operations; a detached
                    # compiler adding .pyc files in between would break them by design.
                    background_bytecode=False,
                ),
                python_finder=python_finder,
            )

    STATS.clear()
    run_state_machine_as_test(
        RealMachine,
        settings=settings(
            max_examples=REAL_EXAMPLES,
            stateful_step_count=REAL_STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    report("state machine on real uv")
