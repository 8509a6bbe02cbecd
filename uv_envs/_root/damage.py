"""Checking a built venv against its lock, file by file."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from packaging.utils import canonicalize_name


def check_venv(
    venv: Path, python: Path, locked: Mapping[str, str]
) -> tuple[list[str], int, list[str]]:
    """Problems found in ``venv`` (empty when healthy), files hashed, and damaged packages."""
    problems: list[str] = []
    try:
        completed = subprocess.run(
            [str(python), "-I", "-c", "import sys"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if completed.returncode != 0:
            problems.append(f"the interpreter does not start: {completed.stderr.strip()[-200:]}")
    except (OSError, subprocess.SubprocessError) as exc:
        problems.append(f"the interpreter does not start: {exc}")
    sites = sorted(venv.glob("lib/python*/site-packages"))
    if not sites:
        return [*problems, "the venv has no site-packages"], 0, []
    site = sites[0]
    installed: dict[str, tuple[str, Path]] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        installed[str(canonicalize_name(name))] = (version, info)
    for name, version in sorted(locked.items()):
        found = installed.get(name)
        if found is None:
            problems.append(f"{name} {version} is locked but not installed")
        elif found[0] != version:
            problems.append(f"{name} is installed at {found[0]}, locked at {version}")
    problems += [
        f"{name} is installed but not locked" for name in sorted(set(installed) - set(locked))
    ]
    checked = 0
    damaged: list[str] = []
    for name, (_, info) in sorted(installed.items()):
        file_problems, file_count = _check_record(site, info / "RECORD")
        problems += file_problems
        checked += file_count
        if file_problems:
            damaged.append(name)
    return problems, checked, damaged


def _check_record(site: Path, record: Path) -> tuple[list[str], int]:
    try:
        with record.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError:
        return [f"{record.parent.name} has no RECORD"], 0
    problems: list[str] = []
    checked = 0
    for row in rows:
        if len(row) < 2 or not row[1].startswith("sha256="):  # noqa: PLR2004 - path, hash[, size]
            continue
        path = Path(os.path.normpath(site / row[0]))
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"{row[0]} is missing")
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        checked += 1
        if f"sha256={digest}" != row[1]:
            problems.append(f"{row[0]} does not match its RECORD hash")
    return problems, checked
