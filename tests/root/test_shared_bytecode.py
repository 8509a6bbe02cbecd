"""Bytecode a store entry has before its create returns (issue 33), on real uv and interpreters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.support.wheelhouse import build_wheel
from uv_envs import Environment, EnvKey, EnvManager, Settings, SubprocessUvExecutor
from uv_envs._bytecode import compiler as compiler_module
from uv_envs._bytecode import worker
from uv_envs._store.digest import DIGEST, recorded_digest
from uv_envs._store.layout import Layout
from uv_envs._store.manifest import measure
from uv_envs._uv.executor import UvExecutor, find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import CountingExecutor, RecordingCompiler

# Wheels of this file only, each module's source its own (the shared .pyc are by content).
SPEC = ["bcone", "bctwo"]
OTHER_SPEC = ["bctwo", "bcthree"]  # bctwo is the same wheel as in SPEC, bcthree is new
KNOWN_SPEC = ["bcone", "bcthree"]  # each module compiled by one of the above

#: Run in the venv's interpreter: each source's .pyc, and whether it is whole and valid there.
_PYC_FACTS = """
import importlib.util, json, marshal, sys
facts = []
for source in json.loads(sys.argv[1]):
    cfile = importlib.util.cache_from_source(source)
    try:
        with open(cfile, "rb") as handle:
            data = handle.read()
        whole = data[:4] == importlib.util.MAGIC_NUMBER and bool(marshal.loads(data[16:]))
        flags = int.from_bytes(data[4:8], "little")
    except (OSError, ValueError, EOFError, TypeError):
        whole, flags = False, -1
    facts.append([source, cfile, whole, flags])
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def bytecode_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bytecode-wheels")
    for number, name in enumerate(["bcone", "bctwo", "bcthree"]):
        build_wheel(directory, name, "1.0", body=f"NUMBER = {number}\n")
    return directory


@pytest.fixture
def settings(settings: Settings, bytecode_wheels: Path) -> Settings:
    index = settings.index
    links = (*index.find_links, str(bytecode_wheels))
    return attrs.evolve(
        settings, background_bytecode=True, index=attrs.evolve(index, find_links=links)
    )


def manager_for(
    settings: Settings, python_finder: PythonFinder, executor: UvExecutor | None = None
) -> EnvManager:
    return EnvManager(
        settings,
        executor=executor,
        python_finder=python_finder,
        compiler=RecordingCompiler(),
    )


def compiler_of(manager: EnvManager) -> RecordingCompiler:
    compiler = manager._core.services.bytecode.compiler
    assert isinstance(compiler, RecordingCompiler)
    return compiler


def last_record(manager: EnvManager, key: EnvKey) -> dict[str, Any]:
    return dict(manager.operations(key.workflow_id, key.node_id, limit=1).items[0].metadata)


def entry_of(environment: Environment) -> Path:
    return (environment.env_path / ".venv").resolve().parent


def pyc_facts(entry: Path) -> list[tuple[str, Path, bool, int]]:
    venv = entry / ".venv"
    completed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-I",
            "-c",
            _PYC_FACTS,
            json.dumps(worker.sources(str(venv))),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [(s, Path(c), whole, flags) for s, c, whole, flags in json.loads(completed.stdout)]


def pyc_of(entry: Path, module: str) -> Path:
    (found,) = [c for s, c, _, _ in pyc_facts(entry) if module_of(s) == module]
    return found


def module_of(source: str) -> str:
    path = Path(source)
    return path.parent.name if path.name == "__init__.py" else path.stem


def files_under(*trees: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``trees`` with its inode, link count and ctime (any write changes one)."""
    found = {}
    for tree in trees:
        for path in tree.rglob("*"):
            if path.is_file():
                info = path.lstat()
                found[str(path)] = (info.st_ino, info.st_nlink, info.st_ctime_ns)
    return found


def test_a_create_hands_out_an_entry_whose_every_module_has_a_whole_pyc(
    settings: Settings, python_finder: PythonFinder
) -> None:
    manager = manager_for(settings, python_finder)
    environment = manager.create(EnvKey("wf", "a"), packages=SPEC)

    facts = pyc_facts(entry_of(environment))
    assert {module_of(s) for s, _, _, _ in facts} >= {"bcone", "bctwo"}
    assert [s for s, _, whole, _ in facts if not whole] == []
    assert {flags for _, _, _, flags in facts} == {1}, "not unchecked hash-based .pyc"
    assert all(c.stat().st_mode & 0o222 == 0 for _, c, _, _ in facts)
    details = last_record(manager, environment.key)
    assert (details["bytecode"], details["compiled"]) == ("compiled", True)
    assert compiler_of(manager).jobs == [], "a compiled entry was handed to the compiler"


def test_importing_right_after_a_create_compiles_and_writes_nothing(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    manager = manager_for(settings, python_finder)
    environment = manager.create(EnvKey("wf", "a"), packages=SPEC)
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = Layout(settings.root)
    before = files_under(layout.store_dir, layout.bytecode_dir)
    # Bytecode writing on, as for any process: a module compiled from its source
    # would be written to the entry's __pycache__ (its folders are writable).
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"}
    }
    environ.update(HOME=str(outside), TMPDIR=str(outside))
    probe = "import bcone, bctwo; print(bcone.NUMBER, bctwo.__cached__)"

    completed = subprocess.run(
        [str(environment.python_path), "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=outside,
        env=environ,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split()[0] == "0"
    assert files_under(layout.store_dir, layout.bytecode_dir) == before
    assert list(outside.iterdir()) == []


def test_a_new_entry_links_the_pycs_an_earlier_entry_compiled(
    settings: Settings, python_finder: PythonFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler_module, "INLINE_FILES", 0)  # every new module: background
    manager = manager_for(settings, python_finder)
    compiler = compiler_of(manager)
    first = entry_of(manager.create(EnvKey("wf", "a"), packages=SPEC))
    assert last_record(manager, EnvKey("wf", "a"))["bytecode"] == "scheduled"
    assert compiler.run_all() == [worker.COMPILED]

    second = entry_of(manager.create(EnvKey("wf", "b"), packages=OTHER_SPEC))
    # bctwo is the same wheel, its .pyc the same file; bcthree is new, left to the compiler.
    assert pyc_of(second, "bctwo").stat().st_ino == pyc_of(first, "bctwo").stat().st_ino
    assert last_record(manager, EnvKey("wf", "b"))["bytecode"] == "scheduled"
    assert compiler.run_all() == [worker.COMPILED]

    third = manager.create(EnvKey("wf", "c"), packages=KNOWN_SPEC)
    details = last_record(manager, third.key)
    assert (details["installed"], details["bytecode"], details["compiled"]) == (
        True,
        "compiled",
        True,
    )
    assert compiler.jobs == []
    facts = pyc_facts(entry_of(third))
    assert [s for s, _, whole, _ in facts if not whole] == []
    linked = entry_of(third)
    assert pyc_of(linked, "bcone").stat().st_ino == pyc_of(first, "bcone").stat().st_ino
    assert pyc_of(linked, "bcthree").stat().st_ino == pyc_of(second, "bcthree").stat().st_ino


def test_linking_the_bytecode_changes_neither_the_digest_nor_the_manifest(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    """So a build computes them while the linker runs (``_bytecode.early``)."""
    manager = manager_for(settings, python_finder)
    entry = entry_of(manager.create(EnvKey("wf", "a"), packages=SPEC))
    # The entry as its build sees it before the linker has run: no bytecode at all.
    venv = tmp_path / "entry" / ".venv"
    shutil.copytree(
        entry / ".venv", venv, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    assert list(venv.rglob("*.pyc")) == []
    before = recorded_digest(venv), measure(venv)

    outcome = manager._core.services.bytecode.prepare(venv)

    assert outcome is not None
    assert outcome.startswith(worker.LINKED)
    assert outcome.endswith(" 0"), outcome  # every module linked
    assert len(list(venv.rglob("*.pyc"))) >= len(SPEC)
    assert (recorded_digest(venv), measure(venv)) == before
    assert before[0] == (entry / DIGEST).read_text()


def test_an_early_linker_sent_no_job_exits_having_written_nothing(
    settings: Settings, python_finder: PythonFinder
) -> None:
    manager = manager_for(settings, python_finder)
    manager.create(EnvKey("wf", "a"), packages=SPEC)
    before = files_under(settings.root)
    early = manager._core.services.bytecode.start_link(Path(sys.executable))
    assert early is not None

    assert early.finish(timeout=60) == "not sent"  # a build that stopped before its venv

    assert early.process.returncode == 0
    assert files_under(settings.root) == before


def test_a_second_key_of_a_spec_runs_no_uv_and_no_compile(
    settings: Settings, python_finder: PythonFinder
) -> None:
    counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    manager = manager_for(settings, python_finder, counting)
    environment = manager.create(EnvKey("wf", "a"), packages=SPEC)
    layout = Layout(settings.root)
    runs, files = len(counting.calls), files_under(layout.store_dir, layout.bytecode_dir)
    files = {path: facts for path, facts in files.items() if "/refs/" not in path}

    other = manager.create(EnvKey("wf", "b"), packages=SPEC)

    assert entry_of(other) == entry_of(environment)
    assert len(counting.calls) == runs
    after = files_under(layout.store_dir, layout.bytecode_dir)
    assert {path: facts for path, facts in after.items() if "/refs/" not in path} == files
    details = last_record(manager, other.key)
    assert (details["uv_runs"], details["installed"], details["bytecode"]) == (0, False, "compiled")
    assert compiler_of(manager).jobs == []


def test_cleanup_drops_the_shared_pycs_no_entry_links(
    settings: Settings, python_finder: PythonFinder
) -> None:
    manager = manager_for(settings, python_finder)
    first = entry_of(manager.create(EnvKey("wf", "a"), packages=SPEC))
    second = manager.create(EnvKey("wf", "b"), packages=OTHER_SPEC)
    only_first, both = pyc_of(first, "bcone"), pyc_of(first, "bctwo")
    shared = Layout(settings.root).bytecode_dir
    inodes = {path.stat().st_ino: path for path in shared.rglob("*.pyc")}
    only_first, both = inodes[only_first.stat().st_ino], inodes[both.stat().st_ino]

    manager.delete(EnvKey("wf", "a"))
    assert manager.cleanup(idle_seconds=3600).pruned_store_entries == 1

    assert not only_first.exists(), "no entry links it any more"
    assert both.stat().st_ino == pyc_of(entry_of(second), "bctwo").stat().st_ino
    assert all(path.stat().st_nlink > 1 for path in shared.rglob("*.pyc"))
    assert manager.verify(second.key).ok
    completed = subprocess.run(
        [str(second.python_path), "-c", "import bctwo, bcthree"], capture_output=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_a_record_digest_that_is_not_a_sha256_names_no_shared_file(tmp_path: Path) -> None:
    """A wheel's RECORD cannot point the linking step at a file outside ``bytecode/``."""
    site = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    (site / "sly").mkdir(parents=True)
    source = site / "sly" / "__init__.py"
    source.write_text("VALUE = 1\n")
    (site / "sly-1.0.dist-info").mkdir()
    bait = tmp_path / "bait.pyc"
    bait.write_bytes(b"not bytecode")
    shared = tmp_path / "shared"
    # Joined as shared/<tag>/<key[:2]>/<key>.pyc, this key names tmp_path/bait.pyc.
    key = "../bait"
    Path(worker.stored(str(shared), "ab")).parent.parent.mkdir(parents=True)  # shared/<tag>
    (site / "sly-1.0.dist-info" / "RECORD").write_text(f"sly/__init__.py,sha256={key},10\n")
    job = {"venv": str(tmp_path / "venv"), "shared": str(shared), "marker": str(tmp_path / "m")}

    outcome = worker.link_venv(job)

    assert outcome == f"{worker.LINKED} 0 1", "linked from a path the RECORD named"
    assert bait.stat().st_nlink == 1
    assert not (tmp_path / "m").exists()


def test_a_record_with_a_blank_line_still_gives_its_digests(tmp_path: Path) -> None:
    """The linking step reads each source's digest from RECORD: a blank row does not stop it."""
    site = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    (site / "blank").mkdir(parents=True)
    source = site / "blank" / "__init__.py"
    source.write_text("VALUE = 1\n")
    (site / "blank-1.0.dist-info").mkdir()
    key = worker.digest(str(source))
    (site / "blank-1.0.dist-info" / "RECORD").write_text(f"\nblank/__init__.py,sha256={key},10\n\n")

    assert worker._recorded(str(tmp_path / "venv")) == {str(source): key}
