"""``/v1/events``: live events as Server-Sent Events from a real HTTP server on loopback."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from tests.server.grpc.test_events_grpc import WAIT, wait_for
from uv_envs import EnvKey
from uv_envs_server import HttpEnvClient, HttpRemoteError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.server.conftest import HttpServe

KEY = EnvKey("wf", "node", "v1")
TOKEN = "sse-Token_42"  # noqa: S105 - a test token for a loopback server


class Follower:
    """Reads a watch on a thread until ``last`` arrives (or the stream ends)."""

    def __init__(self, events: Iterator[uv_envs.StreamEvent], last: str) -> None:
        self.events: list[uv_envs.StreamEvent] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(events, last), daemon=True)
        self._thread.start()

    def _read(self, events: Iterator[uv_envs.StreamEvent], last: str) -> None:
        try:
            for event in events:
                self.events.append(event)
                if event.name == last:
                    return
        except BaseException as exc:
            self.error = exc

    def result(self) -> list[uv_envs.StreamEvent]:
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.events


def test_sse_follows_a_real_create_by_its_request_id(
    http_serve: HttpServe, manager: uv_envs.EnvManager
) -> None:
    server = http_serve(manager)
    with HttpEnvClient(server.url) as client:
        mine = Follower(client.watch(operation_id="http-create-1"), "EnvironmentCreated")
        others = Follower(client.watch(workflow_id="other"), "EnvironmentCreated")
        wait_for(lambda: manager.events.stats.subscribers == 2)
        answer = httpx.post(
            f"{server.url}/v1/envs",
            json={
                "workflow_id": "wf",
                "node_id": "node",
                "version_id": "v1",
                "packages": ["alpha<2"],
            },
            headers={"X-Request-Id": "http-create-1"},
            timeout=120,
        )
        assert answer.status_code == 201, answer.text
        seen = mine.result()
        names = [e.name for e in seen]
        assert names[0] == "EnvironmentCreationStarted"
        assert names[-1] == "EnvironmentCreated"
        phases = [e.phase for e in seen if e.phase is not None]
        assert phases.index(uv_envs.Phase.RESOLVING) < phases.index(uv_envs.Phase.INSTALLING)
        assert any(e.counts.get("resolved") for e in seen)
        assert {e.key for e in seen} == {KEY}
        assert [e.sequence for e in seen] == sorted(e.sequence for e in seen)
        # The watcher of another workflow saw none of it: its first event is its own.
        manager.create(EnvKey("other", "node"), packages=["gamma"])
        assert {e.key for e in others.result()} == {EnvKey("other", "node")}


def test_last_event_id_resumes_and_says_what_it_cannot_replay(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    fake_manager.create(KEY, packages=["alpha"])
    last = fake_manager.events.last_sequence
    fake_manager.delete(KEY)
    with HttpEnvClient(server.url) as client:
        resumed = client.watch(after=last)
        event = next(resumed)
        assert (event.name, event.sequence) == ("EnvironmentDeleted", last + 1)
        resumed.close()
        fake_manager.events.configure(replay=1)
        gap = client.watch(after=0)
        notice = next(gap)
        assert notice.name == "ReplayGap"
        assert notice.counts == {"missed": last}
        assert next(gap).sequence == last + 1
        gap.close()


def test_last_event_id_still_resumes_with_a_deprecation_warning(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    fake_manager.create(KEY, packages=["alpha"])
    last = fake_manager.events.last_sequence
    fake_manager.delete(KEY)
    with HttpEnvClient(server.url) as client:
        resumed = client.watch(last_event_id=last)
        with pytest.warns(DeprecationWarning, match="use after="):
            event = next(resumed)
        resumed.close()
    assert (event.name, event.sequence) == ("EnvironmentDeleted", last + 1)


def test_the_raw_stream_is_sse_with_ids(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    fake_manager.create(KEY, packages=["alpha"])
    with (
        httpx.Client(base_url=server.url, timeout=WAIT) as http,
        http.stream("GET", "/v1/events", params={"after": 0}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": watching"
        assert next(lines) == ""
        assert next(lines) == "id: 1"
        assert next(lines) == "event: EnvironmentCreationStarted"
        assert next(lines).startswith("data: {")


def test_a_reader_that_never_reads_is_cut_off_and_does_not_stop_a_create(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.events.configure(buffer=4)
    server = http_serve(fake_manager)
    with (
        httpx.Client(base_url=server.url, timeout=WAIT) as http,
        http.stream("GET", "/v1/events") as response,  # headers read, body never until the end
    ):
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
        for number in range(50_000):  # far more than the socket buffers hold
            fake_manager.events.publish(uv_envs.EnvironmentDeleted(EnvKey("wf", f"n{number}")))
        environment = fake_manager.create(KEY, packages=["alpha"])
        assert environment.status is uv_envs.EnvStatus.READY
        wait_for(lambda: fake_manager.events.stats.cut_off == 1)
        assert fake_manager.events.stats.subscribers == 0
        text = response.read().decode()
    assert "event: SubscriberCutOff" in text
    assert '"dropped": 1' in text


def test_token_caps_and_bad_filters(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager, token=TOKEN, max_watchers=2, max_watchers_per_client=1)
    with HttpEnvClient(server.url) as anonymous, pytest.raises(HttpRemoteError) as info:
        next(anonymous.watch())
    assert info.value.status_code == 401
    with HttpEnvClient(server.url, token=TOKEN) as client:
        first = client.watch()
        follower = Follower(first, "EnvironmentCreated")
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
        with pytest.raises(uv_envs.TooManySubscribers, match="this client"):
            next(client.watch())
        with pytest.raises(uv_envs.InvalidInput):
            next(client.watch(names=["NoSuchEvent"]))
        with pytest.raises(uv_envs.InvalidInput):
            next(client.watch(workflow_id="../up"))
        with pytest.raises(uv_envs.InvalidInput):
            next(client.watch(names=["EnvironmentCreated"] * 100))
        bad_id = client.http.get("/v1/events", headers={"Last-Event-ID": "abc"})
        assert bad_id.status_code == 422
        assert fake_manager.events.stats.subscribers == 1
        fake_manager.create(KEY, packages=["alpha"])
        assert follower.result()[-1].name == "EnvironmentCreated"


def test_a_client_that_goes_away_frees_its_place(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager, max_watchers_per_client=1)
    with HttpEnvClient(server.url) as client:
        watching = client.watch()
        follower = Follower(watching, "EnvironmentCreationStarted")
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
        fake_manager.create(KEY, packages=["alpha"])
        follower.result()
        watching.close()  # the connection closes with the generator
        wait_for(lambda: fake_manager.events.stats.subscribers == 0)
        again = client.watch()
        Follower(again, "EnvironmentDeleted")
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
