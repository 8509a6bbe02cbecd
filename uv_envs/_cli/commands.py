"""What each ``uv-envs`` subcommand does: one handler per subcommand, in one table.

A handler gets the parsed options and the manager, prints its answer (JSON
with ``--json``) and returns the exit code; errors propagate to
:func:`uv_envs._cli.main.main`, which maps them to exit codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from uv_envs._audit.copy import copy_audit
from uv_envs._audit.open import open_audit_log
from uv_envs._audit.postgres import PostgresAuditLog
from uv_envs._audit.sqlite import SqliteAuditLog
from uv_envs._errors import InvalidInput
from uv_envs._manager import EnvManager
from uv_envs._models import DeleteStatus, Environment, EnvKey, EnvStatus, converter
from uv_envs._settings import Settings
from uv_envs._store.layout import Layout
from uv_envs._variants import environment_dict

from . import values
from .boundary import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
)
from .cleanup import run_cleanup
from .export import run_export
from .values import print_json

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUSY",
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "HANDLERS",
    "audit_copy",
    "print_json",
]

Handler = Callable[[argparse.Namespace, EnvManager], int]


def _key(args: argparse.Namespace) -> EnvKey:
    return EnvKey(args.workflow_id, args.node_id, args.version_id)


def _emit(args: argparse.Namespace, as_json: object, as_text: str) -> None:
    if args.json:
        print_json(as_json)
    else:
        print(as_text)


def _env_json(environment: Environment) -> dict[str, Any]:
    return {**environment_dict(environment), "metadata": converter.unstructure(environment)}


def _read_requirements(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def _provision(args: argparse.Namespace, manager: EnvManager) -> int:
    operation = manager.create if args.command == "create" else manager.ensure
    environment = operation(
        _key(args),
        packages=args.packages,
        requirements_text=_read_requirements(args.requirements),
        python=args.python,
        refresh=args.refresh,
    )
    _emit(args, _env_json(environment), str(environment.python_path))
    return EXIT_OK


def _status(args: argparse.Namespace, manager: EnvManager) -> int:
    report = manager.status(_key(args))
    # The answer is printed either way; the exit code says there is no such env (README).
    code = EXIT_NOT_FOUND if report.status is EnvStatus.NOT_FOUND else EXIT_OK
    if args.json:
        print_json({**converter.unstructure(report), "status": report.status.value})
        return code
    print(f"{values.shown(report.key)}: {report.status.value}")
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
        print(f"  digest: {report.environment.digest or '(not computed yet: run verify)'}")
    return code


def _change(args: argparse.Namespace, manager: EnvManager) -> int:
    key = _key(args)
    before = dict(manager.dependencies(key).locked)
    if args.command == "add":
        result = manager.add(
            key, args.packages, requirements_text=_read_requirements(args.requirements)
        )
    elif args.command == "update":
        result = manager.update(key, args.packages)
    else:
        result = manager.remove(key, args.packages)
    after = dict(manager.dependencies(key).locked)
    # What the change did to the lock, one line a package: the user's question after it.
    changes = [
        f"  {name}: {before.get(name, '-')} -> {after.get(name, '-')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ] or ["  no locked version changed"]
    generation = result.environment.generation
    headline = (
        f"generation {generation}"
        if result.changed
        else (f"nothing changed, still generation {generation}")
    )
    text = f"{values.shown(key)}: {headline}\n" + "\n".join(changes)
    _emit(args, {**_env_json(result.environment), "changed": result.changed}, text)
    return EXIT_OK


def _deps(args: argparse.Namespace, manager: EnvManager) -> int:
    dependencies = manager.dependencies(_key(args))
    if args.json:
        print_json({"declared": list(dependencies.declared), "locked": dict(dependencies.locked)})
        return EXIT_OK
    for requirement in dependencies.declared:
        print(requirement)
    print("locked:")
    for name, version in sorted(dependencies.locked.items()):
        print(f"  {name}=={version}")
    return EXIT_OK


def _sync(args: argparse.Namespace, manager: EnvManager) -> int:
    result = manager.sync(_key(args))
    _emit(args, _env_json(result.environment), f"{values.shown(result.environment.key)}: synced")
    return EXIT_OK


def _delete(args: argparse.Namespace, manager: EnvManager) -> int:
    # Refused while in use, as before: this process ends at once, so a deferred delete
    # would wait for the next manager on the root to finish it.
    deleted = manager.delete(_key(args), force=args.force, if_unused=True)
    _emit(args, {"key": str(deleted.key), "status": deleted.status}, deleted.status)
    return EXIT_NOT_FOUND if deleted.status is DeleteStatus.NOT_FOUND else EXIT_OK


def _list(args: argparse.Namespace, manager: EnvManager) -> int:
    environments = manager.list_environments(args.workflow, args.node)
    if args.json:
        print_json([_env_json(e) for e in environments])
        return EXIT_OK
    for environment in environments:
        print(
            f"{values.shown(environment.key)}\t{environment.status.value}\t{environment.python_version}"
            f"\t{environment.env_path}" + (f"\t{environment.error}" if environment.error else "")
        )
    return EXIT_OK


def _ops(args: argparse.Namespace, manager: EnvManager) -> int:
    if args.delete:
        if not args.workflow:
            raise InvalidInput("ops --delete needs --workflow")
        removed = manager.delete_operations(args.workflow, args.node)
        _emit(args, converter.unstructure(removed), f"deleted {removed.deleted_count} records")
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
        print_json(converter.unstructure(page))
        return EXIT_OK
    for record in page.items:
        key = EnvKey(record.workflow_id, record.node_id, record.version_id)
        print(
            f"{record.id}\t{record.operation}\t{record.status}\t{values.shown(key)}"
            f"\t{record.duration_ms} ms\t{record.host or '-'}"
            + (f"\t{record.error}" if record.error else "")
        )
    print(f"({len(page.items)} of {page.total})")
    return EXIT_OK


def _verify(args: argparse.Namespace, manager: EnvManager) -> int:
    if args.all or args.repair:
        return _check_root(args, manager)
    if args.workflow_id is None or args.node_id is None:
        raise InvalidInput("verify needs WORKFLOW NODE [VERSION], or --all")
    verified = manager.verify(_key(args))
    _emit(
        args,
        converter.unstructure(verified) | {"ok": verified.ok},
        "ok" if verified.ok else "\n".join(verified.problems),
    )
    return EXIT_OK if verified.ok else EXIT_FAILED


def _check_root(args: argparse.Namespace, manager: EnvManager) -> int:
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
        print_json(
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
            print(f"{values.shown(repaired)}: repaired")
        for name, error in sorted(report.failed.items()):
            print(f"{name}: repair failed: {error}")
        print(
            f"{len(report.checked)} envs checked, {report.checked_files} files hashed: "
            + ("ok" if report.ok else "problems found")
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def _recover(args: argparse.Namespace, manager: EnvManager) -> int:
    repaired = manager.recover()
    _emit(
        args,
        [str(k) for k in repaired],
        "\n".join(values.shown(k) for k in repaired) or "nothing to recover",
    )
    return EXIT_OK


def _pythons(args: argparse.Namespace, manager: EnvManager) -> int:
    interpreters = manager.pythons()
    if args.json:
        print_json([{"version": i.version, "path": str(i.path)} for i in interpreters])
        return EXIT_OK
    for interpreter in interpreters:
        print(f"{interpreter.version}\t{interpreter.path}")
    return EXIT_OK


def audit_copy(args: argparse.Namespace, settings: Settings) -> int:
    """``audit copy --to URL``: the root's SQLite trail into PostgreSQL; no manager needed."""
    target = open_audit_log(attrs.evolve(settings, audit_url=args.to), settings.root)
    if not isinstance(target, PostgresAuditLog):
        raise InvalidInput("audit copy --to needs a postgresql:// URL")
    source = SqliteAuditLog(Layout(settings.root).audit_db)
    try:
        report = copy_audit(source, target, host=settings.audit_host, root=str(settings.root))
    finally:
        source.close()
        target.close()
    _emit(
        args,
        {"read": report.read, "copied": report.copied},
        f"copied {report.copied} of {report.read} records to {target.url}",
    )
    return EXIT_OK


#: One handler per subcommand but serve, which runs the server's own CLI.
HANDLERS: dict[str, Handler] = {
    "create": _provision,
    "ensure": _provision,
    "status": _status,
    "add": _change,
    "update": _change,
    "remove": _change,
    "deps": _deps,
    "sync": _sync,
    "export": run_export,
    "delete": _delete,
    "list": _list,
    "cleanup": run_cleanup,
    "ops": _ops,
    "verify": _verify,
    "repair": _check_root,
    "recover": _recover,
    "pythons": _pythons,
}
