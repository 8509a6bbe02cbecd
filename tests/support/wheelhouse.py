"""Small pure-Python wheels built at test time, so uv can run without a package index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    requires: Iterable[str] = (),
    *,
    body: str = "",
) -> Path:
    """Write ``{name}-{version}-py3-none-any.whl`` with a module that knows its version."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n{body}".encode(),
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {name}\n"
            f"Version: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: uv-envs-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = [_record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file_name, data in files.items():
            archive.writestr(zipfile.ZipInfo(file_name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


# The catalogue the test suite resolves against: enough for upgrades, removals,
# transitive dependencies and conflicts.
CATALOGUE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("alpha", "1.0", ()),
    ("alpha", "2.0", ()),
    ("beta", "1.0", ("alpha>=1.0",)),
    ("gamma", "1.0", ()),
    ("delta", "1.0", ("alpha<2",)),
)


def build_wheelhouse(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, version, requires in CATALOGUE:
        build_wheel(directory, name, version, requires)
    return directory


def ray_wheels(directory: Path) -> Path:
    """Wheels that collide with a Ray install: a harmless shadow, a Ray breaker, a fake Ray."""
    directory.mkdir(parents=True, exist_ok=True)
    build_wheel(
        directory, "hypothesis", "0.0.1"
    )  # the test venv has a real one; Ray never imports it
    build_wheel(directory, "msgpack", "0.0.1", body="raise ImportError('this msgpack is broken')\n")
    build_wheel(directory, "ray", "0.0.1")
    return directory
