"""The wheel relay faces the network: origins it may not reach, clients that hog, origins that fail.

A real relay on loopback, real origins (tests/relay/origins.py) that count what
reaches them; every test reads what the relay answered, what reached the
origin, and what is left on disk.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from tests.relay.origins import (
    Origin,
    origin,
    raw,
    received_all,
    redirects,
    serves,
    sha256,
    trickles,
)
from tests.support.strategies import relay_paths, relayed_files
from uv_envs._relay.limits import RelayLimits
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.server import WheelRelay
from uv_envs._relay.urls import RelayedFile, origin_of, read_relay_path, relay_url

SECRET = b"the cloud's instance credentials"
NAME = "x-1.0-py3-none-any.whl"


def start_relay(tmp_path: Path, *allowed: Origin, **limits: float) -> WheelRelay:
    relay = WheelRelay(
        tmp_path / "relay",
        "127.0.0.1",
        origins=AllowedOrigins(str(origin_of(o.url("/"))) for o in allowed),
        limits=RelayLimits(**limits),  # type: ignore[arg-type]
    )
    relay.start()
    return relay


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[WheelRelay]]:
    started: list[WheelRelay] = []
    yield started
    for relay in started:
        relay.stop()


def get(relay: WheelRelay, wanted: RelayedFile, timeout: float = 30) -> tuple[int, bytes]:
    """Status and body of a GET of ``wanted`` through ``relay``."""
    url = relay_url(relay.url, wanted).removeprefix(f"http://127.0.0.1:{relay.port}")
    return get_path(relay, url, timeout)


def get_path(relay: WheelRelay, path: str, timeout: float = 30) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=timeout)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def relay_threads() -> int:
    """Threads of this process that are neither an origin's nor a test client's."""
    return sum(not t.name.startswith(("origin", "client")) for t in threading.enumerate())


def files_left(relay: WheelRelay) -> list[Path]:
    """Kept and partial files of ``relay``."""
    return sorted(p for p in relay.directory.rglob("*") if p.is_file())


# -- only the allowed origins, never anything else --------------------------------------


def test_an_origin_off_the_allow_list_is_never_contacted(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    with origin(serves(SECRET)) as secret, origin(serves(b"index")) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        wanted = RelayedFile(sha256(SECRET), secret.url(f"/{NAME}"), NAME, len(SECRET))
        status, body = get(relay, wanted)
        # Other local addresses of the same machine, another scheme's port: still off the list.
        for host in ("localhost", "127.0.0.2", "[::1]"):
            other = RelayedFile(sha256(SECRET), f"http://{host}:{secret.port}/{NAME}", NAME)
            assert get(relay, other)[0] == 403
        assert secret.requests == 0
    assert status == 403
    assert body == b"403 Forbidden\n"  # nothing of the secret: no size, no digest
    assert files_left(relay) == []
    assert relay.counts().refused == 4


def test_a_redirect_off_the_allow_list_is_not_followed(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    with origin(serves(SECRET)) as secret:
        with origin(redirects(secret.url(f"/private/{NAME}"))) as index:
            relay = start_relay(tmp_path, index)
            relays.append(relay)
            status, body = get(relay, RelayedFile(sha256(SECRET), index.url(f"/{NAME}"), NAME))
            assert index.requests == 1
        assert secret.requests == 0
    assert (status, body) == (403, b"403 Forbidden\n")
    assert files_left(relay) == []


def test_a_redirect_within_the_allowed_origins_is_followed(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    data = b"wheel bytes"
    with origin(serves(data)) as files, origin(redirects(files.url(f"/f/{NAME}"))) as index:
        relay = start_relay(tmp_path, index, files)
        relays.append(relay)
        assert get(relay, RelayedFile(sha256(data), index.url(f"/{NAME}"), NAME)) == (200, data)
        assert (index.requests, files.requests) == (1, 1)


def test_other_bytes_are_refused_without_saying_what_they_were(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    with origin(serves(SECRET)) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        status, body = get(relay, RelayedFile("0" * 64, index.url(f"/{NAME}"), NAME))
    assert (status, body) == (502, b"502 Bad Gateway\n")
    assert sha256(SECRET).encode() not in body
    assert str(len(SECRET)).encode() not in body
    assert files_left(relay) == []


# -- bounded: sizes, failing origins, idle and hurried clients ----------------------------


@pytest.mark.parametrize("length", [True, False], ids=["announced", "unannounced"])
def test_an_oversized_origin_is_cut_at_the_lock_size_and_nothing_is_kept(
    tmp_path: Path, relays: list[WheelRelay], *, length: bool
) -> None:
    big = b"y" * (4 << 20)
    with origin(serves(big, length=length)) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        stated = RelayedFile(sha256(big), index.url(f"/{NAME}"), NAME, size=1000)
        assert get(relay, stated) == (502, b"502 Bad Gateway\n")
    assert files_left(relay) == []


def test_a_file_of_no_stated_size_is_cut_at_the_configured_cap(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    big = b"y" * (4 << 20)
    with origin(serves(big, length=False)) as index:
        relay = start_relay(tmp_path, index, max_file_bytes=1 << 20)
        relays.append(relay)
        assert get(relay, RelayedFile(sha256(big), index.url(f"/{NAME}"), NAME))[0] == 502
        small = start_relay(tmp_path / "roomy", index)  # the default cap lets it through
        relays.append(small)
        assert get(small, RelayedFile(sha256(big), index.url(f"/{NAME}"), NAME)) == (200, big)
    assert files_left(relay) == []


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 5000,  # dies mid-body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\nzz",  # dies mid-chunk
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n",
        b"garbage instead of a status line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1/a.whl\r\n\r\n",
        b"",  # closes at once
    ],
)
def test_an_origin_that_fails_gives_an_http_error_and_no_file(
    tmp_path: Path,
    relays: list[WheelRelay],
    capfd: pytest.CaptureFixture[str],
    answer: bytes,
) -> None:
    with origin(raw(answer)) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        status, body = get(relay, RelayedFile("a" * 64, index.url(f"/{NAME}"), NAME))
    assert status in {403, 502}
    assert body in {b"502 Bad Gateway\n", b"403 Forbidden\n"}
    assert files_left(relay) == []
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "origin_url",
    [
        "http://[::1/x-1.0-py3-none-any.whl",
        "http://127.0.0.1:1/dir with space/x-1.0-py3-none-any.whl",
        "http://127.0.0.1:1/d\u00efr/x-1.0-py3-none-any.whl",
        "http://127.0.0.1:99999/x-1.0-py3-none-any.whl",
        "http://user:pw@127.0.0.1:1/x-1.0-py3-none-any.whl",
        "file:///etc/x-1.0-py3-none-any.whl",
        "ftp://127.0.0.1/x-1.0-py3-none-any.whl",
        "http:///x-1.0-py3-none-any.whl",
        "http://127.0.0.1:1/x-1.0-py3-none-any.whl\r\nHost: evil",
    ],
)
def test_a_malformed_origin_gets_a_4xx_without_a_traceback(
    tmp_path: Path,
    relays: list[WheelRelay],
    capfd: pytest.CaptureFixture[str],
    origin_url: str,
) -> None:
    relay = start_relay(tmp_path)
    relays.append(relay)
    relay.origins.add(["http://127.0.0.1:1", "http://[::1]:80"])  # even were it allowed
    status, _ = get(relay, RelayedFile("a" * 64, origin_url, NAME))
    assert 400 <= status < 500
    assert "Traceback" not in capfd.readouterr().err


def test_a_thousand_idle_sockets_hold_no_thread_and_are_closed_in_time(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    relay = start_relay(tmp_path, header_timeout=2.0)
    relays.append(relay)
    threads = threading.active_count()
    sockets = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", relay.port))
            sock.sendall(b"GET / HTTP/1.1\r\n")  # never the end of the headers
            sockets.append(sock)
        time.sleep(0.5)
        assert threading.active_count() <= threads  # one loop thread serves them all
        assert relay.connections <= RelayLimits().max_client_connections
        # A real client still gets through once the idle ones are gone.
        start = time.monotonic()
        answers = [received_all(sock, timeout=10) for sock in sockets]
        assert time.monotonic() - start < 5  # within the header timeout (and a margin)
    finally:
        for sock in sockets:
            sock.close()
    assert all(a.startswith((b"HTTP/1.1 408 ", b"HTTP/1.1 503 ")) for a in answers)
    assert relay.connections == 0
    assert get_path(relay, "/")[0] == 404


@pytest.mark.parametrize(
    ("pending", "waits"), [(200, 400), (400, 200)], ids=["files-in-all", "per-client"]
)
def test_300_concurrent_distinct_fetches_stay_within_the_caps(
    tmp_path: Path, relays: list[WheelRelay], pending: int, waits: int
) -> None:
    release = threading.Event()
    with origin(serves(b"held", until=release)) as index:
        relay = start_relay(
            tmp_path,
            index,
            max_fetches=8,
            max_pending_fetches=pending,
            max_client_waits=waits,
            max_connections=400,
            max_client_connections=400,
        )
        relays.append(relay)
        threads = relay_threads()

        def fetch(n: int) -> int:
            digest = f"{n:064x}"
            return get(relay, RelayedFile(digest, index.url(f"/{n}/{NAME}"), NAME), 60)[0]

        with futures.ThreadPoolExecutor(300, thread_name_prefix="client") as pool:
            running = [pool.submit(fetch, n) for n in range(300)]
            deadline = time.monotonic() + 30
            while sum(f.done() for f in running) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # nothing more is answered while the origin holds
            answered = sum(f.done() for f in running)
            at_once = index.at_once
            partial = len(list((relay.directory / "partial").iterdir()))
            added = relay_threads() - threads
            release.set()
            statuses = [f.result() for f in running]
        assert index.most_at_once == 8
    assert (answered, at_once, partial, added) == (100, 8, 8, 0)  # one loop thread for all
    assert statuses.count(503) == 100  # past the cap: busy, at once
    assert statuses.count(502) == 200  # the rest fetched (other bytes than the made-up digests)
    assert files_left(relay) == []


def test_three_waiters_for_one_slow_origin_end_together_at_the_deadline(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    with origin(trickles(1000, every=0.2)) as index:
        relay = start_relay(tmp_path, index, fetch_deadline=3.0)
        relays.append(relay)
        wanted = RelayedFile("b" * 64, index.url(f"/{NAME}"), NAME, size=1000)
        start = time.monotonic()

        def wait(delay: float) -> tuple[int, float]:
            time.sleep(delay)
            status, _ = get(relay, wanted)
            return status, time.monotonic() - start

        with futures.ThreadPoolExecutor(3) as pool:
            ends = list(pool.map(wait, [0.0, 0.5, 1.0]))
        assert index.requests == 1  # one fetch for the three, none again after it failed
    assert [status for status, _ in ends] == [504] * 3
    times = [t for _, t in ends]
    assert max(times) - min(times) < 0.5
    assert 2.9 < min(times) < 5.0
    assert files_left(relay) == []


def test_a_request_at_a_wrong_size_does_not_fail_the_right_one(
    tmp_path: Path, relays: list[WheelRelay]
) -> None:
    data = b"w" * 5000
    with origin(serves(data, hold=1.0)) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        right = RelayedFile(sha256(data), index.url(f"/{NAME}"), NAME, len(data))
        wrong = attrs.evolve(right, size=10)  # someone else's request for the same digest
        with futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda w: get(relay, w), [wrong, right]))
        assert index.requests == 2
    assert answers == [(502, b"502 Bad Gateway\n"), (200, data)]


def test_a_fetch_nobody_waits_for_is_cancelled(tmp_path: Path, relays: list[WheelRelay]) -> None:
    with origin(trickles(1000, every=0.1)) as index:
        relay = start_relay(tmp_path, index)
        relays.append(relay)
        path = relay_url(relay.url, RelayedFile("c" * 64, index.url(f"/{NAME}"), NAME))
        path = path.removeprefix(f"http://127.0.0.1:{relay.port}")
        sock = socket.create_connection(("127.0.0.1", relay.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
        time.sleep(0.5)
        assert any((relay.directory / "partial").iterdir())  # fetching
        sock.close()  # the only waiter leaves
        deadline = time.monotonic() + 5
        while index.closed_early == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert index.closed_early == 1  # the relay hung up on the origin
    assert files_left(relay) == []


def test_kept_files_stay_within_the_disk_budget(tmp_path: Path, relays: list[WheelRelay]) -> None:
    files = {f"/{n}/{NAME}": bytes([n]) * 1000 for n in range(3)}
    with origin(lambda path, conn: serves(files[path])(path, conn)) as index:
        relay = start_relay(tmp_path, index, max_kept_bytes=2500)
        relays.append(relay)
        for path, data in files.items():
            assert get(relay, RelayedFile(sha256(data), index.url(path), NAME)) == (200, data)
            time.sleep(0.05)  # distinct request times
    kept = {p.name for p in relay.directory.glob("??/*")}
    assert kept == {sha256(files[f"/{n}/{NAME}"]) for n in (1, 2)}  # the oldest went


def test_partial_files_of_a_dead_relay_are_swept_at_start(tmp_path: Path) -> None:
    partial = tmp_path / "relay" / "partial"
    partial.mkdir(parents=True)
    (partial / f"{'d' * 64}.999999999.ab").write_bytes(b"left by a crash")
    relay = start_relay(tmp_path)
    try:
        assert not any(partial.iterdir())
    finally:
        relay.stop()


# -- any path: read back exactly, or refused with a 4xx ------------------------------------


@given(wanted=relayed_files())
def test_a_relayed_file_reads_back_from_its_url(wanted: RelayedFile) -> None:
    url = relay_url("http://relay:1/token", wanted)
    assert read_relay_path(url.removeprefix("http://relay:1/token")) == wanted


@pytest.fixture(scope="module")
def lone_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WheelRelay]:
    relay = WheelRelay(tmp_path_factory.mktemp("lone") / "relay", "127.0.0.1")  # allows no origin
    relay.start()
    yield relay
    relay.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=relay_paths())
def test_no_path_makes_the_relay_fail(lone_relay: WheelRelay, path: str) -> None:
    target = f"/{lone_relay.token}/{path}".replace("\r", "").replace("\n", "")
    with socket.create_connection(("127.0.0.1", lone_relay.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        answer = received_all(sock, timeout=10)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer
    assert b"Traceback" not in answer
