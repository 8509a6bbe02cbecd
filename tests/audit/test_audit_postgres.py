"""PostgreSQL audit store: schema versions, outages, passwords, fleets of roots, the copy.

All against the real server named by ``UV_ENVS_TEST_POSTGRES_URL``; the outage
tests also need ``UV_ENVS_TEST_POSTGRES_CONTROL`` (they stop the server).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import pytest

from tests.conftest import AUDIT_SCHEMA_BEFORE_HOSTS, FAKE_CATALOG
from tests.support.postgres import pg_url, require_control, server  # noqa: F401 - pg_url is a fixture
from uv_envs import (
    AuditSchemaTooNew,
    AuditUnavailable,
    EnvKey,
    EnvManager,
    EnvStatus,
    Settings,
    StorageError,
    SubprocessUvExecutor,
    UvExecutor,
    UvInvocation,
    UvResult,
    open_audit_log,
)
from uv_envs._audit import log as _audit
from uv_envs._audit import postgres_schema as pg
from uv_envs._audit.log import AuditQuery
from uv_envs._audit.postgres import PostgresAuditLog
from uv_envs._cli.main import main as cli_main
from uv_envs._uv.executor import find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import FakePythonFinder, FakeUvExecutor
from uv_envs_server._cli import main as server_main

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: the postgres extra")

KEY = EnvKey("wf", "node", "v1")
SECRET = "s3cret-Pa55-word"


def rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        found: list[tuple[object, ...]] = connection.execute(
            f"SELECT id, status, host, root FROM {pg.TABLE} ORDER BY id"
        ).fetchall()
    return found


def versions(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as connection:
        found = connection.execute(f"SELECT version FROM {pg.SCHEMA_TABLE} ORDER BY version")
        return [row[0] for row in found.fetchall()]


@pytest.fixture
def log(pg_url: str) -> Iterator[PostgresAuditLog]:  # noqa: F811 - the fixture from .postgres
    opened = PostgresAuditLog(pg_url, host="h", root="/r", timeout=10)
    yield opened
    opened.close()


def without_password(url: str) -> tuple[str, str]:
    """``url`` minus its password, and the password."""
    parts = urlsplit(url)
    assert parts.password, "the test URL must carry the password"
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), parts.password


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- schema ---------------------------------------------------------------------------------


def test_first_use_creates_the_current_schema(log: PostgresAuditLog, pg_url: str) -> None:  # noqa: F811
    log.start(KEY, "create")
    assert versions(pg_url) == list(range(1, pg.SCHEMA_VERSION + 1))


def test_an_older_schema_is_migrated_and_keeps_its_records(pg_url: str) -> None:  # noqa: F811
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {pg.SCHEMA_TABLE} (version integer PRIMARY KEY)")
        for statement in pg.MIGRATIONS[1]:
            connection.execute(statement)
        connection.execute(f"INSERT INTO {pg.SCHEMA_TABLE} VALUES (1)")
        connection.execute(
            f"INSERT INTO {pg.TABLE} (workflow_id, node_id, version_id, operation, status,"
            " started_at, pid) VALUES ('old', 'n', '', 'create', 'SUCCESS', 1.5, 7)"
        )
    log = PostgresAuditLog(pg_url, host="h", root="/r", timeout=10)
    try:
        new_id = log.start(KEY, "sync")
        page = log.query(AuditQuery())
    finally:
        log.close()
    assert versions(pg_url) == list(range(1, pg.SCHEMA_VERSION + 1))
    old = page.items[-1]
    assert (old.workflow_id, old.status, old.host, old.root) == ("old", "SUCCESS", "", "")
    assert old.metadata == {"pid": 7}
    assert page.items[0].id == new_id


def test_a_newer_schema_is_refused_and_left_alone(log: PostgresAuditLog, pg_url: str) -> None:  # noqa: F811
    log.start(KEY, "create")
    log.close()
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(f"INSERT INTO {pg.SCHEMA_TABLE} (version) VALUES (99)")
    before = rows(pg_url)

    newer = PostgresAuditLog(pg_url, host="h", root="/r", timeout=10)
    try:
        with pytest.raises(AuditSchemaTooNew) as caught:
            newer.start(KEY, "sync")
    finally:
        newer.close()
    assert isinstance(caught.value, StorageError)
    assert (caught.value.found, caught.value.supported) == (99, pg.SCHEMA_VERSION)
    assert "upgrade uv-envs" in str(caught.value)
    assert rows(pg_url) == before


def test_many_first_users_at_once_migrate_once(pg_url: str) -> None:  # noqa: F811
    logs = [PostgresAuditLog(pg_url, host=f"h{n}", root="/r", timeout=30) for n in range(8)]
    barrier = threading.Barrier(len(logs))
    errors: list[BaseException] = []

    def first_use(log: PostgresAuditLog) -> None:
        try:
            barrier.wait()
            log.start(KEY, "create")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for log in logs:
        log.close()
    assert errors == []
    assert versions(pg_url) == list(range(1, pg.SCHEMA_VERSION + 1))
    assert len(rows(pg_url)) == 8


# --- unreachable databases and passwords ----------------------------------------------------


def test_an_unreachable_database_is_a_typed_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://someone:{SECRET}@127.0.0.1:{free_port()}/nothing"
    log = PostgresAuditLog(url, host="h", root="/r", timeout=1)
    try:
        with pytest.raises(AuditUnavailable) as caught:
            log.start(KEY, "create")
        with pytest.raises(AuditUnavailable):
            log.query(AuditQuery())
    finally:
        log.close()
    message = str(caught.value)
    assert isinstance(caught.value, StorageError)
    assert "127.0.0.1" in message
    assert "refused" in message.lower()
    assert "someone:***@" in message
    assert SECRET not in message
    assert SECRET not in repr(log)
    assert SECRET not in caplog.text
    assert caught.value.__cause__ is None  # the driver's exception (and its conninfo) is not kept


def test_a_wrong_password_is_named_but_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url, _ = without_password(pg_url_base())
    parts = urlsplit(url)
    wrong = urlunsplit(parts._replace(netloc=parts.netloc.replace("@", f":{SECRET}@", 1)))
    log = PostgresAuditLog(wrong, timeout=2)
    try:
        with pytest.raises(AuditUnavailable) as caught:
            log.start(KEY, "create")
    finally:
        log.close()
    assert "password authentication failed" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


def pg_url_base() -> str:
    from tests.support.postgres import base_url

    return base_url()


def test_the_password_can_come_from_a_file_or_pgpassword(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare, password = without_password(pg_url)
    password_file = tmp_path / "pw"
    password_file.write_text(password + "\n")
    settings = Settings(root=tmp_path / "root", audit_url=bare, audit_password_file=password_file)
    by_file = open_audit_log(settings, settings.root)
    try:
        by_file.start(KEY, "create")
    finally:
        by_file.close()

    monkeypatch.setenv("PGPASSWORD", password)
    by_env = open_audit_log(attrs.evolve(settings, audit_password_file=None), settings.root)
    try:
        assert by_env.query(AuditQuery()).total == 1
    finally:
        by_env.close()


def test_settings_and_help_never_show_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://someone:{SECRET}@127.0.0.1:5432/db?password={SECRET}"
    settings = Settings(audit_url=url)
    assert SECRET not in repr(settings)
    assert "someone:***@" in repr(settings)
    monkeypatch.setenv("UV_ENVS_AUDIT_URL", url)
    for run in (cli_main, server_main):
        with pytest.raises(SystemExit):
            run(["--help"])
    out = capsys.readouterr().out
    assert "--audit-url" in out
    assert "--audit-password-file" in out
    assert SECRET not in out


def test_the_cli_reports_an_unreachable_database_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UV_ENVS_AUDIT_TIMEOUT", "1")
    url = f"postgresql://someone:{SECRET}@127.0.0.1:{free_port()}/db"
    code = cli_main(["--root", str(tmp_path / "root"), "--audit-url", url, "ops"])
    captured = capsys.readouterr()
    assert code == 1
    assert "audit database" in captured.err
    assert "unreachable" in captured.err
    assert SECRET not in captured.err + captured.out


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("uv-envs-audit")}


def wait_until_gone(threads: set[threading.Thread]) -> set[threading.Thread]:
    for thread in threads:
        thread.join(timeout=10)
    return {t for t in threads if t.is_alive()}


def test_the_cli_closes_its_audit_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pool left open is closed by its finalizer later, on whatever thread the
    # garbage collector picks: the CLI closes it itself.
    monkeypatch.setenv("UV_ENVS_AUDIT_TIMEOUT", "1")
    before = pool_threads()
    url = f"postgresql://someone:{SECRET}@127.0.0.1:{free_port()}/db"
    assert cli_main(["--root", str(tmp_path / "root"), "--audit-url", url, "ops"]) == 1
    capsys.readouterr()
    assert wait_until_gone(pool_threads() - before) == set()


def test_a_log_collected_on_one_of_its_pool_threads_closes_the_pool() -> None:
    from psycopg_pool.pool import ConnectionPool, MaintenanceTask

    before = pool_threads()
    log = PostgresAuditLog(f"postgresql://u@127.0.0.1:{free_port()}/db", timeout=1)
    pool = log._get_pool()
    assert log._closer is not None
    finalizer: Callable[[], object] = log._closer
    errors: list[BaseException] = []
    ran_on: list[str] = []

    class RunFinalizer(MaintenanceTask):
        """What the garbage collector does when it collects the log on a pool worker."""

        def _run(self, pool: ConnectionPool[Any]) -> None:
            ran_on.append(threading.current_thread().name)
            try:
                finalizer()
            except BaseException as exc:
                errors.append(exc)

    pool.run_task(RunFinalizer(pool))
    assert wait_until_gone(pool_threads() - before) == set()
    assert ran_on
    assert ran_on[0].startswith("uv-envs-audit-worker")
    assert errors == []
    assert pool.closed


def test_the_server_refuses_to_start_without_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("UV_ENVS_AUDIT_TIMEOUT", "1")
    url = f"postgresql://someone:{SECRET}@127.0.0.1:{free_port()}/db"
    argv = ["--port", "0", "--root", str(tmp_path / "root"), "--audit-url", url]
    before = pool_threads()
    assert server_main(argv, environ={}) == 2
    assert "unreachable" in caplog.text
    assert wait_until_gone(pool_threads() - before) == set()
    assert SECRET not in caplog.text


def test_a_url_that_is_not_postgres_is_bad_input(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, audit_url=f"mysql://u:{SECRET}@h/db")
    with pytest.raises(ValueError, match="postgresql://") as caught:
        open_audit_log(settings, tmp_path)
    assert SECRET not in str(caught.value)


# --- a fleet: several roots (hosts) in one database ------------------------------------------


def real_manager(
    settings: Settings, python_finder: PythonFinder, root: Path, url: str, host: str
) -> EnvManager:
    changed = attrs.evolve(settings, root=root, audit_url=url, audit_host=host)
    return EnvManager(changed, python_finder=python_finder)


def test_two_roots_share_one_database_and_ops_filter_by_host(
    settings: Settings,
    python_finder: PythonFinder,
    pg_url: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    a = real_manager(settings, python_finder, root_a, pg_url, "host-a")
    b = real_manager(settings, python_finder, root_b, pg_url, "host-b")
    try:
        a.create(KEY, packages=["alpha"])
        b.create(KEY, packages=["beta"])
        b.add(KEY, ["gamma"])

        mine_a = a.operations(host="host-a")
        mine_b = a.operations(host="host-b")
        assert [(r.operation, r.status) for r in mine_a.items] == [("create", "SUCCESS")]
        assert [r.operation for r in mine_b.items] == ["add", "create"]
        assert {(r.host, r.root) for r in mine_b.items} == {("host-b", str(root_b))}
        assert b.operations(root=str(root_a)).items == mine_a.items
        assert a.operations().total == 3  # unfiltered: the whole fleet
        assert a.operations(workflow_id="wf", host="host-b", status="SUCCESS").total == 2
    finally:
        a.close()
        b.close()

    monkeypatch.setenv("UV_ENVS_AUDIT_URL", pg_url)
    assert cli_main(["--root", str(root_a), "--json", "ops", "--from-host", "host-b"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["operation"] for item in listed["items"]] == ["add", "create"]
    assert {item["host"] for item in listed["items"]} == {"host-b"}
    assert cli_main(["--root", str(root_a), "ops", "--from-root", str(root_a)]) == 0
    text = capsys.readouterr().out
    assert "host-a" in text
    assert "host-b" not in text
    assert "(1 of 1)" in text

    # No password anywhere in what was stored.
    _, password = without_password(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as connection:
        dump = connection.execute(f"SELECT t::text FROM {pg.TABLE} t").fetchall()
    assert dump
    assert all(password not in row[0] for row in dump)


def start_and_die(url: str, host: str, root: str) -> None:
    """Runs in a spawned process: start a record, then exit without finishing it."""
    log = PostgresAuditLog(url, host=host, root=root, timeout=30)
    log.start(KEY, "create")
    log.close()


def test_recover_closes_only_its_own_host_s_dead_records(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    root = tmp_path / "root"
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=start_and_die, args=(pg_url, "host-b", str(root)))
    process.start()
    process.join(120)
    assert process.exitcode == 0
    process.close()

    def manager(host: str) -> EnvManager:
        settings = Settings(root=root, audit_url=pg_url, audit_host=host, lock_timeout=5)
        return EnvManager(
            settings, executor=FakeUvExecutor(FAKE_CATALOG), python_finder=FakePythonFinder()
        )

    elsewhere, there = manager("host-a"), manager("host-b")
    try:
        elsewhere.recover()  # the pid means nothing on host-a: the record is left alone
        assert [r.status for r in elsewhere.operations().items] == [_audit.RUNNING]
        there.recover()
        [record] = there.operations().items
        assert record.status == _audit.FAILED
        assert record.error == "interrupted: the process died"
    finally:
        elsewhere.close()
        there.close()


# --- moving a root from SQLite to PostgreSQL --------------------------------------------------


def test_audit_copy_moves_a_root_into_postgres_and_can_be_rerun(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with contextlib.closing(sqlite3.connect(root / "audit.sqlite3")) as old:
        old.executescript(AUDIT_SCHEMA_BEFORE_HOSTS)
        old.execute(
            "INSERT INTO operations (workflow_id, node_id, version_id, operation, status,"
            " started_at, finished_at, duration_ms, stderr, metadata, pid)"
            " VALUES ('wf', 'old', '', 'create', 'FAILED', 10.0, 11.0, 1000, 'é🐍',"
            " '{\"a\": 1}', 5)"
        )
        old.commit()
    monkeypatch.setenv("UV_ENVS_AUDIT_HOST", "host-old")
    manager = EnvManager(
        Settings.from_env(root=root, lock_timeout=5),
        executor=FakeUvExecutor(FAKE_CATALOG),
        python_finder=FakePythonFinder(),
    )
    manager.create(EnvKey("wf", "new"), packages=["alpha"])
    manager.delete(EnvKey("wf", "new"))
    manager.close()

    assert cli_main(["--root", str(root), "--json", "audit", "copy", "--to", pg_url]) == 0
    assert json.loads(capsys.readouterr().out) == {"read": 3, "copied": 3}
    assert cli_main(["--root", str(root), "audit", "copy", "--to", pg_url]) == 0
    assert "copied 0 of 3 records" in capsys.readouterr().out

    log = PostgresAuditLog(pg_url, timeout=10)
    try:
        page = log.query(AuditQuery())
    finally:
        log.close()
    assert [(r.node_id, r.operation) for r in page.items] == [
        ("new", "delete"),
        ("new", "create"),
        ("old", "create"),
    ]
    oldest = page.items[-1]
    assert (oldest.host, oldest.root) == ("host-old", str(root))
    assert (oldest.started_at, oldest.finished_at, oldest.duration_ms) == (10.0, 11.0, 1000)
    assert (oldest.status, oldest.stderr, oldest.metadata) == ("FAILED", "é🐍", {"a": 1, "pid": 5})
    assert {r.host for r in page.items} == {"host-old"}


# --- the database stops during an operation -------------------------------------------------


@attrs.define
class AfterSync:
    """The real uv executor, running ``action`` once right after the first ``uv sync``."""

    inner: UvExecutor
    action: Callable[[], None]
    done: bool = False

    def run(self, invocation: UvInvocation) -> UvResult:
        result = self.inner.run(invocation)
        if not self.done and invocation.args[:1] == ("sync",):
            self.done = True
            self.action()
        return result


def outage_manager(
    settings: Settings, python_finder: PythonFinder, url: str, action: Callable[[], None]
) -> EnvManager:
    executor = AfterSync(SubprocessUvExecutor(find_uv_binary(settings.uv_binary)), action)
    return EnvManager(
        attrs.evolve(settings, audit_url=url, audit_timeout=3),
        executor=executor,
        python_finder=python_finder,
    )


def test_a_short_outage_mid_operation_completes_with_its_row(
    settings: Settings,
    python_finder: PythonFinder,
    pg_url: str,  # noqa: F811
) -> None:
    require_control()

    def restart() -> None:
        server("stop")
        server("start")

    manager = outage_manager(settings, python_finder, pg_url, restart)
    try:
        environment = manager.create(KEY, packages=["alpha"])
        assert environment.status is EnvStatus.READY
        [record] = manager.operations().items
        assert (record.operation, record.status) == ("create", _audit.SUCCESS)
        # The next operation works on the same manager: the pool reconnected.
        manager.add(KEY, ["beta"])
        assert [r.status for r in manager.operations().items] == [_audit.SUCCESS] * 2
    finally:
        manager.close()


def test_a_long_outage_after_the_change_is_an_error_and_the_row_follows(
    settings: Settings,
    python_finder: PythonFinder,
    pg_url: str,  # noqa: F811
) -> None:
    require_control()
    manager = outage_manager(settings, python_finder, pg_url, lambda: server("stop"))
    try:
        with pytest.raises(AuditUnavailable) as caught:
            manager.create(KEY, packages=["alpha"])
        assert "finished SUCCESS" in str(caught.value)
        # As after: the env was created; only its record could not be completed yet.
        assert manager.status(KEY).status is EnvStatus.READY
        server("start")
        [record] = manager.operations().items
        assert (record.operation, record.status) == ("create", _audit.SUCCESS)
        manager.ensure(KEY, packages=["alpha"])  # and the next one works, no restart
        assert manager.operations().total == 2
    finally:
        manager.close()


def test_an_operation_while_the_database_is_down_changes_nothing(
    settings: Settings,
    python_finder: PythonFinder,
    pg_url: str,  # noqa: F811
) -> None:
    require_control()
    manager = outage_manager(settings, python_finder, pg_url, lambda: None)
    try:
        manager.operations()  # the schema exists, the pool is warm
        server("stop")
        with pytest.raises(AuditUnavailable) as caught:
            manager.create(KEY, packages=["alpha"])
        assert "starting the record" in str(caught.value)
        # As before: nothing was built.
        assert manager.status(KEY).status is EnvStatus.NOT_FOUND
        assert not manager.status(KEY).env_path.exists()
        server("start")
        manager.create(KEY, packages=["alpha"])
        assert [(r.operation, r.status) for r in manager.operations().items] == [
            ("create", _audit.SUCCESS)
        ]
    finally:
        manager.close()
