"""The audited operation (``_core.operation``): one audit record per operation, and the
queries and deletes of the records.
"""

from __future__ import annotations

import os

import pytest

from uv_envs import EnvKey, EnvManager, InvalidInput, ResolutionFailed, UvError
from uv_envs.testing import FakeUvExecutor

from .conftest import KEY


def test_one_audit_record_per_operation(fake_manager: EnvManager, fake_uv: FakeUvExecutor) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0"])
    fake_manager.ensure(KEY, packages=["alpha==1.0"])
    fake_manager.status(KEY)
    fake_manager.get(KEY)
    fake_manager.list_environments()
    fake_manager.dependencies(KEY)
    fake_manager.add(KEY, ["gamma"])
    fake_uv.fail_next("remove")
    with pytest.raises(UvError):
        fake_manager.remove(KEY, ["gamma"])
    fake_manager.update(KEY)
    fake_manager.sync(KEY)
    fake_manager.delete(KEY)

    page = fake_manager.operations()
    assert [(r.operation, r.status) for r in page.items] == [
        ("delete", "SUCCESS"),
        ("sync", "SUCCESS"),
        ("update", "SUCCESS"),
        ("remove", "FAILED"),
        ("add", "SUCCESS"),
        ("ensure", "SUCCESS"),
        ("create", "SUCCESS"),
    ]
    assert page.total == 7
    for record in page.items:
        assert (record.workflow_id, record.node_id, record.version_id) == (
            KEY.workflow_id,
            KEY.node_id,
            KEY.version_id,
        )
        assert record.finished_at is not None
        assert record.finished_at >= record.started_at
        assert record.duration_ms is not None
        assert record.duration_ms >= 0
        assert record.metadata["pid"] == os.getpid()
    assert page.items[-2].metadata.get("reused") is True
    assert page.items[0].metadata.get("reused") is None
    ids = [r.id for r in page.items]
    assert ids == sorted(ids, reverse=True)


def test_operations_filters_and_paging(fake_manager: EnvManager) -> None:
    keys = [EnvKey("wf1", "n1", "v1"), EnvKey("wf1", "n2", ""), EnvKey("wf2", "n1", "v1")]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])
        fake_manager.sync(key)
    with pytest.raises(ResolutionFailed):
        fake_manager.add(keys[0], ["nope"])

    everything = fake_manager.operations(limit=100)
    assert everything.total == 7
    assert fake_manager.operations("wf1").total == 5
    assert fake_manager.operations("wf1", "n1").total == 3
    assert fake_manager.operations(node_id="n1").total == 5
    failed = fake_manager.operations(status="FAILED")
    assert [(r.workflow_id, r.node_id, r.operation) for r in failed.items] == [("wf1", "n1", "add")]
    assert fake_manager.operations("wf1", status="SUCCESS").total == 4
    assert fake_manager.operations("nope").total == 0

    first = fake_manager.operations(limit=3)
    second = fake_manager.operations(limit=3, offset=3)
    third = fake_manager.operations(limit=3, offset=6)
    assert (first.total, first.limit, first.offset) == (7, 3, 0)
    assert (second.total, second.offset) == (7, 3)
    assert [len(p.items) for p in (first, second, third)] == [3, 3, 1]
    assert [r.id for p in (first, second, third) for r in p.items] == [
        r.id for r in everything.items
    ]


def test_delete_operations(fake_manager: EnvManager) -> None:
    for key in [
        EnvKey("wf1", "n1", "v1"),
        EnvKey("wf1", "n2", ""),
        EnvKey("wf1", "n2", "v2"),
        EnvKey("wf2", "n1"),
    ]:
        fake_manager.create(key, packages=["alpha"])

    one_node = fake_manager.delete_operations("wf1", "n2")
    assert (one_node.workflow_id, one_node.node_id, one_node.deleted_count) == ("wf1", "n2", 2)
    assert one_node.deleted_node_ids == ("n2",)
    assert fake_manager.operations("wf1").total == 1

    fake_manager.sync(EnvKey("wf1", "n2", "v2"))
    workflow = fake_manager.delete_operations("wf1")
    assert workflow.deleted_count == 2
    assert workflow.deleted_node_ids == ("n1", "n2")
    assert fake_manager.operations("wf1").total == 0
    assert fake_manager.operations("wf2").total == 1

    nothing = fake_manager.delete_operations("wf1")
    assert (nothing.deleted_count, nothing.deleted_node_ids) == (0, ())
    with pytest.raises(InvalidInput):
        fake_manager.delete_operations("../x")
    with pytest.raises(InvalidInput):
        fake_manager.delete_operations("wf1", "a/b")
