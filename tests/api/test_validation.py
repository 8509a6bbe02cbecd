"""Input validation: every bad input gets the documented InvalidInput subclass."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.support import strategies as s
from uv_envs import (
    DirectReferenceNotAllowed,
    EnvKey,
    InvalidIdentifier,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    RequirementsOptionNotAllowed,
)
from uv_envs._validation import (
    normalize_python_request,
    parse_requirement,
    parse_requirements,
    parse_requirements_text,
    validate_id,
)


def raises_invalid(kind: type[InvalidInput]) -> pytest.RaisesExc[InvalidInput]:
    """Expect ``kind``, and check it is an InvalidInput and a ValueError as documented."""
    assert issubclass(kind, InvalidInput)
    assert issubclass(kind, ValueError)
    return pytest.raises(kind)


# --- ids -----------------------------------------------------------------------------------

BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param(" ", id="space"),
    pytest.param("\t", id="tab"),
    pytest.param(" wf", id="leading-space"),
    pytest.param("wf ", id="trailing-space"),
    pytest.param("wf\n", id="trailing-newline"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("../etc", id="traversal"),
    pytest.param("../../../../etc/passwd", id="deep-traversal"),
    pytest.param("a/../../b", id="inner-traversal"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\..\\x", id="windows-traversal"),
    pytest.param("/etc", id="absolute"),
    pytest.param("/", id="root"),
    pytest.param("C:\\x", id="drive"),
    pytest.param("~", id="home"),
    pytest.param("wf\x00", id="nul"),
    pytest.param("w\x00f", id="inner-nul"),
    pytest.param("\uff57f", id="fullwidth-w"),
    pytest.param("w\u0430", id="cyrillic-a"),
    pytest.param("\u0430", id="only-cyrillic-a"),
    pytest.param("\u212aelvin", id="kelvin-sign"),
    pytest.param("\u017f", id="long-s"),
    pytest.param("\u0661\u0662", id="arabic-digits"),
    pytest.param("wf\u200b", id="zero-width-space"),
    pytest.param("a\u2024b", id="one-dot-leader"),
    pytest.param("x" * 129, id="129-chars"),
    pytest.param("x" * 10_000, id="10kB"),
    pytest.param("$HOME", id="dollar"),
    pytest.param("a:b", id="colon"),
    pytest.param("a*", id="glob"),
]


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("field", ["workflow_id", "node_id", "version_id"])
def test_bad_ids_are_rejected(value: str, field: str) -> None:
    # version_id may be empty; everything else in BAD_IDS is bad for it too.
    if field == "version_id" and value == "":
        assert validate_id(value, field, allow_empty=True) == ""
        return
    with raises_invalid(InvalidIdentifier) as caught:
        validate_id(value, field, allow_empty=field == "version_id")
    assert field in str(caught.value)


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids_are_rejected_by_the_key(value: str) -> None:
    with raises_invalid(InvalidIdentifier):
        EnvKey(value, "node")
    with raises_invalid(InvalidIdentifier):
        EnvKey("wf", value)
    if value:
        with raises_invalid(InvalidIdentifier):
            EnvKey("wf", "node", value)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"wf", ["wf"], object()])
def test_ids_must_be_strings(value: object) -> None:
    with raises_invalid(InvalidIdentifier):
        validate_id(value, "workflow_id")
    with raises_invalid(InvalidIdentifier):
        EnvKey(value, "node")  # type: ignore[arg-type]


def test_a_long_id_is_refused_with_a_short_message() -> None:
    with raises_invalid(InvalidIdentifier) as caught:
        validate_id("x" * 10_000, "node_id")
    assert len(str(caught.value)) < 200


def test_empty_version_is_allowed_but_empty_workflow_and_node_are_not() -> None:
    assert EnvKey("wf", "node").version_id == ""
    with raises_invalid(InvalidIdentifier):
        EnvKey("", "node")
    with raises_invalid(InvalidIdentifier):
        EnvKey("wf", "")


@pytest.mark.parametrize(
    "value", ["a", "A", "0", "...", "a.b", "-", "_", "-rf", "ml_pipeline", "v1.2.3-rc_1", "x" * 128]
)
def test_good_ids_are_accepted_unchanged(value: str) -> None:
    assert validate_id(value, "workflow_id") == value
    assert EnvKey(value, value, value).version_id == value


@settings(max_examples=200)
@given(s.valid_ids())
def test_every_id_of_the_alphabet_is_accepted(value: str) -> None:
    assert validate_id(value, "node_id") == value


@settings(max_examples=200)
@given(s.invalid_ids())
def test_every_invalid_id_is_rejected(value: object) -> None:
    with raises_invalid(InvalidIdentifier):
        validate_id(value, "node_id")


# --- packages ------------------------------------------------------------------------------

OPTION_LIKE = [
    "--index-url=https://evil.example/simple",
    "--index-url https://evil.example/simple",
    "--extra-index-url=https://evil.example/simple",
    "--config-file=/tmp/uv.toml",
    "--config-file",
    "-e .",
    "-e",
    "--editable=.",
    "-r other.txt",
    "-c constraints.txt",
    "--no-config",
    "--python=/usr/bin/python2",
    "-",
    "--",
    "  --index-url=https://evil.example",
]

DIRECT_REFERENCES = [
    "https://example.com/pkg-1.0-py3-none-any.whl",
    "http://example.com/pkg.tar.gz",
    "file:///abs/pkg",
    "pkg @ https://example.com/pkg-1.0.tar.gz",
    "pkg@https://example.com/pkg-1.0.tar.gz",
    "pkg @ file:///abs/pkg",
    "pkg @ git+https://github.com/x/pkg",
    "git+https://github.com/x/pkg",
    "git+ssh://git@github.com/x/pkg.git",
    "hg+https://example.com/pkg",
    "./pkg",
    "../pkg",
    ".\\pkg",
    "/abs/pkg",
    "~/pkg",
    "C:\\pkg",
    "x.whl",
    "pkg-1.0-py3-none-any.whl",
    "pkg-1.0.tar.gz",
    "pkg.zip",
]

NOT_REQUIREMENTS = [
    "",
    "   ",
    "not a requirement!!",
    "alpha>=",
    "alpha==1.0 extra",
    "alpha[",
    "alpha; python_version <",
    "alpha\n--index-url=https://evil.example",
    "alpha\rbeta",
    "alpha\x00",
    "a" * 1025,
]


@pytest.mark.parametrize("package", OPTION_LIKE)
def test_option_like_packages_are_refused(package: str) -> None:
    with raises_invalid(InvalidRequirement) as caught:
        parse_requirement(package)
    assert not isinstance(caught.value, DirectReferenceNotAllowed)
    # Even where direct references are allowed, an option is still refused.
    with raises_invalid(InvalidRequirement):
        parse_requirement(package, allow_direct_references=True)


@pytest.mark.parametrize("package", DIRECT_REFERENCES)
def test_direct_references_are_refused_by_default(package: str) -> None:
    with raises_invalid(DirectReferenceNotAllowed):
        parse_requirement(package)
    with raises_invalid(DirectReferenceNotAllowed):
        parse_requirements(["alpha", package])


@pytest.mark.parametrize(
    "package",
    [
        "pkg @ https://example.com/pkg-1.0.tar.gz",
        "pkg @ git+https://github.com/x/pkg",
        "pkg @ file:///abs/pkg",
    ],
)
def test_direct_references_are_accepted_when_allowed(package: str) -> None:
    requirement = parse_requirement(package, allow_direct_references=True)
    assert requirement.name == "pkg"
    assert requirement.url


@pytest.mark.parametrize("package", NOT_REQUIREMENTS)
def test_strings_that_are_not_requirements_are_refused(package: str) -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirement(package)


@pytest.mark.parametrize("package", [None, 1, b"alpha", ["alpha"], {"alpha": "1"}])
def test_packages_must_be_strings(package: object) -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirement(package)
    with raises_invalid(InvalidRequirement):
        parse_requirements([package])


@pytest.mark.parametrize("packages", ["alpha", "alpha beta", b"alpha"])
def test_one_string_instead_of_a_list_is_refused(packages: object) -> None:
    # Iterating "alpha" would give the packages a, l, p, h, a.
    with raises_invalid(InvalidRequirement):
        parse_requirements(packages)  # type: ignore[arg-type]


def test_too_many_packages_are_refused() -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirements([f"p{i}" for i in range(1001)])


@pytest.mark.parametrize(
    ("package", "normalized"),
    [
        ("alpha", "alpha"),
        ("  alpha  ", "alpha"),
        ("Alpha_Beta >= 1.0", "Alpha_Beta>=1.0"),
        ("alpha[x,y]>=1,<2", "alpha[x,y]<2,>=1"),
        ("alpha ; python_version<'3.14'", 'alpha; python_version < "3.14"'),
        ("zope.interface", "zope.interface"),
    ],
)
def test_good_packages_are_normalized_by_packaging(package: str, normalized: str) -> None:
    assert parse_requirements([package]) == (normalized,)


@settings(max_examples=200)
@given(s.requirement_strings())
def test_every_generated_requirement_is_accepted(package: str) -> None:
    parse_requirement(package)


# --- requirements texts --------------------------------------------------------------------


def test_requirements_text_handles_comments_blanks_and_continuations() -> None:
    text = (
        "# a comment\n"
        "\n"
        "alpha==1.0  # pinned\n"
        "   beta \\\n"
        "   >=1.0 \\\n"
        "   ; python_version >= '3.8'\n"
        "gamma#not-a-comment-but-part-of-nothing-valid\n"
    )
    with raises_invalid(InvalidRequirement):
        parse_requirements_text(text)
    requirements, has_options = parse_requirements_text(text.rsplit("gamma", 1)[0] + "gamma\n")
    assert requirements == ("alpha==1.0", 'beta>=1.0; python_version >= "3.8"', "gamma")
    assert has_options is False


def test_requirements_text_as_bytes_and_crlf() -> None:
    assert parse_requirements_text(b"alpha\r\nbeta\r\n") == (("alpha", "beta"), False)
    assert parse_requirements_text("") == ((), False)
    assert parse_requirements_text("# only a comment\n\n") == ((), False)


def test_requirements_text_that_is_not_utf8_is_refused() -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirements_text(b"alpha\n\xff\xfe\n")


def test_requirements_text_with_nul_or_oversized_is_refused() -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirements_text("alpha\n\x00beta\n")
    with raises_invalid(InvalidRequirement):
        parse_requirements_text("# " + "x" * (256 * 1024) + "\n")


OPTION_TEXTS = [
    pytest.param("alpha\n-r other.txt\n", id="-r"),
    pytest.param("--requirement other.txt\n", id="--requirement"),
    pytest.param("-c constraints.txt\nalpha\n", id="-c"),
    pytest.param("--index-url https://evil.example/simple\nalpha\n", id="--index-url"),
    pytest.param("--index-url=https://evil.example/simple\n", id="--index-url="),
    pytest.param("-i https://evil.example/simple\n", id="-i"),
    pytest.param("--extra-index-url https://evil.example\n", id="--extra-index-url"),
    pytest.param("--find-links /tmp/wheels\n", id="--find-links"),
    pytest.param("-e .\n", id="-e"),
    pytest.param("   -e ./pkg\n", id="indented -e"),
    pytest.param("--config-file /tmp/uv.toml\n", id="--config-file"),
    pytest.param("alpha==1.0 --hash=sha256:" + "0" * 64 + "\n", id="per-line --hash"),
    pytest.param("alpha==1.0\t--hash=sha256:" + "0" * 64 + "\n", id="per-line tab --hash"),
    pytest.param("alpha==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", id="continued --hash"),
    pytest.param("alpha \\\n--index-url https://evil.example\n", id="continued option"),
]


@pytest.mark.parametrize("text", OPTION_TEXTS)
def test_requirements_text_options_are_refused_by_default(text: str) -> None:
    with raises_invalid(RequirementsOptionNotAllowed):
        parse_requirements_text(text)
    with raises_invalid(RequirementsOptionNotAllowed):
        parse_requirements_text(text.encode())


@pytest.mark.parametrize("text", OPTION_TEXTS)
def test_requirements_text_options_are_flagged_when_allowed(text: str) -> None:
    requirements, has_options = parse_requirements_text(text, allow_options=True)
    assert has_options is True
    for requirement in requirements:
        assert not requirement.startswith("-")


def test_requirements_text_with_options_keeps_its_plain_requirements() -> None:
    requirements, has_options = parse_requirements_text(
        "--index-url https://example.com/simple\nalpha\nbeta>=1\n", allow_options=True
    )
    assert (requirements, has_options) == (("alpha", "beta>=1"), True)


@pytest.mark.parametrize(
    "text", ["./pkg\n", "pkg @ https://example.com/pkg.tar.gz\n", "git+https://github.com/x/y\n"]
)
def test_requirements_text_direct_references_are_refused(text: str) -> None:
    with raises_invalid(DirectReferenceNotAllowed):
        parse_requirements_text(text)
    with raises_invalid(DirectReferenceNotAllowed):
        parse_requirements_text(text, allow_options=True)


def test_requirements_text_with_too_many_requirements_is_refused() -> None:
    with raises_invalid(InvalidRequirement):
        parse_requirements_text("".join(f"p{i}\n" for i in range(1001)))


# --- Python versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "normalized"),
    [
        ("3.12", "3.12"),
        (" 3.12 ", "3.12"),
        ("3.12\n", "3.12"),
        ("3.12.1", "3.12.1"),
        ("3.9", "3.9"),
        ("3.13.0", "3.13.0"),
    ],
)
def test_python_requests_are_normalized(request_: str, normalized: str) -> None:
    assert normalize_python_request(request_) == normalized


@pytest.mark.parametrize(
    "request_",
    [
        "",
        " ",
        "3",
        "2.7",
        "2.7.18",
        "4.0",
        "python3.12",
        "cpython3.12",
        "3.12.x",
        "3.12.*",
        "3.12.1.1",
        ">=3.12",
        "==3.12",
        "3,12",
        "3.12a1",
        "3.123",
        "\uff13.12",  # fullwidth digit three
        "3.\u0661\u0662",  # arabic-indic digits
        "3.12 --index-url=x",
        "-3.12",
        "3.12\x00",
    ],
)
def test_bad_python_requests_are_refused(request_: str) -> None:
    with raises_invalid(InvalidPythonVersion):
        normalize_python_request(request_)


@pytest.mark.parametrize("request_", [None, 3.12, 3, b"3.12"])
def test_python_requests_must_be_strings(request_: object) -> None:
    with raises_invalid(InvalidPythonVersion):
        normalize_python_request(request_)
