"""uv command lines, built by pure functions that run nothing.

Each builder returns a :class:`UvInvocation`, so they are tested without
subprocesses; :mod:`.executor` is the only code that starts uv. User strings
only follow ``--`` or are separate option values, never flags.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from uv_envs._models import IndexSettings
from uv_envs._reports import ExportFormat


@attrs.frozen
class UvOptions:
    """The settings every uv call carries; a slice of :class:`~uv_envs.Settings`."""

    cache_dir: Path
    index: IndexSettings = IndexSettings()
    python_downloads: str = "never"
    compile_bytecode: bool = False
    timeout: float | None = None


@attrs.frozen
class UvInvocation:
    """One uv command: argv after the binary, where to run it, what to add to its env."""

    args: tuple[str, ...]
    cwd: Path | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float | None = None
    # Set by the caller to stop uv early; the executor then raises OperationCancelled.
    cancel: threading.Event | None = attrs.field(default=None, eq=False, repr=False)
    # Set by the runner to read uv's progress live; called with each line of stderr.
    stderr_line: Callable[[str], None] | None = attrs.field(default=None, eq=False, repr=False)


def _links_by_env(index: IndexSettings) -> bool:
    # UV_FIND_LINKS is comma-separated: a location with a comma in it can only
    # go on the command line (a local folder, in practice; URLs escape commas).
    return not any("," in link for link in index.find_links)


def _index_args(index: IndexSettings) -> list[str]:
    args: list[str] = []
    if not _links_by_env(index):
        for link in index.find_links:
            args += ["--find-links", link]
    if index.no_index:
        args.append("--no-index")
    if index.offline:
        args.append("--offline")
    return args


def _index_env(index: IndexSettings) -> dict[str, str]:
    """The index URLs, for uv's environment: never on its command line.

    An index URL may carry credentials (``https://user:token@host/simple``);
    ``ps`` shows every user a command line, a process's environment only its
    owner. ``UV_DEFAULT_INDEX`` and ``UV_INDEX`` (space-separated, in priority
    order) and ``UV_FIND_LINKS`` (comma-separated) are uv's own equivalents of
    ``--default-index``, ``--index`` and ``--find-links``.
    """
    env: dict[str, str] = {}
    if index.index_url:
        env["UV_DEFAULT_INDEX"] = index.index_url
    if index.extra_index_urls:
        env["UV_INDEX"] = " ".join(index.extra_index_urls)
    if index.find_links and _links_by_env(index):
        env["UV_FIND_LINKS"] = ",".join(index.find_links)
    return env


def _common_args(options: UvOptions, python: str | None) -> list[str]:
    args = [
        "--no-config",
        "--no-progress",
        "--color",
        "never",
        "--cache-dir",
        str(options.cache_dir),
    ]
    if python is not None:
        args += ["--python", python]
    return args


def _env(
    options: UvOptions,
    project_dir: Path | None = None,
    venv: Path | None = None,
    *,
    index: bool = False,
) -> dict[str, str]:
    env = {"UV_PYTHON_DOWNLOADS": options.python_downloads}
    if index:
        env |= _index_env(options.index)
    if project_dir is not None:
        # Each venv is built where it will live: venvs cannot move.
        env["UV_PROJECT_ENVIRONMENT"] = str(venv if venv is not None else project_dir / ".venv")
    return env


def lock_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    *,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    check: bool = False,
) -> UvInvocation:
    """``uv lock`` in a project dir: resolve, optionally upgrading, or only ``--check``."""
    args = ["lock", *_common_args(options, python), *_index_args(options.index)]
    if check:
        args.append("--check")
    if upgrade:
        args.append("--upgrade")
    for name in upgrade_packages:
        args += ["--upgrade-package", name]
    env = _env(options, project_dir, index=True)
    return UvInvocation(tuple(args), project_dir, env, options.timeout)


def sync_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    *,
    venv: Path | None = None,
    refresh: bool = False,
) -> UvInvocation:
    """``uv sync --frozen``: build a venv (``<project>/.venv`` or ``venv``) from the lock."""
    args = ["sync", "--frozen", *_common_args(options, python), *_index_args(options.index)]
    if options.compile_bytecode:
        args.append("--compile-bytecode")
    if refresh:
        # uv hard-links installed files from its cache: a damaged file may be
        # damaged there too, so a repair bypasses the cache and unpacks everything again.
        args += ["--no-cache", "--reinstall"]
    env = _env(options, project_dir, venv, index=True)
    return UvInvocation(tuple(args), project_dir, env, options.timeout)


def add_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    requirements: Iterable[str] = (),
    *,
    requirements_file: Path | None = None,
    upgrade_packages: Iterable[str] = (),
) -> UvInvocation:
    """``uv add --no-sync``: declare requirements and re-lock, leaving venvs alone.

    ``upgrade_packages`` also lets the lock move those packages to newer versions.
    """
    args = ["add", "--no-sync", *_common_args(options, python), *_index_args(options.index)]
    if requirements_file is not None:
        args += ["--requirements", str(requirements_file)]
    for name in upgrade_packages:
        args += ["--upgrade-package", name]
    args += ["--", *requirements]
    env = _env(options, project_dir, index=True)
    return UvInvocation(tuple(args), project_dir, env, options.timeout)


def remove_command(
    project_dir: Path, python: str, options: UvOptions, names: Iterable[str]
) -> UvInvocation:
    """``uv remove --no-sync``: drop declared requirements and re-lock."""
    args = ["remove", "--no-sync", *_common_args(options, python), *_index_args(options.index)]
    args += ["--", *names]
    env = _env(options, project_dir, index=True)
    return UvInvocation(tuple(args), project_dir, env, options.timeout)


#: uv's name of a format, where it is not the format's own value.
_UV_FORMATS = {ExportFormat.CYCLONEDX: "cyclonedx1.5"}


def export_command(project_dir: Path, options: UvOptions, fmt: ExportFormat) -> UvInvocation:
    """``uv export --frozen`` of the lock into another format, printed on stdout.

    Without uv's header: it quotes the command line, and with it the store's
    internal ``--cache-dir``, which means nothing where the file is used.
    """
    args = ["export", "--frozen", "--no-header", "--format", _UV_FORMATS.get(fmt, fmt.value)]
    if fmt is ExportFormat.CYCLONEDX:
        # Still a preview format of uv: without this it warns on every export.
        args += ["--preview-features", "sbom-export"]
    args += _common_args(options, None)
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir), options.timeout)


def cache_clean_command(options: UvOptions, names: Iterable[str]) -> UvInvocation:
    """``uv cache clean`` of some packages, e.g. after their cached files were found damaged."""
    args = ["cache", "clean", *_common_args(options, None), "--", *names]
    return UvInvocation(tuple(args), None, _env(options), options.timeout)


def python_list_command(options: UvOptions) -> UvInvocation:
    """``uv python list`` of installed interpreters, as JSON."""
    args = ["python", "list", "--only-installed", "--output-format", "json"]
    args += _common_args(options, None)
    return UvInvocation(tuple(args), None, _env(options), options.timeout)
