"""The shared objects as the event loop may use them: every round trip in a thread, with a deadline.

A call through a manager proxy blocks until the manager process answers. On the event loop that would
stall every request of the HTTP process if the manager were slow or stuck, so calls run in a small thread
pool: `call` awaits the answer for at most `timeout_s` (then raises IpcTimeout), `post` does not wait
(for counters and cancels, which nothing waits on). A manager that is gone raises IpcLost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["IPC_TIMEOUT_S", "IpcError", "IpcLost", "IpcTimeout", "LoopIpc"]

logger = logging.getLogger(__name__)

IPC_TIMEOUT_S = 2.0  # a healthy manager answers in well under a millisecond
_THREADS = 4  # bounded: a stuck manager ties up at most this many threads

P = ParamSpec("P")
T = TypeVar("T")


class IpcError(Exception):
    """Raised when a round trip to the shared state gave no answer (see the two kinds below)."""


class IpcTimeout(IpcError, TimeoutError):
    """Raised when the manager process did not answer within the deadline."""


class IpcLost(IpcError):
    """Raised when the manager process is gone: its connection is refused or broken."""


class LoopIpc:
    """Runs proxy calls off the event loop. Create one per HTTP process; its threads start on first use."""

    def __init__(self, timeout_s: float = IPC_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        # Created lazily: the HTTP processes are forked, and threads do not survive a fork.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="tts-ipc")
        return self._executor

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in the pool and return its result; IpcTimeout past the deadline, IpcLost if the
        manager is gone."""
        return await self._answer(self._pool().submit(fn, *args, **kwargs))

    async def call_or_undo(
        self, undo: Callable[[T], object], fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`call`; if the deadline passes and `fn` answers later, `undo(answer)` runs in the pool, since
        nobody waits for the answer any more (an admission answered after its caller gave up is closed)."""
        future = self._pool().submit(fn, *args, **kwargs)
        try:
            return await self._answer(future)
        except IpcTimeout:
            future.add_done_callback(lambda late: self._undo(late, undo))
            raise

    def post(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Run `fn` in the pool without waiting; a failure is logged, never raised."""
        self._pool().submit(fn, *args, **kwargs).add_done_callback(_log_failure)

    async def _answer(self, future: Future[T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise IpcTimeout(f"the shared state did not answer within {self.timeout_s:g} s") from None
        except (OSError, EOFError) as exc:  # refused, reset, broken pipe: the manager process is gone
            raise IpcLost(f"the shared state is gone ({type(exc).__name__}: {exc})") from exc

    def _undo(self, late: Future[T], undo: Callable[[T], object]) -> None:
        # A call that never started was cancelled with its waiter; one that failed changed nothing.
        if not late.cancelled() and late.exception() is None:
            self.post(undo, late.result())


def _log_failure(future: Future[object]) -> None:
    error = future.exception()
    if error is not None:
        logger.warning("a shared-state update failed: %s", error)
