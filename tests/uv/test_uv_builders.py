"""The pure uv command builders, the error mapping, and the subprocess executor on a fake uv."""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from uv_envs import (
    ExportFormat,
    IndexSettings,
    InvalidRequirement,
    ResolutionFailed,
    SubprocessUvExecutor,
    UvEnvsError,
    UvError,
    UvInvocation,
    UvNotFound,
    UvResult,
    UvTimeout,
)
from uv_envs._uv.commands import (
    UvOptions,
    add_command,
    export_command,
    lock_command,
    python_list_command,
    remove_command,
    sync_command,
)
from uv_envs._uv.executor import child_environment, find_uv_binary, raise_for_result
from uv_envs._validation import parse_requirements

PROJECT = Path("/srv/root/envs/wf/node/v1/gens/2")
CACHE = Path("/srv/root/cache")
PYTHON = "/usr/bin/python3.12"
OPTIONS = UvOptions(cache_dir=CACHE)
FULL_INDEX = IndexSettings(
    index_url="https://pypi.example/simple",
    extra_index_urls=("https://extra1.example/simple", "https://extra2.example/simple"),
    find_links=("/srv/wheels", "https://links.example/"),
    no_index=True,
    offline=True,
)


def option_value(args: tuple[str, ...], option: str) -> str:
    """The value following ``option`` (which must occur exactly once, before any ``--``)."""
    end = args.index("--") if "--" in args else len(args)
    positions = [i for i in range(end) if args[i] == option]
    assert len(positions) == 1, (option, args)
    return args[positions[0] + 1]


def all_builders(options: UvOptions) -> dict[str, UvInvocation]:
    return {
        "lock": lock_command(PROJECT, PYTHON, options),
        "sync": sync_command(PROJECT, PYTHON, options),
        "add": add_command(PROJECT, PYTHON, options, ["alpha>=1"]),
        "remove": remove_command(PROJECT, PYTHON, options, ["alpha"]),
        "export": export_command(PROJECT, options, ExportFormat.REQUIREMENTS_TXT),
        "python": python_list_command(options),
    }


# --- argv shape ----------------------------------------------------------------------------


def test_export_command_names_uv_s_format_and_its_preview_flag() -> None:
    sbom = export_command(PROJECT, OPTIONS, ExportFormat.CYCLONEDX)
    assert option_value(sbom.args, "--format") == "cyclonedx1.5"
    assert option_value(sbom.args, "--preview-features") == "sbom-export"
    plain = export_command(PROJECT, OPTIONS, ExportFormat.PYLOCK_TOML)
    assert option_value(plain.args, "--format") == "pylock.toml"
    assert "--preview-features" not in plain.args


def test_lock_command() -> None:
    invocation = lock_command(PROJECT, PYTHON, OPTIONS)
    assert invocation.args[0] == "lock"
    assert option_value(invocation.args, "--python") == PYTHON
    assert invocation.cwd == PROJECT
    for flag in ("--check", "--upgrade", "--upgrade-package", "--frozen", "--"):
        assert flag not in invocation.args


def test_lock_command_upgrades_and_check() -> None:
    everything = lock_command(PROJECT, PYTHON, OPTIONS, upgrade=True)
    assert "--upgrade" in everything.args
    some = lock_command(PROJECT, PYTHON, OPTIONS, upgrade_packages=["alpha", "beta"])
    pairs = [some.args[i + 1] for i, a in enumerate(some.args) if a == "--upgrade-package"]
    assert pairs == ["alpha", "beta"]
    assert "--upgrade" not in some.args
    assert "--check" in lock_command(PROJECT, PYTHON, OPTIONS, check=True).args


def test_sync_and_export_are_frozen() -> None:
    sync = sync_command(PROJECT, PYTHON, OPTIONS)
    assert sync.args[:2] == ("sync", "--frozen")
    assert "--compile-bytecode" not in sync.args
    for fmt in (ExportFormat.REQUIREMENTS_TXT, ExportFormat.PYLOCK_TOML):
        export = export_command(PROJECT, OPTIONS, fmt)
        assert export.args[0] == "export"
        assert "--frozen" in export.args
        assert "--no-header" in export.args  # the header would quote the internal --cache-dir
        assert option_value(export.args, "--format") == fmt
        assert "--python" not in export.args
        assert export.cwd == PROJECT


def test_compile_bytecode_flag() -> None:
    options = UvOptions(cache_dir=CACHE, compile_bytecode=True)
    assert "--compile-bytecode" in sync_command(PROJECT, PYTHON, options).args


def test_add_puts_user_packages_after_the_separator() -> None:
    invocation = add_command(PROJECT, PYTHON, OPTIONS, ["alpha>=1", "beta[x]"])
    assert invocation.args[:2] == ("add", "--no-sync")
    separator = invocation.args.index("--")
    assert invocation.args[separator + 1 :] == ("alpha>=1", "beta[x]")
    assert invocation.args.count("--") == 1


def test_add_with_a_requirements_file() -> None:
    requirements = PROJECT / "requirements.in"
    invocation = add_command(PROJECT, PYTHON, OPTIONS, requirements_file=requirements)
    assert option_value(invocation.args, "--requirements") == str(requirements)
    assert invocation.args.index("--requirements") < invocation.args.index("--")


def test_remove_puts_names_after_the_separator() -> None:
    invocation = remove_command(PROJECT, PYTHON, OPTIONS, ["alpha", "beta"])
    assert invocation.args[:2] == ("remove", "--no-sync")
    separator = invocation.args.index("--")
    assert invocation.args[separator + 1 :] == ("alpha", "beta")


@pytest.mark.parametrize(
    "hostile",
    ["--index-url=https://evil.example", "--config-file=/tmp/x.toml", "-e", "--", "--frozen"],
)
def test_an_option_shaped_package_can_only_land_after_the_separator(hostile: str) -> None:
    # Validation refuses it first ...
    with pytest.raises(InvalidRequirement):
        parse_requirements([hostile])
    # ... and even if it got through, uv would read it as a positional argument.
    for invocation in (
        add_command(PROJECT, PYTHON, OPTIONS, [hostile]),
        remove_command(PROJECT, PYTHON, OPTIONS, [hostile]),
    ):
        separator = invocation.args.index("--")
        assert hostile not in invocation.args[:separator]
        assert invocation.args[-1] == hostile


def test_python_list_command() -> None:
    invocation = python_list_command(OPTIONS)
    assert invocation.args[:2] == ("python", "list")
    assert "--only-installed" in invocation.args
    assert option_value(invocation.args, "--output-format") == "json"
    assert invocation.cwd is None
    assert "UV_PROJECT_ENVIRONMENT" not in invocation.env


@pytest.mark.parametrize("name", ["lock", "sync", "add", "remove", "export", "python"])
def test_every_command_ignores_config_files_and_uses_the_cache_dir(name: str) -> None:
    invocation = all_builders(OPTIONS)[name]
    assert "--no-config" in invocation.args
    assert option_value(invocation.args, "--cache-dir") == str(CACHE)
    assert invocation.env["UV_PYTHON_DOWNLOADS"] == "never"


@pytest.mark.parametrize("name", ["lock", "sync", "add", "remove", "export"])
def test_project_commands_build_the_venv_inside_their_generation(name: str) -> None:
    invocation = all_builders(OPTIONS)[name]
    assert invocation.env["UV_PROJECT_ENVIRONMENT"] == str(PROJECT / ".venv")
    assert invocation.cwd == PROJECT


def test_sync_can_build_a_venv_elsewhere() -> None:
    venv = Path("/srv/root/store/abc/.venv")
    invocation = sync_command(PROJECT, PYTHON, OPTIONS, venv=venv)
    assert invocation.env["UV_PROJECT_ENVIRONMENT"] == str(venv)
    assert invocation.cwd == PROJECT
    assert invocation.args[:2] == ("sync", "--frozen")


@pytest.mark.parametrize("downloads", ["never", "manual", "automatic"])
def test_python_downloads_policy(downloads: str) -> None:
    options = UvOptions(cache_dir=CACHE, python_downloads=downloads)
    for invocation in all_builders(options).values():
        assert invocation.env["UV_PYTHON_DOWNLOADS"] == downloads


@pytest.mark.parametrize("name", ["lock", "sync", "add", "remove"])
def test_index_options(name: str) -> None:
    invocation = all_builders(UvOptions(cache_dir=CACHE, index=FULL_INDEX))[name]
    args = invocation.args
    end = args.index("--") if "--" in args else len(args)
    # Index URLs go by environment (they may carry credentials; issue 31): the
    # same values, in the same priority order, as --default-index and --index.
    assert invocation.env["UV_DEFAULT_INDEX"] == "https://pypi.example/simple"
    indexes = invocation.env["UV_INDEX"].split(" ")
    assert indexes == ["https://extra1.example/simple", "https://extra2.example/simple"]
    assert "--default-index" not in args
    assert "--index" not in args
    # So do find-links locations (a URL may carry credentials too).
    assert invocation.env["UV_FIND_LINKS"].split(",") == ["/srv/wheels", "https://links.example/"]
    assert "--find-links" not in args
    assert "--no-index" in args[:end]
    assert "--offline" in args[:end]


@pytest.mark.parametrize("name", ["lock", "sync", "add", "remove"])
def test_no_index_options_by_default(name: str) -> None:
    args = all_builders(OPTIONS)[name].args
    for flag in ("--default-index", "--index", "--find-links", "--no-index", "--offline"):
        assert flag not in args
    env = all_builders(OPTIONS)[name].env
    assert "UV_DEFAULT_INDEX" not in env
    assert "UV_INDEX" not in env
    assert "UV_FIND_LINKS" not in env


@pytest.mark.parametrize("name", ["lock", "sync", "add", "remove"])
def test_a_find_links_folder_with_a_comma_goes_on_the_command_line(name: str) -> None:
    # UV_FIND_LINKS is comma-separated: such a folder cannot be said there.
    index = IndexSettings(find_links=("/srv/wheels,old", "https://links.example/"))
    invocation = all_builders(UvOptions(cache_dir=CACHE, index=index))[name]
    links = [invocation.args[i + 1] for i, a in enumerate(invocation.args) if a == "--find-links"]
    assert links == ["/srv/wheels,old", "https://links.example/"]
    assert "UV_FIND_LINKS" not in invocation.env


def test_timeout_is_carried() -> None:
    options = UvOptions(cache_dir=CACHE, timeout=12.5)
    for invocation in all_builders(options).values():
        assert invocation.timeout == 12.5
    for invocation in all_builders(OPTIONS).values():
        assert invocation.timeout is None


def test_builders_are_pure() -> None:
    assert all_builders(OPTIONS) == all_builders(OPTIONS)


# --- raise_for_result ----------------------------------------------------------------------


def result(exit_code: int, stderr: str = "", stdout: str = "") -> UvResult:
    return UvResult(("uv", "lock", "--no-config"), exit_code, stdout, stderr, 7)


def test_a_successful_result_is_returned() -> None:
    ok = result(0, stderr="Resolved 1 package")
    assert raise_for_result(ok, "uv lock failed") is ok


@pytest.mark.parametrize(
    "stderr",
    [
        "  x No solution found when resolving dependencies:\n",
        "  x Because nope was not found in the package registry and ...\n",
        "Because there is no version of alpha==9 and ...",
        "we can conclude that your project's requirements are unsatisfiable.",
        "Because delta was not found in the provided package locations and ...",
    ],
)
def test_resolution_failures_are_mapped(stderr: str) -> None:
    with pytest.raises(ResolutionFailed) as caught:
        raise_for_result(result(1, stderr, "out"), "uv lock failed")
    error = caught.value
    assert isinstance(error, UvError)
    assert error.command == ("uv", "lock", "--no-config")
    assert error.exit_code == 1
    assert error.stderr == stderr
    assert error.stdout == "out"
    assert str(error).startswith("uv lock failed")
    assert stderr.strip() in str(error)


@pytest.mark.parametrize(
    ("exit_code", "stderr"),
    [
        (2, "error: Failed to fetch: https://pypi.example/simple"),
        (2, "error: unexpected argument '--bogus' found"),
        (1, ""),
        (-9, "killed"),
    ],
)
def test_other_failures_are_plain_uv_errors(exit_code: int, stderr: str) -> None:
    with pytest.raises(UvError) as caught:
        raise_for_result(result(exit_code, stderr), "uv sync failed")
    error = caught.value
    assert type(error) is UvError
    assert (error.exit_code, error.stderr, error.command) == (
        exit_code,
        stderr,
        ("uv", "lock", "--no-config"),
    )
    assert isinstance(error, RuntimeError)


# --- child_environment ---------------------------------------------------------------------


def test_child_environment_scrubs_what_would_steer_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    steering = {
        "UV_INDEX_URL": "https://evil.example",
        "UV_CONFIG_FILE": "/tmp/uv.toml",
        "UV_PROJECT_ENVIRONMENT": "/tmp/elsewhere",
        "UV_PYTHON": "/usr/bin/python2",
        "PIP_INDEX_URL": "https://evil.example",
        "VIRTUAL_ENV": "/tmp/venv",
        "CONDA_PREFIX": "/opt/conda",
        "PYTHONHOME": "/tmp",
        "PYTHONPATH": "/tmp",
    }
    for name, value in steering.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UV_ENVS_TEST_KEEP_NOT", "x")  # a UV_ prefix, scrubbed as well
    monkeypatch.setenv("KEEP_ME", "1")

    env = child_environment(
        {"UV_PROJECT_ENVIRONMENT": "/srv/gen/.venv", "UV_PYTHON_DOWNLOADS": "never"}
    )

    for name in steering:
        if name != "UV_PROJECT_ENVIRONMENT":
            assert name not in env, name
    assert "UV_ENVS_TEST_KEEP_NOT" not in env
    assert env["UV_PROJECT_ENVIRONMENT"] == "/srv/gen/.venv"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["KEEP_ME"] == "1"
    assert env["PATH"] == os.environ["PATH"]
    assert os.environ["VIRTUAL_ENV"] == "/tmp/venv", "the parent's environment must not change"


# --- SubprocessUvExecutor on a fake uv -----------------------------------------------------


def fake_uv(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-uv"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat_line.rsplit(")", 1)[1].split()[0]
    return state != "Z"


def wait_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_exists(pid):
            return True
        time.sleep(0.02)
    return False


def test_executor_captures_exit_code_stdout_and_stderr(tmp_path: Path) -> None:
    binary = fake_uv(tmp_path, 'echo "out:$*"\necho "err line" >&2\nexit 3\n')
    executor = SubprocessUvExecutor(str(binary))

    outcome = executor.run(UvInvocation(("lock", "--", "--index-url=x"), tmp_path))

    assert outcome.exit_code == 3
    assert not outcome.ok
    assert outcome.stdout == "out:lock -- --index-url=x\n"
    assert outcome.stderr == "err line\n"
    assert outcome.command == (str(binary), "lock", "--", "--index-url=x")
    assert outcome.duration_ms >= 0


def test_executor_passes_argv_items_unsplit_and_unexpanded(tmp_path: Path) -> None:
    binary = fake_uv(tmp_path, 'for a in "$@"; do printf "[%s]\\n" "$a"; done\n')
    args = ("add", "--", "a b", "$(touch pwned)", "c;d", "*")
    outcome = SubprocessUvExecutor(str(binary)).run(UvInvocation(args, tmp_path))
    assert outcome.ok
    assert outcome.stdout.splitlines() == [f"[{a}]" for a in args]
    assert not (tmp_path / "pwned").exists()


def test_executor_runs_in_cwd_with_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", "/tmp/somewhere")
    monkeypatch.setenv("UV_INDEX_URL", "https://evil.example")
    binary = fake_uv(
        tmp_path,
        'pwd\necho "venv=${VIRTUAL_ENV-unset}"\necho "index=${UV_INDEX_URL-unset}"\n'
        'echo "project=$UV_PROJECT_ENVIRONMENT"\n',
    )
    work = tmp_path / "project"
    work.mkdir()
    invocation = UvInvocation(("sync",), work, {"UV_PROJECT_ENVIRONMENT": str(work / ".venv")})

    outcome = SubprocessUvExecutor(str(binary)).run(invocation)

    assert outcome.stdout.splitlines() == [
        str(work.resolve()),
        "venv=unset",
        "index=unset",
        f"project={work / '.venv'}",
    ]


def test_executor_has_no_stdin(tmp_path: Path) -> None:
    binary = fake_uv(tmp_path, 'if read line; then echo "read:$line"; else echo eof; fi\n')
    assert SubprocessUvExecutor(str(binary)).run(UvInvocation(("x",))).stdout == "eof\n"


def test_executor_copies_stderr_to_the_progress_stream(tmp_path: Path) -> None:
    binary = fake_uv(tmp_path, 'echo "Resolved 3 packages" >&2\necho "done"\n')
    progress = io.StringIO()
    outcome = SubprocessUvExecutor(str(binary), progress=progress).run(UvInvocation(("lock",)))
    assert progress.getvalue() == "Resolved 3 packages\n"
    assert outcome.stderr == "Resolved 3 packages\n"
    assert outcome.stdout == "done\n"


def test_executor_handles_large_output_on_both_streams(tmp_path: Path) -> None:
    # More than a pipe buffer on each stream at once: a naive reader would deadlock.
    binary = fake_uv(
        tmp_path,
        f"\"{sys.executable}\" -c \"import sys; [(sys.stdout.write('o' * 1000 + '\\n'), "
        f"sys.stderr.write('e' * 1000 + '\\n')) for _ in range(500)]\"\n",
    )
    outcome = SubprocessUvExecutor(str(binary)).run(UvInvocation(("lock",), timeout=60))
    assert outcome.ok
    assert len(outcome.stdout) == len(outcome.stderr) == 1001 * 500


def test_executor_timeout_kills_uv(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    binary = fake_uv(tmp_path, f'echo $$ > "{pid_file}"\necho "started" >&2\nexec sleep 30\n')
    executor = SubprocessUvExecutor(str(binary))

    started = time.monotonic()
    with pytest.raises(UvTimeout) as caught:
        executor.run(UvInvocation(("sync",), tmp_path, timeout=0.5))
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, UvError)
    assert caught.value.command == (str(binary), "sync")
    assert "started" in caught.value.stderr
    assert not pid_exists(int(pid_file.read_text()))


def test_executor_timeout_is_not_blocked_by_a_child_of_uv(tmp_path: Path) -> None:
    """uv starts children (build backends, interpreters); they inherit its pipes.

    When uv is stopped at its timeout, a child still holding the pipes must not keep
    ``run`` waiting for the child's end, and must not be left running.
    """
    child_file = tmp_path / "child"
    binary = fake_uv(tmp_path, f'sleep 20 &\necho $! > "{child_file}"\nwait\n')
    executor = SubprocessUvExecutor(str(binary))
    outcome: list[BaseException | UvResult] = []

    def target() -> None:
        try:
            outcome.append(executor.run(UvInvocation(("sync",), tmp_path, timeout=0.5)))
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=target)
    runner.start()
    runner.join(timeout=5)
    finished_in_time = not runner.is_alive()
    child = int(child_file.read_text()) if child_file.exists() else None
    child_left_running = child is not None and not wait_gone(child, 2)
    if runner.is_alive() and child is not None:
        os.kill(child, 9)  # unblock the executor so the test ends
        runner.join(timeout=30)
    if child_left_running and finished_in_time and child is not None:
        os.kill(child, 9)

    assert finished_in_time, "run() waited for a child of uv after the timeout"
    assert len(outcome) == 1
    assert isinstance(outcome[0], UvTimeout)
    assert child is not None
    assert not child_left_running, "a child of uv outlived the timeout"


def test_executor_missing_binary(tmp_path: Path) -> None:
    executor = SubprocessUvExecutor(str(tmp_path / "no-such-uv"))
    with pytest.raises(UvNotFound) as caught:
        executor.run(UvInvocation(("lock",)))
    assert isinstance(caught.value, FileNotFoundError)
    assert "no-such-uv" in str(caught.value)


@pytest.mark.parametrize("kind", ["not-executable", "directory"])
def test_executor_unusable_binary_is_a_typed_error(tmp_path: Path, kind: str) -> None:
    binary = tmp_path / "uv"
    if kind == "directory":
        binary.mkdir()
    else:
        binary.write_text("#!/bin/sh\necho hi\n")
        binary.chmod(0o644)
    executor = SubprocessUvExecutor(str(binary))
    # Lower-level errors are translated where they happen (see uv_envs._errors).
    with pytest.raises(UvEnvsError) as caught:
        executor.run(UvInvocation(("lock",)))
    assert str(binary) in str(caught.value)


def test_find_uv_binary_prefers_the_configured_one(tmp_path: Path) -> None:
    assert find_uv_binary(str(tmp_path / "my-uv")) == str(tmp_path / "my-uv")
    assert Path(find_uv_binary()).name.startswith("uv")


def test_index_credentials_never_reach_a_command_line() -> None:
    """``ps`` shows every user a command line: credentials go in uv's environment (issue 31)."""
    secret = "s3cr3t-Index-Token"  # noqa: S105 - a test credential
    index = IndexSettings(
        index_url=f"https://user:{secret}@private.example/simple",
        extra_index_urls=(f"https://__token__:{secret}@extra.example/simple",),
    )
    for name, invocation in all_builders(UvOptions(cache_dir=CACHE, index=index)).items():
        assert not any(secret in arg for arg in invocation.args), name
        if name in {"lock", "sync", "add", "remove"}:
            assert secret in invocation.env["UV_DEFAULT_INDEX"]
            assert secret in invocation.env["UV_INDEX"]
            # What the executor passes to uv: the scrub of UV_* keeps these.
            passed = child_environment(invocation.env)
            assert passed["UV_DEFAULT_INDEX"] == invocation.env["UV_DEFAULT_INDEX"]
