from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uv_envs import EnvManager, IndexSettings, Settings, SubprocessUvExecutor
from uv_envs._uv.commands import UvOptions
from uv_envs._uv.executor import find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

from .support.wheelhouse import build_wheelhouse

# Read by Ray when it is imported, by whichever test module imports it first:
# no usage reports, every node on 127.0.0.1, no token file written to ~/.ray.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

RUNNING_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaks environment variables or a changed working directory."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    cwd = Path.cwd()
    yield
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert after == environ, "the test changed os.environ"
    assert Path.cwd() == cwd, "the test changed the working directory"


@pytest.fixture(autouse=True)
def _ray_detection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside tests marked ``ray``, run as on a machine without Ray.

    With Ray importable, ``Settings.ray = "auto"`` links every env to it and
    runs ``import ray`` in each new venv (half a second, and it needs a real
    interpreter, which the fake uv does not make).
    """
    if request.node.get_closest_marker("ray") is None:
        monkeypatch.setattr("uv_envs._uv.raylink.in_process", lambda: None)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the session keeps real-uv tests fast; each test still has its own root.
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def python_finder(uv_cache: Path) -> PythonFinder:
    executor = SubprocessUvExecutor(find_uv_binary())
    return PythonFinder(executor, UvOptions(cache_dir=uv_cache))


@pytest.fixture(scope="session")
def other_python(python_finder: PythonFinder) -> str:
    """An installed minor version other than the running one."""
    minors = {".".join(i.version.split(".")[:2]) for i in python_finder.installed()}
    minors.discard(RUNNING_MINOR)
    candidates = sorted(m for m in minors if m >= "3.9")
    if not candidates:
        pytest.skip("only one Python minor version is installed")
    return candidates[-1]


@pytest.fixture
def settings(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Settings:
    return Settings(
        root=tmp_path / "root",
        cache_dir=uv_cache,
        index=IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        lock_timeout=60,
        uv_timeout=300,
        # A detached compiler finishing mid-test would change store entries (.pyc
        # files, .size) under the test; test_bytecode/test_warm_path turn it on.
        background_bytecode=False,
    )


@pytest.fixture
def events() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def manager(
    settings: Settings, python_finder: PythonFinder, events: RecordingPublisher
) -> EnvManager:
    return EnvManager(settings, python_finder=python_finder, publish=events)


#: The SQLite audit table before records carried their host and root.
AUDIT_SCHEMA_BEFORE_HOSTS = """
CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workflow_id TEXT NOT NULL, node_id TEXT NOT NULL,
    version_id TEXT NOT NULL, operation TEXT NOT NULL, status TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, duration_ms INTEGER,
    stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL DEFAULT '', exit_code INTEGER,
    error TEXT, metadata TEXT NOT NULL DEFAULT '{}', pid INTEGER NOT NULL
);
"""


FAKE_CATALOG = {
    "alpha": ["1.0", "2.0"],
    "beta": ["1.0"],
    "gamma": ["1.0"],
}


@pytest.fixture
def fake_uv() -> FakeUvExecutor:
    return FakeUvExecutor(FAKE_CATALOG)


@pytest.fixture
def fake_manager(tmp_path: Path, fake_uv: FakeUvExecutor, events: RecordingPublisher) -> EnvManager:
    return EnvManager(
        Settings(root=tmp_path / "root", lock_timeout=5),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        publish=events,
    )


# --- PostgreSQL must not skip where it is required ------------------------------------------

_skipped_postgres: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # .ci/run sets UV_ENVS_TEST_POSTGRES_REQUIRED=1: there a skipped PostgreSQL test is a failure,
    # not a quiet pass (a wrong URL or a stopped server would otherwise go unnoticed).
    del exitstatus
    if _skipped_postgres and os.environ.get("UV_ENVS_TEST_POSTGRES_REQUIRED") == "1":
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_postgres and os.environ.get("UV_ENVS_TEST_POSTGRES_REQUIRED") == "1":
        terminalreporter.section("PostgreSQL tests skipped but required", red=True)
        for nodeid in _skipped_postgres:
            terminalreporter.line(f"SKIPPED (required): {nodeid}")
