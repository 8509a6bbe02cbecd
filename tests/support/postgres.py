"""The real PostgreSQL the audit tests use, named by ``UV_ENVS_TEST_POSTGRES_URL``.

Each test gets its own schema (through ``search_path`` in the URL), so tests
never see each other's tables and a run leaves nothing behind. Tests that stop
and start the server also need ``UV_ENVS_TEST_POSTGRES_CONTROL``, e.g.
``pg_ctlcluster:15:main``: they change a server other programs may use.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

URL_VARIABLE = "UV_ENVS_TEST_POSTGRES_URL"
CONTROL_VARIABLE = "UV_ENVS_TEST_POSTGRES_CONTROL"


def base_url() -> str:
    """The test database's URL, or skip the test with the reason."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(f"{URL_VARIABLE} is not set: no PostgreSQL to test against")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[postgres]'")
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (libpq's ``options`` parameter)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def admin_execute(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped after the test."""
    url = base_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin_execute(url, f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(url, schema)
    finally:
        start_server_if_stopped()
        admin_execute(url, f"DROP SCHEMA {schema} CASCADE")


def _control() -> list[str] | None:
    value = os.environ.get(CONTROL_VARIABLE, "")
    kind, _, rest = value.partition(":")
    if kind != "pg_ctlcluster" or rest.count(":") != 1:
        return None
    return ["pg_ctlcluster", *rest.split(":")]


def require_control() -> None:
    base_url()
    if _control() is None:
        pytest.skip(
            f"{CONTROL_VARIABLE} is not set to pg_ctlcluster:<version>:<cluster>: "
            "the test may not stop the PostgreSQL server"
        )


def server(action: str) -> None:
    """``pg_ctlcluster <version> <cluster> stop|start``; stop is ``-m fast`` (drops clients)."""
    command = _control()
    assert command is not None
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run([*command, action, *extra], check=True, capture_output=True, timeout=120)


def start_server_if_stopped() -> None:
    command = _control()
    if command is None:
        return
    status = subprocess.run([*command, "status"], capture_output=True, check=False, timeout=60)
    if status.returncode != 0:
        server("start")
