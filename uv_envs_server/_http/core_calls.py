"""How an HTTP request reaches the core: on the server's pool, cancelled when the client goes.

Every core call runs on the server's thread pool (:class:`CoreCalls`, handed
to each endpoint as a dependency, reads the manager, the pool and the limits
from ``app.state``), so a long create holds one thread while the event loop
goes on answering other requests. Listings and audit pages are also turned
into JSON bytes on the pool (:class:`Rendered`): with hundreds of them at
once, building and checking their models on the event loop made a health
check wait. While it runs the handler polls whether the client is still
there; when it has gone, the call's cancel event is set and the core stops uv
and rolls back, as the gRPC servicer does when a call is cancelled. Both the
v1 and the compatibility routes use it. Reads (:meth:`CoreCalls.read`) go to
the same pool without that poll: they have nothing to cancel.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request, Response

import uv_envs
from uv_envs_server._limits import limit_packages
from uv_envs_server._request_ids import following

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from pydantic import BaseModel

_R = TypeVar("_R")

#: Seconds between two checks whether the client of a running call is still there.
DISCONNECT_POLL = 0.1


class Failed(Exception):
    """Carries a core call's exception to the handler that turns it into a problem."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(type(error).__name__)


class CoreCalls:
    """One request's way to the core: its calls run on the pool, cancelled when the client goes.

    FastAPI makes one per request (the :data:`Core` dependency) from what
    :func:`~uv_envs_server._http.app.create_app` put on ``app.state``.
    """

    def __init__(self, request: Request) -> None:
        state = request.app.state
        self.request = request
        self.manager: uv_envs.EnvManager = state.manager
        self.executor: Executor = state.executor
        self.max_packages: int = state.max_packages
        self.min_cleanup_idle_hours: float = state.min_cleanup_idle_hours

    def packages(self, packages: list[str]) -> tuple[str, ...]:
        return limit_packages(packages, self.max_packages)

    async def __call__(self, call: Callable[[], _R]) -> _R:
        cancel = threading.Event()

        def work() -> _R:
            # The request id names the call's operation in the event stream.
            with uv_envs.EnvManager.cancellable(cancel), following():
                return call()

        # The copied context carries the request id into the worker thread.
        context = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(self.executor, context.run, work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL)
                if not future.done() and await self.request.is_disconnected():
                    cancel.set()  # uv is stopped, the operation rolled back
                    await asyncio.wait({future})
            return future.result()
        except asyncio.CancelledError:
            cancel.set()  # the server is stopping this request
            raise
        except Exception as exc:
            raise Failed(exc) from exc

    async def read(self, call: Callable[[], _R]) -> _R:
        """A read of what the root holds now (status, get), on the pool, not polled.

        Not on the event loop: a read of a record left CREATING by a process that
        died takes the env's lock and rolls that create back (``EnvAccess.read``),
        and a root on a slow disk makes even a ``stat`` wait; either would stall
        every other request (issue 18). But it starts no uv and holds nothing a
        gone client could want stopped, so it needs neither the cancel event nor
        the disconnect poll of :meth:`__call__` (a timer, a waiter and a
        ``receive`` per 0.1 s: about 7% of the instructions a status read costs
        the application, callgrind says).
        """
        context = contextvars.copy_context()  # the request id, for what a repair logs
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, context.run, _followed, call
            )
        except Exception as exc:
            raise Failed(exc) from exc


def _followed(call: Callable[[], _R]) -> _R:
    # The request id names what the call records in the event stream (a repair, say).
    with following():
        return call()


class Rendered(Response):
    """A JSON body made on the pool; FastAPI sends it as is (``response_model`` documents it)."""

    media_type = "application/json"

    @classmethod
    def of(cls, model: BaseModel) -> bytes:
        """``model`` as the body bytes; call it inside the core call, off the event loop."""
        return model.model_dump_json().encode()


async def _core_calls(request: Request) -> CoreCalls:
    # A coroutine, so FastAPI builds it on the event loop: a class (a plain callable) as
    # the dependency would cost each request a hop to its thread pool and back.
    return CoreCalls(request)


#: The request's :class:`CoreCalls`, as an endpoint parameter (adds no API parameter).
Core = Annotated[CoreCalls, Depends(_core_calls)]
