"""Progress on a terminal: ``uv-envs create`` on a pty shows lines from the event stream."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from uv_envs import Settings

from .test_cli import cli


def _on_a_terminal(settings: Settings, *args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on one pty; what the terminal showed, in order."""
    leader, follower = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "uv_envs",
        "--root",
        str(settings.root),
        "--no-index",
        *[arg for link in settings.index.find_links for arg in ("--find-links", link)],
        *args,
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the last writer closed the pty
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(timeout=300), shown.decode().replace("\r\n", "\n")


def test_progress_lines_come_before_the_path_on_a_terminal(settings: Settings) -> None:
    code, shown = _on_a_terminal(settings, "create", "wf", "n", "v1", "-p", "alpha")
    assert code == 0, shown
    lines = shown.splitlines()
    python_path = str(settings.root / "envs" / "wf" / "n" / "v1" / ".venv" / "bin" / "python")
    assert lines[-1] == python_path
    progress = [line for line in lines if line.startswith("uv-envs: ")]
    assert any(line.startswith("uv-envs: resolving (uv lock") for line in progress), shown
    assert any(line.startswith("uv-envs: installing (uv sync") for line in progress), shown
    assert lines.index(progress[-1]) < lines.index(python_path)


def test_no_progress_with_quiet_with_json_or_off_a_terminal(settings: Settings) -> None:
    code, quiet = _on_a_terminal(settings, "--quiet", "create", "wf", "n", "v1", "-p", "alpha")
    assert code == 0, quiet
    assert "uv-envs: " not in quiet
    code, as_json = _on_a_terminal(settings, "ensure", "wf", "n", "v2", "-p", "alpha", "--json")
    assert code == 0, as_json
    assert "uv-envs: " not in as_json
    assert as_json.lstrip().startswith("{")  # one JSON document, nothing before it
    piped = cli(settings, "ensure", "wf", "n", "v3", "-p", "alpha")
    assert piped.returncode == 0, piped.stderr
    assert "uv-envs: " not in piped.stderr
