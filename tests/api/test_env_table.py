"""The README's table of variables names every ``UV_ENVS_*`` variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_variable_is_in_the_readmes_table() -> None:
    read = {
        name
        for package in ("uv_envs", "uv_envs_server")
        for path in (ROOT / package).rglob("*.py")
        for name in re.findall(r"[\"'](UV_ENVS_[A-Z_]+)[\"']", path.read_text(encoding="utf-8"))
    }
    assert "UV_ENVS_ROOT" in read  # the search finds what it looks for
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(UV_ENVS_[A-Z_]+)`", readme, flags=re.MULTILINE))
    assert sorted(read - table) == []
    assert sorted(table - read) == []  # and nothing the code no longer reads
