"""The tree stays readable: small modules, and no package module outside the layered folders.

The direction of imports is checked by import-linter (``lint-imports``, contracts in
pyproject.toml); these tests check what it cannot: sizes, and that every module sits in
a folder the contracts name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("uv_envs", "uv_envs_server")
MAX_LINES = 400
# Room to grow: a module splits by role well before the rule, not by rescue at 399 lines.
ROOMY_LINES = MAX_LINES * 9 // 10
# The facade only delegates; past this it is doing the core's work.
FACADE_CLASS_LINES = 300

# Modules at the top of each package: the public facade and the vocabulary (uv_envs), the
# entry point and what both front doors share (uv_envs_server). Everything else lives in a
# folder that says its layer.
TOP_LEVEL = {
    "uv_envs": {
        "__init__",
        "__main__",
        "cli_options",
        "_manager",
        "_bootstrap",
        "_provider",
        "_variants",
        "_settings",
        "_models",
        "_reports",
        "_errors",
        "errors",
        "_validation",
        "_urls",
    },
    "uv_envs_server": {
        "__init__",
        "__main__",
        "_cli",
        "_outcomes",
        "_security",
        "_limits",
        "_request_ids",
        "_regen",
        "_options",
        "_nodes",
        "_remote",
        "_provider",
    },
}


def modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "_generated" not in path.parts  # grpcio-tools' output
    )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_keeps_a_tenth_of_the_limit_free(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= ROOMY_LINES, f"{path.relative_to(REPO)} has {lines} lines (> {ROOMY_LINES})"


def test_the_facade_class_only_delegates() -> None:
    tree = ast.parse((REPO / "uv_envs" / "_manager.py").read_text())
    (facade,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert facade.name == "EnvManager"
    assert facade.end_lineno is not None
    lines = facade.end_lineno - facade.lineno + 1
    assert lines < FACADE_CLASS_LINES, f"EnvManager has {lines} lines"


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_facade_and_the_vocabulary_sit_at_the_top(package: str) -> None:
    top = {path.stem for path in (REPO / package).glob("*.py")}
    assert top <= TOP_LEVEL[package], sorted(top - TOP_LEVEL[package])
