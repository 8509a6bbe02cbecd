"""schemathesis' own runner, every check and phase, finds nothing in the HTTP API (issue 18).

The trial's run found 25 distinct failures in 90 s: undocumented statuses (a
repeat create's 200), requests the schema allows refused with 422, 405s
without ``Allow``, two statuses for an unparsable body. This runs ``st run``
as the trial did (``--checks all``, the coverage, fuzzing and stateful phases)
for a bounded number of cases with a fixed seed, against a real uvicorn on
loopback over the fake uv of ``uv_envs.testing`` (the contract is the
server's, not uv's; test_http_fuzz.py fuzzes over real uv). The expectations
changed from schemathesis' defaults are in ``schemathesis.toml`` beside this file.
Every route is run (issue 29): the original service's (issue 20) but its run
route, a documented 501, and the event stream, read for a bounded time.
benchmarks/bench_fuzz.py runs the same for longer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
pytest.importorskip("schemathesis", reason="fuzzing needs schemathesis")

import httpx

import uv_envs

if TYPE_CHECKING:
    from collections.abc import Callable

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 18
MAX_EXAMPLES = 25
KEEP = uv_envs.EnvKey("keep-wf", "keep-node", "v1")


def run_schemathesis(
    url: str, workdir: Path, *, max_examples: int, seed: int = SEED, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``st run`` with every check and phase against ``url``; its files go to ``workdir``."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(CONFIG)),
        *("run", f"{url}/openapi.json", "--checks", "all"),
        # The original service's run route is 501 by design (issue 20): running node code is
        # Ray's job. Every other route, the original service's and the event stream included.
        *("--exclude-path", "/envs/{workflow_id}/{node_id}/run"),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        # One worker: with two, Hypothesis parses lambda sources (ast.parse) on two threads,
        # which CPython 3.11 can fail with "AST constructor recursion depth mismatch".
        *("--seed", str(seed), "--max-examples", str(max_examples), "--workers", "1"),
    ]
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_schemathesis_with_every_check_finds_nothing(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager, tmp_path: Path
) -> None:
    fake_manager.ensure(KEEP, packages=["alpha"])
    server = http_serve(fake_manager, max_workers=4)
    workdir = tmp_path / "st"
    workdir.mkdir()
    with fake_manager.lease(KEEP):  # as a running node would: no fuzzed call may touch it
        result = run_schemathesis(server.url, workdir, max_examples=MAX_EXAMPLES)
    # The whole report stays beside the run (pytest keeps the last runs' tmp_path).
    (workdir / "report.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert " passed" in result.stdout
    # Every operation ran but the original run route's documented 501 (issue 29).
    schema = httpx.get(f"{server.url}/openapi.json").json()
    total = sum(len(item) for item in schema["paths"].values())
    assert f"{total - 1} selected / {total} total" in result.stdout
    # Fuzzed ensures may move the leased env to new generations (the lease keeps the one in
    # use); what no call may do is take it away, but for DELETE ?force=true: the explicit
    # override, audited with the leases it overrode (the stateful phase finds the env's ids).
    if fake_manager.status(KEEP).environment is None:
        page = fake_manager.operations(KEEP.workflow_id, limit=500)
        forced = [
            r for r in page.items if r.operation == "delete" and r.metadata.get("overrode_leases")
        ]
        assert forced, [(r.operation, r.status, dict(r.metadata)) for r in page.items]
