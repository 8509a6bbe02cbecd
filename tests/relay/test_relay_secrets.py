"""The relay's token stays secret (issue 31, finding 7).

It used to reach the log (the warning when a node passes a relay by for the
index) and, on a hash mismatch, the error text clients and events see (uv's
stderr quotes the relayed URL). Here real uv installs through a real relay on
loopback, and every log line, error, event and byte under the root is searched
for the token afterwards.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from uv_envs import EnvKey, EnvManager, HashMismatch, IndexSettings, Settings
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.server import WheelRelay
from uv_envs._urls import redact
from uv_envs.testing import CountingIndex

if TYPE_CHECKING:
    from collections.abc import Iterator

    from uv_envs._uv.python import PythonFinder

KEY = EnvKey("relay", "node")
TOKEN = "Relay-Secret-Token_0123456789"  # noqa: S105 - a test token for a loopback relay


@pytest.fixture
def index(wheelhouse: Path) -> Iterator[CountingIndex]:
    with CountingIndex(wheelhouse) as running:
        yield running


@pytest.fixture
def relay(tmp_path: Path, index: CountingIndex) -> Iterator[WheelRelay]:
    # It fetches from the machines' index only, as a root configured with it does.
    origins = AllowedOrigins.of(IndexSettings(index_url=index.url))
    running = WheelRelay(tmp_path / "server" / "relay", "127.0.0.1", token=TOKEN, origins=origins)
    running.start()
    yield running
    running.stop()


def _machine(
    tmp_path: Path, name: str, index: CountingIndex, finder: PythonFinder, relay: str
) -> EnvManager:
    settings = Settings(
        root=tmp_path / name,
        index=IndexSettings(index_url=index.url),
        wheel_relay=relay,
        lock_timeout=60,
        uv_timeout=300,
        background_bytecode=False,
    )
    return EnvManager(settings, python_finder=finder)


def _events_text(manager: EnvManager) -> str:
    replay = manager.events.subscribe(after=0)
    texts = []
    while (event := replay.poll()) is not None:
        texts.append(json.dumps(event.to_dict()))
    replay.close()
    assert texts, "the manager published no events"
    return "\n".join(texts)


def _assert_nowhere(token: str, root: Path, caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged
    for text in texts:
        assert token not in text
    # The audit database and everything else the root keeps.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert token.encode() not in path.read_bytes(), path


def test_a_relay_passed_by_for_the_index_is_logged_without_its_token(
    tmp_path: Path,
    index: CountingIndex,
    relay: WheelRelay,
    python_finder: PythonFinder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = relay.url
    assert TOKEN in dead
    relay.stop()
    lone = _machine(tmp_path, "lone", index, python_finder, dead)
    with caplog.at_level(logging.DEBUG):
        lone.create(KEY, packages=["beta"])
    assert any("could not serve" in r.getMessage() for r in caplog.records)
    shown = redact(dead) or ""
    assert any(shown in r.getMessage() for r in caplog.records)
    operations = "\n".join(repr(op) for op in lone.operations(limit=50).items)
    _assert_nowhere(
        TOKEN, lone.settings.root, caplog, _events_text(lone), repr(lone.settings), operations
    )


def test_a_hash_mismatch_at_the_relay_is_reported_without_its_token(
    tmp_path: Path,
    index: CountingIndex,
    relay: WheelRelay,
    python_finder: PythonFinder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = _machine(tmp_path, "first", index, python_finder, relay.url)
    first.create(KEY, packages=["beta"])
    lock = first.export(KEY)
    for kept in relay.directory.glob("??/*"):
        kept.write_bytes(kept.read_bytes() + b"\0")  # altered at rest
    second = _machine(tmp_path, "second", index, python_finder, relay.url)
    with caplog.at_level(logging.DEBUG), pytest.raises(HashMismatch) as info:
        second.install_exact(KEY, pyproject_toml=lock.pyproject_toml, uv_lock=lock.uv_lock)
    error = info.value
    assert "Hash mismatch" in str(error)
    texts = (str(error), error.stderr, error.stdout, " ".join(error.command))
    operations = "\n".join(repr(op) for op in second.operations(limit=50).items)
    _assert_nowhere(TOKEN, second.settings.root, caplog, *texts, _events_text(second), operations)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"http://10.0.0.7:4000/{TOKEN}", "http://10.0.0.7:4000/***"),
        (
            f"error: Failed to fetch: `http://h:1/{TOKEN}/sha256/{'a' * 64}/b3JpZ2lu/x-1.whl`",
            f"error: Failed to fetch: `http://h:1/***/sha256/{'a' * 64}/b3JpZ2lu/x-1.whl`",
        ),
        # A short token from a token file, in a relayed file's URL.
        (
            f"http://h:1/short/sha256/{'b' * 64}/o/x.whl",
            f"http://h:1/***/sha256/{'b' * 64}/o/x.whl",
        ),
        ("https://user:pa55@private.example/simple", "https://user:***@private.example/simple"),
        ("https://pypi.org/simple", "https://pypi.org/simple"),
        (
            "https://files.example/packages/ab/cd/x-1.whl",
            "https://files.example/packages/ab/cd/x-1.whl",
        ),
    ],
)
def test_one_function_redacts_relay_tokens_and_url_passwords(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_uv_envs_relay_refuses_a_remote_host_without_allow_remote(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "uv_envs", "--root", str(tmp_path / "root"), "relay"]
    refused = subprocess.run(
        [*command, "--host", "0.0.0.0"],  # noqa: S104 - the address refused
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "not a loopback address" in refused.stderr
    assert "--allow-remote" in refused.stderr
    assert "serving" not in refused.stdout
    allowed = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--allow-remote"],  # noqa: S104 - meant, here
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert allowed.stdout is not None
        assert allowed.stdout.readline().startswith("uv-envs relay serving at http://0.0.0.0:")
    finally:
        allowed.send_signal(signal.SIGTERM)
        allowed.communicate(timeout=30)
    assert allowed.returncode == 0
