"""The ``uv-envs`` command line: one subcommand per operation.

Exit codes: 0 success, 1 an operation failed (uv or storage) or verify found
problems, 2 bad input, 3 no such environment, 4 the environment is busy, 5 it
exists with another spec, is not READY, or is leased.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._audit import SqliteAuditLog
from ._audit_cli import add_audit_arguments, audit_argv, audit_overrides
from ._audit_copy import copy_audit
from ._audit_open import open_audit_log
from ._audit_postgres import PostgresAuditLog
from ._errors import (
    EnvironmentAlreadyExists,
    EnvironmentBusy,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    InvalidInput,
    UvEnvsError,
    UvError,
)
from ._layout import Layout
from ._manager import EnvManager
from ._models import Environment, EnvKey, IndexSettings, converter
from ._provider import environment_dict
from ._settings import Settings
from ._uv import SubprocessUvExecutor, find_uv_binary

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_BUSY = 4
EXIT_CONFLICT = 5


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one block per subcommand
    parser = argparse.ArgumentParser(
        prog="uv-envs", description="Provision isolated Python environments with uv."
    )
    parser.add_argument(
        "--root", type=Path, help="root directory (default: $UV_ENVS_ROOT or the user data dir)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--index-url", help="the package index to resolve from")
    parser.add_argument(
        "--extra-index-url", action="append", default=[], help="another index (repeatable)"
    )
    parser.add_argument(
        "--find-links", action="append", default=[], help="a folder or page of wheels (repeatable)"
    )
    parser.add_argument("--no-index", action="store_true", help="use only --find-links")
    parser.add_argument("--offline", action="store_true", help="never touch the network")
    parser.add_argument("--lock-timeout", type=float, help="seconds to wait for a busy env")
    add_audit_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_key(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("workflow_id")
        command.add_argument("node_id")
        command.add_argument("version_id", nargs="?", default="")
        return command

    for name, help_text in (
        ("create", "create an environment (fails if it exists with another spec)"),
        ("ensure", "make an environment match a spec; safe to retry"),
    ):
        command = with_key(name, help_text)
        command.add_argument(
            "-p",
            "--package",
            dest="packages",
            action="append",
            default=[],
            metavar="SPEC",
            help="a PEP 508 requirement (repeatable)",
        )
        command.add_argument("-r", "--requirements", type=Path, help="a requirements.txt file")
        command.add_argument("--python", help="Python version, e.g. 3.12")
        command.add_argument(
            "--refresh", action="store_true", help="resolve again even if the spec's lock is stored"
        )
    with_key("status", "show an environment's status")
    for name, help_text in (
        ("add", "add dependencies"),
        ("update", "upgrade locked versions"),
        ("remove", "remove dependencies"),
    ):
        command = with_key(name, help_text)
        command.add_argument(
            "-p", "--package", dest="packages", action="append", default=[], metavar="SPEC"
        )
        if name == "add":
            command.add_argument("-r", "--requirements", type=Path, help="a requirements.txt file")
    with_key("deps", "list declared dependencies and locked versions")
    with_key("sync", "rebuild the venv exactly from uv.lock")
    command = with_key("export", "print pyproject.toml and uv.lock, or an exported lock")
    command.add_argument(
        "--format", choices=["project", "requirements.txt", "pylock.toml"], default="project"
    )
    command = with_key("delete", "delete an environment")
    command.add_argument("--force", action="store_true", help="delete even if leased")
    command = commands.add_parser(
        "verify",
        help="check the venv against its lock, file by file",
        description="check an env's venv (or, with --all, every env's, each shared venv once)",
    )
    command.add_argument("workflow_id", nargs="?")
    command.add_argument("node_id", nargs="?")
    command.add_argument("version_id", nargs="?", default="")
    command.add_argument("--all", action="store_true", help="check every env on the root")
    command.add_argument("--repair", action="store_true", help="then rebuild what is damaged")
    command = commands.add_parser(
        "repair",
        help="rebuild damaged venvs: of one env, or of the whole root",
        description="check and rebuild damaged venvs; a damaged shared venv is rebuilt once "
        "for every env that links it",
    )
    command.add_argument("workflow_id", nargs="?")
    command.add_argument("node_id", nargs="?")
    command.add_argument("version_id", nargs="?", default="")
    command = commands.add_parser("list", help="list environments")
    command.add_argument("--workflow")
    command.add_argument("--node")
    command = commands.add_parser("cleanup", help="delete environments idle longer than N hours")
    command.add_argument("--idle-hours", type=float, help="delete envs idle this long")
    command.add_argument("--max-bytes", type=int, help="then delete LRU envs while over this")
    command = commands.add_parser("ops", help="show the audit trail")
    command.add_argument("--workflow")
    command.add_argument("--node")
    command.add_argument("--status")
    command.add_argument("--limit", type=int, default=20)
    command.add_argument("--offset", type=int, default=0)
    command.add_argument(
        "--delete", action="store_true", help="delete the records of --workflow [--node]"
    )
    command.add_argument("--from-host", help="only records written on this host")
    command.add_argument("--from-root", help="only records written by this root (a path)")
    command = commands.add_parser("audit", help="manage the audit store")
    audit_commands = command.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    command = audit_commands.add_parser(
        "copy",
        help="copy this root's SQLite audit trail into a PostgreSQL database (rerunnable)",
        description="Copy <root>/audit.sqlite3 into the database at --to; records written "
        "before host and root were recorded get this host and root. Rerunning copies only "
        "new records. Give the password by PGPASSWORD, ~/.pgpass or --audit-password-file.",
    )
    command.add_argument("--to", required=True, metavar="URL", help="postgresql:// URL")
    commands.add_parser("recover", help="repair what crashed processes left behind")
    commands.add_parser("pythons", help="list the Python interpreters uv-envs can use")
    command = commands.add_parser("serve", help="run the gRPC server (needs uv-envs[server])")
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=50051)
    command.add_argument("--workers", type=int, default=16)
    command.add_argument("--grace", type=float, default=30.0)
    command.add_argument("--allow-remote", action="store_true")
    command.add_argument("--tls-cert")
    command.add_argument("--tls-key")
    command.add_argument("--token-file")
    command.add_argument("--max-message-bytes", type=int)
    command.add_argument("--max-packages", type=int)
    command.add_argument("--min-cleanup-idle-hours", type=float)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.root is not None:
        overrides["root"] = args.root
    if args.lock_timeout is not None:
        overrides["lock_timeout"] = args.lock_timeout
    overrides.update(audit_overrides(args))
    settings = Settings.from_env(**overrides)
    if args.index_url or args.extra_index_url or args.find_links or args.no_index or args.offline:
        index = IndexSettings(
            index_url=args.index_url or settings.index.index_url,
            extra_index_urls=tuple(args.extra_index_url) or settings.index.extra_index_urls,
            find_links=tuple(
                str(Path(p).absolute()) if "://" not in p else p for p in args.find_links
            )
            or settings.index.find_links,
            no_index=args.no_index or settings.index.no_index,
            offline=args.offline or settings.index.offline,
        )
        settings = Settings.from_env(**{**overrides, "index": index})
    return settings


def _key(args: argparse.Namespace) -> EnvKey:
    return EnvKey(args.workflow_id, args.node_id, args.version_id)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _env_json(environment: Environment) -> dict[str, Any]:
    return {**environment_dict(environment), "metadata": converter.unstructure(environment)}


def _read_requirements(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def _run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912, PLR0915 - a dispatch table in prose
    if args.command == "serve":
        try:
            from uv_envs_server._cli import main as serve  # noqa: PLC0415
        except ImportError:
            print(
                "uv-envs serve needs the server extra: pip install 'uv-envs[server]'",
                file=sys.stderr,
            )
            return EXIT_FAILED
        argv = ["--host", args.host, "--port", str(args.port)]
        argv += ["--workers", str(args.workers), "--grace", str(args.grace)]
        if args.root is not None:
            argv += ["--root", str(args.root)]
        if args.index_url:
            argv += ["--index-url", args.index_url]
        for url in args.extra_index_url:
            argv += ["--extra-index-url", url]
        for link in args.find_links:
            argv += ["--find-links", link]
        if args.no_index:
            argv.append("--no-index")
        if args.offline:
            argv.append("--offline")
        if args.lock_timeout is not None:
            argv += ["--lock-timeout", str(args.lock_timeout)]
        if args.allow_remote:
            argv.append("--allow-remote")
        for flag, value in (
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
            ("--token-file", args.token_file),
            ("--max-message-bytes", args.max_message_bytes),
            ("--max-packages", args.max_packages),
            ("--min-cleanup-idle-hours", args.min_cleanup_idle_hours),
        ):
            if value is not None:
                argv += [flag, str(value)]
        return serve(argv + audit_argv(args))
    settings = _settings(args)
    if args.command == "audit":
        return _audit_command(args, settings)
    progress = sys.stderr if (sys.stderr.isatty() and not args.json) else None
    executor = SubprocessUvExecutor(find_uv_binary(settings.uv_binary), progress=progress)
    manager = EnvManager(settings, executor=executor)
    out: Callable[[object], None] = _print_json if args.json else print
    if args.command in {"create", "ensure"}:
        operation = manager.create if args.command == "create" else manager.ensure
        environment = operation(
            _key(args),
            packages=args.packages,
            requirements_text=_read_requirements(args.requirements),
            python=args.python,
            refresh=args.refresh,
        )
        out(_env_json(environment) if args.json else str(environment.python_path))
    elif args.command == "status":
        report = manager.status(_key(args))
        if args.json:
            _print_json({**converter.unstructure(report), "status": report.status.value})
        else:
            print(f"{report.key}: {report.status.value}")
            if report.error:
                print(f"  error: {report.error}")
            print(f"  env_path: {report.env_path}")
            print(
                f"  pyproject.toml: {report.has_pyproject}  uv.lock: {report.has_uv_lock}"
                f"  .venv: {report.has_venv}"
            )
            if report.environment is not None:
                print(
                    f"  python: {report.environment.python_version}"
                    f"  generation: {report.environment.generation}"
                )
    elif args.command in {"add", "update", "remove"}:
        key = _key(args)
        if args.command == "add":
            result = manager.add(
                key, args.packages, requirements_text=_read_requirements(args.requirements)
            )
        elif args.command == "update":
            result = manager.update(key, args.packages)
        else:
            result = manager.remove(key, args.packages)
        out(
            _env_json(result.environment)
            if args.json
            else f"{key}: generation {result.environment.generation}"
        )
    elif args.command == "deps":
        dependencies = manager.dependencies(_key(args))
        if args.json:
            _print_json(
                {"declared": list(dependencies.declared), "locked": dict(dependencies.locked)}
            )
        else:
            for requirement in dependencies.declared:
                print(requirement)
            print("locked:")
            for name, version in sorted(dependencies.locked.items()):
                print(f"  {name}=={version}")
    elif args.command == "sync":
        result = manager.sync(_key(args))
        out(_env_json(result.environment) if args.json else f"{result.environment.key}: synced")
    elif args.command == "export":
        key = _key(args)
        if args.format == "project":
            exported = manager.export(key)
            if args.json:
                _print_json(
                    {"pyproject_toml": exported.pyproject_toml, "uv_lock": exported.uv_lock}
                )
            else:
                print(
                    "# pyproject.toml\n"
                    + exported.pyproject_toml
                    + "\n# uv.lock\n"
                    + exported.uv_lock
                )
        else:
            text = manager.export_as(key, args.format)
            out({"format": args.format, "text": text} if args.json else text.rstrip("\n"))
    elif args.command == "delete":
        deleted = manager.delete(_key(args), force=args.force)
        out({"key": str(deleted.key), "status": deleted.status} if args.json else deleted.status)
    elif args.command == "list":
        environments = manager.list_environments(args.workflow, args.node)
        if args.json:
            _print_json([_env_json(e) for e in environments])
        else:
            for environment in environments:
                print(
                    f"{environment.key}\t{environment.status.value}\t{environment.python_version}\t{environment.env_path}"
                    + (f"\t{environment.error}" if environment.error else "")
                )
    elif args.command == "cleanup":
        idle = None if args.idle_hours is None else args.idle_hours * 3600
        cleaned = manager.cleanup(idle, max_bytes=args.max_bytes)
        if args.json:
            _print_json(converter.unstructure(cleaned))
        else:
            for key in cleaned.deleted:
                print(f"deleted {key}")
            for key in cleaned.skipped_leased:
                print(f"leased, skipped {key}")
            for key in cleaned.skipped_busy:
                print(f"busy, skipped {key}")
    elif args.command == "ops":
        if args.delete:
            if not args.workflow:
                raise InvalidInput("ops --delete needs --workflow")
            removed = manager.delete_operations(args.workflow, args.node)
            out(
                converter.unstructure(removed)
                if args.json
                else f"deleted {removed.deleted_count} records"
            )
            return EXIT_OK
        page = manager.operations(
            args.workflow,
            args.node,
            args.status,
            args.limit,
            args.offset,
            host=args.from_host,
            root=str(Path(args.from_root).absolute()) if args.from_root else None,
        )
        if args.json:
            _print_json(converter.unstructure(page))
        else:
            for record in page.items:
                key = EnvKey(record.workflow_id, record.node_id, record.version_id)
                print(
                    f"{record.id}\t{record.operation}\t{record.status}\t{key}"
                    f"\t{record.duration_ms} ms\t{record.host or '-'}"
                    + (f"\t{record.error}" if record.error else "")
                )
            print(f"({len(page.items)} of {page.total})")
    elif args.command == "repair" or (args.command == "verify" and (args.all or args.repair)):
        return _check_root(manager, args)
    elif args.command == "verify":
        if args.workflow_id is None or args.node_id is None:
            raise InvalidInput("verify needs WORKFLOW NODE [VERSION], or --all")
        verified = manager.verify(_key(args))
        if args.json:
            _print_json(converter.unstructure(verified) | {"ok": verified.ok})
        else:
            print("ok" if verified.ok else "\n".join(verified.problems))
        return EXIT_OK if verified.ok else EXIT_FAILED
    elif args.command == "recover":
        repaired = manager.recover()
        out(
            [str(k) for k in repaired]
            if args.json
            else "\n".join(str(k) for k in repaired) or "nothing to recover"
        )
    elif args.command == "pythons":
        interpreters = manager.pythons()
        if args.json:
            _print_json([{"version": i.version, "path": str(i.path)} for i in interpreters])
        else:
            for interpreter in interpreters:
                print(f"{interpreter.version}\t{interpreter.path}")
    return EXIT_OK


def _check_root(manager: EnvManager, args: argparse.Namespace) -> int:
    """``verify --all``, ``verify --repair``, ``repair``: exit 0 when nothing is left broken."""
    key = None
    if args.workflow_id is not None:
        if args.node_id is None or (args.command == "verify" and args.all):
            raise InvalidInput(f"{args.command} takes WORKFLOW NODE [VERSION] or --all, not both")
        key = _key(args)
    elif args.command == "verify" and not args.all:
        raise InvalidInput("verify --repair needs WORKFLOW NODE [VERSION], or --all")
    repairing = args.command == "repair" or args.repair
    report = manager.repair(key) if repairing else manager.verify_all()
    if args.json:
        _print_json(
            {
                "ok": report.ok,
                "checked": [str(k) for k in report.checked],
                "problems": {k: list(v) for k, v in report.problems.items()},
                "unreadable": dict(report.unreadable),
                "damaged_entries": list(report.damaged_entries),
                "repaired": [str(k) for k in report.repaired],
                "failed": dict(report.failed),
                "checked_files": report.checked_files,
            }
        )
    else:
        for name, problems in sorted(report.problems.items()):
            print(f"{name}: DAMAGED: " + "; ".join(problems[:5]))
        for name, reason in sorted(report.unreadable.items()):
            print(f"{name}: UNREADABLE: {reason} (delete it to free the key)")
        for repaired in report.repaired:
            print(f"{repaired}: repaired")
        for name, error in sorted(report.failed.items()):
            print(f"{name}: repair failed: {error}")
        print(
            f"{len(report.checked)} envs checked, {report.checked_files} files hashed: "
            + ("ok" if report.ok else "problems found")
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def _audit_command(args: argparse.Namespace, settings: Settings) -> int:
    target = open_audit_log(attrs.evolve(settings, audit_url=args.to), settings.root)
    if not isinstance(target, PostgresAuditLog):
        raise InvalidInput("audit copy --to needs a postgresql:// URL")
    source = SqliteAuditLog(Layout(settings.root).audit_db)
    try:
        report = copy_audit(source, target, host=settings.audit_host, root=str(settings.root))
    finally:
        source.close()
        target.close()
    if args.json:
        _print_json({"read": report.read, "copied": report.copied})
    else:
        print(f"copied {report.copied} of {report.read} records to {target.url}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = _parser().parse_args(argv)
    error: UvEnvsError
    try:
        return _run(args)
    except InvalidInput as exc:
        code, error = EXIT_BAD_INPUT, exc
    except EnvironmentNotFound as exc:
        code, error = EXIT_NOT_FOUND, exc
    except EnvironmentBusy as exc:
        code, error = EXIT_BUSY, exc
    except (EnvironmentAlreadyExists, EnvironmentNotReady, EnvironmentInUse) as exc:
        code, error = EXIT_CONFLICT, exc
    except UvError as exc:
        code, error = EXIT_FAILED, exc
    except UvEnvsError as exc:
        code, error = EXIT_FAILED, exc
    if args.json:
        _print_json({"error": type(error).__name__, "message": str(error)})
    print(f"uv-envs: error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
