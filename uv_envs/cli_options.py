"""The command-line options every uv-envs entry point shares, and the settings they make.

``uv-envs``, ``uv-envs-server`` and ``uv-envs serve`` take the same settings
options: ``--root``, ``--lock-timeout``, the package index options
(``--index-url``, ``--extra-index-url``, ``--find-links``, ``--no-index``,
``--offline``) and the audit store's (``--audit-url``,
``--audit-password-file``). :func:`add_settings_options` declares them on a
parser; :func:`settings_from_options` turns what was parsed into
:class:`~uv_envs.Settings`, where options left out fall back to the
``UV_ENVS_*`` variables.

Options that may stand before or after a subcommand, as uv's global options
do, are declared twice: on the main parser as usual, and on each
subcommand's parser with ``after_command=True``::

    parser = argparse.ArgumentParser(prog="tool")
    add_settings_options(parser)
    after = argparse.ArgumentParser(add_help=False)
    add_settings_options(after, after_command=True)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", parents=[after])
    settings = settings_from_options(parser.parse_args())

The copies after the subcommand default to ``argparse.SUPPRESS``, so a
subcommand that does not repeat an option keeps the value given before it,
and one that does overrides it. A repeatable option given on both sides
keeps the values from both, those before the subcommand first.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from ._models import IndexSettings
from ._settings import Settings

__all__ = ["add_settings_options", "settings_from_options"]

#: Repeatable options: their copies after a subcommand collect under this prefix.
_AFTER: Final = "after_command_"


class _Options(Protocol):
    # An ArgumentParser, or an argument group of one.
    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...  # noqa: ANN401


def add_settings_options(parser: _Options, *, after_command: bool = False) -> None:
    """Declare ``--root``, ``--lock-timeout``, the index, ``--ray`` and the audit options.

    Args:
        parser: a parser, or an argument group of one.
        after_command: declare the copies for a subcommand's parser (see the
            module's documentation): they leave unset options alone instead
            of writing their defaults over the main parser's values.

    """
    # argparse's own defaults (None, False) before the subcommand; none at all after it.
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}

    def repeated(dest: str) -> str:
        # Their own dest after the subcommand, so neither side's values replace the other's.
        return f"{_AFTER}{dest}" if after_command else dest

    parser.add_argument(
        "--root",
        type=Path,
        help="environments root (default: $UV_ENVS_ROOT, else the user data directory)",
        **keep,
    )
    parser.add_argument(
        "--lock-timeout", type=float, help="seconds to wait for a busy environment", **keep
    )
    parser.add_argument("--index-url", help="the package index to resolve from", **keep)
    for flag, metavar, help_text in (
        ("--extra-index-url", "URL", "another index (repeatable)"),
        ("--find-links", "DIR_OR_URL", "a folder or page of wheels (repeatable)"),
    ):
        dest = repeated(flag.removeprefix("--").replace("-", "_"))
        parser.add_argument(
            flag, dest=dest, action="append", metavar=metavar, help=help_text, **keep
        )
    parser.add_argument("--no-index", action="store_true", help="use only --find-links", **keep)
    parser.add_argument("--offline", action="store_true", help="never touch the network", **keep)
    parser.add_argument(
        "--ray",
        metavar="auto|off|PYTHON",
        help="the Ray every new env is linked to, so it works as py_executable: 'auto' (the "
        "Ray this process can import; the default), 'off', or the cluster's interpreter "
        "(default: $UV_ENVS_RAY)",
        **keep,
    )
    # Neither help text shows a value: no password ever goes on a command line.
    parser.add_argument(
        "--audit-url",
        metavar="URL",
        help="keep the audit trail in this PostgreSQL database (postgresql://user@host/db; "
        "default: $UV_ENVS_AUDIT_URL, else SQLite in the root); put no password in it: "
        "use PGPASSWORD, ~/.pgpass or --audit-password-file",
        **keep,
    )
    parser.add_argument(
        "--audit-password-file",
        type=Path,
        metavar="PATH",
        help="a file whose first line is the audit database's password",
        **keep,
    )


def _repeated(options: argparse.Namespace, dest: str) -> tuple[str, ...]:
    before: list[str] = getattr(options, dest, None) or []
    after: list[str] = getattr(options, f"{_AFTER}{dest}", None) or []
    return (*before, *after)


def settings_from_options(
    options: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """The :class:`~uv_envs.Settings` named by parsed options, over the ``UV_ENVS_*`` variables.

    ``options`` is what a parser with :func:`add_settings_options` parsed;
    ``environ`` (``os.environ`` by default) holds the ``UV_ENVS_*`` variables.
    A relative ``--find-links`` folder is made absolute (uv runs in another
    directory); an index option given replaces that part of the
    environment's index settings.

    """
    values: dict[str, Any] = {}
    if (root := getattr(options, "root", None)) is not None:
        values["root"] = root
    if (lock_timeout := getattr(options, "lock_timeout", None)) is not None:
        values["lock_timeout"] = lock_timeout
    if ray := getattr(options, "ray", None):
        values["ray"] = ray
    if audit_url := getattr(options, "audit_url", None):
        values["audit_url"] = audit_url
    if (password_file := getattr(options, "audit_password_file", None)) is not None:
        values["audit_password_file"] = password_file
    settings = Settings.from_env(environ, **values)
    base = settings.index
    find_links = tuple(
        link if "://" in link else str(Path(link).absolute())
        for link in _repeated(options, "find_links")
    )
    index = IndexSettings(
        index_url=getattr(options, "index_url", None) or base.index_url,
        extra_index_urls=_repeated(options, "extra_index_url") or base.extra_index_urls,
        find_links=find_links or base.find_links,
        no_index=bool(getattr(options, "no_index", False)) or base.no_index,
        offline=bool(getattr(options, "offline", False)) or base.offline,
    )
    if index == base:
        return settings
    return Settings.from_env(environ, **values, index=index)
