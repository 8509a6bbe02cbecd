"""Properties of the cheap hand-out check (issue 30): it flags a change iff a recorded
file's size or mtime changed, a file vanished, or the top of site-packages changed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support import strategies as s
from uv_envs._store.manifest import Manifest, changes


@given(s.manifests(), st.data())
def test_a_change_is_flagged_iff_a_recorded_file_moved_or_vanished(
    recorded: Manifest, data: st.DataObject
) -> None:
    current = data.draw(s.measured_after(recorded))
    moved = {p for p, stamp in recorded.files.items() if current.files.get(p) != stamp}
    found = changes(recorded, current)
    assert bool(found) == bool(moved)
    # One phrase per moved file, naming it, and whether it is gone or changed.
    assert len(found) == len(moved)
    for path in moved:
        phrase = f"{path} is missing" if path not in current.files else f"{path} changed"
        assert any(line.startswith(phrase) for line in found), (path, found)


@given(s.manifests())
def test_the_same_measure_is_no_change(recorded: Manifest) -> None:
    assert changes(recorded, Manifest(dict(recorded.files), recorded.entries)) == []


@given(s.manifests(), s.manifests())
def test_top_level_names_added_or_gone_are_flagged(recorded: Manifest, other: Manifest) -> None:
    current = Manifest(dict(recorded.files), other.entries)
    found = changes(recorded, current)
    assert bool(found) == (recorded.entries != other.entries)
    for name in other.entries - recorded.entries:
        assert f"{name} was added to site-packages" in found
    for name in recorded.entries - other.entries:
        assert f"{name} is missing from site-packages" in found
