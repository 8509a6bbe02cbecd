"""``ProcScanner`` over a ``/proc`` laid out in a temporary folder, and over the real one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from uv_envs import ProcessUse, ProcScanner

# /proc/<pid>/stat up to field 22 (starttime), with a command name holding ") (".
STAT = "{pid} (odd) (name) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0\n"


def fake_process(proc: Path, pid: int, argv: list[str], **links: str) -> Path:
    base = proc / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (base / "stat").write_text(STAT.format(pid=pid, ticks=250))
    (base / "environ").write_bytes(b"HOME=/root\0")
    (base / "maps").write_text("")
    for name, target in links.items():
        os.symlink(target, base / name)
    return base


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu 1 2 3\nbtime 1000\n")
    (proc / "self").mkdir()  # not a pid: skipped
    return proc


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "envs" / "wf" / "node" / "v1" / "gens" / "1").mkdir(parents=True)
    return root


def test_every_kind_of_use_is_found_and_nothing_outside_the_root(proc: Path, root: Path) -> None:
    env = root / "envs" / "wf" / "node" / "v1"
    base = fake_process(
        proc,
        42,
        ["./gens/1/.venv/bin/python", "-m", "node.main", str(env / "data.csv")],
        exe="/usr/bin/python3.12",
        cwd=str(env),
    )
    (base / "environ").write_bytes(f"HOME=/root\0VIRTUAL_ENV={env}/.venv\0".encode())
    (base / "maps").write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n"
        f"7f01-7f02 r-xp 00000000 08:01 2 {env}/gens/1/.venv/x.so\n"
        f"7f02-7f03 r-xp 00000000 08:01 3 {env}/gens/1/.venv/gone.so (deleted)\n"
        "7f03-7f04 rw-p 00000000 00:00 0 [heap]\n"
    )
    os.symlink(str(env / "gens" / "1" / "pyproject.toml"), base / "fd" / "3")
    os.symlink("socket:[123]", base / "fd" / "4")
    fake_process(proc, 43, ["sleep", "60"], exe="/usr/bin/sleep", cwd="/")

    (view,) = ProcScanner(proc=proc).scan(root)

    assert view.pid == 42
    assert view.command == f"./gens/1/.venv/bin/python -m node.main {env}/data.csv"
    assert view.started_at == 1000 + 250 / os.sysconf("SC_CLK_TCK")
    assert not view.hidden
    assert dict(view.uses) == {
        str(env): ProcessUse.WORKING_DIRECTORY,
        f"{env}/gens/1/.venv/bin/python": ProcessUse.INTERPRETER,  # relative to its cwd
        f"{env}/data.csv": ProcessUse.COMMAND_LINE,
        f"{env}/.venv": ProcessUse.VIRTUAL_ENV,
        f"{env}/gens/1/.venv/x.so": ProcessUse.MAPPED_FILE,
        f"{env}/gens/1/pyproject.toml": ProcessUse.OPEN_FILE,
    }


def test_a_process_we_may_not_read_is_seen_through_its_command_line(
    proc: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = root / "envs" / "wf" / "node" / "v1"
    base = fake_process(proc, 7, [f"{env}/.venv/bin/python", "worker.py"], cwd=str(env))
    (base / "environ").unlink()
    (base / "environ").mkdir()  # reading it fails, as another user's does
    real_readlink = os.readlink

    def refused(path: str | os.PathLike[str]) -> str:
        if Path(path).parent == base:
            raise PermissionError(path)
        return real_readlink(path)

    monkeypatch.setattr("uv_envs._procs.scan.os.readlink", refused)
    monkeypatch.setattr(
        "uv_envs._procs.scan._read_files",
        lambda *_: (_ for _ in ()).throw(PermissionError("environ")),
    )

    (view,) = ProcScanner(proc=proc).scan(root)

    assert view.hidden
    assert dict(view.uses) == {f"{env}/.venv/bin/python": ProcessUse.INTERPRETER}


def test_the_compile_worker_and_processes_that_went_away_are_left_out(
    proc: Path, root: Path
) -> None:
    env = root / "envs" / "wf" / "node" / "v1"
    fake_process(proc, 8, [f"{env}/.venv/bin/python", "-I", "/x/compile_worker.py", "{}"])
    (proc / "9").mkdir()  # exited between the listing and the read
    assert ProcScanner(ignore=frozenset({"/x/compile_worker.py"}), proc=proc).scan(root) == []


@pytest.fixture
def sleeper(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"],
        cwd=root / "envs" / "wf" / "node" / "v1" / "gens" / "1",
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    yield process
    process.kill()
    process.wait()
    process.stdout.close()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_the_real_proc_shows_a_process_working_in_the_root(
    root: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    (view,) = ProcScanner().scan(root)
    assert view.pid == sleeper.pid
    assert dict(view.uses) == {
        str(root / "envs" / "wf" / "node" / "v1" / "gens" / "1"): ProcessUse.WORKING_DIRECTORY
    }
    sleeper.kill()
    sleeper.wait()
    assert ProcScanner().scan(root) == []
