"""Developer sessions: ``nox -s tests lint typecheck`` (the backend is uv when present)."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHONS = ["3.11", "3.12", "3.13"]
LINTED = ("uv_envs", "uv_envs_server", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite, network tests included."""
    session.install("-e", ".[server,http,postgres,ray,test]")
    session.run("pytest", *session.posargs)


@nox.session
def offline(session: nox.Session) -> None:
    """The suite without the tests that need the public package index."""
    session.install("-e", ".[server,http,postgres,ray,test]")
    session.run("pytest", "-m", "not network", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """A longer soak of the stress, crash and state-machine tests (about ten minutes)."""
    session.install("-e", ".[server,http,postgres,ray,test]")
    soak = {
        "UV_ENVS_STRESS_OPS": "500",
        "UV_ENVS_CRASH_TRIALS": "360",
        "UV_ENVS_SM_EXAMPLES": "1000",
        "UV_ENVS_SM_REAL_EXAMPLES": "50",
    }
    env = {name: os.environ.get(name, value) for name, value in soak.items()}
    session.run(
        "pytest",
        "tests/root/test_stress.py",
        "tests/root/test_crash.py",
        "tests/api/test_state_machine.py",
        "-s",
        *session.posargs,
        env=env,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format checks, and the import-linter contracts (the layers)."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    # Contracts in pyproject's [tool.importlinter]; it reads the source from this folder.
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy strict on the package, the tests and the benchmarks."""
    # The test extra too: mypy reads pytest's and hypothesis's types in tests/.
    session.install(
        "-e",
        ".[server,test]",
        "mypy",
        "types-grpcio",
        "types-grpcio-health-checking",
        "types-grpcio-reflection",
        "types-protobuf",
    )
    session.run("mypy")  # files: pyproject's [tool.mypy] (package, tests, benchmarks)


@nox.session(python="3.11")
def protos(session: nox.Session) -> None:
    """Regenerate uv_envs_server/_generated from protos/; commit the result."""
    session.install("grpcio-tools==1.62.3")
    session.run("python", "uv_envs_server/_regen.py")


@nox.session(python="3.11")
@nox.parametrize(
    "pins",
    [
        # grpcio-health-checking and grpcio-reflection release with grpcio: pin all three alike.
        nox.param(
            (
                "grpcio==1.60.0",
                "grpcio-health-checking==1.60.0",
                "grpcio-reflection==1.60.0",
                "protobuf==5.26.1",
            ),
            id="lowest",
        ),
        nox.param(
            (
                "grpcio==1.76.0",
                "grpcio-health-checking==1.76.0",
                "grpcio-reflection==1.76.0",
                "protobuf==6.31.1",
            ),
            id="wtb",
        ),
        nox.param(
            (
                "--upgrade",
                "grpcio",
                "grpcio-health-checking",
                "grpcio-reflection",
                "protobuf",
            ),
            id="newest",
        ),
    ],
)
def grpc_versions(session: nox.Session, pins: tuple[str, ...]) -> None:
    """The server tests on the lowest supported grpcio/protobuf pair, WTB's, and the newest."""
    session.install("-e", ".[server,http,postgres,ray,test]", *pins)
    session.run("pytest", "tests/server", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (``nox -s bench -- waiters``); results go to docs/performance.md by hand."""
    session.install("-e", ".[server]")
    # benchmarks/__main__.py: names and options as its docstring says; run.py by default.
    session.run("python", "-m", "benchmarks", *(session.posargs or ["compare"]))
