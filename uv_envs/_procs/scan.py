"""Which processes on the host use files under a directory: the port and its ``/proc`` reader.

Leases protect an env only from callers that take them; a worker started with
``py_executable``, a shell with the env as working directory or a program
holding one of its files open take none. Like Nix's garbage collector, which
treats every store path a live process uses as a root, uv-envs asks the
system: :class:`ProcScanner` reads ``/proc`` once per call and answers, for
each process, the paths under the given directory it

* runs as its interpreter (``exe``, and ``argv[0]``: a venv's ``bin/python``
  is a link to the base interpreter, so ``exe`` alone never names the env),
* names on its command line or as ``VIRTUAL_ENV``,
* has as working directory (``cwd``), open (``fd/*``) or mapped (``maps``).

A process whose ``exe``, ``cwd``, ``fd`` or ``maps`` we may not read (another
user's, without privileges) is still seen through its command line, which
``/proc`` shows to everyone, and is marked ``hidden``. Files already deleted
(`` (deleted)``) name nothing on disk any more and are left out. Where there
is no ``/proc`` the scan finds nothing: leases remain the way to keep an env.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import attrs

_PROC = Path("/proc")
_DELETED = " (deleted)"


class ProcessUse(enum.StrEnum):
    """How a process uses a path."""

    INTERPRETER = "runs its interpreter"
    COMMAND_LINE = "names it on its command line"
    VIRTUAL_ENV = "has it as VIRTUAL_ENV"
    WORKING_DIRECTORY = "has its working directory in it"
    OPEN_FILE = "has a file of it open"
    MAPPED_FILE = "has a file of it mapped"


@attrs.frozen
class ProcessView:
    """One process and the paths it uses under the scanned directory.

    ``started_at`` is a Unix time; ``uses`` pairs each path (as the process
    names it: ``argv[0]`` unresolved, ``/proc`` links resolved) with how it is
    used; ``hidden`` says only the command line could be read.
    """

    pid: int
    command: str
    started_at: float
    uses: tuple[tuple[str, ProcessUse], ...]
    hidden: bool = False


class ProcessScanner(Protocol):
    """Lists the processes using files under a directory (one scan of the host per call)."""

    def scan(self, directory: Path) -> list[ProcessView]:
        """Every live process with at least one use of a path under ``directory``."""
        ...


def _inside(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p + os.sep) for p in prefixes)


@attrs.frozen
class ProcScanner:
    """:class:`ProcessScanner` over Linux's ``/proc`` (finds nothing where there is none).

    ``ignore`` names scripts whose processes are uv-envs' own workers, which
    coordinate with cleanup through locks (the background bytecode compiler).
    """

    ignore: frozenset[str] = frozenset()
    proc: Path = _PROC

    def scan(self, directory: Path) -> list[ProcessView]:
        prefixes = sorted({str(directory), os.path.realpath(directory)})
        boot = _boot_time(self.proc)
        ticks = os.sysconf("SC_CLK_TCK")
        # One cache of resolved folders per scan: most processes share their interpreter's.
        resolved: dict[str, str] = {}
        views: list[ProcessView] = []
        for pid in _pids(self.proc):
            view = self._view(pid, prefixes, resolved, boot, ticks)
            if view is not None and view.uses:
                views.append(view)
        return views

    def _view(
        self,
        pid: int,
        prefixes: Sequence[str],
        resolved: dict[str, str],
        boot: float,
        ticks: int,
    ) -> ProcessView | None:
        base = f"{self.proc}/{pid}"
        try:
            argv = [a.decode(errors="replace") for a in _read(f"{base}/cmdline").split(b"\0")]
        except OSError:
            return None  # gone meanwhile
        argv = argv[:-1] if argv and not argv[-1] else argv
        if any(arg in self.ignore for arg in argv[1:4]):
            return None
        found = _Found(prefixes, resolved)
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            _read_links(base, pid, found)
        cwd = found.cwd or ""
        for position, arg in enumerate(argv):
            use = ProcessUse.INTERPRETER if position == 0 else ProcessUse.COMMAND_LINE
            if os.sep in arg:
                found.add(os.path.normpath(os.path.join(cwd, arg)) if cwd else arg, use)  # noqa: PTH118
        if not found.uses:
            return None  # nothing of the folder: its start time is not needed
        try:
            start_ticks = int(_read(f"{base}/stat").rsplit(b")", 1)[-1].split()[19])
        except (OSError, ValueError, IndexError):
            return None  # gone meanwhile, or a kernel thread's oddities
        return ProcessView(
            pid=pid,
            command=" ".join(argv)[:200] or f"[pid {pid}]",
            started_at=boot + start_ticks / ticks,
            uses=tuple(found.uses.items()),
            hidden=found.hidden,
        )


@attrs.define
class _Found:
    """The uses of one process under the prefixes, gathered while reading its ``/proc`` entry."""

    prefixes: Sequence[str]
    #: realpath of folders, shared by the processes of one scan.
    resolved: dict[str, str] = attrs.field(factory=dict)
    uses: dict[str, ProcessUse] = attrs.field(factory=dict)
    cwd: str | None = None
    hidden: bool = False

    def add(self, path: str, use: ProcessUse) -> None:
        if path.endswith(_DELETED):
            return
        candidates = {path}
        if use in _UNRESOLVED:
            # Both the target (a folder) and the file in its resolved folder: realpath of
            # a venv's bin/python ends at the base interpreter, outside the root.
            head, tail = os.path.split(path)
            real_head = self._realpath(head)
            candidates |= {self._realpath(path), os.path.join(real_head, tail)}  # noqa: PTH118
        for candidate in candidates:
            if _inside(candidate, self.prefixes):
                self.uses.setdefault(candidate, use)

    def _realpath(self, path: str) -> str:
        real = self.resolved.get(path)
        if real is None:
            real = self.resolved[path] = os.path.realpath(path)
        return real


# Paths a process gave itself (argv, environment): may go through links, so both spellings count.
_UNRESOLVED = {ProcessUse.INTERPRETER, ProcessUse.COMMAND_LINE, ProcessUse.VIRTUAL_ENV}


def _read(path: str) -> bytes:
    # Unbuffered, in large reads: /proc files report no size, and each read makes the
    # kernel format more of them, so fewer and larger reads are cheaper.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_READ_SIZE = 1 << 17


def _read_links(base: str, pid: int, found: _Found) -> None:
    """Read what the kernel shows of one process; a part we may not read marks it hidden."""
    for name, use in (("exe", ProcessUse.INTERPRETER), ("cwd", ProcessUse.WORKING_DIRECTORY)):
        try:
            target = os.readlink(f"{base}/{name}")
        except PermissionError:
            found.hidden = True
            continue
        except OSError:
            continue  # a kernel thread has neither
        found.add(target, use)
        if name == "cwd":
            found.cwd = target
    try:
        _read_files(base, pid, found)
    except PermissionError:
        found.hidden = True


def _read_files(base: str, pid: int, found: _Found) -> None:
    for item in _read(f"{base}/environ").split(b"\0"):
        if item.startswith(b"VIRTUAL_ENV="):
            found.add(item.split(b"=", 1)[1].decode(errors="replace"), ProcessUse.VIRTUAL_ENV)
    for path in _mapped(base, found.prefixes):
        found.add(path, ProcessUse.MAPPED_FILE)
    if pid != os.getpid():  # our own open files are this call's own reads
        for path in _open_files(base):
            found.add(path, ProcessUse.OPEN_FILE)


def _mapped(base: str, prefixes: Sequence[str]) -> Iterator[str]:
    """The mapped files under ``prefixes``: the kernel names them resolved and absolute.

    A large process maps thousands of files; one search of the whole text for
    the prefixes (in C) skips the line-by-line parse for every process that
    maps nothing of the root, which is nearly all of them.
    """
    data = _read(f"{base}/maps")
    wanted = [p.encode(errors="surrogateescape") for p in prefixes]
    if not any(p in data for p in wanted):
        return
    for raw in data.splitlines():
        if not any(p in raw for p in wanted):
            continue
        fields = raw.decode(errors="replace").split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):  # noqa: PLR2004 - maps' columns
            yield fields[5]


def _open_files(base: str) -> Iterator[str]:
    fds = f"{base}/fd"
    for name in os.listdir(fds):  # noqa: PTH208 - thousands of entries, names only
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"{fds}/{name}")
            if target.startswith("/"):  # not a socket:[..] or pipe:[..]
                yield target


def _pids(proc: Path) -> list[int]:
    try:
        return [int(entry.name) for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _boot_time(proc: Path) -> float:
    with contextlib.suppress(OSError):
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_alive(pid: int, proc: Path = _PROC) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        state = _read(f"{proc}/{pid}/stat").rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        if proc.is_dir():
            return False
        try:
            os.kill(pid, 0)  # no /proc: ask the kernel
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (b"Z", b"X")
