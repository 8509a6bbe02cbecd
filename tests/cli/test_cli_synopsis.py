"""The README's synopsis of the command line names every subcommand and every option."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from uv_envs._cli.main import _parser

README = Path(__file__).parents[2] / "README.md"


def _synopsis() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The command line")
    return text[start : text.index("\n## ", start + 1)]


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Each option's spellings (``("-p", "--package")``), --help aside."""
    return [
        tuple(action.option_strings)
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found |= {f"{name} {k}": v for k, v in _commands(sub).items()}
    return found


def test_every_subcommand_and_option_is_in_the_readme() -> None:
    synopsis = _synopsis()
    parser = _parser()
    missing = [
        " / ".join(spellings)
        for spellings in _options(parser)
        if not any(spelling in synopsis for spelling in spellings)
    ]
    for name, sub in _commands(parser).items():
        if name == "serve":  # its options are uv-envs-server's, documented with the server
            continue
        if not re.search(rf"\b{name.split()[-1]}\b", synopsis):
            missing.append(name)
        missing += [
            f"{name} {' / '.join(spellings)}"
            for spellings in _options(sub)
            if not any(spelling in synopsis for spelling in spellings)
        ]
    assert missing == []


def test_subcommand_help_lists_only_its_own_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def help_of(*argv: str) -> str:
        with pytest.raises(SystemExit):
            _parser().parse_args([*argv, "--help"])
        return capsys.readouterr().out

    own = help_of("create")
    assert "--package" in own
    assert "--audit-url" not in own
    assert "uv-envs --help" in own  # where the global ones are
    assert "--audit-url" in help_of()
    # Still accepted after the subcommand.
    assert _parser().parse_args(["create", "wf", "n", "--root", "/r"]).root == Path("/r")
