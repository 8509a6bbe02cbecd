"""Bytecode for shared venvs: linked before a create returns, the rest in the background.

Compiling at install time (``Settings.compile_bytecode``, uv's
``--compile-bytecode``) makes a create seconds slower, yet without ``.pyc``
files every fresh process (with ``PYTHONDONTWRITEBYTECODE=1``, every process)
compiles what it imports. So each module is compiled once per root, into
``<root>/bytecode/`` by its source's digest, and hard-linked into every store
entry that holds it: :meth:`BytecodePolicy.prepare`, run while the store
builds an entry, links what earlier entries compiled (and compiles a few new
modules), so a new spec of known wheels is handed out compiled. What is left
goes, after the create has returned, to a :class:`BytecodeCompiler`, whose
real adapter starts :mod:`uv_envs._bytecode.worker` in the entry's own
interpreter, detached. The worker's docstring says how it stays within the
install cap, compiles each entry at most once across processes, and never
exposes a half-written ``.pyc``.

Every create that links an entry not yet compiled hands it on again (a
worker that died is replaced; one already running makes the new one give up at
once), so an entry gets compiled even when its builder did not live long
enough. Private venvs (built by ``sync`` inside one generation) are not
compiled in the background: see docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Protocol

import attrs

from uv_envs._store.layout import Layout
from uv_envs._store.venvs import COMPILED, COMPLETE, SIZE, linked_entry

from .early import WORKER, EarlyLink, worker_environment

#: Modules a new entry may compile while it is built, when no earlier entry had them:
#: about 50 ms, a small wheel or two. More are left to the background compile.
INLINE_FILES = 32
# Linking takes tens of ms; a worker stuck on a hung file system must not hold the create.
_PREPARE_TIMEOUT = 120.0


class BytecodeState(enum.Enum):
    """What an env's venv has in the way of bytecode when a create hands it out."""

    INSTALL_TIME = "install-time"  # uv compiled it (compile_bytecode=True)
    COMPILED = "compiled"  # the background compiler finished it
    SCHEDULED = "scheduled"  # handed to the background compiler now
    OFF = "off"  # not compiled, and nothing will compile it

    @property
    def compiled(self) -> bool:
        return self in {BytecodeState.INSTALL_TIME, BytecodeState.COMPILED}


@attrs.frozen
class CompileJob:
    """One venv to compile, with the files and locks the worker needs (all under the root)."""

    venv: Path
    marker: Path
    lock: Path
    locks_dir: Path
    slots: int
    complete: Path | None = None
    size_file: Path | None = None
    batch_seconds: float = 0.1
    batch_files: int = 0
    shared: Path | None = None
    link: bool = False
    inline_files: int = 0

    @property
    def python(self) -> Path:
        """The venv's interpreter: its ``.pyc`` files must carry its magic number and tag."""
        return self.venv / "bin" / "python"

    def as_json(self) -> str:
        return json.dumps(
            {
                "venv": str(self.venv),
                "marker": str(self.marker),
                "lock": str(self.lock),
                "locks_dir": str(self.locks_dir),
                "slots": self.slots,
                "complete": None if self.complete is None else str(self.complete),
                "size_file": None if self.size_file is None else str(self.size_file),
                "batch_seconds": self.batch_seconds,
                "batch_files": self.batch_files,
                "shared": None if self.shared is None else str(self.shared),
                "link": self.link,
                "inline_files": self.inline_files,
            }
        )

    def argv(self) -> list[str]:
        """How the worker is run: isolated (``-I``), without site (``-S``), stdlib only."""
        return [str(self.python), "-I", "-S", str(WORKER), self.as_json()]

    def run(self, timeout: float | None = None) -> str:
        """Run the worker and wait for it: its outcome line, or what stopped it.

        In a session of its own, so a terminal's signals do not reach it halfway
        (``subprocess.run`` still kills it if the caller is interrupted), with a
        minimal environment.
        """
        try:
            completed = subprocess.run(
                self.argv(),
                cwd=self.locks_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                start_new_session=True,
                check=False,
                env=worker_environment(),
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"failed: {exc}"
        return completed.stdout.strip() or f"exit {completed.returncode}"

    @property
    def done(self) -> bool:
        return self.marker.is_file()


def entry_job(layout: Layout, entry: Path, slots: int) -> CompileJob:
    """The job that compiles the venv of the store entry ``entry`` (``store/<id>``)."""
    return CompileJob(
        shared=layout.bytecode_dir,
        venv=entry / ".venv",
        marker=entry / COMPILED,
        lock=layout.compile_lock(entry.name),
        locks_dir=layout.locks_dir,
        slots=slots,
        complete=entry / COMPLETE,
        size_file=entry / SIZE,
    )


class BytecodeCompiler(Protocol):
    """Compiles venvs in the background; ``submit`` returns at once."""

    def submit(self, job: CompileJob) -> None:
        """Start compiling ``job`` unless this compiler is compiling it already."""
        ...


@attrs.define
class BackgroundCompiler:
    """Runs each job as a detached worker process in the venv's interpreter.

    The worker runs in its own session, so it survives the process that
    started it (a CLI exits right after its create). A thread per job waits
    for it, so it never lingers as a zombie; :meth:`wait` joins them
    (benchmarks and tests use it; nothing else needs to).
    """

    _running: dict[Path, threading.Thread] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    outcomes: dict[Path, str] = attrs.field(factory=dict, init=False)

    def submit(self, job: CompileJob) -> None:
        with self._lock:
            running = self._running.get(job.venv)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._run, args=(job,), name="uv-envs-bytecode", daemon=True
            )
            self._running[job.venv] = thread
        thread.start()

    def _run(self, job: CompileJob) -> None:
        if not _has_sources(job.venv):
            # Nothing a worker could compile (a fake's venv): spare the interpreter start.
            with self._lock:
                self.outcomes[job.venv] = "nothing to compile"
                self._running.pop(job.venv, None)
            return
        outcome = job.run()
        with self._lock:
            self.outcomes[job.venv] = outcome
            self._running.pop(job.venv, None)  # a long-running server keeps no finished threads

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every job submitted so far to finish."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)


def prune_shared(shared: Path) -> int:
    """Remove the shared ``.pyc`` files no store entry links any more; how many.

    A file the worker has just written and not linked yet may go too: the worker
    then compiles into the entry itself (see :mod:`.worker`).
    """
    removed = 0
    for directory, _, files in os.walk(shared):
        for name in files:
            path = os.path.join(directory, name)  # noqa: PTH118 - os.walk's strings
            with contextlib.suppress(OSError):
                if os.stat(path).st_nlink == 1:  # noqa: PTH116
                    os.unlink(path)  # noqa: PTH108
                    removed += 1
    return removed


def _has_sources(venv: Path) -> bool:
    """Whether site-packages holds anything but distribution metadata and ``.pth`` files."""
    for site in venv.glob("lib/python*/site-packages"):
        with os.scandir(site) as entries:
            if any(not entry.name.endswith((".dist-info", ".pth")) for entry in entries):
                return True
    return False


@attrs.frozen
class BytecodePolicy:
    """Decides, per create, what bytecode the handed-out venv has and whether to compile it.

    Args:
        compiler: where jobs go.
        background: ``Settings.background_bytecode``; False sends no jobs.
        install_time: ``Settings.compile_bytecode`` (uv compiled every entry).
        layout: the root's paths (compile locks, install slots).
        slots: ``Settings.max_concurrent_installs``.

    """

    compiler: BytecodeCompiler
    background: bool
    install_time: bool
    layout: Layout
    slots: int

    def plan(self, gen_dir: Path) -> tuple[BytecodeState, CompileJob | None]:
        """The state of ``gen_dir/.venv``, and the job to submit once the create is done."""
        if self.install_time:
            return BytecodeState.INSTALL_TIME, None
        entry = linked_entry(self.layout.store_dir, gen_dir)
        if entry is None:
            return BytecodeState.OFF, None  # a private venv: see the module docstring
        job = entry_job(self.layout, entry, self.slots)
        try:
            done = job.done
        except OSError:  # called after the commit point: never fail the operation here
            return BytecodeState.OFF, None
        if done:
            return BytecodeState.COMPILED, None
        if not self.background:
            return BytecodeState.OFF, None
        return BytecodeState.SCHEDULED, job

    def start(self, job: CompileJob | None) -> None:
        if job is not None:
            self.compiler.submit(job)

    def prepare(self, venv: Path) -> str | None:
        """Give a store entry being built (``store/<id>/.venv``) its bytecode before it is sealed.

        Links every module's ``.pyc`` that an earlier entry compiled from the
        same source (the root's ``bytecode/``, see :mod:`.worker`) and compiles
        up to :data:`INLINE_FILES` more; the entry's ``.compiled`` marker is
        written when nothing is left, so no background compile follows. Runs the
        worker in the venv's interpreter and waits for it (tens of ms); the
        worker's outcome, or None when bytecode is not this policy's to make.
        """
        if self.install_time or not self.background or not _has_sources(venv):
            return None
        return self._link_job(venv).run(_PREPARE_TIMEOUT)  # failed: the background compile follows

    def start_link(self, python: Path) -> EarlyLink | None:
        """:meth:`prepare` in two halves: the worker started now, in ``python``, before the venv is.

        ``python`` is the interpreter the venv is made from. :meth:`send_link`
        hands it the venv once installed; ``finish()`` waits for the outcome.
        None when bytecode is not this policy's to make.
        """
        if self.install_time or not self.background:
            return None
        return EarlyLink.start(python, self.layout.locks_dir)

    def send_link(self, early: EarlyLink, venv: Path) -> None:
        """Have ``early`` link ``venv``'s bytecode (nothing, finishing it, if it has no sources)."""
        if _has_sources(venv):
            early.send(self._link_job(venv).as_json())

    def _link_job(self, venv: Path) -> CompileJob:
        return attrs.evolve(
            entry_job(self.layout, venv.parent, self.slots), link=True, inline_files=INLINE_FILES
        )


def cost_notes(uv_runs: int, state: BytecodeState) -> dict[str, object]:
    """What an audit row says about a hand-out's cost: uv subprocesses run, and bytecode."""
    return {"uv_runs": uv_runs, "compiled": state.compiled, "bytecode": state.value}
