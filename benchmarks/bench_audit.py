"""Benchmark the audit stores side by side: SQLite in the root vs PostgreSQL on loopback.

    python benchmarks/bench_audit.py --url postgresql://user:pw@127.0.0.1/db
                                     [--ops 2000] [--rows 1000000] [--reps 20]

Measures, in one run so the two stores share the machine's load:

- the audit overhead of one operation: ``start`` + ``finish`` (what every env
  operation adds), in alternating rounds of 100 operations per store;
- a filtered ``ops`` page (``query``, 50 records) at ``--rows`` records, the
  table filled in bulk (``COPY`` for PostgreSQL, ``executemany`` for SQLite),
  for the filters the CLI and servers use.

The URL defaults to ``$UV_ENVS_TEST_POSTGRES_URL``. Everything goes into a new
schema, dropped at the end, and a temporary directory; nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.support.postgres import with_schema  # noqa: E402
from uv_envs import AuditLog, EnvKey  # noqa: E402
from uv_envs._audit import log as _audit  # noqa: E402
from uv_envs._audit.log import AuditOutcome, AuditQuery  # noqa: E402
from uv_envs._audit.postgres import PostgresAuditLog  # noqa: E402
from uv_envs._audit.postgres_schema import TABLE  # noqa: E402
from uv_envs._audit.sqlite import SqliteAuditLog  # noqa: E402

HOSTS = 50
WORKFLOWS = 2000
NODES = 5


def overhead(logs: dict[str, AuditLog], ops: int) -> dict[str, list[float]]:
    """Per-operation seconds of start + finish, alternating stores every 100 operations."""
    times: dict[str, list[float]] = {name: [] for name in logs}
    key = EnvKey("bench", "node", "v1")
    for _ in range(max(1, ops // 100)):
        for name, log in logs.items():
            for _ in range(100):
                begin = time.perf_counter()
                record = log.start(key, "sync", {"packages": ["alpha"]})
                outcome = AuditOutcome(_audit.SUCCESS, stdout="Resolved 3 packages", exit_code=0)
                log.finish(record, outcome)
                times[name].append(time.perf_counter() - begin)
    return times


def synthetic_rows(count: int) -> list[tuple[object, ...]]:
    """``count`` records over 50 hosts, 2000 workflows x 5 nodes; ~2 % FAILED, ~1 % RUNNING."""
    chance = random.Random(12)
    now = time.time() - count
    rows: list[tuple[object, ...]] = []
    for number in range(count):
        host = chance.randrange(HOSTS)
        roll = chance.random()
        status = _audit.FAILED if roll < 0.02 else _audit.RUNNING if roll < 0.03 else _audit.SUCCESS
        rows.append(
            (
                f"wf{chance.randrange(WORKFLOWS)}",
                f"n{chance.randrange(NODES)}",
                "",
                "sync",
                status,
                now + number,
                None if status == _audit.RUNNING else now + number + 0.5,
                None if status == _audit.RUNNING else 500,
                "Resolved 3 packages",
                "x No solution found" if status == _audit.FAILED else "",
                '{"packages": ["alpha"]}',
                1000 + host,
                f"host-{host}",
                f"/srv/uv-envs/{host}",
            )
        )
    return rows


_INSERT_COLUMNS = (
    "workflow_id, node_id, version_id, operation, status, started_at, finished_at,"
    " duration_ms, stdout, stderr, metadata, pid, host, root"
)


def fill_postgres(url: str, rows: list[tuple[object, ...]]) -> float:
    begin = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {TABLE} ({_INSERT_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.execute(f"VACUUM ANALYZE {TABLE}")  # as autovacuum would, soon after
    return time.perf_counter() - begin


def fill_sqlite(path: Path, rows: list[tuple[object, ...]]) -> float:
    begin = time.perf_counter()
    with sqlite3.connect(path) as connection:
        connection.executemany(
            f"INSERT INTO operations ({_INSERT_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            rows,
        )
        connection.execute("ANALYZE")
    connection.close()
    return time.perf_counter() - begin


def page_times(log: AuditLog, query: AuditQuery, reps: int) -> list[float]:
    log.query(query)  # warm caches
    times = []
    for _ in range(reps):
        begin = time.perf_counter()
        log.query(query)
        times.append(time.perf_counter() - begin)
    return times


PAGES: list[tuple[str, AuditQuery]] = [
    ("no filter, first page", AuditQuery(limit=50)),
    ("no filter, offset 10000", AuditQuery(limit=50, offset=10_000)),
    ("host (2 % of rows)", AuditQuery(host="host-7", limit=50)),
    ("root (2 %)", AuditQuery(root="/srv/uv-envs/7", limit=50)),
    ("workflow + node (0.01 %)", AuditQuery(workflow_id="wf7", node_id="n1")),
    ("status FAILED (2 %)", AuditQuery(status=_audit.FAILED, limit=50)),
    ("host + FAILED (0.04 %)", AuditQuery(host="host-7", status=_audit.FAILED)),
    ("RUNNING of one host (recover)", AuditQuery(status="RUNNING", host="host-7")),
]


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"{p50:.3f} / {p99:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("UV_ENVS_TEST_POSTGRES_URL"))
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set UV_ENVS_TEST_POSTGRES_URL")
    schema = f"bench_{os.getpid()}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        server_version = admin.execute("SHOW server_version").fetchone()
        admin.execute(f"CREATE SCHEMA {schema}")
    url = with_schema(args.url, schema)
    logs: dict[str, AuditLog] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            logs["SQLite"] = SqliteAuditLog(Path(tmp) / "audit.sqlite3", host="h", root="/r")
            logs["PostgreSQL"] = PostgresAuditLog(url, host="h", root="/r")
            run(args, logs, url, Path(tmp) / "audit.sqlite3", server_version)
            for log in logs.values():
                log.close()
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


def run(
    args: argparse.Namespace,
    logs: dict[str, AuditLog],
    url: str,
    sqlite_path: Path,
    server_version: tuple[object, ...] | None,
) -> None:
    print(f"Python {platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"PostgreSQL {server_version[0] if server_version else '?'} on 127.0.0.1 (TCP)")
    print(f"psycopg {psycopg.__version__}, SQLite {sqlite3.sqlite_version} (WAL)\n")

    times = overhead(logs, args.ops)
    print(f"### Audit overhead per operation (start + finish), {args.ops} operations each\n")
    print("| store | p50 / p99 (ms) | mean (ms) |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {ms(values)} | {statistics.fmean(values) * 1000:.3f} |")
    ratio = statistics.median(times["PostgreSQL"]) / statistics.median(times["SQLite"])
    print(f"\nPostgreSQL / SQLite (medians): {ratio:.2f}x\n")

    rows = synthetic_rows(args.rows)
    pg_fill = fill_postgres(url, rows)
    sqlite_fill = fill_sqlite(sqlite_path, rows)
    del rows
    total = args.rows + len(times["SQLite"])
    print(f"### A filtered `ops` page (50 records, with its total) at {total:,} records\n")
    print(f"Filled in {pg_fill:.1f} s (PostgreSQL COPY + VACUUM ANALYZE),")
    print(f"{sqlite_fill:.1f} s (SQLite executemany + ANALYZE). {args.reps} repetitions.\n")
    print("| filter | SQLite p50 / p99 (ms) | PostgreSQL p50 / p99 (ms) |")
    print("|---|---|---|")
    for label, query in PAGES:
        sqlite_times = page_times(logs["SQLite"], query, args.reps)
        pg_times = page_times(logs["PostgreSQL"], query, args.reps)
        print(f"| {label} | {ms(sqlite_times)} | {ms(pg_times)} |")


if __name__ == "__main__":
    sys.exit(main())
