"""A real ``uv-envs-server`` (or ``uv-envs``) process started from this checkout, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path

#: The checkout, put on the child's ``PYTHONPATH`` so it imports this code.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def source_env(**extra: str) -> dict[str, str]:
    """This process's environment, importing this checkout, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wheelhouse_env(wheelhouse: Path, uv_cache: Path, **extra: str) -> dict[str, str]:
    """:func:`source_env` whose uv installs from the tests' wheelhouse only."""
    return source_env(
        UV_ENVS_FIND_LINKS=str(wheelhouse),
        UV_ENVS_NO_INDEX="1",
        UV_ENVS_CACHE_DIR=str(uv_cache),
        **extra,
    )


class Server:
    """A running ``uv-envs-server`` process and the target it listens on."""

    def __init__(
        self, args: list[str], env: dict[str, str], module: str = "uv_envs_server"
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.target = ""
        self.stderr = ""
        assert self.process.stdout is not None
        # The first stdout line says where it listens; read it with a deadline.
        reader = futures.ThreadPoolExecutor(1)
        try:
            line = reader.submit(self.process.stdout.readline).result(timeout=60)
        finally:
            reader.shutdown(wait=False)
        if line.startswith("uv-envs-server listening on "):
            self.target = line.rsplit(" ", 1)[1].strip()

    def stop(self, signum: int | None = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``signum`` (None: it was sent already) and wait for the exit code."""
        if signum is not None and self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
            raise
        return self.process.returncode
