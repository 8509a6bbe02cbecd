"""The SQLite audit log on a temporary file, from threads and from real processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import AUDIT_SCHEMA_BEFORE_HOSTS
from uv_envs import EnvKey, OperationRecord, OperationStatus, StorageError
from uv_envs._audit.counted import CountedAuditLog
from uv_envs._audit.log import MAX_OUTPUT, AuditOutcome, AuditQuery
from uv_envs._audit.sqlite import SqliteAuditLog

KEY = EnvKey("wf", "node", "v1")


@pytest.fixture
def audit(tmp_path: Path) -> SqliteAuditLog:
    return SqliteAuditLog(tmp_path / "nested" / "audit.sqlite3")


def only(audit: SqliteAuditLog) -> OperationRecord:
    page = audit.query(AuditQuery())
    assert page.total == 1
    return page.items[0]


def test_start_writes_a_running_record(audit: SqliteAuditLog) -> None:
    before = time.time()
    record_id = audit.start(KEY, "create", {"packages": ["alpha"], "python": "3.12"})

    record = only(audit)
    assert record.id == record_id
    assert (record.workflow_id, record.node_id, record.version_id) == ("wf", "node", "v1")
    assert (record.operation, record.status) == ("create", "RUNNING")
    assert before <= record.started_at <= time.time()
    assert (record.finished_at, record.duration_ms, record.exit_code, record.error) == (
        None,
        None,
        None,
        None,
    )
    assert (record.stdout, record.stderr) == ("", "")
    assert record.metadata == {"packages": ["alpha"], "python": "3.12", "pid": os.getpid()}
    assert audit.path.is_file()


def test_finish_completes_the_record(audit: SqliteAuditLog) -> None:
    record_id = audit.start(KEY, "add", {"packages": ["gamma"]})
    time.sleep(0.02)
    audit.finish(
        record_id,
        AuditOutcome(
            OperationStatus.FAILED,
            stdout="out",
            stderr="x No solution found",
            exit_code=1,
            error="ResolutionFailed: ...",
            metadata={"generation": 2},
        ),
    )

    record = only(audit)
    assert record.status == "FAILED"
    assert record.finished_at is not None
    assert record.finished_at >= record.started_at
    assert record.duration_ms is not None
    assert record.duration_ms >= 20
    assert (record.stdout, record.stderr, record.exit_code, record.error) == (
        "out",
        "x No solution found",
        1,
        "ResolutionFailed: ...",
    )
    # Metadata given at the finish is merged into that of the start.
    assert record.metadata == {"packages": ["gamma"], "generation": 2, "pid": os.getpid()}


def test_finish_of_an_unknown_record_is_ignored(audit: SqliteAuditLog) -> None:
    audit.start(KEY, "create")
    audit.finish(12345, AuditOutcome(OperationStatus.SUCCESS))
    assert only(audit).status == "RUNNING"


def test_an_empty_version_id_is_kept_empty(audit: SqliteAuditLog) -> None:
    audit.start(EnvKey("wf", "node"), "create")
    assert only(audit).version_id == ""


def test_metadata_that_is_not_json_is_stored_as_text(audit: SqliteAuditLog) -> None:
    audit.start(KEY, "create", {"path": Path("/x/y")})
    assert only(audit).metadata["path"] == "/x/y"


def fill(audit: SqliteAuditLog) -> list[int]:
    """Ten records over three keys: wf1/n1 x4, wf1/n2 x3, wf2/n1 x3; every third FAILED."""
    keys = [EnvKey("wf1", "n1")] * 4 + [EnvKey("wf1", "n2", "v")] * 3 + [EnvKey("wf2", "n1")] * 3
    ids = []
    for number, key in enumerate(keys):
        record_id = audit.start(key, "sync")
        audit.finish(
            record_id,
            AuditOutcome(OperationStatus.FAILED if number % 3 == 0 else OperationStatus.SUCCESS),
        )
        ids.append(record_id)
    return ids


def test_query_filters(audit: SqliteAuditLog) -> None:
    ids = fill(audit)

    def found(
        *, workflow_id: str | None = None, node_id: str | None = None, status: str | None = None
    ) -> list[int]:
        page = audit.query(
            AuditQuery(limit=100, workflow_id=workflow_id, node_id=node_id, status=status)
        )
        assert page.total == len(page.items)
        return [r.id for r in page.items]

    assert found() == ids[::-1]
    assert found(workflow_id="wf1") == ids[:7][::-1]
    assert found(workflow_id="wf1", node_id="n2") == ids[4:7][::-1]
    assert found(node_id="n1") == (ids[:4] + ids[7:])[::-1]
    assert found(status="FAILED") == [ids[9], ids[6], ids[3], ids[0]]
    assert found(workflow_id="wf2", status="SUCCESS") == [ids[8], ids[7]]
    assert found(workflow_id="nope") == []
    assert found(status="RUNNING") == []


def test_query_pages_newest_first(audit: SqliteAuditLog) -> None:
    ids = fill(audit)
    pages = [audit.query(AuditQuery(limit=4, offset=offset)) for offset in (0, 4, 8, 12)]

    assert [p.total for p in pages] == [10, 10, 10, 10]
    assert [(p.limit, p.offset) for p in pages] == [(4, 0), (4, 4), (4, 8), (4, 12)]
    assert [len(p.items) for p in pages] == [4, 4, 2, 0]
    assert [r.id for p in pages for r in p.items] == ids[::-1]
    filtered = audit.query(AuditQuery(workflow_id="wf1", limit=2, offset=1))
    assert filtered.total == 7
    assert [r.id for r in filtered.items] == [ids[5], ids[4]]


def test_query_clamps_bad_paging(audit: SqliteAuditLog) -> None:
    fill(audit)
    negative = audit.query(AuditQuery(limit=-5, offset=-3))
    assert (negative.limit, negative.offset, negative.items) == (0, 0, ())
    assert negative.total == 10
    huge = audit.query(AuditQuery(limit=10**9))
    assert huge.limit <= 1000
    assert len(huge.items) == 10


def test_query_values_are_parameters_not_sql(audit: SqliteAuditLog) -> None:
    fill(audit)
    assert audit.query(AuditQuery(workflow_id="wf1' OR '1'='1")).total == 0
    assert audit.query(AuditQuery(status="x'; DROP TABLE operations; --")).total == 0
    assert audit.query(AuditQuery()).total == 10


def test_delete_by_workflow(audit: SqliteAuditLog) -> None:
    fill(audit)
    deleted = audit.delete("wf1")
    assert (deleted.workflow_id, deleted.node_id, deleted.deleted_count) == ("wf1", "", 7)
    assert deleted.deleted_node_ids == ("n1", "n2")
    assert audit.query(AuditQuery(workflow_id="wf1")).total == 0
    assert audit.query(AuditQuery()).total == 3
    again = audit.delete("wf1")
    assert (again.deleted_count, again.deleted_node_ids) == (0, ())


def test_delete_by_node(audit: SqliteAuditLog) -> None:
    fill(audit)
    deleted = audit.delete("wf1", "n1")
    assert (deleted.workflow_id, deleted.node_id, deleted.deleted_count) == ("wf1", "n1", 4)
    assert deleted.deleted_node_ids == ("n1",)
    assert audit.query(AuditQuery(workflow_id="wf1")).total == 3
    assert audit.query(AuditQuery(node_id="n1")).total == 3  # wf2's n1 stays


def test_huge_output_is_clipped_to_its_tail(audit: SqliteAuditLog) -> None:
    stdout = "".join(f"line {i}\n" for i in range(40_000))
    stderr = "e" * (MAX_OUTPUT * 3) + "THE END"
    assert len(stdout) > MAX_OUTPUT
    record_id = audit.start(KEY, "sync")
    audit.finish(record_id, AuditOutcome(OperationStatus.SUCCESS, stdout=stdout, stderr=stderr))

    record = only(audit)
    assert len(record.stdout) == MAX_OUTPUT
    assert stdout.endswith(record.stdout)
    assert len(record.stderr) == MAX_OUTPUT
    assert record.stderr.endswith("THE END")


def test_output_below_the_limit_is_kept_whole(audit: SqliteAuditLog) -> None:
    text = "x" * MAX_OUTPUT
    record_id = audit.start(KEY, "sync")
    audit.finish(record_id, AuditOutcome(OperationStatus.SUCCESS, stdout=text, stderr="é" * 10))
    record = only(audit)
    assert record.stdout == text
    assert record.stderr == "é" * 10


def test_the_database_is_in_wal_mode(audit: SqliteAuditLog) -> None:
    audit.start(KEY, "create")
    with sqlite3.connect(audit.path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert mode == "wal"


def test_threads_share_one_log(audit: SqliteAuditLog) -> None:
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for _ in range(10):
                record_id = audit.start(EnvKey("wf", f"t{number}"), "sync")
                audit.finish(record_id, AuditOutcome(OperationStatus.SUCCESS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert audit.query(AuditQuery(status="SUCCESS")).total == 40


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        SqliteAuditLog(path).start(KEY, "create")


def test_an_unusable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(StorageError):
        SqliteAuditLog(blocker / "audit.sqlite3").start(KEY, "create")


def write_records(path: str, worker: int, count: int) -> None:
    """Runs in a spawned process: start and finish ``count`` records."""
    audit = SqliteAuditLog(Path(path))
    for number in range(count):
        record_id = audit.start(EnvKey("wf", f"w{worker}", str(number)), "sync", {"n": number})
        audit.finish(
            record_id,
            AuditOutcome(OperationStatus.SUCCESS, stdout=f"{worker}:{number}", exit_code=0),
        )


def test_concurrent_writers_in_four_processes(audit: SqliteAuditLog) -> None:
    audit.start(KEY, "create")  # the parent has the database open throughout
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_records, args=(str(audit.path), worker, 25))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    exit_codes = [process.exitcode for process in processes]
    for process in processes:
        process.close()
    assert exit_codes == [0, 0, 0, 0]

    finished = audit.query(AuditQuery(status="SUCCESS", limit=1000))
    assert finished.total == 100
    assert {r.stdout for r in finished.items} == {f"{w}:{n}" for w in range(4) for n in range(25)}
    assert len({r.id for r in finished.items}) == 100
    assert {r.metadata["pid"] for r in finished.items} & {os.getpid()} == set()
    assert len({r.metadata["pid"] for r in finished.items}) == 4
    assert audit.query(AuditQuery()).total == 101
    for worker in range(4):
        assert audit.query(AuditQuery(node_id=f"w{worker}")).total == 25


def test_a_file_from_before_host_and_root_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.executescript(AUDIT_SCHEMA_BEFORE_HOSTS)
        old.execute(
            "INSERT INTO operations (workflow_id, node_id, version_id, operation, status,"
            " started_at, pid) VALUES ('wf', 'n', '', 'create', 'SUCCESS', 1.0, 3)"
        )
        old.commit()
    audit = SqliteAuditLog(path, host="here", root="/root")
    new_id = audit.start(KEY, "sync")
    page = audit.query(AuditQuery())
    assert [(r.id, r.host, r.root) for r in page.items] == [(new_id, "here", "/root"), (1, "", "")]
    assert audit.query(AuditQuery(host="here")).total == 1
    audit.close()
    with contextlib.closing(sqlite3.connect(path)) as migrated:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == 1
    # Opening it again (as every new thread does) finds nothing left to migrate.
    again = SqliteAuditLog(path)
    assert again.query(AuditQuery()).total == 2
    again.close()


def test_the_default_store_is_sqlite_in_the_root_stamped_with_host_and_root(
    tmp_path: Path,
) -> None:
    from uv_envs import EnvManager, Settings
    from uv_envs.testing import FakePythonFinder, FakeUvExecutor

    settings = Settings.from_env(
        {"UV_ENVS_ROOT": str(tmp_path / "root"), "UV_ENVS_AUDIT_HOST": "node-7"}, lock_timeout=5
    )
    assert (settings.audit_url, settings.audit_host) == (None, "node-7")
    manager = EnvManager(
        settings, executor=FakeUvExecutor({"alpha": ["1.0"]}), python_finder=FakePythonFinder()
    )
    manager.create(KEY, packages=["alpha"])
    counted = manager._core.services.audit
    assert isinstance(counted, CountedAuditLog)  # the store, behind the counting wrapper
    audit = counted.store
    assert isinstance(audit, SqliteAuditLog)
    assert audit.path == settings.root / "audit.sqlite3"
    [record] = manager.operations(host="node-7", root=str(settings.root)).items
    assert (record.operation, record.host, record.root) == ("create", "node-7", str(settings.root))
    assert manager.operations(host="elsewhere").total == 0
    manager.close()


def test_audit_settings_come_from_the_environment(tmp_path: Path) -> None:
    from uv_envs import Settings

    settings = Settings.from_env(
        {
            "UV_ENVS_ROOT": str(tmp_path),
            "UV_ENVS_AUDIT_URL": "postgresql://u@127.0.0.1/db",
            "UV_ENVS_AUDIT_PASSWORD_FILE": str(tmp_path / "pw"),
            "UV_ENVS_AUDIT_TIMEOUT": "2.5",
        }
    )
    assert settings.audit_url == "postgresql://u@127.0.0.1/db"
    assert settings.audit_password_file == tmp_path / "pw"
    assert settings.audit_timeout == 2.5
