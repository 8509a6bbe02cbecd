"""The records the ``AuditLog`` port takes bound what they carry: every store keeps alike."""

from __future__ import annotations

import attrs
import pytest

from uv_envs import OperationRecord, OperationStatus
from uv_envs._audit.log import MAX_OUTPUT, MAX_PAGE, AuditOutcome, AuditQuery

FAILED_SYNC = OperationRecord(
    id=1,
    workflow_id="wf",
    node_id="n1",
    version_id="",
    operation="sync",
    status=OperationStatus.FAILED,
    started_at=0.0,
    host="h",
    root="/r",
)


@pytest.mark.parametrize(
    ("limit", "offset", "bounded"),
    [(50, 0, (50, 0)), (-5, -3, (0, 0)), (10**9, 7, (MAX_PAGE, 7)), (MAX_PAGE, 0, (MAX_PAGE, 0))],
)
def test_a_query_holds_only_a_page_every_store_can_serve(
    limit: int, offset: int, bounded: tuple[int, int]
) -> None:
    query = AuditQuery(limit=limit, offset=offset)
    assert (query.limit, query.offset) == bounded
    page = query.page(total=3, items=iter(()))
    assert (page.total, page.limit, page.offset, page.items) == (3, *bounded, ())


def test_a_query_filters_on_the_values_given_and_empty_means_any() -> None:
    assert AuditQuery().filters == ()
    assert AuditQuery(workflow_id="", node_id="", status="", host="", root="").filters == ()
    query = AuditQuery(root="/r", status=OperationStatus.FAILED, workflow_id="wf")
    assert query.filters == (("workflow_id", "wf"), ("status", "FAILED"), ("root", "/r"))


def test_a_query_matches_a_record_when_every_filter_does() -> None:
    assert AuditQuery().matches(FAILED_SYNC)
    assert AuditQuery(workflow_id="wf", status=OperationStatus.FAILED).matches(FAILED_SYNC)
    assert not AuditQuery(workflow_id="wf", status="SUCCESS").matches(FAILED_SYNC)
    assert not AuditQuery(host="elsewhere").matches(FAILED_SYNC)
    assert not AuditQuery(status="bogus").matches(FAILED_SYNC)


def test_an_outcome_keeps_the_tail_of_long_output() -> None:
    outcome = AuditOutcome(OperationStatus.SUCCESS, stdout="o" * MAX_OUTPUT + "END", stderr="short")
    assert len(outcome.stdout) == MAX_OUTPUT
    assert outcome.stdout.endswith("oEND")
    assert outcome.stderr == "short"


def test_an_outcome_keeps_its_metadata_as_it_was_given() -> None:
    notes: dict[str, object] = {"generation": 2}
    outcome = AuditOutcome("FAILED", metadata=notes, error="boom")
    notes["generation"] = 3  # the operation goes on noting after it finished
    assert outcome.status is OperationStatus.FAILED
    assert outcome.metadata == {"generation": 2}
    assert AuditOutcome(OperationStatus.SUCCESS, metadata=None).metadata == {}


def test_an_outcome_is_how_an_operation_ended_never_running() -> None:
    with pytest.raises(ValueError, match="RUNNING"):
        AuditOutcome(OperationStatus.RUNNING)
    with pytest.raises(ValueError, match="PAUSED"):
        AuditOutcome("PAUSED")


def test_the_records_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        AuditQuery().limit = 10_000  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        AuditOutcome(OperationStatus.SUCCESS).status = OperationStatus.FAILED  # type: ignore[misc]
