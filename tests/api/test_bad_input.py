"""A corpus of hostile and malformed input, each case run over the Python API, the CLI and gRPC.

Every case must be refused with the documented error (the API raises the
class, the CLI exits 2 and names it in ``--json``, gRPC answers
INVALID_ARGUMENT with the class in the trailing metadata); nothing may be
written outside the root, nothing in the root may change, no audit record may
be added, and an env created before the corpus must be byte-identical after.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import attrs
import grpc
import pytest

from uv_envs import (
    DirectReferenceNotAllowed,
    EnvKey,
    EnvManager,
    EnvStatus,
    InvalidIdentifier,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    PythonNotFound,
    RequirementsOptionNotAllowed,
)
from uv_envs_server import create_server
from uv_envs_server._grpc.errors import ERROR_CLASS_KEY
from uv_envs_server._grpc.proto import METHODS, method_path, pb

GOOD = ("wf", "node", "v1")  # the env that exists before the corpus
NEW = ("wf", "fresh", "v1")  # a key with no env: creates must not make one
LONG = 10 * 1024
MANY = [f"pkg{i}" for i in range(1001)]


@attrs.frozen
class Case:
    name: str
    operation: str  # create add remove update status delete sync deps export ops-delete
    error: type[InvalidInput]
    ids: tuple[str, str, str] = GOOD
    packages: tuple[str, ...] = ()
    text: bytes | None = None
    python: str | None = None
    wire_error: type[InvalidInput] | None = None  # when gRPC names a more general class

    @property
    def argv_safe(self) -> bool:
        """Whether the case can be spelled on a command line (argv cannot hold NUL)."""
        values = [*self.ids, *self.packages, self.python or ""]
        return not any("\x00" in v for v in values)


def ids_case(name: str, operation: str, field: int, value: str) -> Case:
    ids = list(NEW if operation == "create" else GOOD)
    ids[field] = value
    packages = ("gamma",) if operation in {"create", "add", "remove", "update"} else ()
    return Case(name, operation, InvalidIdentifier, ids=(ids[0], ids[1], ids[2]), packages=packages)


CASES: tuple[Case, ...] = (
    # --- ids: traversal, absolute paths, NUL, look-alikes, 10 kB, empty, whitespace ---
    ids_case("workflow ../", "create", 0, "../escape"),
    ids_case("node ../../", "create", 1, "../../etc"),
    ids_case("version ..", "create", 2, ".."),
    ids_case("workflow .", "deps", 0, "."),
    ids_case("workflow absolute", "status", 0, "/abs"),
    ids_case("node absolute", "delete", 1, "/tmp/x"),
    ids_case("version absolute", "add", 2, "/etc/passwd"),
    ids_case("workflow with slash", "sync", 0, "a/b"),
    ids_case("node with backslash", "export", 1, "a\\b"),
    ids_case("node NUL", "create", 1, "x\x00y"),
    ids_case("version NUL", "delete", 2, "v\x00"),
    ids_case("workflow cyrillic look-alike", "create", 0, "\u051df"),
    ids_case("node cyrillic o", "status", 1, "n\u043ede"),
    ids_case("version fullwidth", "remove", 2, "\uff561"),
    ids_case("workflow right-to-left override", "create", 0, "wf\u202e"),
    ids_case("workflow 10 kB", "create", 0, "w" * LONG),
    ids_case("node 10 kB", "status", 1, "n" * LONG),
    ids_case("version 10 kB", "delete", 2, "v" * LONG),
    ids_case("workflow empty", "create", 0, ""),
    ids_case("node empty", "add", 1, ""),
    ids_case("workflow space", "create", 0, " "),
    ids_case("node tab", "status", 1, "\t"),
    ids_case("version padded", "export", 2, " v1 "),
    ids_case("workflow newline", "update", 0, "wf\n"),
    ids_case("workflow tilde", "create", 0, "~"),
    ids_case("workflow ../ in ops delete", "ops-delete", 0, "../x"),
    ids_case("node absolute in ops delete", "ops-delete", 1, "/x"),
    # --- packages: option injection, URLs, paths, control characters, size ---
    Case("--index-url", "create", InvalidRequirement, NEW, ("--index-url=http://127.0.0.1:9/s",)),
    Case("-e .", "add", InvalidRequirement, packages=("-e .",)),
    Case("--config-file", "create", InvalidRequirement, NEW, ("--config-file=x",)),
    Case("-r file", "add", InvalidRequirement, packages=("-r requirements.txt",)),
    Case("--all in remove", "remove", InvalidRequirement, packages=("--all",)),
    Case("-U in update", "update", InvalidRequirement, packages=("-U",)),
    Case("wheel URL", "create", DirectReferenceNotAllowed, NEW, ("http://127.0.0.1:9/a.whl",)),
    Case("name @ file URL", "add", DirectReferenceNotAllowed, packages=("alpha @ file:///etc",)),
    Case("relative path", "create", DirectReferenceNotAllowed, NEW, ("./local/pkg",)),
    Case(
        "absolute wheel", "create", DirectReferenceNotAllowed, NEW, ("/tmp/a-1.0-py3-none-any.whl",)
    ),
    Case("git URL", "add", DirectReferenceNotAllowed, packages=("git+https://127.0.0.1:9/x.git",)),
    Case("sdist file", "create", DirectReferenceNotAllowed, NEW, ("alpha-1.0.tar.gz",)),
    Case("package NUL", "create", InvalidRequirement, NEW, ("alpha\x00",)),
    Case("package empty", "add", InvalidRequirement, packages=("",)),
    Case("package whitespace", "create", InvalidRequirement, NEW, ("   ",)),
    Case("package with --hash", "create", InvalidRequirement, NEW, ("alpha --hash=sha256:00",)),
    Case("package newline", "create", InvalidRequirement, NEW, ("alpha==1.0\nbeta",)),
    Case("package 2 kB", "create", InvalidRequirement, NEW, ("a" * 2048,)),
    Case("1001 packages", "create", InvalidRequirement, NEW, tuple(MANY), wire_error=InvalidInput),
    Case(
        "1001 packages to add",
        "add",
        InvalidRequirement,
        packages=tuple(MANY),
        wire_error=InvalidInput,
    ),
    Case("package cyrillic look-alike", "create", InvalidRequirement, NEW, ("\u0430lpha",)),
    Case(
        "package fullwidth", "add", InvalidRequirement, packages=("\uff41\uff4c\uff50\uff48\uff41",)
    ),
    Case("option in extras", "create", InvalidRequirement, NEW, ("alpha[--index-url]",)),
    Case("variable in version", "create", InvalidRequirement, NEW, ("alpha==${HOME}",)),
    # --- requirements texts with options ---
    Case(
        "text --index-url",
        "create",
        RequirementsOptionNotAllowed,
        NEW,
        text=b"--index-url http://127.0.0.1:9/s\nalpha\n",
    ),
    Case("text -e .", "add", RequirementsOptionNotAllowed, text=b"-e .\n"),
    Case(
        "text --hash", "create", RequirementsOptionNotAllowed, NEW, text=b"alpha --hash=sha256:00\n"
    ),
    Case("text -r", "create", RequirementsOptionNotAllowed, NEW, text=b"-r /etc/passwd\n"),
    Case("text -c", "add", RequirementsOptionNotAllowed, text=b"-c constraints.txt\n"),
    Case("text path", "create", DirectReferenceNotAllowed, NEW, text=b"./local\n"),
    Case("text 1001 lines", "create", InvalidRequirement, NEW, text="\n".join(MANY).encode()),
    Case("text NUL", "create", InvalidRequirement, NEW, text=b"alpha\x00\n"),
    Case(
        "text not UTF-8",
        "create",
        InvalidRequirement,
        NEW,
        text=b"\xff\xfealpha\n",
        wire_error=InvalidInput,
    ),
    Case("text file URL", "add", DirectReferenceNotAllowed, text=b"alpha @ file:///etc/passwd\n"),
    Case(
        "text tab option", "create", RequirementsOptionNotAllowed, NEW, text=b"alpha\t--no-deps\n"
    ),
    Case(
        "text continued option",
        "add",
        RequirementsOptionNotAllowed,
        text=b"alpha \\\n --index-url x\n",
    ),
    Case(
        "text indented -i",
        "create",
        RequirementsOptionNotAllowed,
        NEW,
        text=b"  -i http://127.0.0.1:9\n",
    ),
    # --- Python versions ---
    Case("python 3.2", "create", PythonNotFound, NEW, ("gamma",), python="3.2"),
    Case("python 3.99", "create", PythonNotFound, NEW, ("gamma",), python="3.99"),
    Case("python 2.7", "create", InvalidPythonVersion, NEW, ("gamma",), python="2.7"),
    Case("python abc", "create", InvalidPythonVersion, NEW, ("gamma",), python="abc"),
    Case(
        "python injection", "create", InvalidPythonVersion, NEW, ("gamma",), python="3.12; rm -rf /"
    ),
    Case("python whitespace", "create", InvalidPythonVersion, NEW, ("gamma",), python=" "),
    Case("python 4 parts", "create", InvalidPythonVersion, NEW, ("gamma",), python="3.12.1.1"),
    Case("python path", "create", InvalidPythonVersion, NEW, ("gamma",), python="../../bin/python"),
    Case(
        "python absolute",
        "create",
        InvalidPythonVersion,
        NEW,
        ("gamma",),
        python="/usr/bin/python3",
    ),
    Case("python NUL", "create", InvalidPythonVersion, NEW, ("gamma",), python="3.11\x00"),
    Case("python 10 kB", "create", InvalidPythonVersion, NEW, ("gamma",), python="3" * LONG),
)


# --- the three channels ------------------------------------------------------------------


def run_api(manager: EnvManager, case: Case) -> BaseException | None:
    try:
        key = EnvKey(*case.ids)
        text = case.text
        if case.operation == "create":
            manager.create(key, packages=case.packages, requirements_text=text, python=case.python)
        elif case.operation == "add":
            manager.add(key, case.packages, requirements_text=text)
        elif case.operation == "remove":
            manager.remove(key, case.packages)
        elif case.operation == "update":
            manager.update(key, case.packages)
        elif case.operation == "ops-delete":
            manager.delete_operations(case.ids[0], case.ids[1])
        else:
            method = {"deps": "dependencies"}.get(case.operation, case.operation)
            getattr(manager, method)(key)
    except Exception as exc:
        return exc
    return None


def cli_argv(case: Case, requirements: Path | None) -> list[str]:
    if case.operation == "ops-delete":
        return ["ops", "--delete", f"--workflow={case.ids[0]}", f"--node={case.ids[1]}"]
    command = {"deps": "deps"}.get(case.operation, case.operation)
    options = [f"--package={p}" for p in case.packages]
    if requirements is not None:
        options.append(f"--requirements={requirements}")
    if case.python is not None:
        options.append(f"--python={case.python}")
    # Options first and "--" before the ids, so an id is never read as an option.
    return [command, *options, "--", *case.ids]


def run_cli(
    root: Path, wheelhouse: Path, cwd: Path, case: Case, requirements: Path | None
) -> tuple[int, str]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "uv_envs",
            "--root",
            str(root),
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--json",
            *cli_argv(case, requirements),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("UV_ENVS_")},
    )
    try:
        error = json.loads(completed.stdout)["error"]
    except (ValueError, KeyError, TypeError):
        error = f"<no JSON error: {completed.stdout[-200:]!r} {completed.stderr[-300:]!r}>"
    return completed.returncode, error


def grpc_request(case: Case) -> tuple[str, Any]:
    workflow_id, node_id, version_id = case.ids
    ident = {"workflow_id": workflow_id, "node_id": node_id, "version_id": version_id}
    content = case.text or b""
    if case.operation == "create":
        return "CreateEnv", pb.CreateEnvRequest(
            **ident,
            packages=list(case.packages),
            requirements_file_content=content,
            python_version=case.python or "",
        )
    if case.operation in {"add", "remove", "update"}:
        method = {"add": "AddDeps", "remove": "RemoveDeps", "update": "UpdateDeps"}[case.operation]
        return method, pb.DepsRequest(
            **ident, packages=list(case.packages), requirements_file_content=content
        )
    if case.operation == "ops-delete":
        return "DeleteOperations", pb.DeleteOperationsRequest(
            workflow_id=workflow_id, node_id=node_id
        )
    method, cls = {
        "status": ("GetEnvStatus", pb.GetEnvStatusRequest),
        "delete": ("DeleteEnv", pb.DeleteEnvRequest),
        "sync": ("SyncEnv", pb.SyncEnvRequest),
        "deps": ("ListDeps", pb.ListDepsRequest),
        "export": ("ExportEnv", pb.ExportEnvRequest),
    }[case.operation]
    return method, cls(**ident)


def run_grpc(channel: grpc.Channel, case: Case) -> tuple[grpc.StatusCode | None, str]:
    method, request = grpc_request(case)
    _, response_cls = METHODS[method]
    call: Callable[..., Any] = channel.unary_unary(
        method_path(method),
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    try:
        call(request, timeout=60)
    except grpc.RpcError as err:
        # The stubs type the pairs as objects with .key/.value; they are tuples at run time.
        metadata = dict(cast("Iterable[tuple[str, str | bytes]]", err.trailing_metadata() or ()))
        return err.code(), str(metadata.get(ERROR_CLASS_KEY, ""))
    return None, ""


# --- what must not change ------------------------------------------------------------------

SKIPPED_NAMES = frozenset({"__pycache__"})


def tree(directory: Path, *, skip: frozenset[Path] = frozenset()) -> dict[str, str]:
    """Every entry under ``directory``: its content hash, link target or 'dir'."""
    found: dict[str, str] = {}
    for current, dirs, files in os.walk(directory):
        here = Path(current)
        dirs[:] = [d for d in dirs if d not in SKIPPED_NAMES and here / d not in skip]
        for name in [*dirs, *files]:
            path = here / name
            if path in skip:
                continue
            relative = str(path.relative_to(directory))
            if path.is_symlink():
                found[relative] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[relative] = "dir"
            else:
                found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def env_fingerprint(manager: EnvManager) -> dict[str, str]:
    """The existing env: its whole folder, and the RECORD of every installed distribution."""
    env_dir = manager._core.services.layout.env_dir(EnvKey(*GOOD))
    fingerprint = tree(env_dir)
    venv = (env_dir / ".venv").resolve()
    for record in sorted(venv.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        fingerprint[f"venv:{record.relative_to(venv)}"] = hashlib.sha256(
            record.read_bytes()
        ).hexdigest()
    assert any(k.startswith("venv:") for k in fingerprint)
    return fingerprint


def root_snapshot(manager: EnvManager) -> dict[str, str]:
    # uv's cache (a Python lookup may touch it) and the audit db (compared by rows) aside.
    root = manager.settings.root
    return tree(root, skip=frozenset({root / "cache", *root.glob("audit.sqlite3*")}))


# --- the test ------------------------------------------------------------------------------


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert sum(case.argv_safe for case in CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.slow
def test_every_bad_input_is_refused_on_every_channel(
    manager: EnvManager, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.create(EnvKey(*GOOD), packages=["beta", "gamma"])
    # Every channel runs in an empty working directory, which must stay empty.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    requirement_files: dict[str, Path] = {}
    for number, case in enumerate(CASES):
        if case.text is not None:
            path = tmp_path / "requirements" / f"{number}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(case.text)
            requirement_files[case.name] = path
    root = manager.settings.root
    outside_before = tree(tmp_path, skip=frozenset({root}))
    env_before = env_fingerprint(manager)
    root_before = root_snapshot(manager)
    records_before = manager.operations(limit=1).total

    failures: list[str] = []
    # 1. The Python API.
    for case in CASES:
        error = run_api(manager, case)
        if type(error) is not case.error:
            failures.append(f"API {case.name}: {type(error).__name__}: {error}")

    # 2. gRPC, against a real server on a loopback port.
    server, port = create_server(manager)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for case in CASES:
                code, name = run_grpc(channel, case)
                expected = case.wire_error or case.error
                if code is not grpc.StatusCode.INVALID_ARGUMENT or name != expected.__name__:
                    failures.append(f"gRPC {case.name}: {code} {name}")
    finally:
        server.stop(None).wait()
        server.executor.shutdown(wait=True)

    # 3. The CLI, one process per case (four at a time).
    cli_cases = [case for case in CASES if case.argv_safe]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(
            lambda case: run_cli(root, wheelhouse, cwd, case, requirement_files.get(case.name)),
            cli_cases,
        )
        for case, (exit_code, name) in zip(cli_cases, results, strict=True):
            if exit_code != 2 or name != case.error.__name__:
                failures.append(f"CLI {case.name}: exit {exit_code} {name}")

    assert failures == [], "\n".join(failures)
    assert tree(tmp_path, skip=frozenset({root})) == outside_before, (
        "something was written outside the root"
    )
    assert list(cwd.iterdir()) == [], "something was written in the working directory"
    assert root_snapshot(manager) == root_before, "a refused request changed the root"
    assert env_fingerprint(manager) == env_before, "the existing env changed"
    assert manager.operations(limit=1).total == records_before, "a refused request was recorded"
    assert not manager._core.services.layout.env_dir(EnvKey(*NEW)).exists()
    print(  # the figures in docs/reliability.md (pytest -s)
        f"\nbad input: {len(CASES)} cases; {len(CASES)} via the API, {len(CASES)} via gRPC, "
        f"{len(cli_cases)} via the CLI: {2 * len(CASES) + len(cli_cases)} refusals checked"
    )


# --- cleanup limits: a NaN must not read as "everything is idle" ------------------------------


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"idle_seconds": math.nan}, id="idle-nan"),
        pytest.param({"idle_seconds": 3600.0, "max_bytes": math.nan}, id="budget-nan"),
    ],
)
def test_cleanup_refuses_a_nan_limit(fake_manager: EnvManager, limits: dict[str, float]) -> None:
    key = EnvKey(*GOOD)
    fake_manager.create(key, packages=["alpha"])
    with pytest.raises(InvalidInput):
        fake_manager.cleanup(**limits)  # type: ignore[arg-type]
    assert fake_manager.status(key).status is EnvStatus.READY


def test_the_cli_refuses_cleanup_with_nan_hours(
    manager: EnvManager, wheelhouse: Path, tmp_path: Path
) -> None:
    key = EnvKey(*GOOD)
    manager.create(key, packages=["gamma"])
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "uv_envs",
            "--root",
            str(manager.settings.root),
            "cleanup",
            "--idle-hours=nan",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert manager.status(key).status is EnvStatus.READY, (
        "cleanup --idle-hours=nan deleted a fresh env"
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
