"""``uv-envs export``: an env's project files or its exported lock, printed or written.

Printed, the project format is two files in one stream (each under a ``#``
header); with ``-o DIR`` each format is written as the files uv itself reads:
``pyproject.toml`` and ``uv.lock``, ``requirements.txt`` or ``pylock.toml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from uv_envs._errors import InvalidInput
from uv_envs._models import EnvKey
from uv_envs._reports import Export, ExportFormat

from .boundary import EXIT_OK

if TYPE_CHECKING:
    import argparse

    from uv_envs._manager import EnvManager


def add_export_options(parser: argparse.ArgumentParser) -> None:
    """``--format`` and ``-o``."""
    formats = [fmt.value for fmt in ExportFormat]
    parser.add_argument("--format", choices=formats, default=ExportFormat.PROJECT.value)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="write the file(s) into DIR (made if missing) instead of printing them",
    )


def _files(exported: Export | str, fmt: str) -> dict[str, str]:
    if isinstance(exported, Export):
        return {"pyproject.toml": exported.pyproject_toml, "uv.lock": exported.uv_lock}
    return {ExportFormat(fmt).file_name: exported}


def _write(folder: Path, files: dict[str, str]) -> list[Path]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
            written.append(folder / name)
    except OSError as exc:
        raise InvalidInput(f"cannot write into -o {folder}: {exc.strerror or exc}") from exc
    return written


def run_export(args: argparse.Namespace, manager: EnvManager) -> int:
    """Print the export, or with ``-o`` write it and print the paths written."""
    key = EnvKey(args.workflow_id, args.node_id, args.version_id)
    exported = manager.export(key, args.format)
    files = _files(exported, args.format)
    if args.output is not None:
        written = _write(args.output, files)
        if args.json:
            print(json.dumps({"written": [str(p) for p in written]}, indent=2))
        else:
            print("\n".join(str(p) for p in written))
        return EXIT_OK
    if args.json:
        if isinstance(exported, Export):
            document = {"pyproject_toml": exported.pyproject_toml, "uv_lock": exported.uv_lock}
        else:
            document = {"format": args.format, "text": exported}
        print(json.dumps(document, indent=2, sort_keys=True))
    elif isinstance(exported, Export):
        print("# pyproject.toml\n" + exported.pyproject_toml + "\n# uv.lock\n" + exported.uv_lock)
    else:
        print(exported.rstrip("\n"))
    return EXIT_OK
