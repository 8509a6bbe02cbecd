"""Properties of the key -> path map, the spec hash and the (de)serialisation of every model."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.support import strategies as s
from uv_envs import EnvKey, EnvSpec, IndexSettings, InvalidIdentifier, _models, _reports
from uv_envs._models import converter
from uv_envs._store.layout import Layout
from uv_envs._store.project import read_declared, render_pyproject, spec_hash
from uv_envs._validation import parse_requirements

# A root that need not exist: the layout is pure path arithmetic.
ROOT = Path("/srv/uv-envs-test-root")
LAYOUT = Layout(ROOT)


# --- the key -> directory map -----------------------------------------------------------------


@settings(max_examples=200)
@given(st.lists(s.env_keys(), min_size=2, max_size=8, unique=True))
def test_env_dir_is_injective(keys: list[EnvKey]) -> None:
    directories = [LAYOUT.env_dir(key) for key in keys]
    assert len(set(directories)) == len(keys)
    # Distinct as strings too, and no directory of one key is inside another's.
    names = [os.fspath(d) for d in directories]
    assert len(set(names)) == len(keys)
    for a in directories:
        for b in directories:
            if a != b:
                assert not a.is_relative_to(b)


@settings(max_examples=200)
@given(s.env_keys())
def test_env_dir_stays_inside_the_envs_dir(key: EnvKey) -> None:
    env_dir = LAYOUT.env_dir(key)
    envs = LAYOUT.envs_dir.resolve()
    assert env_dir.resolve().is_relative_to(envs)
    assert Path(os.path.normpath(env_dir)) == env_dir
    relative = env_dir.relative_to(LAYOUT.envs_dir)
    assert len(relative.parts) == 3
    assert not {".", "..", ""} & set(relative.parts)


@settings(max_examples=200)
@given(s.env_keys())
def test_key_for_inverts_env_dir(key: EnvKey) -> None:
    assert LAYOUT.key_for(LAYOUT.env_dir(key)) == key


@settings(max_examples=200)
@given(st.lists(s.env_keys(), min_size=2, max_size=8, unique=True))
def test_lock_file_is_injective_and_inside_the_locks_dir(keys: list[EnvKey]) -> None:
    locks = [LAYOUT.lock_file(key) for key in keys]
    assert len(set(locks)) == len(keys)
    for lock in locks:
        assert lock.parent == LAYOUT.locks_dir


def test_keys_that_a_plain_join_would_confuse_get_different_directories() -> None:
    keys = [
        EnvKey("a_b", "c", "d"),
        EnvKey("a", "b_c", "d"),
        EnvKey("a", "b", "c_d"),
        EnvKey("a", "b", ""),
        EnvKey("a", "b", "_"),
        EnvKey("a.b", "c", ""),
        EnvKey("a", "b.c", ""),
    ]
    assert len({LAYOUT.env_dir(k) for k in keys}) == len(keys)
    assert len({LAYOUT.lock_file(k) for k in keys}) == len(keys)


# --- the spec hash ------------------------------------------------------------------------


def test_the_spec_hash_of_a_spec_is_what_it_always_was() -> None:
    # Every env and stored resolution is found by this hash: it must never drift.
    spec = EnvSpec(("Beta>=1", "gamma"), "3.12")
    index = IndexSettings(
        index_url="https://example.org/simple",
        extra_index_urls=("https://x/simple",),
        find_links=("/w",),
        offline=True,
    )
    expected = "37dd9a18db1d0aa1ea5c07d4cace5c619ae65264aac84348acf25ffd7321a6ec"
    assert spec_hash(spec, index) == expected


@settings(max_examples=100)
@given(s.index_settings())
def test_the_spec_hash_reads_index_settings_as_the_converter_writes_them(
    index: IndexSettings,
) -> None:
    def encoded(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    assert encoded(attrs.asdict(index)) == encoded(converter.unstructure(index))


@settings(max_examples=100)
@given(st.lists(s.requirement_strings(), min_size=1, max_size=6), st.data())
def test_spec_hash_ignores_package_order(packages: list[str], data: st.DataObject) -> None:
    index = IndexSettings()
    shuffled = data.draw(st.permutations(packages))
    assert spec_hash(EnvSpec(tuple(packages), "3.12"), index) == spec_hash(
        EnvSpec(tuple(shuffled), "3.12"), index
    )


@settings(max_examples=100)
@given(st.lists(s.requirement_strings(), min_size=1, max_size=6), st.data())
def test_spec_hash_ignores_duplicates(packages: list[str], data: st.DataObject) -> None:
    index = IndexSettings()
    repeated = packages + data.draw(st.lists(st.sampled_from(packages), min_size=1, max_size=4))
    assert spec_hash(EnvSpec(tuple(packages), "3.12"), index) == spec_hash(
        EnvSpec(tuple(repeated), "3.12"), index
    )


@settings(max_examples=100)
@given(st.lists(s.requirement_parts(), min_size=1, max_size=5), s.index_settings(), st.data())
def test_spec_hash_ignores_name_spelling(
    parts: list[Any], index: IndexSettings, data: st.DataObject
) -> None:
    one = tuple(data.draw(s.render_requirement(p)) for p in parts)
    other = tuple(data.draw(s.render_requirement(p)) for p in parts)
    assert spec_hash(EnvSpec(one, "3.12"), index) == spec_hash(EnvSpec(other, "3.12"), index)


@pytest.mark.parametrize(
    "spellings",
    [
        ("Foo_Bar", "foo-bar", "FOO.BAR", "foo__bar", "Foo-_.Bar"),
        ("Foo_Bar[Extra_One]>=1.0", "foo-bar[extra-one] >= 1.0", "FOO.BAR[EXTRA.ONE]>=1.0"),
        ("a>=1,<2", "A<2,>=1", "a >= 1, < 2"),
    ],
)
def test_spec_hash_examples_of_equal_spellings(spellings: tuple[str, ...]) -> None:
    hashes = {spec_hash(EnvSpec((p,), "3.12"), IndexSettings()) for p in spellings}
    assert len(hashes) == 1


@settings(max_examples=100)
@given(s.env_specs(), s.python_requests(), s.python_requests(), s.index_settings())
def test_spec_hash_changes_with_the_python_request(
    spec: EnvSpec, one: str, other: str, index: IndexSettings
) -> None:
    assume(one != other)
    assert spec_hash(attrs.evolve(spec, python=one), index) != spec_hash(
        attrs.evolve(spec, python=other), index
    )


@settings(max_examples=100)
@given(s.env_specs(), s.index_settings(), s.index_settings())
def test_spec_hash_changes_with_the_index_settings(
    spec: EnvSpec, one: IndexSettings, other: IndexSettings
) -> None:
    assume(one != other)
    assert spec_hash(spec, one) != spec_hash(spec, other)


@settings(max_examples=200)
@given(
    s.canonical_names(), st.lists(s.specifiers(), max_size=3), st.lists(s.specifiers(), max_size=3)
)
def test_spec_hash_changes_with_the_specifiers(name: str, one: list[str], other: list[str]) -> None:
    assume(SpecifierSet(",".join(one)) != SpecifierSet(",".join(other)))
    first = EnvSpec((str(Requirement(name + ",".join(one))),), "3.12")
    second = EnvSpec((str(Requirement(name + ",".join(other))),), "3.12")
    assert spec_hash(first, IndexSettings()) != spec_hash(second, IndexSettings())


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("alpha", "alpha[extra]"),
        ("alpha", 'alpha; python_version < "3.14"'),
        ("alpha>=1", "alpha>1"),
        ("alpha", "beta"),
    ],
)
def test_spec_hash_changes_with_extras_markers_and_names(one: str, other: str) -> None:
    assert spec_hash(EnvSpec((one,), "3.12"), IndexSettings()) != spec_hash(
        EnvSpec((other,), "3.12"), IndexSettings()
    )


def test_spec_hash_changes_with_the_requirements_text() -> None:
    spec = EnvSpec(("alpha",), "3.12")
    with_text = attrs.evolve(spec, requirements_text="--prefer-binary\nalpha\n")
    assert spec_hash(spec, IndexSettings()) != spec_hash(with_text, IndexSettings())


# --- the rendered pyproject.toml -----------------------------------------------------------

# Text a marker may compare against: anything but the quote, the backslash (packaging reads
# marker strings as Python literals), the line breaks and NUL that validation refuses, and
# lone surrogates, which no UTF-8 file can hold.
_MARKER_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters='"\\\n\r\x00'),
    max_size=12,
)


@st.composite
def requirements_with_marker_text(draw: st.DrawFn) -> str:
    base = draw(s.requirement_strings()).split(";")[0]
    value = draw(_MARKER_TEXT)
    return f'{base}; platform_release == "{value}"'


@settings(max_examples=200)
@given(
    s.env_keys(),
    st.lists(st.one_of(s.requirement_strings(), requirements_with_marker_text()), max_size=5),
    s.python_requests(),
)
def test_render_pyproject_is_toml_that_reads_back(
    key: EnvKey, packages: list[str], python: str
) -> None:
    validated = parse_requirements(packages)  # what the manager hands to render_pyproject
    text = render_pyproject(key, validated, python)
    document = tomllib.loads(text)
    assert document["project"]["dependencies"] == list(validated)
    assert document["tool"]["uv"]["package"] is False
    assert document["tool"]["uv-envs"] == {
        "workflow_id": key.workflow_id,
        "node_id": key.node_id,
        "version_id": key.version_id,
    }


@pytest.mark.parametrize(
    "package",
    [
        'alpha; platform_release == "\U0001f600"',  # outside the BMP
        'alpha; platform_release == "\x7f"',  # DEL must be escaped in TOML
        'alpha; platform_release == "\u00e9 a\\b"',
        'alpha; platform_release == "\t\x01"',
    ],
)
def test_render_pyproject_examples(package: str, tmp_path: Path) -> None:
    validated = parse_requirements([package])
    (tmp_path / "pyproject.toml").write_text(
        render_pyproject(EnvKey("wf", "node"), validated, "3.12"), encoding="utf-8"
    )
    assert read_declared(tmp_path) == validated


# --- cattrs round trips ---------------------------------------------------------------------

ROUND_TRIPS: dict[type, st.SearchStrategy[Any]] = {
    _models.EnvKey: s.env_keys(),
    _models.IndexSettings: s.index_settings(),
    _models.EnvSpec: s.env_specs(),
    _models.RetiredGeneration: s.retired_generations(),
    _models.RayLink: s.ray_links(),
    _models.Environment: s.environments(),
    _reports.StatusReport: s.status_reports(),
    _reports.OperationResult: s.operation_results(),
    _reports.Dependencies: s.dependencies(),
    _reports.Export: s.exports(),
    _reports.Provisioned: s.provisioned(),
    _reports.DeleteResult: s.delete_results(),
    _reports.CleanupReport: s.cleanup_reports(),
    _reports.CleanupRemoval: s.cleanup_removals(),
    _reports.LiveProcess: s.live_processes(),
    _reports.EnvInUse: s.envs_in_use(),
    _reports.OperationRecord: s.operation_records(),
    _reports.OperationPage: s.operation_pages(),
    _reports.DeletedOperations: s.deleted_operations(),
    _reports.VerifyReport: s.verify_reports(),
    _models.EnvUsage: s.env_usages(),
}


def test_every_model_has_a_round_trip_strategy() -> None:
    models = {
        value
        for module in (_models, _reports)
        for value in vars(module).values()
        if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__
    }
    assert models == set(ROUND_TRIPS)


@pytest.mark.parametrize("model", list(ROUND_TRIPS), ids=lambda m: m.__name__)
@settings(max_examples=100)
@given(data=st.data())
def test_every_model_survives_a_json_round_trip(model: type, data: st.DataObject) -> None:
    value = data.draw(ROUND_TRIPS[model])
    document = json.loads(json.dumps(converter.unstructure(value)))
    assert converter.structure(document, model) == value


@settings(max_examples=100)
@given(s.environments())
def test_structuring_an_environment_revalidates_its_key(environment: _models.Environment) -> None:
    document = converter.unstructure(environment)
    document["key"]["node_id"] = "../escape"
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the group is searched below
        converter.structure(document, _models.Environment)
    # cattrs wraps the error in an exception group; the InvalidIdentifier must be in it.
    chain = [caught.value, *getattr(caught.value, "exceptions", ())]
    assert any(isinstance(e, InvalidIdentifier) for e in chain)
