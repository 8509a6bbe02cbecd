"""How the original API's form fields and uploaded files become package lists."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import uv_envs
from uv_envs_server._http.compat.forms import (
    form_packages,
    requested_packages,
    requirements_file_lines,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, []),
        ([], []),
        (["numpy"], ["numpy"]),
        (["numpy,pandas"], ["numpy", "pandas"]),
        (["numpy", "pandas"], ["numpy", "pandas"]),
        (["a,b", "c"], ["a,b", "c"]),  # repeated fields are taken as given
        (["numpy>=1,<2"], ["numpy>=1,<2"]),  # a specifier list stays one requirement
        (["numpy>=1,<2,pandas"], ["numpy>=1,<2", "pandas"]),
        (["pkg[x,y]"], ["pkg[x,y]"]),  # extras stay together
        (["pkg[x,y],other"], ["pkg[x,y]", "other"]),
        (["a,,b,"], ["a", "b"]),
        (["numpy, pandas"], ["numpy, pandas"]),  # with a space: one value, the core judges it
        (["", "  ", "numpy"], ["numpy"]),  # empty fields name nothing
    ],
)
def test_form_packages(values: list[str] | None, expected: list[str]) -> None:
    assert form_packages(values) == expected


def test_requirements_file_lines_skip_blanks_and_comments() -> None:
    content = (
        b"\xef\xbb\xbf# header\n\nnumpy>=1.26  # pinned\n  pandas\n\t# indented comment\nx\r\n"
    )
    assert requirements_file_lines(content, "req.txt") == ["numpy>=1.26", "pandas", "x"]


def test_a_file_that_is_not_utf8_is_invalid_input_naming_it() -> None:
    with pytest.raises(uv_envs.InvalidInput, match=r"req\.txt is not UTF-8"):
        requirements_file_lines(b"numpy\n\xff\n", "req.txt")


def test_requested_packages_joins_both_and_can_require_one() -> None:
    assert requested_packages(["a,b"], ["c"], required=True) == ["a", "b", "c"]
    assert requested_packages(None, [], required=False) == []
    with pytest.raises(uv_envs.InvalidInput, match="name at least one package"):
        requested_packages([""], [], required=True)
