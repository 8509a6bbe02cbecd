"""A wheelhouse for one package set, downloaded once from the public index, for a CountingIndex.

How it is built (``ensure``):

1. ``uv lock`` a throwaway project shaped as uv-envs shapes its envs
   (``requires-python = "==3.11.*"``, ``package = false``) against PyPI. The lock
   is universal, as uv-envs' locks are: it names every file of every platform.
2. For each locked package version, download (by the lock's URL, checked
   against the lock's sha256) every wheel this interpreter (CPython 3.11, linux
   x86_64) could install; none, then its sdist; neither, then one wheel of
   another platform, only so the counting index lists the version and uv's
   universal ``uv lock`` finds its metadata there.

The lock takes the set, ``requests`` (the benchmark varies specs with
``requests!=0.0.N``) and the common build backends (an sdist must build
against the counting index alone). The index then holds exactly the locked
versions, so every route resolves to them. A ``complete`` marker makes the
next run reuse the folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

PUBLIC_INDEX = "https://pypi.org/simple"
#: What an sdist in the set may need to build, with the counting index as the only index.
BUILD_BACKENDS = ("setuptools", "wheel", "hatchling", "flit-core", "poetry-core")
_MARKER = "complete"


def ensure(folder: Path, packages: Iterable[str]) -> Path:
    """``folder`` holding the set's wheelhouse, downloaded unless an earlier run finished it."""
    if (folder / _MARKER).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as scratch:
        lock = _lock(Path(scratch), [*packages, "requests", *BUILD_BACKENDS])
    wanted = list(_wanted(lock))
    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda item: _download(folder, *item), wanted))
    (folder / _MARKER).write_text(f"{len(wanted)} files\n")
    return folder


def _lock(scratch: Path, packages: list[str]) -> dict[str, Any]:
    dependencies = "".join(f'    "{p}",\n' for p in packages)
    (scratch / "pyproject.toml").write_text(
        '[project]\nname = "wheelhouse"\nversion = "0.0.0"\n'
        f'requires-python = "==3.11.*"\ndependencies = [\n{dependencies}]\n'
        "\n[tool.uv]\npackage = false\n"
    )
    uv = Path(sys.executable).parent / "uv"
    env = {**os.environ, "UV_CACHE_DIR": str(scratch / "cache")}
    subprocess.run(
        [str(uv), "lock", "--index-url", PUBLIC_INDEX, "--directory", str(scratch)],
        check=True,
        env=env,
    )
    with (scratch / "uv.lock").open("rb") as lock:
        return tomllib.load(lock)


def _wanted(lock: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(url, sha256)`` of each file to keep, per the rules in the module's docstring."""
    here = set(sys_tags())
    for package in lock.get("package", []):
        wheels = package.get("wheels", [])
        sdist = package.get("sdist")
        usable = [w for w in wheels if here & set(parse_wheel_filename(_name(w["url"]))[3])]
        chosen = usable or ([sdist] if sdist else wheels[:1])
        for entry in chosen:
            yield entry["url"], entry["hash"].removeprefix("sha256:")


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _download(folder: Path, url: str, digest: str) -> None:
    target = folder / _name(url)
    if target.exists():
        return
    with urllib.request.urlopen(url, timeout=300) as answer:  # noqa: S310 - the lock's https URLs
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != digest:
        msg = f"{url}: not the lock's sha256 {digest}"
        raise RuntimeError(msg)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)
