"""The audit-store options both command lines take (``uv-envs`` and ``uv-envs-server``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--audit-url`` and ``--audit-password-file``; neither help text shows a value."""
    group = parser.add_argument_group("audit store (default: $UV_ENVS_AUDIT_URL, else SQLite)")
    group.add_argument(
        "--audit-url",
        metavar="URL",
        help="keep the audit trail in this PostgreSQL database (postgresql://user@host/db); "
        "put no password in it: use PGPASSWORD, ~/.pgpass or --audit-password-file",
    )
    group.add_argument(
        "--audit-password-file",
        type=Path,
        metavar="PATH",
        help="a file whose first line is the audit database's password",
    )


def audit_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ``Settings`` overrides the audit options ask for."""
    overrides: dict[str, object] = {}
    if args.audit_url:
        overrides["audit_url"] = args.audit_url
    if args.audit_password_file is not None:
        overrides["audit_password_file"] = args.audit_password_file
    return overrides


def audit_argv(args: argparse.Namespace) -> list[str]:
    """The audit options again, to hand on to another command line."""
    argv: list[str] = []
    if args.audit_url:
        argv += ["--audit-url", args.audit_url]
    if args.audit_password_file is not None:
        argv += ["--audit-password-file", str(args.audit_password_file)]
    return argv
