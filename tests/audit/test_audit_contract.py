"""One contract for every audit store: SQLite in the root, and a real PostgreSQL.

The in-memory fake of ``uv_envs.testing`` runs it too (but for the processes).

Each test runs once per store. The PostgreSQL runs skip (with the reason)
when ``UV_ENVS_TEST_POSTGRES_URL`` is unset; ``.ci/run`` sets it and fails if
they skipped there.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.support.postgres import admin_execute, base_url, with_schema
from uv_envs import AuditLog, EnvKey, OperationRecord
from uv_envs._audit import log as _audit
from uv_envs._audit.log import MAX_OUTPUT, AuditOutcome, AuditQuery
from uv_envs._audit.postgres import PostgresAuditLog
from uv_envs._audit.sqlite import SqliteAuditLog
from uv_envs.testing import InMemoryAuditLog

KEY = EnvKey("wf", "node", "v1")


@attrs.frozen
class StoreSpec:
    """Enough to open the same store again, in this process or a spawned one."""

    kind: str
    location: str

    def open(self, host: str = "host-a", root: str = "/roots/a") -> AuditLog:
        if self.kind == "memory":
            return InMemoryAuditLog(_MEMORY.setdefault(self.location, []), host=host, root=root)
        if self.kind == "sqlite":
            return SqliteAuditLog(Path(self.location), host=host, root=root)
        return PostgresAuditLog(self.location, host=host, root=root, timeout=30)


# The records of each in-memory "store", shared by the logs opened on it.
_MEMORY: dict[str, list[OperationRecord]] = {}


@attrs.define
class Store:
    spec: StoreSpec
    opened: list[AuditLog] = attrs.field(factory=list)

    def open(self, host: str = "host-a", root: str = "/roots/a") -> AuditLog:
        log = self.spec.open(host, root)
        self.opened.append(log)
        return log


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":  # uv_envs.testing's fake keeps the same contract
        opened = Store(StoreSpec("memory", str(tmp_path)))
        yield opened
        _MEMORY.pop(str(tmp_path), None)
        return
    if request.param == "sqlite":
        opened = Store(StoreSpec("sqlite", str(tmp_path / "nested" / "audit.sqlite3")))
        yield opened
        for log in opened.opened:
            log.close()
        return
    url = base_url()
    schema = f"c_{os.urandom(8).hex()}"
    admin_execute(url, f"CREATE SCHEMA {schema}")
    opened = Store(StoreSpec("postgres", with_schema(url, schema)))
    try:
        yield opened
    finally:
        for log in opened.opened:
            log.close()
        admin_execute(url, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def audit(store: Store) -> AuditLog:
    return store.open()


def only(audit: AuditLog) -> OperationRecord:
    page = audit.query(AuditQuery())
    assert page.total == 1
    return page.items[0]


def ids_of(audit: AuditLog, **filters: str) -> list[int]:
    page = audit.query(AuditQuery(limit=1000, **filters))  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return [record.id for record in page.items]


# --- start / finish ---------------------------------------------------------------------


def test_start_writes_a_running_record_with_host_and_root(audit: AuditLog) -> None:
    before = time.time()
    record_id = audit.start(KEY, "create", {"packages": ["alpha"], "python": "3.12"})

    record = only(audit)
    assert record.id == record_id
    assert (record.workflow_id, record.node_id, record.version_id) == ("wf", "node", "v1")
    assert (record.operation, record.status) == ("create", _audit.RUNNING)
    assert (record.host, record.root) == ("host-a", "/roots/a")
    assert before <= record.started_at <= time.time()
    assert (record.finished_at, record.duration_ms, record.exit_code, record.error) == (
        None,
        None,
        None,
        None,
    )
    assert (record.stdout, record.stderr) == ("", "")
    assert record.metadata == {"packages": ["alpha"], "python": "3.12", "pid": os.getpid()}


def test_finish_completes_the_record_and_merges_metadata(audit: AuditLog) -> None:
    record_id = audit.start(KEY, "add", {"packages": ["gamma"], "generation": 1})
    time.sleep(0.01)
    audit.finish(
        record_id,
        AuditOutcome(
            _audit.FAILED,
            stdout="out",
            stderr="x No solution found",
            exit_code=1,
            error="ResolutionFailed: ...",
            metadata={"generation": 2},
        ),
    )

    record = only(audit)
    assert record.status == _audit.FAILED
    assert record.finished_at is not None
    assert record.finished_at >= record.started_at
    assert record.duration_ms is not None
    assert record.duration_ms >= 0
    assert (record.stdout, record.stderr, record.exit_code, record.error) == (
        "out",
        "x No solution found",
        1,
        "ResolutionFailed: ...",
    )
    # Metadata given at the finish is merged into that of the start, later keys winning.
    assert record.metadata == {"packages": ["gamma"], "generation": 2, "pid": os.getpid()}


def test_finish_of_an_unknown_record_changes_nothing(audit: AuditLog) -> None:
    audit.start(KEY, "create")
    audit.finish(12345678, AuditOutcome(_audit.SUCCESS))
    assert only(audit).status == _audit.RUNNING


def test_finish_records_when_the_outcome_was_made(audit: AuditLog) -> None:
    # Not when the store wrote it: a PostgreSQL outcome may be written after an outage.
    record_id = audit.start(KEY, "sync")
    started = only(audit).started_at
    audit.finish(record_id, AuditOutcome(_audit.SUCCESS, finished_at=started + 2.5))
    record = only(audit)
    assert record.finished_at == pytest.approx(started + 2.5)
    assert record.duration_ms is not None
    assert abs(record.duration_ms - 2500) <= 1  # float rounding of the subtraction


def test_an_empty_version_id_stays_empty(audit: AuditLog) -> None:
    audit.start(EnvKey("wf", "node"), "create")
    assert only(audit).version_id == ""


def test_metadata_that_is_not_json_is_stored_as_text(audit: AuditLog) -> None:
    audit.start(KEY, "create", {"path": Path("/x/y")})
    assert only(audit).metadata["path"] == "/x/y"


def test_unicode_everywhere_and_a_megabyte_of_stderr(audit: AuditLog) -> None:
    text = "naïve café ✓ 日本語 🐍 \u200b"
    stderr = ("é" * 1023 + "\n") * 1024  # 1 MiB of characters, 2 MiB of UTF-8
    record_id = audit.start(KEY, "sync", {"note": text, text: [text]})
    audit.finish(
        record_id, AuditOutcome(_audit.FAILED, stdout=text, stderr=stderr + "tail 🐍", error=text)
    )

    record = only(audit)
    assert record.stdout == text
    assert record.error == text
    assert record.metadata[text] == [text]
    assert record.metadata["note"] == text
    # Output is kept to its last MAX_OUTPUT characters: the end is what says what failed.
    assert len(record.stderr) == MAX_OUTPUT
    assert record.stderr.endswith("tail 🐍")
    assert (stderr + "tail 🐍").endswith(record.stderr)


# --- query: filters, ordering, paging --------------------------------------------------


def fill(store: Store) -> list[int]:
    """Ten records over three keys and two hosts; every third FAILED.

    wf1/n1 x4 and wf1/n2 x3 from host-a (/roots/a); wf2/n1 x3 from host-b (/roots/b).
    """
    a, b = store.open("host-a", "/roots/a"), store.open("host-b", "/roots/b")
    plan = [(a, EnvKey("wf1", "n1"))] * 4 + [(a, EnvKey("wf1", "n2", "v"))] * 3
    plan += [(b, EnvKey("wf2", "n1"))] * 3
    ids = []
    for number, (log, key) in enumerate(plan):
        record_id = log.start(key, "sync")
        log.finish(record_id, AuditOutcome(_audit.FAILED if number % 3 == 0 else _audit.SUCCESS))
        ids.append(record_id)
    return ids


def test_query_filters_by_each_field_and_their_combinations(store: Store) -> None:
    ids = fill(store)
    audit = store.open()

    assert ids_of(audit) == ids[::-1]
    assert ids_of(audit, workflow_id="wf1") == ids[:7][::-1]
    assert ids_of(audit, workflow_id="wf1", node_id="n2") == ids[4:7][::-1]
    assert ids_of(audit, node_id="n1") == (ids[:4] + ids[7:])[::-1]
    assert ids_of(audit, status=_audit.FAILED) == [ids[9], ids[6], ids[3], ids[0]]
    assert ids_of(audit, workflow_id="wf2", status=_audit.SUCCESS) == [ids[8], ids[7]]
    assert ids_of(audit, host="host-a") == ids[:7][::-1]
    assert ids_of(audit, host="host-b") == ids[7:][::-1]
    assert ids_of(audit, root="/roots/b") == ids[7:][::-1]
    assert ids_of(audit, host="host-a", root="/roots/b") == []
    assert ids_of(audit, host="host-b", node_id="n1", status=_audit.FAILED) == [ids[9]]
    assert ids_of(audit, host="nowhere") == []
    # An empty filter is no filter, as the CLI and gRPC pass "" for "any".
    assert ids_of(audit, workflow_id="", host="") == ids[::-1]


def test_records_come_newest_first_and_ids_grow(store: Store) -> None:
    ids = fill(store)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    started = [r.started_at for r in store.open().query(AuditQuery(limit=100)).items]
    assert started == sorted(started, reverse=True)


def test_paging(store: Store) -> None:
    ids = fill(store)
    audit = store.open()
    newest_first = ids[::-1]

    first = audit.query(AuditQuery(limit=4))
    assert (first.total, first.limit, first.offset) == (10, 4, 0)
    assert [r.id for r in first.items] == newest_first[:4]
    second = audit.query(AuditQuery(limit=4, offset=4))
    assert [r.id for r in second.items] == newest_first[4:8]
    last = audit.query(AuditQuery(limit=4, offset=8))
    assert [r.id for r in last.items] == newest_first[8:]
    beyond = audit.query(AuditQuery(limit=4, offset=50))
    assert (beyond.total, beyond.items) == (10, ())
    filtered = audit.query(AuditQuery(host="host-a", limit=2, offset=2))
    assert filtered.total == 7
    assert [r.id for r in filtered.items] == ids[:7][::-1][2:4]
    # Out-of-range paging is clamped, never an error.
    clamped = audit.query(AuditQuery(limit=10_000, offset=-3))
    assert (clamped.limit, clamped.offset, len(clamped.items)) == (1000, 0, 10)
    assert audit.query(AuditQuery(limit=-1)).items == ()


# --- delete ------------------------------------------------------------------------------


def test_delete_a_node_then_a_workflow(store: Store) -> None:
    ids = fill(store)
    audit = store.open()

    removed = audit.delete("wf1", "n2")
    assert (removed.workflow_id, removed.node_id, removed.deleted_count) == ("wf1", "n2", 3)
    assert removed.deleted_node_ids == ("n2",)
    assert ids_of(audit) == (ids[:4] + ids[7:])[::-1]

    removed = audit.delete("wf1")
    assert (removed.node_id, removed.deleted_count, removed.deleted_node_ids) == ("", 4, ("n1",))
    assert ids_of(audit) == ids[7:][::-1]

    nothing = audit.delete("wf-none")
    assert (nothing.deleted_count, nothing.deleted_node_ids) == (0, ())


def test_delete_removes_every_host_s_records_of_the_workflow(store: Store) -> None:
    a, b = store.open("host-a", "/roots/a"), store.open("host-b", "/roots/b")
    a.start(KEY, "create")
    b.start(KEY, "create")
    b.start(EnvKey("other", "node"), "create")
    assert a.delete("wf").deleted_count == 2
    assert [r.workflow_id for r in a.query(AuditQuery()).items] == ["other"]


def test_close_then_use_again(audit: AuditLog) -> None:
    audit.start(KEY, "create")
    audit.close()
    audit.start(KEY, "sync")
    assert audit.query(AuditQuery()).total == 2


# --- concurrency ---------------------------------------------------------------------------


def write_records(spec: StoreSpec, worker: int, count: int) -> None:
    """Start and finish ``count`` records, each saying who wrote it (also in spawned processes)."""
    log = spec.open(f"host-{worker % 2}", f"/roots/{worker}")
    try:
        for number in range(count):
            record_id = log.start(EnvKey("wf", f"w{worker}", str(number)), "sync", {"n": number})
            log.finish(
                record_id, AuditOutcome(_audit.SUCCESS, stdout=f"{worker}:{number}", exit_code=0)
            )
    finally:
        log.close()


def check_every_record_once(audit: AuditLog, workers: int, count: int) -> None:
    page = audit.query(AuditQuery(status=_audit.SUCCESS, limit=1000))
    assert page.total == workers * count
    written = [r.stdout for r in page.items]
    assert sorted(written) == sorted(f"{w}:{n}" for w in range(workers) for n in range(count))
    assert len({r.id for r in page.items}) == workers * count
    assert audit.query(AuditQuery(status=_audit.RUNNING)).total == 1  # the parent's own
    for worker in range(workers):
        mine = audit.query(AuditQuery(node_id=f"w{worker}", limit=1000))
        assert mine.total == count
        assert {(r.host, r.root) for r in mine.items} == {
            (f"host-{worker % 2}", f"/roots/{worker}")
        }


def test_concurrent_writers_in_four_processes(store: Store) -> None:
    if store.spec.kind == "memory":
        pytest.skip("the in-memory fake serves one process")
    audit = store.open()
    audit.start(KEY, "create")  # the parent has the store open throughout
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_records, args=(store.spec, worker, 25)) for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    exit_codes = [process.exitcode for process in processes]
    for process in processes:
        process.close()
    assert exit_codes == [0, 0, 0, 0]
    check_every_record_once(audit, 4, 25)
    pids = {
        r.metadata["pid"] for r in audit.query(AuditQuery(status=_audit.SUCCESS, limit=1000)).items
    }
    assert len(pids) == 4
    assert os.getpid() not in pids


def test_concurrent_writers_in_sixteen_threads_sharing_one_log(store: Store) -> None:
    audit = store.open()
    audit.start(KEY, "create")
    shared = store.open("host-shared", "/roots/shared")
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for number in range(10):
                record_id = shared.start(EnvKey("wf", f"w{worker}", str(number)), "sync")
                shared.finish(record_id, AuditOutcome(_audit.SUCCESS, stdout=f"{worker}:{number}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert errors == []
    page = audit.query(AuditQuery(status=_audit.SUCCESS, limit=1000))
    assert page.total == 160
    assert sorted(r.stdout for r in page.items) == sorted(
        f"{w}:{n}" for w in range(16) for n in range(10)
    )
    assert len({r.id for r in page.items}) == 160
    assert audit.query(AuditQuery(host="host-shared")).total == 160
