"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis).

For every operation, generated requests (valid and invalid) go to a real
uvicorn on loopback backed by real uv. Every answer must be documented (status
code, content type, body schema) and none may be a 5xx; after every request
nothing has appeared outside the root and an env made beforehand (and leased,
as a running node would) is unchanged.
``max_examples`` is kept small so the module runs in a minute or two on 2 cores.
"""

# ruff: noqa: E402 - the imports after importorskip need the optional extras

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
schemathesis = pytest.importorskip("schemathesis", reason="fuzzing needs schemathesis")

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks

import uv_envs
from uv_envs_server import ServeOptions, create_http_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from schemathesis import Case, GenerationMode

    from uv_envs._uv.python import PythonFinder

KEEP = uv_envs.EnvKey("keep-wf", "keep-node", "v1")
MAX_EXAMPLES = int(os.environ.get("UV_ENVS_FUZZ_EXAMPLES", "50"))


def _listing(folder: Path) -> list[str]:
    # Hypothesis keeps its unicode cache in ./.hypothesis the first time it generates
    # text, whichever test that is: not the server's doing.
    return sorted(p.name for p in folder.iterdir() if p.name != ".hypothesis")


class Fuzzed:
    """The server under fuzzing and what must not change."""

    def __init__(self, base: Path, manager: uv_envs.EnvManager) -> None:
        self.base = base
        self.manager = manager
        self.server = create_http_server(manager, ServeOptions(max_workers=4))
        self.server.start()
        self.kept = manager.ensure(KEEP, packages=["alpha<2"])
        self.kept_metadata = (self.kept.env_path / "metadata.json").read_bytes()
        self.cwd = _listing(Path())

    def check_unharmed(self) -> None:
        assert sorted(p.name for p in self.base.iterdir()) == ["root"], "written outside the root"
        assert _listing(Path()) == self.cwd, "written into the working directory"
        metadata = self.kept.env_path / "metadata.json"
        assert metadata.read_bytes() == self.kept_metadata, "an existing env was changed"
        assert self.kept.python_path.is_file()


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, python_finder: PythonFinder
) -> Iterator[Fuzzed]:
    base = tmp_path_factory.mktemp("fuzz")
    settings_ = uv_envs.Settings(
        root=base / "root",  # uv's cache too: everything the server writes is under the root
        index=uv_envs.IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        lock_timeout=2,
        uv_timeout=120,
    )
    state = Fuzzed(base, uv_envs.EnvManager(settings_, python_finder=python_finder))
    # Leased, as a running node would hold it: a fuzzed cleanup (idle_hours=0) must skip it.
    with state.manager.lease(KEEP):
        yield state
    state.server.stop(5)


def _operations(fuzzed: Fuzzed) -> list[Any]:
    loaded = schemathesis.openapi.from_dict(fuzzed.server.app.openapi())
    # /v1/events streams until the client goes: a fuzzed request would never end. Its bad
    # input is checked in test_events_http.py.
    operations = [result.ok() for result in loaded.get_all_operations()]
    return [op for op in operations if op.path != "/v1/events"]


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]

#: The original API's run route answers its documented 501 and nothing else: not serving it
#: is the point (running code is Ray's job), so a 5xx is no failure there.
NOT_SERVED_CHECKS = [check for check in CHECKS if check is not checks.not_a_server_error]


# schemathesis' pytest plugin does not run on this pytest; its strategies do, with hypothesis.
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_every_answer_is_documented_and_harmless(fuzzed: Fuzzed, mode: GenerationMode) -> None:
    operations = _operations(fuzzed)
    assert len(operations) >= 16  # every endpoint is in the schema
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same requests every run: a failure reproduces
        )
        def fuzz(case: Case[Any]) -> None:
            try:
                expected = NOT_SERVED_CHECKS if case.path.endswith("/run") else CHECKS
                case.call_and_validate(base_url=fuzzed.server.url, checks=expected, timeout=120)
            finally:
                fuzzed.check_unharmed()

        try:
            fuzz()
        except Unsatisfiable:
            # An operation without parameters or body (health, sync ...) has no invalid form.
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
