"""``uv-envs completion SHELL``: the shell's completion script, generated from the parser.

shtab writes it from the argparse parser itself, so every subcommand and flag
is in it without a list kept by hand, and the script it prints runs without
shtab (or Python) at completion time. It is an optional extra:
``pip install 'uv-envs[completion]'``.
"""

from __future__ import annotations

import argparse
from typing import Final

from .boundary import Refused

#: The shells shtab writes a script for that the README documents.
SHELLS: Final = ("bash", "zsh", "tcsh")


def add_completion_command(parser: argparse.ArgumentParser, root: argparse.ArgumentParser) -> None:
    """The options of ``uv-envs completion``; ``root`` is the parser the script completes."""
    parser.add_argument("shell", choices=SHELLS, help="the shell to print a script for")
    parser.set_defaults(completion_root=root)


def run_completion(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    try:
        import shtab  # noqa: PLC0415 - only this subcommand needs it
    except ImportError:
        msg = "uv-envs completion needs shtab: pip install 'uv-envs[completion]'"
        raise Refused(msg) from None
    root: argparse.ArgumentParser = args.completion_root
    print(shtab.complete(root, shell=args.shell))
    return 0
