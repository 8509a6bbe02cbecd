"""What a user meets when things go wrong: one line, no traceback, the README's exit code.

Each test runs the real ``uv-envs`` in a subprocess: tracebacks, broken pipes
and exit codes are about the terminal, not the Python API.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from uv_envs import EnvKey, EnvManager, __version__

from .test_cli import cli

if TYPE_CHECKING:
    from pathlib import Path

    from uv_envs import Settings

#: The README's exit codes (0 ok, 1 failed, 2 bad input, 3 missing, 4 busy, 5 conflict).
TABLE = {0, 1, 2, 3, 4, 5}

#: One run of every subcommand that works on a root (serve, watch and relay are apart).
EVERY_COMMAND = [
    ["create", "wf", "n", "v1", "-p", "alpha"],
    ["ensure", "wf", "n", "v1", "-p", "alpha"],
    ["status", "wf", "n", "v1"],
    ["add", "wf", "n", "v1", "-p", "alpha"],
    ["update", "wf", "n", "v1"],
    ["remove", "wf", "n", "v1", "-p", "alpha"],
    ["deps", "wf", "n", "v1"],
    ["sync", "wf", "n", "v1"],
    ["export", "wf", "n", "v1"],
    ["delete", "wf", "n", "v1"],
    ["verify", "wf", "n", "v1"],
    ["verify", "--all"],
    ["repair"],
    ["list"],
    ["cleanup", "--idle-hours", "1"],
    ["ops"],
    ["recover"],
    ["pythons"],
]

#: The commands on one env, and what each needs besides the key.
ON_AN_ENV = {
    "status": [],
    "add": ["-p", "alpha"],
    "update": [],
    "remove": ["-p", "alpha"],
    "deps": [],
    "sync": [],
    "export": [],
    "delete": [],
    "verify": [],
    "repair": [],
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``uv-envs`` with exactly these arguments (no root or index added)."""
    return subprocess.run(
        [sys.executable, "-m", "uv_envs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Failed with ``code``, one line on stderr that says ``words``, no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uv-envs: error: "), lines
    for word in words:
        assert word in lines[0], lines


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
@pytest.mark.parametrize("root", ["missing parent", "a file"])
def test_no_traceback_for_an_unusable_root(command: list[str], root: str, tmp_path: Path) -> None:
    path = tmp_path / "afile"
    path.write_text("not a root\n")
    given = path / "root" if root == "missing parent" else path
    result = run("--root", str(given), "--no-index", *command)
    assert "Traceback" not in result.stderr
    assert result.returncode in TABLE, result.stderr
    if result.stderr:
        assert_one_line(result, result.returncode, "--root")


@pytest.mark.parametrize("command", ["list", "ops", "pythons", "status"])
def test_a_closed_stdout_ends_quietly(command: str, tmp_path: Path) -> None:
    # The reader is gone before anything is written: `uv-envs list --json | head -0`.
    args = ["--root", str(tmp_path / "root"), "--json", command]
    args += ["wf", "n", "v1"] if command == "status" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "uv_envs", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert stderr == ""
    assert process.returncode == 141  # as a shell reports a writer ended by SIGPIPE


def test_create_into_a_closed_pipe_still_creates(settings: Settings) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uv_envs",
            "--root",
            str(settings.root),
            "--no-index",
            "--find-links",
            settings.index.find_links[0],
            "--json",
            "create",
            "wf",
            "n",
            "v1",
            "-p",
            "alpha",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=300)
    assert "Traceback" not in stderr
    assert process.returncode == 141
    assert cli(settings, "status", "wf", "n", "v1").returncode == 0


@pytest.mark.parametrize("command", sorted(ON_AN_ENV))
def test_no_such_environment_exits_3(command: str, settings: Settings) -> None:
    result = cli(settings, command, "wf", "missing", "v1", *ON_AN_ENV[command])
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", sorted(ON_AN_ENV))
def test_a_bad_id_exits_2(command: str, settings: Settings) -> None:
    result = cli(settings, command, "wf", "no/slash", "v1", *ON_AN_ENV[command])
    assert_one_line(result, 2)


@pytest.fixture
def ready(settings: Settings) -> EnvKey:
    """An env made through the CLI."""
    created = cli(settings, "create", "wf", "n", "v1", "-p", "alpha")
    assert created.returncode == 0, created.stderr
    return EnvKey("wf", "n", "v1")


#: Commands that take the env's lock, and the arguments each needs after the key.
LOCKING = {
    "add": ["-p", "gamma"],
    "update": [],
    "remove": ["-p", "alpha"],
    "sync": [],
    "delete": [],
    "ensure": ["-p", "gamma"],
}


def test_a_busy_env_exits_4_with_a_hint(settings: Settings, ready: EnvKey) -> None:
    manager = EnvManager(settings)
    try:
        with manager._core.access.locked(ready):
            for command, rest in LOCKING.items():
                result = cli(settings, "--lock-timeout", "0", command, "wf", "n", "v1", *rest)
                assert_one_line(result, 4, "busy", "--lock-timeout")
    finally:
        manager.close()


def test_a_conflicting_create_says_what_differs_and_how_to_move_it(
    settings: Settings, other_python: str
) -> None:
    made = cli(settings, "create", "wf", "n", "v1", "-p", "alpha", "--python", other_python)
    assert made.returncode == 0, made.stderr
    result = cli(settings, "create", "wf", "n", "v1", "-p", "alpha", "-p", "gamma")
    # Only what differs: gamma is new, and the Python was given, then left to the default.
    said = (f"+gamma; python: '{other_python}' there", "uv-envs ensure wf n v1")
    assert_one_line(result, 5, *said)
    assert "alpha" not in result.stderr
    assert "!=" not in result.stderr  # no spec hashes


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cleanup"], ["--idle-hours", "--max-bytes"]),
        (["create", "wf", "n", "v1", "-p", "alpha", "--python", "2.7"], ["CPython 3"]),
        (["create", "wf", "n", "v1", "-p", "alpha", "--python", "3.99"], ["UV_ENVS_PYTHON_PATHS"]),
    ],
)
def test_messages_name_the_flags(settings: Settings, args: list[str], words: list[str]) -> None:
    assert_one_line(cli(settings, *args), 2, *words)


def test_a_package_without_p_gets_a_hint(settings: Settings) -> None:
    result = cli(settings, "create", "wf", "n", "v1", "requests")
    assert result.returncode == 2
    assert "-p requests" in result.stderr
    assert not settings.root.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "afile"
    path.write_text("")
    quiet = run("--root", str(path), "create", "wf", "n", "-p", "alpha")
    assert_one_line(quiet, 1, "not a directory")
    loud = run("--root", str(path), "create", "wf", "n", "-p", "alpha", "--debug")
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("uv-envs: error: ")


@pytest.mark.parametrize(
    "program", ["from uv_envs._cli.main import main", "from uv_envs_server._cli import main"]
)
def test_version(program: str) -> None:
    code = f"import sys; {program}; sys.exit(main(['--version']))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(" " + __version__)


@pytest.mark.parametrize("server", ["127.0.0.1:{port}", "http://127.0.0.1:{port}"])
def test_watch_without_a_server_says_so(server: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run("watch", "--server", server.format(port=port))
    assert_one_line(result, 1, "cannot reach", "is uv-envs-server running")


def test_serve_on_a_taken_port_says_so_in_one_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(settings, "serve", "--port", str(port))
    assert result.returncode == 2
    assert "add_port" not in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert f"could not listen on 127.0.0.1:{port}" in errors[0]
    assert "pick another port" in errors[0]


def test_flags_take_the_users_units(settings: Settings) -> None:
    negative = cli(settings, "cleanup", "--idle-hours", "-1")
    assert negative.returncode == 2
    assert "--idle-hours: give a number of hours, 0 or more, not '-1'" in negative.stderr
    sized = cli(settings, "--json", "cleanup", "--max-bytes", "1G")
    assert sized.returncode == 0, sized.stderr
    assert "uv-envs: error" not in sized.stderr
    bad_size = cli(settings, "cleanup", "--max-bytes", "lots")
    assert bad_size.returncode == 2
    assert "500M, 1G" in bad_size.stderr
    # A cleanup that deleted nothing says so in one line.
    assert cli(settings, "cleanup", "--idle-hours", "1").stdout.startswith("deleted 0 envs")


def test_ops_status_is_checked_and_any_case(settings: Settings) -> None:
    assert cli(settings, "create", "wf", "n", "-p", "does-not-exist").returncode == 1
    failed = cli(settings, "--json", "ops", "--status", "failed")
    assert failed.returncode == 0, failed.stderr
    assert [item["status"] for item in json.loads(failed.stdout)["items"]] == ["FAILED"]
    bogus = cli(settings, "ops", "--status", "BOGUS")
    assert bogus.returncode == 2
    assert "FAILED" in bogus.stderr


def test_a_leased_env_exits_5_and_force_deletes_it(settings: Settings, ready: EnvKey) -> None:
    manager = EnvManager(settings)
    try:
        with manager.lease(ready):
            refused = cli(settings, "delete", "wf", "n", "v1")
            assert_one_line(refused, 5, "--force")
            forced = cli(settings, "delete", "wf", "n", "v1", "--force")
            assert forced.returncode == 0, forced.stderr
    finally:
        manager.close()
