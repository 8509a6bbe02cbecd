"""Which origins a relay may fetch from, and the lock sizes its URLs carry (pure parts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from uv_envs import IndexSettings
from uv_envs._relay.origins import AllowedOrigins, index_origins
from uv_envs._relay.urls import lock_origins, origin_of, read_relay_path, relayed_lock

_HASH = "sha256:" + "cd" * 32
LOCK = f"""\
[[package]]
name = "alpha"
version = "2.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.pythonhosted.org/a-2.0.tar.gz", hash = "{_HASH}", size = 1234 }}
wheels = [
    {{ url = "http://mirror.lan:8080/f/alpha-2.0-py3-none-any.whl", hash = "{_HASH}" }},
]
"""


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://PyPI.org/simple", "https://pypi.org:443"),
        ("http://mirror.lan/x", "http://mirror.lan:80"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("http://[::1]:9/a", "http://[::1]:9"),
        ("http://[::1/a.whl", None),
        ("http://u:p@host/a", None),
        ("http://host/a b", None),
        ("http://h\u00f6st/a", None),
        ("http://host:0x10/a", None),
        ("file:///etc/passwd", None),
        ("https:///a", None),
    ],
)
def test_an_origin_is_its_scheme_host_and_port(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_the_allowed_origins_are_the_indexes_and_their_file_hosts() -> None:
    allowed = AllowedOrigins.of(IndexSettings())  # no index set: PyPI
    assert allowed.allows("https://files.pythonhosted.org/packages/a/x-1-py3-none-any.whl")
    assert allowed.allows("https://pypi.org/simple/x/")
    assert not allowed.allows("http://pypi.org/simple/x/")  # another scheme, another port
    assert not allowed.allows("https://pypi.org:8443/x")
    assert not allowed.allows("http://169.254.169.254/latest/meta-data/x.whl")
    mirror = IndexSettings(
        index_url="http://mirror.lan:3141/root/pypi/+simple/",
        extra_index_urls=("https://download.pytorch.org/whl/cu121",),
        find_links=("./wheels", "https://links.example/"),
    )
    assert index_origins(mirror) == {
        "http://mirror.lan:3141",
        "https://download.pytorch.org:443",
        "https://links.example:443",
    }
    assert not AllowedOrigins.of(mirror).allows("https://pypi.org/simple/")
    assert index_origins(IndexSettings(no_index=True)) == frozenset()
    with pytest.raises(ValueError, match="not an http"):
        AllowedOrigins.of(mirror, ["ftp://files.example/"])


def test_a_lock_names_its_origins_and_its_relayed_urls_carry_its_sizes() -> None:
    assert lock_origins(LOCK) == {"https://files.pythonhosted.org:443", "http://mirror.lan:8080"}
    relayed = relayed_lock(LOCK, "http://relay:1/t")
    assert relayed is not None
    assert "size = 1234 }" in relayed  # the lock's own fields stay
    sizes = [
        wanted.size
        for url in re.findall(r'url = "([^"]+)"', relayed)
        if (wanted := read_relay_path(url.removeprefix("http://relay:1/t"))) is not None
    ]
    assert sizes == [1234, None]


def test_uv_envs_relay_refuses_an_allowed_origin_that_is_not_one(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "uv_envs", "--root", str(tmp_path), "relay"]
    done = subprocess.run(
        [*command, "--allow-origin", "file:///srv/wheels"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--allow-origin" in done.stderr
