"""Properties of the env digest (issue 30): it changes iff a file's path or bytes change."""

from __future__ import annotations

import random

from hypothesis import assume, given
from hypothesis import strategies as st

from tests.support import strategies as s
from uv_envs._store.digest import env_digest


@given(s.record_files(), s.venv_configs(), st.randoms())
def test_the_digest_does_not_depend_on_record_order(
    files: dict[str, str], config: dict[str, str], rng: random.Random
) -> None:
    rows = list(files.items())
    shuffled = rows[:]
    rng.shuffle(shuffled)
    assert env_digest(shuffled, config) == env_digest(rows, config)


@given(s.record_files(), s.record_files(), s.venv_configs())
def test_the_digest_changes_iff_some_path_or_hash_changes(
    before: dict[str, str], after: dict[str, str], config: dict[str, str]
) -> None:
    same = env_digest(before.items(), config) == env_digest(after.items(), config)
    assert same == (before == after)


@given(s.record_files(), s.venv_configs(), st.data())
def test_one_changed_file_changes_the_digest(
    files: dict[str, str], config: dict[str, str], data: st.DataObject
) -> None:
    assume(files)
    path = data.draw(st.sampled_from(sorted(files)))
    digest = env_digest(files.items(), config)
    new_hash = data.draw(s.record_files().filter(bool)).popitem()[1]
    assume(new_hash != files[path])
    assert env_digest({**files, path: new_hash}.items(), config) != digest
    renamed = {(p + "x" if p == path else p): h for p, h in files.items()}
    assume(len(renamed) == len(files))
    assert env_digest(renamed.items(), config) != digest


@given(s.record_files(), s.venv_configs(), s.venv_configs())
def test_the_interpreter_and_venv_config_are_in_the_digest(
    files: dict[str, str], one: dict[str, str], other: dict[str, str]
) -> None:
    same = env_digest(files.items(), one) == env_digest(files.items(), other)
    assert same == (one == other)
