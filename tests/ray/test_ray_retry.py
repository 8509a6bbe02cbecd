"""The backoff of failed node installs, and the book that says when each is due (no cluster)."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from hypothesis import given
from hypothesis import strategies as st

from uv_envs.ray import NodePresence, ReplicaState
from uv_envs.ray._replica import FAILURE_CACHE_VARIABLE, failure_cache_seconds
from uv_envs.ray._retry import Backoff, Retries


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    first = draw(st.floats(0.01, 100))
    return Backoff(
        first=first,
        factor=draw(st.floats(1, 10)),
        cap=draw(st.floats(first, 10_000)),
        jitter=draw(st.floats(0, 0.99)),
    )


spreads = st.floats(0, 1)


@given(backoffs(), st.integers(1, 10_000), spreads)
def test_a_delay_is_positive_and_never_above_the_cap(
    backoff: Backoff, failures: int, spread: float
) -> None:
    delay = backoff.delay(failures, spread)
    assert 0 < delay <= backoff.cap


@given(backoffs(), st.integers(1, 200), spreads)
def test_delays_never_shrink_with_more_failures(
    backoff: Backoff, failures: int, spread: float
) -> None:
    assert backoff.delay(failures + 1, spread) >= backoff.delay(failures, spread)


@given(backoffs(), st.integers(1, 200), spreads)
def test_jitter_shortens_a_delay_by_at_most_its_share(
    backoff: Backoff, failures: int, spread: float
) -> None:
    plain = backoff.delay(failures, 0.0)
    assert plain * (1 - backoff.jitter) <= backoff.delay(failures, spread) * (1 + 1e-9)
    assert backoff.delay(failures, spread) <= plain


def test_the_default_doubles_from_five_seconds_up_to_a_minute() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, 0.0) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff.delay(1, 1.0) == pytest.approx(4.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0}, {"factor": 0.5}, {"cap": 1, "first": 2}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_a_policy_that_could_not_back_off_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|first|factor|jitter"):
        Backoff(**kwargs)


def test_a_failed_install_is_due_again_after_its_delay_then_later_each_time() -> None:
    retries = Retries(Backoff(first=5, factor=2, cap=60, jitter=0), spread=lambda: 0.0)
    assert retries.due("/e", "n1", 0.0)  # never failed: due at once
    first = retries.failed("/e", "n1", "No space left on device", 100.0)
    assert (first.failures, first.retry_at, first.error) == (1, 105.0, "No space left on device")
    assert not retries.due("/e", "n1", 104.9)
    assert retries.due("/e", "n1", 105.0)
    assert retries.due("/e", "n2", 100.0)  # another node is not held back
    assert retries.failed("/e", "n1", "again", 105.0).retry_at == 115.0
    assert retries.failed("/e", "n1", "again", 115.0).retry_at == 135.0


def test_success_a_changed_env_and_a_rejoining_node_each_allow_a_try_at_once() -> None:
    retries = Retries(Backoff(jitter=0), spread=lambda: 0.0)
    for env, node in [("/a", "n1"), ("/a", "n2"), ("/b", "n1")]:
        retries.failed(env, node, "full", 0.0)
    retries.succeeded("/a", "n2")
    assert retries.failure("/a", "n2") is None
    assert retries.due("/a", "n2", 0.0)
    retries.forget_env("/a")  # a new lock
    assert retries.due("/a", "n1", 0.0)
    assert not retries.due("/b", "n1", 0.0)
    retries.forget_node("n1")  # it left; a rejoin is tried at once
    assert retries.due("/b", "n1", 0.0)
    retries.failed("/b", "n1", "full", 0.0)
    assert retries.failure("/b", "n1") is not None
    assert retries.failure("/b", "n1").failures == 1  # type: ignore[union-attr]


def test_jitter_comes_from_the_source_given() -> None:
    retries = Retries(Backoff(first=10, jitter=0.5), spread=lambda: 1.0)
    assert retries.failed("/e", "n", "x", 0.0).retry_at == 5.0


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({}, 600),
        ({"BAD_RUNTIME_ENV_CACHE_TTL_SECONDS": "5"}, 5),
        ({FAILURE_CACHE_VARIABLE: "x"}, 600),
    ],
)
def test_a_nodes_failure_cache_is_read_as_ray_reads_it(
    environ: dict[str, str], seconds: int
) -> None:
    assert failure_cache_seconds(environ) == seconds


def test_a_failed_copy_shows_its_next_retry_in_utc() -> None:
    failed = NodePresence("n", "10.0.0.2", ReplicaState.FAILED, "full", retry_at=1_800_000_000.0)
    assert failed.to_dict()["next_retry"] == "2027-01-15T08:00:00+00:00"
    assert NodePresence("n", "10.0.0.2", ReplicaState.PRESENT).to_dict()["next_retry"] is None
