"""The wheel relay: a second machine installs a lock's files from it, never from the index.

Real uv, a real index on loopback that counts what it serves, and a real relay;
each "machine" is a root with its own uv cache, as separate nodes have.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.wheelhouse import build_wheel
from tests.uv.test_real_uv import tree_fingerprint
from uv_envs import (
    Environment,
    EnvironmentNotFound,
    EnvKey,
    EnvManager,
    HashMismatch,
    IndexSettings,
    Settings,
)
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.server import WheelRelay
from uv_envs._relay.urls import (
    RelayedFile,
    origin_of,
    read_relay_path,
    relay_url,
    relayed_lock,
)
from uv_envs._store.project import render_pyproject
from uv_envs._uv.python import PythonFinder
from uv_envs._validation import parse_requirements
from uv_envs.testing import CountingIndex

KEY = EnvKey("relay", "node")
PACKAGES = ["beta"]  # beta 1.0 and alpha 2.0: two files


@pytest.fixture
def index(wheelhouse: Path) -> Iterator[CountingIndex]:
    with CountingIndex(wheelhouse) as running:
        yield running


@pytest.fixture
def relay(tmp_path: Path, index: CountingIndex) -> Iterator[WheelRelay]:
    # It fetches from the machines' index only, as a root configured with it does.
    origins = AllowedOrigins.of(IndexSettings(index_url=index.url))
    running = WheelRelay(tmp_path / "server" / "relay", "127.0.0.1", origins=origins)
    running.start()
    yield running
    running.stop()


def machine(
    tmp_path: Path, name: str, index: CountingIndex, python_finder: PythonFinder, relay: str | None
) -> EnvManager:
    """A root with its own uv cache (an empty one, as on a new node)."""
    settings = Settings(
        root=tmp_path / name,
        index=IndexSettings(index_url=index.url),
        wheel_relay=relay,
        lock_timeout=60,
        uv_timeout=300,
        background_bytecode=False,
    )
    return EnvManager(settings, python_finder=python_finder)


def test_a_second_machine_gets_every_file_from_the_relay_not_the_index(
    tmp_path: Path, index: CountingIndex, relay: WheelRelay, python_finder: PythonFinder
) -> None:
    first = machine(tmp_path, "first", index, python_finder, relay.url)
    first.create(KEY, packages=PACKAGES)
    # Resolving read the wheels' metadata only; the install fetched each file once.
    assert {name: s.requests for name, s in index.served().items()} == {
        "alpha-2.0-py3-none-any.whl": 1,
        "beta-1.0-py3-none-any.whl": 1,
    }
    lock = first.export(KEY).uv_lock
    index.reset()

    second = machine(tmp_path, "second", index, python_finder, relay.url)
    _adopted(second, lock)
    assert index.file_requests() == 0
    assert second.export(KEY).uv_lock == lock  # the env keeps the lock as made
    assert second.dependencies(KEY).locked == first.dependencies(KEY).locked
    counts = relay.counts()
    assert counts.fetched_files == 2
    assert counts.served_files == 4


def test_the_index_unreachable_a_node_installs_a_known_lock_from_the_relay(
    tmp_path: Path, index: CountingIndex, relay: WheelRelay, python_finder: PythonFinder
) -> None:
    first = machine(tmp_path, "first", index, python_finder, relay.url)
    first.create(KEY, packages=PACKAGES)
    export = first.export(KEY)
    index.stop()  # from now on nobody reaches the index

    second = machine(tmp_path, "second", index, python_finder, relay.url)
    environment = _adopted(second, export.uv_lock)
    assert Path(environment.python_path).exists()
    assert second.dependencies(KEY).locked == first.dependencies(KEY).locked


def test_bytes_altered_at_the_relay_are_refused_and_nothing_is_installed(
    tmp_path: Path, index: CountingIndex, relay: WheelRelay, python_finder: PythonFinder
) -> None:
    first = machine(tmp_path, "first", index, python_finder, relay.url)
    first.create(KEY, packages=PACKAGES)
    export = first.export(KEY)
    for kept in relay.directory.glob("??/*"):
        kept.write_bytes(kept.read_bytes() + b"\0")  # altered in transit or at rest

    second = machine(tmp_path, "second", index, python_finder, relay.url)
    second_root = second.settings.root
    before = tree_fingerprint(second_root) if second_root.exists() else {}
    with pytest.raises(HashMismatch, match="Hash mismatch"):
        _adopted(second, export.uv_lock)
    with pytest.raises(EnvironmentNotFound):
        second.get(KEY)
    assert not (second_root / "store").exists() or not any((second_root / "store").iterdir())
    assert before == {} or tree_fingerprint(second_root) == before


def test_a_relay_that_cannot_serve_is_passed_by_for_the_index(
    tmp_path: Path, index: CountingIndex, relay: WheelRelay, python_finder: PythonFinder
) -> None:
    dead = relay.url
    relay.stop()
    lone = machine(tmp_path, "lone", index, python_finder, dead)
    environment = lone.create(KEY, packages=PACKAGES)
    assert Path(environment.python_path).exists()
    assert index.file_requests() >= 2


def test_the_relay_refuses_an_origin_serving_other_bytes_than_the_lock(
    tmp_path: Path, relay: WheelRelay
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = build_wheel(house, "omega", "1.0")
    with CountingIndex(house) as origin:
        url = origin.url.replace("/simple", f"/files/{wheel.name}")
        relay.origins.add([str(origin_of(url))])
        wrong = RelayedFile("0" * 64, url, wheel.name)
        with pytest.raises(urllib.error.HTTPError, match="502"):
            urllib.request.urlopen(relay_url(relay.url, wrong), timeout=10)  # noqa: S310
    assert not any(relay.directory.glob("??/*"))
    assert relay.counts().refused == 1


def test_the_relay_answers_only_its_own_token(relay: WheelRelay) -> None:
    wanted = RelayedFile(
        "a" * 64, "http://127.0.0.1:1/x-1.0-py3-none-any.whl", "x-1.0-py3-none-any.whl"
    )
    stranger = re.sub(r"/[^/]+$", "/not-the-token", relay.url)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(relay_url(stranger, wanted), timeout=10)  # noqa: S310


def _adopted(manager: EnvManager, uv_lock: str) -> Environment:
    """Install exactly a lock made elsewhere, as a served node does (one core call)."""
    packages = parse_requirements(PACKAGES, allow_direct_references=False)
    pyproject = render_pyproject(KEY, packages, manager.settings.default_python)
    return manager.install_exact(KEY, pyproject_toml=pyproject, uv_lock=uv_lock).environment


# -- the lock's URLs, rewritten and read back -------------------------------------------

_HASH = "sha256:" + "ab" * 32
_FILES = "https://files.example/packages"
LOCK = f"""\
[[package]]
name = "alpha"
version = "2.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "{_FILES}/alpha-2.0.tar.gz", hash = "{_HASH}", size = 10 }}
wheels = [
    {{ url = "{_FILES}/alpha-2.0-py3-none-any.whl", hash = "{_HASH}", size = 9 }},
]
"""


def test_every_remote_file_of_a_lock_points_at_the_relay() -> None:
    relayed = relayed_lock(LOCK, "http://10.0.0.1:9/t")
    assert relayed is not None
    urls = re.findall(r'url = "([^"]+)"', relayed)
    assert len(urls) == 2
    for url in urls:
        wanted = read_relay_path(url.removeprefix("http://10.0.0.1:9/t"))
        assert wanted is not None
        assert wanted.digest == "ab" * 32
        assert wanted.origin.startswith("https://files.example/")
        assert url.endswith("/" + wanted.filename)
    assert relayed.count("hash = ") == LOCK.count("hash = ")  # every hash kept


def test_a_lock_with_a_local_source_is_not_relayed() -> None:
    local = LOCK.replace('registry = "https://pypi.org/simple"', 'registry = "../wheels"')
    assert relayed_lock(local, "http://r/t") is None
    assert relayed_lock('source = { virtual = "." }\n', "http://r/t") is None


@given(
    origin=st.from_regex(
        r"https://[a-z]{1,12}\.[a-z]{2,4}(/[A-Za-z0-9._~-]{1,12}){0,3}", fullmatch=True
    ),
    name=st.from_regex(
        r"[a-z][a-z0-9_]{0,10}-[0-9]{1,3}(\.[0-9]{1,3}){0,2}-py3-none-any\.whl", fullmatch=True
    ),
    digest=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
)
def test_a_relay_url_reads_back_as_the_file_it_names(origin: str, name: str, digest: str) -> None:
    wanted = RelayedFile(digest, f"{origin}/{name}", name)
    url = relay_url("http://relay:1/token", wanted)
    assert read_relay_path(url.removeprefix("http://relay:1/token")) == wanted


@pytest.mark.parametrize(
    "path",
    [
        "",
        "sha256",
        "sha256/zz/aGk/x.whl",
        "sha256/" + "a" * 64 + "/!!!/x-1-py3-none-any.whl",
        "sha256/" + "a" * 64 + "/ZmlsZTovLy9ldGMvcGFzc3dk/passwd",  # file:///etc/passwd
        "md5/" + "a" * 64 + "/aGk/x-1-py3-none-any.whl",
    ],
)
def test_a_malformed_relay_path_asks_for_nothing(path: str) -> None:
    assert read_relay_path(path) is None


def test_a_relay_url_whose_origin_names_another_file_asks_for_nothing() -> None:
    wanted = RelayedFile(
        "a" * 64, "https://host/other-1.0-py3-none-any.whl", "x-1.0-py3-none-any.whl"
    )
    assert read_relay_path(relay_url("", wanted)) is None


def test_uv_envs_relay_serves_machines_that_name_it(
    tmp_path: Path, index: CountingIndex, python_finder: PythonFinder
) -> None:
    token_file = tmp_path / "relay.token"
    command = [sys.executable, "-m", "uv_envs", "--root", str(tmp_path / "relay-root"), "relay"]
    relay = subprocess.Popen(
        [*command, "--token-file", str(token_file)],
        env={**os.environ, "UV_ENVS_INDEX_URL": index.url},  # the index it may fetch from
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        line = relay.stdout.readline()
        assert line.startswith("uv-envs relay serving at http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        assert url.endswith("/" + token_file.read_text().strip())
        for name in ("one", "two"):
            machine(tmp_path, name, index, python_finder, url).create(KEY, packages=PACKAGES)
        assert {s.requests for s in index.served().values()} == {1}  # once, for both
    finally:
        relay.send_signal(signal.SIGTERM)
        _, stderr = relay.communicate(timeout=30)
    assert relay.returncode == 0, stderr
    assert "fetched 2 files" in stderr


def test_concurrent_requests_for_one_file_make_one_fetch(
    wheelhouse: Path, index: CountingIndex, relay: WheelRelay
) -> None:
    wheel = wheelhouse / "gamma-1.0-py3-none-any.whl"
    origin = index.url.replace("/simple", f"/files/{wheel.name}")
    wanted = RelayedFile(hashlib.sha256(wheel.read_bytes()).hexdigest(), origin, wheel.name)

    def fetch(_: int) -> bytes:
        with urllib.request.urlopen(relay_url(relay.url, wanted), timeout=30) as answer:  # noqa: S310
            return bytes(answer.read())

    with futures.ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(fetch, range(16)))
    assert set(bodies) == {wheel.read_bytes()}
    assert index.served()[wheel.name].requests == 1
    assert relay.counts().fetched_files == 1
    assert relay.counts().served_files == 16


def test_prune_removes_only_files_nobody_asked_for_lately(
    wheelhouse: Path, index: CountingIndex, relay: WheelRelay
) -> None:
    for name in ("gamma-1.0-py3-none-any.whl", "alpha-1.0-py3-none-any.whl"):
        wheel = wheelhouse / name
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wanted = RelayedFile(digest, index.url.replace("/simple", f"/files/{name}"), name)
        urllib.request.urlopen(relay_url(relay.url, wanted), timeout=30).close()  # noqa: S310
    old, recent = sorted(relay.directory.glob("??/*"))
    os.utime(old, (0, 0))
    assert relay.prune(max_idle=3600) == 1
    assert not old.exists()
    assert recent.exists()


def test_the_counting_index_finds_projects_by_their_whole_normalised_name(tmp_path: Path) -> None:
    build_wheel(tmp_path, "importlib-resources", "1.0")
    build_wheel(tmp_path, "importlib", "1.0")
    (tmp_path / "zope.interface-5.0.tar.gz").write_bytes(b"not really")
    with CountingIndex(tmp_path) as index:
        with urllib.request.urlopen(f"{index.url}/Importlib_Resources/", timeout=10) as page:  # noqa: S310
            listed = page.read().decode()
        with urllib.request.urlopen(f"{index.url}/zope-interface/", timeout=10) as page:  # noqa: S310
            sdists = page.read().decode()
    assert "importlib_resources-1.0-py3-none-any.whl" in listed
    assert "importlib-1.0" not in listed
    assert "zope.interface-5.0.tar.gz" in sdists
