"""Bad input (``_core.requests``): rejected before anything is written, run or recorded."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uv_envs import (
    DirectReferenceNotAllowed,
    EnvManager,
    Interpreter,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    PythonNotFound,
    RequirementsOptionNotAllowed,
)
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

from .conftest import KEY, RUNNING_VERSION, env_dirs_under, make_manager, snapshot

BAD_CREATES: list[Any] = [
    pytest.param(
        {"packages": ["--index-url=https://evil.example"]}, InvalidRequirement, id="option"
    ),
    pytest.param({"packages": ["-e ."]}, InvalidRequirement, id="editable"),
    pytest.param({"packages": "alpha"}, InvalidRequirement, id="one-string"),
    pytest.param({"packages": [None]}, InvalidRequirement, id="not-a-string"),
    pytest.param({"packages": [""]}, InvalidRequirement, id="empty-package"),
    pytest.param(
        {"packages": ["alpha @ https://x.example/a.whl"]}, DirectReferenceNotAllowed, id="url"
    ),
    pytest.param({"packages": ["./pkg"]}, DirectReferenceNotAllowed, id="path"),
    pytest.param({"packages": ["git+https://github.com/x/y"]}, DirectReferenceNotAllowed, id="vcs"),
    pytest.param({"requirements_text": "-r other.txt\n"}, RequirementsOptionNotAllowed, id="req-r"),
    pytest.param(
        {"requirements_text": "--index-url https://x\n"},
        RequirementsOptionNotAllowed,
        id="req-index",
    ),
    pytest.param(
        {"requirements_text": b"alpha --hash=sha256:00\n"},
        RequirementsOptionNotAllowed,
        id="req-hash",
    ),
    pytest.param({"packages": ["alpha"], "python": "2.7"}, InvalidPythonVersion, id="python-2"),
    pytest.param(
        {"packages": ["alpha"], "python": "python3.12"}, InvalidPythonVersion, id="python-name"
    ),
    pytest.param({"packages": ["alpha"], "python": "3.2"}, PythonNotFound, id="python-missing"),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_CREATES)
@pytest.mark.parametrize("method", ["create", "ensure"])
def test_bad_input_to_create_changes_nothing(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    method: str,
    kwargs: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error) as caught:
        getattr(fake_manager, method)(KEY, **kwargs)
    assert isinstance(caught.value, InvalidInput)
    assert isinstance(caught.value, ValueError)

    assert env_dirs_under(fake_manager.settings.root) == []
    assert fake_uv.calls == []
    assert events.events == []
    assert fake_manager.operations().total == 0


BAD_CHANGES: list[Any] = [
    pytest.param(
        lambda m: m.add(KEY, ["--index-url=https://evil.example"]),
        InvalidRequirement,
        id="add-option",
    ),
    pytest.param(lambda m: m.add(KEY, "gamma"), InvalidRequirement, id="add-one-string"),
    pytest.param(lambda m: m.add(KEY, []), InvalidRequirement, id="add-nothing"),
    pytest.param(
        lambda m: m.add(KEY, ["gamma @ https://x/g.whl"]), DirectReferenceNotAllowed, id="add-url"
    ),
    pytest.param(
        lambda m: m.add(KEY, requirements_text="-e .\n"),
        RequirementsOptionNotAllowed,
        id="add-text",
    ),
    pytest.param(lambda m: m.update(KEY, ["-e ."]), InvalidRequirement, id="update-option"),
    pytest.param(lambda m: m.remove(KEY, []), InvalidRequirement, id="remove-nothing"),
    pytest.param(lambda m: m.remove(KEY, ["gamma"]), InvalidRequirement, id="remove-undeclared"),
    pytest.param(lambda m: m.remove(KEY, ["--all"]), InvalidRequirement, id="remove-option"),
]


@pytest.mark.parametrize(("change", "error"), BAD_CHANGES)
def test_bad_input_to_a_change_changes_nothing(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    change: Callable[[EnvManager], Any],
    error: type[Exception],
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    calls = len(fake_uv.calls)
    records = fake_manager.operations().total
    del events.events[:]

    with pytest.raises(error) as caught:
        change(fake_manager)

    assert isinstance(caught.value, InvalidInput)
    assert snapshot(environment.env_path) == before
    assert len(fake_uv.calls) == calls
    assert events.events == []
    assert fake_manager.operations().total == records


def test_python_not_found_lists_what_is_installed(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    finder = FakePythonFinder(
        [
            Interpreter(Path(sys.executable), RUNNING_VERSION),
            Interpreter(Path("/opt/py/bin/python3"), "3.99.7"),
        ]
    )
    manager = make_manager(tmp_path, fake_uv, python_finder=finder)
    with pytest.raises(PythonNotFound) as caught:
        manager.create(KEY, packages=["alpha"], python="3.2")
    assert isinstance(caught.value, LookupError)
    assert caught.value.request == "3.2"
    assert set(caught.value.found) == {RUNNING_VERSION, "3.99.7"}
    assert RUNNING_VERSION in str(caught.value)
    assert "3.99.7" in str(caught.value)
    assert env_dirs_under(manager.settings.root) == []
