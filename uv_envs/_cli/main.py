"""The ``uv-envs`` command line: one subcommand per operation.

Exit codes: 0 success, 1 an operation failed (uv or storage) or verify found
problems, 2 bad input, 3 no such environment (``status`` and ``delete`` too),
4 the environment is busy, 5 it exists with another spec, is not READY, or is
leased or in use; 130 interrupted, 141 stdout closed early (``| head``). The
errors are worded and mapped in :mod:`.boundary`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from uv_envs import __version__, cli_options
from uv_envs._manager import EnvManager
from uv_envs._settings import DEFAULT_MIN_CLEANUP_IDLE_HOURS
from uv_envs._uv.executor import SubprocessUvExecutor, find_uv_binary

from . import values
from .boundary import DEBUG_ENV, EXIT_FAILED, debugging, guarded
from .commands import HANDLERS, audit_copy
from .completion import add_completion_command, run_completion
from .export import add_export_options
from .progress import REPORTING, terminal_progress
from .relay import add_relay_command, run_relay
from .watch import add_watch_command, run_watch


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that can declare more options the moment it is first used.

    ``serve``'s options are the server's own (:func:`uv_envs_server._cli.add_arguments`);
    importing the server loads grpc, which every other subcommand is better off without.
    """

    def __init__(
        self,
        *args: Any,  # noqa: ANN401 - ArgumentParser's own
        late_options: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(*args, **kwargs)
        self._late_options = late_options

    def parse_known_args(  # type: ignore[override]  # typeshed overloads; one signature suffices
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._late_options is not None:
            late, self._late_options = self._late_options, None
            late(self)
        return super().parse_known_args(args, namespace)


def _add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    # Before the subcommand or after it (see uv_envs.cli_options): --json and the settings.
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    group = parser.add_argument_group("global options (before or after the subcommand)")
    group.add_argument("--json", action="store_true", help="print machine-readable JSON", **keep)
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines on stderr while uv runs (shown only on a terminal)",
        **keep,
    )
    group.add_argument(
        "--debug",
        action="store_true",
        help=f"show a traceback with an error (also: {DEBUG_ENV}=1)",
        **keep,
    )
    cli_options.add_settings_options(group, after_command=after_command)


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    try:
        from uv_envs_server import _cli as server_cli  # noqa: PLC0415 - only serve needs grpc
    except ImportError:
        parser.exit(
            EXIT_FAILED, "uv-envs serve needs the server extra: pip install 'uv-envs[server]'\n"
        )
    server_cli.add_arguments(parser, settings_options=False)
    parser.set_defaults(serve=server_cli.run)


_GLOBAL_EPILOG = (
    "The global options (--json, --root, --lock-timeout, the index options ...) go before "
    "or after the subcommand; `uv-envs --help` lists them."
)


class _Commands:
    """Declares subcommands, each with the global options after it too."""

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        after: _Parser | None = None,
        **kwargs: Any,  # noqa: ANN401 - add_subparsers' own
    ) -> None:
        if after is None:
            after = _Parser(add_help=False)
            _add_global_options(after, after_command=True)
            # Accepted after a subcommand, listed once: under `uv-envs --help`, not in each
            # subcommand's help (where they were 30 lines before its own options).
            for action in after._actions:  # noqa: SLF001 - argparse lists them nowhere else
                action.help = argparse.SUPPRESS
        self._after = after
        kwargs.setdefault("dest", "command")
        kwargs.setdefault("metavar", "COMMAND")
        self._commands = parser.add_subparsers(required=True, parser_class=_Parser, **kwargs)

    def nested(self, parser: argparse.ArgumentParser, dest: str) -> _Commands:
        """The subcommands of a subcommand (``audit copy``), with the same global options."""
        return _Commands(parser, self._after, dest=dest, metavar="ACTION")

    def add(self, name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:  # noqa: ANN401
        """A subcommand; ``kwargs`` go to ``add_parser``."""
        kwargs.setdefault("description", help_text)
        kwargs.setdefault("epilog", _GLOBAL_EPILOG)
        return self._commands.add_parser(name, help=help_text, parents=[self._after], **kwargs)

    def with_key(
        self,
        name: str,
        help_text: str,
        *,
        optional: bool = False,
        **kwargs: Any,  # noqa: ANN401
    ) -> argparse.ArgumentParser:
        """A subcommand on one env; ``optional``: the key may be left out (the whole root)."""
        parser = self.add(name, help_text, **kwargs)
        parser.add_argument("workflow_id", nargs="?" if optional else None, help="the workflow id")
        parser.add_argument("node_id", nargs="?" if optional else None, help="the node id")
        parser.add_argument(
            "version_id",
            nargs="?",
            default="",
            help="the version id; left out: the empty version, printed as @ (WORKFLOW/NODE/@)",
        )
        return parser


def _packages(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument(
        "-p",
        "--package",
        dest="packages",
        action="append",
        default=[],
        metavar="SPEC",
        help=help_text,
    )


def _requirements(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--requirements", type=Path, help="a requirements.txt file")


def _add_env_commands(commands: _Commands) -> None:
    for name, help_text in (
        ("create", "create an environment (fails if it exists with another spec)"),
        ("ensure", "make an environment match a spec; safe to retry"),
    ):
        provision = commands.with_key(name, help_text)
        _packages(provision, "a PEP 508 requirement (repeatable)")
        _requirements(provision)
        provision.add_argument("--python", help="Python version, e.g. 3.12")
        provision.add_argument(
            "--refresh", action="store_true", help="resolve again even if the spec's lock is stored"
        )
    commands.with_key("status", "show an environment's status")
    add = commands.with_key("add", "add dependencies")
    _packages(add, "a PEP 508 requirement to add (repeatable)")
    _requirements(add)
    _packages(
        commands.with_key("update", "upgrade locked versions"),
        "a package to upgrade (repeatable; none: all), optionally with a new specifier",
    )
    _packages(
        commands.with_key("remove", "remove dependencies"), "a package to remove (repeatable)"
    )
    commands.with_key("deps", "list declared dependencies and locked versions")
    commands.with_key("sync", "rebuild the venv exactly from uv.lock")
    add_export_options(
        commands.with_key("export", "print pyproject.toml and uv.lock, or an exported lock")
    )
    delete = commands.with_key("delete", "delete an environment")
    delete.add_argument("--force", action="store_true", help="delete even if leased or in use")
    verify = commands.with_key(
        "verify",
        "check the venv against its lock, file by file",
        optional=True,
        description="check an env's venv (or, with --all, every env's, each shared venv once)",
    )
    verify.add_argument("--all", action="store_true", help="check every env on the root")
    verify.add_argument("--repair", action="store_true", help="then rebuild what is damaged")
    commands.with_key(
        "repair",
        "rebuild damaged venvs: of one env, or of the whole root",
        optional=True,
        description="check and rebuild damaged venvs; a damaged shared venv is rebuilt once "
        "for every env that links it",
    )


def _add_root_commands(commands: _Commands) -> None:
    listing = commands.add("list", "list environments")
    listing.add_argument("--workflow", metavar="W", help="only envs of this workflow")
    listing.add_argument("--node", metavar="N", help="only envs of this node")
    cleanup = commands.add("cleanup", "delete environments idle longer than N hours")
    cleanup.add_argument("--idle-hours", type=values.hours, help="delete envs idle this long")
    cleanup.add_argument(
        "--max-bytes",
        type=values.size,
        metavar="SIZE",
        help="then delete LRU envs while the root is over this (bytes, or 500M, 20G ...)",
    )
    cleanup.add_argument(
        "--min-idle-hours",
        type=values.hours,
        default=DEFAULT_MIN_CLEANUP_IDLE_HOURS,
        help="never delete envs used more recently than this, whatever the limits say "
        f"(default: {DEFAULT_MIN_CLEANUP_IDLE_HOURS:g}; 0: no floor)",
    )
    cleanup.add_argument(
        "--dry-run",
        action="store_true",
        help="delete nothing: list what would go, why, and the bytes it would free",
    )
    ops = commands.add("ops", "show the audit trail")
    ops.add_argument("--workflow", metavar="W", help="only records of this workflow")
    ops.add_argument("--node", metavar="N", help="only records of this node")
    ops.add_argument(
        "--status",
        type=values.status,
        choices=values.STATUSES,
        help="only records with this status (any case)",
    )
    ops.add_argument("--limit", type=int, default=20, metavar="N", help="at most N records (20)")
    ops.add_argument("--offset", type=int, default=0, metavar="N", help="skip the N newest first")
    ops.add_argument(
        "--delete", action="store_true", help="delete the records of --workflow [--node]"
    )
    ops.add_argument("--from-host", help="only records written on this host")
    ops.add_argument("--from-root", help="only records written by this root (a path)")
    audit = commands.nested(commands.add("audit", "manage the audit store"), "audit_command")
    copy = audit.add(
        "copy",
        "copy this root's SQLite audit trail into a PostgreSQL database (rerunnable)",
        description="Copy <root>/audit.sqlite3 into the database at --to; records written "
        "before host and root were recorded get this host and root. Rerunning copies only "
        "new records. Give the password by PGPASSWORD, ~/.pgpass or --audit-password-file.",
    )
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql:// URL")
    commands.add("recover", "repair what crashed processes left behind")
    commands.add("pythons", "list the Python interpreters uv-envs can use")
    commands.add(
        "serve", "run the gRPC server (needs uv-envs[server])", late_options=_add_server_options
    )
    add_watch_command(commands.add("watch", "follow a server's events live (--json: JSON Lines)"))
    add_relay_command(
        commands.add(
            "relay",
            "serve the root's locked files to other machines: each fetched from the index once",
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="uv-envs", description="Provision isolated Python environments with uv.")
    parser.add_argument("--version", action="version", version=f"uv-envs {__version__}")
    _add_global_options(parser)
    commands = _Commands(parser)
    _add_env_commands(commands)
    _add_root_commands(commands)
    add_completion_command(
        commands.add("completion", "print a shell completion script (bash, zsh, tcsh)"), parser
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        serve: Callable[[argparse.Namespace], int] = args.serve
        return serve(args)
    if args.command == "watch":  # a server's events: no root of its own
        return run_watch(args)
    if args.command == "completion":  # a script from the parser: no root either
        return run_completion(args)
    settings = cli_options.settings_from_options(args)
    if args.command == "audit":  # needs no manager: it must not open the audit store itself
        return audit_copy(args, settings)
    if args.command == "relay":  # serves files, runs no operation on envs
        return run_relay(args, settings)
    # Progress from the event stream, on a terminal only: a pipe or --json gets the answer alone.
    show = args.command in REPORTING and not (args.json or args.quiet) and sys.stderr.isatty()
    executor = SubprocessUvExecutor(find_uv_binary(settings.uv_binary))
    manager = EnvManager(settings, executor=executor)
    try:
        with terminal_progress(manager, sys.stderr if show else None):
            return HANDLERS[args.command](args, manager)
    finally:
        manager.close()


#: The subcommands that take packages: a bare word after the key is a package without -p.
_TAKE_PACKAGES = frozenset({"create", "ensure", "add", "update", "remove"})


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra:
        hint = ""
        if args.command in _TAKE_PACKAGES and not any(word.startswith("-") for word in extra):
            hint = "; give each package with -p: " + " ".join(f"-p {word}" for word in extra)
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (the table in the module's documentation)."""
    args = _parse(_parser(), argv)
    return guarded(
        lambda: _run(args),
        as_json=bool(args.json),
        debug=debugging(bool(getattr(args, "debug", False))),
        command=args.command,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
