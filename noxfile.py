"""Developer sessions: ``nox -s tests lint typecheck`` (the backend is uv when present)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHONS = ["3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite, network tests included."""
    session.install("-e", ".[server,test]")
    session.run("pytest", *session.posargs)


@nox.session
def offline(session: nox.Session) -> None:
    """The suite without the tests that need the public package index."""
    session.install("-e", ".[server,test]")
    session.run("pytest", "-m", "not network", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "uv_envs")
    session.run("ruff", "format", "--check", "uv_envs")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[server]", "mypy")
    session.run("mypy", "uv_envs")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks; results go to docs/performance.md by hand."""
    session.install("-e", ".[server]")
    session.run("python", "benchmarks/run.py", *session.posargs)
