"""The core's event stream: numbered domain events and uv's progress, bounded subscribers."""

from __future__ import annotations

import threading

import pytest

import uv_envs
from uv_envs import EnvKey, EventFilter, EventStream, Phase, StreamEvent
from uv_envs._events.progress import parse_line

KEY = EnvKey("wf", "node", "v1")
WAIT = 30.0


def drain(subscription: uv_envs.Subscription) -> list[StreamEvent]:
    events = []
    while (event := subscription.poll()) is not None:
        events.append(event)
    return events


def test_a_real_create_streams_started_progress_created_in_order(
    manager: uv_envs.EnvManager,
) -> None:
    subscription = manager.events.subscribe()
    manager.create(KEY, packages=["alpha<2"])
    events = drain(subscription)
    names = [e.name for e in events]
    assert names[0] == "EnvironmentCreationStarted"
    assert names[-1] == "EnvironmentCreated"
    progress = [e for e in events if e.name == "OperationProgress"]
    phases = [e.phase for e in progress]
    assert Phase.RESOLVING in phases
    assert Phase.INSTALLING in phases
    assert Phase.LINKING in phases
    # uv's own counts: it resolved the project and alpha, and installed alpha.
    counts = {k: v for e in progress for k, v in e.counts.items()}
    assert counts["resolved"] >= 2
    assert counts["installed"] >= 1
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert {e.key for e in events} == {KEY}
    assert len({e.operation_id for e in events}) == 1


def test_operation_ids_come_from_the_callers_scope(fake_manager: uv_envs.EnvManager) -> None:
    subscription = fake_manager.events.subscribe(EventFilter(operation_id="req-1"))
    other = EnvKey("wf", "other")
    fake_manager.create(other, packages=["beta"])
    with fake_manager.following("req-1"):
        fake_manager.create(KEY, packages=["alpha"])
    events = drain(subscription)
    assert events
    assert {e.operation_id for e in events} == {"req-1"}
    assert {e.key for e in events} == {KEY}


def test_filters_keep_their_workflow_node_and_names(fake_manager: uv_envs.EnvManager) -> None:
    wanted = fake_manager.events.subscribe(
        EventFilter(workflow_id="wf", node_id="node", names=frozenset({"EnvironmentCreated"}))
    )
    fake_manager.create(EnvKey("other", "node"), packages=["alpha"])
    fake_manager.create(EnvKey("wf", "else"), packages=["alpha"])
    fake_manager.create(KEY, packages=["alpha"])
    assert [(e.name, e.key) for e in drain(wanted)] == [("EnvironmentCreated", KEY)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workflow_id": "../etc"},
        {"node_id": "x" * 500},
        {"names": frozenset({"NoSuchEvent"})},
        {"operation_id": "has space"},
        {"operation_id": "x" * 129},
    ],
)
def test_bad_filters_are_invalid_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(uv_envs.InvalidInput):
        EventFilter(**kwargs)  # type: ignore[arg-type]


def test_a_full_subscriber_is_cut_off_and_never_waited_for(
    fake_manager: uv_envs.EnvManager,
) -> None:
    stream = EventStream(buffer=2)
    slow = stream.subscribe()
    reader = stream.subscribe()
    for number in range(5):
        stream.publish(uv_envs.EnvironmentDeleted(EnvKey("wf", f"n{number}")))
    assert slow.cut_off
    assert slow.dropped == 1
    assert stream.stats.cut_off == 2  # the reader did not read either
    got = drain(slow)
    assert [e.sequence for e in got[:2]] == [1, 2]
    notice = got[-1]
    assert notice.is_notice
    assert notice.name == "SubscriberCutOff"
    assert notice.counts == {"dropped": 1, "resume_after": 2}
    assert slow.poll() is None
    # It resumes after what it got, from the replay buffer, without a hole.
    resumed = stream.subscribe(after=2)
    assert [e.sequence for e in drain(resumed)] == [3, 4, 5]
    reader.close()


def test_resume_says_what_the_replay_buffer_no_longer_holds() -> None:
    stream = EventStream(replay=3)
    for number in range(6):
        stream.publish(uv_envs.EnvironmentDeleted(EnvKey("wf", f"n{number}")))
    resumed = stream.subscribe(after=1)
    got = drain(resumed)
    assert got[0].name == "ReplayGap"
    assert got[0].counts == {"missed": 2}
    assert [e.sequence for e in got[1:]] == [4, 5, 6]
    complete = stream.subscribe(after=4)
    assert [e.sequence for e in drain(complete)] == [5, 6]


def test_caps_per_stream_and_per_client() -> None:
    stream = EventStream()
    limits = uv_envs.SubscriberLimits(total=3, per_client=2)
    first = stream.subscribe(client="a", limits=limits)
    stream.subscribe(client="a", limits=limits)
    with pytest.raises(uv_envs.TooManySubscribers):
        stream.subscribe(client="a", limits=limits)
    stream.subscribe(client="b", limits=limits)
    with pytest.raises(uv_envs.TooManySubscribers):
        stream.subscribe(client="c", limits=limits)
    first.close()
    stream.subscribe(client="c", limits=limits)


def test_get_wakes_on_publish_and_on_close() -> None:
    stream = EventStream()
    subscription = stream.subscribe()
    got: list[StreamEvent | None] = []
    woke = threading.Event()
    subscription.wakeup = woke.set

    def read() -> None:
        got.append(subscription.get(timeout=WAIT))
        got.append(subscription.get(timeout=WAIT))

    reader = threading.Thread(target=read)
    reader.start()
    stream.publish(uv_envs.EnvironmentDeleted(KEY))
    assert woke.wait(WAIT)
    subscription.close()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert got[0] is not None
    assert got[0].name == "EnvironmentDeleted"
    assert got[1] is None
    assert stream.stats.subscribers == 0


def test_a_failing_publisher_or_subscriber_never_breaks_a_create(
    fake_manager: uv_envs.EnvManager,
) -> None:
    subscription = fake_manager.events.subscribe()

    def explode() -> None:
        raise RuntimeError("subscriber bug")

    subscription.wakeup = explode
    environment = fake_manager.create(KEY, packages=["alpha"])
    assert environment.status is uv_envs.EnvStatus.READY


def test_event_dicts_round_trip() -> None:
    stream = EventStream()
    subscription = stream.subscribe()
    stream.publish(uv_envs.EnvironmentCreated(KEY, details={"path": KEY}))
    event = drain(subscription)[0]
    assert StreamEvent.from_dict(event.to_dict()) == event
    assert event.details == {"path": "wf/node/v1"}


@pytest.mark.parametrize(
    ("line", "phase", "counts"),
    [
        ("Resolved 12 packages in 40ms\n", Phase.RESOLVING, {"resolved": 12}),
        ("Prepared 1 package in 3ms", Phase.DOWNLOADING, {"prepared": 1}),
        ("Installed 3 packages in 5ms", Phase.INSTALLING, {"installed": 3}),
        ("Uninstalled 2 packages in 1ms", Phase.INSTALLING, {"uninstalled": 2}),
        ("Audited 4 packages in 0.1ms", Phase.CHECKING, {"audited": 4}),
        ("Bytecode compiled 120 files in 50ms", Phase.COMPILING, {"compiled": 120}),
        ("Downloading torch (800.1MiB)", Phase.DOWNLOADING, {}),
    ],
)
def test_uv_summary_lines_are_progress(line: str, phase: Phase, counts: dict[str, int]) -> None:
    step = parse_line(line)
    assert step is not None
    assert step.phase is phase
    assert step.counts == counts


@pytest.mark.parametrize("line", ["", "Using CPython 3.12", "warning: x", "Removed 3 files"])
def test_other_lines_are_not_progress(line: str) -> None:
    assert parse_line(line) is None
