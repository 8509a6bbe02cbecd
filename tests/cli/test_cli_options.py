"""uv_envs.cli_options: the settings options of both CLIs, on either side of a subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from uv_envs import IndexSettings, Settings
from uv_envs.cli_options import add_settings_options, settings_from_options


def _parser() -> argparse.ArgumentParser:
    # The recipe of the module's docstring: the options before and after the subcommand.
    parser = argparse.ArgumentParser(prog="tool")
    add_settings_options(parser)
    after = argparse.ArgumentParser(add_help=False)
    add_settings_options(after, after_command=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", parents=[after])
    return parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--root", "/srv/a", "--lock-timeout", "7", "--no-index", "--offline", "run"],
        ["run", "--root", "/srv/a", "--lock-timeout", "7", "--no-index", "--offline"],
        ["--root", "/srv/a", "--no-index", "run", "--lock-timeout", "7", "--offline"],
    ],
    ids=["before", "after", "both"],
)
def test_options_work_on_either_side(argv: list[str]) -> None:
    settings = settings_from_options(_parser().parse_args(argv), {})
    assert settings.root == Path("/srv/a")
    assert settings.lock_timeout == 7
    assert settings.index.no_index is True
    assert settings.index.offline is True


def test_an_option_after_the_subcommand_overrides_the_one_before() -> None:
    options = _parser().parse_args(
        ["--root", "/srv/a", "--index-url", "http://a", "run", "--root", "/srv/b"]
    )
    settings = settings_from_options(options, {})
    assert settings.root == Path("/srv/b")
    assert settings.index.index_url == "http://a"  # not repeated after: kept


def test_repeatable_options_keep_the_values_of_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    options = _parser().parse_args(
        [
            "--find-links", "wheels",
            "--extra-index-url", "http://one",
            "run",
            "--find-links", "https://example.invalid/simple",
            "--extra-index-url", "http://two",
        ]
    )  # fmt: skip
    index = settings_from_options(options, {}).index
    assert index.find_links == (str(tmp_path / "wheels"), "https://example.invalid/simple")
    assert index.extra_index_urls == ("http://one", "http://two")


def test_options_left_out_fall_back_to_the_environment(tmp_path: Path) -> None:
    environ = {
        "UV_ENVS_ROOT": str(tmp_path / "env-root"),
        "UV_ENVS_FIND_LINKS": "/srv/wheels",
        "UV_ENVS_NO_INDEX": "1",
        "UV_ENVS_LOCK_TIMEOUT": "3",
    }
    settings = settings_from_options(_parser().parse_args(["run"]), environ)
    assert settings.root == tmp_path / "env-root"
    assert settings.lock_timeout == 3
    assert settings.index == IndexSettings(find_links=("/srv/wheels",), no_index=True)
    # An option given replaces its part of the environment's index settings, and only that.
    options = _parser().parse_args(["run", "--find-links", "/opt/other", "--root", str(tmp_path)])
    chosen = settings_from_options(options, environ)
    assert chosen.root == tmp_path
    assert chosen.index == IndexSettings(find_links=("/opt/other",), no_index=True)


def test_nothing_given_is_the_environment_alone(tmp_path: Path) -> None:
    environ = {"UV_ENVS_ROOT": str(tmp_path)}
    assert settings_from_options(_parser().parse_args(["run"]), environ) == Settings.from_env(
        environ
    )


def test_the_audit_options_on_either_side(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    url = "postgresql://uv_envs@db.invalid/uv_envs"
    for argv in (
        ["--audit-url", url, "--audit-password-file", str(password), "run"],
        ["run", "--audit-url", url, "--audit-password-file", str(password)],
    ):
        settings = settings_from_options(_parser().parse_args(argv), {})
        assert settings.audit_url == url
        assert settings.audit_password_file == password
    assert settings_from_options(_parser().parse_args(["run"]), {}).audit_url is None
