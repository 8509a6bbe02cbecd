"""The generation switch (``_core.generations``) under random sequences of operations,
some failing in uv: a failed step changes nothing, and the disk matches a model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from packaging.requirements import Requirement

from uv_envs import (
    EnvironmentAlreadyExists,
    EnvKey,
    EnvManager,
    EnvStatus,
    InvalidRequirement,
    Settings,
    UvError,
)
from uv_envs.testing import FakePythonFinder, FakeUvExecutor

from .conftest import current, generations, snapshot

STATE_KEYS = (EnvKey("wf", "n", "v1"), EnvKey("wf", "n", ""), EnvKey("wf2", "m", "v1"))
STATE_PACKAGES = ("alpha", "beta", "gamma")


class ManagerMachine(RuleBasedStateMachine):
    """Random sequences of operations, some failing, against a model of declared names."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.uv = FakeUvExecutor({"alpha": ["1.0", "2.0"], "beta": ["1.0"], "gamma": ["1.0"]})
        self.manager = EnvManager(
            Settings(root=Path(self.directory.name) / "root", lock_timeout=5),
            executor=self.uv,
            python_finder=FakePythonFinder(),
        )
        self.model: dict[EnvKey, frozenset[str]] = {}

    def teardown(self) -> None:
        self.directory.cleanup()

    def unchanged_after_failure(self, key: EnvKey, action: Callable[[], Any], failing: str) -> None:
        before = snapshot(self.manager._core.services.layout.env_dir(key))
        self.uv.fail_next(failing)
        with pytest.raises(UvError):
            action()
        assert snapshot(self.manager._core.services.layout.env_dir(key)) == before

    @rule(key=st.sampled_from(STATE_KEYS), names=st.sets(st.sampled_from(STATE_PACKAGES)))
    def ensure(self, key: EnvKey, names: set[str]) -> None:
        environment = self.manager.ensure(key, packages=sorted(names))
        assert environment.status is EnvStatus.READY
        self.model[key] = frozenset(names)

    @rule(key=st.sampled_from(STATE_KEYS), names=st.sets(st.sampled_from(STATE_PACKAGES)))
    def create(self, key: EnvKey, names: set[str]) -> None:
        if key in self.model and self.model[key] != names:
            with pytest.raises(EnvironmentAlreadyExists):
                self.manager.create(key, packages=sorted(names))
            return
        calls = len(self.uv.calls)
        self.manager.create(key, packages=sorted(names))
        if key in self.model:
            assert len(self.uv.calls) == calls, "create of an existing spec ran uv"
        self.model[key] = frozenset(names)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), name=st.sampled_from(STATE_PACKAGES), fail=st.booleans())
    def add(self, data: st.DataObject, name: str, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.add(key, [name]), "add")
            return
        self.manager.add(key, [name])
        self.model[key] = self.model[key] | {name}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), name=st.sampled_from(STATE_PACKAGES), fail=st.booleans())
    def remove(self, data: st.DataObject, name: str, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if name not in self.model[key]:
            with pytest.raises(InvalidRequirement):
                self.manager.remove(key, [name])
            return
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.remove(key, [name]), "remove")
            return
        self.manager.remove(key, [name])
        self.model[key] = self.model[key] - {name}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fail=st.booleans())
    def update(self, data: st.DataObject, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.update(key), "lock")
            return
        self.manager.update(key)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fail=st.booleans())
    def sync(self, data: st.DataObject, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.sync(key), "sync")
            return
        self.manager.sync(key)

    @rule(key=st.sampled_from(STATE_KEYS))
    def delete(self, key: EnvKey) -> None:
        expected = "DELETED" if key in self.model else "NOT_FOUND"
        assert self.manager.delete(key).status == expected
        self.model.pop(key, None)

    @rule()
    def cleanup_of_nothing_idle(self) -> None:
        report = self.manager.cleanup(idle_seconds=3600)
        assert report.deleted == ()
        assert report.skipped_busy == ()

    @rule()
    def recover_finds_nothing_to_repair(self) -> None:
        assert self.manager.recover() == []

    @invariant()
    def the_disk_matches_the_model(self) -> None:
        for key in STATE_KEYS:
            env_dir = self.manager._core.services.layout.env_dir(key)
            if key not in self.model:
                assert self.manager.status(key).status is EnvStatus.NOT_FOUND
                assert not env_dir.exists()
                continue
            environment = self.manager.get(key)
            assert environment.status is EnvStatus.READY
            assert environment.pending_generation is None
            assert current(env_dir) == f"gens/{environment.generation}"
            known = {environment.generation, *(r.generation for r in environment.retired)}
            assert {int(g) for g in generations(env_dir)} == known
            assert environment.python_path.exists()
            assert environment.pinned_python_path.exists()
            dependencies = self.manager.dependencies(key)
            assert set(dependencies.locked) == self.model[key]
            declared = {Requirement(d).name for d in dependencies.declared}
            assert declared == self.model[key]
        listed = [e.key for e in self.manager.list_environments()]
        assert sorted(listed) == sorted(self.model)
        assert list(self.manager._core.services.layout.trash_dir.glob("*")) == []
        assert self.manager.operations(status="RUNNING").total == 0


ManagerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_manager_state_machine = ManagerMachine.TestCase
